"""Evaluate and predict with a saved video run (``seqvision evaluate`` / ``predict``)."""
from __future__ import annotations

import contextlib
import logging
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np

from seqvision.evaluation import classification_metrics, save_metrics
from seqvision.io import read_json

log = logging.getLogger(__name__)


def run_kind(run_dir: str | Path) -> str:
    """``"video"`` or ``"skeleton"``: what the run in ``run_dir`` was trained on."""
    config_path = Path(run_dir) / "config.json"
    if not config_path.exists():
        raise ValueError(f"{run_dir}: not a run directory (no config.json)")
    return read_json(config_path).get("kind", "video")


def load_run(run_dir: str | Path) -> tuple[keras.Model, dict, list[str]]:
    """``(model, config, labels)`` of a run directory written by ``train``."""
    run_dir = Path(run_dir)
    missing = [n for n in ("config.json", "labels.json", "model.keras") if not (run_dir / n).exists()]
    if missing:
        raise ValueError(f"{run_dir}: not a finished run directory (missing {', '.join(missing)})")
    if any(any(b.iterdir()) for b in run_dir.glob("backup*") if b.is_dir()):
        log.warning("%s: training was interrupted; using the best model saved so far", run_dir)
    model = load_model_file(run_dir / "model.keras")
    return model, read_json(run_dir / "config.json"), read_json(run_dir / "labels.json")


def load_model_file(path: Path) -> keras.Model:
    """``keras.models.load_model``; a damaged ``.keras`` file is a ValueError saying so (Keras says
    "File not found"). A SavedModel backbone copied into the run (``backbone/``) is found beside
    ``path``, wherever the run folder now is."""
    import seqvision.models  # noqa: F401  (registers custom layers for deserialisation, as does the next)
    from seqvision.backbone_layers import backbone_files_root

    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, EOFError) as error:
        damaged = str(error)
    if damaged:
        raise ValueError(f"{path}: damaged or truncated model file ({damaged}); restore it or train again")
    with backbone_files_root(Path(path).parent):
        try:
            return keras.models.load_model(path)
        except TypeError as error:  # Keras wraps a layer's error (e.g. its SavedModel is gone) in TypeErrors
            cause = str(error).strip().splitlines()[-1].removeprefix("Exception encountered: ")
            raise ValueError(f"{path}: cannot load the model: {cause}") from None


DEFAULT_VIEWS = 1


def predict_views(model: keras.Model, inputs: dict) -> np.ndarray:
    """Probabilities ``[B, K]`` for ``frames [B, T, S, S, 3]``, or the mean over views for
    ``frames [B, V, T, S, S, 3]`` with ``mask [B, V, T]``."""
    frames, mask = np.asarray(inputs["frames"]), np.asarray(inputs["mask"])
    if frames.ndim == 5:
        return model.predict_on_batch({"frames": frames, "mask": mask})
    batch, views = frames.shape[:2]
    probs = model.predict_on_batch({"frames": frames.reshape(batch * views, *frames.shape[2:]),
                                    "mask": mask.reshape(batch * views, -1)})
    return np.asarray(probs).reshape(batch, views, -1).mean(axis=1)


def _predict_probs(model: keras.Model, dataset) -> tuple[np.ndarray, np.ndarray]:
    probs, labels = [], []
    with contextlib.redirect_stdout(sys.stderr):
        for inputs, y in dataset:
            probs.append(predict_views(model, inputs))
            labels.append(y.numpy())
    if not probs:
        return np.zeros((0, model.output_shape[-1]), np.float32), np.zeros(0, np.int64)
    return np.concatenate(probs), np.concatenate(labels)


def evaluate_video_run(run_dir: str | Path, data_dir: str | Path, list_file: str | Path | None = None,
                       batch_size: int | None = None, views: int = DEFAULT_VIEWS) -> dict:
    """Metrics of a video run on the clips under ``data_dir``; saved under ``run_dir``.

    Each clip's probabilities are the mean over ``views`` temporally shifted samplings."""
    from seqvision.datasets import clips_in_list, find_clips, make_clip_dataset

    model, config, labels = load_run(run_dir)
    clips = find_clips(data_dir)
    if list_file:
        clips = clips_in_list(clips, list_file)
    unknown = sorted({c.label for c in clips} - set(labels))
    if unknown:
        log.warning("skipping clips of labels the model was not trained on: %s", ", ".join(unknown))
        clips = [c for c in clips if c.label in labels]
    if not clips:
        raise ValueError(f"{data_dir}: no clips with the run's labels ({', '.join(labels)})")
    dataset = make_clip_dataset(clips, labels, config["seq_len"], config["img_size"],
                                batch_size or config["batch_size"], views=views, stack_views=True)
    probs, y_true = _predict_probs(model, dataset)
    if len(y_true) == 0:
        raise ValueError(f"{data_dir}: none of the {len(clips)} clips could be read")
    metrics = classification_metrics(y_true, probs, labels)
    metrics["skipped"] = len(clips) - len(y_true)
    metrics["files"] = {k: str(v) for k, v in save_metrics(metrics, run_dir).items()}
    return metrics


def predict_video_clips(run_dir: str | Path, paths: list[str | Path], top_k: int = 5,
                        views: int = DEFAULT_VIEWS) -> list[dict]:
    """Top-k labels for each video file or frame folder (mean over ``views`` samplings);
    unreadable ones get an ``error``."""
    from seqvision.datasets import load_clip_views
    from seqvision.sampling import view_offsets
    from seqvision.video import VideoError

    model, config, labels = load_run(run_dir)
    seq_len, img_size = config["seq_len"], config["img_size"]
    results, batch, batch_rows = [], [], []

    def flush():
        if not batch:
            return
        frames = np.stack([b[0] for b in batch])
        mask = np.stack([np.tile(np.arange(seq_len) < b[1], (views, 1)) for b in batch])
        probs = predict_views(model, {"frames": frames, "mask": mask})
        for row, p in zip(batch_rows, probs):
            order = np.argsort(-p)[:top_k]
            row["predictions"] = [{"label": labels[i], "probability": float(p[i])} for i in order]
        batch.clear()
        batch_rows.clear()

    for path in paths:
        row = {"path": str(path)}
        results.append(row)
        try:
            batch.append(load_clip_views(path, seq_len, img_size, view_offsets(views)))
            batch_rows.append(row)
        except (VideoError, OSError, ValueError) as error:
            row["error"] = str(error)
            log.warning("skipping %s", error)
        if len(batch) >= config["batch_size"]:
            flush()
    flush()
    return results
