"""Synthetic "order-only" videos about things appearing and disappearing.

Four classes in two time-reversed pairs:

* ``place_items`` / ``remove_items``: small objects (varied shapes, colours, textures) pop or
  fade in one at a time at random places on a textured, cluttered scene / the same kind of clip
  played backwards, so they vanish one at a time.
* ``fill_up`` / ``drain_out``: one or two outlined containers (tank, tube, bowl, blob) fill with a
  colour or texture from one side (bottom, top, left or right) / played backwards, they empty.

Why only temporal order separates a pair: both classes of a pair draw their clips from ONE
distribution and render them forwards; the first class writes the frames as rendered, the
partner draws an independent clip from the very same distribution and writes its frames in
reverse order. A reversed clip holds exactly the frames of a forward one, so any single frame and
any order-free statistic (mean colour, histogram, the set of object sizes) has the same
distribution within a pair. The nuisances are time-reversal symmetric as well: sensor noise and
flicker are i.i.d. per frame, camera shake is an i.i.d. offset per frame, the optional distractor
bounces around with a velocity from a symmetric distribution, the start and end margins are i.i.d.
from one distribution and occluders are static. Little optical flow separates the classes either:
an object popping in and one popping out move nothing.

Recording groups (``v_<label>_gNN_cNN``) share a scene: background kind and colours, object
palette, frame size, codec, fps, noise, flicker and shake levels. Group ``gNN`` of both classes of a
pair uses the same scene (its clips are still drawn independently), so with only a few groups per
class no chance scene difference can stand in for the label. The last ``test_groups_per_class``
groups of each class form the test split.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # video_io.py beside this file, also when loaded by path
from video_io import readable_codecs, run_cli, write_video_atomic  # noqa: E402

PAIRS = (("place_items", "remove_items"), ("fill_up", "drain_out"))
LABELS = [label for pair in PAIRS for label in pair]
CODECS = (("MJPG", "avi"), ("mp4v", "mp4"), ("XVID", "avi"))
FRAME_SIZES = ((160, 120), (128, 128), (192, 144))  # (width, height)
PAD = 4  # canvas margin for the camera shake, in pixels
BACKGROUNDS = ("gradient", "noise", "stripes", "clutter")


def _colour(rng, sat=(0.5, 1.0), val=(0.5, 1.0)) -> np.ndarray:
    """A random RGB colour (float 0..255) from hue / saturation / value ranges."""
    hsv = np.uint8([[[rng.integers(0, 180), 255 * rng.uniform(*sat), 255 * rng.uniform(*val)]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _contrasting(rng, against: np.ndarray, sat, val, min_dist: float = 110.0) -> np.ndarray:
    """A colour at least ``min_dist`` (RGB distance) from ``against``, best of a few tries."""
    best, best_dist = None, -1.0
    for _ in range(20):
        c = _colour(rng, sat, val)
        dist = float(np.linalg.norm(c - against))
        if dist >= min_dist:
            return c
        if dist > best_dist:
            best, best_dist = c, dist
    return best


def _scene(rng) -> dict:
    """Parameters one recording group shares."""
    width, height = FRAME_SIZES[rng.integers(len(FRAME_SIZES))]
    codecs = readable_codecs(CODECS)
    fourcc, ext = codecs[rng.integers(len(codecs))]
    dark = rng.random() < 0.5
    val = (0.15, 0.45) if dark else (0.55, 0.95)
    return {
        "size": (int(width), int(height)), "fourcc": fourcc, "ext": ext.lstrip("."),
        "fps": int(rng.integers(15, 31)), "background": BACKGROUNDS[rng.integers(len(BACKGROUNDS))],
        "bg_colours": [_colour(rng, (0.0, 0.6), val) for _ in range(3)],
        "palette": {"sat": (0.55, 1.0), "val": (0.75, 1.0)} if dark else {"sat": (0.6, 1.0), "val": (0.25, 0.9)},
        "noise": rng.uniform(1.0, 7.0), "flicker": rng.uniform(0.0, 0.05), "shake": int(rng.integers(0, PAD + 1)),
        "p_distractor": rng.uniform(0.0, 0.6), "p_occluder": rng.uniform(0.0, 0.5),
    }


def _background(scene: dict, rng, h: int, w: int) -> np.ndarray:
    """A static background canvas, float32 RGB [h, w, 3]."""
    c0, c1, c2 = scene["bg_colours"]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    kind = scene["background"]
    if kind == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        t = xx * np.cos(angle) + yy * np.sin(angle)
        t = ((t - t.min()) / (np.ptp(t) + 1e-6))[..., None]
        return (1 - t) * c0 + t * c1
    if kind == "noise":
        coarse = rng.random((int(rng.integers(3, 9)), int(rng.integers(3, 9)))).astype(np.float32)
        t = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)[..., None]
        fine = rng.random((h, w, 1)).astype(np.float32)
        return (1 - t) * c0 + t * c1 + (fine - 0.5) * 30
    if kind == "stripes":
        angle, period = rng.uniform(0, np.pi), rng.uniform(8, 24)
        t = 0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period)
        return (1 - t[..., None]) * c0 + t[..., None] * c1
    canvas = np.empty((h, w, 3), np.float32)  # clutter: static random shapes on a flat colour
    canvas[:] = c0
    for _ in range(int(rng.integers(8, 20))):
        colour = tuple(float(v) for v in (c1 if rng.random() < 0.5 else c2) + rng.normal(0, 12, 3))
        x, y, r = int(rng.integers(0, w)), int(rng.integers(0, h)), int(rng.integers(4, max(6, h // 5)))
        if rng.random() < 0.5:
            cv2.circle(canvas, (x, y), r, colour, -1, cv2.LINE_AA)
        else:
            cv2.rectangle(canvas, (x - r, y - r // 2), (x + r, y + r // 2), colour, -1)
    return canvas


def _object_patch(rng, radius: int, colour: np.ndarray):
    """One small object: (alpha [s, s], colour [s, s, 3]) with a random shape and texture."""
    size = 2 * radius + 3
    c = size // 2
    mask = np.zeros((size, size), np.float32)
    shape = rng.integers(6)
    rot = rng.uniform(0, 2 * np.pi)
    if shape == 0:
        cv2.circle(mask, (c, c), radius, 1.0, -1, cv2.LINE_AA)
    elif shape == 1:
        cv2.ellipse(mask, (c, c), (radius, max(2, int(radius * rng.uniform(0.45, 0.75)))),
                    np.degrees(rot), 0, 360, 1.0, -1, cv2.LINE_AA)
    elif shape == 2:
        cv2.circle(mask, (c, c), radius - 1, 1.0, max(3, radius // 2), cv2.LINE_AA)
    else:  # polygons: triangle, square, star
        if shape == 4:
            k, radii = 4, np.full(4, radius)
        elif shape == 3:
            k, radii = 3, np.full(3, radius)
        else:
            k, radii = 10, np.tile([radius, radius * 0.5], 5)
        ang = rot + 2 * np.pi * np.arange(k) / k
        pts = np.stack([c + radii * np.cos(ang), c + radii * np.sin(ang)], 1)
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1.0, cv2.LINE_AA)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) - c
    texture = rng.integers(4)
    if texture == 1:  # stripes
        shade = 0.6 + 0.4 * (np.sin((xx * np.cos(rot) + yy * np.sin(rot)) * rng.uniform(0.6, 1.2)) > 0)
    elif texture == 2:  # checker
        cell = max(2, radius // 3)
        shade = 0.6 + 0.4 * (((xx + c) // cell + (yy + c) // cell) % 2)
    elif texture == 3:  # shaded like a lit ball
        shade = 1.0 - 0.5 * np.clip(np.hypot(xx + radius * 0.3, yy + radius * 0.3) / (1.6 * radius), 0, 1)
    else:
        shade = np.ones_like(xx)
    rgb = colour * shade[..., None]
    if rng.random() < 0.5:  # a darker rim
        rim = mask - cv2.erode(mask, np.ones((3, 3), np.uint8))
        rgb = rgb * (1 - 0.6 * rim[..., None])
    return mask, rgb.astype(np.float32)


def _place_items(frames: np.ndarray, scene: dict, rng, start: int, end: int) -> None:
    """Objects appear one at a time (each over 1-3 frames) and stay."""
    t_len, h, w, _ = frames.shape
    n = int(rng.integers(3, 8))
    base = min(h, w) - 2 * PAD
    mean_bg = frames[0].reshape(-1, 3).mean(0)
    span = max(1, end - start - 2)
    centres = []
    for i in range(n):
        radius = int(round(base * rng.uniform(0.08, 0.13)))
        for _ in range(30):  # keep objects apart where possible
            x = int(rng.integers(PAD + radius + 1, w - PAD - radius - 2))
            y = int(rng.integers(PAD + radius + 1, h - PAD - radius - 2))
            if all(np.hypot(x - a, y - b) > radius + r + 2 for a, b, r in centres):
                break
        centres.append((x, y, radius))
        colour = _contrasting(rng, mean_bg, scene["palette"]["sat"], scene["palette"]["val"])
        mask, rgb = _object_patch(rng, radius, colour)
        t0 = start + int((i + rng.random()) * span / n)
        duration = int(rng.integers(1, 4))
        alpha_t = np.clip((np.arange(t_len) - t0 + 1) / duration, 0, 1).astype(np.float32)
        s = mask.shape[0]
        y0, x0 = y - s // 2, x - s // 2
        alpha = alpha_t[:, None, None, None] * mask[None, ..., None]
        region = frames[:, y0:y0 + s, x0:x0 + s]
        region *= 1 - alpha
        region += alpha * rgb[None]


def _fill(frames: np.ndarray, scene: dict, rng, start: int, end: int) -> None:
    """One or two containers fill from one side over the action."""
    t_len, h, w, _ = frames.shape
    n = 1 if rng.random() < 0.6 else 2
    mean_bg = frames[0].reshape(-1, 3).mean(0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = np.arange(t_len, dtype=np.float32)
    for i in range(n):
        lo, hi = PAD + i * (w - 2 * PAD) // n, PAD + (i + 1) * (w - 2 * PAD) // n
        cw = int((hi - lo) * rng.uniform(0.45, 0.85) / (1.0 if n == 2 else 1.4))
        ch = int((h - 2 * PAD) * rng.uniform(0.45, 0.8))
        x0 = int(rng.integers(lo + 2, max(lo + 3, hi - cw - 2)))
        y0 = int(rng.integers(PAD + 2, max(PAD + 3, h - PAD - ch - 2)))
        kind = rng.integers(4)
        if kind == 1:  # narrow tube
            cw = max(8, cw // 2)
        shape = np.zeros((h, w), np.float32)
        if kind == 2:  # bowl
            cv2.ellipse(shape, (x0 + cw // 2, y0 + ch // 2), (cw // 2, ch // 2), 0, 0, 360, 1.0, -1, cv2.LINE_AA)
        elif kind == 3:  # blob: a few overlapping discs
            for _ in range(4):
                r = int(min(cw, ch) * rng.uniform(0.25, 0.4))
                cx = int(rng.integers(x0 + r, max(x0 + r + 1, x0 + cw - r)))
                cy = int(rng.integers(y0 + r, max(y0 + r + 1, y0 + ch - r)))
                cv2.circle(shape, (cx, cy), r, 1.0, -1, cv2.LINE_AA)
        else:
            cv2.rectangle(shape, (x0, y0), (x0 + cw, y0 + ch), 1.0, -1)
        ys, xs = np.nonzero(shape > 0.5)
        bx0, bx1, by0, by1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        side = rng.choice(["bottom", "bottom", "top", "left", "right"])
        along, across, extent = {"bottom": (by1 - yy, xx, by1 - by0), "top": (yy - by0, xx, by1 - by0),
                                 "left": (xx - bx0, yy, bx1 - bx0), "right": (bx1 - xx, yy, bx1 - bx0)}[side]
        # fill level in pixels per frame: monotone from a low to a high level over the action
        progress = np.clip((t - start) / max(1, end - start), 0, 1)
        profile = rng.integers(3)
        if profile == 1:
            progress = progress * progress * (3 - 2 * progress)
        elif profile == 2:  # pours in bursts
            k = int(rng.integers(2, 5))
            progress = np.clip((np.floor(progress * k) + np.clip((progress * k % 1) * 2, 0, 1)) / k, 0, 1)
        low, high = rng.uniform(0.0, 0.1), rng.uniform(0.85, 1.0)
        level = extent * (low + progress * (high - low))
        wave_amp, wave_len = rng.uniform(0, 2.0), rng.uniform(10, 30)
        phase = rng.uniform(0, 2 * np.pi) + rng.choice([-1, 1]) * rng.uniform(0, 0.4) * t
        surface = level[:, None, None] + wave_amp * np.sin(2 * np.pi * across[None] / wave_len + phase[:, None, None])
        alpha = (np.clip(surface - along[None] + 0.5, 0, 1) * (level[:, None, None] > 0.5)
                 * shape[None]).astype(np.float32)
        colour = _contrasting(rng, mean_bg, scene["palette"]["sat"], scene["palette"]["val"])
        texture = rng.integers(3)
        if texture == 1:  # depth shading
            tint = 1.0 - 0.35 * np.clip(along / extent, 0, 1)
        elif texture == 2:  # grainy
            tint = 0.8 + 0.4 * cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 1.5)
        else:
            tint = np.ones((h, w), np.float32)
        liquid = colour * tint[..., None]
        frames *= 1 - alpha[..., None]
        frames += alpha[..., None] * liquid[None]
        rim = tuple(float(v) for v in _contrasting(rng, mean_bg, (0.0, 0.3), (0.05, 1.0), 90.0))
        outline = (shape > 0.5).astype(np.uint8)
        contours, _ = cv2.findContours(outline, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        for f in frames:
            cv2.drawContours(f, contours, -1, rim, 2, cv2.LINE_AA)


def _bounce(pos: float, velocity: float, r: int, dim: int, t_len: int) -> np.ndarray:
    """Positions of a disc of radius ``r`` moving at ``velocity`` and bouncing inside ``[0, dim)``."""
    span = dim - 2 * r
    p = np.mod(pos - r + velocity * np.arange(t_len), 2 * span)
    return r + np.where(p > span, 2 * span - p, p)


def render_clip(kind: str, scene: dict, rng) -> np.ndarray:
    """A clip of ``kind`` ("place" or "fill") rendered forwards: uint8 BGR [T, H, W, 3]."""
    width, height = scene["size"]
    t_len = int(rng.integers(24, 73))
    hp, wp = height + 2 * PAD, width + 2 * PAD
    frames = np.repeat(_background(scene, rng, hp, wp)[None], t_len, axis=0)
    margin = max(1, t_len // 12)
    start, end = int(rng.integers(0, margin + 1)), t_len - 1 - int(rng.integers(0, margin + 1))
    (_place_items if kind == "place" else _fill)(frames, scene, rng, start, end)
    if rng.random() < scene["p_distractor"]:  # one bouncing object, symmetric velocity
        r = int(min(height, width) * rng.uniform(0.04, 0.08))
        speed, angle = rng.uniform(0.5, 3.0), rng.uniform(0, 2 * np.pi)
        colour = tuple(float(v) for v in _colour(rng, (0.0, 0.4), (0.2, 0.9)))
        xs, ys = (_bounce(rng.uniform(r, dim - r), speed * v, r, dim, t_len)
                  for dim, v in ((wp, np.cos(angle)), (hp, np.sin(angle))))
        square = rng.random() < 0.5
        for f, x, y in zip(frames, xs, ys):
            if square:
                cv2.rectangle(f, (int(x - r), int(y - r)), (int(x + r), int(y + r)), colour, -1)
            else:
                cv2.circle(f, (int(x), int(y)), r, colour, -1, cv2.LINE_AA)
    if rng.random() < scene["p_occluder"]:  # a static foreground bar
        colour = _colour(rng, (0.0, 0.5), (0.1, 0.9))
        if rng.random() < 0.5:
            bw = int(wp * rng.uniform(0.08, 0.16))
            x = int(rng.integers(0, wp - bw))
            frames[:, :, x:x + bw] = colour
        else:
            bh = int(hp * rng.uniform(0.08, 0.16))
            y = int(rng.integers(0, hp - bh))
            frames[:, y:y + bh] = colour
    j = scene["shake"]
    dy, dx = rng.integers(-j, j + 1, t_len), rng.integers(-j, j + 1, t_len)
    out = np.stack([f[PAD + a:PAD + a + height, PAD + b:PAD + b + width] for f, a, b in zip(frames, dy, dx)])
    gain = 1 + rng.normal(0, scene["flicker"], t_len).astype(np.float32)
    out *= gain[:, None, None, None]
    out += rng.standard_normal(out.shape, dtype=np.float32) * np.float32(scene["noise"])
    return np.ascontiguousarray(np.clip(out, 0, 255).astype(np.uint8)[..., ::-1])


def make_dataset(out_dir, seed: int = 0, clips_per_class: int = 30, groups_per_class: int = 6,
                 test_groups_per_class: int = 2) -> dict:
    """Write out_dir/train/<label>/v_<label>_gNN_cNN.<ext> and out_dir/test/<label>/... ; returns
    {"train": n_train_clips, "test": n_test_clips, "labels": [...]}"""
    if groups_per_class < 1 or not 0 <= test_groups_per_class < groups_per_class:
        raise ValueError("need groups_per_class >= 1 and 0 <= test_groups_per_class < groups_per_class")
    if clips_per_class < groups_per_class:
        raise ValueError("clips_per_class must be at least groups_per_class (one clip per group)")
    counts = {"train": 0, "test": 0}
    for pair_index, pair in enumerate(PAIRS):
        kind = ("place", "fill")[pair_index]
        for member, label in enumerate(pair):
            class_index = 2 * pair_index + member
            for g in range(groups_per_class):
                split = "test" if g >= groups_per_class - test_groups_per_class else "train"
                folder = os.path.join(out_dir, split, label)
                os.makedirs(folder, exist_ok=True)
                # group g of both classes of a pair films the same scene, so no scene look
                # (dark vs light, stripes vs clutter) can stand in for the label
                scene = _scene(np.random.default_rng([seed, pair_index, g]))
                n_clips = clips_per_class // groups_per_class + (g < clips_per_class % groups_per_class)
                for c in range(n_clips):
                    frames = render_clip(kind, scene, np.random.default_rng([seed, class_index, g, c, 1]))
                    if member == 1:  # the partner: an independent forward clip, played backwards
                        frames = frames[::-1]
                    name = f"v_{label}_g{g + 1:02d}_c{c + 1:02d}.{scene['ext']}"
                    write_video_atomic(os.path.join(folder, name), list(frames), scene["fps"], scene["fourcc"])
                    counts[split] += 1
    return {"train": counts["train"], "test": counts["test"], "labels": list(LABELS)}


if __name__ == "__main__":
    run_cli(make_dataset, "Order-only synthetic videos: objects placed vs removed, containers filling vs draining "
                          "(each pair is one distribution, the partner's frames reversed).")
