"""Body model, camera and detector noise shared by ``skeleton_sides.py`` and ``skeleton_daily.py``.

A subject's 3-D joints (COCO-17 order, the person's left at +x, facing the camera at -z) are
posed by the generators' actions, projected to pixels, placed in the image and observed with
keypoint jitter, missing joints and scores, then written as a PYSKL pickle atomically.
"""
from __future__ import annotations

import os
import pickle
import tempfile

import numpy as np


COCO_JOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)


IMAGE_SHAPES = ((240, 320), (480, 640), (1080, 1920))  # (h, w)


TEST_FRACTION = 0.25


SEQUENCES_PER_SUBJECT = 2.75  # per class: 55 sequences -> 20 subjects, 5 of them in test1


_FACE = np.array([0, 1, 2])  # nose and eyes: hidden when the person turns away


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _bump(u, a, b):
    """Smooth 0 -> 1 -> 0 over [a, b], 0 outside."""
    x = np.clip((u - a) / (b - a), 0.0, 1.0)
    return np.sin(np.pi * x) ** 2


def _plateau(u, rise_end, fall_start):
    """0 -> 1 over [0, rise_end], 1, then 1 -> 0 over [fall_start, 1] (no fall if fall_start >= 1)."""
    up = _smoothstep(u / rise_end)
    if fall_start >= 1.0:
        return up
    return up * (1.0 - _smoothstep((u - fall_start) / (1.0 - fall_start)))


def _smooth_noise(rng, n, amp, waves=3):
    """Smooth random signal (sum of slow sines), standard deviation about ``amp``."""
    t = np.arange(n)
    out = np.zeros(n)
    for _ in range(waves):
        out += np.sin(2 * np.pi * rng.uniform(0.004, 0.05) * t + rng.uniform(0, 2 * np.pi))
    return amp * out / np.sqrt(waves / 2)


def _action_phase(rng, T, min_frac=0.6, max_frac=0.95, warp=0.35):
    """Phase u in [0, 1] per frame: 0 before the action window, a randomly time-warped ramp
    inside it (speed variation), 1 after it.  Returns (u, window length in frames)."""
    length = int(round(T * rng.uniform(min_frac, max_frac)))
    length = max(2, min(T, length))
    start = int(rng.integers(0, T - length + 1))
    rates = np.exp(_smooth_noise(rng, length, warp))
    ramp = np.concatenate([[0.0], np.cumsum(rates[:-1])])
    u = np.zeros(T)
    u[start:start + length] = ramp / ramp[-1]
    u[start + length:] = 1.0
    return u, length


def _cycles(u, n, gap=0.0):
    """For n repetitions over u in [0, 1]: (index, within-cycle phase w in [0, 1]); ``gap`` is
    the rest fraction at both ends of each cycle."""
    v = np.clip(u, 0.0, 1.0) * n
    k = np.minimum(np.floor(v), n - 1)
    w = np.where(u >= 1.0, 1.0, v - k)
    if gap:
        w = np.clip((w - gap) / (1.0 - 2 * gap), 0.0, 1.0)
    return k, w


def _idle_pose(rng, T, body):
    """Per-frame joint angles (radians) of a person standing and swaying slightly.

    Limb directions are absolute in the torso (arms) or root (legs) frame and written for the
    person's left side ("a" sideways-outwards, "f" forwards towards the camera, "h" horizontal
    outwards); the right side uses the same values mirrored.  Both sides are drawn
    independently from the same distribution.
    """
    def noise(amp):
        return _smooth_noise(rng, T, amp)

    P = dict(root_x=noise(0.01 * body["stature"]), lift=np.zeros(T),
             yaw=rng.uniform(-0.3, 0.3) + noise(0.04), pitch=rng.uniform(-0.03, 0.08) + noise(0.02),
             roll=noise(0.02), head_pitch=rng.uniform(-0.15, 0.15) + noise(0.05), head_yaw=noise(0.1))
    for s in "lr":
        P[s + "_ua_a"] = rng.uniform(0.05, 0.25) + noise(0.04)
        P[s + "_ua_f"] = rng.uniform(-0.1, 0.25) + noise(0.05)
        P[s + "_ua_h"] = np.zeros(T)
        P[s + "_fa_a"] = P[s + "_ua_a"] + rng.uniform(-0.05, 0.15)
        P[s + "_fa_f"] = P[s + "_ua_f"] + rng.uniform(0.0, 0.5) + noise(0.05)
        P[s + "_fa_h"] = np.zeros(T)
        P[s + "_th_a"] = rng.uniform(0.0, 0.12) + noise(0.01)
        P[s + "_th_f"] = rng.uniform(-0.03, 0.05) + noise(0.02)
        P[s + "_th_h"] = np.zeros(T)
        P[s + "_sh_a"] = P[s + "_th_a"] + rng.uniform(-0.03, 0.03)
        P[s + "_sh_f"] = P[s + "_th_f"] - rng.uniform(0.0, 0.06)
        P[s + "_sh_h"] = np.zeros(T)
    return P


def _direction(a, f, h, sign):
    """Unit vectors [T, 3] for a limb hanging down, flexed forwards by f, raised sideways by a
    and swung horizontally outwards by h (left-side convention; sign -1 mirrors to the right)."""
    x, y, z = np.sin(a) * np.cos(f), -np.cos(a) * np.cos(f), np.sin(f)
    x, z = x * np.cos(h) + z * np.sin(h), -x * np.sin(h) + z * np.cos(h)
    return np.stack([sign * x, y, z], -1)


def _rot_x(angle):  # bends (0, 1, 0) towards +z (forwards)
    c, s, o, i = np.cos(angle), np.sin(angle), np.zeros_like(angle), np.ones_like(angle)
    return np.stack([np.stack([i, o, o], -1), np.stack([o, c, -s], -1), np.stack([o, s, c], -1)], -2)


def _rot_z(angle):  # leans (0, 1, 0) towards +x (the person's left)
    c, s, o, i = np.cos(angle), np.sin(angle), np.zeros_like(angle), np.ones_like(angle)
    return np.stack([np.stack([c, s, o], -1), np.stack([-s, c, o], -1), np.stack([o, o, i], -1)], -2)


def _rot_y(angle):  # turns about the vertical axis; pi: back to the camera
    c, s, o, i = np.cos(angle), np.sin(angle), np.zeros_like(angle), np.ones_like(angle)
    return np.stack([np.stack([c, o, s], -1), np.stack([o, i, o], -1), np.stack([-s, o, c], -1)], -2)


def _apply(R, pts):
    return np.einsum("tij,tkj->tki", R, pts)


def _skeleton(P, body):
    """3-D COCO-17 joints [T, 17, 3] (metres; feet on the ground y = 0 unless lifted)."""
    T = len(P["yaw"])
    zeros = np.zeros(T)
    trunk = _rot_x(P["pitch"]) @ _rot_z(P["roll"])
    head = trunk @ _rot_x(P["head_pitch"]) @ _rot_y(P["head_yaw"])
    neck = np.stack([zeros, zeros + body["torso"], zeros], -1)[:, None]     # [T, 1, 3]
    n = body["neck"]
    face = np.array([[0.0, n, 0.4 * n],
                     [body["eye_half"], 1.2 * n, 0.3 * n], [-body["eye_half"], 1.2 * n, 0.3 * n],
                     [body["ear_half"], 1.1 * n, -0.1 * n], [-body["ear_half"], 1.1 * n, -0.1 * n]])
    joints = np.zeros((T, 17, 3))
    joints[:, 0:5] = _apply(trunk, neck) + _apply(head, np.broadcast_to(face, (T, 5, 3)))
    for sign, s, off in ((1.0, "l", 0), (-1.0, "r", 1)):
        shoulder = neck[:, 0] + np.array([sign * body["shoulder_half"], 0.0, 0.0])
        elbow = shoulder + body["upper_arm"] * _direction(P[s + "_ua_a"], P[s + "_ua_f"], P[s + "_ua_h"], sign)
        wrist = elbow + body["forearm"] * _direction(P[s + "_fa_a"], P[s + "_fa_f"], P[s + "_fa_h"], sign)
        joints[:, [5 + off, 7 + off, 9 + off]] = _apply(trunk, np.stack([shoulder, elbow, wrist], 1))
        hip = np.zeros((T, 3)) + np.array([sign * body["hip_half"], 0.0, 0.0])
        knee = hip + body["thigh"] * _direction(P[s + "_th_a"], P[s + "_th_f"], P[s + "_th_h"], sign)
        ankle = knee + body["shin"] * _direction(P[s + "_sh_a"], P[s + "_sh_f"], P[s + "_sh_h"], sign)
        joints[:, [11 + off, 13 + off, 15 + off]] = np.stack([hip, knee, ankle], 1)
    joints = _apply(_rot_y(P["yaw"]), joints)
    ground = -np.minimum(joints[:, 15, 1], joints[:, 16, 1])   # lowest ankle stands on y = 0
    joints[:, :, 1] += (ground + P["lift"])[:, None]
    joints[:, :, 0] += P["root_x"][:, None]
    return joints


def _blend(P, key, e, target):
    P[key] = (1.0 - e) * P[key] + e * target


def _project(joints, scale, cx, ground_v, roll):
    x, y = joints[..., 0], joints[..., 1]
    c, s = np.cos(roll), np.sin(roll)
    return np.stack([cx + scale * (c * x - s * y), ground_v - scale * (s * x + c * y)], -1)


def _observe(rng, joints, uv, body, hw, scale, quality):
    """Detector output: scores, jitter, truncation at the image border, missing joints."""
    T = len(uv)
    h, w = hw
    per_joint = np.array([0.03, 0.03, 0.03, 0.0, 0.0, 0.02, 0.02, -0.02, -0.02, -0.06, -0.06,
                          0.0, 0.0, -0.02, -0.02, -0.05, -0.05])
    score = quality + per_joint + rng.normal(0.0, 0.05, (T, 17))
    # hidden joints: behind the body (far side when turned), face when turned away
    depth = joints[..., 2] - joints[:, 11:13, 2].mean(1, keepdims=True)
    score -= 0.3 * np.clip(-depth / (0.12 * body["stature"]), 0.0, 1.0)
    facing = joints[:, 0, 2] - 0.5 * (joints[:, 3, 2] + joints[:, 4, 2])   # nose ahead of the ears
    score[:, _FACE] -= 0.5 * np.clip(-facing / (0.05 * body["stature"]), 0.0, 1.0)[:, None]
    score = np.clip(score, 0.35, 1.0)
    sigma = scale * body["stature"] * (0.003 + 0.02 * (1.0 - score))
    kp = uv + rng.normal(0.0, 1.0, uv.shape) * sigma[..., None]
    outside = (kp[..., 0] < 0) | (kp[..., 0] > w - 1) | (kp[..., 1] < 0) | (kp[..., 1] > h - 1)
    kp[..., 0] = np.clip(kp[..., 0], 0, w - 1)
    kp[..., 1] = np.clip(kp[..., 1], 0, h - 1)
    score[outside] = rng.uniform(0.02, 0.35, int(outside.sum()))
    if rng.random() < 0.35:                         # occasional dropped joints
        for _ in range(int(rng.integers(1, 4))):
            span = int(rng.integers(1, min(8, T) + 1))
            start = int(rng.integers(0, T - span + 1))
            lost = rng.choice(17, int(rng.integers(1, 4)), replace=False)
            kp[start:start + span, lost] = 0.0
            score[start:start + span, lost] = rng.uniform(0.0, 0.09, (span, len(lost)))
    return kp.astype(np.float32), score.astype(np.float32)


def _place(rng, joints, body, hw, size_fraction, p_truncate=0.1):
    """Scale, horizontal centre and ground line for a person: the whole sequence inside the
    frame with a small margin, unless truncated on purpose. The horizontal range is symmetric
    under u -> w - 1 - u, so a mirrored sequence gets the mirrored placement distribution."""
    h, w = hw
    scale = size_fraction * h / body["stature"]
    xmin, xmax = joints[..., 0].min() * scale, joints[..., 0].max() * scale
    top = joints[..., 1].max() * scale
    margin = 0.02 * w
    lo, hi = margin - xmin, (w - 1) - margin - xmax
    cx = rng.uniform(lo, hi) if hi > lo else 0.5 * (lo + hi)
    vlo, vhi = top + 0.02 * h, (h - 1) - 0.02 * h
    ground_v = rng.uniform(vlo, vhi) if vhi > vlo else 0.5 * (vlo + vhi)
    if rng.random() < p_truncate:
        mode = rng.choice(["bottom", "left", "right"])
        cut = rng.uniform(0.15, 0.45)
        if mode == "bottom":      # legs below the frame
            ground_v = (h - 1) + cut * body["stature"] * scale
        elif mode == "left":      # part of the body beyond the left edge
            cx = -cut * (xmax - xmin) - xmin
        else:
            cx = (w - 1) + cut * (xmax - xmin) - xmax
    return scale, cx, ground_v


def _camel(name):
    return "".join(part.capitalize() for part in name.split("_"))


def _atomic_pickle(obj, out_path):
    out_path = os.path.abspath(os.fspath(out_path))
    folder = os.path.dirname(out_path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp_", suffix=".pkl")
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump(obj, f, protocol=4)
        os.replace(tmp, out_path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def make_subject(rng, size_fraction=(0.3, 0.7)):
    """A left/right-symmetric body (metres) plus the subject's style and typical scene;
    ``size_fraction``: the range of its typical person height / image height."""
    H = rng.uniform(1.50, 1.95)

    def part(fraction):
        return fraction * H * rng.uniform(0.9, 1.1)

    body = dict(shin=part(0.25), thigh=part(0.245), torso=part(0.29), neck=part(0.105),
                upper_arm=part(0.186), forearm=part(0.146), shoulder_half=part(0.12),
                hip_half=part(0.055), eye_half=part(0.03), ear_half=part(0.065))
    body["stature"] = body["shin"] + body["thigh"] + body["torso"] + 1.45 * body["neck"]
    body["amplitude"] = rng.uniform(0.85, 1.15)       # how big the subject's movements are
    body["tempo"] = rng.uniform(0.8, 1.25)            # > 1: faster repetitions
    body["image_shape"] = int(rng.integers(len(IMAGE_SHAPES)))
    body["size_fraction"] = rng.uniform(*size_fraction)
    body["quality"] = rng.uniform(0.78, 0.93)         # typical detector confidence
    return body


def write_dataset(out_path, class_names, sequence, subject, seed: int = 0, sequences_per_class: int = 55) -> dict:
    """Write a PYSKL pickle to out_path (atomically: temp file + os.replace): ``sequence(rng, class
    name, body) -> (keypoint, keypoint_score, (h, w))`` for each clip, bodies from ``subject(rng)``,
    whole subjects in test1. Returns {"classes": [...], "train1": n, "test1": n}."""
    if sequences_per_class < 1:
        raise ValueError("sequences_per_class must be >= 1")
    root = np.random.SeedSequence(seed)
    subject_seq, split_seq, clip_seq = root.spawn(3)
    n_subjects = int(np.clip(round(sequences_per_class / SEQUENCES_PER_SUBJECT), 4, 25))
    subject_rngs = [np.random.default_rng(s) for s in subject_seq.spawn(n_subjects)]
    bodies = [subject(r) for r in subject_rngs]
    split_rng = np.random.default_rng(split_seq)
    n_test = max(1, int(round(TEST_FRACTION * n_subjects)))
    test_subjects = set(int(i) for i in split_rng.choice(n_subjects, n_test, replace=False))

    annotations, splits = [], {"train1": [], "test1": []}
    clip_seeds = iter(clip_seq.spawn(len(class_names) * sequences_per_class))
    for label, name in enumerate(class_names):
        # spread the class's sequences over the subjects (UCF101: several clips per group)
        counts = np.full(n_subjects, sequences_per_class // n_subjects)
        counts[split_rng.choice(n_subjects, sequences_per_class % n_subjects, replace=False)] += 1
        for g in range(n_subjects):
            for c in range(int(counts[g])):
                rng = np.random.default_rng(next(clip_seeds))
                kp, score, hw = sequence(rng, name, bodies[g])
                frame_dir = f"v_{_camel(name)}_g{g + 1:02d}_c{c + 1:02d}"
                annotations.append({
                    "frame_dir": frame_dir, "label": int(label),
                    "img_shape": (int(hw[0]), int(hw[1])), "original_shape": (int(hw[0]), int(hw[1])),
                    "total_frames": int(kp.shape[1]), "keypoint": kp, "keypoint_score": score,
                })
                splits["test1" if g in test_subjects else "train1"].append(frame_dir)
    _atomic_pickle({"split": splits, "annotations": annotations}, out_path)
    return {"classes": list(class_names), "train1": len(splits["train1"]), "test1": len(splits["test1"])}


def run_cli(make_dataset, description: str) -> None:
    """``python GENERATOR.py OUT.pkl [--seed S] [--sequences-per-class N]``: prints a JSON summary."""
    import argparse
    import json
    import time

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("out_path")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sequences-per-class", type=int, default=55)
    args = ap.parse_args()
    t0 = time.time()
    summary = make_dataset(args.out_path, seed=args.seed, sequences_per_class=args.sequences_per_class)
    summary["seconds"] = round(time.time() - t0, 2)
    print(json.dumps(summary))

