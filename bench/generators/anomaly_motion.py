"""Synthetic anomaly videos: the same kind of scenes, normal motion vs motions absent from training.

What it makes
-------------
Each video shows a smooth colour background (a random low-frequency texture; one per "scene",
like one surveillance camera, shared by normal and anomalous videos) and one object (a bar or a
wedge, its own colour, size and orientation per video). Only how the object moves differs:

* ``smooth``   (normal)    -- glides along a straight line at 0.5-1.5 px per frame, bouncing off
  the borders, keeping its orientation: slow, steady motion.
* ``erratic``  (anomalous) -- jumps to a new random place every 1-3 frames.
* ``spinning`` (anomalous) -- glides like a normal object but spins 20-40 degrees per frame.

Every frame is exposed over the whole frame interval (the average of 4 sub-frame renders), so
fast motion blurs as it does in a camera and slow motion stays sharp.

Scenes, objects and their sizes are drawn the same way for all three kinds, so a single frame
does not tell them apart; a detector fitted on ``smooth`` videos only has never seen
the anomalous motions.

Layout: ``out_dir/<Category>/<kind>_NN.avi`` (MJPG), with ``Normal`` for smooth videos and
``Erratic`` / ``Spinning`` for the others (the clip index makes ``Normal…`` y=0).

Only numpy and cv2 are used. Usage::

    python bench/generators/anomaly_motion.py OUT_DIR --normal 14 --anomalous 4 [--frames 48 --size 96]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

KINDS = {"smooth": "Normal", "erratic": "Erratic", "spinning": "Spinning"}
EXPOSURE_STEPS = 4  # sub-frame renders averaged per frame: a shutter open for the whole frame interval


def _background(rng, size: int) -> np.ndarray:
    coarse = rng.integers(30, 226, (4, 4, 3)).astype(np.float32)
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.float32)


def _bounce(path: np.ndarray, low: float, high: float) -> np.ndarray:
    span = high - low  # fold a straight path back into [low, high], as a ball off the walls
    folded = np.mod(path - low, 2 * span)
    return low + np.where(folded > span, 2 * span - folded, folded)


def _trajectory(rng, kind: str, num_frames: int, size: int, radius: float) -> np.ndarray:
    """float ``[num_frames, 3]``: object centre x, y (pixels) and angle (radians) per frame."""
    low, high = radius, size - radius
    start = rng.uniform(low, high, 2)
    heading = rng.uniform(0, 2 * np.pi)
    steps = np.arange(num_frames)[:, None]
    glide = _bounce(start + rng.uniform(0.5, 1.5) * np.array([np.cos(heading), np.sin(heading)]) * steps, low, high)
    angle = np.full(num_frames, rng.uniform(0, np.pi))
    if kind == "smooth":
        return np.column_stack([glide, angle])
    if kind == "erratic":
        positions, current, hold = [], start, 0
        for _ in range(num_frames):
            if hold == 0:
                current, hold = rng.uniform(low, high, 2), int(rng.integers(1, 4))
            positions.append(current)
            hold -= 1
        return np.column_stack([np.array(positions), angle])
    if kind == "spinning":
        spin = rng.choice([-1, 1]) * rng.uniform(np.radians(20), np.radians(40))
        return np.column_stack([glide, angle + spin * steps[:, 0]])
    raise ValueError(f"unknown motion {kind!r}; choose one of {', '.join(KINDS)}")


def _draw(frame: np.ndarray, shape: np.ndarray, x: float, y: float, angle: float, colour) -> None:
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = shape @ rotation.T + (x, y)
    cv2.fillPoly(frame, [np.round(points * 16).astype(np.int32)], colour, lineType=cv2.LINE_AA, shift=4)


def render_motion_video(kind: str, seed: int, num_frames: int = 48, size: int = 96, scene: int = 0) -> np.ndarray:
    """uint8 ``[num_frames, size, size, 3]`` BGR frames of one video of motion ``kind`` in ``scene``
    (the background: one per scene number, like one surveillance camera)."""
    background = _background(np.random.default_rng([scene, 7]), size)
    rng = np.random.default_rng(seed)
    length = rng.uniform(size / 5, size / 3)
    width = length / rng.uniform(1.8, 3.0)
    shape = (np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * (length / 2, width / 2) if rng.random() < 0.5
             else np.array([[-1, -0.6], [1, 0], [-1, 0.6]]) * (length / 2, length / 2))
    colour = tuple(float(c) for c in rng.integers(0, 256, 3))
    path = _trajectory(rng, kind, num_frames + 1, size, length / 2)
    frames = []
    for before, now in zip(path[:-1], path[1:]):
        exposure = np.zeros_like(background)
        for t in (np.arange(EXPOSURE_STEPS) + 1) / EXPOSURE_STEPS:
            frame = background.copy()
            _draw(frame, shape, *(before + t * (now - before)), colour)
            exposure += frame
        frames.append(np.clip(exposure / EXPOSURE_STEPS, 0, 255).astype(np.uint8))
    return np.stack(frames)


def write_motion_video(path: str | Path, kind: str, seed: int, num_frames: int = 48, size: int = 96,
                       fps: float = 25.0, scene: int = 0) -> Path:
    """Write one video (MJPG ``.avi``) of motion ``kind``; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (size, size))
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write MJPG to {path}")
    for frame in render_motion_video(kind, seed, num_frames, size, scene):
        writer.write(frame)
    writer.release()
    return path


def make_dataset(out_dir: str | Path, normal: int = 14, anomalous: int = 4, num_frames: int = 48, size: int = 96,
                 scenes: int = 4, seed: int = 0) -> dict[str, list[Path]]:
    """``normal`` smooth videos and ``anomalous`` of each anomalous kind under ``out_dir/<Category>/``,
    video ``i`` of every kind in scene ``i % scenes``.

    Returns ``{kind: [paths]}``; video ``i`` of a kind uses seed ``seed * 1000 + 100 * k + i``."""
    out_dir = Path(out_dir)
    made = {}
    for k, (kind, category) in enumerate(KINDS.items()):
        count = normal if kind == "smooth" else anomalous
        made[kind] = [write_motion_video(out_dir / category / f"{kind}_{i:02d}.avi", kind, seed * 1000 + 100 * k + i,
                                         num_frames, size, scene=i % scenes) for i in range(count)]
    return made


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--normal", type=int, default=14)
    parser.add_argument("--anomalous", type=int, default=4)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--scenes", type=int, default=4, help="backgrounds (cameras) shared by all kinds")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    videos = make_dataset(args.out_dir, args.normal, args.anomalous, args.frames, args.size, args.scenes, args.seed)
    print(", ".join(f"{kind}: {len(paths)}" for kind, paths in videos.items()), "->", args.out_dir)
