"""Metrics and plots from labels and predicted probabilities (pure functions, no model)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from seqvision.diskspace import with_path
from seqvision.errors import SeqvisionError
from seqvision.io import atomic_write_text


def classification_metrics(y_true, probs, labels: list[str], top_k: tuple[int, ...] = (1, 5)) -> dict:
    """Metrics for ``y_true [N]`` int and ``probs [N, K]``.

    Returns a JSON-ready dict: ``accuracy``, ``top_k`` (``{"top_5": …}``),
    ``mean_class_accuracy`` (mean recall over classes present), ``n``, ``labels``,
    ``per_class`` (precision / recall / f1 / support per label) and ``confusion_matrix``
    (rows = true, columns = predicted).
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    num_classes = len(labels)
    if probs.ndim != 2 or probs.shape[1] != num_classes or len(y_true) != len(probs):
        raise SeqvisionError(f"probs must be [N, {num_classes}] for {len(y_true)} labels, got {probs.shape}")
    y_pred = probs.argmax(axis=1) if len(probs) else np.zeros(0, np.int64)
    class_ids = list(range(num_classes))
    cm = confusion_matrix(y_true, y_pred, labels=class_ids) if len(y_true) else np.zeros((num_classes,) * 2, int)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=class_ids, zero_division=0)
    present = support > 0
    ranked = np.argsort(-probs, axis=1)
    top = {}
    for k in top_k:
        if 1 < k < num_classes:
            top[f"top_{k}"] = float(np.mean([t in r[:k] for t, r in zip(y_true, ranked)])) if len(y_true) else 0.0
    return {
        "n": int(len(y_true)),
        "accuracy": float(np.mean(y_pred == y_true)) if len(y_true) else 0.0,
        "top_k": top,
        "mean_class_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "labels": list(labels),
        "per_class": {
            label: {"precision": float(precision[i]), "recall": float(recall[i]),
                    "f1": float(f1[i]), "support": int(support[i])}
            for i, label in enumerate(labels)
        },
        "confusion_matrix": cm.astype(int).tolist(),
    }


def plot_confusion_matrix(cm, labels: list[str], path: str | Path, title: str = "Confusion matrix") -> Path:
    """Save a row-normalised confusion matrix with counts as a PNG."""
    cm = np.asarray(cm)
    rows = cm.sum(axis=1, keepdims=True)
    normalised = np.divide(cm, rows, out=np.zeros(cm.shape, float), where=rows > 0)
    size = max(4.0, 0.5 * len(labels) + 2)
    fig, ax = new_figure(figsize=(size + 1, size))
    image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if len(labels) <= 30:
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                        color="white" if normalised[i, j] > 0.5 else "black", fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_training_curves(history_csv: str | Path, path: str | Path) -> Path:
    """Plot loss and accuracy per epoch from a Keras ``CSVLogger`` file into a PNG."""
    with open(history_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, axes = new_figure(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for key, style in ((metric, "-o"), (f"val_{metric}", "-s")):
            values = [_number(r.get(key)) for r in rows]
            if any(np.isfinite(values)):
                ax.plot(epochs, values, style, label=key, markersize=3)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def save_metrics(metrics: dict, out_dir: str | Path, prefix: str = "eval") -> dict[str, Path]:
    """Write ``<prefix>_metrics.json`` and ``<prefix>_confusion_matrix.{json,png}`` under out_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "metrics": out_dir / f"{prefix}_metrics.json",
        "confusion_json": out_dir / f"{prefix}_confusion_matrix.json",
        "confusion_png": out_dir / f"{prefix}_confusion_matrix.png",
    }
    with with_path(out_dir):
        atomic_write_text(paths["metrics"], json.dumps(metrics, indent=2))
        atomic_write_text(paths["confusion_json"], json.dumps(
            {"labels": metrics["labels"], "confusion_matrix": metrics["confusion_matrix"]}, indent=2))
        plot_confusion_matrix(metrics["confusion_matrix"], metrics["labels"], paths["confusion_png"])
    return paths


def _number(text) -> float:
    """A CSVLogger cell as float; its ``NA`` (metric absent that epoch) becomes NaN."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


def new_figure(nrows: int = 1, ncols: int = 1, figsize=(6.4, 4.8), squeeze: bool = True):
    """``(figure, axes)`` like ``plt.subplots``, without pyplot: no backend is switched and no
    window opened, so saving plots never changes how a notebook shows its own."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze)


def save_figure(fig, path) -> Path:
    """Write ``fig`` as a PNG at ``path`` atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    tmp.replace(path)
    return path
