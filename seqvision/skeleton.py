"""The skeleton path: PYSKL pose pickles -> normalised keypoint sequences -> masked LSTM.

Stages and what each hands on:

    read_skeleton_pickle(path)          SkeletonPickle: ``splits`` {name: [frame_dir]}, raw ``annotations``
    select_samples(pickle, split)       SkeletonSamples, checked; per sequence ``keypoint`` float32
                                        [M, T, 17, 2] (pixels) and ``score`` float32 [M, T, 17]
    preprocess_skeletons(samples)       SkeletonArrays: ``frames`` float32 [F, P, 17, 3] = (x, y in body
                                        units, score), all sequences laid end to end (ragged in time)
    skeleton_inputs(arrays, rows)       ``keypoints`` float32 [B, T, P*17*C] and ``mask`` bool [B, T]
    make_skeleton_dataset(arrays, ...)  tf.data of ``({"keypoints", "mask"}, label int32 [B])``

Person choice, score thresholding and normalisation are deterministic and done once;
temporal sampling (with jitter when training) and augmentation run per batch on top.
Everything up to ``skeleton_inputs`` is NumPy; TensorFlow is imported only to train and predict.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from seqvision.io import atomic_write_json
from seqvision.labels import mirror_classes
from seqvision.skeleton_data import (SkeletonDataError, SkeletonPickle, SkeletonSamples, read_label_names,
                                     read_skeleton_pickle, resolve_classes, select_samples)
from seqvision.skeleton_inputs import (DEFAULT_SEQ_LEN, Augmentation, SkeletonArrays, feature_dim,
                                       make_skeleton_dataset, preprocess_skeletons)
from seqvision.splits import group_of, groups_from_file, split_by_groups

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- training and inference

@dataclass
class SkeletonTrainConfig:
    """Settings of a skeleton run; saved as the run's ``config.json``."""

    ann_path: str = ""
    train_split: str | None = "train1"  # None = every annotation (files without splits)
    val_split: str | None = None  # a split of the file; None = hold out val_fraction of train_split
    val_fraction: float = 0.1
    groups_file: str | None = None  # CSV clip,group (by frame_dir); None = the UCF101 name rule
    classes: list | None = None  # label ids or names to keep; None = every class in train_split
    label_names: str | None = None  # text file, line i names label i
    seq_len: int | None = DEFAULT_SEQ_LEN  # frames sampled uniformly over each sequence; None = all
    max_persons: int = 2
    score_threshold: float = 0.1
    per_person: bool = True  # each person centred and scaled by its own body, not by the first person's
    use_score: bool = True  # feed each joint's score as a third channel
    units: int = 128
    num_layers: int = 1
    bidirectional: bool = True  # the backward pass reads each sequence from its last real frame
    dropout: float = 0.3
    input_dropout: float = 0.0
    feature_diff: bool = False  # feed each step's change since the previous step next to the positions
    epochs: int = 60
    batch_size: int = 32  # per replica
    lr: float = 2e-3
    patience: int = 10
    keep: str = "last"  # "last" (end of the cosine schedule) | "best" (lowest validation loss, early stopping)
    weight_decay: float = 0.0
    seed: int = 0
    flip: bool = False  # mirror images keep the label: only for classes without a side
    flip_pairs: list | None = None  # ["left_x:right_x", …] (ids or names): flip, swapping these labels
    rotate_degrees: float = 10.0
    scale_range: float = 0.1
    shift: float = 0.1
    temporal_jitter: bool = True
    strategy: str = "mirrored"  # "mirrored" | "multiworker" (from TF_CONFIG)
    label_ids: list[int] = field(default_factory=list)  # filled in: model class i is label label_ids[i]
    kind: str = "skeleton"

    def augmentation(self, labels: list[str] | None = None) -> Augmentation:
        """The training augmentation; ``labels`` (model class names) resolve ``flip_pairs``."""
        mirror = None
        if self.flip_pairs:
            mirror = mirror_classes(self.flip_pairs, labels or [str(i) for i in self.label_ids], self.label_ids)
        return Augmentation(self.flip or mirror is not None, self.rotate_degrees, self.scale_range, self.shift,
                            self.temporal_jitter, mirror)


def split_train_val(labels: np.ndarray, frame_dirs: Sequence[str], val_fraction: float, seed: int = 0,
                    groups_file: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Group-aware, class-balanced hold-out of about ``val_fraction`` of the rows:
    ``(train_rows, val_rows)``, as for videos (:func:`seqvision.splits.split_by_groups`).

    Sequences of one UCF101 recording group (``v_X_g08_c01``…) stay on one side; ``groups_file``
    (CSV ``clip,group`` by ``frame_dir``) gives the groups of files named otherwise.
    """
    frame_dirs = [str(d) for d in frame_dirs]
    groups = ([group_of(d) for d in frame_dirs] if groups_file is None else
              groups_from_file(frame_dirs, frame_dirs, groups_file))
    train, val = split_by_groups([int(v) for v in labels], groups, val_fraction, seed)
    return np.sort(np.asarray(train, np.int64)), np.sort(np.asarray(val, np.int64))


def _class_indices(labels: np.ndarray, label_ids: Sequence[int]) -> np.ndarray:
    """Original label ids -> model class indices (-1 for other labels)."""
    ids = np.asarray(label_ids, np.int64)
    order = np.argsort(ids)
    at = np.minimum(np.searchsorted(ids[order], labels), len(ids) - 1)  # no table as long as the largest id
    return np.where(ids[order][at] == labels, order[at], -1).astype(np.int32)


def load_skeleton_arrays(data: SkeletonPickle, split: str | None, config: dict, require_labels: bool = True
                         ) -> tuple[SkeletonArrays, SkeletonSamples]:
    """Select ``split`` of the run's classes and preprocess it as the run ``config`` did;
    labels become class indices (-1 for classes the run does not know)."""
    samples = select_samples(data, split, config["label_ids"] if require_labels else None, require_labels)
    arrays = preprocess_skeletons(samples, config["max_persons"], config["score_threshold"],
                                  config.get("per_person", False))  # runs saved before the setting: False
    arrays.labels = _class_indices(arrays.labels, config["label_ids"])
    return arrays, samples


def train_skeleton(ann_path: str | Path, out_dir: str | Path, config: SkeletonTrainConfig | None = None,
                   overwrite: bool = False, **settings) -> dict:
    """Train the masked LSTM on the ``train_split`` of a PYSKL pickle; returns the best epoch's record.

    ``settings`` override fields of ``config`` (``SkeletonTrainConfig``), e.g. ``epochs=20``.
    Writes into ``out_dir``: ``model.keras`` (best validation accuracy), ``config.json``,
    ``labels.json``, ``best.json``, ``history.csv``, ``training_curves.png``; an interrupted
    run leaves ``backup/`` and resumes from it when started again with the same settings. A
    finished run in ``out_dir`` is replaced only with ``overwrite``, once the new one has finished.
    """
    from seqvision.rundir import staged_run_dir

    import keras

    config = dataclasses.replace(config or SkeletonTrainConfig(), ann_path=str(ann_path), **settings)
    if config.classes is not None:
        config.classes = list(config.classes)
    if config.flip_pairs:
        config.flip_pairs = list(config.flip_pairs)  # as config.json gives it back, for resume
    keras.utils.set_random_seed(config.seed)
    names = read_label_names(config.label_names) if config.label_names else None
    data = read_skeleton_pickle(config.ann_path)
    label_ids = resolve_classes(config.classes, names) if config.classes else None
    train = select_samples(data, config.train_split, label_ids)
    if not len(train):
        raise SkeletonDataError(data.path, f"split {config.train_split!r} has no usable sequences")
    _check_classes_present(data.path, config.train_split, label_ids, train.labels)
    config.label_ids = label_ids or sorted(set(train.labels.tolist()))
    if names and max(config.label_ids) >= len(names):
        raise SkeletonDataError(config.label_names, f"names {len(names)} labels, the data uses label "
                                                    f"{max(config.label_ids)}")
    labels = [names[i] if names else str(i) for i in config.label_ids]
    config.augmentation(labels)  # an unknown --flip-pairs class is refused before anything is written
    saved = dataclasses.asdict(config)
    train_arrays = preprocess_skeletons(train, config.max_persons, config.score_threshold, config.per_person)
    train_arrays.labels = _class_indices(train_arrays.labels, config.label_ids)
    if config.val_split:
        val_arrays, _ = load_skeleton_arrays(data, config.val_split, saved)
        if not len(val_arrays):
            raise SkeletonDataError(data.path, f"validation split {config.val_split!r} has no usable sequences "
                                               "of the training classes")
    elif config.val_fraction > 0:
        train_rows, val_rows = split_train_val(train_arrays.labels, train_arrays.frame_dirs, config.val_fraction,
                                               config.seed, config.groups_file)
        train_arrays, val_arrays = train_arrays.take(train_rows), train_arrays.take(val_rows)
    else:
        val_arrays = None
    del data, train
    log.info("%d training, %d validation sequences, %d classes", len(train_arrays),
             len(val_arrays) if val_arrays else 0, len(labels))

    with staged_run_dir(Path(out_dir), saved, overwrite) as (run_dir, resuming):
        return _fit_skeleton(config, run_dir, resuming, labels, train_arrays, val_arrays)


def _check_classes_present(path: str, split: str | None, label_ids: list[int] | None, labels: np.ndarray) -> None:
    """Refuse asked-for classes without a training sequence: the model would learn never to predict them."""
    missing = sorted(set(label_ids or ()) - set(labels.tolist()))
    if missing:
        raise SkeletonDataError(path, f"no usable sequence of class {', '.join(map(str, missing))} in split "
                                      f"{split!r}; leave it out of --classes")


def _fit_skeleton(config: SkeletonTrainConfig, run_dir: Path, resuming: bool, labels: list[str],
                  train_arrays: SkeletonArrays, val_arrays: SkeletonArrays | None) -> dict:
    """:func:`train_skeleton` in the folder chosen for it."""
    from seqvision.models import build_sequence_classifier
    from seqvision.fitting import fit_classifier, make_strategy

    atomic_write_json(run_dir / "labels.json", labels)
    strategy = make_strategy(config.strategy)
    batch = config.batch_size * strategy.num_replicas_in_sync
    common = dict(seq_len=config.seq_len, use_score=config.use_score, seed=config.seed)
    train_ds = make_skeleton_dataset(train_arrays, batch, training=True, augmentation=config.augmentation(labels),
                                     **common)
    val_ds = make_skeleton_dataset(val_arrays, batch, **common) if val_arrays else None
    dim = feature_dim(config.max_persons, config.use_score)

    def build():
        return build_sequence_classifier(dim, len(labels), "keypoints", None, units=config.units,
                                         num_layers=config.num_layers, bidirectional=config.bidirectional,
                                         dropout=config.dropout, input_dropout=config.input_dropout,
                                         feature_diff=config.feature_diff, name="skeleton_classifier")

    _, best = fit_classifier(build, train_ds, val_ds, run_dir, config.epochs, config.lr, config.patience, strategy,
                             resuming, weight_decay=config.weight_decay, keep=config.keep)
    return {**best, "num_train": len(train_arrays),
            "num_val": len(val_arrays) if val_arrays else 0}


def predict_probs(model, arrays: SkeletonArrays, config: dict, batch_size: int = 128) -> np.ndarray:
    """Class probabilities float32 [N, K] of preprocessed sequences, sampled as in ``config``."""
    import contextlib
    import sys

    if not len(arrays):
        return np.zeros((0, model.output_shape[-1]), np.float32)
    dataset = make_skeleton_dataset(arrays, batch_size, seq_len=config["seq_len"], use_score=config["use_score"])
    with contextlib.redirect_stdout(sys.stderr):
        return model.predict(dataset, verbose=0)
