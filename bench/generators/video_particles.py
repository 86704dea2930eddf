"""Synthetic "particles & strokes" video dataset: an order-only action-recognition benchmark.

What it makes
-------------
Four classes in two time-reversed pairs, written as small video files::

    gather  - a cloud of 10-40 particles spirals / drifts in to a (slowly wandering) point
    scatter - the same kind of clip played backwards: particles burst out of a point
    paint   - a textured brush stroke (1-2 strokes, random curved path) is drawn on screen
    erase   - the same kind of clip played backwards: the stroke is eaten away from its tip

Layout: ``out_dir/{train,test}/<label>/v_<label>_gNN_cNN.<ext>`` (UCF101-like names).
A recording group ``gNN`` is one "setup" (frame size, background texture and palette,
particle / brush style, noise level, panning, frame-drop rate) shared by the four
classes with the same group number; the last ``test_groups_per_class`` groups go to
``test/`` so that train and test never share a setup.

Why it is order-only
--------------------
``scatter`` clips are produced by drawing a *fresh* clip from exactly the same random
process as ``gather`` (its own random numbers, same group setup) and reversing its frame
order; likewise ``erase`` = reversed fresh ``paint`` clip.  Hence the multiset of frames
of a ``scatter`` clip has exactly the same distribution as that of a ``gather`` clip: no
single frame and no order-free statistic (mean frame, frame histogram, set of optical
magnitudes, clip length, fps, codec ...) separates the classes of a pair.  Only the
direction of time does.  In addition every nuisance process is itself time-reversal
symmetric in distribution (pan and drift directions are isotropic, ease-in and ease-out
are equally likely, holds at start/end have the same law, noise and flicker are i.i.d.,
repeated frames stay repeated), so the nuisance motion carries no label information
either: the only thing telling ``gather`` from ``scatter`` is whether the cloud
contracts or expands, and ``paint`` from ``erase`` whether the stroke grows or shrinks.

Variation axes
--------------
* background: fractal value-noise "clouds", thresholded "blobs" or warped "stripes",
  mapped through a random 3-5 colour palette per group; slow sub-pixel panning in
  some groups (random direction per clip); 0-2 soft distractor blobs drifting freely
* particles: count 10-40, radius, shape (dot / ring / glow / square / cross), colours,
  per-particle delays, spiral strength, start spread (uniform / gaussian / ring),
  final cluster size, per-frame flicker, wandering target
* stroke: path length and curvature, 1-2 strokes with pen lift, width and pressure
  profile, colour gradient, dry-brush texture, optional visible brush tip
* timing: easing (linear / smooth / ease-in / ease-out / cubic), holds at start and end,
  an optional mid-clip pause, speed jitter; clip length 16-72 frames, fps 8-30
* camera: global brightness flicker, Gaussian noise, occasional dropped (repeated) frames
* container: frame sizes 96x96, 128x128, 192x144, 240x240, 320x180; codecs MJPG (.avi),
  mp4v (.mp4), XVID (.avi) - each probed once, unusable ones are skipped.

Only numpy and cv2 are used.  Output is deterministic given ``seed`` (per-clip random
streams are keyed by (seed, group, class, clip)).
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # video_io.py beside this file, also when loaded by path
from video_io import readable_codecs, run_cli, write_video_atomic  # noqa: E402

LABELS = ["gather", "scatter", "paint", "erase"]
# label -> (kind of forward process, reversed?)
_CLASS_SPEC = {
    "gather": ("particles", False),
    "scatter": ("particles", True),
    "paint": ("stroke", False),
    "erase": ("stroke", True),
}
FRAME_SIZES = [(96, 96), (128, 128), (192, 144), (240, 240), (320, 180)]  # (W, H)
_CODECS = [("MJPG", "avi"), ("mp4v", "mp4"), ("XVID", "avi")]
_MAX_PAN = 0.6  # px / frame
_MAX_T = 72
_MARGIN = int(math.ceil(_MAX_PAN * _MAX_T)) + 24

# ----------------------------------------------------------------------------- utils


def _smooth_noise_1d(rng, n, scale, smooth):
    """Smooth zero-mean 1-D noise of length n (std ~ scale)."""
    x = rng.standard_normal(n + 4 * smooth + 1)
    k = np.hanning(2 * smooth + 3)
    k /= k.sum()
    y = np.convolve(x, k, mode="same")[2 * smooth: 2 * smooth + n]
    s = y.std()
    return (y / s if s > 0 else y) * scale


def _fractal(rng, h, w, cell, octaves, persistence=0.55):
    """Fractal value noise in [0, 1], shape (h, w), float32."""
    acc = np.zeros((h, w), np.float32)
    amp, tot = 1.0, 0.0
    for o in range(octaves):
        c = max(2.0, cell / (2 ** o))
        gh, gw = int(h / c) + 3, int(w / c) + 3
        g = rng.standard_normal((gh, gw)).astype(np.float32)
        up = cv2.resize(g, (int(gw * c), int(gh * c)), interpolation=cv2.INTER_CUBIC)
        oy = rng.integers(0, max(1, up.shape[0] - h))
        ox = rng.integers(0, max(1, up.shape[1] - w))
        acc += amp * up[oy:oy + h, ox:ox + w]
        tot += amp
        amp *= persistence
    acc /= tot
    lo, hi = np.percentile(acc, [1, 99])
    return np.clip((acc - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32)


def _hsv_colors(hsv_list):
    """list of (h[0-180), s, v) -> float32 BGR array (n, 3) in [0, 255]."""
    a = np.array(hsv_list, np.float32).reshape(1, -1, 3)
    a[..., 0] %= 180
    a = np.clip(a, 0, 255).astype(np.uint8)
    return cv2.cvtColor(a, cv2.COLOR_HSV2BGR).reshape(-1, 3).astype(np.float32)


def _apply_palette(field, colors, stops):
    out = np.empty(field.shape + (3,), np.float32)
    for ch in range(3):
        out[..., ch] = np.interp(field, stops, colors[:, ch])
    return out


# ----------------------------------------------------------------------------- group setup


def _make_group(seed: int, g: int) -> dict:
    rng = np.random.default_rng([seed, g, 7919])
    W, H = FRAME_SIZES[int(rng.integers(len(FRAME_SIZES)))]
    scale = min(W, H) / 128.0
    hue = rng.uniform(0, 180)
    k = int(rng.integers(3, 6))
    pal = _hsv_colors([(hue + rng.uniform(-25, 25), rng.uniform(30, 200), rng.uniform(40, 230))
                       for _ in range(k)])
    pal = pal[np.argsort(pal.sum(1))]
    stops = np.sort(np.concatenate([[0.0, 1.0], rng.uniform(0.1, 0.9, k - 2)]))

    # background canvas, larger than the frame so clips can crop / pan
    ch, cw = H + 2 * _MARGIN, W + 2 * _MARGIN
    style = ["clouds", "blobs", "stripes"][int(rng.integers(3))]
    field = _fractal(rng, ch, cw, cell=rng.uniform(20, 70) * scale, octaves=int(rng.integers(3, 6)))
    if style == "blobs":
        field = 1.0 / (1.0 + np.exp(-(field - rng.uniform(0.4, 0.6)) * rng.uniform(8, 20)))
    elif style == "stripes":
        warp = _fractal(rng, ch, cw, cell=60 * scale, octaves=2)
        yy, xx = np.mgrid[0:ch, 0:cw].astype(np.float32)
        ang = rng.uniform(0, np.pi)
        per = rng.uniform(12, 40) * scale
        ph = (xx * np.cos(ang) + yy * np.sin(ang)) / per + warp * rng.uniform(1, 3)
        field = 0.55 * (0.5 + 0.5 * np.sin(2 * np.pi * ph)) + 0.45 * field
    contrast = rng.uniform(0.35, 1.0)
    field = 0.5 + (field - 0.5) * contrast
    canvas = _apply_palette(field.astype(np.float32), pal, stops)

    # object colours: hue far from background hue, brightness contrasting on average
    bg_v = float(pal.mean())
    obj_v = rng.uniform(180, 255) if bg_v < 128 else rng.uniform(20, 110)
    obj_hue = hue + rng.uniform(50, 130) * rng.choice([-1, 1])
    obj_cols = _hsv_colors([(obj_hue + rng.uniform(-20, 20), rng.uniform(60, 255),
                             np.clip(obj_v + rng.uniform(-30, 30), 0, 255)) for _ in range(4)])

    return dict(
        W=W, H=H, scale=scale, canvas=canvas, obj_cols=obj_cols, bg_v=bg_v,
        pan=bool(rng.random() < 0.5),
        noise_sigma=float(rng.choice([0.0, rng.uniform(1, 4), rng.uniform(3, 6)])),
        drop_rate=float(rng.choice([0.0, 0.0, rng.uniform(0.02, 0.08)])),
        flicker=float(rng.choice([0.0, rng.uniform(0.01, 0.05)])),
        n_distract=int(rng.integers(0, 3)),
        # particle style
        p_shape=str(rng.choice(["dot", "ring", "glow", "square", "cross"])),
        p_rad=float(rng.uniform(1.0, 3.5) * scale),
        p_count=(int(rng.integers(10, 25)), int(rng.integers(25, 41))),
        p_flicker=float(rng.choice([0.0, rng.uniform(0.1, 0.4)])),
        p_spread=str(rng.choice(["uniform", "gauss", "ring"])),
        # stroke style
        s_width=float(rng.uniform(3, 10) * scale),
        s_tip=bool(rng.random() < 0.5),
        s_dry=float(rng.uniform(0.0, 0.5)),
        s_opacity=float(rng.uniform(0.7, 1.0)),
        fps_range=(8, 30),
    )


# ----------------------------------------------------------------------------- timing
_EASES = {
    "linear": lambda u: u,
    "smooth": lambda u: u * u * (3 - 2 * u),
    "in": lambda u: u * u,
    "out": lambda u: 1 - (1 - u) ** 2,
    "cubic": lambda u: np.where(u < 0.5, 4 * u ** 3, 1 - (-2 * u + 2) ** 3 / 2),
}


def _progress(rng, T):
    """Monotone progress curve (T,) from a0 to a1; distribution is reversal-symmetric
    in shape (ease-in / ease-out equally likely, start / end holds i.i.d.)."""
    v = np.exp(_smooth_noise_1d(rng, T - 1, rng.uniform(0.0, 0.5), 3))  # speed jitter
    t = (np.arange(T - 1) + 0.5) / (T - 1)
    h0, h1 = rng.uniform(0, 0.2, 2) * (rng.random(2) < 0.6)
    v[t < h0] = 0
    v[t > 1 - h1] = 0
    if rng.random() < 0.3:  # mid pause
        c, d = rng.uniform(0.3, 0.7), rng.uniform(0.04, 0.15)
        v[np.abs(t - c) < d / 2] = 0
    if v.sum() <= 0:
        v[:] = 1
    tau = np.concatenate([[0.0], np.cumsum(v)]) / v.sum()
    names = list(_EASES)
    e = _EASES[names[int(rng.integers(len(names)))]](tau)
    a0, a1 = rng.uniform(0, 0.12), rng.uniform(0.88, 1.0)
    return a0 + (a1 - a0) * e


# ----------------------------------------------------------------------------- backgrounds


def _backgrounds(rng, grp, T):
    W, H = grp["W"], grp["H"]
    cv_ = grp["canvas"]
    ch, cw = cv_.shape[:2]
    if grp["pan"]:
        sp = rng.uniform(0.1, _MAX_PAN)
        ang = rng.uniform(0, 2 * np.pi)
        vel = sp * np.array([np.cos(ang), np.sin(ang)])
    else:
        vel = np.zeros(2)
    span = np.abs(vel) * (T - 1)
    cx = rng.uniform(W / 2 + 2, cw - W / 2 - 2 - span[0])
    cy = rng.uniform(H / 2 + 2, ch - H / 2 - 2 - span[1])
    # start at the side such that the whole pan fits
    start = np.array([cx, cy]) + np.where(vel < 0, span, 0.0)
    tint = 1.0 + rng.uniform(-0.08, 0.08, 3).astype(np.float32)
    frames = []
    for t in range(T):
        c = start + vel * t
        frames.append(cv2.getRectSubPix(cv_, (W, H), (float(c[0]), float(c[1]))) * tint)
    # distractor blobs (class-independent, isotropic drift)
    for _ in range(grp["n_distract"]):
        r = rng.uniform(0.08, 0.2) * min(W, H)
        p = rng.uniform([0, 0], [W, H])
        ang = rng.uniform(0, 2 * np.pi)
        v = rng.uniform(0, 0.8) * grp["scale"] * np.array([np.cos(ang), np.sin(ang)])
        col = rng.uniform(0, 255, 3).astype(np.float32)
        alpha = rng.uniform(0.15, 0.4)
        for t in range(T):
            m = np.zeros((H, W), np.float32)
            q = p + v * (t - (T - 1) / 2)
            cv2.circle(m, (int(q[0] * 16), int(q[1] * 16)), int(r * 16), 1.0, -1, cv2.LINE_AA, 4)
            m = cv2.GaussianBlur(m, (0, 0), r / 3)[..., None] * alpha
            frames[t] = frames[t] * (1 - m) + col * m
    return frames


# ----------------------------------------------------------------------------- particles


def _render_particles(rng, grp, frames):
    T = len(frames)
    W, H, s = grp["W"], grp["H"], grp["scale"]
    N = int(rng.integers(grp["p_count"][0], grp["p_count"][1] + 1))
    prog = _progress(rng, T)
    # target wanders slowly (isotropic, centred in time)
    tgt0 = rng.uniform([0.25 * W, 0.25 * H], [0.75 * W, 0.75 * H])
    ang = rng.uniform(0, 2 * np.pi)
    drift = rng.uniform(0, 0.3) * s * np.array([np.cos(ang), np.sin(ang)])
    tgt = tgt0[None] + drift[None] * (np.arange(T)[:, None] - (T - 1) / 2)
    # start offsets
    R = max(W, H)
    if grp["p_spread"] == "uniform":
        p0 = rng.uniform([-0.1 * W, -0.1 * H], [1.1 * W, 1.1 * H], (N, 2)) - tgt0
    elif grp["p_spread"] == "gauss":
        p0 = rng.normal(0, rng.uniform(0.2, 0.4) * R, (N, 2))
    else:
        a = rng.uniform(0, 2 * np.pi, N)
        rr = rng.uniform(0.3, 0.6) * R * rng.uniform(0.85, 1.15, N)
        p0 = np.stack([np.cos(a), np.sin(a)], 1) * rr[:, None]
    r0 = np.hypot(p0[:, 0], p0[:, 1]) + 1e-3
    th0 = np.arctan2(p0[:, 1], p0[:, 0])
    r_end = rng.uniform(0, 0.06) * min(W, H) * rng.uniform(0.3, 1.0, N)
    spin = rng.uniform(-1.5, 1.5) * (rng.random() < 0.6) + rng.normal(0, 0.3, N)
    delay = rng.uniform(0, rng.uniform(0.0, 0.35), N)
    wob_amp = rng.uniform(0, 1.5) * s
    wob = np.stack([_smooth_noise_1d(rng, T, wob_amp, 2) for _ in range(2 * N)], 1).reshape(T, N, 2)

    ei = np.clip((prog[:, None] - delay[None]) / (1 - delay[None] + 1e-6), 0, 1)  # (T, N)
    rad = r0[None] * (1 - ei) + r_end[None] * ei
    th = th0[None] + spin[None] * (1 - ei)
    pos = tgt[:, None, :] + np.stack([rad * np.cos(th), rad * np.sin(th)], -1) + wob

    cols = grp["obj_cols"][rng.integers(0, len(grp["obj_cols"]), N)] * rng.uniform(0.85, 1.15, (N, 1))
    cols = np.clip(cols, 0, 255)
    radii = grp["p_rad"] * rng.uniform(0.6, 1.5, N)
    shape = grp["p_shape"]
    fl = grp["p_flicker"]
    for t in range(T):
        f = frames[t]
        gain = 1 - fl * rng.random(N) if fl > 0 else np.ones(N)
        if shape == "glow":
            layer = np.zeros_like(f)
            amask = np.zeros(f.shape[:2], np.float32)
        for i in range(N):
            c = tuple(float(x) for x in cols[i] * gain[i])
            x, y = pos[t, i]
            if not (-20 < x < W + 20 and -20 < y < H + 20):
                continue
            ctr = (int(round(x * 16)), int(round(y * 16)))
            rr = max(1, int(round(radii[i] * 16)))
            if shape == "dot":
                cv2.circle(f, ctr, rr, c, -1, cv2.LINE_AA, 4)
            elif shape == "ring":
                cv2.circle(f, ctr, rr + 16, c, 1 + int(s), cv2.LINE_AA, 4)
            elif shape == "glow":
                cv2.circle(layer, ctr, rr * 2, c, -1, cv2.LINE_AA, 4)
                cv2.circle(amask, ctr, rr * 2, 1.0, -1, cv2.LINE_AA, 4)
            elif shape == "square":
                d = radii[i]
                cv2.rectangle(f, (int(x - d), int(y - d)), (int(x + d), int(y + d)), c, -1)
            else:
                d = int(round(radii[i] * 2 + 2))
                cv2.drawMarker(f, (int(round(x)), int(round(y))), c, cv2.MARKER_CROSS, d, max(1, int(s)))
        if shape == "glow":  # premultiplied soft sprites: works on dark and light backgrounds
            sig = max(0.8, grp["p_rad"])
            a_ = np.clip(cv2.GaussianBlur(amask, (0, 0), sig) * 1.5, 0, 1)[..., None]
            lay = cv2.GaussianBlur(layer, (0, 0), sig) * 1.5
            frames[t] = f * (1 - a_) + np.minimum(lay, a_ * 255)
    return frames


# ----------------------------------------------------------------------------- strokes


def _stroke_path(rng, W, H, length, M):
    step = length / M
    m = 0.12
    pos = rng.uniform([m * W, m * H], [(1 - m) * W, (1 - m) * H])
    head = rng.uniform(0, 2 * np.pi)
    kappa = _smooth_noise_1d(rng, M, rng.uniform(0.02, 0.15), int(rng.integers(3, 12)))
    kappa += rng.uniform(-0.04, 0.04)
    ctr = np.array([W / 2, H / 2])
    lim = 0.38 * np.array([W, H])
    pts = [pos.copy()]
    for i in range(M):
        head += kappa[i]
        d = (pos - ctr) / lim
        if np.hypot(*d) > 1.0:  # steer back towards the centre
            want = math.atan2(ctr[1] - pos[1], ctr[0] - pos[0])
            head += 0.25 * math.atan2(math.sin(want - head), math.cos(want - head))
        pos = pos + step * np.array([math.cos(head), math.sin(head)])
        pts.append(pos.copy())
    return np.array(pts)


def _render_stroke(rng, grp, frames):
    T = len(frames)
    W, H, s = grp["W"], grp["H"], grp["scale"]
    n_str = 1 if rng.random() < 0.65 else 2
    BIG = 1e6
    P = np.full((H, W), BIG, np.float32)
    M = 120
    paths, widths = [], []
    for k in range(n_str):
        L = rng.uniform(0.9, 2.6) * min(W, H) / n_str ** 0.5
        pts = _stroke_path(rng, W, H, L, M)
        w = grp["s_width"] * rng.uniform(0.7, 1.3) * np.exp(_smooth_noise_1d(rng, M + 1, 0.25, 6))
        if rng.random() < 0.5:  # pressure taper at both ends
            u = np.linspace(0, 1, M + 1)
            w *= 0.4 + 0.6 * np.sin(np.pi * u) ** 0.5
        paths.append(pts)
        widths.append(w)
    # draw segments latest-first so every pixel keeps the earliest time the brush reaches it
    for k in reversed(range(n_str)):
        pts, w = paths[k], widths[k]
        for i in reversed(range(M)):
            a = (int(round(pts[i, 0] * 16)), int(round(pts[i, 1] * 16)))
            b = (int(round(pts[i + 1, 0] * 16)), int(round(pts[i + 1, 1] * 16)))
            cv2.line(P, a, b, float(k + i / M), max(1, int(round(w[i]))), cv2.LINE_8, 4)
    inside = P < BIG
    frac = np.where(inside, P / n_str, 0).astype(np.float32)
    cols = grp["obj_cols"]
    c0, c1 = cols[rng.integers(len(cols))], cols[rng.integers(len(cols))]
    c1 = np.clip(c1 * rng.uniform(0.7, 1.3), 0, 255)
    colour = c0[None, None] + (c1 - c0)[None, None] * frac[..., None]
    tex = _fractal(rng, H, W, cell=rng.uniform(3, 8) * s, octaves=2)
    colour *= (0.8 + 0.4 * tex)[..., None]
    alpha = grp["s_opacity"] * np.clip((tex - grp["s_dry"] * 0.6) * 4 + 0.3, 0.15, 1.0)
    alpha = alpha.astype(np.float32)

    prog = _progress(rng, T) * n_str
    tip_col = np.clip(255 - c0, 0, 255)
    tip_r = grp["s_width"] * 0.7
    for t in range(T):
        vis = (P <= prog[t]).astype(np.float32)
        vis = cv2.GaussianBlur(vis, (3, 3), 0) * alpha
        f = frames[t] * (1 - vis[..., None]) + colour * vis[..., None]
        if grp["s_tip"]:
            k = min(int(prog[t]), n_str - 1)
            u = (prog[t] - k) * M
            if 0.0 < u < M:
                i = int(u)
                fr = u - i
                x, y = paths[k][i] * (1 - fr) + paths[k][min(i + 1, M)] * fr
                cv2.circle(f, (int(round(x * 16)), int(round(y * 16))), int(tip_r * 16) + 16,
                           tuple(float(v) for v in tip_col), max(1, int(s)), cv2.LINE_AA, 4)
        frames[t] = f
    return frames


# ----------------------------------------------------------------------------- clip


def _make_clip(seed, grp, g, cls_idx, c):
    """Returns (frames uint8 list, fps, (fourcc, ext))."""
    label = LABELS[cls_idx]
    kind, rev = _CLASS_SPEC[label]
    rng = np.random.default_rng([seed, g, cls_idx, c])
    T = int(rng.integers(16, _MAX_T + 1))
    fps = int(rng.integers(grp["fps_range"][0], grp["fps_range"][1] + 1))
    codecs = readable_codecs(tuple(_CODECS))
    codec = codecs[int(rng.integers(len(codecs)))]
    frames = _backgrounds(rng, grp, T)
    if kind == "particles":
        frames = _render_particles(rng, grp, frames)
    else:
        frames = _render_stroke(rng, grp, frames)
    gain = 1 + (_smooth_noise_1d(rng, T, grp["flicker"], 2) if grp["flicker"] > 0 else np.zeros(T))
    out = []
    for t in range(T):
        f = frames[t] * gain[t]
        if grp["noise_sigma"] > 0:
            f = f + rng.normal(0, grp["noise_sigma"], f.shape).astype(np.float32)
        out.append(np.clip(f, 0, 255).astype(np.uint8))
    if grp["drop_rate"] > 0:  # dropped frame -> previous one repeated (pairs stay pairs under reversal)
        for t in range(1, T):
            if rng.random() < grp["drop_rate"]:
                out[t] = out[t - 1]
    if rev:
        out = out[::-1]
    return out, fps, codec


def _write(path_noext, frames, fps, codec):
    fourcc, ext = codec
    final = f"{path_noext}.{ext}"
    write_video_atomic(final, frames, fps, fourcc)
    return final


# ----------------------------------------------------------------------------- API


def make_dataset(out_dir, seed: int = 0, clips_per_class: int = 30, groups_per_class: int = 6,
                 test_groups_per_class: int = 2) -> dict:
    """Write out_dir/train/<label>/v_<label>_gNN_cNN.<ext> and out_dir/test/<label>/... ; returns
    {"train": n_train_clips, "test": n_test_clips, "labels": [...]}"""
    if not 0 <= test_groups_per_class <= groups_per_class:
        raise ValueError("test_groups_per_class must be in [0, groups_per_class]")
    base, extra = divmod(clips_per_class, groups_per_class)
    counts = {"train": 0, "test": 0}
    for g in range(1, groups_per_class + 1):
        n_g = base + (1 if g <= extra else 0)
        if n_g == 0:
            continue
        split = "test" if g > groups_per_class - test_groups_per_class else "train"
        grp = _make_group(seed, g)
        for ci, label in enumerate(LABELS):
            d = os.path.join(out_dir, split, label)
            os.makedirs(d, exist_ok=True)
            for c in range(1, n_g + 1):
                frames, fps, codec = _make_clip(seed, grp, g, ci, c)
                _write(os.path.join(d, f"v_{label}_g{g:02d}_c{c:02d}"), frames, fps, codec)
                counts[split] += 1
    return {"train": counts["train"], "test": counts["test"], "labels": list(LABELS)}


if __name__ == "__main__":
    run_cli(make_dataset, __doc__.split("\n")[0])
