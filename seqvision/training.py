"""Training: distribution strategy, fit with checkpoints, and the run directory.

A run directory holds everything needed to evaluate or predict later:
``config.json`` (all settings, ``kind`` = ``video`` | ``features`` | ``skeleton``),
``labels.json``, ``model.keras`` (the best epoch so far, replaced atomically),
``best.json``, ``history.csv``, ``training_curves.png``. An interrupted run leaves
``backup/`` behind and resumes from it when started again with the same settings.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from seqvision.evaluation import plot_training_curves
from seqvision.io import atomic_write_json, read_json

log = logging.getLogger(__name__)

DEFAULT_IMG_SIZE = {"cnn": 112, "mobilenet": 224}


@dataclass
class VideoTrainConfig:
    """Settings of a video run; saved as the run's ``config.json``."""

    data_dir: str
    backbone: str = "cnn"
    seq_len: int = 16
    img_size: int | None = None  # pixels; None = the backbone's default
    epochs: int = 30
    batch_size: int = 8  # per replica
    lr: float = 1e-3
    val_split: float = 0.2
    val_dir: str | None = None
    train_list: str | None = None
    val_list: str | None = None
    seed: int = 0
    units: int = 128
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.3
    head: str = "lstm"  # "lstm" | "mean" (order-free baseline)
    flip: bool = False
    patience: int = 8
    cache: str = "auto"  # "auto" | "memory" | "none"
    kind: str = "video"


def make_strategy() -> tf.distribute.Strategy:
    """``MirroredStrategy`` over all visible GPUs, or the CPU when there are none."""
    strategy = tf.distribute.MirroredStrategy()
    log.info("training on %d replica(s): %s", strategy.num_replicas_in_sync,
             ", ".join(d for d in strategy.extended.worker_devices))
    return strategy


class BestModelCheckpoint(keras.callbacks.Callback):
    """Save the model to ``path`` atomically whenever ``monitor`` improves.

    Ties in accuracy are broken by lower loss. The best value is kept in a JSON file
    beside the model so a resumed run keeps comparing against it.
    """

    def __init__(self, path: Path, monitor: str = "val_accuracy"):
        super().__init__()
        self.path = Path(path)
        self.monitor = monitor
        self.record_path = self.path.with_name("best.json")
        self.best = read_json(self.record_path) if self.record_path.exists() else None

    def _score(self, logs: dict) -> tuple[float, float]:
        loss_key = "val_loss" if self.monitor.startswith("val_") else "loss"
        return float(logs[self.monitor]), -float(logs.get(loss_key, 0.0))

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.monitor not in logs or not np.isfinite(logs[self.monitor]):
            return
        score = self._score(logs)
        if self.best is None or score > tuple(self.best["score"]):
            tmp = self.path.with_name(f".{self.path.stem}.tmp.keras")
            self.model.save(tmp)
            os.replace(tmp, self.path)
            self.best = {"epoch": epoch + 1, "score": list(score),
                         **{k: float(v) for k, v in logs.items()}}
            atomic_write_json(self.record_path, self.best)


def prepare_run_dir(run_dir: str | Path, config: dict) -> bool:
    """Create ``run_dir`` and write ``config.json``; return True when resuming.

    Resuming requires the saved config to match: mixing two settings in one run would
    produce a model that matches neither.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    backup = run_dir / "backup"
    config_path = run_dir / "config.json"
    resuming = backup.is_dir() and any(backup.iterdir()) and config_path.exists()
    if resuming:
        saved = read_json(config_path)
        if saved != config:
            changed = sorted(k for k in set(saved) | set(config) if saved.get(k) != config.get(k))
            raise ValueError(f"{run_dir} holds an interrupted run with other settings ({', '.join(changed)}); "
                             "use another --out, or delete its backup/ folder to start over")
        log.info("resuming the interrupted run in %s", run_dir)
    else:
        shutil.rmtree(backup, ignore_errors=True)
        for stale in ("best.json", "history.csv"):
            (run_dir / stale).unlink(missing_ok=True)
        atomic_write_json(config_path, config)
    return resuming


def fit_classifier(
    build_model: Callable[[], keras.Model],
    train_ds: tf.data.Dataset,
    val_ds: tf.data.Dataset | None,
    run_dir: str | Path,
    epochs: int,
    lr: float,
    patience: int,
    strategy: tf.distribute.Strategy,
    resuming: bool = False,
    extra_callbacks: list | None = None,
) -> keras.Model:
    """Build and compile under ``strategy``, fit with checkpoints, and return the best model.

    Keras progress goes to stderr so stdout stays free for machine-readable output.
    """
    run_dir = Path(run_dir)
    with strategy.scope():
        model = build_model()
        model.compile(optimizer=keras.optimizers.Adam(lr),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    monitor = "val_accuracy" if val_ds is not None else "accuracy"
    callbacks = [
        keras.callbacks.BackupAndRestore(str(run_dir / "backup")),
        BestModelCheckpoint(run_dir / "model.keras", monitor=monitor),
        keras.callbacks.EarlyStopping(monitor=monitor.replace("accuracy", "loss"), patience=patience),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=resuming),
        keras.callbacks.TerminateOnNaN(),
        *(extra_callbacks or []),
    ]
    with contextlib.redirect_stdout(sys.stderr):
        model.fit(train_ds, validation_data=val_ds, epochs=epochs, callbacks=callbacks, shuffle=False,
                  verbose=2 if os.environ.get("CI") else 1)
    if (run_dir / "history.csv").exists():
        plot_training_curves(run_dir / "history.csv", run_dir / "training_curves.png")
    best = read_json(run_dir / "best.json")
    log.info("best epoch %d: %s", best["epoch"],
             ", ".join(f"{k}={v:.4f}" for k, v in best.items() if k not in ("epoch", "score")))
    return keras.models.load_model(run_dir / "model.keras")


def estimate_cache_bytes(num_clips: int, seq_len: int, img_size: int) -> int:
    return num_clips * seq_len * img_size * img_size * 3


def resolve_cache(cache: str, num_clips: int, seq_len: int, img_size: int, limit_bytes: int = 2 << 30) -> bool:
    """Whether to cache decoded clips in memory: ``auto`` does so below ``limit_bytes``."""
    if cache not in ("auto", "memory", "none"):
        raise ValueError(f"cache must be auto, memory or none, got {cache!r}")
    if cache == "auto":
        return estimate_cache_bytes(num_clips, seq_len, img_size) <= limit_bytes
    return cache == "memory"


def train_video(config: VideoTrainConfig, run_dir: str | Path) -> dict:
    """Train a frame-backbone + LSTM classifier on ``config.data_dir``; returns the best record."""
    from seqvision.backbones import build_backbone
    from seqvision.datasets import clips_in_list, find_clips, make_clip_dataset, split_train_val
    from seqvision.models import build_video_classifier

    config = dataclasses.replace(config, img_size=config.img_size or DEFAULT_IMG_SIZE.get(config.backbone, 112))
    keras.utils.set_random_seed(config.seed)
    clips = find_clips(config.data_dir)
    if config.train_list:
        clips = clips_in_list(clips, config.train_list)
    if config.val_dir:
        train_clips, val_clips = clips, find_clips(config.val_dir)
    elif config.val_list:
        train_clips, val_clips = clips, clips_in_list(find_clips(config.data_dir), config.val_list)
    elif config.val_split > 0:
        train_clips, val_clips = split_train_val(clips, config.val_split, config.seed)
    else:
        train_clips, val_clips = clips, []
    labels = sorted({c.label for c in train_clips})
    unknown = sorted({c.label for c in val_clips} - set(labels))
    if unknown:
        raise ValueError(f"validation labels missing from training data: {', '.join(unknown)}")
    log.info("%d training clips, %d validation clips, %d classes", len(train_clips), len(val_clips), len(labels))

    resuming = prepare_run_dir(run_dir, dataclasses.asdict(config))
    atomic_write_json(Path(run_dir) / "labels.json", labels)

    strategy = make_strategy()
    global_batch = config.batch_size * strategy.num_replicas_in_sync
    cache = resolve_cache(config.cache, len(clips), config.seq_len, config.img_size)
    common = dict(label_names=labels, seq_len=config.seq_len, img_size=config.img_size,
                  batch_size=global_batch, cache=cache, seed=config.seed)
    train_ds = make_clip_dataset(train_clips, training=True, flip=config.flip, **common)
    val_ds = make_clip_dataset(val_clips, **common) if val_clips else None

    def build():
        backbone = build_backbone(config.backbone, config.img_size)
        return build_video_classifier(backbone, len(labels), config.img_size, units=config.units,
                                      num_layers=config.num_layers, bidirectional=config.bidirectional,
                                      dropout=config.dropout, head=config.head)

    fit_classifier(build, train_ds, val_ds, run_dir, config.epochs, config.lr, config.patience,
                   strategy, resuming)
    return read_json(Path(run_dir) / "best.json")

