"""Benchmark of the skeleton path: training throughput, loading a large pickle, and accuracy
against the notebook baseline.

Run:  python bench/bench_skeleton.py [--sequences 10000] [--per-class 150] [--seed 1]

In one process:
1. training throughput (sequences/s) of the default model at T=100 (augmentation and
   sampling included), after a warm-up epoch;
2. time to write, then to load, check and preprocess a synthetic PYSKL pickle of
   ``--sequences`` sequences (30-150 frames, 1-2 persons);
3. test accuracy on the synthetic time-reversed pairs (``--per-class`` sequences per class,
   30% of them in ``test1``) of the notebook method -- person 0 of the file, minus the
   per-video mean, first 64 frames zero-padded, LSTM last hidden state with the padding
   included -- against ``train_skeleton`` with default settings.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")  # as the seqvision CLI does
os.environ.setdefault("CI", "1")  # one line per epoch in logs instead of progress bars

import keras  # noqa: E402
import numpy as np  # noqa: E402

from seqvision.models import build_sequence_classifier  # noqa: E402
from seqvision.run import load_run  # noqa: E402
from seqvision.skeleton import SkeletonTrainConfig, split_train_val, train_skeleton  # noqa: E402
from seqvision.skeleton_data import read_skeleton_pickle, select_samples  # noqa: E402
from seqvision.skeleton_inputs import feature_dim, make_skeleton_dataset, preprocess_skeletons  # noqa: E402
from seqvision.skeleton_synth import make_synthetic_skeleton_dataset  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def training_throughput(ann: Path, seq_len: int = 100, epochs: int = 2) -> float:
    """Sequences per second of ``fit`` with the default model and augmentation at T=``seq_len``."""
    config = SkeletonTrainConfig()
    arrays = preprocess_skeletons(select_samples(read_skeleton_pickle(ann), "train1"), config.max_persons,
                                  config.score_threshold)
    dataset = make_skeleton_dataset(arrays, config.batch_size, training=True, seq_len=seq_len,
                                    augmentation=config.augmentation())
    model = build_sequence_classifier(feature_dim(config.max_persons), int(arrays.labels.max()) + 1, "keypoints",
                                      units=config.units, num_layers=config.num_layers,
                                      bidirectional=config.bidirectional, dropout=config.dropout)
    model.compile(optimizer=keras.optimizers.Adam(config.lr), loss="sparse_categorical_crossentropy")
    model.fit(dataset, epochs=1, verbose=0)  # warm-up: tracing
    seconds, _ = timed(lambda: model.fit(dataset, epochs=epochs, verbose=0))
    return epochs * len(arrays) / seconds


def notebook_inputs(samples, seq_len: int = 64) -> np.ndarray:
    """The notebook's features float32 [N, seq_len, 34]: person 0 of the file, minus the mean
    over the video, the first ``seq_len`` frames, zero-padded."""
    x = np.zeros((len(samples), seq_len, 34), np.float32)
    for i, keypoint in enumerate(samples.keypoints):
        person = keypoint[0] - keypoint[0].mean(axis=(0, 1))  # [T, 17, 2] minus the mean (x, y)
        x[i, :min(len(person), seq_len)] = person[:seq_len].reshape(-1, 34)
    return x


def notebook_baseline(ann: Path, config: SkeletonTrainConfig) -> tuple[float, float]:
    """``(test accuracy, best training accuracy)`` of the notebook method, trained as the
    defaults train (same epochs, learning rate, batch size, validation rows, early stopping)."""
    data = read_skeleton_pickle(ann)
    train, test = select_samples(data, config.train_split), select_samples(data, "test1")
    train_rows, val_rows = split_train_val(train.labels, train.frame_dirs, config.val_fraction, config.seed)
    x, y = notebook_inputs(train), train.labels
    keras.utils.set_random_seed(config.seed)
    model = keras.Sequential([keras.Input((64, 34)), keras.layers.LSTM(config.units),
                              keras.layers.Dense(int(y.max()) + 1, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(config.lr), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True)
    history = model.fit(x[train_rows], y[train_rows], batch_size=config.batch_size, epochs=config.epochs,
                        validation_data=(x[val_rows], y[val_rows]), callbacks=[stop], verbose=0)
    predicted = model.predict(notebook_inputs(test), verbose=0).argmax(axis=1)
    return float(np.mean(predicted == test.labels)), max(history.history["accuracy"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequences", type=int, default=10_000)
    parser.add_argument("--per-class", type=int, default=150)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    print(f"cores: {os.cpu_count()}, TensorFlow threads: default", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pairs = tmp / "pairs.pkl"
        make_synthetic_skeleton_dataset(pairs, num_per_class=args.per_class, seed=args.seed)

        rate = training_throughput(pairs)
        print(f"training throughput, T=100, batch {SkeletonTrainConfig.batch_size}: {rate:.0f} sequences/s",
              flush=True)

        big = tmp / "big.pkl"
        write_s, _ = timed(lambda: make_synthetic_skeleton_dataset(big, num_per_class=args.sequences // 2,
                                                                   num_classes=2, test_fraction=0.0, seed=2))
        read_s, data = timed(lambda: read_skeleton_pickle(big))
        select_s, samples = timed(lambda: select_samples(data, "train1"))
        prep_s, arrays = timed(lambda: preprocess_skeletons(samples))
        print(f"{len(arrays)} sequences, {int(arrays.lengths.sum())} frames, {big.stat().st_size / 2**20:.0f} MiB: "
              f"generate+write {write_s:.1f} s; load {read_s:.2f} s + check {select_s:.2f} s + preprocess "
              f"{prep_s:.2f} s = {read_s + select_s + prep_s:.2f} s", flush=True)
        del data, samples, arrays

        config = SkeletonTrainConfig()
        seconds, (baseline, fitted) = timed(lambda: notebook_baseline(pairs, config))
        print(f"notebook baseline (person 0, mean-subtracted, first 64 frames, unmasked LSTM): "
              f"test accuracy {baseline:.3f} (training accuracy {fitted:.3f}, {seconds:.0f} s)", flush=True)
        seconds, _ = timed(lambda: train_skeleton(pairs, tmp / "run"))
        metrics = load_run(tmp / "run").evaluate(pairs, "test1")
        print(f"seqvision defaults: test accuracy {metrics['accuracy']:.3f}, mean class accuracy "
              f"{metrics['mean_class_accuracy']:.3f} on {metrics['n']} sequences ({seconds:.0f} s to train)",
              flush=True)


if __name__ == "__main__":
    main()
