"""Training: distribution strategy, fit with checkpoints, and the run directory.

A run directory holds everything needed to evaluate or predict later:
``config.json`` (all settings, ``kind`` = ``video`` | ``features`` | ``skeleton``),
``labels.json``, ``model.keras`` (the best epoch so far, replaced atomically),
``best.json``, ``history.csv``, ``training_curves.png``, and ``backbone/`` when the frozen
backbone came from a SavedModel or TF Hub URL (a copy). An interrupted run leaves
``backup/`` behind and resumes from it when started again with the same settings.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from seqvision.diskspace import with_path
from seqvision.evaluation import plot_training_curves
from seqvision.io import atomic_write_json, read_json
from seqvision.rundir import staged_run_dir

log = logging.getLogger(__name__)

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
    groups_file: str | None = None  # CSV clip,group for --val-split; None = the UCF101 name rule
    val_dir: str | None = None
    train_list: str | None = None
    val_list: str | None = None
    seed: int = 0
    units: int = 128
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.3
    head: str = "lstm"  # "lstm" | "mean" (order-free baseline)
    frame_diff: bool = True  # cnn: frames next to their differences from the previous frame
    appearance: bool = True  # cnn with frame_diff: False feeds the differences alone
    feature_diff: bool = True  # per-frame vectors next to their change, before the temporal head
    weight_decay: float = 1e-4  # AdamW decoupled weight decay
    pooling: str = "grid"  # cnn: "grid" (4x4 cells, keeps where things are) | "gap" (global average)
    filters: list[int] = dataclasses.field(default_factory=lambda: [32, 64, 128, 128])  # cnn conv widths
    train_views: int = 4  # temporally shifted samplings decoded (and cached) per clip; one per epoch
    flip: bool = False  # mirror images keep the label: only for classes without a side
    flip_pairs: list | None = None  # ["left_x:right_x", …] class names: flip, swapping these labels
    keep: str = "last"  # "last" epoch (end of the cosine schedule) or "best" (lowest validation loss)
    patience: int = 8  # with keep="best": early stopping after this many epochs without improvement
    cache: str = "auto"  # decoded clips in memory: "auto" | "memory" | "none"
    weights: str | None = "imagenet"  # keras.applications backbones: "imagenet" | "none" | weights file
    alpha: float = 1.0  # mobilenet width multiplier
    hub_handle: str | None = None  # mobilenet: any image model from a TF Hub URL, SavedModel folder or .keras file
    fine_tune_at: int | None = None  # epoch after which the backbone's top layers train too
    unfreeze: int = 30  # backbone layers unfrozen for fine-tuning
    cache_dir: str | None = None  # embedding cache root; None = the user cache folder
    mixed_precision: bool = False
    strategy: str = "mirrored"  # "mirrored" | "multiworker" (from TF_CONFIG)
    kind: str = "video"


STRATEGIES = ("mirrored", "multiworker")
# Which epoch's model a run keeps: "last" (the end of the cosine schedule) or "best" (lowest
# validation loss). On the generalisation protocol's selection sets a validation split of one
# recording group ranked epochs against the test accuracy (bench/generalisation.md).
KEEP_CHOICES = ("last", "best")


def make_strategy(kind: str = "mirrored") -> tf.distribute.Strategy:
    """``mirrored``: ``MirroredStrategy`` over all visible GPUs (the CPU when there are none).

    ``multiworker``: ``MultiWorkerMirroredStrategy`` configured from ``TF_CONFIG``.
    """
    if kind not in STRATEGIES:
        raise ValueError(f"unknown strategy {kind!r}; choose one of {STRATEGIES}")
    if kind == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--strategy multiworker needs TF_CONFIG (see README: multi-worker training)")
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        strategy = tf.distribute.MirroredStrategy()
    log.info("training on %d replica(s): %s", strategy.num_replicas_in_sync,
             ", ".join(d for d in strategy.extended.worker_devices))
    return strategy


class BestModelCheckpoint(keras.callbacks.Callback):
    """Save the model to ``path`` atomically whenever the loss ``monitor`` improves (or, with
    ``keep="last"``, after every epoch).

    Lower loss wins, ties go to higher accuracy: on a small validation set accuracy moves in
    steps of 1/N and an early epoch can reach the top by luck, while the loss keeps
    ranking confidence. The best value is kept in a JSON file beside the model so a resumed
    run keeps comparing against it.
    """

    def __init__(self, path: Path, record_path: Path, monitor: str = "val_loss", keep: str = "best"):
        super().__init__()
        if keep not in KEEP_CHOICES:
            raise ValueError(f"keep must be one of {KEEP_CHOICES}, got {keep!r}")
        self.keep = keep
        self.path = Path(path)
        self.monitor = monitor
        self.record_path = Path(record_path)
        self.best = read_json(self.record_path) if self.record_path.exists() else None

    def _score(self, logs: dict) -> tuple[float, float]:
        accuracy_key = "val_accuracy" if self.monitor.startswith("val_") else "accuracy"
        return -float(logs[self.monitor]), float(logs.get(accuracy_key, 0.0))

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.monitor not in logs or not np.isfinite(logs[self.monitor]):
            return
        score = self._score(logs)
        if self.keep == "last" or self.best is None or score > tuple(self.best["score"]):
            save_model_atomic(self.model, self.path)
            self.best = {"epoch": epoch + 1, "score": list(score),
                         **{k: float(v) for k, v in logs.items()}}
            atomic_write_json(self.record_path, self.best)


class ResumableBackup(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` keeping the previous epoch's state too, restored when the latest is
    damaged (a kill while writing it); when both are, the error names the folder to delete."""

    def __init__(self, backup_dir: str):
        super().__init__(backup_dir, double_checkpoint=True)

    def on_train_begin(self, logs=None):
        try:
            self._load_model()
            return
        except (OSError, ValueError, KeyError) as error:
            latest_error = error
        try:
            if not os.path.exists(self._prev_weights_path):
                raise latest_error
            log.warning("%s: the latest training state is damaged (%s); resuming from the one before",
                        self.backup_dir, latest_error)
            shutil.copyfile(self._prev_weights_path, self._weights_path)
            if os.path.exists(self._prev_training_metadata_path):
                shutil.copyfile(self._prev_training_metadata_path, self._training_metadata_path)
            self._load_model()
        except (OSError, ValueError, KeyError) as error:
            raise ValueError(f"{self.backup_dir}: the saved training state is damaged ({error}); delete "
                             f"{self.backup_dir} to restart this run from its first epoch") from None


def prepare_run_dir(run_dir: str | Path, config: dict) -> bool:
    """Create ``run_dir`` and write ``config.json``; return True when resuming.

    Resuming requires the saved config to match: mixing two settings in one run would
    produce a model that matches neither.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    backups = [b for b in run_dir.glob("backup*") if b.is_dir()]
    config_path = run_dir / "config.json"
    resuming = any(any(b.iterdir()) for b in backups) and config_path.exists()
    if resuming:
        saved = read_json(config_path)
        if saved != config:
            changed = sorted(k for k in set(saved) | set(config) if saved.get(k) != config.get(k))
            raise ValueError(f"{run_dir} holds an interrupted run with other settings ({', '.join(changed)}); "
                             "use another --out, or pass --overwrite to start over")
        log.info("resuming the interrupted run in %s", run_dir)
    else:
        for backup in backups:
            shutil.rmtree(backup, ignore_errors=True)
        for stale in [*run_dir.glob("*best.json"), *run_dir.glob("history*.csv")]:
            stale.unlink(missing_ok=True)
        shutil.rmtree(tensorboard_dir(run_dir), ignore_errors=True)
        atomic_write_json(config_path, config)
    return resuming


def cosine_learning_rate(lr: float, epoch: int, epochs: int, final_fraction: float = 0.05) -> float:
    """Learning rate of ``epoch`` (0-based): cosine decay from ``lr`` to ``final_fraction * lr``
    at the last of ``epochs``, so the last epochs settle instead of jumping around."""
    progress = epoch / max(epochs - 1, 1)
    return float(lr * (final_fraction + (1 - final_fraction) * 0.5 * (1 + np.cos(np.pi * min(progress, 1.0)))))


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
    phase: str = "",
    weight_decay: float = 0.0,
    keep: str = "best",
    steps_per_epoch: int | None = None,
) -> tuple[keras.Model, dict]:
    """Build and compile under ``strategy``, fit with checkpoints; return ``(best model, best record)``.

    Adam at ``lr`` (AdamW with ``weight_decay``) with per-epoch cosine decay (:func:`cosine_learning_rate`). Under
    ``MultiWorkerMirroredStrategy`` this is :func:`fit_custom_loop` instead (no validation,
    early stopping or resume there).

    ``phase`` names a training stage whose files sit beside the others
    (``<phase>.keras``, ``<phase>_best.json``, ``backup_<phase>/``, ``history_<phase>.csv``);
    the default stage writes ``model.keras``, ``best.json``, ``backup/``, ``history.csv``.
    ``keep="best"`` keeps the epoch with the lowest validation loss and stops early after
    ``patience`` epochs without improvement; ``keep="last"`` trains every epoch and keeps the last.
    Keras progress goes to stderr so stdout stays free for machine-readable output; TensorBoard
    scalars go to :func:`tensorboard_dir`. ``steps_per_epoch`` (batches per epoch) is needed only by
    the multi-worker loop, for a dataset of unknown length.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if strategy.num_replicas_in_sync > 1:
        train_ds = masks_as_float(train_ds)
        val_ds = masks_as_float(val_ds) if val_ds is not None else None
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        # Keras 3 model.fit fails under MultiWorkerMirroredStrategy (keras-team/keras#20585).
        return fit_custom_loop(build_model, train_ds, run_dir, epochs, lr, strategy, phase, weight_decay,
                               steps_per_epoch)
    suffix = f"_{phase}" if phase else ""
    checkpoint = run_dir / (f"{phase}.keras" if phase else "model.keras")
    record = run_dir / (f"{phase}_best.json" if phase else "best.json")
    history = run_dir / f"history{suffix}.csv"
    with strategy.scope():
        model = build_model()
        model.compile(optimizer=make_optimizer(lr, weight_decay),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    monitor = "val_loss" if val_ds is not None else "loss"
    callbacks = [
        keras.callbacks.LearningRateScheduler(lambda epoch: cosine_learning_rate(lr, epoch, epochs)),
        BestModelCheckpoint(checkpoint, record, monitor=monitor, keep=keep),
        *([keras.callbacks.EarlyStopping(monitor=monitor, patience=patience)] if keep == "best" else []),
        keras.callbacks.CSVLogger(str(history), append=resuming and history.exists()),
        # Reads the learning rate the scheduler above set; a resumed run continues at its next epoch.
        keras.callbacks.TensorBoard(str(tensorboard_dir(run_dir, phase)), write_graph=False),
        keras.callbacks.TerminateOnNaN(),
        # After those: an epoch counts as done only once its checkpoint and history row are written.
        ResumableBackup(str(run_dir / f"backup{suffix}")),
        *(extra_callbacks or []),
    ]
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        # Datasets that skip unreadable clips have unknown length; Keras warns at the end of epoch 1.
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        try:
            model.fit(train_ds, validation_data=val_ds, epochs=epochs, callbacks=callbacks, shuffle=False,
                      verbose=2 if os.environ.get("CI") else 1)
        except StopIteration:  # what fit raises when the dataset yields no batch at all
            raise ValueError("the training data yielded no batch: every training clip was unreadable "
                             "(see the warnings above)") from None
    if not record.exists():
        raise ValueError(f"no epoch ended with a finite {monitor}: nothing was saved to {checkpoint} "
                         "(check the input data for NaN or huge values)")
    if history.exists():
        plot_training_curves(history, run_dir / f"training_curves{suffix}.png")
    best = read_json(record)
    log.info("best epoch %d: %s", best["epoch"],
             ", ".join(f"{k}={v:.4f}" for k, v in best.items() if k not in ("epoch", "score")))
    with strategy.scope():
        model.set_weights(keras.models.load_model(checkpoint).get_weights())
    return model, best


def tensorboard_dir(run_dir: str | Path, phase: str = "") -> Path:
    """Where a run's TensorBoard event files go: ``RUN_DIR/logs/`` (``RUN_DIR/logs/<phase>/`` for a
    named stage), with ``train/`` and ``validation/`` inside holding per-epoch ``epoch_loss``,
    ``epoch_accuracy`` and ``epoch_learning_rate`` (step = 0-based epoch)."""
    return Path(run_dir) / "logs" / phase if phase else Path(run_dir) / "logs"


def make_optimizer(lr: float, weight_decay: float = 0.0) -> keras.optimizers.Optimizer:
    """Adam, or AdamW (decoupled weight decay, not applied to biases and norms) when ``weight_decay``."""
    if not weight_decay:
        return keras.optimizers.Adam(lr)
    optimizer = keras.optimizers.AdamW(lr, weight_decay=weight_decay)
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer


def masks_as_float(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Feed ``mask`` as 0/1 float32 (the model casts it back to bool).

    Keras 3 ``fit`` fails to split bool input tensors over several replicas
    (``AddN`` has no bool kernel); one replica is unaffected.
    """
    def convert(inputs, label):
        return {**inputs, "mask": tf.cast(inputs["mask"], tf.float32)}, label

    return dataset.map(convert)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0
                                               and "chief" not in resolver.cluster_spec().as_dict())


def fit_custom_loop(build_model: Callable[[], keras.Model], train_ds: tf.data.Dataset, run_dir: str | Path,
                    epochs: int, lr: float, strategy: tf.distribute.Strategy, phase: str = "",
                    weight_decay: float = 0.0, steps_per_epoch: int | None = None) -> keras.Model:
    """Train with ``strategy.run`` (works under ``MultiWorkerMirroredStrategy``).

    ``train_ds`` is batched with the global batch; each worker reads its own shard.
    Every worker runs the same number of steps (the data repeats), which collective
    all-reduce needs: ``train_ds.cardinality()`` batches per epoch, or ``steps_per_epoch`` when
    that is unknown (a dataset that skips unreadable clips; counting would decode it all once).
    Adam with the same cosine decay as :func:`fit_classifier` (and loss scaling under
    ``mixed_float16``). Only the chief writes ``model.keras`` / ``history.csv`` / ``best.json``
    and the TensorBoard scalars; there is no validation pass, early stopping or resume in this
    mode. Returns ``(model after the last epoch, its record)``.
    """
    run_dir = Path(run_dir)
    chief = is_chief(strategy)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    steps = int(train_ds.cardinality())
    if steps <= 0:
        if not steps_per_epoch:
            raise ValueError("the training dataset's length is unknown: pass steps_per_epoch "
                             "(training clips / global batch, rounded up)")
        steps = steps_per_epoch
    dist_ds = strategy.experimental_distribute_dataset(train_ds.repeat().with_options(options))
    with strategy.scope():
        model = build_model()
        optimizer = make_optimizer(lr, weight_decay)
        if keras.config.dtype_policy().name == "mixed_float16":  # float16 gradients underflow unscaled
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(model.trainable_variables)

    def replica_step(inputs, labels):
        with tf.GradientTape() as tape:
            probs = model(inputs, training=True)
            per_example = keras.losses.sparse_categorical_crossentropy(labels, probs)
            loss = tf.nn.compute_average_loss(per_example)  # sum / global batch: replicas add up to the mean
            scaled = optimizer.scale_loss(loss) if hasattr(optimizer, "scale_loss") else loss
        gradients = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(probs, -1, output_type=tf.int32),
                                                 tf.cast(labels, tf.int32)), tf.float32))
        return loss, correct, tf.cast(tf.size(labels), tf.float32)

    @tf.function
    def train_step(iterator):
        loss, correct, count = strategy.run(replica_step, args=next(iterator))
        reduce = tf.distribute.ReduceOp.SUM
        return (strategy.reduce(reduce, loss, axis=None),
                strategy.reduce(reduce, correct, axis=None), strategy.reduce(reduce, count, axis=None))

    iterator = iter(dist_ds)
    rows = ["epoch,accuracy,loss"]
    summaries = tf.summary.create_file_writer(str(tensorboard_dir(run_dir, phase) / "train")) if chief else None
    for epoch in range(epochs):
        learning_rate = cosine_learning_rate(lr, epoch, epochs)
        optimizer.learning_rate.assign(learning_rate)
        losses, correct, count = [], 0.0, 0.0
        for _ in range(steps):
            loss, c, n = train_step(iterator)
            losses.append(float(loss))
            correct, count = correct + float(c), count + float(n)
        rows.append(f"{epoch},{correct / max(count, 1):.6f},{np.mean(losses):.6f}")
        if summaries is not None:
            with summaries.as_default(step=epoch):  # the names keras.callbacks.TensorBoard writes
                tf.summary.scalar("epoch_loss", np.mean(losses))
                tf.summary.scalar("epoch_accuracy", correct / max(count, 1))
                tf.summary.scalar("epoch_learning_rate", learning_rate)
            summaries.flush()
        log.info("epoch %d/%d: loss %.4f, accuracy %.4f", epoch + 1, epochs, np.mean(losses),
                 correct / max(count, 1))
    record = {"epoch": epochs, "score": [-float(np.mean(losses)), correct / max(count, 1)],
              "accuracy": correct / max(count, 1), "loss": float(np.mean(losses))}
    if chief:  # the other workers hold the same weights; they write nothing to the shared run folder
        from seqvision.io import atomic_write_text

        suffix = f"_{phase}" if phase else ""
        run_dir.mkdir(parents=True, exist_ok=True)
        save_model_atomic(model, run_dir / (f"{phase}.keras" if phase else "model.keras"))
        atomic_write_text(run_dir / f"history{suffix}.csv", "\n".join(rows) + "\n")
        atomic_write_json(run_dir / (f"{phase}_best.json" if phase else "best.json"), record)
        plot_training_curves(run_dir / f"history{suffix}.csv", run_dir / f"training_curves{suffix}.png")
    return model, record


def estimate_cache_bytes(num_clips: int, seq_len: int, img_size: int, views: int = 1) -> int:
    return num_clips * views * seq_len * img_size * img_size * 3


def resolve_cache(cache: str, num_clips: int, seq_len: int, img_size: int, limit_bytes: int = 2 << 30,
                  views: int = 1) -> bool:
    """Whether to cache decoded clips in memory: ``auto`` does so below ``limit_bytes``."""
    if cache not in ("auto", "memory", "none"):
        raise ValueError(f"cache must be auto, memory or none, got {cache!r}")
    if cache == "auto":
        return estimate_cache_bytes(num_clips, seq_len, img_size, views) <= limit_bytes
    return cache == "memory"


def backbone_options(config: VideoTrainConfig) -> dict:
    """Keyword arguments of ``build_backbone`` for this config: the options its spec takes."""
    from seqvision.backbones import BACKBONES, backbone_spec

    if config.hub_handle and "hub_handle" not in backbone_spec(config.backbone).options:
        takers = ", ".join(n for n, s in BACKBONES.items() if "hub_handle" in s.options)
        raise ValueError(f"--hub-handle applies to the {takers} backbone, not {config.backbone}")
    settings = {**dataclasses.asdict(config), "channels": 6 if config.frame_diff and config.appearance else 3}
    options = {option: settings[option] for option in backbone_spec(config.backbone).options}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}


def backbone_identity(config: VideoTrainConfig) -> dict:
    """What the embeddings of a frozen backbone depend on (part of the cache key): its name and
    options, with the files they name as path, size and newest mtime (a SavedModel or weights file
    replaced in place must not reuse old embeddings)."""
    from seqvision.backbones import backbone_spec

    identity = {"name": config.backbone, **backbone_options(config)}
    for option in backbone_spec(config.backbone).path_options:
        path = Path(str(identity[option])) if identity[option] else None
        if path is None or not path.exists():  # "imagenet", "none", unset, a URL
            continue
        stats = [f.stat() for f in path.rglob("*") if f.is_file()] if path.is_dir() else [path.stat()]
        identity[option] = {"path": str(path.resolve()), "size": sum(s.st_size for s in stats),
                            "mtime": max((s.st_mtime for s in stats), default=0.0)}
    return identity


def readable_clips(clips, seq_len: int, img_size: int) -> list:
    """The ``clips`` that decode; the others are logged (path + reason) and left out.

    Used for the validation clips before training: Keras cannot validate on a set that yields no
    batch, and a group-aware split can put every unreadable clip of a small folder there.
    """
    from concurrent.futures import ThreadPoolExecutor

    from seqvision.datasets import load_clip
    from seqvision.video import VideoError

    def readable(clip) -> bool:
        try:
            load_clip(clip.path, seq_len, img_size)
            return True
        except (VideoError, OSError, ValueError) as error:
            log.warning("validation: skipping %s", error if isinstance(error, VideoError) else f"{clip.path}: {error}")
            return False

    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        kept = [clip for clip, ok in zip(clips, pool.map(readable, clips)) if ok]
    if clips and not kept:
        log.warning("none of the %d validation clips could be read: training without validation", len(clips))
    return kept


def split_clips(config: VideoTrainConfig):
    """``(train_clips, val_clips, labels)`` from the data options of ``config``."""
    from seqvision.datasets import clips_in_list, find_clips, split_train_val

    clips = find_clips(config.data_dir)
    if config.train_list:
        clips = clips_in_list(clips, config.train_list)
    if config.val_dir:
        train_clips, val_clips = clips, find_clips(config.val_dir)
    elif config.val_list:
        train_clips, val_clips = clips, clips_in_list(find_clips(config.data_dir), config.val_list)
    elif config.val_split > 0:
        train_clips, val_clips = split_train_val(clips, config.val_split, config.seed, config.groups_file)
    else:
        train_clips, val_clips = clips, []
    labels = sorted({c.label for c in train_clips})
    unknown = sorted({c.label for c in val_clips} - set(labels))
    if unknown:
        raise ValueError(f"validation labels missing from training data: {', '.join(unknown)}")
    log.info("%d training clips, %d validation clips, %d classes", len(train_clips), len(val_clips), len(labels))
    return train_clips, val_clips, labels


@contextlib.contextmanager
def precision_policy(mixed: bool):
    """Mixed float16 on GPU, bfloat16 elsewhere, for the duration of the block."""
    previous = keras.config.dtype_policy()
    if mixed:
        policy = "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"
        log.info("mixed precision: %s (the output layer stays float32)", policy)
        keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def train_video(config: VideoTrainConfig, run_dir: str | Path, overwrite: bool = False) -> dict:
    """Train a frame-backbone + LSTM classifier on ``config.data_dir``; returns the best record.

    A backbone whose spec is not ``frozen`` (``cnn``) trains end to end on frames. A frozen one
    (``mobilenet``, ``efficientnetv2b0``): its per-frame embeddings are computed once into the
    embedding cache and only the LSTM head trains on them; with ``fine_tune_at`` the top
    ``unfreeze`` backbone layers then train end to end on frames at a tenth of the learning rate.
    Either way ``model.keras`` takes frames.
    A finished run in ``run_dir`` is replaced only with ``overwrite``, and only once the new
    one has finished (:func:`seqvision.rundir.staged_run_dir`).
    """
    from seqvision.backbone_layers import backbone_files_root, is_url
    from seqvision.backbones import BACKBONES, backbone_spec

    spec = backbone_spec(config.backbone)
    if config.fine_tune_at is not None and not spec.fine_tunable:
        raise ValueError(f"--fine-tune-at applies to pretrained backbones "
                         f"({', '.join(n for n, s in BACKBONES.items() if s.fine_tunable)}), not {spec.name}")
    if config.fine_tune_at is not None and config.hub_handle and not config.hub_handle.endswith(".keras"):
        raise ValueError("fine-tuning needs Keras layers: TF Hub models and SavedModels are used frozen "
                         "(a .keras file can be fine-tuned)")
    # A SavedModel path made absolute: while training, relative handles name the run's own copies.
    hub_handle = config.hub_handle if not config.hub_handle or is_url(config.hub_handle) else \
        str(Path(config.hub_handle).resolve())
    # Lists, as config.json gives them back: a resumed run compares the two.
    config = dataclasses.replace(config, img_size=config.img_size or spec.default_img_size, hub_handle=hub_handle,
                                 filters=list(config.filters),
                                 flip_pairs=list(config.flip_pairs) if config.flip_pairs else None)
    run_dir = Path(run_dir)
    keras.utils.set_random_seed(config.seed)
    train_clips, val_clips, labels = split_clips(config)
    if config.flip_pairs:
        from seqvision.labels import mirror_classes

        mirror_classes(config.flip_pairs, labels)  # an unknown class is refused before anything is written
    if spec.frozen and (config.flip or config.flip_pairs) and config.fine_tune_at is None:
        log.warning("flips act on frames: with a frozen %s they apply only while fine-tuning (--fine-tune-at)",
                    config.backbone)
    # The run's model.keras names a copied SavedModel relative to the run folder (copy_saved_models_into_run).
    with staged_run_dir(run_dir, dataclasses.asdict(config), overwrite) as (work_dir, resuming), \
            backbone_files_root(work_dir):
        return _train_video_in(config, work_dir, resuming, train_clips, val_clips, labels)


def _train_video_in(config: VideoTrainConfig, run_dir: Path, resuming: bool, train_clips, val_clips,
                    labels: list[str]) -> dict:
    """:func:`train_video` in the folder chosen for it."""
    from seqvision.backbone_layers import copy_saved_models_into_run
    from seqvision.backbones import backbone_spec, build_backbone
    from seqvision.datasets import make_clip_dataset
    from seqvision.labels import mirror_classes
    from seqvision.models import build_video_classifier

    atomic_write_json(run_dir / "labels.json", labels)

    strategy = make_strategy(config.strategy)
    global_batch = config.batch_size * strategy.num_replicas_in_sync
    steps_per_epoch = -(-len(train_clips) // global_batch)  # frame datasets skip unreadable clips: length unknown
    head_options = dict(units=config.units, num_layers=config.num_layers, bidirectional=config.bidirectional,
                        dropout=config.dropout, head=config.head, feature_diff=config.feature_diff)
    spec = backbone_spec(config.backbone)
    frame_options = dict(head_options, frame_diff=config.frame_diff and "channels" in spec.options,
                         appearance=config.appearance)

    def frame_datasets():
        cache = resolve_cache(config.cache, len(train_clips) * config.train_views + len(val_clips), config.seq_len,
                              config.img_size)
        common = dict(label_names=labels, seq_len=config.seq_len, img_size=config.img_size,
                      batch_size=global_batch, cache=cache, views=config.train_views, seed=config.seed)
        mirror = mirror_classes(config.flip_pairs, labels) if config.flip_pairs else None
        train_ds = make_clip_dataset(train_clips, training=True, flip=config.flip or mirror is not None,
                                     mirror_classes=mirror, **common)
        # Validation as evaluation does by default: one view, the segment centres.
        readable = readable_clips(val_clips, config.seq_len, config.img_size)
        return train_ds, make_clip_dataset(readable, **{**common, "views": 1}) if readable else None

    with precision_policy(config.mixed_precision):
        # Functions restored from a SavedModel loaded under a strategy scope fail when called in a
        # replica (TF: "graph generated from the cross-replica context"); the Hub model is frozen,
        # so plain variables lose nothing.
        saved_model = config.hub_handle and not config.hub_handle.endswith(".keras")
        with contextlib.nullcontext() if saved_model else strategy.scope():
            backbone = build_backbone(config.backbone, config.img_size, **backbone_options(config))
        copy_saved_models_into_run(backbone, run_dir)
        if not spec.frozen:
            train_ds, val_ds = frame_datasets()
            _, best = fit_classifier(
                lambda: build_video_classifier(backbone, len(labels), config.img_size, **frame_options),
                train_ds, val_ds, run_dir, config.epochs, config.lr, config.patience, strategy, resuming,
                weight_decay=config.weight_decay, keep=config.keep, steps_per_epoch=steps_per_epoch)
            return best

        model, best = train_head_on_embeddings(config, backbone, train_clips, val_clips, labels, run_dir,
                                               strategy, resuming, head_options)
        if config.fine_tune_at is None or config.fine_tune_at >= config.epochs:
            return best
        # The model's own backbone: on resume the model is loaded from disk, not built from `backbone`.
        unfreeze_top_layers(model.get_layer("frame_features").layer, config.unfreeze)
        train_ds, val_ds = frame_datasets()
        model, best = fit_classifier(lambda: model, train_ds, val_ds, run_dir, config.epochs - config.fine_tune_at,
                                     config.lr * 0.1, config.patience, strategy, resuming, phase="finetune",
                                     weight_decay=config.weight_decay, keep=config.keep,
                                     steps_per_epoch=steps_per_epoch)
        best = {**best, "phase": "finetune"}
        if is_chief(strategy):
            save_model_atomic(model, run_dir / "model.keras")
            atomic_write_json(run_dir / "best.json", best)
    return best


def train_head_on_embeddings(config, backbone, train_clips, val_clips, labels, run_dir, strategy, resuming,
                             head_options) -> keras.Model:
    """Cache the frozen backbone's embeddings, train the LSTM head on them, save the frame model.

    Returns ``(frames -> probabilities model (backbone + trained head), best record)``.
    """
    from seqvision.datasets import make_feature_dataset
    from seqvision.embeddings import get_embedding_cache
    from seqvision.models import build_sequence_classifier, build_video_classifier

    best_path = Path(run_dir) / "best.json"
    if resuming and best_path.exists() and (best := read_json(best_path)).get("phase") == "head":
        log.info("head training already finished in %s; continuing from its model", run_dir)
        with strategy.scope():
            return keras.models.load_model(Path(run_dir) / "model.keras"), best
    log.info("the head trains on cached embeddings of unaugmented frames; crop%s augmentation applies only "
             "when frames are fed (cnn backbone, fine-tuning)", " and flip" if config.flip else "")
    cache = get_embedding_cache(train_clips + val_clips, backbone, backbone_identity(config), config.seq_len,
                                config.img_size, config.cache_dir, views=config.train_views)
    label_index = {name: i for i, name in enumerate(labels)}
    y = np.array([label_index.get(c["label"], -1) for c in cache.manifest["clips"]], np.int32)
    train_rows, val_rows = (rows[cache.lengths[rows] > 0] for rows in (cache.rows_for(train_clips),
                                                                        cache.rows_for(val_clips)))
    global_batch = config.batch_size * strategy.num_replicas_in_sync
    train_ds = make_feature_dataset(cache.features, cache.masks, y, train_rows, global_batch, training=True,
                                    seed=config.seed)
    val_ds = make_feature_dataset(cache.features, cache.masks, y, val_rows, global_batch) if len(val_rows) else None
    dim = cache.features.shape[-1]
    epochs = config.fine_tune_at if config.fine_tune_at is not None else config.epochs
    head, best = fit_classifier(lambda: build_sequence_classifier(dim, len(labels), "features", **head_options),
                                train_ds, val_ds, run_dir, max(1, epochs), config.lr, config.patience, strategy,
                                resuming, phase="head", weight_decay=config.weight_decay, keep=config.keep)
    with strategy.scope():
        model = build_video_classifier(backbone, len(labels), config.img_size, **head_options)
        _copy_head(head, model)
    best = {**best, "phase": "head"}
    if is_chief(strategy):
        save_model_atomic(model, run_dir / "model.keras")
        atomic_write_json(run_dir / "best.json", best)
    return model, best


def _copy_head(head: keras.Model, model: keras.Model) -> None:
    """Copy the trained head layers (same names in both models) into the frame model."""
    for layer in head.layers:
        if layer.weights:
            model.get_layer(layer.name).set_weights(layer.get_weights())


def unfreeze_top_layers(backbone: keras.Model, count: int) -> None:
    """Make the top ``count`` layers of the backbone's base network trainable, BatchNorm excepted.

    BatchNorm stays frozen so its statistics are not ruined by small video batches: a
    Keras 3 BatchNormalization with ``trainable=False`` runs in inference mode whatever
    ``training`` flag the outer model passes down.
    """
    base = next(layer for layer in backbone.layers if isinstance(layer, keras.Model))
    base.trainable = True
    for i, layer in enumerate(base.layers):
        layer.trainable = i >= len(base.layers) - count and not isinstance(layer, keras.layers.BatchNormalization)


def save_model_atomic(model: keras.Model, path: Path) -> None:
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    try:
        with with_path(path):
            model.save(tmp)
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
