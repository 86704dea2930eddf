"""Fitting a classifier in a run directory: distribution strategy, learning-rate schedule,
checkpoints that survive interruption, TensorBoard logs; shared by the video and skeleton paths.

``fit_classifier`` (Keras ``fit``, MirroredStrategy) writes into the run directory
``model.keras`` (last or best epoch, replaced atomically), ``best.json``, ``history.csv``,
``training_curves.png`` and ``logs/`` (TensorBoard); an interrupted fit leaves ``backup/`` and
resumes from it. ``fit_custom_loop`` does the same under ``MultiWorkerMirroredStrategy``.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import warnings
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from seqvision.errors import SeqvisionError
from seqvision.evaluation import plot_training_curves
from seqvision.io import atomic_write_json, read_json
from seqvision.model_files import save_model_atomic

log = logging.getLogger(__name__)

STRATEGIES = ("mirrored", "multiworker")
# Which epoch's model a run keeps: "last" (the end of the cosine schedule) or "best" (lowest
# validation loss). On the generalisation protocol's selection sets a validation split of one
# recording group ranked epochs against the test accuracy (bench/generalisation.md).
KEEP_CHOICES = ("last", "best")


def make_strategy(kind: str = "mirrored") -> tf.distribute.Strategy:
    """``mirrored``: ``MirroredStrategy`` over all visible GPUs; with no GPU, TensorFlow's default
    strategy on the CPU (one replica: the same computation, while any strategy scope there makes
    Keras' training 1.5x slower: bench/bench_train_step.py).

    ``multiworker``: ``MultiWorkerMirroredStrategy`` configured from ``TF_CONFIG``.
    """
    if kind not in STRATEGIES:
        raise SeqvisionError(f"unknown strategy {kind!r}; choose one of {STRATEGIES}")
    if kind == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise SeqvisionError("--strategy multiworker needs TF_CONFIG (see README: multi-worker training)")
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    elif tf.config.list_logical_devices("GPU"):
        strategy = tf.distribute.MirroredStrategy()
    else:
        log.info("training on 1 replica: the CPU (no GPU visible)")
        return tf.distribute.get_strategy()
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
            raise SeqvisionError(f"keep must be one of {KEEP_CHOICES}, got {keep!r}")
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


class BatchCounter(keras.callbacks.Callback):
    """Counts training batches: with no strategy scope ``fit`` runs an empty dataset without error."""

    def __init__(self):
        super().__init__()
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1

    def on_epoch_end(self, epoch, logs=None):
        if self.batches == 0:  # nothing to train on: the later epochs would be empty too
            self.model.stop_training = True


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
            raise SeqvisionError(f"{self.backup_dir}: the saved training state is damaged ({error}); delete "
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
            raise SeqvisionError(f"{run_dir} holds an interrupted run with other settings ({', '.join(changed)}); "
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
    batch_counter = BatchCounter()
    callbacks = [
        batch_counter,
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
        except StopIteration:  # what fit raises under a strategy when the dataset yields no batch at all
            batch_counter.batches = 0
        if batch_counter.batches == 0 and not record.exists():
            raise SeqvisionError("the training data yielded no batch: every training clip was unreadable "
                                 "(see the warnings above)")
    if not record.exists():
        raise SeqvisionError(f"no epoch ended with a finite {monitor}: nothing was saved to {checkpoint} "
                             "(check the input data for NaN or huge values)")
    if history.exists():
        plot_training_curves(history, run_dir / f"training_curves{suffix}.png")
        if phase:  # the run's training_curves.png shows its latest phase (head, then fine-tuning)
            plot_training_curves(history, run_dir / "training_curves.png")
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
            raise SeqvisionError("the training dataset's length is unknown: pass steps_per_epoch "
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
            if model.losses:  # weight penalties (e.g. the head's L1), once per step across replicas
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
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
