"""Synthetic "order-only" video dataset: rotation direction and approach/recede.

What it makes
-------------
Four action classes arranged as two time-reversed pairs:

* ``rotate_cw``  / ``rotate_ccw`` -- a flat object spinning in its own plane,
  clockwise vs counter-clockwise as seen on screen, at a constant depth.
* ``approach``   / ``recede``     -- a flat object moving towards / away from a
  pinhole camera: its image grows / shrinks like 1/z, drifts away from / towards
  the vanishing point, and its (tilted) outline changes its perspective
  foreshortening with depth.

Why only frame order tells the classes of a pair apart
------------------------------------------------------
For every clip, a parameter set is drawn from ONE distribution per pair and
rendered forwards in time.  For the first class of a pair (``rotate_cw``,
``approach``) the frames are written as rendered; for the partner class
(``rotate_ccw``, ``recede``) an independent clip is drawn from the very same
distribution and its frame order is reversed before encoding.  Every nuisance
process is time-reversal symmetric (start angles uniform, distractor and drift
velocities drawn from symmetric distributions, per-frame noise / flicker /
camera shake i.i.d.), so the partner class is distributed exactly like the
time-reversed first class: any single frame, and any order-free statistic of the
set of frames (mean frame, histograms, bag of frames, ...), has the same
distribution for both classes of a pair.  Only the temporal order carries the
label.  (The two pairs differ from each other in frame statistics too -- a
constant-size object vs. one whose size varies -- which is fine: the test is
within pairs.)

Variation axes
--------------
* recording group (UCF101-style ``gNN``, shared by all 4 classes, never split
  between train and test): background texture (blurred colour noise, linear /
  radial gradient, stripes, checkerboard, with random colours), frame size
  (160x120, 176x144, 240x180, 320x240; cycled over groups so the train groups
  cover all sizes), focal length / principal point, focus blur, white balance,
  sensor-noise level, camera-shake amplitude;
* per clip: codec (MJPG .avi / mp4v .mp4, whichever cv2 can write *and* read
  back here), object family (irregular polygon with 3-7 vertices, star, notched
  ellipse, cv2.putText letter), object colours and inner pattern, object size
  and position, out-of-plane tilt, rotation speed (1-6 deg/frame), approach
  speed / depth range, clip length (24-80 frames), fps (12-30), a slowly moving
  distractor object in about half the clips (in front of or behind the object),
  Gaussian sensor noise and slight brightness flicker.

Layout: ``out_dir/{train,test}/<label>/v_<label>_gNN_cNN.<ext>``; the last
``test_groups_per_class`` recording groups are the test split.

Only numpy and cv2 are used.  Usage::

    python video_rotation.py OUT_DIR [--seed 0]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # video_io.py beside this file, also when loaded by path
from video_io import readable_codecs, run_cli, write_video_atomic  # noqa: E402

# (label of the forward-rendered class, label of its time-reversed partner, motion kind)
PAIRS = (("rotate_cw", "rotate_ccw", "rotate"), ("approach", "recede", "approach"))
LABELS = [lab for a, b, _ in PAIRS for lab in (a, b)]

FRAME_SIZES = ((160, 120), (176, 144), (240, 180), (320, 240))  # (W, H)
CODECS = (("MJPG", ".avi"), ("mp4v", ".mp4"))
SPRITE = 256  # side of the square sprite canvas the object is drawn on
LETTERS = "FGJKLPQR247"  # characters without rotational / mirror symmetry
FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
         cv2.FONT_HERSHEY_TRIPLEX)

def _rand_color(rng, sat=(0.35, 1.0), val=(0.3, 1.0), hue=None) -> np.ndarray:
    h = rng.uniform(0, 180) if hue is None else hue % 180  # OpenCV hue range 0..180
    hsv = np.uint8([[[h, rng.uniform(*sat) * 255, rng.uniform(*val) * 255]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def _contrasting_color(rng, ref: np.ndarray, min_dist: float = 90.0) -> np.ndarray:
    best, best_d = None, -1.0
    for _ in range(12):
        c = _rand_color(rng)
        d = float(np.linalg.norm(c - ref))
        if d > best_d:
            best, best_d = c, d
        if d >= min_dist:
            break
    return best


# ----------------------------------------------------------------------------- backgrounds


def _make_background(rng, w: int, h: int, hue: float) -> np.ndarray:
    """Float32 BGR texture of size (h, w, 3); ``hue`` is the group's dominant hue."""
    c1 = _rand_color(rng, (0.1, 0.9), (0.2, 0.95), hue=hue)
    c2 = _rand_color(rng, (0.1, 0.9), (0.2, 0.95),
                     hue=hue + rng.uniform(-50, 50) if rng.random() < 0.6 else None)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    kind = rng.choice(["noise", "gradient", "stripes", "checker"])
    if kind == "noise":
        sigma = rng.uniform(1.5, 10.0)
        t = cv2.GaussianBlur(rng.standard_normal((h, w), dtype=np.float32), (0, 0), sigma)
        t = (t - t.min()) / (np.ptp(t) + 1e-6)
    elif kind == "gradient":
        if rng.random() < 0.6:
            a = rng.uniform(0, 2 * np.pi)
            t = xx * np.cos(a) + yy * np.sin(a)
        else:
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            t = np.hypot(xx - cx, yy - cy)
        t = (t - t.min()) / (np.ptp(t) + 1e-6)
    elif kind == "stripes":
        a = rng.uniform(0, np.pi)
        period = rng.uniform(6, 40)
        s = (xx * np.cos(a) + yy * np.sin(a)) / period
        t = 0.5 + 0.5 * np.sin(2 * np.pi * s) if rng.random() < 0.5 else (s % 1.0 < 0.5)
        t = t.astype(np.float32)
    else:  # checkerboard, possibly rotated
        a = rng.uniform(0, np.pi / 2) if rng.random() < 0.5 else 0.0
        cell = rng.uniform(6, 32)
        u = (xx * np.cos(a) + yy * np.sin(a)) / cell
        v = (-xx * np.sin(a) + yy * np.cos(a)) / cell
        t = ((np.floor(u) + np.floor(v)) % 2).astype(np.float32)
    t = t[..., None]
    bg = c1 * (1 - t) + c2 * t
    # faint low-frequency shading + fine grain so every texture has some structure
    shade = cv2.GaussianBlur(rng.standard_normal((h, w), dtype=np.float32), (0, 0), max(w, h) / 6)
    shade = shade / (np.abs(shade).max() + 1e-6)
    bg = bg * (1 + 0.12 * shade[..., None]) + rng.normal(0, 3, (h, w, 1)).astype(np.float32)
    return np.clip(bg, 0, 255).astype(np.float32)


# ----------------------------------------------------------------------------- sprites


def _make_sprite(rng, bg_mean: np.ndarray):
    """Object drawn on a SPRITE x SPRITE canvas: (colour float32 HxWx3, alpha float32 HxW)."""
    S, c = SPRITE, SPRITE / 2
    R = 0.86 * c
    mask = np.zeros((S, S), np.uint8)
    fam = rng.choice(["polygon", "star", "ellipse", "letter"])
    sh = 4  # fixed-point sub-pixel bits for drawing
    if fam == "polygon":
        n = int(rng.integers(3, 8))
        base = np.arange(n) * 2 * np.pi / n + rng.uniform(0, 2 * np.pi)
        ang = base + rng.uniform(-0.35, 0.35, n) * (2 * np.pi / n)
        rad = R * rng.uniform(0.55, 1.0, n)
        pts = np.stack([c + rad * np.cos(ang), c + rad * np.sin(ang)], 1)
        cv2.fillPoly(mask, [np.round(pts * (1 << sh)).astype(np.int32)], 255, cv2.LINE_AA, sh)
    elif fam == "star":
        n = int(rng.integers(4, 9))
        inner = rng.uniform(0.35, 0.6)
        ang = np.arange(2 * n) * np.pi / n + rng.uniform(0, 2 * np.pi)
        outer = rng.uniform(0.7, 1.0, 2 * n)  # uneven arms break the n-fold symmetry
        rad = R * np.where(np.arange(2 * n) % 2 == 0, outer, inner)
        pts = np.stack([c + rad * np.cos(ang), c + rad * np.sin(ang)], 1)
        cv2.fillPoly(mask, [np.round(pts * (1 << sh)).astype(np.int32)], 255, cv2.LINE_AA, sh)
    elif fam == "ellipse":
        ax = (int(R), int(R * rng.uniform(0.45, 0.85)))
        rot = rng.uniform(0, 360)
        cv2.ellipse(mask, (int(c), int(c)), ax, rot, 0, 360, 255, -1, cv2.LINE_AA)
        # notch: a wedge cut out of the rim so the rotation is visible
        na = np.deg2rad(rot + rng.uniform(-60, 60))
        half = rng.uniform(0.18, 0.35)
        p0 = (c + 0.25 * R * np.cos(na), c + 0.25 * R * np.sin(na))
        wedge = np.array([p0,
                          (c + 1.3 * R * np.cos(na - half), c + 1.3 * R * np.sin(na - half)),
                          (c + 1.3 * R * np.cos(na + half), c + 1.3 * R * np.sin(na + half))])
        cv2.fillPoly(mask, [np.round(wedge * (1 << sh)).astype(np.int32)], 0, cv2.LINE_AA, sh)
    else:  # letter
        ch = LETTERS[int(rng.integers(len(LETTERS)))]
        font = FONTS[int(rng.integers(len(FONTS)))]
        thick = int(rng.integers(14, 28))
        (tw, th), base = cv2.getTextSize(ch, font, 1.0, thick)
        scale = 1.55 * R / max(tw, th + base)
        (tw, th), base = cv2.getTextSize(ch, font, scale, thick)
        org = (int(c - tw / 2), int(c + th / 2))
        cv2.putText(mask, ch, org, font, scale, 255, thick, cv2.LINE_AA)
        # re-centre on the mask's bounding box
        ys, xs = np.nonzero(mask > 127)
        if len(xs):
            dx, dy = c - (xs.min() + xs.max()) / 2, c - (ys.min() + ys.max()) / 2
            mask = cv2.warpAffine(mask, np.float32([[1, 0, dx], [0, 1, dy]]), (S, S))

    base_col = _contrasting_color(rng, bg_mean)
    col = np.empty((S, S, 3), np.float32)
    col[:] = base_col
    # inner pattern (second colour): none, stripes, a dot, or a half
    pat = rng.choice(["none", "stripes", "dot", "half"])
    col2 = _contrasting_color(rng, base_col, 70.0)
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32)
    if pat == "stripes":
        a, period = rng.uniform(0, np.pi), rng.uniform(18, 45)
        m = ((xx * np.cos(a) + yy * np.sin(a)) / period) % 1.0 < 0.45
        col[m] = col2
    elif pat == "half":
        a = rng.uniform(0, 2 * np.pi)
        m = ((xx - c) * np.cos(a) + (yy - c) * np.sin(a)) > rng.uniform(-10, 30)
        col[m] = col2
    if pat == "dot" or fam in ("polygon", "star") and rng.random() < 0.5:
        # off-centre marker dot that makes in-plane rotation visible
        ys, xs = np.nonzero(mask > 200)
        if len(xs):
            k = int(rng.integers(len(xs)))
            px, py = c + 0.6 * (xs[k] - c), c + 0.6 * (ys[k] - c)
            cv2.circle(col, (int(px), int(py)), int(rng.uniform(10, 20)), col2.tolist(), -1,
                       cv2.LINE_AA)
    # dark/bright outline along the contour (half of it survives the alpha cut)
    cnts, _ = cv2.findContours((mask > 127).astype(np.uint8), cv2.RETR_EXTERNAL,
                               cv2.CHAIN_APPROX_SIMPLE)
    edge = (base_col * rng.uniform(0.2, 0.5)).tolist()
    cv2.drawContours(col, cnts, -1, edge, int(rng.integers(4, 10)), cv2.LINE_AA)
    alpha = mask.astype(np.float32) / 255.0
    return col, alpha


# ----------------------------------------------------------------------------- geometry


def _rot(ax: str, a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    if ax == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if ax == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])  # z: clockwise on screen (y down)


def _homography(spin, tilt_x, tilt_y, X, Y, Z, f, cx, cy) -> np.ndarray:
    """Sprite canvas -> image homography for a unit square card (corners (+-1, +-1))."""
    corners = np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], np.float64)
    Rm = _rot("x", tilt_x) @ _rot("y", tilt_y) @ _rot("z", spin)
    P = corners @ Rm.T + np.array([X, Y, Z])
    uv = np.stack([cx + f * P[:, 0] / P[:, 2], cy + f * P[:, 1] / P[:, 2]], 1)
    src = np.float32([[0, 0], [SPRITE, 0], [SPRITE, SPRITE], [0, SPRITE]])
    return cv2.getPerspectiveTransform(src, uv.astype(np.float32))


# ----------------------------------------------------------------------------- groups & clips


def _make_group(rng, size: tuple, hue: float) -> dict:
    w, h = size
    margin = 4
    return {
        "size": (w, h),
        "bg": _make_background(rng, w + 2 * margin, h + 2 * margin, hue),
        "margin": margin,
        "focal": w * rng.uniform(0.9, 1.4),
        "pp": (w / 2 + rng.uniform(-0.06, 0.06) * w, h / 2 + rng.uniform(-0.06, 0.06) * h),
        "blur": float(rng.choice([0.0, rng.uniform(0.4, 1.0)])),
        "wb": rng.uniform(0.9, 1.1, 3).astype(np.float32),
        "noise": (rng.uniform(1.0, 3.0), rng.uniform(3.0, 6.0)),
        "shake": float(rng.uniform(0.0, 1.0)),
    }


def _render_clip(rng, group: dict, kind: str) -> list:
    """Render one clip forwards in time; returns a list of uint8 BGR frames."""
    W, H = group["size"]
    f = group["focal"]
    cx, cy = group["pp"]
    m = group["margin"]
    T = int(rng.integers(24, 81))
    bg_full = group["bg"]
    bg_mean = bg_full.reshape(-1, 3).mean(0)
    col, alpha = _make_sprite(rng, bg_mean)
    mn = min(W, H)
    t = np.arange(T, dtype=np.float64)

    spin0 = rng.uniform(0, 2 * np.pi)
    if kind == "rotate":
        omega = np.deg2rad(rng.uniform(1.0, 6.0))  # deg / frame, clockwise on screen
        spin = spin0 + omega * t * (1 + 0.03 * np.sin(2 * np.pi * t / T * rng.uniform(0.5, 2)))
        tilt_x, tilt_y = np.deg2rad(rng.uniform(-20, 20, 2))
        r = np.full(T, rng.uniform(0.2, 0.36) * mn)  # image half-size of the card
        Z = f / r
        # small drift with symmetric velocity
        p0 = np.array([rng.uniform(-0.15, 0.15) * W, rng.uniform(-0.15, 0.15) * H])
        v = rng.normal(0, 0.15, 2)
        off = p0[None] + v[None] * (t - T / 2)[:, None]
        X, Y = off[:, 0] * Z / f, off[:, 1] * Z / f
    else:  # approach: depth decreases linearly, image size ~ 1/z
        omega = np.deg2rad(rng.uniform(-1.0, 1.0))  # symmetric mild spin
        spin = spin0 + omega * t
        tilt_x, tilt_y = np.deg2rad(rng.uniform(-35, 35, 2))
        r_end = rng.uniform(0.26, 0.4) * mn
        growth = np.exp(rng.uniform(np.log(1.7), np.log(3.2)))
        r_start = r_end / growth
        Z0, Z1 = f / r_start, f / r_end
        Z = Z0 + (Z1 - Z0) * t / (T - 1)
        # lateral world offset fixed: image centre moves away from the vanishing point
        end_off = np.array([rng.uniform(-1, 1) * (W / 2 - r_end) * 0.6,
                            rng.uniform(-1, 1) * (H / 2 - r_end) * 0.6])
        X = np.full(T, end_off[0] * Z1 / f)
        Y = np.full(T, end_off[1] * Z1 / f)

    # distractor: small shape moving slowly along a straight line (symmetric velocity)
    dist = None
    if rng.random() < 0.5:
        speed = rng.uniform(0.2, 1.2)
        a = rng.uniform(0, 2 * np.pi)
        start = np.array([rng.uniform(0.1, 0.9) * W, rng.uniform(0.1, 0.9) * H])
        pos = start[None] + (speed * (t - T / 2))[:, None] * np.array([np.cos(a), np.sin(a)])[None]
        dist = {"pos": pos, "r": rng.uniform(0.04, 0.09) * mn,
                "shape": rng.choice(["circle", "square", "triangle"]),
                "color": _contrasting_color(rng, bg_mean, 60).tolist(),
                "front": rng.random() < 0.5}

    noise_sd = rng.uniform(*group["noise"])
    flicker = rng.uniform(0.0, 0.025)
    wb = group["wb"] * rng.uniform(0.97, 1.03, 3).astype(np.float32)
    frames = []
    for i in range(T):
        if group["shake"] > 0:
            dx, dy = np.clip(np.round(rng.normal(0, group["shake"], 2)), -m, m).astype(int)
        else:
            dx = dy = 0
        frame = bg_full[m + dy:m + dy + H, m + dx:m + dx + W].copy()
        if dist is not None and not dist["front"]:
            _draw_distractor(frame, dist, i)
        Hm = _homography(spin[i], tilt_x, tilt_y, X[i], Y[i], Z[i], f, cx, cy)
        a = cv2.warpPerspective(alpha, Hm, (W, H), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        c = cv2.warpPerspective(col, Hm, (W, H), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE)
        a = a[..., None]
        frame = frame * (1 - a) + c * a
        if dist is not None and dist["front"]:
            _draw_distractor(frame, dist, i)
        if group["blur"] > 0:
            frame = cv2.GaussianBlur(frame, (0, 0), group["blur"])
        frame = frame * (wb * (1 + rng.uniform(-flicker, flicker)))
        frame += rng.standard_normal(frame.shape, dtype=np.float32) * noise_sd
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
    return frames


def _draw_distractor(frame: np.ndarray, d: dict, i: int) -> None:
    sh = 4
    x, y = d["pos"][i]
    r = d["r"]
    if d["shape"] == "circle":
        cv2.circle(frame, (int(x * 16), int(y * 16)), int(r * 16), d["color"], -1, cv2.LINE_AA, sh)
        return
    if d["shape"] == "square":
        pts = np.array([[x - r, y - r], [x + r, y - r], [x + r, y + r], [x - r, y + r]])
    else:
        ang = np.array([-np.pi / 2, np.pi / 6, 5 * np.pi / 6])
        pts = np.stack([x + r * 1.2 * np.cos(ang), y + r * 1.2 * np.sin(ang)], 1)
    cv2.fillPoly(frame, [np.round(pts * 16).astype(np.int32)], d["color"], cv2.LINE_AA, sh)


# ----------------------------------------------------------------------------- public API


def make_dataset(out_dir, seed: int = 0, clips_per_class: int = 30, groups_per_class: int = 6,
                 test_groups_per_class: int = 2) -> dict:
    """Write out_dir/train/<label>/v_<label>_gNN_cNN.<ext> and out_dir/test/<label>/... ; returns
    {"train": n_train_clips, "test": n_test_clips, "labels": [...]}"""
    if not 0 <= test_groups_per_class <= groups_per_class:
        raise ValueError("need 0 <= test_groups_per_class <= groups_per_class")
    if groups_per_class < 1 or groups_per_class > 99 or clips_per_class < 0:
        raise ValueError("need 1 <= groups_per_class <= 99 and clips_per_class >= 0")
    codecs = readable_codecs(tuple(CODECS))
    out_dir = os.fspath(out_dir)
    for split in ("train", "test"):
        for lab in LABELS:
            os.makedirs(os.path.join(out_dir, split, lab), exist_ok=True)

    base_q, rem = divmod(clips_per_class, groups_per_class)
    counts = {"train": 0, "test": 0}
    # frame sizes cycle over groups in a seeded order, so the train groups cover every size
    ds_rng = np.random.default_rng([seed, 0])
    size_order = ds_rng.permutation(len(FRAME_SIZES))
    hue0 = ds_rng.uniform(0, 180)  # group hues spread by the golden ratio: distinct looks
    for g in range(groups_per_class):
        n_clips = base_q + (1 if g < rem else 0)
        size = FRAME_SIZES[int(size_order[g % len(FRAME_SIZES)])]
        hue = hue0 + 180 * 0.618034 * g + np.random.default_rng([seed, 3, g]).uniform(-15, 15)
        group = _make_group(np.random.default_rng([seed, 1, g]), size, hue)
        split = "test" if g >= groups_per_class - test_groups_per_class else "train"
        for p, (lab_fwd, lab_rev, kind) in enumerate(PAIRS):
            for li, lab in enumerate((lab_fwd, lab_rev)):
                for c in range(n_clips):
                    # independent draw per (label, group, clip), same distribution within a pair
                    rng = np.random.default_rng([seed, 2, g, p, li, c])
                    fps = int(rng.integers(12, 31))
                    # codec per clip (a transcoding choice, not part of the recording setup),
                    # so that neither split nor class is tied to one container
                    fourcc, ext = codecs[int(rng.integers(len(codecs)))]
                    frames = _render_clip(rng, group, kind)
                    if li == 1:
                        frames = frames[::-1]  # partner class = time-reversed clip
                    name = f"v_{lab}_g{g + 1:02d}_c{c + 1:02d}{ext}"
                    write_video_atomic(os.path.join(out_dir, split, lab, name), frames, fps, fourcc)
                    counts[split] += 1
    return {"train": counts["train"], "test": counts["test"], "labels": list(LABELS)}


if __name__ == "__main__":
    run_cli(make_dataset, __doc__.split("\n")[0])
