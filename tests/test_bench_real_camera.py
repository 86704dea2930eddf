"""The real-footage camera-move benchmark (bench/generators/real_camera.py) labels what the clip shows."""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "bench"))
from generators import real_camera  # noqa: E402


def _textured_still(frames: int = 24, size=(320, 240)) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8), (0, 0), 2)
    return [image.copy() for _ in range(frames)]


def _shift_and_sharpness(first: np.ndarray, last: np.ndarray) -> tuple[float, float]:
    """Scene motion from ``first`` to ``last``: horizontal shift (px, + right) and the ratio of the mean
    gradient magnitude (a magnified texture is smoother: below 1 when the scene grows)."""
    grey = [np.float32(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY)) for f in (first, last)]
    (dx, _), _ = cv2.phaseCorrelate(grey[0], grey[1])
    gradient = [np.abs(cv2.Sobel(g, cv2.CV_32F, 1, 0)).mean() + np.abs(cv2.Sobel(g, cv2.CV_32F, 0, 1)).mean()
                for g in grey]
    return dx, gradient[1] / gradient[0]


@pytest.mark.parametrize("label", real_camera.LABELS)
def test_camera_move_seen_in_the_clip_is_the_label(label):
    frames = _textured_still()
    rng = np.random.default_rng(3)
    forward_move = "pan_right" if label.startswith("pan") else "zoom_in"
    path = real_camera.camera_path(rng, forward_move, len(frames))
    if label != forward_move:
        path = path[::-1]
    clip = real_camera.film(frames, path)
    assert clip[0].shape == (real_camera.OUT_SIZE[1], real_camera.OUT_SIZE[0], 3)
    dx, sharpness = _shift_and_sharpness(clip[0], clip[-1])
    if label == "pan_right":  # the view travels right: the scene moves left in the picture
        assert dx < -5
    elif label == "pan_left":
        assert dx > 5
    elif label == "zoom_in":  # the scene grows: the crop shrinks
        assert path[-1, 2] < path[0, 2] - 0.25 and sharpness < 0.8
    else:
        assert path[-1, 2] > path[0, 2] + 0.25 and sharpness > 1.25
