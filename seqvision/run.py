"""A trained run as one Python object: ``load_run(run_dir)`` -> :class:`Run`.

The same object serves video and skeleton runs; the CLI's ``evaluate`` and ``predict`` are thin
calls of :meth:`Run.evaluate` and :meth:`Run.predict`.

>>> run = seqvision.load_run("runs/cnn")
>>> run.predict_proba(["clip.mp4", "frames/walk/clip_0001"])      # [2, C]
>>> run.predict_proba(frames_uint8, mask)                           # [N, T, H, W, 3], [N, T]
>>> run.evaluate("frames_test/")["accuracy"]
"""
from __future__ import annotations

import contextlib
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from seqvision.errors import SeqvisionError
from seqvision.io import read_json

log = logging.getLogger(__name__)

DEFAULT_VIEWS = 4  # chosen on the selection sets of bench/generalisation.md (notes 2026-12-06)
DEFAULT_SKELETON_SPLIT = "test1"


def load_run(run_dir: str | Path) -> Run:
    """The finished run in ``run_dir`` (written by ``train`` or ``train-skeleton``), model loaded.

    A run whose training was interrupted still loads (with a warning): its ``model.keras`` is the
    last epoch saved."""
    from seqvision.model_files import load_model_file
    from seqvision.rundir import has_backup

    run_dir = Path(run_dir)
    if not (run_dir / "config.json").exists():
        raise SeqvisionError(f"{run_dir}: not a run directory (no config.json)")
    config = read_json(run_dir / "config.json")
    missing = [n for n in ("labels.json", "model.keras") if not (run_dir / n).exists()]
    if missing:
        raise SeqvisionError(f"{run_dir}: not a finished run directory (missing {', '.join(missing)})")
    if has_backup(run_dir):
        log.warning("%s: training was interrupted; using the model saved last", run_dir)
    model = load_model_file(run_dir / "model.keras")
    return Run(run_dir, config.get("kind", "video"), config, list(read_json(run_dir / "labels.json")), model)


@dataclass
class Run:
    """A trained classifier and what it was trained with.

    ``labels[i]`` names output class ``i``; ``config`` is the run's ``config.json``; ``model``
    is the Keras model (video: ``{"frames": [B, T, S, S, 3] 0..255, "mask": [B, T]}``;
    skeleton: ``{"keypoints": [B, T, F], "mask": [B, T]}`` -> ``[B, C]``).
    """

    path: Path
    kind: str
    config: dict
    labels: list[str]
    model: Any

    def predict_proba(self, inputs, mask=None, *, split: str | None = None, views: int | None = None,
                      batch_size: int | None = None) -> np.ndarray:
        """Class probabilities float32 ``[N, C]``.

        Video runs: a list of video files / frame folders (``views`` temporally shifted
        samplings averaged; default ``DEFAULT_VIEWS``), or a uint8 array ``[N, T, H, W, 3]`` (RGB; resized to the run's
        size) with ``mask`` bool ``[N, T]`` (all frames real when None). Skeleton runs: a PYSKL
        pickle path (``split``: None = every annotation), a list of annotation dicts, or
        keypoints ``[N, M, T, 17, 2|3]`` in pixels (the third channel a score) with ``mask``.
        An input that cannot be read raises ``SeqvisionError`` naming it.
        """
        if self.kind == "skeleton":
            return self._skeleton_proba(inputs, mask, split, batch_size)
        if isinstance(inputs, np.ndarray):
            if views not in (None, 1):
                raise SeqvisionError("views are for files and folders; a frame array is one sampling per row")
            return self._array_proba(inputs, mask, batch_size)
        if mask is not None:
            raise SeqvisionError("mask goes with a frame array; files and folders get theirs from their length")
        paths = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
        rows = self.predict(paths, top_k=1, views=views, batch_size=batch_size, keep_probabilities=True)
        for row in rows:
            if "error" in row:
                raise SeqvisionError(row["error"])
        return np.stack([row["probabilities"] for row in rows]) if rows else self._empty()

    def predict(self, inputs, top_k: int = 5, *, split: str | None = None, views: int | None = None,
                batch_size: int | None = None, keep_probabilities: bool = False) -> list[dict]:
        """Top-k labels per input: ``{"path", "predictions": [{"label", "probability"}, …]}``.

        Video runs take files / folders; one that cannot be read gets ``"error"`` (path +
        reason) instead, and the others are still predicted. Skeleton runs take one pickle
        (``split``), and rows carry ``true_label`` when the file labels a sequence.
        """
        if self.kind == "skeleton":
            paths = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
            if len(paths) != 1:
                raise SeqvisionError("a skeleton run predicts on one pickle file")
            if views is not None:
                raise SeqvisionError("views are for video runs")
            return self._skeleton_rows(paths[0], split, top_k, batch_size, keep_probabilities)
        if split is not None:
            raise SeqvisionError("split is for skeleton runs")
        return self._video_rows([inputs] if isinstance(inputs, (str, Path)) else list(inputs), top_k,
                                DEFAULT_VIEWS if views is None else views,
                                batch_size, keep_probabilities)

    def evaluate(self, data, split: str | None = None, *, list_file: str | Path | None = None,
                 views: int | None = None, batch_size: int | None = None, save: bool = True) -> dict:
        """Metrics on labelled data: a videos / frames folder (video runs; ``list_file`` a UCF101
        split file to restrict it) or a PYSKL pickle (skeleton runs; ``split``, default
        ``test1``). Returns what ``evaluate --json`` prints (``classification_metrics`` plus
        ``skipped``, ``files``); ``save`` writes ``eval_metrics.json`` and the confusion
        matrix (JSON, PNG) into the run directory."""
        from seqvision.evaluation import classification_metrics, save_metrics

        if self.kind == "skeleton":
            if list_file is not None or views is not None:
                raise SeqvisionError("list_file and views are for video runs; skeleton runs take split")
            y_true, probs, extra = self._skeleton_labelled(data, split or DEFAULT_SKELETON_SPLIT, batch_size)
        else:
            if split is not None:
                raise SeqvisionError("split is for skeleton runs; video runs take list_file")
            y_true, probs, extra = self._video_labelled(data, list_file, DEFAULT_VIEWS if views is None else views,
                                                         batch_size)
        metrics = classification_metrics(y_true, probs, self.labels)
        metrics.update(extra)
        if save:
            metrics["files"] = {k: str(v) for k, v in save_metrics(metrics, self.path).items()}
        return metrics

    # ------------------------------------------------------------------ video

    @property
    def _batch_size(self) -> int:
        return int(self.config.get("batch_size") or 8)

    def _empty(self) -> np.ndarray:
        return np.zeros((0, len(self.labels)), np.float32)

    def _array_proba(self, frames: np.ndarray, mask, batch_size: int | None) -> np.ndarray:
        frames = np.asarray(frames)
        if frames.ndim != 5 or frames.shape[-1] != 3:
            raise SeqvisionError(f"frames must be [N, T, H, W, 3] RGB, got shape {frames.shape}")
        mask = np.ones(frames.shape[:2], bool) if mask is None else np.asarray(mask, bool)
        if mask.shape != frames.shape[:2]:
            raise SeqvisionError(f"mask must be [N, T] = {list(frames.shape[:2])}, got {list(mask.shape)}")
        size = int(self.config["img_size"])
        batch = batch_size or self._batch_size
        out = []
        for begin in range(0, len(frames), batch):
            chunk = resize_frames(frames[begin:begin + batch], size)
            out.append(np.asarray(predict_views(self.model, {"frames": chunk, "mask": mask[begin:begin + batch]})))
        return np.concatenate(out).astype(np.float32) if out else self._empty()

    def _video_rows(self, paths: list, top_k: int, views: int, batch_size: int | None,
                    keep_probabilities: bool) -> list[dict]:
        from seqvision.datasets import load_clip_views
        from seqvision.sampling import view_offsets
        from seqvision.video import VideoError

        seq_len, img_size = int(self.config["seq_len"]), int(self.config["img_size"])
        batch_limit = batch_size or self._batch_size
        results, batch, batch_rows = [], [], []

        def flush():
            if not batch:
                return
            frames = np.stack([b[0] for b in batch])
            mask = np.stack([np.tile(np.arange(seq_len) < b[1], (views, 1)) for b in batch])
            probs = predict_views(self.model, {"frames": frames, "mask": mask})
            for row, p in zip(batch_rows, probs):
                row.update(self._top_k(p, top_k, keep_probabilities))
            batch.clear()
            batch_rows.clear()

        for path in paths:
            row = {"path": str(path)}
            results.append(row)
            try:
                batch.append(load_clip_views(path, seq_len, img_size, view_offsets(views)))
                batch_rows.append(row)
            except (VideoError, OSError, ValueError) as error:
                row["error"] = str(error) if str(path) in str(error) else f"{path}: {error}"
                log.warning("skipping %s", row["error"])
            if len(batch) >= batch_limit:
                flush()
        flush()
        return results

    def _video_labelled(self, data, list_file, views: int, batch_size: int | None):
        from seqvision.datasets import clips_in_list, find_clips, make_clip_dataset
        clips = find_clips(data)
        if list_file:
            clips = clips_in_list(clips, list_file)
        unknown = sorted({c.label for c in clips} - set(self.labels))
        if unknown:
            log.warning("skipping clips of labels the model was not trained on: %s", ", ".join(unknown))
            clips = [c for c in clips if c.label in self.labels]
        if not clips:
            raise SeqvisionError(f"{data}: no clips with the run's labels ({', '.join(self.labels)})")
        dataset = make_clip_dataset(clips, self.labels, self.config["seq_len"], self.config["img_size"],
                                    batch_size or self._batch_size, views=views, stack_views=True)
        probs, y_true = [], []
        with contextlib.redirect_stdout(sys.stderr):
            for inputs, y in dataset:
                probs.append(predict_views(self.model, inputs))
                y_true.append(y.numpy())
        if not y_true:
            raise SeqvisionError(f"{data}: none of the {len(clips)} clips could be read")
        y_true = np.concatenate(y_true)
        return y_true, np.concatenate(probs), {"skipped": len(clips) - len(y_true)}

    # ------------------------------------------------------------------ skeleton

    def _skeleton_arrays(self, inputs, mask, split: str | None, require_labels: bool):
        from seqvision.skeleton import load_skeleton_arrays
        from seqvision.skeleton_data import SkeletonPickle, read_skeleton_pickle

        if isinstance(inputs, (str, Path)):
            data = read_skeleton_pickle(inputs)
        elif isinstance(inputs, np.ndarray):
            data = SkeletonPickle("<keypoint array>", {}, keypoint_annotations(inputs, mask))
        else:
            data = SkeletonPickle("<annotations>", {}, list(inputs))
        if mask is not None and not isinstance(inputs, np.ndarray):
            raise SeqvisionError("mask goes with a keypoint array; pickles and annotations carry their lengths")
        return load_skeleton_arrays(data, split, self.config, require_labels=require_labels)

    def _skeleton_proba(self, inputs, mask, split: str | None, batch_size: int | None) -> np.ndarray:
        from seqvision.skeleton import predict_probs

        arrays, samples = self._skeleton_arrays(inputs, mask, split, require_labels=False)
        if samples.skipped:  # rows would no longer line up with the inputs
            source = f"{inputs}: " if isinstance(inputs, (str, Path)) else ""
            raise SeqvisionError(f"{source}{samples.skipped} of the sequences are malformed (see the log); "
                                 "Run.predict lists the usable ones by frame_dir")
        return predict_probs(self.model, arrays, self.config, batch_size or 128).astype(np.float32)

    def _skeleton_rows(self, path, split, top_k: int, batch_size: int | None, keep_probabilities: bool):
        from seqvision.skeleton import predict_probs

        arrays, _ = self._skeleton_arrays(path, None, split, require_labels=False)
        probs = predict_probs(self.model, arrays, self.config, batch_size or 128)
        rows = []
        for frame_dir, label, p in zip(arrays.frame_dirs, arrays.labels, probs):
            row = {"path": frame_dir, **self._top_k(p, top_k, keep_probabilities)}
            if label >= 0:
                row["true_label"] = self.labels[label]
            rows.append(row)
        return rows

    def _skeleton_labelled(self, path, split: str, batch_size: int | None):
        from seqvision.skeleton import predict_probs

        arrays, samples = self._skeleton_arrays(path, None, split, require_labels=True)
        if samples.excluded:
            log.warning("%s: left out %d sequences of classes the run was not trained on", path, samples.excluded)
        if not len(arrays):
            raise SeqvisionError(f"{path}: split {split!r} has no usable sequences of the run's classes")
        probs = predict_probs(self.model, arrays, self.config, batch_size or 128)
        return arrays.labels, probs, {"split": split, "skipped": samples.skipped, "excluded": samples.excluded}

    def _top_k(self, probs: np.ndarray, top_k: int, keep_probabilities: bool) -> dict:
        order = np.argsort(-probs)[:top_k]
        row = {"predictions": [{"label": self.labels[i], "probability": float(probs[i])} for i in order]}
        if keep_probabilities:
            row["probabilities"] = np.asarray(probs, np.float32)
        return row


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """``[N, T, H, W, 3]`` -> uint8 ``[N, T, size, size, 3]`` (area interpolation, as the readers)."""
    import cv2

    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        frames = np.clip(np.rint(frames), 0, 255).astype(np.uint8)
    if frames.shape[2:4] == (size, size):
        return frames
    flat = frames.reshape(-1, *frames.shape[2:])
    out = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in flat])
    return out.reshape(*frames.shape[:2], size, size, 3)


def keypoint_annotations(keypoints: np.ndarray, mask=None, img_shape: Sequence[int] | None = None) -> list[dict]:
    """PYSKL annotation dicts from keypoints ``[N, M, T, V, 2|3]`` in pixels (third channel: the
    joint's score, else 1) and ``mask`` bool ``[N, T]`` (a prefix of real frames; None = all).
    ``img_shape`` (h, w) is only used when a sequence shows no torso to scale by."""
    keypoints = np.asarray(keypoints, np.float32)
    if keypoints.ndim != 5 or keypoints.shape[-1] not in (2, 3):
        raise SeqvisionError(f"keypoints must be [N, M, T, V, 2 or 3], got shape {keypoints.shape}")
    num, _, steps = keypoints.shape[:3]
    mask = np.ones((num, steps), bool) if mask is None else np.asarray(mask, bool)
    if mask.shape != (num, steps):
        raise SeqvisionError(f"mask must be [N, T] = {[num, steps]}, got {list(mask.shape)}")
    lengths = mask.sum(axis=1)
    if np.any(mask != (np.arange(steps) < lengths[:, None])):
        raise SeqvisionError("mask must mark a prefix of real frames (padding at the end)")
    annotations = []
    for n in range(num):
        kp = keypoints[n, :, : lengths[n]]
        score = kp[..., 2] if kp.shape[-1] == 3 else np.ones(kp.shape[:-1], np.float32)
        annotation = {"frame_dir": f"sample_{n:06d}", "total_frames": int(lengths[n]),
                      "keypoint": np.ascontiguousarray(kp[..., :2]), "keypoint_score": np.ascontiguousarray(score)}
        if img_shape is not None:
            annotation["img_shape"] = tuple(img_shape)
        annotations.append(annotation)
    return annotations


def predict_views(model, inputs: dict) -> np.ndarray:
    """Probabilities ``[B, K]`` for ``frames [B, T, S, S, 3]``, or the mean over views for
    ``frames [B, V, T, S, S, 3]`` with ``mask [B, V, T]``."""
    frames, mask = np.asarray(inputs["frames"]), np.asarray(inputs["mask"])
    if frames.ndim == 5:
        return model.predict_on_batch({"frames": frames, "mask": mask})
    batch, views = frames.shape[:2]
    probs = model.predict_on_batch({"frames": frames.reshape(batch * views, *frames.shape[2:]),
                                    "mask": mask.reshape(batch * views, -1)})
    return np.asarray(probs).reshape(batch, views, -1).mean(axis=1)
