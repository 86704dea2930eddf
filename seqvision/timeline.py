"""Timelines over long videos: a score for every window, one sequential decode, as CSV and PNG.

A video is cut into the windows of :func:`seqvision.clip_index.window_ranges` (``window``
frames every ``stride``; one more aligned to the end when frames are left over), each window
sampled like a clip index row (``sample_uniform_indices(n, T, start, end)``), and the windows
are scored in chunks as the decode reaches them, so a long video is never held in memory.

Files, for a video ``<stem>.<ext>``:

    <stem>_timeline.csv   start_frame, end_frame (exclusive), start_s, end_s, one column per
                          score (class probabilities, or ``score``), and ``flag`` (0/1) when the
                          scores have a threshold (anomaly detectors)
    <stem>_timeline.png   the scores over time, flagged/segment spans shaded
    <stem>_segments.csv   with segments: label, start_frame, end_frame, start_s, end_s, peak

The last window always ends at the video's last decodable frame, so ``n_frames`` is the
largest ``end_frame`` of a timeline CSV.
"""
from __future__ import annotations

import csv
import io
import logging
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from seqvision.clip_index import window_ranges
from seqvision.errors import SeqvisionError
from seqvision.io import atomic_write_text
from seqvision.sampling import sample_uniform_indices

log = logging.getLogger(__name__)

DEFAULT_CHUNK_WINDOWS = 64
TIME_COLUMNS = ("start_frame", "end_frame", "start_s", "end_s")
SEGMENT_COLUMNS = ("label", "start_frame", "end_frame", "start_s", "end_s", "peak")


# === Windows of one decode ===

@dataclass
class WindowChunk:
    """Consecutive windows of one video and the frames their samples need.

    ``ranges`` int64 ``[B, 2]``: ``[start, end)`` frames; ``frames`` uint8 ``[U, S, S, 3]`` RGB:
    the distinct sampled frames in frame order (``frame_indices`` int64 ``[U]``); ``positions``
    int64 ``[B, T]``: the row of ``frames`` of each window's t-th sample, valid where ``mask``
    bool ``[B, T]``; ``fps``: the container's rate (0.0 unknown); ``decoded``: frames decoded so far.
    """

    ranges: np.ndarray
    frames: np.ndarray
    frame_indices: np.ndarray
    positions: np.ndarray
    mask: np.ndarray
    fps: float
    decoded: int

    def clips(self) -> np.ndarray:
        """uint8 ``[B, T, S, S, 3]``, zero where ``mask`` is False."""
        clips = self.frames[self.positions]
        clips[~self.mask] = 0
        return clips


def _chunk(ranges: list, samples: list, frame_at: Callable[[int], np.ndarray], seq_len: int, fps: float,
           decoded: int) -> WindowChunk:
    wanted = np.unique(np.concatenate(samples))
    positions = np.zeros((len(ranges), seq_len), np.int64)
    mask = np.zeros((len(ranges), seq_len), bool)
    for row, sample in enumerate(samples):
        positions[row, :len(sample)] = np.searchsorted(wanted, sample)
        mask[row, :len(sample)] = True
    return WindowChunk(np.array(ranges, np.int64).reshape(-1, 2), np.stack([frame_at(int(i)) for i in wanted]),
                       wanted, positions, mask, fps, decoded)


def iter_window_chunks(path: str | Path, window: int, stride: int | None, seq_len: int, size: int, *,
                       every_seconds: float | None = None,
                       chunk_windows: int = DEFAULT_CHUNK_WINDOWS) -> Iterator[WindowChunk]:
    """The windows of ``path`` (module doc) in order, ``chunk_windows`` at a time, from one decode.

    ``every_seconds`` replaces ``stride`` by ``round(every_seconds * fps)``, as ``seqvision index``
    does. Frames are grabbed (decoded) sequentially and converted only when a window samples
    them, or when they lie in the last ``2 * window`` frames the container announces (the window
    aligned to the end needs the true length). Only when the container overstates the length by
    more than a window are those frames read again, in a second pass. Frames are resized to
    ``size`` x ``size``. Raises ``VideoError`` (path + reason) for an unreadable video.
    """
    from seqvision.video import VideoError, read_video_frames
    from seqvision.video_stream import VideoStream

    path = Path(path)
    offsets = sample_uniform_indices(window, seq_len, 0, window)  # samples of any full window, from its start
    offset_set = set(offsets.tolist())

    def sampled(index: int) -> bool:
        first = max(0, -(-(index - window + 1) // stride))
        return any(index - k * stride in offset_set for k in range(first, index // stride + 1))

    stream = VideoStream(path, lambda i: sampled(i) or i >= tail_from, size)
    metadata_frames, fps = stream.metadata_frames, stream.fps
    if every_seconds is not None:
        if fps <= 0:
            stream.close()
            raise VideoError(path, "the video reports no frame rate, so windows every N seconds cannot be placed")
        stride = max(1, round(every_seconds * fps))
    try:
        window_ranges(1, window, stride)  # validates window and stride
    except ValueError:
        stream.close()
        raise
    tail_from = max(0, metadata_frames - 2 * window) if metadata_frames else 0
    recent: deque = deque(maxlen=window)  # (index, frame) of the last frames, for the window at the end
    kept: dict[int, np.ndarray] = {}
    ready, done = [], 0

    def regular_chunk(decoded: int) -> WindowChunk:
        return _chunk(ready, [start + offsets for start, _ in ready], kept.__getitem__, seq_len, fps, decoded)

    for index, image in stream:
        if image is not None:
            if sampled(index):
                kept[index] = image
            if index >= tail_from:
                recent.append((index, image))
        if index + 1 >= window and (index + 1 - window) % stride == 0:
            ready.append((index + 1 - window, index + 1))
            if len(ready) == chunk_windows:
                yield regular_chunk(index + 1)
                done += len(ready)
                next_start = ready[-1][0] + stride
                kept = {i: f for i, f in kept.items() if i >= next_start}
                ready = []
    index = stream.decoded
    if index == 0:
        raise VideoError(path, f"no decodable frames (metadata claims {metadata_frames} frames)")
    windows = window_ranges(index, window, stride)
    assert windows[done:done + len(ready)] == ready, "regular windows out of step with window_ranges"
    if ready:
        yield regular_chunk(index)
    last = windows[done + len(ready):]  # the window aligned to the end, or [0, n) for a short video
    if not last:
        return
    samples = [sample_uniform_indices(index, seq_len, start, end) for start, end in last]
    frames = {**kept, **dict(recent)}
    missing = sorted(set(np.concatenate(samples).tolist()) - frames.keys())
    if missing:
        log.info("%s: %d frames decode where the container announces %d; reading the last window again",
                 path, index, metadata_frames)
        again, _, _ = read_video_frames(path, indices=missing, size=size)
        frames.update(zip(missing, again))
    yield _chunk(last, samples, frames.__getitem__, seq_len, fps, index)


# === Timelines ===

@dataclass
class Timeline:
    """Scores of every window of one video: ``ranges`` int64 ``[W, 2]`` (``[start, end)`` frames),
    ``values`` float64 ``[W, K]`` named by ``columns``; ``threshold``: windows scoring above it are
    flagged (anomaly detectors; None for class probabilities); ``fps`` 0.0 when unknown."""

    path: Path
    fps: float
    ranges: np.ndarray
    columns: list[str]
    values: np.ndarray
    threshold: float | None = None

    @property
    def n_frames(self) -> int:
        return int(self.ranges[-1, 1])

    def seconds(self, frames) -> np.ndarray:
        """Frame numbers as seconds (NaN when the frame rate is unknown)."""
        return np.asarray(frames, np.float64) / self.fps if self.fps > 0 else np.full(np.shape(frames), np.nan)


def video_timeline(video: str | Path, window: int, stride: int | None, seq_len: int, img_size: int,
                   score_chunk: Callable[[WindowChunk], np.ndarray], columns: list[str], *,
                   threshold: float | None = None, every_seconds: float | None = None,
                   chunk_windows: int = DEFAULT_CHUNK_WINDOWS, progress: bool = True) -> Timeline:
    """The :class:`Timeline` of ``video``: ``score_chunk(chunk) -> [B, len(columns)]`` per chunk of windows."""
    from tqdm import tqdm

    ranges, values, fps = [], [], 0.0
    bar = tqdm(disable=not progress, file=sys.stderr, unit="frame", desc=Path(video).name)
    for chunk in iter_window_chunks(video, window, stride, seq_len, img_size, every_seconds=every_seconds,
                                    chunk_windows=chunk_windows):
        ranges.append(chunk.ranges)
        values.append(np.asarray(score_chunk(chunk), np.float64).reshape(len(chunk.ranges), len(columns)))
        fps = chunk.fps
        bar.update(chunk.decoded - bar.n)
    bar.close()
    return Timeline(Path(video), fps, np.concatenate(ranges), list(columns), np.concatenate(values), threshold)


def class_timeline(run, video: str | Path, window: int, stride: int | None = None, *,
                   chunk_windows: int = DEFAULT_CHUNK_WINDOWS, progress: bool = True) -> Timeline:
    """Class probabilities of every window of ``video`` from a video run (``seqvision.load_run``).

    ``stride`` defaults to ``window // 2``. Each window gives the run ``seq_len`` frames (its
    config), fewer with a mask for a video shorter than that.
    """
    if run.kind != "video":
        raise SeqvisionError(f"{run.path}: not a video run; timelines need a model that takes frames")
    seq_len, img_size = int(run.config["seq_len"]), int(run.config["img_size"])
    return video_timeline(video, window, stride or max(1, window // 2), seq_len, img_size,
                          lambda chunk: run.predict_proba(chunk.clips(), chunk.mask), list(run.labels),
                          chunk_windows=chunk_windows, progress=progress)


# === Segments ===

def merge_segments(timeline: Timeline, column: str, threshold: float, label: str | None = None) -> list[dict]:
    """Runs of consecutive windows whose ``column`` is above ``threshold``, as events
    ``{label, start_frame, end_frame, start_s, end_s, peak}`` (from the first window's start to
    the last window's end; ``peak``: the highest score in the run)."""
    if column not in timeline.columns:
        raise SeqvisionError(f"{timeline.path}: no score column {column!r} (columns: {', '.join(timeline.columns)})")
    scores = timeline.values[:, timeline.columns.index(column)]
    above = np.r_[False, scores > threshold, False]
    starts = np.flatnonzero(~above[:-1] & above[1:])
    ends = np.flatnonzero(above[:-1] & ~above[1:])  # one past each run's last window
    events = []
    for first, stop in zip(starts, ends):
        start_frame, end_frame = int(timeline.ranges[first, 0]), int(timeline.ranges[stop - 1, 1])
        start_s, end_s = timeline.seconds([start_frame, end_frame])
        events.append({"label": label or column, "start_frame": start_frame, "end_frame": end_frame,
                       "start_s": float(start_s), "end_s": float(end_s), "peak": float(scores[first:stop].max())})
    return events


# === Files ===

def _seconds_text(value: float) -> str:
    return "" if np.isnan(value) else f"{value:.3f}"


def timeline_records(timeline: Timeline) -> list[dict]:
    """One dict per window: ``start_frame, end_frame, start_s, end_s`` (NaN without a frame rate),
    the score columns and, with a threshold, ``flag`` (1 when the first column is above it)."""
    times = timeline.seconds(timeline.ranges)
    records = []
    for (start, end), (start_s, end_s), values in zip(timeline.ranges, times, timeline.values):
        record = {"start_frame": int(start), "end_frame": int(end), "start_s": float(start_s), "end_s": float(end_s),
                  **{column: float(v) for column, v in zip(timeline.columns, values)}}
        if timeline.threshold is not None:
            record["flag"] = int(values[0] > timeline.threshold)
        records.append(record)
    return records


def timeline_csv_text(timeline: Timeline) -> str:
    """The timeline CSV (module doc) as text."""
    records = timeline_records(timeline)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(records[0]), lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({k: _seconds_text(v) if k in ("start_s", "end_s") else f"{v:.6g}" if isinstance(v, float) else v
                         for k, v in record.items()})
    return text.getvalue()


def write_segments_csv(path: str | Path, events: list[dict]) -> Path:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=SEGMENT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for event in events:
        writer.writerow({**event, "start_s": _seconds_text(event["start_s"]), "end_s": _seconds_text(event["end_s"]),
                         "peak": f"{event['peak']:.6g}"})
    return atomic_write_text(path, text.getvalue())


def plot_timeline(timeline: Timeline, path: str | Path, events: list[dict] = (),
                  threshold: float | None = None) -> Path:
    """Each score column over the window centres (seconds, or frames when the rate is unknown),
    ``events`` shaded, the threshold as a dashed line."""
    from seqvision.evaluation import new_figure, save_figure

    centres = timeline.ranges.mean(axis=1)
    in_seconds = timeline.fps > 0
    x = timeline.seconds(centres) if in_seconds else centres
    fig, ax = new_figure(figsize=(10, 3.6))
    for k, column in enumerate(timeline.columns):
        ax.plot(x, timeline.values[:, k], label=column, linewidth=1.2)
    for event in events:
        span = (event["start_s"], event["end_s"]) if in_seconds else (event["start_frame"], event["end_frame"])
        ax.axvspan(*span, color="tab:red", alpha=0.12)
    threshold = timeline.threshold if threshold is None else threshold
    low, high = float(timeline.values.min()), float(timeline.values.max())
    if threshold is not None and abs(threshold - (low + high) / 2) <= high - low + 1:  # else it squashes the plot
        ax.axhline(threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {threshold:.3g}")
    elif threshold is not None:
        ax.text(0.01, 0.95, f"threshold {threshold:.3g} is off this scale", transform=ax.transAxes, fontsize=8)
    ax.set_xlabel("time (s)" if in_seconds else "frame")
    ax.set_ylabel("score" if timeline.threshold is not None else "probability")
    ax.set_title(f"{timeline.path.name}: {len(timeline.ranges)} windows")
    ax.grid(alpha=0.3)
    if len(timeline.columns) <= 12:
        ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return save_figure(fig, path)


def check_distinct_names(videos) -> None:
    """Refuse videos whose timelines would share a file name (``<stem>_timeline.csv``)."""
    stems: dict[str, str] = {}
    for video in videos:
        other = stems.setdefault(Path(video).stem, str(video))
        if other != str(video):
            raise SeqvisionError(f"{other} and {video} would both write {Path(video).stem}_timeline.csv; "
                                 "run them with separate --out folders")


def write_timeline(timeline: Timeline, out_dir: str | Path, events: list[dict] | None = None,
                   threshold: float | None = None) -> dict[str, Path]:
    """Write ``<stem>_timeline.csv`` and ``.png`` (and ``<stem>_segments.csv`` when ``events`` is
    given) into ``out_dir``, atomically. Returns ``{"csv", "png", ["segments"]}`` paths."""
    out_dir = Path(out_dir)
    stem = timeline.path.stem
    files = {"csv": atomic_write_text(out_dir / f"{stem}_timeline.csv", timeline_csv_text(timeline)),
             "png": plot_timeline(timeline, out_dir / f"{stem}_timeline.png", events or (), threshold)}
    if events is not None:
        files["segments"] = write_segments_csv(out_dir / f"{stem}_segments.csv", events)
    return files


def read_timeline_csv(path: str | Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(ranges int64 [W, 2], {column: float64 [W]})`` of a timeline CSV; ValueError (path + line)
    for another kind of file."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        if tuple(header[:4]) != TIME_COLUMNS or len(header) < 5:
            raise SeqvisionError(f"{path}: not a timeline CSV (expected {','.join(TIME_COLUMNS)} and score columns)")
        ranges, columns = [], {name: [] for name in header[4:]}
        for line, row in enumerate(reader, start=2):
            try:
                ranges.append((int(row["start_frame"]), int(row["end_frame"])))
                for name in columns:
                    columns[name].append(float(row[name]))
            except (TypeError, ValueError):
                raise SeqvisionError(f"{path}:{line}: a frame or score is not a number") from None
    if not ranges:
        raise SeqvisionError(f"{path}: the timeline has no windows")
    return np.array(ranges, np.int64), {k: np.array(v) for k, v in columns.items()}
