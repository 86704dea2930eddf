"""Frame-level ROC-AUC / PR-AUC of timelines against temporal annotations (UCF-Crime format).

Annotation file (UCF-Crime ``Temporal_Anomaly_Annotation_for_Testing_Videos.txt``): one line
per video, fields separated by white space::

    Arrest001_x264.mp4  Arrest  5535  5985  -1  -1
    Normal_Videos_003_x264.mp4  Normal  -1  -1  -1  -1

``video class start1 end1 [start2 end2 …]``: the video's name, with or without extension
(matched to a timeline's video stem), its class, then event frame pairs, ``-1 -1`` for none.
Frames are 0-based, ``start`` inclusive and ``end`` exclusive (the clip index's convention):
an event covers frames ``start … end - 1``. A line with no event (a ``Normal`` video) makes
every frame normal. Blank lines and lines starting with ``#`` are skipped.

A frame's score is the maximum (``reduce="mean"``: the mean) of the scores of the windows
covering it. Overall metrics pool all frames of all annotated videos (the UCF-Crime protocol).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from seqvision.errors import SeqvisionError
from seqvision.timeline import read_timeline_csv

log = logging.getLogger(__name__)

TIMELINE_SUFFIX = "_timeline.csv"
REDUCTIONS = ("max", "mean")


def read_temporal_annotations(path: str | Path) -> dict[str, dict]:
    """``{video name: {"name", "class", "events": [(start, end), …]}}``; each video is also
    listed under its name without extension. ValueError (path + line) for a malformed line."""
    annotations = {}
    for line_no, line in enumerate(Path(path).read_text().splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        where = f"{path}:{line_no}"
        if len(fields) < 4 or len(fields) % 2:
            raise SeqvisionError(f"{where}: expected 'video class start1 end1 [start2 end2 ...]', got {line.strip()!r}")
        try:
            numbers = [int(v) for v in fields[2:]]
        except ValueError:
            raise SeqvisionError(f"{where}: event frames must be integers (-1 for none), got {fields[2:]}") from None
        events = []
        for start, end in zip(numbers[::2], numbers[1::2]):
            if start == -1 and end == -1:
                continue
            if not 0 <= start < end:
                raise SeqvisionError(f"{where}: event [{start}, {end}) must have 0 <= start < end")
            events.append((start, end))
        entry = {"name": fields[0], "class": fields[1], "events": events}
        for key in {fields[0], _strip_extension(fields[0])}:
            if key in annotations and annotations[key]["name"] != fields[0]:
                raise SeqvisionError(f"{where}: {fields[0]} is annotated twice (also as {annotations[key]['name']})")
            annotations[key] = entry
    if not annotations:
        raise SeqvisionError(f"{path}: no annotation lines")
    return annotations


def _strip_extension(name: str) -> str:
    from seqvision.video import VIDEO_EXTENSIONS

    path = Path(name)
    return path.stem if path.suffix.lower() in VIDEO_EXTENSIONS else name


def timeline_video_stem(path: str | Path) -> str:
    """``"clip"`` for ``clip_timeline.csv``."""
    name = Path(path).name
    return name[:-len(TIMELINE_SUFFIX)] if name.endswith(TIMELINE_SUFFIX) else Path(path).stem


def find_timelines(path: str | Path) -> list[Path]:
    """``path`` itself (a timeline CSV), or the ``*_timeline.csv`` files in the folder ``path``."""
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob(f"*{TIMELINE_SUFFIX}"))
        if not found:
            raise SeqvisionError(f"{path}: no *{TIMELINE_SUFFIX} files")
        return found
    if not path.is_file():
        raise SeqvisionError(f"{path}: no such timeline file or folder")
    return [path]


def frame_scores(ranges: np.ndarray, scores: np.ndarray, n_frames: int, reduce: str = "max") -> np.ndarray:
    """float64 ``[n_frames]``: per frame, the max or mean score of the windows ``[start, end)`` covering it.

    ValueError when a frame is in no window."""
    if reduce not in REDUCTIONS:
        raise SeqvisionError(f"unknown reduction {reduce!r}; choose one of {', '.join(REDUCTIONS)}")
    total = np.full(n_frames, -np.inf) if reduce == "max" else np.zeros(n_frames)
    count = np.zeros(n_frames, np.int64)
    for (start, end), score in zip(ranges, scores):
        if reduce == "max":
            np.maximum(total[start:end], score, out=total[start:end])
        else:
            total[start:end] += score
        count[start:end] += 1
    uncovered = np.flatnonzero(count == 0)
    if len(uncovered):
        raise SeqvisionError(f"frames {uncovered[0]}..{uncovered[-1]} ({len(uncovered)} frames) are in no window")
    return total if reduce == "max" else total / count


def frame_labels(events: list[tuple[int, int]], n_frames: int, name: str = "") -> np.ndarray:
    """int64 ``[n_frames]``: 1 inside the ``[start, end)`` events, 0 elsewhere (events clipped to the video)."""
    labels = np.zeros(n_frames, np.int64)
    for start, end in events:
        if end > n_frames:
            log.warning("%s: event [%d, %d) runs past the timeline's %d frames; clipped", name, start, end, n_frames)
        labels[start:min(end, n_frames)] = 1
    return labels


def _auc_metrics(labels: np.ndarray, scores: np.ndarray) -> dict:
    from sklearn.metrics import average_precision_score, roc_auc_score

    both = labels.any() and not labels.all()
    return {"roc_auc": float(roc_auc_score(labels, scores)) if both else None,
            "pr_auc": float(average_precision_score(labels, scores)) if both else None}


def _score_column(columns: dict, column: str | None, path: Path) -> str:
    if column is None:
        if "score" not in columns:
            raise SeqvisionError(f"{path}: no 'score' column; name the class to evaluate with --class "
                                 f"(columns: {', '.join(c for c in columns if c != 'flag')})")
        return "score"
    if column not in columns:
        raise SeqvisionError(f"{path}: no column {column!r} (columns: {', '.join(columns)})")
    return column


def evaluate_timelines(timelines: str | Path, annotations: str | Path, column: str | None = None,
                       reduce: str = "max") -> dict:
    """Frame-level metrics of the timeline CSV(s) in ``timelines`` (a file or folder) against
    ``annotations`` (module doc). ``column``: the score column (default ``score``).

    Returns ``{"column", "reduce", "videos": [{"video", "class", "n_frames", "anomalous_frames",
    "roc_auc", "pr_auc"}], "overall": {…same for all frames…}, "unannotated": [timeline files
    without an annotation line], "missing": [annotated videos without a timeline]}``; AUCs are
    None where only one class is present.
    """
    table = read_temporal_annotations(annotations)
    videos, unannotated, all_labels, all_scores, used = [], [], [], [], set()
    for path in find_timelines(timelines):
        stem = timeline_video_stem(path)
        entry = table.get(stem)
        if entry is None:
            unannotated.append(str(path))
            continue
        ranges, columns = read_timeline_csv(path)
        chosen = _score_column(columns, column, path)
        n_frames = int(ranges[:, 1].max())
        try:
            scores = frame_scores(ranges, columns[chosen], n_frames, reduce)
        except ValueError as error:
            raise SeqvisionError(f"{path}: {error}") from None
        labels = frame_labels(entry["events"], n_frames, str(path))
        used.add(entry["name"])
        all_labels.append(labels)
        all_scores.append(scores)
        videos.append({"video": stem, "class": entry["class"], "n_frames": n_frames,
                       "anomalous_frames": int(labels.sum()), **_auc_metrics(labels, scores)})
    if not videos:
        raise SeqvisionError(f"{timelines}: no timeline matches a video named in {annotations}")
    labels, scores = np.concatenate(all_labels), np.concatenate(all_scores)
    overall = {"videos": len(videos), "n_frames": int(len(labels)), "anomalous_frames": int(labels.sum()),
               **_auc_metrics(labels, scores)}
    missing = sorted({e["name"] for e in table.values()} - used)
    return {"column": column or "score", "reduce": reduce, "videos": videos, "overall": overall,
            "unannotated": unannotated, "missing": missing}


def format_timeline_report(result: dict) -> str:
    """One line per video, then the overall line and what could not be matched."""
    def number(value):
        return "n/a" if value is None else f"{value:.4f}"

    lines = [f"{v['video']} ({v['class']}): {v['n_frames']} frames, {v['anomalous_frames']} anomalous  "
             f"ROC-AUC {number(v['roc_auc'])}  PR-AUC {number(v['pr_auc'])}" for v in result["videos"]]
    o = result["overall"]
    lines.append(f"overall ({o['videos']} videos, {o['n_frames']} frames, {o['anomalous_frames']} anomalous; "
                 f"frame score = {result['reduce']} of the covering windows' {result['column']}): "
                 f"ROC-AUC {number(o['roc_auc'])}  PR-AUC {number(o['pr_auc'])}")
    lines.extend(f"no annotation for {path}" for path in result["unannotated"])
    lines.extend(f"no timeline for {name}" for name in result["missing"])
    return "\n".join(lines)
