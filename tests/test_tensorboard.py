"""TensorBoard scalars under RUN_DIR/logs/: video, skeleton, resumed and multi-worker-loop runs."""
import math
from collections import defaultdict

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from seqvision.cli import main
from seqvision.fitting import cosine_learning_rate

EPOCH_SCALARS = ("epoch_loss", "epoch_accuracy", "epoch_learning_rate")


def read_scalars(log_dir) -> dict[str, dict[int, list[float]]]:
    """``{tag: {step: [values]}}`` from every event file in ``log_dir`` (a list: a step written twice shows)."""
    scalars = defaultdict(lambda: defaultdict(list))
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                number = float(tf.make_ndarray(value.tensor)) if value.HasField("tensor") else value.simple_value
                scalars[value.tag][event.step].append(number)
    return scalars


def _check_epochs(log_dir, tags, epochs, lr=None):
    scalars = read_scalars(log_dir)
    for tag in tags:
        assert sorted(scalars[tag]) == list(range(epochs)), (log_dir, tag, dict(scalars[tag]))
        assert all(len(v) == 1 and math.isfinite(v[0]) for v in scalars[tag].values()), (tag, dict(scalars[tag]))
    if lr is not None:
        logged = [scalars["epoch_learning_rate"][e][0] for e in range(epochs)]
        np.testing.assert_allclose(logged, [cosine_learning_rate(lr, e, epochs) for e in range(epochs)], rtol=1e-5)


def test_video_run_logs_train_and_validation_scalars_per_epoch(tmp_path):
    from seqvision.demo import make_demo_videos

    make_demo_videos(tmp_path / "videos", clips_per_class=3, groups_per_class=3, classes=("move_left", "move_right"))
    run = tmp_path / "runs" / "video"
    result = CliRunner().invoke(main, ["train", str(tmp_path / "videos"), "--out", str(run), "--backbone", "cnn",
                                       "--seq-len", "4", "--img-size", "32", "--epochs", "2", "--batch-size", "4",
                                       "--units", "8",
                                       "--val-split", "0.34", "--lr", "0.01"])
    assert result.exit_code == 0, result.output
    _check_epochs(run / "logs" / "train", EPOCH_SCALARS, 2, lr=0.01)
    _check_epochs(run / "logs" / "validation", ("epoch_loss", "epoch_accuracy"), 2)


def test_skeleton_run_logs_scalars_per_epoch(tmp_path):
    from seqvision.skeleton import train_skeleton
    from seqvision.skeleton_synth import make_synthetic_skeleton_dataset

    ann = tmp_path / "synthetic.pkl"
    make_synthetic_skeleton_dataset(ann, num_per_class=6, num_classes=2, seed=4, min_frames=12, max_frames=24)
    train_skeleton(ann, tmp_path / "run", epochs=2, units=8, batch_size=4, seq_len=12, lr=0.005, val_fraction=0.3)
    _check_epochs(tmp_path / "run" / "logs" / "train", EPOCH_SCALARS, 2, lr=0.005)
    _check_epochs(tmp_path / "run" / "logs" / "validation", ("epoch_loss", "epoch_accuracy"), 2)


def test_resumed_run_appends_each_epoch_once(tmp_path):
    from test_training import StopAfterEpoch, _toy_datasets

    from seqvision.models import build_sequence_classifier
    from seqvision.fitting import fit_classifier, make_strategy, prepare_run_dir

    train_ds, val_ds = _toy_datasets()
    strategy = make_strategy()

    def build():
        return build_sequence_classifier(1, 2, units=8, dropout=0.0)

    prepare_run_dir(tmp_path, {"kind": "toy"})
    with pytest.raises(KeyboardInterrupt):
        fit_classifier(build, train_ds, val_ds, tmp_path, 4, 1e-2, 10, strategy, extra_callbacks=[StopAfterEpoch(1)])
    _check_epochs(tmp_path / "logs" / "train", EPOCH_SCALARS, 2, lr=None)
    assert prepare_run_dir(tmp_path, {"kind": "toy"}) is True
    fit_classifier(build, train_ds, val_ds, tmp_path, 4, 1e-2, 10, strategy, resuming=True)
    _check_epochs(tmp_path / "logs" / "train", EPOCH_SCALARS, 4, lr=1e-2)
    _check_epochs(tmp_path / "logs" / "validation", ("epoch_loss", "epoch_accuracy"), 4)

    # A fresh start in the same folder (nothing to resume) drops the old curves.
    (tmp_path / "model.keras").unlink()
    assert prepare_run_dir(tmp_path, {"kind": "toy", "epochs": 9}) is False
    assert not (tmp_path / "logs").exists()


def test_custom_loop_logs_scalars_and_counts_steps_without_reading_the_data(tmp_path):
    from test_training import _toy_datasets

    from seqvision.models import build_sequence_classifier
    from seqvision.fitting import fit_custom_loop, make_strategy

    train_ds, _ = _toy_datasets()
    unknown_length = train_ds.filter(lambda inputs, label: True)  # as a dataset that skips unreadable clips
    assert int(unknown_length.cardinality()) < 0

    def build():
        return build_sequence_classifier(1, 2, units=8, dropout=0.0)

    with pytest.raises(ValueError, match="steps_per_epoch"):
        fit_custom_loop(build, unknown_length, tmp_path, 2, 1e-2, make_strategy())
    fit_custom_loop(build, unknown_length, tmp_path, 2, 1e-2, make_strategy(), phase="head", steps_per_epoch=6)
    _check_epochs(tmp_path / "logs" / "head" / "train", EPOCH_SCALARS, 2, lr=1e-2)
    assert (tmp_path / "history_head.csv").read_text().count("\n") == 3
