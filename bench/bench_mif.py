"""``mif`` frames/s against the notebook approach (one ``model.predict`` per frame), same process.

Real videos from ../shared/data, a MobileNetV2 classifier (random weights: speed only; 1000
classes, input scaled to -1..1). Both paths decode every frame of the same videos and keep the
frame with the highest probability of class 0; the chosen frames must agree.

    nice -n 10 python bench/bench_mif.py [--size 224] [--batch-size 64]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
VIDEOS = ("mmaction2/test.mp4", "st-gcn/skateboarding.mp4")


def notebook_mif(model, path: Path, size: int) -> tuple[int, int]:
    """The seed notebooks' loop: read a frame, scale it, ``model.predict`` it alone. ``(best index, frames)``."""
    cap = cv2.VideoCapture(str(path))
    best, best_index, index = -1.0, -1, 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        rgb = cv2.resize(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), (size, size), interpolation=cv2.INTER_AREA)
        probs = model.predict(rgb[None].astype(np.float32) / 127.5 - 1.0, verbose=0)[0]
        if probs[0] > best:
            best, best_index = float(probs[0]), index
        index += 1
    cap.release()
    return best_index, index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    paths = [SHARED / v for v in VIDEOS]
    if not all(p.exists() for p in paths):
        sys.exit(f"real videos not found under {SHARED.resolve()}")
    import keras

    from seqvision.mif import load_image_classifier, video_mif

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(input_shape=(args.size, args.size, 3), weights=None)
    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp) / "classifier.keras")
        classifier = load_image_classifier(Path(tmp) / "classifier.keras")
    warm = np.zeros((1, args.size, args.size, 3), np.float32)
    model.predict(warm, verbose=0)
    classifier.predict(np.zeros((args.batch_size, args.size, args.size, 3), np.float32))

    start = time.perf_counter()
    batched = [video_mif(classifier, p, "bench", 0, args.size, "-1..1", batch_size=args.batch_size) for p in paths]
    batched_s = time.perf_counter() - start
    frames = sum(len(r.frame_indices) for r in batched)

    start = time.perf_counter()
    naive = [notebook_mif(model, p, args.size) for p in paths]
    naive_s = time.perf_counter() - start

    assert sum(n for _, n in naive) == frames, "the two paths decoded different frame counts"
    agree = sum(r.mif_idx == i for r, (i, _) in zip(batched, naive))
    print(f"videos: {', '.join(VIDEOS)}; {frames} frames at {args.size} px, MobileNetV2 (random weights), "
          f"{os.cpu_count()} CPUs")
    print(f"mif (batched {args.batch_size}, one decode pass): {frames / batched_s:7.1f} frames/s ({batched_s:.1f} s)")
    print(f"one model.predict per frame (notebook):  {frames / naive_s:7.1f} frames/s ({naive_s:.1f} s)")
    print(f"speed-up: {naive_s / batched_s:.1f}x; same chosen frame in {agree}/{len(paths)} videos")


if __name__ == "__main__":
    main()
