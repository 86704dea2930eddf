"""Camera-move benchmark built from REAL footage: which way does a virtual camera pan or zoom?

Task
----
Four classes in two time-reversed pairs: ``pan_left`` / ``pan_right`` and ``zoom_in`` /
``zoom_out``. Every usable real video under ``shared_data`` (the same sources, checks and
leak-free split as ``real_reversal.py``) is cut into up to ``windows_per_video`` windows of
``window`` frames (every ``frame_step``-th source frame; window starts spread over the video).
Each window is filmed by a virtual camera: a crop of the real frame that slides across it
(a pan: the crop is 55-75% of the frame's width and travels 50-100% of the free width) or
shrinks / grows about a point near the centre (a zoom: from the whole frame to 50-70% of it),
with a little hand-held jitter (up to 1.5% of the frame, smooth). Then a seeded coin decides
whether the window is written forward or time-reversed; the label is the camera move the
written clip shows (a reversed pan to the right is a pan to the left). So the scene's own
motion plays forward or backward independently of the label, a single frame or the set of
frames cannot tell a pair's classes apart, and only the order of the frames carries the
label within a pair. Unlike ``real_reversal`` (the arrow of time of real footage, which no
method here learns from ten training videos), the cue is learnable from few sources, so the
table can rank methods on real textures, scenes, compression and scene motion.

Labels are balanced per source video (a quarter of its windows per class, odd ones drawn).
Frames are written at 160 x 120 (the crop resized with ``cv2.INTER_AREA``) as MJPG ``.avi``
at the source fps, atomically.

Layout::

    out_dir/<split>/<label>/v_<label>_g<NN>_c<NN>.avi
    out_dir/sources.csv      group,source_path,split,n_frames,fps,windows

Usage::

    python real_camera.py /tmp/real_camera --seed 0 [--shared-data /work/shared/data]
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path

import cv2
import numpy as np

LABELS = ["pan_left", "pan_right", "zoom_in", "zoom_out"]
OUT_SIZE = (160, 120)  # width, height
OUT_NAME = re.compile(r"^v_(pan_left|pan_right|zoom_in|zoom_out)_g\d+_c\d+\.avi$")


def _real_reversal():
    """The sibling generator whose source listing, decoding, duplicate check and split this one shares."""
    spec = importlib.util.spec_from_file_location("real_reversal", Path(__file__).with_name("real_reversal.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _smooth_jitter(rng, n: int, amplitude: float) -> np.ndarray:
    """``[n, 2]`` smooth random offsets (fractions of the frame), at most ``amplitude``."""
    knots = rng.uniform(-1, 1, size=(max(2, n // 8 + 2), 2))
    t = np.linspace(0, len(knots) - 1, n)
    path = np.stack([np.interp(t, np.arange(len(knots)), knots[:, k]) for k in range(2)], axis=1)
    return amplitude * path


def camera_path(rng, move: str, n: int) -> np.ndarray:
    """``[n, 3]`` crop centre x, y and width per frame, as fractions of the frame's width / height / width,
    for ``move`` ``"pan_right"`` (the view travels right, so the scene moves left) or ``"zoom_in"``; the
    other classes are these written time-reversed. The crop keeps the frame's aspect ratio, so its height
    is the same fraction of the frame's height."""
    s = np.linspace(0.0, 1.0, n)
    s = s * s * (3 - 2 * s) * 0.5 + s * 0.5  # eased start and stop, never still
    if move == "pan_right":
        width = rng.uniform(0.55, 0.75)
        free = 1.0 - width
        travel = free * rng.uniform(0.5, 1.0)
        x0 = rng.uniform(width / 2, width / 2 + free - travel)
        centre_x = x0 + travel * s
        centre_y = np.full(n, 0.5 + rng.uniform(-1, 1) * (1 - width) / 2 * 0.5)
        widths = np.full(n, width)
    elif move == "zoom_in":
        end = rng.uniform(0.5, 0.7)
        widths = 1.0 + (end - 1.0) * s
        target = 0.5 + rng.uniform(-1, 1, size=2) * (1 - end) / 2 * 0.6
        centre_x = 0.5 + (target[0] - 0.5) * s
        centre_y = 0.5 + (target[1] - 0.5) * s
    else:
        raise ValueError(move)
    jitter = _smooth_jitter(rng, n, 0.015)
    path = np.stack([centre_x + jitter[:, 0], centre_y + jitter[:, 1], widths], axis=1)
    # keep the crop inside the frame
    half = path[:, 2] / 2
    path[:, 0] = np.clip(path[:, 0], half, 1 - half)
    path[:, 1] = np.clip(path[:, 1], half, 1 - half)
    return path


def film(frames: list[np.ndarray], path: np.ndarray) -> list[np.ndarray]:
    """Crop each frame at ``path`` (see :func:`camera_path`) and resize to ``OUT_SIZE``, sub-pixel exact."""
    out = []
    for frame, (cx, cy, width) in zip(frames, path):
        h, w = frame.shape[:2]
        crop_w, crop_h = width * w, width * h
        scale_x, scale_y = OUT_SIZE[0] / crop_w, OUT_SIZE[1] / crop_h
        left, top = cx * w - crop_w / 2, cy * h - crop_h / 2
        matrix = np.array([[scale_x, 0, -left * scale_x], [0, scale_y, -top * scale_y]], np.float64)
        # INTER_AREA is not available for warpAffine: blur to the output's scale first, then sample
        sigma = max(0.0, 0.5 / min(scale_x, scale_y) - 0.5)
        source = cv2.GaussianBlur(frame, (0, 0), sigma) if sigma > 0.3 else frame
        out.append(cv2.warpAffine(source, matrix, OUT_SIZE, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    return out


def make_dataset(out_dir, seed: int = 0, shared_data: str = "/work/shared/data", window: int = 32,
                 frame_step: int = 2, windows_per_video: int = 16, test_fraction: float = 0.3) -> dict:
    """Build the camera-move dataset from real videos under ``shared_data`` into ``out_dir``.

    Returns ``{"train": n, "test": n, "labels": LABELS, "sources": k, "skipped": {path: reason}}``
    (n: windows written). Old ``v_*_g*_c*.avi`` files under ``out_dir/<split>/<label>/`` are removed
    first, so a rerun never mixes seeds.
    """
    rr = _real_reversal()
    if not os.path.isdir(shared_data):
        raise FileNotFoundError(f"shared data folder not found: {shared_data!r} (expected real videos there)")
    seed = int(seed) & 0xFFFFFFFF
    min_frames = max(rr.MIN_FRAMES, window)
    usable, skipped = rr.usable_sources(shared_data, min_frames)

    plans = []
    for g, (rel, path, frames, fps) in enumerate(usable, start=1):
        step, starts = rr._plan_windows(len(frames), window, frame_step, windows_per_video)
        rng = np.random.default_rng([seed, g, 7])
        k = len(starts)
        labels = [c for c in range(len(LABELS)) for _ in range(k // len(LABELS))]
        labels += list(rng.integers(len(LABELS), size=k - len(labels)))
        plans.append((step, starts, [labels[i] for i in rng.permutation(k)]))

    cluster_of = rr._clusters([rr._signature(u[2]) for u in usable])
    # the split helper checks two classes on both sides: the pans against the zooms
    in_test = rr._choose_split(cluster_of, [len(p[1]) for p in plans], [sum(lab >= 2 for lab in p[2]) for p in plans],
                               test_fraction, np.random.default_rng([seed, 1_000_003]))

    rr.clear_outputs(out_dir, LABELS, OUT_NAME)
    counts = {split: 0 for split in rr.SPLITS}
    rows = []
    for g, ((rel, path, frames, fps), (step, starts, labels)) in enumerate(zip(usable, plans), start=1):
        split = "test" if in_test[g - 1] else "train"
        for c, (start, label) in enumerate(zip(starts, labels), start=1):
            rng = np.random.default_rng([seed, g, c])
            clip = frames[start:start + (window - 1) * step + 1:step]
            name = LABELS[label]
            reverse = bool(rng.integers(2))  # the scene plays backward in half the clips of every class
            forward_move = "pan_right" if name.startswith("pan") else "zoom_in"
            shown_reversed = name != forward_move  # pan_left / zoom_out: the camera path is written reversed
            path_c = camera_path(rng, forward_move, len(clip))
            if shown_reversed:
                path_c = path_c[::-1]
            if reverse:
                clip = clip[::-1]
            rr._write_avi(os.path.join(out_dir, split, name, f"v_{name}_g{g:02d}_c{c:02d}.avi"), film(clip, path_c), fps)
            counts[split] += 1
        rows.append([f"g{g:02d}", path, split, len(frames), round(fps, 4), len(starts)])
    rr.write_sources_csv(out_dir, rows)
    return {**counts, "labels": list(LABELS), "sources": len(usable), "skipped": skipped}


def main(argv=None) -> int:
    result = _real_reversal().run_real_cli(make_dataset, "Virtual camera moves (pan / zoom) over real videos.", argv)
    if result is None:
        return 1
    summary, _, seconds = result
    print(f"train={summary['train']} test={summary['test']} sources={summary['sources']} ({seconds:.1f}s)")
    for path, reason in summary["skipped"].items():
        print(f"  skipped {path}: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
