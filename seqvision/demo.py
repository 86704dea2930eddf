"""Built-in synthetic dataset where only frame order separates the classes, and the demo.

Classes come in time-reversed pairs (``move_left`` / ``move_right``, ``grow`` /
``shrink``): each clip of one class is the reverse of a clip the other class could
produce, so the *set* of frames is identically distributed across a pair and a model
that ignores order cannot beat chance on it. Clips vary in length, frame rate,
resolution, codec and container; names follow UCF101 (``v_<label>_gNN_cNN``) and clips
of one group share their appearance, as UCF101 groups do.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from seqvision.errors import SeqvisionError
from seqvision.io import atomic_write_json

log = logging.getLogger(__name__)

DEMO_CLASSES = ("move_left", "move_right", "grow", "shrink")
# (fourcc, extension): codecs every opencv-python(-headless) wheel can write.
DEMO_CODECS = (("mp4v", ".mp4"), ("MJPG", ".avi"), ("XVID", ".avi"), ("FFV1", ".mkv"))


@dataclass(frozen=True)
class Scene:
    """Appearance shared by the clips of one group."""

    background: tuple[int, int, int]
    colour: tuple[int, int, int]
    shape: str  # "circle" | "square"
    noise: float


def _random_scene(rng: np.random.Generator) -> Scene:
    background = tuple(int(v) for v in rng.integers(0, 120, 3))
    colour = tuple(int(v) for v in rng.integers(140, 256, 3))
    return Scene(background, colour, str(rng.choice(["circle", "square"])), float(rng.uniform(0, 12)))


def _trajectory(rng: np.random.Generator, num_frames: int, low: float, high: float) -> np.ndarray:
    """Values going from ``low`` to ``high`` during a random part of the clip, flat elsewhere."""
    span = int(rng.integers(max(2, num_frames // 2), num_frames + 1))
    begin = int(rng.integers(0, num_frames - span + 1))
    t = np.clip((np.arange(num_frames) - begin) / max(span - 1, 1), 0.0, 1.0)
    return low + (high - low) * t


def render_clip(label: str, scene: Scene, num_frames: int, width: int, height: int,
                rng: np.random.Generator) -> np.ndarray:
    """Frames ``uint8 [T, height, width, 3]`` BGR of one clip of ``label``."""
    side = min(width, height)
    radius_small, radius_large = 0.08 * side, 0.3 * side
    if label in ("move_left", "move_right"):
        radius = np.full(num_frames, rng.uniform(0.1, 0.16) * side)
        lo, hi = rng.uniform(0.12, 0.35), rng.uniform(0.65, 0.88)
        x = _trajectory(rng, num_frames, lo * width, hi * width)
        if label == "move_left":
            x = x[::-1]
        y = np.full(num_frames, rng.uniform(0.3, 0.7) * height)
    elif label in ("grow", "shrink"):
        radius = _trajectory(rng, num_frames, radius_small, radius_large * rng.uniform(0.8, 1.0))
        if label == "shrink":
            radius = radius[::-1]
        x = np.full(num_frames, rng.uniform(0.4, 0.6) * width)
        y = np.full(num_frames, rng.uniform(0.4, 0.6) * height)
    else:
        raise SeqvisionError(f"unknown demo class {label!r}; choose one of {DEMO_CLASSES}")
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for i in range(num_frames):
        frame = np.empty((height, width, 3), np.float32)
        frame[:] = scene.background
        frame += rng.normal(0, scene.noise, frame.shape)
        frame = np.clip(frame, 0, 255).astype(np.uint8)
        centre, r = (int(round(x[i])), int(round(y[i]))), max(2, int(round(radius[i])))
        if scene.shape == "circle":
            cv2.circle(frame, centre, r, scene.colour, -1, cv2.LINE_AA)
        else:
            cv2.rectangle(frame, (centre[0] - r, centre[1] - r), (centre[0] + r, centre[1] + r), scene.colour, -1)
        frames[i] = frame
    return frames


def write_video(path: Path, frames: np.ndarray, fps: float, fourcc: str) -> None:
    """Write BGR frames ``[T, H, W, 3]``; the file appears only when complete."""
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {fourcc} video to {tmp}")
    for frame in frames:
        writer.write(frame)
    writer.release()
    tmp.replace(path)


def make_demo_videos(out_dir: str | Path, clips_per_class: int = 40, groups_per_class: int = 8,
                     first_group: int = 1, seed: int = 0, classes: tuple[str, ...] = DEMO_CLASSES) -> Path:
    """Write ``out_dir/<label>/v_<label>_gNN_cNN.<ext>`` videos; returns ``out_dir``.

    Lengths are 20–60 frames at 8–30 fps, sizes 64–160 px; a finished folder
    (``dataset.json`` present with the same settings) is reused.
    """
    out_dir = Path(out_dir)
    settings = {"clips_per_class": clips_per_class, "groups_per_class": groups_per_class,
                "first_group": first_group, "seed": seed, "classes": list(classes)}
    marker = out_dir / "dataset.json"
    if marker.exists() and _read(marker) == settings:
        return out_dir
    marker.unlink(missing_ok=True)
    rng = np.random.default_rng(seed)
    scenes = [_random_scene(rng) for _ in range(groups_per_class)]
    for label in classes:
        (out_dir / label).mkdir(parents=True, exist_ok=True)
        for old in (out_dir / label).glob(f"v_{label}_g*"):  # videos of other settings, or left by a killed run
            old.unlink()
        for c in range(clips_per_class):
            group = c % groups_per_class
            fourcc, ext = DEMO_CODECS[int(rng.integers(len(DEMO_CODECS)))]
            width, height = int(rng.integers(64, 161)) // 2 * 2, int(rng.integers(64, 129)) // 2 * 2
            frames = render_clip(label, scenes[group], int(rng.integers(20, 61)), width, height, rng)
            name = f"v_{label}_g{first_group + group:02d}_c{c // groups_per_class + 1:02d}{ext}"
            write_video(out_dir / label / name, frames, float(rng.choice([8, 12, 15, 24, 25, 30])), fourcc)
    atomic_write_json(marker, settings)
    return out_dir


def _read(path: Path):
    from seqvision.io import read_json
    return read_json(path)


def run_demo(out_dir: str | Path, epochs: int = 20, seed: int = 0, compare_orderless: bool = False,
             jobs: int | None = None) -> dict:
    """Make the synthetic data, extract frames, train, evaluate on held-out groups.

    Returns ``{"accuracy": …, "run_dir": …, "plots": […]}`` (plus ``orderless_accuracy``
    and ``orderless_direction_pair_accuracy`` with ``compare_orderless``).
    """
    from seqvision.frames import extract_frames
    from seqvision.run import load_run
    from seqvision.training import VideoTrainConfig, train_video

    out_dir = Path(out_dir)
    log.info("step 1/4: writing synthetic videos under %s", out_dir / "videos")
    make_demo_videos(out_dir / "videos" / "train", clips_per_class=40, groups_per_class=20, first_group=1, seed=seed)
    make_demo_videos(out_dir / "videos" / "test", clips_per_class=16, groups_per_class=8, first_group=21,
                     seed=seed + 1000)
    log.info("step 2/4: extracting 12 frames per clip")
    for split in ("train", "test"):
        extract_frames(out_dir / "videos" / split, out_dir / "frames" / split, seq_len=12, size=64, jobs=jobs)
    result = {}
    heads = ("lstm", "mean") if compare_orderless else ("lstm",)
    for head in heads:
        run_dir = out_dir / ("run" if head == "lstm" else "run_orderless")
        log.info("step 3/4: training the CNN-%s model into %s", head.upper(), run_dir)
        config = VideoTrainConfig(data_dir=str(out_dir / "frames" / "train"), backbone="cnn", seq_len=12,
                                  img_size=64, epochs=epochs, batch_size=8, lr=2e-3, seed=seed, units=64, head=head,
                                  patience=5)
        train_video(config, run_dir, overwrite=True)  # the demo's own run, redone on each call
        log.info("step 4/4: evaluating on held-out groups")
        metrics = load_run(run_dir).evaluate(out_dir / "frames" / "test")
        if head == "lstm":
            result.update(accuracy=metrics["accuracy"], mean_class_accuracy=metrics["mean_class_accuracy"],
                          run_dir=str(run_dir),
                          plots=[str(run_dir / "training_curves.png"), metrics["files"]["confusion_png"]])
        else:
            result["orderless_accuracy"] = metrics["accuracy"]
            cm = np.array(metrics["confusion_matrix"])
            pairs = [[metrics["labels"].index(a), metrics["labels"].index(b)]
                     for a, b in (("move_left", "move_right"), ("grow", "shrink"))]
            # Accuracy within each time-reversed pair: the share of a pair's clips given the right one of the two.
            within = [cm[i, i] / max(1, cm[i, i] + cm[i, j]) for p in pairs for i, j in (p, p[::-1])]
            result["orderless_direction_pair_accuracy"] = float(np.mean(within))
    return result
