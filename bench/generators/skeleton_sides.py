"""Synthetic 2D-skeleton dataset of side-specific actions (PYSKL pickle, COCO-17 keypoints).

What it makes
-------------
A PYSKL annotation pickle laid out like ``ucf101_2d.pkl``::

    {"split": {"train1": [frame_dir, ...], "test1": [...]},
     "annotations": [{"frame_dir", "label", "img_shape", "original_shape", "total_frames",
                      "keypoint" float32 [M, T, 17, 2], "keypoint_score" float32 [M, T, 17]}, ...]}

with eight classes in four mirror pairs (M = 1 person per sequence):

* ``raise_left_arm`` / ``raise_right_arm`` -- one arm raised sideways/forwards above the head,
  held, usually lowered again;
* ``kick_left_leg``  / ``kick_right_leg``  -- one or two front/side kicks (knee chambers, then
  extends), leaning away from the kicking side;
* ``wave_left_hand`` / ``wave_right_hand`` -- upper arm lifted, forearm up, hand swinging side
  to side several times;
* ``step_left``      / ``step_right``      -- one to three sidesteps towards the person's own
  left / right (lead leg opens, body shifts, trailing leg closes).

"Left" is always the person's own left.  The person faces the camera (small yaw only), so
their left side appears on the image's right (larger x); ``step_left`` therefore moves
towards larger x.

Why only the side tells the classes of a pair apart
---------------------------------------------------
Each sequence is built in 3-D body coordinates (x = the person's left, y = up, z = towards the
camera) for the *left* variant of its pair.  For a right-hand class an independent sample is
drawn from exactly the same distribution and then mirrored (x -> -x, left/right joints
swapped) before projection.  Every nuisance process is mirror symmetric (subject bodies are
left/right symmetric; idle motion, yaw, lean, camera roll, horizontal placement, truncation
side and missing joints are drawn from symmetric distributions), and the horizontal placement
range maps onto itself under u -> w - 1 - u.  So the right class is distributed exactly like
the image-mirrored left class: a model that flips skeletons left/right as augmentation (and
swaps the joint labels) turns one class into the other, and a side-invariant feature cannot
separate a pair.

Variation axes
--------------
* subject (UCF101-style group ``gNN``; never on both sides of the split): stature 1.50-1.95 m
  and independent +-10 % limb / torso / shoulder / hip proportions, movement amplitude and
  tempo style, a preferred image size (used 75 % of the time) and camera distance, a
  detector-quality level;
* per sequence: length 30-150 frames, the action's window inside it and a smooth random time
  warp (speed variation), action amplitudes (how high, how far, how many kicks/waves/steps),
  idle motion of the other limbs (smooth random sway), body yaw +-0.3 rad, camera roll,
  image size among 240x320, 480x640, 1080x1920 (img_shape = (h, w)), person height 30-90 %
  of the frame, horizontal/vertical position;
* observation noise: per-joint jitter growing as the score drops, scores mostly 0.6-1.0 with
  lower values for hidden (far-side / turned-away) joints, occasional missing joints (score
  < 0.1 and coordinates 0 for 1-8 frames), occasional partial-body truncation (legs below the
  bottom edge or one side outside the frame: joints clamped to the border with scores < 0.35).

Split: ``train1`` / ``test1`` by subject, about 25 % of the subjects in ``test1``.  With the
default 55 sequences per class this gives about 40 train and 15 test sequences per class.
Only NumPy and the standard library are used.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # skeleton_body.py beside this file, also when loaded by path
from skeleton_body import (  # noqa: E402
    IMAGE_SHAPES, _smoothstep, _bump, _plateau, _smooth_noise,
    _action_phase, _cycles, _idle_pose, _skeleton, _blend, _project, _observe, _place, make_subject, run_cli,
    write_dataset,
)

CLASS_NAMES = (
    "raise_left_arm", "raise_right_arm", "kick_left_leg", "kick_right_leg",
    "wave_left_hand", "wave_right_hand", "step_left", "step_right",
)
# Each class is generated as its left variant, mirrored when ``True``.
_BASE_ACTION = {
    "raise_left_arm": ("raise_arm", False), "raise_right_arm": ("raise_arm", True),
    "kick_left_leg": ("kick_leg", False), "kick_right_leg": ("kick_leg", True),
    "wave_left_hand": ("wave_hand", False), "wave_right_hand": ("wave_hand", True),
    "step_left": ("step", False), "step_right": ("step", True),
}

FLIP_INDEX = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)
MIN_FRAMES, MAX_FRAMES = 30, 150


# --------------------------------------------------------------------------- body model

def _make_subject(rng):
    return make_subject(rng, size_fraction=(0.42, 0.75))  # typical person height / image height


def _mirror(joints):
    """The person's mirror image: x -> -x and left/right joints swapped."""
    out = joints[:, FLIP_INDEX].copy()
    out[..., 0] *= -1.0
    return out


# --------------------------------------------------------------------------- actions (left variants)


def _raise_arm(rng, P, body, T):
    u, _ = _action_phase(rng, T)
    stays_up = rng.random() < 0.2
    e = _plateau(u, rng.uniform(0.2, 0.4), 1.0 if stays_up else rng.uniform(0.55, 0.8))
    height = min(3.1, rng.uniform(2.5, 3.05) * body["amplitude"] ** 0.5)
    forward = rng.uniform(-0.1, 0.6)
    _blend(P, "l_ua_a", e, height + _smooth_noise(rng, T, 0.03))
    _blend(P, "l_ua_f", e, forward)
    _blend(P, "l_fa_a", e, height + rng.uniform(-0.1, 0.25))
    _blend(P, "l_fa_f", e, forward + rng.uniform(0.0, 0.3))
    P["roll"] -= e * rng.uniform(0.0, 0.08)          # lean away from the raised arm
    P["head_pitch"] -= e * rng.uniform(0.0, 0.15)     # glance up


def _kick_leg(rng, P, body, T):
    u, _ = _action_phase(rng, T, 0.5, 0.9)
    n = int(rng.integers(1, 3))
    _, w = _cycles(u, n, gap=rng.uniform(0.0, 0.15))
    lift = np.sin(np.pi * w)                          # 0 -> 1 (full extension) -> 0
    chamber = 4.0 * lift * (1.0 - lift)               # knee bent on the way up and down
    amp = body["amplitude"]
    flex, side, bend = rng.uniform(0.8, 1.5) * amp, rng.uniform(0.05, 0.45), rng.uniform(0.8, 1.4)
    P["l_th_f"] += flex * lift
    P["l_th_a"] += side * lift
    P["l_sh_f"] = P["l_th_f"] - bend * chamber
    P["l_sh_a"] = P["l_th_a"].copy()
    P["r_th_f"] += 0.12 * lift                        # soft support knee
    P["r_sh_f"] -= 0.12 * lift
    P["roll"] -= rng.uniform(0.04, 0.15) * lift       # lean away from the kick
    P["pitch"] -= rng.uniform(0.0, 0.15) * lift
    for s, amount in (("l", rng.uniform(0.0, 0.4)), ("r", rng.uniform(0.1, 0.6))):  # balance
        P[s + "_ua_a"] += amount * lift
        P[s + "_fa_a"] += amount * lift


def _wave_hand(rng, P, body, T):
    u, length = _action_phase(rng, T, 0.6, 0.95)
    e = _plateau(u, rng.uniform(0.1, 0.25), rng.uniform(0.75, 0.9))
    period = rng.uniform(8, 20) / body["tempo"]       # frames per side-to-side wave
    waves = max(1.5, length / period)
    upper, forward = rng.uniform(1.2, 2.4), rng.uniform(0.0, 0.5)
    swing = rng.uniform(0.2, 0.55) * body["amplitude"] * np.sin(2 * np.pi * waves * u + rng.uniform(0, 2 * np.pi))
    _blend(P, "l_ua_a", e, upper)
    _blend(P, "l_ua_f", e, forward)
    _blend(P, "l_fa_a", e, rng.uniform(2.6, 3.1) + swing)
    _blend(P, "l_fa_f", e, forward + rng.uniform(0.0, 0.3))
    P["head_yaw"] += e * rng.uniform(-0.1, 0.2)


def _step(rng, P, body, T):
    u, _ = _action_phase(rng, T, 0.5, 0.95)
    n = int(rng.integers(1, 4))
    k, w = _cycles(u, n, gap=rng.uniform(0.0, 0.1))
    angle = rng.uniform(0.22, 0.42) * body["amplitude"]
    distance = (body["thigh"] + body["shin"]) * np.sin(angle) * rng.uniform(0.85, 1.0)
    lead, trail = angle * _bump(w, 0.0, 0.6), angle * _bump(w, 0.4, 1.0)
    P["l_th_a"] += lead
    P["l_sh_a"] += lead
    P["r_th_a"] += trail
    P["r_sh_a"] += trail
    for s, moving in (("l", _bump(w, 0.0, 0.5)), ("r", _bump(w, 0.5, 1.0))):  # foot lifts a little
        knee = rng.uniform(0.1, 0.35) * moving
        P[s + "_th_f"] += knee
        P[s + "_sh_f"] -= knee
    P["root_x"] += distance * (k + _smoothstep((w - 0.2) / 0.6))   # +x: towards the person's left
    balance = rng.uniform(0.0, 0.3) * (lead + trail) / max(angle, 1e-6)
    for s in "lr":
        P[s + "_ua_a"] += balance
        P[s + "_fa_a"] += balance


_ACTIONS = {"raise_arm": _raise_arm, "kick_leg": _kick_leg, "wave_hand": _wave_hand, "step": _step}


# --------------------------------------------------------------------------- camera and detector


def _sequence(rng, class_name, body):
    """keypoint [1, T, 17, 2], keypoint_score [1, T, 17], img_shape for one sequence."""
    action, mirrored = _BASE_ACTION[class_name]
    T = int(rng.integers(MIN_FRAMES, MAX_FRAMES + 1))
    P = _idle_pose(rng, T, body)
    _ACTIONS[action](rng, P, body, T)
    joints = _skeleton(P, body)
    if mirrored:
        joints = _mirror(joints)
    shape_index = body["image_shape"] if rng.random() < 0.75 else int(rng.integers(len(IMAGE_SHAPES)))
    hw = IMAGE_SHAPES[shape_index]
    size_fraction = float(np.clip(body["size_fraction"] + rng.uniform(-0.12, 0.12), 0.3, 0.9))
    scale, cx, ground_v = _place(rng, joints, body, hw, size_fraction)
    roll = float(np.clip(rng.normal(0.0, 0.03), -0.08, 0.08))
    uv = _project(joints, scale, cx, ground_v, roll)
    quality = float(np.clip(body["quality"] + rng.normal(0.0, 0.03), 0.7, 0.96))
    kp, score = _observe(rng, joints, uv, body, hw, scale, quality)
    return kp[None], score[None], hw


# --------------------------------------------------------------------------- dataset


def make_dataset(out_path, seed: int = 0, sequences_per_class: int = 55) -> dict:
    """Write a PYSKL pickle to out_path (atomically); returns {"classes": [...], "train1": n, "test1": n}"""
    return write_dataset(out_path, CLASS_NAMES, _sequence, _make_subject, seed, sequences_per_class)


if __name__ == "__main__":
    run_cli(make_dataset, __doc__.split("\n")[0])
