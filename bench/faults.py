"""Fault injection: SIGKILL each command at random times, re-run it, compare with an uninterrupted run.

Run:  python bench/faults.py [--points 20] [--seed 0] [--commands extract-frames embed train train-skeleton]

On tiny synthetic data (``seqvision.demo`` videos, a ``seqvision.skeleton_synth`` pickle), each
command runs once uninterrupted as the reference (its wall time D). Then, ``--points`` times, it
is started in a fresh output folder through the CLI, killed with SIGKILL after a random delay in
[0, D), and run again to completion. The final output must equal the reference:

- extract-frames: every file byte-identical (manifest.csv with "skipped" read as "ok");
- embed: the cache's features, lengths and manifest equal (MobileNetV2 with fixed random
  weights from a file, 32 px, so every run computes the same numbers);
- train / train-skeleton: config.json and labels.json equal, the model loads and ``predict``
  works, no ``backup*/``, ``INCOMPLETE`` or hidden ``.new-*`` folder is left (trained weights
  after a resume are not compared bit for bit).

Prints one line per command, e.g. ``extract-frames: 20/20 kills resumed to identical output``
(``train: 20/20 kills resumed to a complete run that predicts``). On 2 shared CPU cores
``--points 3`` takes about 3 minutes and ``--points 20`` about 21 (80 kills, all resumed).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


def cli(*args) -> list[str]:
    return [sys.executable, "-m", "seqvision.cli", *map(str, args)]


def run(*args, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(cli(*args), env=ENV, capture_output=True, text=True, timeout=timeout)


def make_data(root: Path) -> dict:
    """Videos, their frames, a skeleton pickle and a fixed random MobileNetV2 weights file."""
    import keras

    from seqvision.demo import make_demo_videos
    from seqvision.skeleton_synth import make_synthetic_skeleton_dataset

    videos = make_demo_videos(root / "videos", clips_per_class=3, groups_per_class=3,
                              classes=("move_left", "move_right"))
    result = run("extract-frames", videos, root / "frames", "--seq-len", "8", "--size", "32", "--jobs", "2")
    assert result.returncode == 0, result.stderr
    make_synthetic_skeleton_dataset(root / "skeleton.pkl", num_per_class=10, num_classes=2, min_frames=10,
                                    max_frames=30, seed=0)
    keras.utils.set_random_seed(0)
    base = keras.applications.MobileNetV2(input_shape=(32, 32, 3), include_top=False, pooling="avg", weights=None)
    base.save_weights(root / "mobilenet.weights.h5")
    return {"videos": videos, "frames": root / "frames", "skeleton": root / "skeleton.pkl",
            "weights": root / "mobilenet.weights.h5"}


def commands(data: dict) -> dict:
    """Command name -> function of the output folder giving the CLI arguments."""
    return {
        "extract-frames": lambda out: ["extract-frames", data["videos"], out, "--seq-len", "8", "--size", "32",
                                       "--jobs", "2"],
        "embed": lambda out: ["embed", data["frames"], "--out", out, "--weights", data["weights"],
                              "--img-size", "32", "--seq-len", "8", "--batch-frames", "16"],
        "train": lambda out: ["train", data["frames"], "--out", out, "--backbone", "cnn", "--epochs", "4",
                              "--img-size", "16", "--seq-len", "4", "--units", "8", "--batch-size", "4", "--val-split", "0"],
        "train-skeleton": lambda out: ["train-skeleton", data["skeleton"], "--out", out, "--epochs", "4",
                                       "--units", "8", "--batch-size", "8", "--seq-len", "8", "--val-fraction", "0"],
    }


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def manifest_rows(text: bytes) -> list[dict]:
    rows = list(csv.DictReader(io.StringIO(text.decode())))
    return [{**r, "status": "ok" if r["status"] == "skipped" else r["status"]} for r in rows]


def differences(name: str, out: Path, reference: Path, data: dict) -> list[str]:
    """What differs between ``out`` and the uninterrupted ``reference`` output; empty when equal."""
    if name == "extract-frames":
        got, want = files(out), files(reference)
        problems = [f"{k}: missing or extra" for k in set(got) ^ set(want)]
        problems += [f"{k}: differs" for k in set(got) & set(want) if k != "manifest.csv" and got[k] != want[k]]
        if "manifest.csv" in got and manifest_rows(got["manifest.csv"]) != manifest_rows(want["manifest.csv"]):
            problems.append("manifest.csv: differs")
        return problems
    if name == "embed":
        caches = [p for p in (out / "embeddings").iterdir() if not p.name.startswith(".")]
        want = next(p for p in (reference / "embeddings").iterdir() if not p.name.startswith("."))
        if [p.name for p in caches] != [want.name]:
            return [f"cache folders {[p.name for p in caches]}, expected {want.name}"]
        problems = [f"{f}: differs" for f in ("features.npy", "lengths.npy")
                    if not np.array_equal(np.load(caches[0] / f), np.load(want / f))]
        if json.loads((caches[0] / "manifest.json").read_text()) != json.loads((want / "manifest.json").read_text()):
            problems.append("manifest.json: differs")
        return problems
    problems = [f"{f}: differs" for f in ("config.json", "labels.json")
                if (out / f).read_bytes() != (reference / f).read_bytes()]
    leftovers = [p.name for p in [*out.glob("backup*"), out / "INCOMPLETE", *out.parent.glob(f".{out.name}.*")]
                 if p.exists()]
    problems += [f"left behind: {name}" for name in leftovers]
    target = data["skeleton"] if name == "train-skeleton" else next(data["frames"].glob("*/*"))
    result = run("predict", out, target, "--json", "--top-k", "1")
    if result.returncode != 0 or not all(row.get("predictions") for row in json.loads(result.stdout or "[]")):
        problems.append(f"predict failed: {result.stderr.strip().splitlines()[-1:]}")
    return problems


def kill_and_resume(args: list[str], delay: float) -> tuple[str, str]:
    """Start, SIGKILL after ``delay`` s, run again to completion: ``(what the kill hit, error or "")``."""
    process = subprocess.Popen(cli(*args), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        process.wait(delay)
        hit = "finished before the kill"
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()
        hit = "killed"
    result = run(*args)
    if result.returncode != 0 and "holds a finished run" not in result.stderr:  # a kill just after the end
        return hit, f"re-run failed: {result.stderr.strip().splitlines()[-1:]}"
    return hit, ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=20, help="kills per command")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--commands", nargs="+", default=["extract-frames", "embed", "train", "train-skeleton"])
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    summary = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = make_data(tmp / "data")
        for name in args.commands:
            make_args = commands(data)[name]
            reference = tmp / name / "reference"
            began = time.perf_counter()
            result = run(*make_args(reference))
            duration = time.perf_counter() - began
            assert result.returncode == 0, result.stderr
            identical, notes = 0, {"killed": 0, "finished before the kill": 0}
            for point in range(args.points):
                out = tmp / name / f"point{point:02d}"
                delay = float(rng.uniform(0, duration))
                hit, error = kill_and_resume(make_args(out), delay)
                notes[hit] += 1
                problems = [error] if error else differences(name, out, reference, data)
                if problems:
                    print(f"{name}: kill at {delay:.1f} s of {duration:.1f} s: {'; '.join(problems[:5])}",
                          file=sys.stderr)
                else:
                    identical += 1
            verdict = "identical output" if name in ("extract-frames", "embed") else "a complete run that predicts"
            line = (f"{name}: {identical}/{args.points} kills resumed to {verdict} "
                    f"({notes['killed']} killed mid-run, {notes['finished before the kill']} finished first; "
                    f"uninterrupted run {duration:.1f} s)")
            print(line, flush=True)
            summary.append(line)
    print(f"total {time.perf_counter() - start:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
