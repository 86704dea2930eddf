"""Synthetic 2D-skeleton dataset of everyday actions with time-reversed pairs (PYSKL pickle,
COCO-17 keypoints).

What it makes
-------------
A PYSKL annotation pickle laid out like ``ucf101_2d.pkl``::

    {"split": {"train1": [frame_dir, ...], "test1": [...]},
     "annotations": [{"frame_dir", "label", "img_shape", "original_shape", "total_frames",
                      "keypoint" float32 [M, T, 17, 2], "keypoint_score" float32 [M, T, 17]}, ...]}

with eight classes:

* ``sit_down``  / ``stand_up``      -- standing, then lowering onto a (invisible) seat with a
  forward lean and the forearms coming to rest on the thighs, then seated; and its time reversal;
* ``bend_down`` / ``straighten_up`` -- bending the trunk forwards (towards the camera: the torso
  is foreshortened, the head drops) with the arms hanging and soft knees; and its reversal;
* ``jump``          -- one to three jumps in place with a crouch before and after each, arms
  swinging up (or jumping jacks: arms and legs spreading);
* ``clap``          -- arms forward, hands meeting in front of the chest several times;
* ``turn_around``   -- a full (sometimes half) turn about the vertical axis with small foot
  shuffles: shoulder and hip widths shrink to a profile and grow again, left/right swap in the
  image while the back is turned, face joints lose confidence;
* ``walk_in_place`` -- alternating knee lifts with counter-swinging arms.

"Left" is the person's own left; facing the camera their left side is on the image's right
(larger x).

Why only frame order tells the pairs apart
------------------------------------------
``stand_up`` is not modelled separately: each ``stand_up`` sequence is an independent
``sit_down`` sample whose frames are reversed after rendering (likewise ``straighten_up`` from
``bend_down``).  All nuisance processes (idle sway, bystander motion, score noise, jitter,
missing-joint events) are stationary in time, so a reversed pair member is distributed exactly
like the time-reversed other member: any order-free statistic (mean pose, pose histogram, bag of
frames) has the same distribution for both classes of a pair; only the temporal order carries
the label.  The other four classes differ in their poses and serve as ordinary classes.

Variation axes
--------------
* subject (UCF101-style group ``gNN``; never on both sides of the split): stature 1.50-1.95 m
  and independent +-10 % limb / torso / shoulder / hip proportions, movement amplitude and tempo
  style, a preferred image size (used 75 % of the time), a typical camera distance and a
  detector-quality level;
* per sequence: length 30-150 frames, the action's window and a smooth random time warp (speed
  variation), action amplitudes and counts (jump height, number of claps/jumps/steps, turn
  direction, how deep the bend/sit), idle motion of uninvolved limbs, body yaw +-0.3 rad,
  camera roll, image size among 240x320, 480x640, 1080x1920 (img_shape = (h, w)), camera
  distance (person height 20-90 % of the frame), horizontal/vertical position;
* a second person (M = 2) in about 30 % of the sequences: a bystander with a random body, at
  another depth, beside the actor, standing idle (swaying, arms crossed, looking at a phone,
  hands on hips, shifting weight); the actor is person 0 in 75 % of those sequences, person 1
  otherwise;
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
    "sit_down", "stand_up", "bend_down", "straighten_up", "jump", "clap", "turn_around", "walk_in_place",
)
# (generator, reverse the frames): a reversed class is its partner played backwards.
_BASE_ACTION = {
    "sit_down": ("sit_down", False), "stand_up": ("sit_down", True),
    "bend_down": ("bend_down", False), "straighten_up": ("bend_down", True),
    "jump": ("jump", False), "clap": ("clap", False),
    "turn_around": ("turn_around", False), "walk_in_place": ("walk_in_place", False),
}

MIN_FRAMES, MAX_FRAMES = 30, 150
SECOND_PERSON_PROBABILITY = 0.3


# --------------------------------------------------------------------------- body model

def _make_subject(rng):
    return make_subject(rng, size_fraction=(0.3, 0.7))  # typical person height / image height


# --------------------------------------------------------------------------- actions


def _sit_down(rng, P, body, T):
    u, _ = _action_phase(rng, T, 0.35, 0.8)
    e = _smoothstep(u)
    moving = _bump(u, 0.0, 1.0)
    thigh, spread = rng.uniform(1.25, 1.6), rng.uniform(0.05, 0.3)
    rest_upper, rest_fore, rest_in = rng.uniform(0.2, 0.6), rng.uniform(0.9, 1.4), rng.uniform(-0.35, 0.0)
    for s in "lr":
        _blend(P, s + "_th_f", e, thigh + rng.uniform(-0.08, 0.08))
        _blend(P, s + "_th_a", e, spread + rng.uniform(-0.04, 0.04))
        _blend(P, s + "_sh_f", e, rng.uniform(-0.2, 0.15))
        _blend(P, s + "_sh_a", e, rng.uniform(-0.05, 0.12))
        reach = rng.uniform(0.0, 0.5) * moving        # arms forward for balance while lowering
        _blend(P, s + "_ua_f", e, rest_upper + rng.uniform(-0.1, 0.1))
        _blend(P, s + "_fa_f", e, rest_fore + rng.uniform(-0.1, 0.1))
        _blend(P, s + "_fa_h", e, rest_in)
        P[s + "_ua_f"] += reach
        P[s + "_fa_f"] += reach
    P["pitch"] += rng.uniform(0.3, 0.6) * moving + e * rng.uniform(-0.15, 0.1)
    P["head_pitch"] -= rng.uniform(0.0, 0.2) * moving


def _bend_down(rng, P, body, T):
    u, _ = _action_phase(rng, T, 0.35, 0.8)
    e = _smoothstep(u)
    depth = min(1.6, rng.uniform(1.0, 1.5) * body["amplitude"] ** 0.5)
    P["pitch"] += e * depth
    knee = rng.uniform(0.0, 0.35)
    for s in "lr":
        P[s + "_th_f"] += e * knee * rng.uniform(0.9, 1.1)
        P[s + "_sh_f"] -= e * knee * rng.uniform(0.4, 0.7)
        hang = depth * rng.uniform(0.85, 1.05)         # arms hang vertically in the world
        _blend(P, s + "_ua_f", e, hang)
        _blend(P, s + "_fa_f", e, hang + rng.uniform(0.0, 0.35))
        _blend(P, s + "_ua_a", e, rng.uniform(0.0, 0.2))
        _blend(P, s + "_fa_a", e, rng.uniform(-0.1, 0.2))
    P["head_pitch"] += e * rng.uniform(-0.3, 0.4)


def _jump(rng, P, body, T):
    u, _ = _action_phase(rng, T, 0.5, 0.95)
    n = int(rng.integers(1, 4))
    _, w = _cycles(u, n, gap=rng.uniform(0.0, 0.1))
    crouch = _bump(w, 0.0, 0.38) + _bump(w, 0.62, 1.0)
    f = np.clip((w - 0.38) / 0.24, 0.0, 1.0)
    P["lift"] += rng.uniform(0.05, 0.2) * body["stature"] * body["amplitude"] * 4.0 * f * (1.0 - f)
    depth = rng.uniform(0.4, 0.9)
    swing = _bump(w, 0.3, 0.75)
    jack = rng.random() < 0.35
    for s in "lr":
        P[s + "_th_f"] += depth * crouch
        P[s + "_sh_f"] -= depth * crouch * rng.uniform(0.9, 1.1)
        if jack:                                      # jumping jack: arms up, legs apart
            arms, legs = rng.uniform(2.2, 2.8) * swing, rng.uniform(0.15, 0.35) * swing
            P[s + "_ua_a"] += arms
            P[s + "_fa_a"] += arms + rng.uniform(0.0, 0.2) * swing
            P[s + "_th_a"] += legs
            P[s + "_sh_a"] += legs
        else:                                         # arms back in the crouch, up in the air
            arms = rng.uniform(1.2, 2.6) * swing - rng.uniform(0.3, 0.6) * _bump(w, 0.0, 0.38)
            P[s + "_ua_f"] += arms
            P[s + "_fa_f"] += arms
    P["pitch"] += 0.5 * depth * crouch


def _clap(rng, P, body, T):
    u, length = _action_phase(rng, T, 0.6, 0.95)
    e = _plateau(u, rng.uniform(0.12, 0.3), rng.uniform(0.7, 0.88))
    period = rng.uniform(7, 16) / body["tempo"]       # frames per clap
    claps = max(2.0, length / period)
    closing = 0.5 - 0.5 * np.cos(2 * np.pi * claps * u)
    upper_f, upper_a, upper_h = rng.uniform(0.6, 1.1), rng.uniform(0.05, 0.3), rng.uniform(0.1, 0.35)
    fore_f, open_h, closed_h = rng.uniform(1.25, 1.55), rng.uniform(-0.6, -0.2), rng.uniform(-1.5, -1.3)
    for s in "lr":
        _blend(P, s + "_ua_f", e, upper_f + rng.uniform(-0.05, 0.05))
        _blend(P, s + "_ua_a", e, upper_a)
        _blend(P, s + "_ua_h", e, upper_h)
        _blend(P, s + "_fa_f", e, fore_f + rng.uniform(-0.05, 0.05))
        _blend(P, s + "_fa_a", e, rng.uniform(-0.1, 0.1))
        _blend(P, s + "_fa_h", e, open_h + (closed_h - open_h) * closing)
    P["head_pitch"] += e * rng.uniform(0.0, 0.2)


def _turn_around(rng, P, body, T):
    u, length = _action_phase(rng, T, 0.5, 0.95)
    angle = 2 * np.pi if rng.random() < 0.75 else np.pi
    P["yaw"] += rng.choice([-1.0, 1.0]) * angle * _smoothstep(u)
    steps = max(2.0, round(angle / rng.uniform(0.6, 1.2)))
    stepping = np.sin(np.pi * steps * u) * ((u > 0) & (u < 1))
    lift = rng.uniform(0.15, 0.4)
    for s, sign in (("l", 1.0), ("r", -1.0)):
        knee = lift * np.clip(sign * stepping, 0.0, None)
        P[s + "_th_f"] += knee
        P[s + "_sh_f"] -= 1.2 * knee


def _walk_in_place(rng, P, body, T):
    u, length = _action_phase(rng, T, 0.7, 1.0)
    e = _plateau(u, rng.uniform(0.05, 0.15), rng.uniform(0.85, 0.95))
    period = rng.uniform(14, 28) / body["tempo"]      # frames per left+right step pair
    s_wave = np.sin(2 * np.pi * max(1.5, length / period) * u + rng.uniform(0, 2 * np.pi))
    knee_lift, arm_swing = rng.uniform(0.4, 1.0) * body["amplitude"], rng.uniform(0.15, 0.5)
    bend = rng.uniform(1.1, 1.5)
    for s, sign in (("l", 1.0), ("r", -1.0)):
        up = e * knee_lift * np.clip(sign * s_wave, 0.0, None)
        P[s + "_th_f"] += up
        P[s + "_sh_f"] += up - bend * up
        P[s + "_ua_f"] -= e * arm_swing * sign * s_wave      # arm opposite to the lifted knee
        P[s + "_fa_f"] -= e * arm_swing * sign * s_wave
    P["root_x"] += e * 0.02 * body["stature"] * s_wave
    P["roll"] += e * 0.03 * s_wave


_ACTIONS = {"sit_down": _sit_down, "bend_down": _bend_down, "jump": _jump, "clap": _clap,
            "turn_around": _turn_around, "walk_in_place": _walk_in_place}


def _bystander(rng, T):
    """A second person standing idle: joints [T, 17, 3] and body."""
    body = _make_subject(rng)
    P = _idle_pose(rng, T, body)
    P["yaw"] += rng.uniform(-0.6, 0.6)
    P["root_x"] += _smooth_noise(rng, T, 0.03 * body["stature"])     # weight shifts
    habit = rng.random()
    if habit < 0.25:                                   # arms crossed
        for s in "lr":
            P[s + "_ua_f"] = 0.3 + _smooth_noise(rng, T, 0.03)
            P[s + "_fa_f"] = 1.45 + _smooth_noise(rng, T, 0.03)
            P[s + "_fa_h"] = -1.2 + _smooth_noise(rng, T, 0.03)
    elif habit < 0.45:                                 # looking at a phone in one hand
        s = "l" if rng.random() < 0.5 else "r"
        P[s + "_ua_f"] = 0.4 + _smooth_noise(rng, T, 0.05)
        P[s + "_fa_f"] = 1.9 + _smooth_noise(rng, T, 0.05)
        P[s + "_fa_h"] = -0.6 + _smooth_noise(rng, T, 0.05)
        P["head_pitch"] += 0.4
    elif habit < 0.6:                                  # hands on hips
        for s in "lr":
            P[s + "_ua_a"] = 0.6 + _smooth_noise(rng, T, 0.03)
            P[s + "_fa_a"] = -0.7 + _smooth_noise(rng, T, 0.03)
    return _skeleton(P, body), body


# --------------------------------------------------------------------------- camera and detector


def _sequence(rng, class_name, body):
    """keypoint [M, T, 17, 2], keypoint_score [M, T, 17], img_shape for one sequence."""
    action, reverse = _BASE_ACTION[class_name]
    T = int(rng.integers(MIN_FRAMES, MAX_FRAMES + 1))
    P = _idle_pose(rng, T, body)
    _ACTIONS[action](rng, P, body, T)
    joints = _skeleton(P, body)
    shape_index = body["image_shape"] if rng.random() < 0.75 else int(rng.integers(len(IMAGE_SHAPES)))
    hw = IMAGE_SHAPES[shape_index]
    size_fraction = float(np.clip(body["size_fraction"] + rng.uniform(-0.2, 0.2), 0.2, 0.9))  # camera distance
    scale, cx, ground_v = _place(rng, joints, body, hw, size_fraction)
    roll = float(np.clip(rng.normal(0.0, 0.03), -0.08, 0.08))
    quality = float(np.clip(body["quality"] + rng.normal(0.0, 0.03), 0.7, 0.96))
    kp, score = _observe(rng, joints, _project(joints, scale, cx, ground_v, roll), body, hw, scale, quality)
    persons = [(kp, score)]
    if rng.random() < SECOND_PERSON_PROBABILITY:
        other, other_body = _bystander(rng, T)
        depth = rng.uniform(0.6, 1.2)                  # < 1: farther from the camera than the actor
        other_scale = scale * depth
        offset = rng.uniform(0.45, 1.2) * body["stature"] * scale
        sides = [c for c in (cx - offset, cx + offset) if 0.08 * hw[1] <= c <= 0.92 * hw[1]]
        other_cx = sides[int(rng.integers(len(sides)))] if sides else (  # keep the bystander in view
            cx - offset if cx > 0.5 * hw[1] else cx + offset)
        other_ground = ground_v - (1.0 - depth) * rng.uniform(0.3, 0.8) * body["stature"] * scale
        uv = _project(other, other_scale, other_cx, other_ground, roll)
        other_quality = quality - rng.uniform(0.0, 0.1)
        persons.append(_observe(rng, other, uv, other_body, hw, other_scale, other_quality))
        if rng.random() < 0.25:
            persons.reverse()
    kp = np.stack([p[0] for p in persons])
    score = np.stack([p[1] for p in persons])
    if reverse:
        kp, score = kp[:, ::-1], score[:, ::-1]
    return np.ascontiguousarray(kp), np.ascontiguousarray(score), hw


# --------------------------------------------------------------------------- dataset


def make_dataset(out_path, seed: int = 0, sequences_per_class: int = 55) -> dict:
    """Write a PYSKL pickle to out_path (atomically); returns {"classes": [...], "train1": n, "test1": n}"""
    return write_dataset(out_path, CLASS_NAMES, _sequence, _make_subject, seed, sequences_per_class)


if __name__ == "__main__":
    run_cli(make_dataset, __doc__.split("\n")[0])
