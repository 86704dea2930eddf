"""Synthetic 2D pose sequences in PYSKL's pickle format, for tests, benchmarks and the demo.

Classes come in time-reversed pairs that move one body part between the same two poses
in opposite directions (raise / lower an arm, squat down / stand up, bend forward /
straighten up). Both poses of a sequence are drawn from one distribution for both classes
of a pair, and the timing of the movement too, so a sequence of one class is the other
class's movement played backwards: only the direction of the change tells them apart.
The movement usually ends within the last few frames of a 30-150 frame sequence, so a
model that reads only the first frames cannot see it.

Each annotation holds what PYSKL's ``*_2d.pkl`` files hold: ``keypoint`` float32
``[M, T, 17, 2]`` in pixels (COCO-17 order), ``keypoint_score`` float32 ``[M, T, 17]``,
``frame_dir``, ``label``, ``total_frames``, ``img_shape`` and ``original_shape`` ``(h, w)``.
M is 1 or 2 (a fidgeting bystander, listed first about half the time, sometimes in only
part of the frames). Missing joints are ``(0, 0)`` with score 0, as pose estimators leave them.
"""
from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path

import numpy as np

from seqvision.errors import SeqvisionError

CLASS_NAMES = ("raise_arm", "lower_arm", "squat_down", "stand_up", "bend_forward", "straighten_up")

# Per body part: the lower pose of a movement and how far above it the upper pose lies.
# Arm abduction in degrees (0 = hanging, 180 = straight up), squat depth 0..1, bend in degrees.
_POSE_RANGES = {"arm": ((0.0, 80.0), (70.0, 100.0)), "squat": ((0.0, 0.3), (0.45, 0.65)),
                "bend": ((0.0, 20.0), (35.0, 55.0))}
# Class -> (body part, True when it moves from the lower to the upper pose).
_MOVEMENTS = {
    "raise_arm": ("arm", True), "lower_arm": ("arm", False),
    "squat_down": ("squat", True), "stand_up": ("squat", False),
    "bend_forward": ("bend", True), "straighten_up": ("bend", False),
}
_IMAGE_SHAPES = ((240, 320), (360, 480), (480, 640), (320, 570), (720, 1280), (1080, 1920))


def make_synthetic_skeleton_dataset(
    path: str | Path,
    num_per_class: int = 80,
    seed: int = 0,
    num_classes: int = 6,
    test_fraction: float = 0.3,
    min_frames: int = 30,
    max_frames: int = 150,
    missing_rate: float = 0.05,
    two_person_rate: float = 0.4,
    label_names_path: str | Path | None = None,
) -> list[str]:
    """Write a PYSKL-format pickle with splits ``train1`` / ``test1``; return the class names.

    ``num_per_class`` sequences per class, ``test_fraction`` of them in ``test1``; label i is
    ``CLASS_NAMES[i]``. ``label_names_path`` (optional) receives the class names, one per line.
    """
    if num_classes not in (2, 4, 6):
        raise SeqvisionError(f"num_classes must be 2, 4 or 6 (pairs of classes), got {num_classes}")
    rng = np.random.default_rng(seed)
    names = list(CLASS_NAMES[:num_classes])
    annotations, split = [], {"train1": [], "test1": []}
    num_test = int(round(num_per_class * test_fraction))
    for label, name in enumerate(names):
        for i in range(num_per_class):
            ann = synthetic_annotation(rng, label, name, f"{name}_{i:05d}", min_frames, max_frames,
                                       missing_rate, two_person_rate)
            annotations.append(ann)
            split["test1" if i < num_test else "train1"].append(ann["frame_dir"])
    _atomic_write_bytes(Path(path), pickle.dumps({"split": split, "annotations": annotations}, protocol=4))
    if label_names_path is not None:
        _atomic_write_bytes(Path(label_names_path), ("\n".join(names) + "\n").encode())
    return names


def synthetic_annotation(rng: np.random.Generator, label: int, name: str, frame_dir: str,
                         min_frames: int = 30, max_frames: int = 150, missing_rate: float = 0.05,
                         two_person_rate: float = 0.4) -> dict:
    """One PYSKL annotation dict of class ``name`` (see the module docstring for its keys)."""
    length = int(rng.integers(min_frames, max_frames + 1))
    h, w = _IMAGE_SHAPES[rng.integers(len(_IMAGE_SHAPES))]
    torso_px = rng.uniform(0.1, 0.22) * h
    ground = (rng.uniform(0.3, 0.7) * w, rng.uniform(0.75, 0.95) * h)
    people = [_render(_actor_dofs(rng, name, length), torso_px, ground)]
    scores = [_joint_scores(rng, length, rng.uniform(0.7, 0.95))]
    if rng.random() < two_person_rate:
        x = np.clip(ground[0] + rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 0.35) * w, 0.1 * w, 0.9 * w)
        dofs, size = _idle_dofs(rng, length), torso_px * rng.uniform(0.6, 1.1)
        people.append(_render(dofs, size, (x, rng.uniform(0.7, 0.9) * h)))
        scores.append(_joint_scores(rng, length, rng.uniform(0.35, 0.65)))
        if rng.random() < 0.4:  # the bystander walks in or out of the picture
            visible = np.zeros(length, bool)
            cut = int(rng.integers(length // 4, 3 * length // 4))
            visible[slice(None, cut) if rng.random() < 0.5 else slice(cut, None)] = True
            people[1][~visible] = 0.0
            scores[1][~visible] = 0.0
        if rng.random() < 0.5:  # pose estimators do not list the actor first
            people.reverse()
            scores.reverse()
    keypoint = np.stack(people)
    keypoint += rng.normal(0.0, 0.015 * torso_px, keypoint.shape)
    score = np.stack(scores)
    missing = (rng.random(score.shape) < missing_rate) | (score == 0)
    keypoint[missing] = 0.0
    score[missing] = 0.0
    return {"frame_dir": frame_dir, "label": int(label), "img_shape": (h, w), "original_shape": (h, w),
            "total_frames": length, "keypoint": keypoint.astype(np.float32),
            "keypoint_score": score.astype(np.float32)}


def _joint_scores(rng: np.random.Generator, length: int, level: float) -> np.ndarray:
    """Detector confidences ``[T, 17]`` scattered around ``level``."""
    return np.clip(level + rng.normal(0.0, 0.1, (length, 17)), 0.02, 1.0)


def _idle_dofs(rng: np.random.Generator, length: int) -> dict[str, np.ndarray]:
    """Per-frame degrees of freedom ``[T]`` of a person fidgeting around a random pose."""
    t = np.arange(length, dtype=np.float64)

    def drift(low, high, amplitude):
        period = rng.uniform(20, 60)
        return rng.uniform(low, high) + amplitude * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))

    return {
        "arm_left": drift(10.0, 100.0, 6.0), "arm_right": drift(10.0, 100.0, 6.0),
        "elbow_left": drift(0.0, 30.0, 5.0), "elbow_right": drift(0.0, 30.0, 5.0),
        "squat": drift(0.0, 0.3, 0.03), "bend": drift(0.0, 20.0, 3.0),
        "sway": drift(-0.1, 0.1, 0.05),
    }


def _actor_dofs(rng: np.random.Generator, name: str, length: int) -> dict[str, np.ndarray]:
    """Idle degrees of freedom, with the class's body part moving once between two poses.

    The part fidgets around the start pose, moves smoothly (8-25 frames), then fidgets
    around the end pose; in 80% of sequences the movement ends 0-6 frames before the end.
    """
    dofs = _idle_dofs(rng, length)
    part, upward = _MOVEMENTS[name]
    (low_min, low_max), (gap_min, gap_max) = _POSE_RANGES[part]
    low = rng.uniform(low_min, low_max)
    poses = (low, low + rng.uniform(gap_min, gap_max))
    begin, end = poses if upward else poses[::-1]
    key = {"arm": str(rng.choice(["arm_left", "arm_right"])), "squat": "squat", "bend": "bend"}[part]
    duration = int(min(rng.integers(8, 26), max(4, length // 3)))
    if rng.random() < 0.8:
        start = max(0, length - int(rng.integers(0, 7)) - duration)
    else:
        start = int(rng.integers(0, length - duration + 1))
    ramp = np.clip((np.arange(length) - start) / duration, 0.0, 1.0)
    ramp = 0.5 - 0.5 * np.cos(np.pi * ramp)  # ease in and out
    fidget = dofs[key] - dofs[key].mean()
    dofs[key] = begin + ramp * (end - begin) + 0.5 * fidget
    return dofs


def _render(dofs: dict[str, np.ndarray], torso_px: float, ground: tuple[float, float]) -> np.ndarray:
    """COCO-17 joints in pixels ``[T, 17, 2]`` of a person facing the camera, feet at ``ground``."""
    length = len(dofs["squat"])
    joints = np.zeros((length, 17, 2))
    flexion = np.deg2rad(95.0) * dofs["squat"]
    thigh, shin = 0.9 * np.cos(flexion), 0.9 * np.cos(0.4 * flexion)
    hip_height = thigh + shin
    spread = 0.1 * dofs["squat"]
    for hip, knee, ankle, sign in ((11, 13, 15, 1.0), (12, 14, 16, -1.0)):
        joints[:, hip] = np.stack([np.full(length, sign * 0.22), hip_height], -1)
        joints[:, knee] = np.stack([sign * (0.24 + spread), hip_height - thigh], -1)
        joints[:, ankle] = np.stack([np.full(length, sign * 0.22), np.zeros(length)], -1)
    # Bending toward the camera foreshortens the torso; the upper body hangs off the hips.
    torso = np.cos(np.deg2rad(dofs["bend"]))
    neck = np.stack([np.zeros(length), hip_height + torso], -1)
    head = {0: (0.0, 0.4), 1: (0.08, 0.48), 2: (-0.08, 0.48), 3: (0.17, 0.43), 4: (-0.17, 0.43)}
    for joint, (dx, dy) in head.items():
        joints[:, joint] = neck + np.stack([np.full(length, dx), dy * (0.4 + 0.6 * torso)], -1)
    for side, shoulder, elbow, wrist, sign in (("left", 5, 7, 9, 1.0), ("right", 6, 8, 10, -1.0)):
        upper = np.deg2rad(dofs[f"arm_{side}"])
        lower = upper + np.deg2rad(dofs[f"elbow_{side}"])
        joints[:, shoulder] = neck + np.stack([np.full(length, sign * 0.4), np.zeros(length)], -1)
        joints[:, elbow] = joints[:, shoulder] + 0.6 * np.stack([sign * np.sin(upper), -np.cos(upper)], -1)
        joints[:, wrist] = joints[:, elbow] + 0.55 * np.stack([sign * np.sin(lower), -np.cos(lower)], -1)
    joints[..., 0] += dofs["sway"][:, None]
    # Image y grows downwards.
    return np.stack([ground[0] + torso_px * joints[..., 0], ground[1] - torso_px * joints[..., 1]], -1)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
