"""Benchmark: the default CNN's training speed on CPU, against the two simple ways it was done before.

Run:  PYTHONPATH=. python bench/bench_train_step.py [--clips 160] [--epochs 6] [--seq-len 12] [--img-size 64]

In one process, on clips of the demo generator (as frame folders; speed does not depend on the pixels):
1. the Lucas-Kanade flow layer's forward time with ``window_mean`` (shifted slices) against the
   same layer with ``average_pool(..., padding="same")`` for the window sums (the implementation
   before 2026-12-04), both as ``tf.function`` graphs, median of 10 calls;
2. ``train_video`` (default video model: flow CNN + bidirectional LSTM, with its checkpoints,
   backups and validation) seconds per epoch with no strategy scope (what ``make_strategy``
   returns when no GPU is visible) against a single-replica ``MirroredStrategy`` (what it
   returned before), each run twice in alternation; the median run is reported. A bare
   ``model.fit`` on the same pipeline shows a smaller gap (1.3x); the checkpointing callbacks and
   validation under a strategy account for the rest.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import ops  # noqa: E402

from seqvision import flow as flow_module  # noqa: E402
from seqvision import training  # noqa: E402
from seqvision.demo import DEMO_CLASSES, make_demo_videos  # noqa: E402
from seqvision.flow import LucasKanadeFlow  # noqa: E402
from seqvision.frames import extract_frames  # noqa: E402


def pooled_window_mean(images, window: int):
    """The baseline: TensorFlow's average pooling with ``same`` padding."""
    return ops.average_pool(images, window, 1, padding="same")


def median_call_seconds(function, argument, calls: int = 10) -> float:
    function(argument)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        function(argument)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def flow_seconds(frames, window_mean) -> float:
    original = flow_module.window_mean
    flow_module.window_mean = window_mean
    try:
        layer = LucasKanadeFlow()
        return median_call_seconds(tf.function(lambda x: layer(x)), frames)
    finally:
        flow_module.window_mean = original


def train_seconds_per_epoch(frames_dir: Path, run_dir: Path, strategy_kind: str, args) -> float:
    """``train_video`` wall time / epochs, under no strategy scope (``plain``) or a single-replica
    ``MirroredStrategy`` (``mirrored``)."""
    original = training.make_strategy
    if strategy_kind == "mirrored":
        training.make_strategy = lambda kind="mirrored": tf.distribute.MirroredStrategy()
    try:
        config = training.VideoTrainConfig(data_dir=str(frames_dir), backbone="cnn", seq_len=args.seq_len,
                                           img_size=args.img_size,
                                           epochs=args.epochs, units=64, seed=0)
        start = time.perf_counter()
        training.train_video(config, run_dir, overwrite=True)
        return (time.perf_counter() - start) / args.epochs
    finally:
        training.make_strategy = original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=160, help="demo clips to train on (a fifth validates)")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seq-len", type=int, default=12)
    parser.add_argument("--img-size", type=int, default=64)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (8, args.seq_len, args.img_size, args.img_size, 3)).astype("float32")
    fast, pooled = flow_seconds(batch, flow_module.window_mean), flow_seconds(batch, pooled_window_mean)
    print(f"flow layer, one batch [8, {args.seq_len}, {args.img_size}, {args.img_size}, 3]: "
          f"window_mean {fast * 1000:.0f} ms, average_pool {pooled * 1000:.0f} ms: {pooled / fast:.1f}x faster")

    with tempfile.TemporaryDirectory() as tmp:
        per_class = -(-args.clips // len(DEMO_CLASSES))
        make_demo_videos(Path(tmp) / "videos", clips_per_class=per_class, groups_per_class=4, seed=0)
        extract_frames(Path(tmp) / "videos", Path(tmp) / "frames", seq_len=args.seq_len, size=args.img_size)
        seconds = {"plain": [], "mirrored": []}
        for attempt in range(2):
            for kind in seconds:
                keras.utils.set_random_seed(0)
                seconds[kind].append(train_seconds_per_epoch(Path(tmp) / "frames", Path(tmp) / f"run-{kind}-{attempt}",
                                                             kind, args))
    plain, mirrored = (statistics.median(seconds[k]) for k in ("plain", "mirrored"))
    print(f"train_video, {per_class * len(DEMO_CLASSES)} clips, {args.epochs} epochs (s per epoch): no strategy "
          f"scope {plain:.1f} ({', '.join(f'{s:.1f}' for s in seconds['plain'])}), single-replica "
          f"MirroredStrategy {mirrored:.1f} ({', '.join(f'{s:.1f}' for s in seconds['mirrored'])}): "
          f"{mirrored / plain:.1f}x faster")


if __name__ == "__main__":
    main()
