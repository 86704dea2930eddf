import csv
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from seqvision.io import read_json
from seqvision.models import build_sequence_classifier
from seqvision.fitting import cosine_learning_rate, fit_classifier, make_strategy, prepare_run_dir
from seqvision.training import resolve_cache


def _toy_datasets(seed=0):
    """Two classes told apart by the sign of the slope of a 1-D sequence."""
    rng = np.random.default_rng(seed)
    n, steps = 64, 10
    slope = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    x = (slope[:, None] * np.linspace(-1, 1, steps)[None] + rng.normal(0, 0.1, (n, steps)))[..., None]
    x = x.astype("float32")
    y = (slope < 0).astype("int32")
    mask = np.ones((n, steps), bool)
    ds = tf.data.Dataset.from_tensor_slices(({"features": x, "mask": mask}, y))
    return ds.take(48).batch(8), ds.skip(48).batch(8)


class StopAfterEpoch(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.stop_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.stop_epoch:
            raise KeyboardInterrupt("simulated interruption")


def test_mirrored_strategy_spans_the_gpus_and_is_skipped_on_a_cpu_only_machine():
    """With no GPU, one replica and no strategy scope (same computation, 1.5x faster training
    on CPU: bench/bench_train_step.py); with GPUs, MirroredStrategy over all of them."""
    gpus = tf.config.list_logical_devices("GPU")
    strategy = make_strategy("mirrored")
    if gpus:
        assert isinstance(strategy, tf.distribute.MirroredStrategy)
        assert strategy.num_replicas_in_sync == len(gpus)
    else:
        assert strategy is tf.distribute.get_strategy() and strategy.num_replicas_in_sync == 1
    with pytest.raises(ValueError, match="unknown strategy"):
        make_strategy("parameter_server")


def test_fit_writes_run_files_and_resumes_after_interruption(tmp_path):
    train_ds, val_ds = _toy_datasets()
    config = {"kind": "toy", "epochs": 4}
    strategy = make_strategy()

    def build():
        return build_sequence_classifier(1, 2, units=8, dropout=0.0)

    assert prepare_run_dir(tmp_path, config) is False
    with pytest.raises(KeyboardInterrupt):
        fit_classifier(build, train_ds, val_ds, tmp_path, 4, 1e-2, 10, strategy,
                       extra_callbacks=[StopAfterEpoch(1)])
    assert (tmp_path / "backup").is_dir()
    assert (tmp_path / "model.keras").exists()

    with pytest.raises(ValueError, match="other settings"):
        prepare_run_dir(tmp_path, {**config, "epochs": 5})
    # A run saved before an option existed is not resumed under that option's (new) default.
    with pytest.raises(ValueError, match=r"other settings \(brightness_norm\)"):
        prepare_run_dir(tmp_path, {**config, "brightness_norm": True})
    resuming = prepare_run_dir(tmp_path, config)
    assert resuming is True
    model, best = fit_classifier(build, train_ds, val_ds, tmp_path, 4, 1e-2, 10, strategy, resuming=True)

    rows = list(csv.DictReader(open(tmp_path / "history.csv")))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]  # 0-1 before the interruption, 2-3 after: none redone
    # The cosine schedule carries on where the interrupted run stopped.
    np.testing.assert_allclose([float(r["learning_rate"]) for r in rows],
                               [cosine_learning_rate(1e-2, e, 4) for e in range(4)], rtol=1e-5)
    assert not (tmp_path / "backup").exists()
    assert (tmp_path / "training_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert read_json(tmp_path / "best.json") == best
    assert 1 <= best["epoch"] <= 4
    probs = model.predict(val_ds, verbose=0)
    assert probs.shape == (16, 2)


def test_fresh_run_discards_stale_records(tmp_path):
    (tmp_path / "best.json").write_text(json.dumps({"epoch": 9, "score": [1.0, 0.0]}))
    (tmp_path / "history.csv").write_text("epoch,loss\n0,1\n")
    assert prepare_run_dir(tmp_path, {"kind": "toy"}) is False
    assert not (tmp_path / "best.json").exists() and not (tmp_path / "history.csv").exists()
    assert read_json(tmp_path / "config.json") == {"kind": "toy"}


def test_resolve_cache():
    assert resolve_cache("auto", 100, 16, 112) is True
    assert resolve_cache("auto", 100_000, 16, 112) is False
    assert resolve_cache("none", 1, 1, 1) is False
    with pytest.raises(ValueError):
        resolve_cache("disk", 1, 1, 1)


def test_cosine_learning_rate_decays_from_lr_to_five_percent():
    rates = [cosine_learning_rate(1e-3, e, 10) for e in range(10)]
    assert rates[0] == pytest.approx(1e-3) and rates[-1] == pytest.approx(5e-5)
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert cosine_learning_rate(1e-3, 0, 1) == pytest.approx(1e-3)


def test_mixed_precision_keeps_probabilities_float32_and_restores_the_policy(tmp_path):
    from seqvision.backbones import build_backbone
    from seqvision.models import build_video_classifier
    from seqvision.fitting import precision_policy

    before = keras.config.dtype_policy().name
    with precision_policy(True):
        policy = keras.config.dtype_policy().name
        assert policy == ("mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16")
        model = build_video_classifier(build_backbone("cnn", 16, filters=(4, 8)), 2, 16, units=8)
        lstm = next(layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.LSTM))
        assert lstm.compute_dtype == policy.split("_")[1] and lstm.variable_dtype == "float32"
        frames = np.random.default_rng(0).integers(0, 256, (4, 3, 16, 16, 3)).astype("float32")
        probs = model.predict_on_batch({"frames": frames, "mask": np.ones((4, 3), bool)})
        assert probs.dtype == np.float32 and np.allclose(probs.sum(-1), 1, atol=1e-3)
        train_ds, val_ds = _toy_datasets()
        fit_classifier(lambda: build_sequence_classifier(1, 2, units=8, dropout=0.0), train_ds, val_ds, tmp_path,
                       1, 1e-2, 5, make_strategy())
    assert keras.config.dtype_policy().name == before
    assert (tmp_path / "model.keras").exists()


def test_training_on_no_batch_is_a_clear_error_after_one_empty_epoch(tmp_path):
    empty = tf.data.Dataset.from_tensor_slices(
        ({"features": tf.zeros((4, 5, 1)), "mask": tf.ones((4, 5), bool)}, tf.zeros(4, tf.int32))
    ).filter(lambda inputs, label: False).batch(2)
    with pytest.raises(ValueError, match="yielded no batch: every training clip was unreadable"):
        fit_classifier(lambda: build_sequence_classifier(1, 2, units=4), empty, None, tmp_path, 30, 1e-2, 5,
                       make_strategy())
    assert [r["epoch"] for r in csv.DictReader(open(tmp_path / "history.csv"))] == ["0"]  # not 30 empty epochs
    assert not (tmp_path / "model.keras").exists()
