"""Video files for the synthetic generators: which codecs this OpenCV build writes and reads back,
and writing a clip atomically. Shared plumbing only; each generator's content is its own."""
from __future__ import annotations

import functools
import os
import tempfile

import cv2
import numpy as np


@functools.lru_cache(maxsize=None)
def readable_codecs(codecs: tuple) -> list:
    """The ``(fourcc, ext)`` pairs of ``codecs`` whose tiny probe clip cv2 writes and reads back
    whole here (``ext`` with or without its dot); checked once per process."""
    usable = []
    with tempfile.TemporaryDirectory() as folder:
        for fourcc, ext in codecs:
            path = os.path.join(folder, f"probe_{fourcc}.{ext.lstrip('.')}")
            try:
                writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fourcc), 15.0, (64, 48))
                if not writer.isOpened():
                    continue
                for i in range(5):
                    writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
                writer.release()
                cap = cv2.VideoCapture(path)
                count = 0
                while True:
                    ok, frame = cap.read()
                    if not ok:
                        break
                    count += frame.shape[:2] == (48, 64)
                cap.release()
                if count == 5:
                    usable.append((fourcc, ext))
            except cv2.error:
                continue
    if not usable:
        raise RuntimeError(f"cv2 cannot write a readable video with any of {[c for c, _ in codecs]} here")
    return usable


def write_video_atomic(path: str, frames, fps: float, fourcc: str) -> None:
    """Write BGR ``frames`` to ``path`` under a temporary name in the same folder (keeping the
    extension, which picks the container), then ``os.replace``; nothing is left on failure."""
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".tmp_{os.getpid()}_{name}")
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*fourcc), float(fps), (width, height))
    try:
        if not writer.isOpened():
            raise RuntimeError(f"cannot open a VideoWriter for {path} ({fourcc})")
        for frame in frames:
            writer.write(frame)
        writer.release()
        os.replace(tmp, path)
    except BaseException:
        writer.release()
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def run_cli(make_dataset, description: str) -> dict:
    """``python GENERATOR.py OUT_DIR [--seed S] [--clips-per-class N] [--groups-per-class G]
    [--test-groups-per-class K]``: calls ``make_dataset`` and prints its summary as JSON."""
    import argparse
    import json
    import time

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clips-per-class", type=int, default=30)
    ap.add_argument("--groups-per-class", type=int, default=6)
    ap.add_argument("--test-groups-per-class", type=int, default=2)
    args = ap.parse_args()
    start = time.time()
    summary = make_dataset(args.out_dir, seed=args.seed, clips_per_class=args.clips_per_class,
                           groups_per_class=args.groups_per_class, test_groups_per_class=args.test_groups_per_class)
    summary["seconds"] = round(time.time() - start, 1)
    print(json.dumps(summary))
    return summary
