"""extract-frames: class-folder videos -> ordered frame folders + manifest.csv.

Layout written under ``OUT_DIR``::

    <label>/<clip>/000000.png, 000001.png, …   position in the sequence, so sorted = temporal
    <label>/<clip>/frames.json                 {"source", "indices", "source_frames", "fps", "size", …}
    manifest.csv                               one row per video found (see MANIFEST_COLUMNS)

A clip folder is written as ``<label>/.<clip>.partial-<pid>`` and renamed into place when
complete, so an existing ``<label>/<clip>/`` is always whole; a re-run skips those and removes
leftover partial folders. A clip needs at least ``MIN_FRAMES`` (2) frames: one frame carries no
order for a sequence model, so a 1-frame video (or a sampling that keeps one frame) is
reported as failed.
"""
from __future__ import annotations

import csv
import errno
import io
import json
import logging
import multiprocessing
import os
import shutil
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from seqvision.diskspace import is_no_space
from seqvision.errors import SeqvisionError
from seqvision.frame_folders import MIN_FRAMES, find_videos, frame_files, too_few_frames_reason
from seqvision.io import atomic_write_json, atomic_write_text
from seqvision.locks import exclusive_lock
from seqvision.sampling import sample_every_seconds_indices, sample_stride_indices, sample_uniform_indices
from seqvision.video import (MIN_DECODED_FRACTION, VideoError, check_min_decoded_fraction,
                             normalize_size, read_video_frames)

log = logging.getLogger(__name__)

DEFAULT_SEQ_LEN = 16  # the CLI's sampling when none is given
# OpenCV's PNG defaults (level 1, RLE, sub filter) encode ~1.6x faster than an explicit level 1
# with libpng's adaptive filters, for files ~15% larger; still lossless.
IMAGE_FORMATS = {"png": [], "jpg": [cv2.IMWRITE_JPEG_QUALITY, 95]}
WRITE_THREADS = 2  # imwrite releases the GIL; encoding is most of extract's time after decoding
MANIFEST_COLUMNS = ("label", "clip", "source", "status", "reason", "frames_written", "source_frames", "fps")


@dataclass
class ExtractResult:
    """Outcome for one video. ``status``: "ok", "skipped" (already complete) or "failed"."""

    label: str
    clip: str
    source: str
    status: str
    reason: str
    frames_written: int
    source_frames: int
    fps: float
    out_dir: Path


def _settings(seq_len, every_seconds, stride, size, image_format) -> dict:
    """What decides a clip's content; a clip extracted with other settings is not reused."""
    sampling = {k: v for k, v in (("seq_len", seq_len), ("every_seconds", every_seconds),
                                  ("stride", stride)) if v is not None}
    return {"sampling": sampling, "size": list(size) if size else None, "image_format": image_format}


def _source_stamp(source: Path) -> dict:
    """Size and modification time of ``source``: a video replaced under the same name differs."""
    stat = source.stat()
    return {"source_bytes": stat.st_size, "source_mtime_ns": stat.st_mtime_ns}


def _previous(clip_dir: Path, source: Path, settings: dict) -> tuple[dict | None, str]:
    """``(frames.json, "")`` for a complete earlier extraction of ``source`` with these settings,
    else ``(None, reason)``."""
    try:
        meta = json.loads((clip_dir / "frames.json").read_text())
    except (OSError, ValueError):
        meta = None
    if not (isinstance(meta, dict) and isinstance(meta.get("indices"), list)
            and all(k in meta for k in ("source", "source_frames", "fps"))):
        return None, f"{clip_dir} exists but has no valid frames.json; delete it to extract again"
    if Path(str(meta["source"])).name != source.name:  # by name: the videos folder may have moved
        return None, f"{clip_dir} holds frames of {meta['source']}; rename one of the videos"
    if {k: meta.get(k) for k in settings} != settings:
        return None, (f"{clip_dir} was extracted with other settings ({meta.get('sampling')}, "
                      f"size {meta.get('size')}, {meta.get('image_format')}); delete it or use another OUT_DIR")
    try:
        complete = len(frame_files(clip_dir)) == len(meta["indices"])
    except (OSError, ValueError):
        complete = False
    if not complete:
        return None, f"{clip_dir}: frame files do not match frames.json; delete it to extract again"
    return meta, ""


def _write_image(path: Path, frame_rgb: np.ndarray, params: list[int]) -> bool:
    """Encode and write one frame; a write error (ENOSPC…) is an OSError naming ``path``
    (``cv2.imwrite`` only returns False)."""
    ok, encoded = cv2.imencode(path.suffix, cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR), params)
    if ok:
        with open(path, "wb") as f:
            f.write(encoded.tobytes())
    return bool(ok)


def _extract_one(label: str, source: Path, clip_dir: Path, settings: dict,
                 min_decoded_fraction: float = MIN_DECODED_FRACTION) -> ExtractResult:
    """Read, check and write one clip; every failure becomes a "failed" result, never an exception."""
    sampling = settings["sampling"]
    size = settings["size"]
    image_format = settings["image_format"]

    def result(status, reason="", written=0, source_frames=0, fps=0.0):
        return ExtractResult(label, clip_dir.name, str(source), status, reason, written, source_frames,
                             float(fps), clip_dir)

    try:
        stamp = _source_stamp(source)
    except OSError as error:
        return result("failed", f"cannot read: {error.strerror or error}")
    replace = clip_dir.exists()
    if replace:
        meta, reason = _previous(clip_dir, source, settings)
        if meta is None:
            return result("failed", reason)
        if all(meta.get(k) == v for k, v in stamp.items()):
            return result("skipped", "", len(meta["indices"]), meta["source_frames"], meta["fps"])
        log.info("%s changed since %s was extracted; extracting again", source, clip_dir)
    try:
        frames, indices, info = read_video_frames(source, size=tuple(size) if size else None,
                                                  min_decoded_fraction=min_decoded_fraction, **sampling)
    except VideoError as error:
        return result("failed", error.reason)
    except Exception as error:  # one odd file must not stop the run; keep the trace for -v
        log.debug("reading %s failed", source, exc_info=True)
        return result("failed", f"{type(error).__name__}: {error}")
    if len(frames) < MIN_FRAMES:
        reason = (too_few_frames_reason(info.num_frames) if info.num_frames == 1 else
                  f"only {len(frames)} frame selected of {info.num_frames}; a sequence needs at least {MIN_FRAMES}")
        return result("failed", reason, source_frames=info.num_frames or 0, fps=info.fps)
    partial = clip_dir.parent / f".{clip_dir.name}.partial-{os.getpid()}"
    try:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        paths = [partial / f"{position:06d}.{image_format}" for position in range(len(frames))]
        with ThreadPoolExecutor(WRITE_THREADS) as pool:
            written = list(pool.map(_write_image, paths, frames, [IMAGE_FORMATS[image_format]] * len(paths)))
        if not all(written):
            raise OSError(f"cannot write {paths[written.index(False)]}")
        atomic_write_json(partial / "frames.json", {
            "source": str(source), "indices": indices.tolist(), "source_frames": info.num_frames,
            "fps": info.fps, "width": int(frames.shape[2]), "height": int(frames.shape[1]), **stamp, **settings})
        if replace:  # the old folder moves aside under a partial name, which a later run removes
            old = clip_dir.parent / f".{clip_dir.name}.partial-old-{os.getpid()}"
            shutil.rmtree(old, ignore_errors=True)
            os.rename(clip_dir, old)
            os.rename(partial, clip_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(partial, clip_dir)
    except (OSError, cv2.error) as error:
        shutil.rmtree(partial, ignore_errors=True)
        if is_no_space(error):  # a full disk is not a bad video: the whole run stops
            raise
        if isinstance(error, OSError) and error.errno in (errno.ENOTEMPTY, errno.EEXIST) \
                and _previous(clip_dir, source, settings)[0] is not None:
            return result("skipped", "", len(frames), info.num_frames, info.fps)  # another process wrote it
        return result("failed", f"cannot write frames: {error}")
    return result("ok", "", len(frames), info.num_frames, info.fps)


def _clip_dirs(videos: list[tuple[str, Path]], out_dir: Path) -> tuple[list, list[ExtractResult]]:
    """Output folder per video; a second video with the same clip name in a label fails."""
    tasks, collisions, taken = [], [], {}
    for order, (label, source) in enumerate(videos):
        key = (label, source.stem.casefold())  # case-insensitive file systems would merge them
        clip_dir = out_dir / label / source.stem
        if key in taken:
            collisions.append((order, ExtractResult(
                label, source.stem, str(source), "failed",
                f"clip name {source.stem!r} is already taken by {taken[key].name} in {label}/; rename one",
                0, 0, 0.0, clip_dir)))
        else:
            taken[key] = source
            tasks.append((order, (label, source, clip_dir)))
    return tasks, collisions


def _remove_partials(out_dir: Path, labels: set[str]) -> None:
    for label in labels:
        label_dir = out_dir / label
        if label_dir.is_dir():
            for partial in label_dir.glob(".*.partial-*"):
                shutil.rmtree(partial, ignore_errors=True)


def write_manifest(results: list[ExtractResult], out_dir: str | Path) -> Path:
    """Write ``out_dir/manifest.csv`` atomically, one row per result."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=MANIFEST_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in results:
        writer.writerow(asdict(r))
    return atomic_write_text(Path(out_dir) / "manifest.csv", buffer.getvalue())


def extract_frames(videos_dir: str | Path, out_dir: str | Path, *, seq_len: int | None = None,
                   every_seconds: float | None = None, stride: int | None = None,
                   size: int | tuple[int, int] | None = None, image_format: str = "png",
                   jobs: int | None = None, progress: bool = True,
                   min_decoded_fraction: float = MIN_DECODED_FRACTION) -> list[ExtractResult]:
    """Extract frames of every video in ``videos_dir/<label>/`` into ``out_dir/<label>/<clip>/``.

    Exactly one of ``seq_len`` (uniform over the whole video), ``every_seconds`` or ``stride``.
    ``size``: int square side or ``(width, height)``; None keeps the source size.
    ``image_format``: "png" (lossless) or "jpg" (quality 95). ``jobs``: worker processes
    (default ``os.cpu_count()``; 1 runs in this process). Bad videos are logged and reported as
    "failed" results; the run carries on. Returns one result per video found, in
    :func:`find_videos` order, and writes ``out_dir/manifest.csv``. A video that decodes fewer
    than ``min_decoded_fraction`` of the frames its container lists fails as truncated.
    """
    given = [v for v in (seq_len, every_seconds, stride) if v is not None]
    if len(given) != 1:
        raise SeqvisionError("give exactly one of seq_len, every_seconds or stride")
    if image_format not in IMAGE_FORMATS:
        raise SeqvisionError(f"image_format must be one of {sorted(IMAGE_FORMATS)}, got {image_format!r}")
    # Bad settings fail here, once, rather than once per video in the workers.
    if seq_len is not None:
        sample_uniform_indices(0, seq_len)
    elif stride is not None:
        sample_stride_indices(0, stride)
    else:
        sample_every_seconds_indices(0, 1.0, every_seconds)
    check_min_decoded_fraction(min_decoded_fraction)
    settings = _settings(seq_len, every_seconds, stride, normalize_size(size), image_format)
    jobs = (os.cpu_count() or 1) if jobs is None else jobs
    if jobs < 1:
        raise SeqvisionError(f"jobs must be >= 1, got {jobs}")

    videos = find_videos(videos_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # One run at a time per OUT_DIR: a second one waits, then finds the clips complete.
    with exclusive_lock(out_dir / ".extract-frames.lock", f"another extract-frames is writing {out_dir}; waiting"):
        try:
            ordered = _extract_all(videos, out_dir, settings, jobs, progress, min_decoded_fraction)
        except OSError as error:
            if is_no_space(error):
                _remove_partials(out_dir, {label for label, _ in videos})
            raise
        write_manifest(ordered, out_dir)
    return ordered


def _extract_all(videos: list[tuple[str, Path]], out_dir: Path, settings: dict, jobs: int, progress: bool,
                 min_decoded_fraction: float) -> list[ExtractResult]:
    """The body of :func:`extract_frames` under its lock: one result per video, in order."""
    _remove_partials(out_dir, {label for label, _ in videos})
    tasks, collisions = _clip_dirs(videos, out_dir)
    results: dict[int, ExtractResult] = dict(collisions)
    bar = tqdm(total=len(videos), disable=not progress, file=sys.stderr, unit="video", desc="extract-frames")
    bar.update(len(collisions))
    if jobs == 1 or len(tasks) <= 1:
        for order, (label, source, clip_dir) in tasks:
            results[order] = _extract_one(label, source, clip_dir, settings, min_decoded_fraction)
            bar.update()
    else:
        # spawn, not fork: the parent may hold TensorFlow / OpenCV threads that fork would copy.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=context,
                                 initializer=_exit_with_parent, initargs=(os.getpid(),)) as pool:
            futures = {pool.submit(_extract_one, label, source, clip_dir, settings, min_decoded_fraction): order
                       for order, (label, source, clip_dir) in tasks}
            for future in as_completed(futures):
                order = futures[future]
                try:
                    results[order] = future.result()
                except Exception as error:  # a worker died (e.g. a decoder crash): report, go on
                    if is_no_space(error):
                        pool.shutdown(wait=True, cancel_futures=True)
                        raise
                    label, source, clip_dir = dict(tasks)[order]
                    results[order] = ExtractResult(label, clip_dir.name, str(source), "failed",
                                                   f"worker process failed: {type(error).__name__}: {error}",
                                                   0, 0, 0.0, clip_dir)
                bar.update()
    bar.close()
    ordered = [results[i] for i in range(len(videos))]
    for r in ordered:
        if r.status == "failed":
            log.warning("%s: %s", r.source, r.reason)
    return ordered


def _exit_with_parent(parent_pid: int) -> None:
    """Process-pool initializer: end this worker when the parent dies (even by SIGKILL, which
    runs no cleanup), instead of leaving it orphaned."""
    def watch():
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()

