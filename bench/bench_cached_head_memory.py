"""Benchmark: peak resident memory while the LSTM head trains on a large embedding cache.

Run:  nice -n 10 python bench/bench_cached_head_memory.py [--clips 100000] [--steps N] [--limit-gib 2]

Writes a synthetic float16 cache of ``--clips`` clips x 1 view x 16 steps x 1280 (MobileNetV2's
embedding width; 100k clips = 4.1 GB) into a temporary folder under ``--tmp`` (written with plain
file writes, in chunks, so the writing itself maps nothing), opens it as ``np.load(mmap_mode="r")``
as the embedding cache does, and trains the head along the path ``train`` takes
(``datasets.make_feature_dataset`` -> ``models.build_sequence_classifier`` ->
``training.fit_classifier``) for one epoch, or ``--steps`` batches of it. Prints the peak
resident memory (``getrusage`` ``ru_maxrss`` and ``/proc/self/status`` ``VmHWM``, which count
mapped file pages too; ``VmHWM`` is restarted after writing, so it is training's own peak) and
exits 1 when either is over ``--limit-gib``. The folder is deleted at the end.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")  # as the seqvision CLI does

import numpy as np  # noqa: E402

GIB = 1 << 30


def memory_status() -> dict[str, int]:
    """``VmHWM``, ``VmRSS``, ``RssAnon``, ``RssFile`` of this process, in bytes (Linux)."""
    status = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
            status[key] = int(value.split()[0]) * 1024
    return status


def report(stage: str) -> dict[str, int]:
    status = memory_status()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    print(f"{stage}: ru_maxrss {peak / GIB:.3f} GiB, " + ", ".join(f"{k} {v / GIB:.3f} GiB"
                                                                   for k, v in status.items()), flush=True)
    return {"ru_maxrss": peak, **status}


def reset_peak() -> bool:
    """Start ``VmHWM`` again from the current resident size (Linux ``clear_refs`` 5); False when refused."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def write_synthetic_cache(folder: Path, clips: int, seq_len: int, dim: int, classes: int, chunk: int = 512,
                          seed: int = 0) -> tuple[Path, np.ndarray, np.ndarray]:
    """``features.npy`` float16 ``[clips, 1, seq_len, dim]`` written chunk by chunk; returns
    ``(its path, masks bool [clips, seq_len], labels int32 [clips])``."""
    rng = np.random.default_rng(seed)
    path = folder / "features.npy"
    shape = (clips, 1, seq_len, dim)
    header = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=shape)  # header + sparse file
    offset = header.offset
    del header
    start = time.perf_counter()
    with open(path, "r+b") as f:
        for begin in range(0, clips, chunk):
            block = rng.standard_normal((min(chunk, clips - begin), *shape[1:]), np.float32).astype(np.float16)
            os.pwrite(f.fileno(), block.tobytes(), offset + begin * block[0].nbytes)
            print(f"\rwriting {path}: {min(begin + chunk, clips)}/{clips} clips", end="", file=sys.stderr)
    print(f"\nwrote {path.stat().st_size / 1e9:.2f} GB in {time.perf_counter() - start:.0f} s", flush=True)
    lengths = rng.integers(seq_len // 2, seq_len + 1, clips)
    masks = np.arange(seq_len)[None, :] < lengths[:, None]
    return path, masks, rng.integers(0, classes, clips).astype(np.int32)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=100_000)
    parser.add_argument("--seq-len", type=int, default=16)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--classes", type=int, default=101)
    parser.add_argument("--batch-size", type=int, default=8, help="as train's default")
    parser.add_argument("--steps", type=int, help="batches to train (default: one whole epoch)")
    parser.add_argument("--limit-gib", type=float, default=2.0)
    parser.add_argument("--tmp", default="/tmp", help="where the temporary cache folder goes")
    args = parser.parse_args()

    import keras

    from seqvision.datasets import make_feature_dataset
    from seqvision.models import build_sequence_classifier
    from seqvision.fitting import fit_classifier, make_strategy

    folder = Path(tempfile.mkdtemp(prefix="seqvision-bench-memory-", dir=args.tmp))
    try:
        path, masks, labels = write_synthetic_cache(folder, args.clips, args.seq_len, args.dim, args.classes)
        before = report("after writing the cache")
        if reset_peak():
            print("VmHWM reset: from here it is the peak of training alone", flush=True)
        features = np.load(path, mmap_mode="r")
        keras.utils.set_random_seed(0)
        train_ds = make_feature_dataset(features, masks, labels, np.arange(args.clips), args.batch_size,
                                        training=True)
        steps = args.steps or -(-args.clips // args.batch_size)
        if args.steps:
            train_ds = train_ds.take(args.steps)
        start = time.perf_counter()
        # The head train builds by default (train: --units 128, --dropout 0.3, --feature-diff).
        fit_classifier(lambda: build_sequence_classifier(args.dim, args.classes, "features", units=128,
                                                         dropout=0.3, feature_diff=True),
                       train_ds, None, folder / "run", 1, 1e-3, 8, make_strategy(), keep="last")
        seconds = time.perf_counter() - start
        print(f"trained {steps} steps of {args.batch_size} clips ({min(steps * args.batch_size, args.clips)} of "
              f"{args.clips} clips, {steps * args.batch_size * args.seq_len * args.dim * 2 / 1e9:.2f} GB read) "
              f"in {seconds:.0f} s", flush=True)
        after = report("after training")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    peak = max(after["ru_maxrss"], after["VmHWM"])
    print(f"peak resident memory {peak / GIB:.3f} GiB (limit {args.limit_gib} GiB; training alone: VmHWM "
          f"{after['VmHWM'] / GIB:.3f} GiB; {before['VmRSS'] / GIB:.3f} GiB resident before training)")
    if peak >= args.limit_gib * GIB:
        print(f"FAIL: peak resident memory over {args.limit_gib} GiB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
