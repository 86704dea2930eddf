"""MobileNetV2 from keras.applications and TF Hub, the embedding cache, fine-tuning."""
import json
import shutil

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from seqvision.backbones import build_backbone
from seqvision.cli import main
from seqvision.datasets import find_clips
from seqvision.embeddings import cache_dir_for, cache_key, get_embedding_cache, open_embedding_cache
from seqvision.sampling import sample_uniform_indices

IMG = 32


def _base_model(backbone):
    return next(layer for layer in backbone.layers if isinstance(layer, keras.Model))


def _export_hub_savedmodel(base, path):
    """Export ``base`` the way TF Hub image feature vectors work: inputs in [0, 1]."""
    class FeatureVector(tf.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
        def __call__(self, images):
            return self.model(images * 2.0 - 1.0, training=False)

    tf.saved_model.save(FeatureVector(base), str(path))


@pytest.fixture(scope="module")
def saved_mobilenet(tmp_path_factory):
    """A random MobileNetV2 saved as a weights file and as a TF Hub style SavedModel."""
    root = tmp_path_factory.mktemp("mobilenet")
    keras.utils.set_random_seed(3)
    backbone = build_backbone("mobilenet", IMG, weights=None)
    base = _base_model(backbone)
    # Give BatchNorm non-trivial statistics so features are not vanishingly small.
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            mean, var = layer.moving_mean, layer.moving_variance
            mean.assign(np.random.default_rng(0).normal(0, 0.1, mean.shape).astype("float32"))
            var.assign(np.full(var.shape, 0.05, "float32"))
    base.save_weights(root / "mobilenet.weights.h5")
    _export_hub_savedmodel(base, root / "hub_savedmodel")
    return root


def test_keras_applications_and_hub_paths_give_the_same_features(saved_mobilenet):
    frames = np.random.default_rng(1).integers(0, 256, (4, IMG, IMG, 3)).astype("float32")
    from_weights = build_backbone("mobilenet", IMG, weights=str(saved_mobilenet / "mobilenet.weights.h5"))
    from_hub = build_backbone("mobilenet", IMG, hub_handle=str(saved_mobilenet / "hub_savedmodel"))
    a, b = np.asarray(from_weights(frames)), np.asarray(from_hub(frames))
    assert a.shape == b.shape == (4, 1280)
    assert a.std() > 1e-3
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4 * np.abs(a).max())  # float32 op order differs
    # Scaling matters: the Hub module fed 0..255 instead of [0, 1] gives other features.
    hub_layer = from_hub.get_layer("hub_features")
    wrong = np.asarray(hub_layer._module(tf.constant(frames)))
    assert np.abs(wrong - a).max() > 0.1 * np.abs(a).max()
    # And the weights file was really loaded (a fresh random model differs).
    fresh = np.asarray(build_backbone("mobilenet", IMG, weights=None)(frames))
    assert np.abs(fresh - a).max() > 1e-3 * np.abs(a).max()


def test_hub_path_takes_a_keras_export_and_works_under_a_strategy(tmp_path):
    # A Keras Model.export() SavedModel has a `serve` endpoint instead of __call__.
    inputs = keras.Input((IMG, IMG, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(6, 3, activation="relu")(inputs))
    small = keras.Model(inputs, pooled)
    small.export(str(tmp_path / "exported"), verbose=False)
    frames = np.random.default_rng(2).integers(0, 256, (5, IMG, IMG, 3)).astype("float32")
    expected = np.asarray(small(frames / 255.0))
    assert expected.std() > 1e-4
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    backbone = build_backbone("mobilenet", IMG, hub_handle=str(tmp_path / "exported"))
    with strategy.scope():  # models built in the scope around a backbone loaded outside it
        model = keras.Sequential([backbone, keras.layers.Dense(2)])
    np.testing.assert_allclose(backbone.predict_on_batch(frames), expected, rtol=1e-5, atol=1e-6)
    assert model.predict_on_batch(frames).shape == (5, 2)


def test_hub_handle_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="cannot load TF Hub model"):
        build_backbone("mobilenet", IMG, hub_handle=str(tmp_path / "missing"))


def _write_frame_clips(root, clips_per_label=3, frames_per_clip=5):
    rng = np.random.default_rng(0)
    for label in ("left", "right"):
        for c in range(clips_per_label):
            clip = root / label / f"v_{label}_g{c + 1:02d}_c01"
            clip.mkdir(parents=True)
            for i in range(frames_per_clip - c):  # lengths differ: 5, 4, 3
                image = rng.integers(0, 256, (IMG, IMG, 3), dtype=np.uint8)
                cv2.imwrite(str(clip / f"{i:06d}.png"), image)
    return root


class CountingBackbone:
    """Proxy that counts backbone calls made by the cache builder."""

    def __init__(self, model):
        self.model, self.calls, self.frames = model, 0, 0

    def __getattr__(self, name):
        return getattr(self.model, name)

    def predict_on_batch(self, x):
        self.calls += 1
        self.frames += len(x)
        return self.model.predict_on_batch(x)


def test_embedding_cache_reuse_rebuild_and_killed_run(tmp_path):
    data = _write_frame_clips(tmp_path / "frames")
    clips = find_clips(data)
    identity = {"name": "cnn"}
    backbone = CountingBackbone(build_backbone("cnn", IMG, filters=(4, 8)))
    cache = get_embedding_cache(clips, backbone, identity, 4, IMG, tmp_path / "cache", batch_frames=8)
    assert backbone.calls >= 2  # 21 valid frames in batches of about 8
    assert backbone.frames == sum(min(4, n) for n in (5, 4, 3)) * 2
    assert cache.features.dtype == np.float16 and cache.features.shape == (6, 4, 8)
    np.testing.assert_array_equal(cache.lengths, [4, 4, 3, 4, 4, 3])
    assert not cache.features[2, 3:].any()  # zero after the true length
    assert cache.masks[2].tolist() == [True, True, True, False]
    reference = np.asarray(backbone.model.predict_on_batch(
        np.stack([cv2.cvtColor(cv2.imread(str(clips[0].path / f"{i:06d}.png")), cv2.COLOR_BGR2RGB)
                  for i in sample_uniform_indices(5, 4)]).astype("float32")))
    np.testing.assert_allclose(cache.features[0].astype(np.float32), reference, rtol=2e-3, atol=2e-3)

    again = CountingBackbone(backbone.model)
    reused = get_embedding_cache(clips, again, identity, 4, IMG, tmp_path / "cache")
    assert again.calls == 0 and reused.path == cache.path

    other_size = CountingBackbone(build_backbone("cnn", 24, filters=(4, 8)))
    rebuilt = get_embedding_cache(clips, other_size, identity, 4, 24, tmp_path / "cache")
    assert other_size.calls > 0 and rebuilt.path != cache.path

    # A run killed half-way leaves only a partial folder: it is never read, and is rebuilt.
    class Killed(Exception):
        pass

    dying = CountingBackbone(backbone.model)
    dying.predict_on_batch = lambda x: (_ for _ in ()).throw(Killed())
    shutil.rmtree(cache.path)
    with pytest.raises(Killed):
        get_embedding_cache(clips, dying, identity, 4, IMG, tmp_path / "cache", batch_frames=4)
    assert not cache.path.exists()
    assert list(cache.path.parent.glob(f".{cache.path.name}.partial-*"))
    fresh = CountingBackbone(backbone.model)
    get_embedding_cache(clips, fresh, identity, 4, IMG, tmp_path / "cache")
    assert fresh.calls > 0
    assert not list(cache.path.parent.glob(f".{cache.path.name}.partial-*"))

    # A folder whose arrays do not match its manifest is refused, not trusted.
    key = cache_key(clips, identity, 4, IMG)
    np.save(cache_dir_for(key, tmp_path / "cache") / "lengths.npy", np.zeros(2, np.int32))
    assert open_embedding_cache(cache_dir_for(key, tmp_path / "cache"), key) is None


@pytest.mark.slow
def test_train_mobilenet_from_weights_and_hub_then_evaluate(tmp_path, saved_mobilenet, monkeypatch):
    monkeypatch.setenv("SEQVISION_CACHE_DIR", str(tmp_path / "cache"))
    data = _write_frame_clips(tmp_path / "frames", clips_per_label=5)
    runner = CliRunner()
    common = ["--backbone", "mobilenet", "--img-size", str(IMG), "--seq-len", "4", "--epochs", "2",
              "--batch-size", "4", "--val-split", "0.2"]
    for name, source in (("weights", ["--weights", "none"]),
                         ("hub", ["--hub-handle", str(saved_mobilenet / "hub_savedmodel")])):
        run = tmp_path / f"run_{name}"
        result = runner.invoke(main, ["train", str(data), "--out", str(run), *common, *source])
        assert result.exit_code == 0, result.output
        assert (run / "model.keras").exists() and (run / "head.keras").exists()
        assert json.loads((run / "config.json").read_text())["backbone"] == "mobilenet"
        result = runner.invoke(main, ["evaluate", str(run), str(data), "--json"])
        assert result.exit_code == 0, result.output
        metrics = json.loads(result.stdout)
        assert metrics["n"] == 10 and 0.0 <= metrics["accuracy"] <= 1.0
    caches = list((tmp_path / "cache" / "embeddings").iterdir())
    assert len(caches) == 2  # one per backbone source

    # A second run with another --out reuses the cache: no new cache folder, same files.
    before = {p: p.stat().st_mtime for p in caches}
    result = runner.invoke(main, ["train", str(data), "--out", str(tmp_path / "run_again"), *common,
                                  "--hub-handle", str(saved_mobilenet / "hub_savedmodel")])
    assert result.exit_code == 0, result.output
    assert {p: p.stat().st_mtime for p in (tmp_path / "cache" / "embeddings").iterdir()} == before


@pytest.mark.slow
def test_fine_tuning_trains_backbone_layers(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQVISION_CACHE_DIR", str(tmp_path / "cache"))
    data = _write_frame_clips(tmp_path / "frames", clips_per_label=5)
    run = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "train", str(data), "--out", str(run), "--backbone", "mobilenet", "--weights", "none",
        "--img-size", str(IMG), "--seq-len", "4", "--epochs", "2", "--fine-tune-at", "1", "--unfreeze", "5",
        "--batch-size", "4"])
    assert result.exit_code == 0, result.output
    best = json.loads((run / "best.json").read_text())
    assert best["phase"] == "finetune"
    assert (run / "history_finetune.csv").exists()
    head_model = keras.models.load_model(run / "head.keras")
    final = keras.models.load_model(run / "model.keras")
    base = _base_model(final.get_layer("frame_features").layer)
    assert base.layers[-1].trainable or any(layer.trainable_weights for layer in base.layers[-5:])
    assert head_model is not None
