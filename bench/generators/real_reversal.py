"""Arrow-of-time benchmark built from REAL footage: is a clip played forward or reversed?

Task
----
Two classes, ``forward`` and ``reversed``. Every usable real video under
``shared_data`` (default ``/work/shared/data``) is cut into up to
``max_windows_per_video`` windows of ``window`` frames, taking every ``frame_step``-th
source frame (a window covers about 1-2 s at 25-30 fps). Window starts are spread
evenly over the video. For each window a seeded coin flip, balanced per source
video (half of its windows forward, half reversed; an odd one out is a free flip),
decides whether the window is written in its original order (``forward``) or
time-reversed (``reversed``). A single frame is identical under both labels and so
are the frame set and appearance statistics of a window, so only the ORDER of the
frames carries the label: a model that ignores temporal order is at chance (50%).

Frames are resized so the longer side is at most 224 px (aspect kept, width and
height rounded to even numbers) and written as
MJPG ``.avi`` at the source fps (25 if the source reports none), atomically
(temporary name + ``os.replace``). MJPG codes every frame on its own, so the output
codec adds no inter-frame, order-dependent artefacts (unlike re-encoding with
H.264, whose GOP structure would differ between a forward and a reversed write).

Layout::

    out_dir/<split>/<label>/v_<label>_g<NN>_c<NN>.avi
    out_dir/sources.csv      group,source_path,split,n_frames,fps,windows

``gNN`` (1-based) is the index of the source video in the sorted list of usable
sources, the same for both labels; ``cNN`` is the window number inside that source.

Why it is leak-free
-------------------
* All windows cut from one source video go to ONE split, so the test set never
  contains frames (or overlapping windows) of a video seen in training; a model
  cannot score by recognising the scene. The group is in the file name (``gNN``),
  so a grouped splitter can check it.
* Sources that are the same footage under different names are kept together too:
  a near-duplicate check (correlation of tiny normalised grey thumbnails) links them,
  and whole linked clusters are assigned to a split. In the shared data
  ``mmaction2/demo.mp4`` and ``mmaction2/demo_spatiotemporal_det.mp4`` are the same
  arm-wrestling clip (the second one with detection boxes drawn, at 6 fps).
* Labels are balanced within every source video, so the class is not predictable
  from the scene, camera, resolution or fps either.
* The split is chosen deterministically from ``seed`` among cluster assignments
  whose test share is closest to ``test_fraction`` (of windows), with at least 4
  source videos in test when there are >= 10 sources, and both classes on both sides.

Sources
-------
Every file with a video-like extension (``.mp4 .avi .mkv .mov .webm .ogv .gif .mpg``
...) is opened with ``cv2.VideoCapture`` and read sequentially (``cap.read()`` until
it fails). A file is used only if it yields at least ``max(48, window)`` decodable
frames; otherwise it is skipped and reported with the reason (does not open, decodes
no frames, too few frames). Synthetic test patterns (ffmpeg colour bars / testsrc)
are not real footage and are skipped by name with that reason. When a usable video
is too short for one window at ``frame_step``, the largest smaller step that fits is
used (e.g. the 57-frame 6 fps clip uses step 1).

Only numpy and OpenCV (``opencv-python-headless``) are needed. Deterministic for a
given seed (non-negative integer); runs in seconds on one core.

Usage::

    python real_reversal.py /tmp/real_rev --seed 0 [--shared-data /work/shared/data]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import os
import re
import sys
import time

import cv2
import numpy as np

LABELS = ["forward", "reversed"]
SPLITS = ["train", "test"]
MAX_SIDE = 224
MIN_FRAMES = 48
FALLBACK_FPS = 25.0
VIDEO_EXTS = {
    ".mp4", ".avi", ".mkv", ".mov", ".webm", ".ogv", ".ogg", ".gif", ".mpg", ".mpeg",
    ".m4v", ".wmv", ".flv", ".3gp", ".ts", ".mts", ".m2ts",
}
# Decodable but not real footage (synthetic ffmpeg sources), matched on the file name.
NOT_REAL_FOOTAGE = {
    "vidtest.ogv": "synthetic SMPTE colour bars (ffmpeg test source), not real footage",
    "sine_stereo_mp2.mpg": "synthetic SMPTE colour bars (ffmpeg test source), not real footage",
}
NOT_REAL_PATTERN = re.compile(r"^testsrc", re.IGNORECASE)  # ffmpeg testsrc/testsrc2 clips
DUPLICATE_CORR = 0.95  # max thumbnail correlation above which two sources are the same footage
OUT_NAME = re.compile(r"^v_(forward|reversed)_g\d+_c\d+\.avi$")


def _list_candidates(shared_data: str) -> list[str]:
    """Relative paths of files with a video-like extension, sorted."""
    out = []
    for root, dirs, files in os.walk(shared_data):
        dirs.sort()
        for name in files:
            if os.path.splitext(name)[1].lower() in VIDEO_EXTS:
                out.append(os.path.relpath(os.path.join(root, name), shared_data))
    return sorted(out)


def _resize(frame: np.ndarray) -> np.ndarray:
    # Even width and height: OpenCV's MJPG writer silently drops an odd last row/column.
    h, w = frame.shape[:2]
    scale = min(1.0, MAX_SIDE / max(h, w))
    size = (max(2, 2 * int(round(w * scale / 2))), max(2, 2 * int(round(h * scale / 2))))
    if size == (w, h):
        return frame
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def _decode(path: str):
    """Read every frame sequentially. Returns (frames, fps, error or None)."""
    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            return [], None, "cv2.VideoCapture cannot open it"
        fps = cap.get(cv2.CAP_PROP_FPS)
        frames = []
        shape = None
        while True:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            if frame.ndim == 2:
                frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
            elif frame.shape[2] == 4:
                frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
            small = _resize(frame)
            if shape is None:
                shape = small.shape
            elif small.shape != shape:  # resolution change mid-stream: stop there
                break
            frames.append(np.ascontiguousarray(small))
    finally:
        cap.release()
    if not (isinstance(fps, float) and math.isfinite(fps) and 0.5 <= fps <= 240.0):
        fps = FALLBACK_FPS
    return frames, float(fps), None


def _signature(frames: list[np.ndarray], k: int = 40) -> np.ndarray:
    """Up to k evenly sampled frames as unit-norm, zero-mean 32x24 grey thumbnails."""
    idx = np.unique(np.linspace(0, len(frames) - 1, min(k, len(frames))).astype(int))
    rows = []
    for i in idx:
        g = cv2.cvtColor(frames[i], cv2.COLOR_BGR2GRAY)
        g = cv2.resize(g, (32, 24), interpolation=cv2.INTER_AREA).astype(np.float64).ravel()
        g -= g.mean()
        n = np.linalg.norm(g)
        rows.append(g / n if n > 1e-6 else g)
    return np.stack(rows)


def _clusters(sigs: list[np.ndarray]) -> list[int]:
    """Union-find over sources whose thumbnails match (same footage). Returns cluster id per source."""
    parent = list(range(len(sigs)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in itertools.combinations(range(len(sigs)), 2):
        if float((sigs[i] @ sigs[j].T).max()) >= DUPLICATE_CORR:
            parent[find(i)] = find(j)
    roots = [find(i) for i in range(len(sigs))]
    remap = {r: c for c, r in enumerate(dict.fromkeys(roots))}
    return [remap[r] for r in roots]


def _plan_windows(n: int, window: int, frame_step: int, max_windows: int):
    """(step, [start, ...]) for a video of n frames: evenly spread starts, at most max_windows."""
    step = frame_step
    while step > 1 and (window - 1) * step + 1 > n:
        step -= 1
    span = (window - 1) * step + 1
    if span > n:
        return step, []
    k = min(max_windows, n - span + 1)
    starts = np.unique(np.round(np.linspace(0, n - span, k)).astype(int)).tolist()
    return step, starts


def _choose_split(cluster_of, n_windows, n_rev, test_fraction, rng):
    """Pick the set of clusters that goes to test. Deterministic given rng."""
    n_src = len(cluster_of)
    n_clu = max(cluster_of) + 1
    c_src = np.zeros(n_clu, int)
    c_win = np.zeros(n_clu, int)
    c_rev = np.zeros(n_clu, int)
    for s, c in enumerate(cluster_of):
        c_src[c] += 1
        c_win[c] += n_windows[s]
        c_rev[c] += n_rev[s]
    c_fwd = c_win - c_rev
    total = int(c_win.sum())
    min_test_src = 4 if n_src >= 10 else 1

    if n_clu <= 16:
        masks = np.array(list(itertools.product([0, 1], repeat=n_clu)), dtype=bool)
    else:  # too many for exhaustive search: a seeded random sample of assignments
        p = min(max(test_fraction, 0.05), 0.95)
        masks = rng.random((20000, n_clu)) < p
    t_src = masks @ c_src
    t_win = masks @ c_win
    t_fwd = masks @ c_fwd
    t_rev = masks @ c_rev
    ok = (
        (t_src >= min_test_src) & (t_src <= n_src - 1)
        & (t_fwd > 0) & (t_rev > 0)
        & (c_fwd.sum() - t_fwd > 0) & (c_rev.sum() - t_rev > 0)
    )
    if not ok.any():
        raise RuntimeError(
            f"cannot split {n_src} sources ({n_clu} clusters) so that test has >= {min_test_src} "
            "sources and both classes are on both sides")
    err = np.abs(t_win / total - test_fraction)
    err[~ok] = np.inf
    best = np.flatnonzero(err <= err.min() + 1e-9)
    pick = masks[best[rng.integers(len(best))]]
    return [bool(pick[c]) for c in cluster_of]


def _write_avi(path: str, frames: list[np.ndarray], fps: float) -> None:
    """Write frames as MJPG .avi atomically (temp name in the same folder + os.replace)."""
    h, w = frames[0].shape[:2]
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name[:-4]}.tmp{os.getpid()}.avi")
    writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    try:
        if not writer.isOpened():
            raise RuntimeError(f"cv2.VideoWriter (MJPG) cannot open {tmp}")
        for f in frames:
            writer.write(f)
    finally:
        writer.release()
    try:
        cap = cv2.VideoCapture(tmp)
        got, rw, rh = 0, w, h
        while True:
            ok, f = cap.read()
            if not ok:
                break
            got += 1
            rh, rw = f.shape[:2]
        cap.release()
        if got != len(frames) or (rw, rh) != (w, h):
            raise RuntimeError(f"{path}: wrote {len(frames)} frames of {w}x{h}, read back {got} of {rw}x{rh}")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def usable_sources(shared_data: str, min_frames: int):
    """Decode every candidate under ``shared_data``; returns (usable ``[(rel, path, frames, fps)]``,
    skipped ``{path: reason}``). Raises ``RuntimeError`` with fewer than 2 usable sources."""
    skipped: dict[str, str] = {}
    usable = []
    for rel in _list_candidates(shared_data):
        path = os.path.join(shared_data, rel)
        name = os.path.basename(rel)
        if name in NOT_REAL_FOOTAGE:
            skipped[path] = NOT_REAL_FOOTAGE[name]
            continue
        if NOT_REAL_PATTERN.match(name):
            skipped[path] = "synthetic ffmpeg testsrc pattern, not real footage"
            continue
        frames, fps, err = _decode(path)
        if err:
            skipped[path] = err
        elif not frames:
            skipped[path] = "opens but decodes no frames"
        elif len(frames) < min_frames:
            skipped[path] = f"only {len(frames)} decodable frames (< {min_frames})"
        else:
            usable.append((rel, path, frames, fps))
    if len(usable) < 2:
        raise RuntimeError(f"need >= 2 usable source videos under {shared_data}, found {len(usable)}; "
                           f"skipped: {skipped}")
    return usable, skipped


def clear_outputs(out_dir, labels, out_name: re.Pattern) -> None:
    """Make ``out_dir/<split>/<label>/`` and remove clips (and temporary files) of an earlier run there."""
    for split in SPLITS:
        for label in labels:
            folder = os.path.join(out_dir, split, label)
            os.makedirs(folder, exist_ok=True)
            for name in os.listdir(folder):
                if out_name.match(name) or (name.startswith(".v_") and name.endswith(".avi")):
                    os.remove(os.path.join(folder, name))


def write_sources_csv(out_dir, rows) -> None:
    """``out_dir/sources.csv`` (group, source_path, split, n_frames, fps, windows), written atomically."""
    tmp_csv = os.path.join(out_dir, f".sources.csv.tmp{os.getpid()}")
    with open(tmp_csv, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["group", "source_path", "split", "n_frames", "fps", "windows"])
        writer.writerows(rows)
    os.replace(tmp_csv, os.path.join(out_dir, "sources.csv"))


def make_dataset(out_dir, seed: int = 0, shared_data: str = "/work/shared/data", window: int = 32,
                 frame_step: int = 2, max_windows_per_video: int = 12, test_fraction: float = 0.3) -> dict:
    """Build the forward/reversed dataset from real videos under ``shared_data`` into ``out_dir``.

    Returns ``{"train": n, "test": n, "labels": ["forward", "reversed"], "sources": k,
    "skipped": {path: reason}}`` where n counts windows (files) and k usable source videos.
    Old ``v_*_g*_c*.avi`` files under ``out_dir/<split>/<label>/`` are removed first, so a
    rerun never mixes seeds. Nothing under ``shared_data`` is modified.
    """
    if not os.path.isdir(shared_data):
        raise FileNotFoundError(f"shared data folder not found: {shared_data!r} (expected real videos there)")
    if window < 2 or frame_step < 1 or max_windows_per_video < 2:
        raise ValueError("need window >= 2, frame_step >= 1, max_windows_per_video >= 2")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError("test_fraction must be in (0, 1)")
    seed = int(seed) & 0xFFFFFFFF
    min_frames = max(MIN_FRAMES, window)

    # 1) decode every candidate; keep the usable ones
    usable, skipped = usable_sources(shared_data, min_frames)

    # 2) windows and balanced labels per source (seeded per source index)
    plans = []
    for g, (rel, path, frames, fps) in enumerate(usable, start=1):
        step, starts = _plan_windows(len(frames), window, frame_step, max_windows_per_video)
        rng = np.random.default_rng([seed, g])
        k = len(starts)
        labels = [0] * (k // 2) + [1] * (k // 2) + ([int(rng.integers(2))] if k % 2 else [])
        labels = [labels[i] for i in rng.permutation(k)]
        plans.append((step, starts, labels))

    # 3) leak-free split: same-footage clusters, then whole clusters to one side
    cluster_of = _clusters([_signature(u[2]) for u in usable])
    in_test = _choose_split(cluster_of, [len(p[1]) for p in plans], [sum(p[2]) for p in plans],
                            test_fraction, np.random.default_rng([seed, 1_000_003]))

    # 4) write
    clear_outputs(out_dir, LABELS, OUT_NAME)
    counts = {s: {l: 0 for l in LABELS} for s in SPLITS}
    rows = []
    for g, ((rel, path, frames, fps), (step, starts, labels)) in enumerate(zip(usable, plans), start=1):
        split = "test" if in_test[g - 1] else "train"
        for c, (start, lab) in enumerate(zip(starts, labels), start=1):
            clip = frames[start:start + (window - 1) * step + 1:step]
            if lab:
                clip = clip[::-1]
            label = LABELS[lab]
            _write_avi(os.path.join(out_dir, split, label, f"v_{label}_g{g:02d}_c{c:02d}.avi"), clip, fps)
            counts[split][label] += 1
        rows.append([f"g{g:02d}", path, split, len(frames), round(fps, 4), len(starts)])

    write_sources_csv(out_dir, rows)

    return {
        "train": sum(counts["train"].values()),
        "test": sum(counts["test"].values()),
        "labels": list(LABELS),
        "sources": len(usable),
        "skipped": skipped,
    }


def run_real_cli(make_dataset, description: str, argv=None):
    """``python GENERATOR.py OUT_DIR [--seed S] [--shared-data DIR]`` for the real-footage generators: calls
    ``make_dataset``; returns ``(summary, out_dir, seconds)``, or None once a missing or unusable source
    folder has been reported as one ``error:`` line (no traceback)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shared-data", default="/work/shared/data")
    args = ap.parse_args(argv)
    start = time.time()
    try:
        summary = make_dataset(args.out_dir, seed=args.seed, shared_data=args.shared_data)
    except (FileNotFoundError, RuntimeError) as error:  # no usable sources: say which and why
        print(f"error: {error}", file=sys.stderr)
        return None
    return summary, args.out_dir, time.time() - start


def main(argv=None) -> int:
    result = run_real_cli(make_dataset, "Forward/reversed clip classification from real videos.", argv)
    if result is None:
        return 1
    summary, out_dir, seconds = result
    print(f"train={summary['train']} test={summary['test']} labels={summary['labels']} "
          f"sources={summary['sources']} ({seconds:.1f}s)")
    with open(os.path.join(out_dir, "sources.csv")) as fh:
        for row in csv.DictReader(fh):
            print(f"  {row['group']} {row['split']:5s} windows={row['windows']:>2s} "
                  f"frames={row['n_frames']:>3s} fps={row['fps']:>7s} {row['source_path']}")
    print(f"skipped {len(summary['skipped'])}:")
    for path, reason in summary["skipped"].items():
        print(f"  {path}: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
