"""Clip index: cut every video of ``VIDEOS_DIR/<category>/…`` into fixed windows, split by video.

The index is a CSV, one row per window, with the columns ``INDEX_COLUMNS``:

    split, y, category, path, clip_idx, start_frame, end_frame, clip_len, stride, fps, n_frames

``path`` is relative to ``VIDEOS_DIR``; ``[start_frame, end_frame)`` is end-exclusive, in frames
of a full sequential decode (``n_frames`` is the decodable count, not the container's claim);
``y`` is 0 for normal videos (category starting with the normal class, case-insensitive), else 1.
A sidecar ``<OUT>.json`` records ``videos_dir`` and the settings, so ``--check`` and ``embed``
find the videos without being told.

Windows (see :func:`window_ranges`): starts ``0, stride, 2*stride, …`` while a whole window
fits; when those leave frames at the end uncovered, one more window is aligned to the end
(``[n - clip_len, n)``), so every frame is in at least one window and every window has
``clip_len`` frames. A video shorter than one window gives one window ``[0, n)``.
"""
from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import re
import sys
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from seqvision.errors import SeqvisionError
from seqvision.io import atomic_write_json, atomic_write_text, read_json

log = logging.getLogger(__name__)

INDEX_COLUMNS = ("split", "y", "category", "path", "clip_idx", "start_frame", "end_frame", "clip_len",
                 "stride", "fps", "n_frames")
_INT_COLUMNS = ("y", "clip_idx", "start_frame", "end_frame", "clip_len", "stride", "n_frames")
_SPLIT_NAME = re.compile(r"^[A-Za-z0-9_-]+$")  # a split names files (X_<split>.npy)


def window_ranges(n_frames: int, clip_len: int, stride: int) -> list[tuple[int, int]]:
    """``[(start, end)]`` windows over ``n_frames`` frames, end exclusive (tail: see module doc)."""
    if n_frames < 1 or clip_len < 1 or stride < 1:
        raise SeqvisionError(f"n_frames, clip_len and stride must be >= 1, got {n_frames}, {clip_len}, {stride}")
    if n_frames <= clip_len:
        return [(0, n_frames)]
    starts = list(range(0, n_frames - clip_len + 1, stride))
    if starts[-1] + clip_len < n_frames:
        starts.append(n_frames - clip_len)
    return [(s, s + clip_len) for s in starts]


def binary_label(category: str, normal_class: str = "Normal") -> int:
    """0 when ``category`` starts with ``normal_class`` (case-insensitive), else 1."""
    return 0 if category.lower().startswith(normal_class.lower()) else 1


def _share(count: int, fraction: float) -> int:
    return 0 if fraction <= 0 else max(1, round(count * fraction))


def assign_splits(videos: list[tuple[str, str]], val_fraction: float, test_fraction: float,
                  seed: int = 0) -> dict[str, str]:
    """``{path: split}`` for ``(category, path)`` pairs: whole videos, stratified by category.

    Each category's videos are shuffled and given evenly spaced positions in [0, 1); all videos
    are then ordered by position, and the first ``test_fraction`` go to test, the next
    ``val_fraction`` to val, the rest to train, so every split gets each category in proportion
    as far as whole videos allow.
    """
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise SeqvisionError(f"val and test fractions must be >= 0 and sum to < 1, got {val_fraction}, {test_fraction}")
    rng = np.random.default_rng(seed)
    by_category = defaultdict(list)
    for category, path in sorted(videos):
        by_category[category].append(path)
    keyed = []
    for category in sorted(by_category):
        paths = by_category[category]
        order = rng.permutation(len(paths))
        for rank, i in enumerate(order):
            keyed.append(((rank + 0.5) / len(paths), rng.random(), paths[i]))
    keyed.sort()
    n_test, n_val = _share(len(keyed), test_fraction), _share(len(keyed), val_fraction)
    if n_test + n_val >= len(keyed):
        raise SeqvisionError(f"{len(keyed)} videos are too few for val_fraction={val_fraction} and "
                             f"test_fraction={test_fraction}: none would be left for training")
    return {path: ("test" if i < n_test else "val" if i < n_test + n_val else "train")
            for i, (_, _, path) in enumerate(keyed)}


def read_split_file(path: str | Path) -> dict[str, str]:
    """``{video path relative to VIDEOS_DIR: split}`` from a CSV with columns ``path,split``."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"path", "split"} <= set(reader.fieldnames):
            raise SeqvisionError(f"{path}: a split file needs the columns path,split (got {reader.fieldnames})")
        splits = {}
        for line, row in enumerate(reader, start=2):
            video, split = Path(row["path"].strip()).as_posix(), row["split"].strip()
            if not _SPLIT_NAME.match(split):
                raise SeqvisionError(f"{path}:{line}: split name {split!r} must be letters, digits, _ or -")
            if splits.get(video, split) != split:
                raise SeqvisionError(f"{path}:{line}: {video} is listed in two splits ({splits[video]}, {split})")
            splits[video] = split
    return splits


def _probe(path: Path) -> tuple[int, float]:
    from seqvision.video import probe_video

    info = probe_video(path, count_frames=True)
    return info.num_frames, info.fps


def probe_videos(paths: list[Path], jobs: int | None = None, progress: bool = True) -> dict[Path, object]:
    """``{path: (n_frames, fps)}`` for readable videos, ``{path: VideoError}`` for the others.

    Decodes each video to count its frames; threads (OpenCV releases the GIL)."""
    from tqdm import tqdm

    from seqvision.video import VideoError

    def probe(path):
        try:
            return path, _probe(path)
        except VideoError as error:
            return path, error

    results = {}
    bar = tqdm(total=len(paths), disable=not progress, file=sys.stderr, unit="video", desc="index")
    with ThreadPoolExecutor(jobs or min(8, os.cpu_count() or 1)) as pool:
        for path, result in pool.map(probe, paths):
            results[path] = result
            bar.update()
    bar.close()
    return results


def build_clip_index(videos_dir: str | Path, out_csv: str | Path, *, clip_len: int = 32, stride: int | None = 16,
                     every_seconds: float | None = None, val_fraction: float = 0.2, test_fraction: float = 0.2,
                     seed: int = 0, split_file: str | Path | None = None, normal_class: str = "Normal",
                     jobs: int | None = None, progress: bool = True) -> dict:
    """Write the clip index of ``videos_dir`` to ``out_csv`` (and its ``.json`` sidecar), atomically.

    ``every_seconds`` replaces ``stride`` by ``round(every_seconds * fps)`` frames per video.
    Videos that do not decode, lack a frame rate (with ``every_seconds``) or are missing from
    ``split_file`` are logged (path + reason) and left out. Returns the sidecar's content.
    """
    from seqvision.frames import find_videos

    if clip_len < 1 or (every_seconds is None and (stride is None or stride < 1)):
        raise SeqvisionError(f"clip_len and stride must be >= 1, got {clip_len}, {stride}")
    if every_seconds is not None and every_seconds <= 0:
        raise SeqvisionError(f"every_seconds must be > 0, got {every_seconds}")
    videos_dir = Path(videos_dir)
    found = [(category, path, path.relative_to(videos_dir).as_posix()) for category, path in find_videos(videos_dir)]
    skipped = []
    if split_file is not None:
        listed = read_split_file(split_file)
        for category, path, rel in found:
            if rel not in listed:
                skipped.append({"path": rel, "reason": f"not in the split file {split_file}"})
        known = {rel for _, _, rel in found}
        for rel in sorted(set(listed) - known):
            log.warning("%s: listed in %s but not a video under %s", rel, split_file, videos_dir)
        found = [v for v in found if v[2] in listed]
    probed = probe_videos([path for _, path, _ in found], jobs, progress)
    readable = []
    for category, path, rel in found:
        result = probed[path]
        if isinstance(result, Exception):
            skipped.append({"path": rel, "reason": result.reason})
        elif every_seconds is not None and result[1] <= 0:
            skipped.append({"path": rel, "reason": "no frame rate, so --every-seconds cannot be used"})
        else:
            readable.append((category, rel, *result))
    for entry in skipped:
        log.warning("skipping %s: %s", videos_dir / entry["path"], entry["reason"])
    if not readable:
        raise SeqvisionError(f"{videos_dir}: no readable video to index")
    splits = (listed if split_file is not None
              else assign_splits([(c, rel) for c, rel, _, _ in readable], val_fraction, test_fraction, seed))
    rows = []
    for category, rel, n_frames, fps in readable:
        step = stride if every_seconds is None else max(1, round(every_seconds * fps))
        for clip_idx, (start, end) in enumerate(window_ranges(n_frames, clip_len, step)):
            rows.append({"split": splits[rel], "y": binary_label(category, normal_class), "category": category,
                         "path": rel, "clip_idx": clip_idx, "start_frame": start, "end_frame": end,
                         "clip_len": clip_len, "stride": step, "fps": f"{fps:.6g}", "n_frames": n_frames})
    atomic_write_text(out_csv, _rows_csv(rows))
    sidecar = {"videos_dir": str(videos_dir.resolve()), "clip_len": clip_len, "stride": stride,
               "every_seconds": every_seconds, "val_fraction": val_fraction, "test_fraction": test_fraction,
               "seed": seed, "split_file": str(split_file) if split_file else None, "normal_class": normal_class,
               "videos": len(readable), "clips": len(rows), "skipped": skipped}
    atomic_write_json(sidecar_path(out_csv), sidecar)
    return sidecar


def _rows_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=INDEX_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def sidecar_path(index_csv: str | Path) -> Path:
    return Path(index_csv).with_suffix(".json")


def index_videos_dir(index_csv: str | Path, videos_dir: str | Path | None = None) -> Path:
    """``videos_dir`` if given, else the one recorded in the index's sidecar ``.json``."""
    if videos_dir is not None:
        return Path(videos_dir)
    sidecar = sidecar_path(index_csv)
    if not sidecar.exists():
        raise SeqvisionError(f"{index_csv}: no sidecar {sidecar.name} saying where the videos are; pass --videos-dir")
    return Path(read_json(sidecar)["videos_dir"])


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_clip_index(index_csv: str | Path) -> list[dict]:
    """The rows of an index, integer columns as int and ``fps`` as float; ValueError naming the
    file and line for a wrong header or a value that is not a number."""
    with open(index_csv, newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != INDEX_COLUMNS:
            raise SeqvisionError(f"{index_csv}: not a clip index; expected the columns {','.join(INDEX_COLUMNS)}, "
                                 f"got {','.join(reader.fieldnames or [])}")
        rows = []
        for line, row in enumerate(reader, start=2):
            try:
                rows.append({**row, **{k: int(row[k]) for k in _INT_COLUMNS}, "fps": float(row["fps"])})
            except (TypeError, ValueError):
                raise SeqvisionError(f"{index_csv}:{line}: a number column holds {row}") from None
    if not rows:
        raise SeqvisionError(f"{index_csv}: the index has no rows")
    return rows


def check_clip_index(index_csv: str | Path, videos_dir: str | Path | None = None) -> tuple[list[str], dict]:
    """``(problems, counts)`` of an index: ranges inside the video, paths exist, no video in two
    splits, each video's windows exactly :func:`window_ranges` of its clip_len/stride.

    ``counts[split]`` holds ``clips``, ``videos``, ``normal`` and ``anomalous`` (clips) and
    ``categories`` (clips per category).
    """
    rows = read_clip_index(index_csv)
    videos_dir = index_videos_dir(index_csv, videos_dir)
    problems = []
    by_video = defaultdict(list)
    for line, row in enumerate(rows, start=2):
        where = f"line {line} ({row['path']} clip {row['clip_idx']})"
        if not 0 <= row["start_frame"] < row["end_frame"] <= row["n_frames"]:
            problems.append(f"{where}: range [{row['start_frame']}, {row['end_frame']}) is not inside the "
                            f"video's {row['n_frames']} frames")
        if row["y"] not in (0, 1):
            problems.append(f"{where}: y must be 0 or 1, got {row['y']}")
        if not _SPLIT_NAME.match(row["split"]):
            problems.append(f"{where}: split name {row['split']!r} must be letters, digits, _ or -")
        by_video[row["path"]].append(row)
    for path, windows in by_video.items():
        if not (videos_dir / path).is_file():
            problems.append(f"{path}: not found under {videos_dir}")
        splits = sorted({w["split"] for w in windows})
        if len(splits) > 1:
            problems.append(f"{path}: video in {len(splits)} splits ({', '.join(splits)}): windows leak across splits")
        for column in ("category", "y", "clip_len", "stride", "n_frames", "fps"):
            if len({w[column] for w in windows}) > 1:
                problems.append(f"{path}: windows disagree on {column}")
        first = windows[0]
        try:
            expected = window_ranges(first["n_frames"], first["clip_len"], first["stride"])
        except ValueError as error:
            problems.append(f"{path}: {error}")
            continue
        got = sorted((w["clip_idx"], w["start_frame"], w["end_frame"]) for w in windows)
        if got != [(i, s, e) for i, (s, e) in enumerate(expected)]:
            problems.append(f"{path}: windows are not those of clip_len={first['clip_len']}, "
                            f"stride={first['stride']} over {first['n_frames']} frames "
                            f"({len(got)} windows, expected {len(expected)})")
    return problems, _counts(rows, by_video)


def _counts(rows: list[dict], by_video: dict) -> dict:
    counts = {}
    for split in sorted({r["split"] for r in rows}):
        in_split = [r for r in rows if r["split"] == split]
        counts[split] = {"clips": len(in_split),
                         "videos": sum(any(w["split"] == split for w in ws) for ws in by_video.values()),
                         "normal": sum(r["y"] == 0 for r in in_split),
                         "anomalous": sum(r["y"] == 1 for r in in_split),
                         "categories": dict(sorted(Counter(r["category"] for r in in_split).items()))}
    return counts
