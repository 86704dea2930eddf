"""Shared fixtures: synthetic videos whose frames encode their index, real files, a reference decode."""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")  # as the CLI does: see seqvision/cli.py

import cv2
import numpy as np
import pytest

SHARED_DATA = Path(__file__).parents[1] / ".." / "shared" / "data"
CODE_BITS = 10  # frame index written as 10 black/white 8x8 blocks along the top


def synthetic_frame(index: int, size: tuple[int, int] = (96, 64)) -> np.ndarray:
    """BGR frame ``[H, W, 3]``: index bits as blocks on top, a bar moving right, a colour ramp."""
    width, height = size
    frame = np.zeros((height, width, 3), np.uint8)
    frame[16:, :, 0] = np.linspace(0, 200, width, dtype=np.uint8)[None, :]
    frame[16:, :, 2] = (index * 37) % 256
    x = (index * 3) % (width - 4)
    frame[16:, x:x + 4] = 255
    for bit in range(CODE_BITS):
        if index >> bit & 1:
            frame[:8, bit * 8:(bit + 1) * 8] = 255
    return frame


def decode_index(frame_rgb: np.ndarray) -> int:
    """The index a synthetic frame carries (robust to lossy codecs)."""
    return sum(1 << bit for bit in range(CODE_BITS) if frame_rgb[1:7, bit * 8 + 1:bit * 8 + 7].mean() > 128)


def write_video(path: str | Path, num_frames: int, fourcc: str = "MJPG", fps: float = 25.0,
                size: tuple[int, int] = (96, 64)) -> Path:
    """Write ``num_frames`` synthetic frames with ``cv2.VideoWriter``; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} to {path.suffix}"
    for i in range(num_frames):
        writer.write(synthetic_frame(i, size))
    writer.release()
    return path


def sequential_decode(path: str | Path) -> list[np.ndarray]:
    """Reference: every frame of a plain ``while cap.read()`` decode, as RGB."""
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real videos from other projects), or skip."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test videos not found at {SHARED_DATA.resolve()}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def reference_decode():
    """``sequential_decode`` cached per path for the session (real files are decoded once)."""
    cache: dict[str, list[np.ndarray]] = {}

    def decode(path):
        key = str(Path(path).resolve())
        if key not in cache:
            cache[key] = sequential_decode(path)
        return cache[key]
    return decode


@pytest.fixture
def make_video(tmp_path):
    """``make_video(name, num_frames, fourcc="MJPG", fps=25.0, size=(96, 64))`` under tmp_path."""
    def make(name: str, num_frames: int, fourcc: str = "MJPG", fps: float = 25.0,
             size: tuple[int, int] = (96, 64)) -> Path:
        return write_video(tmp_path / name, num_frames, fourcc, fps, size)
    return make
