"""Backbone specs; frozen image models from SavedModels and .keras files; self-contained runs."""
import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from conftest import write_video

from seqvision.backbones import BACKBONES, build_backbone
from seqvision.cli import main

IMAGENET_WEIGHTS = Path(__file__).parents[1] / ".." / "shared" / "weights" / "mobilenet_v2_imagenet_1.0_224_no_top.h5"
IMG = 32  # the runs' frame size; the SavedModels below fix other sizes
FIXED = 96  # the input size the exported SavedModel's signature fixes
TRAIN = ["--img-size", str(IMG), "--seq-len", "4", "--epochs", "1", "--batch-size", "4", "--val-split", "0",
         "--train-views", "1", "--units", "8"]


def _write_clips(root, per_label=2):
    """Two labels of short synthetic videos; returns the folder."""
    for label in ("left", "right"):
        for c in range(per_label):
            write_video(root / label / f"v_{label}_g{c + 1:02d}_c01.avi", 6 + c)
    return root


def _invoke(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


def _predict(run, clips):
    result = _invoke("predict", run, *clips, "--json")
    assert result.exit_code == 0, result.output
    return np.array([[p["probability"] for p in sorted(row["predictions"], key=lambda p: p["label"])]
                     for row in json.loads(result.stdout)])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """``keras Model.export()`` of a MobileNetV2 whose signature is fixed at (None, 96, 96, 3)."""
    keras.utils.set_random_seed(0)
    base = keras.applications.MobileNetV2(input_shape=(FIXED, FIXED, 3), alpha=0.35, include_top=False,
                                          pooling="avg", weights=None)
    path = tmp_path_factory.mktemp("export") / "mobilenet_96"
    base.export(str(path), verbose=False)
    return base, path


@pytest.fixture(scope="module")
def hub_run(tmp_path_factory, exported):
    """A run trained from a copy of the fixed-signature SavedModel: ``(run, data, savedmodel copy)``."""
    root = tmp_path_factory.mktemp("hub_run")
    savedmodel = shutil.copytree(exported[1], root / "savedmodel")
    data = _write_clips(root / "data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEQVISION_CACHE_DIR", str(root / "cache"))
        result = _invoke("train", data, "--out", root / "run", "--backbone", "mobilenet", "--hub-handle",
                         savedmodel, *TRAIN)
    assert result.exit_code == 0, result.output
    return root / "run", data, savedmodel


def test_fixed_signature_savedmodel_trains_predicts_and_evaluates(hub_run, exported):
    run, data, _ = hub_run
    assert (run / "backbone" / "hub_features" / "saved_model.pb").exists()  # copied into the run
    clips = sorted(str(p) for p in data.rglob("*.avi"))
    probs = _predict(run, clips)
    assert probs.shape == (4, 2) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-3)
    result = _invoke("evaluate", run, data, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n"] == 4
    # Frames are resized to the signature's 96 px inside the backbone and scaled to [0, 1].
    frames = np.random.default_rng(0).integers(0, 256, (2, IMG, IMG, 3)).astype("float32")
    backbone = build_backbone("mobilenet", IMG, hub_handle=str(exported[1]))
    expected = exported[0](tf.image.resize(frames, (FIXED, FIXED)) / 255.0)
    np.testing.assert_allclose(backbone(frames), expected, rtol=1e-4, atol=1e-5)
    # A bare Keras MobileNetV2 export() expects [-1, 1]: --hub-input-range -1,1 feeds it that.
    backbone = build_backbone("mobilenet", IMG, hub_handle=str(exported[1]), hub_input_range="-1,1")
    expected = exported[0](tf.image.resize(frames, (FIXED, FIXED)) / 127.5 - 1.0)
    np.testing.assert_allclose(backbone(frames), expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="hub input range"):
        build_backbone("mobilenet", IMG, hub_handle=str(exported[1]), hub_input_range="0,2")


def test_run_predicts_after_its_savedmodel_is_deleted_and_the_run_is_moved(hub_run, tmp_path):
    run, data, savedmodel = hub_run
    clips = sorted(str(p) for p in data.rglob("*.avi"))
    before = _predict(run, clips)
    shutil.rmtree(savedmodel)
    np.testing.assert_allclose(_predict(run, clips), before, atol=1e-6)
    moved = shutil.move(str(run), str(tmp_path / "elsewhere" / "run"))
    np.testing.assert_allclose(_predict(moved, clips), before, atol=1e-6)
    shutil.rmtree(Path(moved) / "backbone")  # the run's own copy is what it loads
    result = _invoke("predict", moved, clips[0])
    assert result.exit_code == 1 and "model.keras: cannot load the model" in result.output


def test_a_tf_hub_url_is_copied_from_its_download_folder(tmp_path, exported, monkeypatch):
    import tensorflow_hub as hub

    from seqvision.backbone_layers import backbone_files_root, copy_saved_models_into_run

    url, load = "https://tfhub.dev/example/feature_vector/1", hub.load
    monkeypatch.setattr(hub, "resolve", lambda handle: str(exported[1]) if handle == url else 1 / 0)
    monkeypatch.setattr(hub, "load", lambda handle, **kwargs: load(hub.resolve(handle) if handle == url else handle,
                                                                    **kwargs))
    backbone = build_backbone("mobilenet", IMG, hub_handle=url)
    assert copy_saved_models_into_run(backbone, tmp_path / "run") == ["backbone/hub_features"]
    assert backbone.get_layer("hub_features").get_config()["handle"] == "backbone/hub_features"
    assert (tmp_path / "run" / "backbone" / "hub_features" / "saved_model.pb").exists()
    backbone.save(tmp_path / "run" / "backbone.keras")
    monkeypatch.setattr(hub, "resolve", lambda handle: 1 / 0)  # offline: the URL is never asked for again
    with backbone_files_root(tmp_path / "run"):  # as the run loader resolves it
        loaded = keras.models.load_model(tmp_path / "run" / "backbone.keras")
    frames = np.random.default_rng(3).integers(0, 256, (2, IMG, IMG, 3)).astype("float32")
    np.testing.assert_allclose(loaded(frames), backbone(frames), rtol=1e-5, atol=1e-6)


def test_a_keras_file_backbone_is_saved_inside_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQVISION_CACHE_DIR", str(tmp_path / "cache"))
    images = keras.Input((48, 48, 3))
    features = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(6, 3, activation="relu")(images))
    keras.Model(images, features).save(tmp_path / "features.keras")
    frames = np.random.default_rng(1).integers(0, 256, (2, IMG, IMG, 3)).astype("float32")
    backbone = build_backbone("mobilenet", IMG, hub_handle=str(tmp_path / "features.keras"))
    inner = keras.models.load_model(tmp_path / "features.keras")
    expected = inner(keras.layers.Resizing(48, 48)(frames / 255.0))
    np.testing.assert_allclose(backbone(frames), expected, rtol=1e-5, atol=1e-6)

    data = _write_clips(tmp_path / "data")
    result = _invoke("train", data, "--out", tmp_path / "run", "--backbone", "mobilenet", "--hub-handle",
                     tmp_path / "features.keras", *TRAIN, "--epochs", "2", "--fine-tune-at", "1")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "run" / "backbone").exists()  # model.keras holds the weights
    # Unlike a SavedModel, a .keras model can be fine-tuned: its convolution trained in epoch 2.
    assert json.loads((tmp_path / "run" / "best.json").read_text())["phase"] == "finetune"
    tuned = keras.models.load_model(tmp_path / "run" / "model.keras").get_layer("frame_features").layer
    kernel = next(w for w in tuned.weights if "kernel" in w.path)
    assert np.abs(np.asarray(kernel) - np.asarray(inner.layers[1].kernel)).max() > 0
    clips = sorted(str(p) for p in data.rglob("*.avi"))
    before = _predict(tmp_path / "run", clips)
    (tmp_path / "features.keras").unlink()
    np.testing.assert_allclose(_predict(tmp_path / "run", clips), before, atol=1e-6)


def test_a_savedmodel_that_does_not_map_images_to_vectors_is_a_clear_error(tmp_path):
    data = _write_clips(tmp_path / "data", per_label=1)
    a, b = keras.Input((24, 24, 3)), keras.Input((24, 24, 3))
    keras.Model(a, keras.layers.Conv2D(4, 3)(a)).export(str(tmp_path / "feature_map"), verbose=False)
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Add()([a, b]))
    keras.Model([a, b], pooled).export(str(tmp_path / "two_inputs"), verbose=False)
    for name, found in (("feature_map", "give shape (1, 22, 22, 4)"), ("two_inputs", "takes 2 inputs")):
        result = _invoke("train", data, "--out", tmp_path / "run", "--backbone", "mobilenet",
                         "--hub-handle", tmp_path / name, *TRAIN)
        assert result.exit_code == 1, result.output
        assert f"{tmp_path / name}: no signature maps images [B, H, W, 3] to vectors [B, D]" in result.output
        assert found in result.output
        assert not (tmp_path / "run").exists()


def test_efficientnetv2b0_trains_from_its_spec(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQVISION_CACHE_DIR", str(tmp_path / "cache"))
    data = _write_clips(tmp_path / "data")
    result = _invoke("train", data, "--out", tmp_path / "run", "--backbone", "efficientnetv2b0", "--weights", "none",
                     *TRAIN)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "head.keras").exists()  # frozen: the head trained on cached embeddings
    probs = _predict(tmp_path / "run", sorted(str(p) for p in data.rglob("*.avi")))
    assert probs.shape == (4, 2) and np.isfinite(probs).all()


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_each_spec_builds_and_maps_pixels_to_vectors(name):
    spec = BACKBONES[name]
    backbone = build_backbone(name, IMG, **({"weights": None} if "weights" in spec.options else {}))
    pixels = np.random.default_rng(2).integers(0, 256, (2, IMG, IMG, 3)).astype("float32")
    features = np.asarray(backbone(pixels))
    assert features.shape == (2, backbone.output_shape[-1]) and np.isfinite(features).all()
    assert features.std() > 0
    # The spec's pixel range is what the network sees: 0 and 255 map to its ends.
    if spec.pixel_range == (0, 255):
        assert not any(layer.name == "scale" for layer in backbone.layers)
    else:
        ends = np.asarray(backbone.get_layer("scale")(np.array([[0.0, 255.0]])))
        np.testing.assert_allclose(ends[0], spec.pixel_range, atol=1e-6)


def test_imagenet_weights_are_saved_inside_model_keras(tmp_path, monkeypatch):
    """A run from ``--weights imagenet`` (here the same weights from a file) needs no download to load."""
    if not IMAGENET_WEIGHTS.exists():
        pytest.skip(f"real ImageNet MobileNetV2 weights not found at {IMAGENET_WEIGHTS.resolve()}")
    from seqvision.model_files import load_model_file
    from seqvision.models import build_video_classifier

    backbone = build_backbone("mobilenet", IMG, weights=str(IMAGENET_WEIGHTS))
    build_video_classifier(backbone, 2, IMG, units=4).save(tmp_path / "model.keras")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty_keras_home"))  # nothing to download from
    loaded = load_model_file(tmp_path / "model.keras").get_layer("frame_features").layer
    frames = np.random.default_rng(4).integers(0, 256, (2, IMG, IMG, 3)).astype("float32")
    expected = np.asarray(backbone(frames))
    assert expected.std() > 1e-2  # real features, not a random network's near-zero ones
    np.testing.assert_allclose(loaded(frames), expected, rtol=1e-5, atol=1e-5)


def test_hub_input_range_joins_the_cache_identity_only_when_it_changes_the_features():
    from seqvision.training import VideoTrainConfig, backbone_identity

    plain = backbone_identity(VideoTrainConfig(data_dir="d", backbone="mobilenet", weights="none"))
    assert "hub_input_range" not in plain  # caches and detectors made before the option stay valid
    default = backbone_identity(VideoTrainConfig(data_dir="d", backbone="mobilenet", hub_handle="https://x/y"))
    other = backbone_identity(VideoTrainConfig(data_dir="d", backbone="mobilenet", hub_handle="https://x/y",
                                               hub_input_range="-1,1"))
    assert "hub_input_range" not in default and other["hub_input_range"] == "-1,1"


def test_imagenet_weights_that_cannot_be_downloaded_are_a_clear_error(monkeypatch):
    """Offline, Keras raises a bare Exception("URL fetch failure ..."): the user is told what to pass."""
    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -2] Name or "
                        "service not known")

    monkeypatch.setattr(keras.applications, "MobileNetV2", offline)
    with pytest.raises(ValueError, match="cannot download the ImageNet weights of MobileNetV2.*--weights FILE"):
        build_backbone("mobilenet", 32, weights="imagenet")
    with pytest.raises(Exception, match="URL fetch failure"):  # other failures are not dressed up
        build_backbone("mobilenet", 32, weights=None)
