"""Which detector should ``seqvision anomaly fit`` use by default? Test ROC-AUC on synthetic embedding sets.

Each set has normal train/val/test clips and anomalous val/test clips ``[N, 128]``; every detector
runs with its defaults (``DEFAULT_SETTINGS``), fitted on normal train rows only. Prints a Markdown table.

    nice -n 10 python bench/bench_anomaly_detectors.py [--seeds 0 1]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from tests.test_anomaly import write_embedding_dir  # noqa: E402  (the embed folder layout)

DIM = 128
SIZES = {"train": (600, 0), "val": (150, 40), "test": (300, 100)}


def off_manifold(rng, n_normal, n_anomalous):
    """Normal: an 8-dimensional linear manifold + noise; anomalies pushed off it."""
    basis = np.random.default_rng(100).normal(size=(8, DIM))
    x = rng.normal(size=(n_normal + n_anomalous, 8)) @ basis + 0.3 * rng.normal(size=(n_normal + n_anomalous, DIM))
    push = rng.normal(size=(n_anomalous, DIM))
    push -= push @ np.linalg.pinv(basis) @ basis
    x[n_normal:] += 6 * push / np.linalg.norm(push, axis=1, keepdims=True)
    return x


def between_scenes(rng, n_normal, n_anomalous):
    """Normal: 6 tight scene clusters; anomalies: halfway between two scenes (inside the overall spread)."""
    centres = np.random.default_rng(101).normal(size=(6, DIM)) * 2
    scene = rng.integers(0, 6, n_normal + n_anomalous)
    x = centres[scene] + 0.5 * rng.normal(size=(len(scene), DIM))
    other = (scene[n_normal:] + rng.integers(1, 6, n_anomalous)) % 6
    x[n_normal:] = (centres[scene[n_normal:]] + centres[other]) / 2 + 0.5 * rng.normal(size=(n_anomalous, DIM))
    return x


def motion_in_small_dims(rng, n_normal, n_anomalous):
    """Mean+diff-like: appearance half varies a lot across scenes; anomalies move more (diff half +2 std in 8 dims)."""
    centres = np.random.default_rng(102).normal(size=(10, DIM // 2)) * 3
    appearance = centres[rng.integers(0, 10, n_normal + n_anomalous)] + rng.normal(size=(n_normal + n_anomalous,
                                                                                           DIM // 2))
    motion = np.abs(rng.normal(size=(n_normal + n_anomalous, DIM // 2))) * 0.2
    motion[n_normal:, :8] += 0.4
    return np.concatenate([appearance, motion], axis=1)


SETS = {"off-manifold": off_manifold, "between-scenes": between_scenes, "motion-in-small-dims": motion_in_small_dims}


def make_set(root: Path, generate, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    splits = {}
    for name, (n_normal, n_anomalous) in SIZES.items():
        y = np.r_[np.zeros(n_normal, int), np.ones(n_anomalous, int)]
        categories = ["Normal"] * n_normal + ["Anomaly"] * n_anomalous
        paths = [f"{c}/{name}_v{i // 10}.mp4" for i, c in enumerate(categories)]
        splits[name] = (generate(rng, n_normal, n_anomalous), y, categories, paths)
    return write_embedding_dir(root, splits)


def main() -> None:
    from seqvision.anomaly import DETECTORS, fit_detector, save_detector, score_embedding_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    table = {}
    with tempfile.TemporaryDirectory() as tmp:
        for set_name, generate in SETS.items():
            for seed in args.seeds:
                emb = make_set(Path(tmp) / f"{set_name}-{seed}", generate, seed)
                for kind in sorted(DETECTORS):
                    start = time.perf_counter()
                    det = save_detector(fit_detector(emb, kind), Path(tmp) / f"det-{set_name}-{seed}-{kind}")
                    test = score_embedding_dir(det, emb, splits=("test",), plots=False)["test"]
                    table.setdefault((set_name, kind), []).append(
                        (test["roc_auc"], test["accuracy_normal"], test["accuracy_anomalous"],
                         time.perf_counter() - start))
    print(f"| set | detector | test ROC-AUC (mean over seeds {args.seeds}) | acc. normal | acc. anomalous | fit+score s |")
    print("|---|---|---|---|---|---|")
    for (set_name, kind), runs in table.items():
        auc, acc_n, acc_a, seconds = np.mean(runs, axis=0)
        print(f"| {set_name} | {kind} | {auc:.3f} | {acc_n:.3f} | {acc_a:.3f} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
