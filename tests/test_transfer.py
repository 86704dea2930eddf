"""MobileNetV2 from keras.applications and TF Hub, the embedding cache, fine-tuning."""
import json
import shutil
from pathlib import Path

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
from seqvision.training import default_head_l1

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
    backbone = CountingBackbone(build_backbone("cnn", IMG, filters=(4, 8), pooling="gap"))
    cache = get_embedding_cache(clips, backbone, identity, 4, IMG, tmp_path / "cache", batch_frames=8)
    assert backbone.calls >= 2  # 21 valid frames in batches of about 8
    assert backbone.frames == sum(min(4, n) for n in (5, 4, 3)) * 2
    assert cache.features.dtype == np.float16 and cache.features.shape == (6, 1, 4, 8)
    np.testing.assert_array_equal(cache.lengths, [4, 4, 3, 4, 4, 3])
    assert not cache.features[2, :, 3:].any()  # zero after the true length
    assert cache.masks[2].tolist() == [True, True, True, False]
    reference = np.asarray(backbone.model.predict_on_batch(
        np.stack([cv2.cvtColor(cv2.imread(str(clips[0].path / f"{i:06d}.png")), cv2.COLOR_BGR2RGB)
                  for i in sample_uniform_indices(5, 4)]).astype("float32")))
    np.testing.assert_allclose(cache.features[0, 0].astype(np.float32), reference, rtol=2e-3, atol=2e-3)

    again = CountingBackbone(backbone.model)
    reused = get_embedding_cache(clips, again, identity, 4, IMG, tmp_path / "cache")
    assert again.calls == 0 and reused.path == cache.path

    other_size = CountingBackbone(build_backbone("cnn", 24, filters=(4, 8), pooling="gap"))
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
    assert not list(cache.path.parent.glob(f".{cache.path.name}.partial-*"))  # an error cleans up after itself
    (cache.path.parent / f".{cache.path.name}.partial-99999").mkdir()  # what a SIGKILL leaves
    (cache.path.parent / f".{cache.path.name}.partial-99999" / "features.npy").write_bytes(b"\x93NUMPY")
    fresh = CountingBackbone(backbone.model)
    get_embedding_cache(clips, fresh, identity, 4, IMG, tmp_path / "cache")
    assert fresh.calls > 0
    assert not list(cache.path.parent.glob(f".{cache.path.name}.partial-*"))

    # A folder whose arrays do not match its manifest is refused, not trusted.
    key = cache_key(clips, identity, 4, IMG)
    np.save(cache_dir_for(key, tmp_path / "cache") / "lengths.npy", np.zeros(2, np.int32))
    assert open_embedding_cache(cache_dir_for(key, tmp_path / "cache"), key) is None


def test_embedding_cache_rows_follow_paths_and_a_superset_cache_serves_subsets(tmp_path):
    """`seqvision embed` on a whole folder, then `train` on its train/val split in any order: no rebuild."""
    data = _write_frame_clips(tmp_path / "frames")
    clips = find_clips(data)
    identity = {"name": "cnn"}
    backbone = CountingBackbone(build_backbone("cnn", IMG, filters=(4, 8), pooling="gap"))
    whole = get_embedding_cache(clips, backbone, identity, 4, IMG, tmp_path / "cache")
    for subset in (clips[::-1], [clips[4], clips[0], clips[2]]):
        again = CountingBackbone(backbone.model)
        cache = get_embedding_cache(subset, again, identity, 4, IMG, tmp_path / "cache")
        assert again.calls == 0 and cache.path == whole.path
        rows = cache.rows_for(subset)
        assert [cache.clip_paths[r] for r in rows] == [str(c.path.resolve()) for c in subset]
        np.testing.assert_array_equal(cache.features[rows[0]], whole.features[whole.rows_for(subset[:1])[0]])
    # A clip the cache does not hold is refused, never mapped to another clip's row.
    extra = _write_frame_clips(tmp_path / "more", clips_per_label=1)
    with pytest.raises(ValueError, match="not in this cache"):
        whole.rows_for(find_clips(extra))


def test_embedding_cache_with_flow_statistics_stores_them_after_the_embeddings(tmp_path):
    """Each step's row is [embedding, FlowStatistics of the view's frames]; a cache with them never
    serves a request without them, nor the other way round (a subset request included)."""
    from seqvision.datasets import load_clip_views
    from seqvision.flow import FlowStatistics
    from seqvision.sampling import view_offsets

    data = _write_frame_clips(tmp_path / "frames")
    clips = find_clips(data)
    identity = {"name": "cnn"}
    backbone = CountingBackbone(build_backbone("cnn", IMG, filters=(4, 8), pooling="gap"))
    stats = FlowStatistics()
    with_stats = get_embedding_cache(clips, backbone, identity, 4, IMG, tmp_path / "cache", views=2, flow_stats=stats)
    stats_dim = stats.compute_output_shape((None, None, IMG, IMG, 3))[-1]
    assert with_stats.features.shape == (6, 2, 4, 8 + stats_dim)
    row = with_stats.rows_for(clips[:1])[0]
    views, length = load_clip_views(clips[0].path, 4, IMG, view_offsets(2))
    expected = np.asarray(stats(views[:, :length].astype("float32")))
    np.testing.assert_allclose(with_stats.features[row, :, :length, 8:].astype(np.float32), expected, atol=2e-3)
    assert np.abs(expected[:, 1:]).max() > 0.01  # random frames: the statistics are not all zero

    plain = CountingBackbone(backbone.model)
    without = get_embedding_cache(clips[:3], plain, identity, 4, IMG, tmp_path / "cache", views=2)
    assert plain.calls > 0 and without.path != with_stats.path and without.features.shape[-1] == 8
    again = CountingBackbone(backbone.model)
    reused = get_embedding_cache(clips[::-1], again, identity, 4, IMG, tmp_path / "cache", views=2,
                                 flow_stats=FlowStatistics())
    assert again.calls == 0 and reused.path == with_stats.path
    moving = CountingBackbone(backbone.model)
    with_part = get_embedding_cache(clips, moving, identity, 4, IMG, tmp_path / "cache", views=2,
                                    flow_stats=FlowStatistics(moving_part=True))
    assert moving.calls > 0 and with_part.path != with_stats.path  # more descriptors: another cache
    assert with_part.features.shape[-1] == 8 + FlowStatistics(moving_part=True).compute_output_shape(
        (None, None, IMG, IMG, 3))[-1] > with_stats.features.shape[-1]
    steady = CountingBackbone(backbone.model)
    normalised = get_embedding_cache(clips, steady, identity, 4, IMG, tmp_path / "cache", views=2,
                                     flow_stats=FlowStatistics(brightness_norm=True))
    assert steady.calls > 0 and normalised.path not in (with_stats.path, with_part.path)  # other statistics
    assert normalised.features.shape == with_stats.features.shape
    affine = CountingBackbone(backbone.model)
    with_affine = get_embedding_cache(clips, affine, identity, 4, IMG, tmp_path / "cache", views=2,
                                      flow_stats=FlowStatistics(moving_part=True, camera_motion="affine"))
    assert affine.calls > 0 and with_affine.path not in (with_stats.path, with_part.path, normalised.path)
    assert with_affine.features.shape == with_part.features.shape


def _cache_with_statistics(tmp_path, **extras):
    """A 2-view cache of small frame clips by a counting cnn, with flow statistics and ``extras``:
    ``(clips, backbone, counting backbone, cache, statistics per step)``."""
    from seqvision.flow import FlowStatistics

    clips = find_clips(_write_frame_clips(tmp_path / "frames"))
    model = build_backbone("cnn", IMG, filters=(4, 8), pooling="gap")
    counting = CountingBackbone(model)
    cache = get_embedding_cache(clips, counting, {"name": "cnn"}, 4, IMG, tmp_path / "cache", views=2,
                                flow_stats=FlowStatistics(), **extras)
    return clips, model, counting, cache, FlowStatistics().compute_output_shape((None, None, IMG, IMG, 3))[-1]


def test_embedding_cache_with_the_change_stream_stores_change_embeddings_between(tmp_path):
    """[frame D, change D, statistics F] per step, as the model orders them; a cache without the
    change stream is another cache."""
    from seqvision.datasets import load_clip_views
    from seqvision.flow import FlowStatistics
    from seqvision.models import FrameChange
    from seqvision.sampling import view_offsets

    clips, model, counting, cache, stats_dim = _cache_with_statistics(tmp_path, change_stream=True)
    assert cache.features.shape == (6, 2, 4, 16 + stats_dim)
    views, length = load_clip_views(clips[1].path, 4, IMG, view_offsets(2))
    row = cache.rows_for(clips[1:2])[0]
    for view in range(2):
        frames = views[view, :length].astype("float32")
        expected = np.concatenate([model.predict(frames, verbose=0),
                                   model.predict(np.asarray(FrameChange()(frames[None]))[0], verbose=0)], -1)
        np.testing.assert_allclose(cache.features[row, view, :length, :16].astype(np.float32), expected, atol=2e-3)
    plain = CountingBackbone(model)
    other = get_embedding_cache(clips, plain, {"name": "cnn"}, 4, IMG, tmp_path / "cache", views=2,
                                flow_stats=FlowStatistics())
    assert plain.calls > 0 and other.path != cache.path and other.features.shape[-1] == 8 + stats_dim
    assert counting.frames == 2 * plain.frames  # each frame and its change image, in the same batches


def test_a_second_builder_waits_for_the_first_and_reuses_its_cache(tmp_path):
    import threading

    from seqvision.embeddings import _build_lock, build_embedding_cache

    data = _write_frame_clips(tmp_path / "frames", clips_per_label=2)
    clips = find_clips(data)
    identity = {"name": "cnn"}
    model = build_backbone("cnn", IMG, filters=(4, 8), pooling="gap")
    path = cache_dir_for(cache_key(clips, identity, 4, IMG), tmp_path / "cache")
    waiting = CountingBackbone(model)
    with _build_lock(path):  # this thread is the first builder
        second = threading.Thread(target=get_embedding_cache, args=(clips, waiting, identity, 4, IMG,
                                                                    tmp_path / "cache"))
        second.start()
        second.join(timeout=1.0)
        assert second.is_alive()  # blocked on the lock, not building a second copy
        build_embedding_cache(clips, model, identity, 4, IMG, path, progress=False)
    second.join(timeout=60)
    assert not second.is_alive() and waiting.calls == 0


def test_train_with_the_change_stream_then_evaluate_and_refuse_it_for_the_cnn(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQVISION_CACHE_DIR", str(tmp_path / "cache"))
    data = _write_frame_clips(tmp_path / "frames", clips_per_label=4)
    runner = CliRunner()
    run = tmp_path / "run"
    result = runner.invoke(main, ["train", str(data), "--out", str(run), "--backbone", "mobilenet", "--weights", "none",
                                  "--img-size", str(IMG), "--seq-len", "4", "--epochs", "1", "--change-stream"])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "config.json").read_text())["change_stream"] is True
    from seqvision import load_run

    model = load_run(run).model
    assert {"frame_change", "flow_statistics"} <= {layer.name for layer in model.layers}
    manifest = json.loads(next((tmp_path / "cache" / "embeddings").glob("*/manifest.json")).read_text())
    assert manifest["change_gain"] == 3.0 and manifest["embedding_dim"] == model.get_layer(
        "features_and_flow_statistics").output.shape[-1]
    _evaluates_and_the_cnn_refuses(runner, run, data, tmp_path, "--change-stream",
                                   "change stream is for frozen pretrained backbones")


def _evaluates_and_the_cnn_refuses(runner, run, data, tmp_path, flag: str, refusal: str) -> None:
    """``evaluate`` scores the 8 clips of ``data`` with the ``run``; ``train --backbone cnn FLAG`` stops with
    ``refusal`` before writing a model, without a traceback."""
    result = runner.invoke(main, ["evaluate", str(run), str(data), "--json", "--views", "2"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n"] == 8
    refused = runner.invoke(main, ["train", str(data), "--out", str(tmp_path / "cnn"), flag,
                                   "--backbone", "cnn", "--img-size", str(IMG), "--seq-len", "4", "--epochs", "1"])
    assert refused.exit_code != 0 and refusal in refused.output
    assert "Traceback" not in refused.output and not (tmp_path / "cnn" / "model.keras").exists()


@pytest.mark.parametrize("option, flags, value", [("moving_part", ["--moving-part"], True),
                                                  ("brightness_norm", ["--brightness-norm"], True),
                                                  ("camera_motion", ["--moving-part", "--camera-motion", "affine"],
                                                   "affine")])
def test_embed_and_train_with_a_flow_statistics_option_share_one_cache_and_evaluate(tmp_path, monkeypatch, option,
                                                                                    flags, value):
    flag = flags[0]
    monkeypatch.setenv("SEQVISION_CACHE_DIR", str(tmp_path / "cache"))
    data = _write_frame_clips(tmp_path / "frames", clips_per_label=4)
    runner = CliRunner()
    size = ["--weights", "none", "--img-size", str(IMG), "--seq-len", "4"]
    result = runner.invoke(main, ["embed", str(data), "--views", "4", *flags, *size])
    assert result.exit_code == 0, result.output
    cache = Path(result.stdout.strip().splitlines()[-1])
    built = (cache / "manifest.json").stat().st_mtime_ns
    run = tmp_path / "run"
    result = runner.invoke(main, ["train", str(data), "--out", str(run), "--backbone", "mobilenet", *size,
                                  "--epochs", "1", *flags])
    assert result.exit_code == 0, result.output
    assert [p.parent for p in (tmp_path / "cache" / "embeddings").glob("*/manifest.json")] == [cache]
    assert (cache / "manifest.json").stat().st_mtime_ns == built  # reused, not rebuilt
    manifest = json.loads((cache / "manifest.json").read_text())
    from seqvision import load_run

    model = load_run(run).model
    assert manifest["flow_stats"][option] == value
    assert manifest["embedding_dim"] == model.get_layer("features_and_flow_statistics").output.shape[-1]
    assert getattr(model.get_layer("flow_statistics"), option) == value
    result = runner.invoke(main, ["evaluate", str(run), str(data), "--json", "--views", "2"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n"] == 8
    # Without flow statistics there is nothing for the option to change: refused, not ignored.
    for args in (["embed", str(data), flag, "--no-flow-stats", *size],
                 ["train", str(data), "--out", str(tmp_path / "cnn"), "--backbone", "cnn", flag,
                  "--img-size", str(IMG), "--seq-len", "4", "--epochs", "1"]):
        refused = runner.invoke(main, args)
        assert refused.exit_code != 0 and f"{flag} changes the flow statistics" in refused.output, args
        assert "Traceback" not in refused.output
    assert not (tmp_path / "cnn" / "model.keras").exists()
    if option == "camera_motion":  # the moving part's option without the moving part: refused too
        refused = runner.invoke(main, ["embed", str(data), "--camera-motion", "affine", *size])
        assert refused.exit_code != 0 and "--camera-motion affine changes the moving part" in refused.output
        assert "Traceback" not in refused.output


@pytest.mark.slow
def test_train_mobilenet_from_weights_and_hub_then_evaluate(tmp_path, saved_mobilenet, monkeypatch):
    monkeypatch.setenv("SEQVISION_CACHE_DIR", str(tmp_path / "cache"))
    data = _write_frame_clips(tmp_path / "frames", clips_per_label=5)
    runner = CliRunner()
    common = ["--backbone", "mobilenet", "--img-size", str(IMG), "--seq-len", "4", "--epochs", "2",
              "--batch-size", "4", "--val-split", "0.2"]
    # the default head of a frozen backbone (trend), and the LSTM asked for by name
    # the refit default (head trained again on training + validation clips), and --no-refit
    for name, source, head, refit in (("weights", ["--weights", "none"], "trend", True),
                                      ("hub", ["--hub-handle", str(saved_mobilenet / "hub_savedmodel"), "--head",
                                               "lstm", "--no-refit", "--head-l1", "0"], "lstm", False)):
        run = tmp_path / f"run_{name}"
        result = runner.invoke(main, ["train", str(data), "--out", str(run), *common, *source])
        assert result.exit_code == 0, result.output
        assert (run / "model.keras").exists() and (run / "head.keras").exists()
        config = json.loads((run / "config.json").read_text())
        assert config["backbone"] == "mobilenet" and config["head"] == head
        assert config["flow_stats"] is True and config["brightness_norm"] is True  # the default of a frozen backbone
        assert config["head_l1"] == (default_head_l1("mobilenet") if refit else 0.0)
        assert len(keras.models.load_model(run / "head.keras").losses) == (1 if refit else 0)  # the L1 penalty
        from seqvision import load_run

        model = load_run(run).model
        assert "flow_statistics" in {layer.name for layer in model.layers}
        best = json.loads((run / "best.json").read_text())
        assert "val_loss" in best  # the figures of the run that held clips out
        validated = _head_weights(keras.models.load_model(run / "head.keras"))
        if refit:
            assert best["refit"]["clips"] == 10 and "val_loss" not in best["refit"]  # every clip, none held out
            refitted = _head_weights(keras.models.load_model(run / "head_refit.keras"))
            assert _same_weights(_head_weights(model, refitted), refitted)
            assert not _same_weights(refitted, validated)
            assert len((run / "history_head_refit.csv").read_text().splitlines()) == 1 + 2  # header + epochs
        else:
            assert "refit" not in best and not (run / "head_refit.keras").exists()
            assert _same_weights(_head_weights(model, validated), validated)
        head_layers = {type(layer).__name__ for layer in keras.models.load_model(run / "head.keras").layers}
        assert ("MaskedTrendPooling" in head_layers) == (head == "trend")
        result = runner.invoke(main, ["evaluate", str(run), str(data), "--json"])
        assert result.exit_code == 0, result.output
        metrics = json.loads(result.stdout)
        assert metrics["n"] == 10 and 0.0 <= metrics["accuracy"] <= 1.0
    def caches_on_disk():  # hidden entries are lock files
        return {p: p.stat().st_mtime for p in (tmp_path / "cache" / "embeddings").iterdir()
                if not p.name.startswith(".")}

    caches = list(caches_on_disk())
    assert len(caches) == 2  # one per backbone source

    # A second run with another --out reuses the cache: no new cache folder, same files.
    before = caches_on_disk()
    result = runner.invoke(main, ["train", str(data), "--out", str(tmp_path / "run_again"), *common,
                                  "--hub-handle", str(saved_mobilenet / "hub_savedmodel")])
    assert result.exit_code == 0, result.output
    assert caches_on_disk() == before


def _head_weights(model, like=None) -> dict:
    """``{layer name: weights}`` of ``model``'s layers that have weights (only those named in ``like``)."""
    names = like.keys() if like is not None else [layer.name for layer in model.layers if layer.weights]
    return {name: model.get_layer(name).get_weights() for name in names}


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(len(a[k]) == len(b[k]) and all(np.array_equal(x, y) for x, y in
                                                                         zip(a[k], b[k])) for k in a)


def test_refit_resumes_after_the_validation_run_without_repeating_it(tmp_path, monkeypatch):
    import seqvision.training as training

    monkeypatch.setenv("SEQVISION_CACHE_DIR", str(tmp_path / "cache"))
    data = _write_frame_clips(tmp_path / "frames", clips_per_label=5)
    run = tmp_path / "run"
    config = training.VideoTrainConfig(data_dir=str(data), backbone="mobilenet", weights="none", img_size=IMG,
                                       seq_len=4, epochs=2, batch_size=4, units=8)

    class Killed(Exception):
        pass

    fit = training.fit_classifier
    phases = []

    def killed_at_refit(*args, phase="", **kwargs):
        phases.append(phase)
        if phase == "head_refit":  # what a kill after a refit epoch leaves behind: a backup
            (run / "backup_head_refit").mkdir()
            (run / "backup_head_refit" / "training_metadata.json.tmp").write_text("{}")
            raise Killed()
        return fit(*args, phase=phase, **kwargs)

    monkeypatch.setattr(training, "fit_classifier", killed_at_refit)
    with pytest.raises(Killed):
        training.train_video(config, run)
    assert phases == ["head", "head_refit"]
    assert json.loads((run / "best.json").read_text())["phase"] == "head_validation"
    history = (run / "history_head.csv").read_text()

    def counted(*args, phase="", **kwargs):
        phases.append(phase)
        return fit(*args, phase=phase, **kwargs)

    phases.clear()
    monkeypatch.setattr(training, "fit_classifier", counted)
    best = training.train_video(config, run)
    assert phases == ["head_refit"]  # the validation run is not repeated
    assert best["phase"] == "head" and best["refit"]["clips"] == 10 and "val_loss" in best
    assert (run / "history_head.csv").read_text() == history


@pytest.mark.slow
def test_fine_tuning_trains_backbone_layers_and_resumes_unfrozen(tmp_path, monkeypatch):
    import seqvision.training as training

    monkeypatch.setenv("SEQVISION_CACHE_DIR", str(tmp_path / "cache"))
    data = _write_frame_clips(tmp_path / "frames", clips_per_label=5)
    run = tmp_path / "run"
    config = training.VideoTrainConfig(data_dir=str(data), backbone="mobilenet", weights="none", img_size=IMG,
                                       seq_len=4, epochs=3, fine_tune_at=1, unfreeze=5, batch_size=4, units=8)

    class Killed(Exception):
        pass

    fit = training.fit_classifier

    def killed_at_fine_tuning(*args, phase="", **kwargs):
        if phase == "finetune":  # what a kill leaves behind: the head's model and a fine-tuning backup
            (run / "backup_finetune").mkdir()
            (run / "backup_finetune" / "training_metadata.json.tmp").write_text("{}")
            raise Killed()
        return fit(*args, phase=phase, **kwargs)

    monkeypatch.setattr(training, "fit_classifier", killed_at_fine_tuning)
    with pytest.raises(Killed):
        training.train_video(config, run)
    assert json.loads((run / "best.json").read_text())["phase"] == "head"
    head_base = _base_model(keras.models.load_model(run / "model.keras").get_layer("frame_features").layer)

    monkeypatch.setattr(training, "fit_classifier", fit)
    best = training.train_video(config, run)  # resumes: the head is done, fine-tuning runs
    assert best["phase"] == "finetune" == json.loads((run / "best.json").read_text())["phase"]
    assert (run / "history_finetune.csv").exists()
    final_base = _base_model(keras.models.load_model(run / "model.keras").get_layer("frame_features").layer)
    changed = [layer.name for layer, before in zip(final_base.layers, head_base.layers)
               if any(not np.array_equal(a, b) for a, b in zip(layer.get_weights(), before.get_weights()))]
    top = [layer.name for layer in final_base.layers[-5:] if layer.weights
           and not isinstance(layer, keras.layers.BatchNormalization)]
    assert top and set(top) <= set(changed)  # the unfrozen top layers trained...
    assert set(changed) <= set(top)  # ...and nothing else did: BatchNorm statistics and lower layers kept


def test_embedding_cache_with_the_clip_change_stores_each_views_vector_at_every_valid_step(tmp_path):
    """[frame D, statistics F, clip change D] per step; the clip-change vector is the backbone's embedding of
    ClipChange of that view's frames, the same at every valid step; a cache without it is another cache."""
    from seqvision.datasets import load_clip_views
    from seqvision.flow import FlowStatistics
    from seqvision.models import ClipChange
    from seqvision.sampling import view_offsets

    clips, model, counting, cache, stats_dim = _cache_with_statistics(tmp_path, clip_change=True)
    assert cache.features.shape == (6, 2, 4, 8 + stats_dim + 8) and cache.manifest["clip_change"] is True
    views, length = load_clip_views(clips[1].path, 4, IMG, view_offsets(2))
    row = cache.rows_for(clips[1:2])[0]
    for view in range(2):
        frames = views[view:view + 1, :length].astype("float32")
        image = np.asarray(ClipChange()(frames, np.ones((1, length), bool)))
        expected = model.predict(image, verbose=0)[0]
        got = cache.features[row, view, :length, -8:].astype(np.float32)
        np.testing.assert_allclose(got, np.repeat(expected[None], length, axis=0), atol=2e-3)
    plain = CountingBackbone(model)
    other = get_embedding_cache(clips, plain, {"name": "cnn"}, 4, IMG, tmp_path / "cache", views=2,
                                flow_stats=FlowStatistics())
    assert plain.calls > 0 and other.path != cache.path and other.features.shape[-1] == 8 + stats_dim
    distinct_views = 0  # a clip of seq_len frames or fewer has one view, embedded once
    for clip in clips:
        views, _ = load_clip_views(clip.path, 4, IMG, view_offsets(2))
        distinct_views += 1 if np.array_equal(views[0], views[1]) else 2
    assert counting.frames == plain.frames + distinct_views  # one more image per view, in the same batches


def test_train_with_the_clip_change_then_evaluate_and_refuse_it_for_the_cnn(tmp_path, monkeypatch):
    """The head's frozen projection is fitted on the training clips' cached vectors only (not the validation
    clips'); evaluate works; the cnn refuses the option before writing anything."""
    from seqvision import load_run
    from seqvision.models import fit_clip_change_projection

    monkeypatch.setenv("SEQVISION_CACHE_DIR", str(tmp_path / "cache"))
    data = _write_frame_clips(tmp_path / "frames", clips_per_label=4)
    val = _write_frame_clips(tmp_path / "val", clips_per_label=2)
    for clip in [c for c in val.glob("*/*") if c.is_dir()]:  # other recording groups than the training clips
        clip.rename(clip.with_name(clip.name.replace("_g0", "_g1")))
    runner = CliRunner()
    run = tmp_path / "run"
    result = runner.invoke(main, ["train", str(data), "--out", str(run), "--backbone", "mobilenet", "--weights", "none",
                                  "--img-size", str(IMG), "--seq-len", "4", "--epochs", "1", "--val-dir", str(val),
                                  "--train-views", "2", "--clip-change"])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "config.json").read_text())["clip_change"] is True
    model = load_run(run).model
    assert {"clip_change", "clip_change_pca", "flow_statistics"} <= {layer.name for layer in model.layers}
    cache = open_embedding_cache(next((tmp_path / "cache" / "embeddings").glob("*/manifest.json")).parent)
    assert cache.manifest["clip_change"] is True
    dim = model.get_layer("frame_features").output.shape[-1]
    train_rows = cache.rows_for(find_clips(data))
    assert len(train_rows) == 8 and cache.features.shape[0] == 12  # the validation clips are cached too
    vectors = np.asarray(cache.features[train_rows, :, 0, -dim:], np.float32).reshape(-1, dim)
    kernel, bias = fit_clip_change_projection(vectors)
    np.testing.assert_allclose(model.get_layer("clip_change_pca").get_weights()[0], kernel, atol=1e-4)
    np.testing.assert_allclose(model.get_layer("clip_change_pca").get_weights()[1], bias, atol=1e-3)
    every_row, _ = fit_clip_change_projection(np.asarray(cache.features[:, :, 0, -dim:], np.float32).reshape(-1, dim))
    assert np.abs(every_row - kernel).max() > 1e-3  # a fit that saw the validation clips differs
    _evaluates_and_the_cnn_refuses(runner, run, data, tmp_path, "--clip-change",
                                   "--clip-change is for frozen pretrained backbones")
