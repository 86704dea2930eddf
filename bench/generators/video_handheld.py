"""Synthetic "hand-held camera" video dataset whose classes differ ONLY in frame order.

What it makes
-------------
Four action classes in two time-reversed pairs:

* ``open``  / ``close`` -- a door / curtain panel in a doorway slides sideways or rolls up
  (``open``: the textured "room" behind it is uncovered) or the reverse (``close``).
* ``rise``  / ``fall``  -- a small object travels from the lower part of the frame to the
  upper part (``rise``) or the reverse (``fall``), passing behind foreground blocks now and then.

Layout: ``out_dir/{train,test}/<label>/v_<label>_gNN_cNN.<avi|mp4>`` (UCF101-like naming).
A recording group ``gNN`` fixes the "setup" (frame size, cluttered background, lighting,
static foreground occluder, camera-shake strength) and is shared by the four classes with the
same group number; the last ``test_groups_per_class`` groups are written to ``test/`` and the
others to ``train/``, so train and test never share a setup.

Why it is order-only
--------------------
Every clip is produced by one of two *forward* generators (the "open" process and the "rise"
process), each rendering the complete clip -- scene, nuisances, noise and all.  A clip of the
partner class (``close`` / ``fall``) is a fresh, independent draw from exactly the same
forward generator whose rendered frame stack is then reversed in time.  Hence, within a pair,
the clips of one class are distributed exactly like time-reversed clips of the other: the
multiset of frames, any single frame, the clip length, fps, codec and any order-free statistic
(mean image, histogram, bag of frames...) has the same distribution for both classes.  Only the
direction of time separates them.  The nuisance processes (shake, flicker, distractor motion,
noise) are additionally stationary and time-reversible (Gaussian-smoothed white noise, random
phase sinusoids, i.i.d. per-frame noise), so the nuisances carry no arrow of time themselves;
the arrow of time is carried only by the door / object progress.

Variation axes
--------------
* setup per group: frame size among 128x96, 160x120, 200x150, 256x192; background gradient +
  random rectangles/circles/lines clutter; static foreground occluder; shake amplitude; palette.
* per clip: length 20-90 frames, fps 10-30, codec MJPG (.avi) or mp4v (.mp4) (each checked to
  write a readable file; unusable ones are skipped), object / door geometry, colours and
  texture, speed profile (random hold at the start/end and a random non-uniform velocity),
  slide direction, object path wobble, optional extra occluding block.
* nuisances per frame: hand-held camera shake (smoothed random translation, rotation, zoom),
  brightness flicker (smooth drift + occasional spikes), a distractor object with random
  class-independent motion, Gaussian noise, salt-and-pepper noise, blur and a JPEG
  re-compression round trip (blocky / blurry artefacts).

Only numpy and cv2 are used.  Deterministic given ``seed``.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # video_io.py beside this file, also when loaded by path
from video_io import readable_codecs, run_cli, write_video_atomic  # noqa: E402

LABELS = ["open", "close", "rise", "fall"]
# label -> (forward process, reversed?)
_CLASS_SPEC = {"open": ("door", False), "close": ("door", True),
               "rise": ("rise", False), "fall": ("rise", True)}
FRAME_SIZES = [(128, 96), (160, 120), (200, 150), (256, 192)]  # (w, h)
CODECS = [("MJPG", ".avi"), ("mp4v", ".mp4")]
MAX_BYTES = 950_000

def _smooth_noise(rng, n, sigma, dims=1):
    """Stationary Gaussian-smoothed white noise, unit std per dim, shape (n, dims)."""
    r = max(1, int(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= np.sqrt((k ** 2).sum())
    white = rng.standard_normal((n + 2 * r, dims))
    out = np.stack([np.convolve(white[:, d], k, mode="valid") for d in range(dims)], 1)
    return out[:n]


def _random_phase_path(rng, n, n_terms=3, fmin=0.02, fmax=0.12):
    """Smooth stationary random path in [-1, 1] (sum of random-phase sinusoids)."""
    t = np.arange(n)
    amps = rng.uniform(0.3, 1.0, n_terms)
    freqs = rng.uniform(fmin, fmax, n_terms) * 2 * np.pi
    phases = rng.uniform(0, 2 * np.pi, n_terms)
    x = (amps[:, None] * np.sin(freqs[:, None] * t[None] + phases[:, None])).sum(0)
    return x / amps.sum()


def _progress(rng, n):
    """Monotone 0 -> 1 progress with random holds at both ends and a non-uniform speed."""
    start = rng.uniform(0.0, 0.3)
    end = rng.uniform(max(start + 0.35, 0.65), 1.0)
    a, b = int(round(start * (n - 1))), int(round(end * (n - 1)))
    b = max(b, a + 3)
    b = min(b, n - 1)
    p = np.zeros(n)
    m = b - a
    rates = rng.gamma(rng.uniform(1.0, 4.0), 1.0, m) * (1 + 0.8 * np.sin(
        np.linspace(0, rng.uniform(1, 4) * np.pi, m) + rng.uniform(0, 2 * np.pi)))
    rates = np.clip(rates, 1e-3, None)
    cum = np.cumsum(rates)
    p[a + 1:b + 1] = cum / cum[-1]
    p[b + 1:] = 1.0
    return p


def _rand_color(rng, lo=0, hi=255):
    return tuple(int(c) for c in rng.integers(lo, hi + 1, 3))


def _texture(rng, w, h):
    """Bright patterned 'room' texture shown behind the door."""
    base = np.array(_rand_color(rng, 120, 255), np.float32)
    img = np.empty((h, w, 3), np.float32)
    img[:] = base
    kind = rng.integers(3)
    yy, xx = np.mgrid[0:h, 0:w]
    per = rng.uniform(4, 12)
    if kind == 0:
        m = ((xx // per + yy // per) % 2)[..., None]
    elif kind == 1:
        ang = rng.uniform(0, np.pi)
        m = (np.sin((xx * np.cos(ang) + yy * np.sin(ang)) * 2 * np.pi / per) > 0)[..., None]
    else:
        m = (np.sin(xx * 2 * np.pi / per) * np.sin(yy * 2 * np.pi / per) > 0)[..., None]
    alt = np.array(_rand_color(rng, 0, 200), np.float32)
    img = img * (1 - m) + alt * m
    return np.clip(img, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- setup


def _make_setup(seed, group):
    rng = np.random.default_rng([seed, 7919, group])
    w, h = FRAME_SIZES[rng.integers(len(FRAME_SIZES))]
    # gradient background
    c0 = np.array(_rand_color(rng, 30, 200), np.float32)
    c1 = np.array(_rand_color(rng, 30, 200), np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w]
    g = (xx / w * np.cos(ang) + yy / h * np.sin(ang))
    g = (g - g.min()) / (np.ptp(g) + 1e-6)
    bg = (c0 * (1 - g[..., None]) + c1 * g[..., None]).astype(np.uint8)
    # clutter
    for _ in range(rng.integers(8, 25)):
        col = _rand_color(rng, 0, 255)
        kind = rng.integers(3)
        x, y = int(rng.uniform(0, w)), int(rng.uniform(0, h))
        s = int(rng.uniform(0.03, 0.18) * w)
        if kind == 0:
            cv2.rectangle(bg, (x, y), (x + s, y + int(s * rng.uniform(0.3, 1.5))), col, -1)
        elif kind == 1:
            cv2.circle(bg, (x, y), max(2, s // 2), col, -1, cv2.LINE_AA)
        else:
            cv2.line(bg, (x, y), (int(rng.uniform(0, w)), int(rng.uniform(0, h))), col,
                     int(rng.integers(1, 4)), cv2.LINE_AA)
    # static foreground occluder (same in all clips of the setup)
    ow, oh = rng.uniform(0.08, 0.2) * w, rng.uniform(0.15, 0.45) * h
    ox, oy = rng.uniform(0.05, 0.95) * w - ow / 2, rng.uniform(0.1, 0.9) * h - oh / 2
    return {
        "w": int(w), "h": int(h), "bg": bg,
        "occ": (int(ox), int(oy), int(ox + ow), int(oy + oh)),
        "occ_color": _rand_color(rng, 0, 255),
        "shake": rng.uniform(0.5, 2.0),        # pixels-ish scale (relative to 128 px width)
        "light": rng.uniform(0.75, 1.2),
    }


# ----------------------------------------------------------------------------- nuisances
class _Nuisance:
    """Class-independent, time-reversible nuisance processes for one clip."""

    def __init__(self, rng, setup, n):
        w, h = setup["w"], setup["h"]
        s = setup["shake"] * w / 128.0 * rng.uniform(0.6, 1.4)
        sh = _smooth_noise(rng, n, rng.uniform(1.0, 3.0), 4)
        self.dx, self.dy = sh[:, 0] * s, sh[:, 1] * s
        self.rot = sh[:, 2] * rng.uniform(0.3, 1.5)          # degrees
        self.zoom = 1.03 + sh[:, 3] * rng.uniform(0.0, 0.01)  # slight zoom hides borders
        fl = _smooth_noise(rng, n, rng.uniform(2.0, 6.0), 1)[:, 0]
        spikes = (rng.random(n) < rng.uniform(0.0, 0.08)) * rng.uniform(-0.25, 0.25, n)
        self.gain = setup["light"] * (1 + rng.uniform(0.02, 0.1) * fl + spikes)
        self.bias = rng.uniform(-15, 15)
        self.sigma = rng.uniform(1.5, 5.0)
        self.sp = rng.uniform(0.0, 0.004)
        self.blur = int(rng.choice([0, 3, 5]))
        self.jpeg_q = int(rng.integers(25, 80))
        # distractor: random smooth motion independent of the class
        self.d_kind = int(rng.integers(3))
        self.d_col = _rand_color(rng, 0, 255)
        self.d_size = rng.uniform(0.04, 0.09) * w
        cx, cy = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8)
        ax, ay = rng.uniform(0.1, 0.35), rng.uniform(0.1, 0.35)
        self.d_x = (cx + ax * _random_phase_path(rng, n)) * w
        self.d_y = (cy + ay * _random_phase_path(rng, n)) * h
        self.d_front = bool(rng.random() < 0.5)
        self.rng = rng
        self.center = (w / 2.0, h / 2.0)

    def background(self, setup, t):
        """Frame ``t``'s background, with the distractor when it passes behind the scene."""
        img = setup["bg"].copy()
        if not self.d_front:
            self.draw_distractor(img, t)
        return img

    def draw_distractor(self, img, t):
        x, y, s = int(self.d_x[t]), int(self.d_y[t]), int(self.d_size)
        if self.d_kind == 0:
            cv2.circle(img, (x, y), max(2, s), self.d_col, -1, cv2.LINE_AA)
        elif self.d_kind == 1:
            cv2.rectangle(img, (x - s, y - s // 2), (x + s, y + s // 2), self.d_col, -1)
        else:
            pts = np.array([[x, y - s], [x + s, y + s], [x - s, y + s]], np.int32)
            cv2.fillConvexPoly(img, pts, self.d_col, cv2.LINE_AA)

    def camera(self, img, t):
        h, w = img.shape[:2]
        m = cv2.getRotationMatrix2D(self.center, float(self.rot[t]), float(self.zoom[t]))
        m[0, 2] += self.dx[t]
        m[1, 2] += self.dy[t]
        img = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REFLECT)
        f = img.astype(np.float32) * self.gain[t] + self.bias
        if self.blur:
            f = cv2.GaussianBlur(f, (self.blur, self.blur), 0)
        f += self.rng.normal(0, self.sigma, f.shape).astype(np.float32)
        out = np.clip(f, 0, 255).astype(np.uint8)
        if self.sp > 0:
            r = self.rng.random((h, w))
            out[r < self.sp / 2] = 0
            out[r > 1 - self.sp / 2] = 255
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_q])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        return out


# ----------------------------------------------------------------------------- scenes


def _render_door(rng, setup, n, nz):
    """Forward process of the 'open' class: a panel uncovers a textured doorway."""
    w, h = setup["w"], setup["h"]
    dw, dh = rng.uniform(0.25, 0.45) * w, rng.uniform(0.45, 0.75) * h
    x0 = int(rng.uniform(0.05 * w, 0.95 * w - dw))
    y0 = int(rng.uniform(0.05 * h, 0.95 * h - dh))
    x1, y1 = int(x0 + dw), int(y0 + dh)
    room = _texture(rng, x1 - x0, y1 - y0)
    panel_col = np.array(_rand_color(rng, 20, 160), np.float32)
    frame_col = _rand_color(rng, 0, 90)
    mode = int(rng.integers(3))  # 0: slide to left, 1: slide to right, 2: roll up
    prog = _progress(rng, n)
    open_max = rng.uniform(0.8, 1.0)
    # panel with a few vertical planks / knob so its motion is visible
    pw, ph = x1 - x0, y1 - y0
    panel = np.empty((ph, pw, 3), np.float32)
    panel[:] = panel_col
    for k in range(1, int(rng.integers(2, 6))):
        if mode == 2:
            yk = int(k * ph / 5) % ph
            panel[yk:yk + 1] *= 0.6
        else:
            xk = int(k * pw / 5) % pw
            panel[:, xk:xk + 1] *= 0.6
    panel = panel.astype(np.uint8)
    extra = None
    if rng.random() < 0.3:
        ew, eh = rng.uniform(0.05, 0.12) * w, rng.uniform(0.2, 0.5) * h
        ex = rng.uniform(x0, x1) - ew / 2
        ey = rng.uniform(y0, y1) - eh / 2
        extra = (int(ex), int(ey), int(ex + ew), int(ey + eh), _rand_color(rng))

    frames = []
    for t in range(n):
        img = nz.background(setup, t)
        img[y0:y1, x0:x1] = room
        o = prog[t] * open_max
        if mode == 0:       # panel slides to the left, exposing the right part first
            vis = int(round(pw * (1 - o)))
            if vis > 0:
                img[y0:y1, x0:x0 + vis] = panel[:, pw - vis:]
        elif mode == 1:     # slides to the right
            vis = int(round(pw * (1 - o)))
            if vis > 0:
                img[y0:y1, x1 - vis:x1] = panel[:, :vis]
        else:               # rolls up
            vis = int(round(ph * (1 - o)))
            if vis > 0:
                img[y0:y0 + vis, x0:x1] = panel[ph - vis:]
        cv2.rectangle(img, (x0 - 2, y0 - 2), (x1 + 1, y1 + 1), frame_col, 3)
        if nz.d_front:
            nz.draw_distractor(img, t)
        if extra is not None:
            cv2.rectangle(img, extra[:2], extra[2:4], extra[4], -1)
        ox0, oy0, ox1, oy1 = setup["occ"]
        cv2.rectangle(img, (ox0, oy0), (ox1, oy1), setup["occ_color"], -1)
        frames.append(nz.camera(img, t))
    return frames


def _render_rise(rng, setup, n, nz):
    """Forward process of the 'rise' class: an object moves from low to high."""
    w, h = setup["w"], setup["h"]
    r = rng.uniform(0.04, 0.08) * w
    ox0, oy0, ox1, oy1 = setup["occ"]
    if rng.random() < 0.5:  # path goes behind the static occluder
        xc = rng.uniform(max(ox0, r), min(max(ox1, ox0 + 1), w - r))
    else:
        xc = rng.uniform(r + 2, w - r - 2)
    ya = rng.uniform(0.72, 0.95) * h
    yb = rng.uniform(0.05, 0.3) * h
    prog = _progress(rng, n)
    wob = _random_phase_path(rng, n) * rng.uniform(0.0, 0.08) * w
    col = _rand_color(rng, 0, 255)
    kind = int(rng.integers(3))
    extra = None
    if rng.random() < 0.5:  # a foreground block on the path -> occasional occlusion
        ew, eh = rng.uniform(0.1, 0.25) * w, rng.uniform(0.08, 0.2) * h
        ey = rng.uniform(yb, ya) - eh / 2
        ex = xc - ew * rng.uniform(0.2, 0.8)
        extra = (int(ex), int(ey), int(ex + ew), int(ey + eh), _rand_color(rng))
    frames = []
    for t in range(n):
        img = nz.background(setup, t)
        x = int(xc + wob[t])
        y = int(ya + (yb - ya) * prog[t])
        s = int(r)
        if kind == 0:
            cv2.circle(img, (x, y), s, col, -1, cv2.LINE_AA)
            cv2.circle(img, (x, y), s, (0, 0, 0), 1, cv2.LINE_AA)
        elif kind == 1:
            cv2.rectangle(img, (x - s, y - s), (x + s, y + s), col, -1)
            cv2.rectangle(img, (x - s, y - s), (x + s, y + s), (255, 255, 255), 1)
        else:
            pts = np.array([[x, y - s], [x + s, y], [x, y + s], [x - s, y]], np.int32)
            cv2.fillConvexPoly(img, pts, col, cv2.LINE_AA)
        if nz.d_front:
            nz.draw_distractor(img, t)
        if extra is not None:
            cv2.rectangle(img, extra[:2], extra[2:4], extra[4], -1)
        cv2.rectangle(img, (ox0, oy0), (ox1, oy1), setup["occ_color"], -1)
        frames.append(nz.camera(img, t))
    return frames


_RENDER = {"door": _render_door, "rise": _render_rise}


def _group_counts(clips_per_class, groups):
    q, r = divmod(clips_per_class, groups)
    return [q + (1 if g < r else 0) for g in range(groups)]


def make_dataset(out_dir, seed: int = 0, clips_per_class: int = 30, groups_per_class: int = 6,
                 test_groups_per_class: int = 2) -> dict:
    """Write out_dir/train/<label>/v_<label>_gNN_cNN.<ext> and out_dir/test/<label>/... ; returns
    {"train": n_train_clips, "test": n_test_clips, "labels": [...]}"""
    if not 0 <= test_groups_per_class <= groups_per_class:
        raise ValueError("test_groups_per_class must be in [0, groups_per_class]")
    codecs = readable_codecs(tuple(CODECS))
    counts = _group_counts(clips_per_class, groups_per_class)
    n_train = n_test = 0
    for g in range(1, groups_per_class + 1):
        split = "test" if g > groups_per_class - test_groups_per_class else "train"
        setup = _make_setup(seed, g)
        for li, label in enumerate(LABELS):
            proc, rev = _CLASS_SPEC[label]
            d = os.path.join(out_dir, split, label)
            os.makedirs(d, exist_ok=True)
            for c in range(1, counts[g - 1] + 1):
                rng = np.random.default_rng([seed, g, li, c])
                n = int(rng.integers(20, 91))
                fps = int(rng.integers(10, 31))
                fcc, ext = CODECS[int(rng.integers(len(CODECS)))]
                if (fcc, ext) not in codecs:
                    fcc, ext = codecs[0]
                nz = _Nuisance(rng, setup, n)
                frames = _RENDER[proc](rng, setup, n, nz)
                if rev:
                    frames = frames[::-1]
                path = os.path.join(d, f"v_{label}_g{g:02d}_c{c:02d}{ext}")
                write_video_atomic(path, frames, fps, fcc)
                # size guard (rarely triggers): soften the frames and rewrite.  Blurring acts
                # frame by frame, so it cannot introduce an order cue.
                k = 3
                while os.path.getsize(path) > MAX_BYTES and k <= 9:
                    frames = [cv2.GaussianBlur(f, (k, k), 0) for f in frames]
                    write_video_atomic(path, frames, fps, fcc)
                    k += 2
                if split == "train":
                    n_train += 1
                else:
                    n_test += 1
    return {"train": n_train, "test": n_test, "labels": list(LABELS)}


if __name__ == "__main__":
    run_cli(make_dataset, __doc__.split("\n")[0])
