import keras
import numpy as np
import pytest

from seqvision.backbones import BACKBONES, build_backbone
from seqvision.models import (TEMPORAL_HEADS, FrameEncoder, MaskedTrendPooling, TemporalDifference,
                              build_sequence_classifier, build_video_classifier)


def _padded(x, extra, fill):
    pad = np.full((x.shape[0], extra, *x.shape[2:]), fill, x.dtype)
    mask = np.zeros((x.shape[0], x.shape[1] + extra), bool)
    mask[:, : x.shape[1]] = True
    return np.concatenate([x, pad], axis=1), mask


def _assert_padding_changes_nothing_and_saves(model, frames, unpadded, extra: int, path):
    """``model`` on ``frames`` right-padded by ``extra`` white steps gives ``unpadded`` (and not without the mask,
    so the check can fail); saved to ``path`` and loaded, the same. Returns the loaded model."""
    padded, mask = _padded(frames, extra, 255.0)
    np.testing.assert_allclose(model.predict({"frames": padded, "mask": mask}, verbose=0), unpadded, atol=1e-5)
    unmasked = model.predict({"frames": padded, "mask": np.ones_like(mask)}, verbose=0)
    assert np.abs(unmasked - unpadded).max() > 1e-4  # the mask matters, so the test can fail
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict({"frames": padded, "mask": mask}, verbose=0), unpadded, atol=1e-5)
    return loaded


@pytest.mark.parametrize("bidirectional,num_layers,motion,feature_diff,pooling", [
    (False, 1, "frames", False, "gap"), (True, 1, "frames", False, "grid"), (False, 2, "frames", False, "gap"),
    (False, 1, "diff", True, "grid"), (True, 2, "diff", True, "gap"), (False, 1, "flow", True, "grid"),
    (True, 2, "flow", False, "gap"), (False, 1, "two_stream", True, "grid")])
def test_padded_masked_video_equals_unpadded(bidirectional, num_layers, motion, feature_diff, pooling):
    keras.utils.set_random_seed(1)
    side = 16 if motion in ("flow", "two_stream") else 32
    backbone = build_backbone("cnn", side, filters=(8, 16), channels=3 if motion == "frames" else 6, pooling=pooling)
    # two_stream: its frames CNN on frames area-downscaled to 16 px
    frames_backbone = build_backbone("cnn", 16, model_name="cnn_frames", filters=(8, 16), channels=3, pooling=pooling)
    model = build_video_classifier(backbone, 3, 32, bidirectional=bidirectional, num_layers=num_layers, units=16,
                                   motion=motion, feature_diff=feature_diff,
                                   frames_backbone=frames_backbone if motion == "two_stream" else None)
    model.compile()
    frames = np.random.default_rng(0).integers(0, 256, (2, 7, 32, 32, 3)).astype("float32")
    # Padding filled with bright pixels: a mask inferred from pixel values would get this wrong.
    padded, mask = _padded(frames, 5, 255.0)
    unpadded = model.predict({"frames": frames, "mask": np.ones((2, 7), bool)}, verbose=0)
    masked = model.predict({"frames": padded, "mask": mask}, verbose=0)
    np.testing.assert_allclose(masked, unpadded, atol=1e-5)
    # Without the mask the padding changes the answer, so the test can fail.
    unmasked = model.predict({"frames": padded, "mask": np.ones_like(mask)}, verbose=0)
    assert np.abs(unmasked - unpadded).max() > 1e-4


def test_strided_stem_runs_the_cnn_at_half_the_side_and_keeps_masks_exact():
    plain = build_backbone("cnn", 16, filters=(8, 16), channels=3)
    strided = build_backbone("cnn", 32, model_name="cnn_frames", filters=(8, 16), channels=3, stem_stride=2)
    assert strided.output_shape == plain.output_shape
    assert strided.get_layer("conv0").strides == (2, 2) and strided.get_layer("conv0").kernel_size == (5, 5)
    assert strided.get_layer("conv1").input.shape[1:3] == plain.get_layer("conv1").input.shape[1:3] == (8, 8)
    # As the frames CNN of a two-stream model (no pooling of the frames before it): padding stays inert.
    keras.utils.set_random_seed(2)
    model = build_video_classifier(build_backbone("cnn", 16, filters=(8, 16), channels=6), 3, 32, units=8,
                                   motion="two_stream", feature_diff=True, frames_backbone=strided)
    assert "appearance_pool" not in [layer.name for layer in model.layers]
    frames = np.random.default_rng(3).integers(0, 256, (2, 6, 32, 32, 3)).astype("float32")
    padded, mask = _padded(frames, 4, 255.0)
    unpadded = model.predict({"frames": frames, "mask": np.ones((2, 6), bool)}, verbose=0)
    np.testing.assert_allclose(model.predict({"frames": padded, "mask": mask}, verbose=0), unpadded, atol=1e-5)


@pytest.mark.parametrize("head", sorted(TEMPORAL_HEADS))
def test_sequence_classifier_mask_and_save_roundtrip(tmp_path, head):
    model = build_sequence_classifier(6, 4, input_name="keypoints", head=head, units=8)
    x = np.random.default_rng(1).normal(size=(3, 9, 6)).astype("float32")
    padded, mask = _padded(x, 4, 7.0)
    ref = model.predict({"keypoints": x, "mask": np.ones((3, 9), bool)}, verbose=0)
    out = model.predict({"keypoints": padded, "mask": mask}, verbose=0)
    np.testing.assert_allclose(out, ref, atol=1e-5)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict({"keypoints": padded, "mask": mask}, verbose=0), out, atol=1e-6)


def test_frame_encoder_matches_per_frame_calls_and_saves(tmp_path):
    backbone = build_backbone("cnn", 24, filters=(4, 8), pooling="gap")
    encoder = FrameEncoder(backbone)
    frames = np.random.default_rng(2).integers(0, 256, (2, 5, 24, 24, 3)).astype("float32")
    batched = np.asarray(encoder(frames))
    assert batched.shape == (2, 5, 8)
    per_frame = np.stack([np.asarray(backbone(frames[:, t])) for t in range(5)], axis=1)
    np.testing.assert_allclose(batched, per_frame, atol=1e-5)
    model = build_video_classifier(backbone, 2, 24)
    model.save(tmp_path / "v.keras")
    loaded = keras.models.load_model(tmp_path / "v.keras")
    inputs = {"frames": frames, "mask": np.ones((2, 5), bool)}
    np.testing.assert_allclose(loaded.predict(inputs, verbose=0), model.predict(inputs, verbose=0), atol=1e-6)


@pytest.mark.parametrize("pooling,dim", [("gap", 16), ("grid", 128)])
def test_cnn_backbone_pooling_is_position_aware(pooling, dim):
    backbone = build_backbone("cnn", 32, filters=(8, 16), pooling=pooling)
    assert backbone.output_shape == (None, dim)
    left = np.zeros((1, 32, 32, 3), "float32")
    left[:, 10:20, 2:10] = 255
    right = left[:, :, ::-1].copy()
    # Coordinate channels let pooled features tell a shape on the left from one on the right.
    assert np.abs(np.asarray(backbone(left)) - np.asarray(backbone(right))).max() > 1e-3


def test_trend_pooling_gives_mean_slope_and_change_of_valid_steps_only():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 6, 3)).astype("float32")
    lengths = [6, 4]
    mask = np.arange(6)[None] < np.array(lengths)[:, None]
    x[1, 4:] = 50.0  # padding: must not count
    out = np.asarray(MaskedTrendPooling()(x, mask=mask))
    assert out.shape == (2, 9)
    for i, length in enumerate(lengths):
        v = x[i, :length]
        time = np.linspace(-1, 1, length)
        slope = ((time[:, None] * (v - v.mean(0))).sum(0)) / (time ** 2).sum()
        expected = np.concatenate([v.mean(0), slope, np.abs(np.diff(v, axis=0)).mean(0)])
        np.testing.assert_allclose(out[i], expected, rtol=1e-5, atol=1e-5)
    reversed_out = np.asarray(MaskedTrendPooling()(x[:1, ::-1], mask=mask[:1]))
    np.testing.assert_allclose(reversed_out[0, 3:6], -out[0, 3:6], atol=1e-5)  # reversal flips the trend only
    np.testing.assert_allclose(reversed_out[0, :3], out[0, :3], atol=1e-5)
    np.testing.assert_allclose(reversed_out[0, 6:], out[0, 6:], atol=1e-5)
    single = np.asarray(MaskedTrendPooling()(x[:1], mask=np.arange(6)[None] < 1))
    np.testing.assert_allclose(single[0], np.concatenate([x[0, 0], np.zeros(6)]), atol=1e-6)


def test_trend_head_with_feature_differences_ignores_padding_and_saves(tmp_path):
    keras.utils.set_random_seed(5)
    model = build_sequence_classifier(5, 3, head="trend", feature_diff=True)
    x = np.random.default_rng(6).normal(size=(3, 8, 5)).astype("float32")
    padded, mask = _padded(x, 6, -9.0)
    ref = model.predict({"features": x, "mask": np.ones((3, 8), bool)}, verbose=0)
    out = model.predict({"features": padded, "mask": mask}, verbose=0)
    np.testing.assert_allclose(out, ref, atol=1e-5)
    unmasked = model.predict({"features": padded, "mask": np.ones_like(mask)}, verbose=0)
    assert np.abs(unmasked - ref).max() > 1e-4
    model.save(tmp_path / "trend.keras")
    loaded = keras.models.load_model(tmp_path / "trend.keras")
    np.testing.assert_allclose(loaded.predict({"features": padded, "mask": mask}, verbose=0), out, atol=1e-6)


def test_head_l1_penalty_leans_on_the_informative_input_and_saves(tmp_path):
    """Class = the sign of input 0's time trend; 39 inputs of noise. With the L1 penalty on the output
    weights, the trained trend head puts most of its weight on that one input's trend; without it,
    the noise inputs get most of it. The penalty is a model loss and survives saving."""
    rng = np.random.default_rng(7)
    n, steps, dim = 96, 8, 40
    x = rng.normal(size=(n, steps, dim)).astype("float32")
    y = rng.integers(0, 2, n)
    x[:, :, 0] += (2 * y - 1)[:, None] * np.linspace(-1.5, 1.5, steps)
    mask = np.ones((n, steps), bool)

    def weight_share_of_the_trend(l1):
        keras.utils.set_random_seed(8)
        model = build_sequence_classifier(dim, 2, head="trend", l1=l1)
        model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
        model.fit({"features": x, "mask": mask}, y, epochs=40, batch_size=16, verbose=0)
        weight = np.abs(model.get_layer("head_probs").get_weights()[0]).sum(axis=1)  # [3 * dim]
        return weight[dim] / weight.sum(), model  # the trend block starts at dim

    share_l1, model = weight_share_of_the_trend(0.1)
    share_plain, _ = weight_share_of_the_trend(0.0)
    assert share_l1 > 0.5 > share_plain
    assert len(model.losses) == 1
    model.save(tmp_path / "l1.keras")
    loaded = keras.models.load_model(tmp_path / "l1.keras")
    assert len(loaded.losses) == 1
    np.testing.assert_allclose(float(loaded.losses[0]), float(model.losses[0]), rtol=1e-6)


def test_unknown_backbone_and_head_name_the_choices():
    with pytest.raises(ValueError, match="cnn"):
        build_backbone("resnet", 32)
    with pytest.raises(ValueError, match="lstm"):
        build_sequence_classifier(4, 2, head="gru")
    assert "cnn" in BACKBONES


def test_temporal_difference_appends_change_since_previous_step():
    x = np.arange(2 * 4 * 3, dtype="float32").reshape(2, 4, 3) ** 2
    out = np.asarray(TemporalDifference()(x))
    assert out.shape == (2, 4, 6)
    np.testing.assert_array_equal(out[..., :3], x)
    np.testing.assert_array_equal(out[:, 0, 3:], 0)
    np.testing.assert_array_equal(out[:, 1:, 3:], x[:, 1:] - x[:, :-1])
    pixels = np.stack([np.zeros((2, 2, 3)), np.full((2, 2, 3), 255.0)])[None].astype("float32")  # [1, 2, 2, 2, 3]
    shifted = np.asarray(TemporalDifference(scale=0.5, offset=127.5)(pixels))
    np.testing.assert_array_equal(shifted[0, 0, ..., 3:], 127.5)  # no change: mid-grey
    np.testing.assert_array_equal(shifted[0, 1, ..., 3:], 255.0)  # black to white: the top of the range


@pytest.mark.parametrize("motion", ["diff", "flow"])
def test_motion_input_sees_the_direction_of_time(motion):
    """Reversing a clip changes what each step's vector is, not only their order."""
    keras.utils.set_random_seed(3)
    backbone = build_backbone("cnn", 8 if motion == "flow" else 16, filters=(4, 8), channels=6)
    model = build_video_classifier(backbone, 2, 16, motion=motion, units=4)
    encoder = keras.Model(model.inputs, model.get_layer("frame_features").output)
    frames = np.random.default_rng(0).integers(0, 256, (1, 5, 16, 16, 3)).astype("float32")
    mask = np.ones((1, 5), bool)
    forward = np.asarray(encoder({"frames": frames, "mask": mask}))
    backward = np.asarray(encoder({"frames": frames[:, ::-1], "mask": mask}))
    assert np.abs(np.sort(forward[0], axis=0) - np.sort(backward[0], axis=0)).max() > 1e-3


def test_multi_view_prediction_is_the_mean_of_single_views(tmp_path):
    from seqvision.datasets import load_clip_views
    from seqvision.run import predict_views
    from seqvision.sampling import view_offsets

    import cv2

    clip = tmp_path / "clip"
    clip.mkdir()
    rng = np.random.default_rng(0)
    for i in range(20):
        cv2.imwrite(str(clip / f"{i:06d}.png"), rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    keras.utils.set_random_seed(4)
    model = build_video_classifier(build_backbone("cnn", 8, filters=(4, 8), channels=6), 3, 16, units=4,
                                   motion="flow", feature_diff=True)
    frames, length = load_clip_views(clip, 6, 16, view_offsets(3))
    mask = np.tile(np.arange(6) < length, (1, 3, 1))
    averaged = predict_views(model, {"frames": frames[None], "mask": mask})
    singles = [model.predict_on_batch({"frames": load_clip_views(clip, 6, 16, (offset,))[0],
                                       "mask": (np.arange(6) < length)[None]}) for offset in view_offsets(3)]
    np.testing.assert_allclose(averaged, np.mean(singles, axis=0), atol=1e-6)
    assert np.abs(singles[0] - singles[2]).max() > 1e-6  # the views differ, so the mean is not trivial


def _texture_clip(shift_xy, steps=3, side=32, seed=0):
    """Grey texture moving by ``shift_xy`` pixels per step: uint8 ``[1, steps, side, side, 3]``."""
    import cv2

    texture = cv2.GaussianBlur(np.random.default_rng(seed).uniform(0, 255, (side * 2, side * 2)).astype("float32"),
                               (0, 0), 1.5)
    dx, dy = shift_xy
    frames = [texture[16 - t * dy:16 - t * dy + side, 16 - t * dx:16 - t * dx + side] for t in range(steps)]
    return np.repeat(np.stack(frames)[None, ..., None], 3, axis=-1)


@pytest.mark.parametrize("shift_xy", [(1, 0), (-1, 0), (0, 2), (0, -2), (1, -1)])
def test_flow_measures_the_motion_of_a_moving_texture(shift_xy):
    from seqvision.flow import LucasKanadeFlow

    coded = np.asarray(LucasKanadeFlow(stride=2)(_texture_clip(shift_xy)))
    assert coded.shape == (1, 3, 16, 16, 6)
    np.testing.assert_allclose(coded[0, 0], 127.5, atol=1e-3)  # no previous step: no motion
    flow = np.arctanh(coded[0, 1:, 4:-4, 4:-4] / 127.5 - 1)  # tanh coding undone, border left out
    for scale in range(3):
        for measured, true in zip(np.median(flow[..., 2 * scale:2 * scale + 2], axis=(0, 1, 2)), shift_xy):
            assert (np.sign(measured) == np.sign(true) and abs(measured) > 0.3) if true else abs(measured) < 0.25
    # Finest scale, small motion: close to the true shift in pixels.
    assert abs(np.median(flow[..., 0]) - shift_xy[0]) < 0.5 and abs(np.median(flow[..., 1]) - shift_xy[1]) < 0.8


@pytest.mark.parametrize("shape, window", [((3, 16, 16, 5), 5), ((2, 7, 11, 2), 5), ((1, 9, 4, 1), 3)])
def test_window_mean_equals_same_padded_average_pooling(shape, window):
    """The flow's fast neighbourhood mean is average pooling that leaves the padding out."""
    from seqvision.flow import window_mean

    images = np.random.default_rng(1).normal(size=shape).astype("float32")
    expected = keras.ops.average_pool(images, window, 1, padding="same")
    np.testing.assert_allclose(np.asarray(window_mean(images, window)), np.asarray(expected), atol=1e-5)


def test_flow_ignores_which_colour_is_in_front():
    """Flow of a clip and of its negative are the same: the motion, not the looks."""
    from seqvision.flow import LucasKanadeFlow

    clip = _texture_clip((1, 1)).astype("float32")
    layer = LucasKanadeFlow()
    np.testing.assert_allclose(np.asarray(layer(255.0 - clip)), np.asarray(layer(clip)), atol=1e-2)


def test_flow_model_saves_and_loads(tmp_path):
    keras.utils.set_random_seed(5)
    model = build_video_classifier(build_backbone("cnn", 12, filters=(4, 8), channels=6), 2, 24, motion="flow",
                                   units=4)
    model.save(tmp_path / "flow.keras")
    loaded = keras.models.load_model(tmp_path / "flow.keras")
    inputs = {"frames": np.random.default_rng(6).integers(0, 256, (2, 4, 24, 24, 3)).astype("float32"),
              "mask": np.ones((2, 4), bool)}
    np.testing.assert_allclose(loaded.predict(inputs, verbose=0), model.predict(inputs, verbose=0), atol=1e-6)


def _two_stream_classifier(num_classes=3):
    """``[B, 2K]`` -> fused probabilities: stream 0 is the softmax of the first K inputs, stream 1 of the last K."""
    from seqvision.models import StreamFusion

    inputs = keras.Input((2 * num_classes,))
    first = keras.layers.Activation("softmax")(inputs[:, :num_classes])
    second = keras.layers.Activation("softmax")(inputs[:, num_classes:])
    return keras.Model(inputs, StreamFusion(2, seed=0, name="stream_fusion")([first, second]))


def test_stream_fusion_trains_each_stream_alone_and_fuses_with_its_weights(tmp_path):
    model = _two_stream_classifier()
    logits = np.random.default_rng(0).normal(0, 2, (2000, 6)).astype("float32")
    first, second = (keras.ops.convert_to_numpy(keras.ops.softmax(logits[:, i:i + 3])) for i in (0, 3))
    both = first * second / (first * second).sum(1, keepdims=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(logits)), both, atol=1e-5)  # all ones: the product
    # While training each sample is scored by stream 0 alone, stream 1 alone or both, each about a third of the time.
    fused = keras.ops.convert_to_numpy(model(logits, training=True))
    shares = [np.mean(np.all(np.abs(fused - p) < 1e-5, axis=1)) for p in (first, second, both)]
    assert all(0.28 < share < 0.39 for share in shares), shares
    model.get_layer("stream_fusion").stream_weights.assign([0.0, 1.0])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(logits)), second, atol=1e-5)
    model.save(tmp_path / "fused.keras")
    loaded = keras.models.load_model(tmp_path / "fused.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(logits)), second, atol=1e-5)


@pytest.mark.parametrize("informative", [0, 1])
def test_stream_weights_switch_off_a_stream_that_is_wrong_on_held_out_clips(informative):
    import tensorflow as tf

    from seqvision.training import choose_stream_weights

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 60)
    good = 4.0 * np.eye(3)[labels] + rng.normal(0, 0.5, (60, 3))
    confident_noise = 8.0 * np.eye(3)[rng.integers(0, 3, 60)]  # a stream that memorised its training clips
    x = np.concatenate([good, confident_noise] if informative == 0 else [confident_noise, good], 1).astype("float32")
    model = _two_stream_classifier()
    chosen = choose_stream_weights(model, tf.data.Dataset.from_tensor_slices((x, labels)).batch(16))
    assert chosen["stream_weights"] == ([1.0, 0.0] if informative == 0 else [0.0, 1.0])
    predicted = keras.ops.convert_to_numpy(model(x)).argmax(1)
    assert np.mean(predicted == labels) > 0.95
    assert {tuple(c["stream_weights"]) for c in chosen["stream_choices"]} == {(1.0, 0.0), (0.0, 1.0), (1.0, 1.0)}


@pytest.mark.parametrize("head", sorted(TEMPORAL_HEADS))
def test_head_trained_on_embeddings_carries_over_to_the_frame_model(head):
    """What fine-tuning starts from: the frame model with the copied head = the head on the embeddings."""
    from seqvision.training import _copy_head

    keras.utils.set_random_seed(7)
    backbone = build_backbone("cnn", 16, filters=(8,), channels=3, pooling="gap")
    options = dict(units=8, bidirectional=True, head=head, feature_diff=True)
    features_model = build_sequence_classifier(backbone.output_shape[-1], 3, "features", **options)
    rng = np.random.default_rng(8)
    for layer in features_model.layers:  # trained-looking weights, BatchNorm statistics included
        layer.set_weights([rng.normal(size=w.shape).astype("float32") if "variance" not in w.path
                           else rng.uniform(0.5, 2.0, w.shape).astype("float32") for w in layer.weights])
    frame_model = build_video_classifier(backbone, 3, 16, **options)
    _copy_head(features_model, frame_model)
    frames, mask = _padded(rng.integers(0, 256, (2, 5, 16, 16, 3)).astype("float32"), 3, 0.0)
    embeddings = backbone.predict(frames.reshape(-1, 16, 16, 3), verbose=0).reshape(2, 8, -1)
    expected = features_model.predict({"features": embeddings, "mask": mask}, verbose=0)
    np.testing.assert_allclose(frame_model.predict({"frames": frames, "mask": mask}, verbose=0), expected, atol=1e-5)
    assert np.abs(expected - 1 / 3).max() > 1e-3  # the copied weights are not a uniform guess


def _turning_clip(degrees_per_step=0.0, zoom_per_step=0.0, shift_xy=(0, 0), steps=4, side=64, seed=0):
    """A blurred random texture turned, zoomed and shifted about the frame centre a little more each
    step: float32 ``[1, steps, side, side, 3]`` in 0..255."""
    import cv2

    big = side * 2
    texture = cv2.GaussianBlur(np.random.default_rng(seed).uniform(0, 255, (big, big)).astype("float32"), (0, 0), 2.0)
    frames = []
    for t in range(steps):
        warp = cv2.getRotationMatrix2D((big / 2, big / 2), degrees_per_step * t, 1.0 + zoom_per_step * t)
        warp[:, 2] += np.asarray(shift_xy, "float64") * t
        frames.append(cv2.warpAffine(texture, warp, (big, big))[side // 2:side // 2 + side, side // 2:side // 2 + side])
    return np.repeat(np.stack(frames)[None, ..., None], 3, axis=-1)


def test_flow_statistics_tell_direction_turning_and_approach_and_flip_with_time():
    from seqvision.flow import FLOW_STAT_FIELDS, FlowStatistics, flow_statistics_dim

    layer = FlowStatistics()
    fields = {name: i for i, name in enumerate(FLOW_STAT_FIELDS)}

    def whole_frame(clip, field):  # finest scale, whole-frame region, steps after the first
        stats = np.asarray(layer(clip))
        assert stats.shape == (1, clip.shape[1], flow_statistics_dim())
        np.testing.assert_allclose(stats[0, 0], 0.0, atol=1e-6)  # no previous step: no motion
        return stats[0, 1:, fields[field]]

    for clip, field in ((_turning_clip(shift_xy=(1.5, 0)), "u"), (_turning_clip(shift_xy=(0, 1.5)), "v"),
                        (_turning_clip(zoom_per_step=0.04), "expansion"), (_turning_clip(degrees_per_step=-4), "rotation")):
        forward = whole_frame(clip, field)
        backward = whole_frame(clip[:, ::-1], field)
        assert (forward > 0.1).all(), (field, forward)  # right, down, approaching, turning clockwise on screen
        assert (backward < -0.1).all(), (field, backward)  # the same clip backwards: the opposite
    # A pure shift is not read as turning or approaching.
    still = whole_frame(_turning_clip(shift_xy=(1.5, 0)), "rotation")
    assert np.abs(still).max() < 0.1


def _falling_part_clip(steps=10, side=96, fall_per_step=5, shake=1, seed=0):
    """A small textured square falling over a textured view that shakes by up to ``shake`` px each step
    (a hand-held camera): float32 ``[1, steps, side, side, 3]`` in 0..255."""
    import cv2

    rng = np.random.default_rng(seed)
    view = cv2.GaussianBlur(rng.uniform(0, 255, (side + 4 * shake, side + 4 * shake)).astype("float32"), (0, 0), 2.0)
    part = cv2.GaussianBlur(rng.uniform(0, 255, (12, 12)).astype("float32"), (0, 0), 1.0)
    frames = []
    for t in range(steps):
        dx, dy = rng.integers(-shake, shake + 1, 2)
        frame = view[2 * shake + dy:2 * shake + dy + side, 2 * shake + dx:2 * shake + dx + side].copy()
        top = 10 + fall_per_step * t
        frame[top:top + 12, side // 2:side // 2 + 12] = part
        frames.append(frame)
    return np.repeat(np.stack(frames)[None, ..., None], 3, axis=-1)


def test_moving_part_descriptor_follows_a_small_part_under_camera_shake():
    """The moving part's centre goes down the frame as the part falls (up when the clip is reversed),
    though the shake moves every pixel; without ``moving_part`` the vector is the region statistics alone."""
    from seqvision.flow import MOVING_PART_FIELDS, FlowStatistics, flow_statistics_dim

    plain, with_part = FlowStatistics(), FlowStatistics(moving_part=True)
    clip = _falling_part_clip()
    assert plain.compute_output_shape(clip.shape)[-1] == flow_statistics_dim()
    stats = np.asarray(with_part(clip))
    assert stats.shape == (1, clip.shape[1], flow_statistics_dim(moving_part=True))
    np.testing.assert_allclose(stats[0, :, :flow_statistics_dim()], np.asarray(plain(clip))[0], atol=1e-6)
    np.testing.assert_allclose(stats[0, 0], 0.0, atol=1e-6)  # no previous step: nothing moves
    y = MOVING_PART_FIELDS.index("y")

    def centre_y_trend(frames):  # least-squares slope of the finest scale's centre y over steps 1..
        part = np.asarray(with_part(frames))[0, 1:, flow_statistics_dim():].reshape(frames.shape[1] - 1, -1, 5)
        return np.polyfit(np.arange(len(part)), part[:, 0, y], 1)[0]

    falling, rising = centre_y_trend(clip), centre_y_trend(clip[:, ::-1])
    assert falling > 0.02 and rising < -0.02, (falling, rising)
    for seed in (1, 2):  # other views and shakes
        assert centre_y_trend(_falling_part_clip(seed=seed)) > 0.02


def _zooming_falling_part_clip(steps=10, side=96, fall_per_step=5, zoom_per_step=0.0, degrees_per_step=0.0, seed=0):
    """A small textured square falling over a textured view that zooms by ``zoom_per_step`` and rolls by
    ``degrees_per_step`` about its centre each step: float32 ``[1, steps, side, side, 3]`` in 0..255."""
    import cv2

    rng = np.random.default_rng(seed)
    view = cv2.GaussianBlur(rng.uniform(0, 255, (side, side)).astype("float32"), (0, 0), 2.0)
    part = cv2.GaussianBlur(rng.uniform(0, 255, (12, 12)).astype("float32"), (0, 0), 1.0)
    frames = []
    for t in range(steps):
        camera = cv2.getRotationMatrix2D((side / 2, side / 2), degrees_per_step * t, (1 + zoom_per_step) ** t)
        frame = cv2.warpAffine(view, camera, (side, side), borderMode=cv2.BORDER_REFLECT)
        top = 10 + fall_per_step * t
        frame[top:top + 12, side // 2:side // 2 + 12] = part
        frames.append(frame)
    return np.repeat(np.stack(frames)[None, ..., None], 3, axis=-1)


def test_affine_camera_motion_finds_the_falling_part_when_the_camera_zooms_or_rolls():
    """Against the flow's median a zoom or roll of the whole view (which moves each pixel its own way)
    hides the falling part; against a robust affine fit of the camera's motion its centre goes down
    the frame again. With a still camera both give the same descriptors."""
    from seqvision.flow import MOVING_PART_FIELDS, FlowStatistics, flow_statistics_dim

    y = MOVING_PART_FIELDS.index("y")
    median, affine = FlowStatistics(moving_part=True), FlowStatistics(moving_part=True, camera_motion="affine")
    assert affine.compute_output_shape((1, 10, 96, 96, 3)) == median.compute_output_shape((1, 10, 96, 96, 3))

    def centre_y_trend(layer, frames):  # least-squares slope of the finest scale's centre y over steps 1..
        part = np.asarray(layer(frames))[0, 1:, flow_statistics_dim():].reshape(frames.shape[1] - 1, -1, 5)
        return np.polyfit(np.arange(len(part)), part[:, 0, y], 1)[0]

    trends = {"median": [], "affine": []}
    for seed in (0, 1, 2):
        for camera in (dict(zoom_per_step=0.03), dict(zoom_per_step=-0.03), dict(degrees_per_step=2.0)):
            clip = _zooming_falling_part_clip(seed=seed, **camera)
            trends["median"].append(centre_y_trend(median, clip))
            trends["affine"].append(centre_y_trend(affine, clip))
            assert centre_y_trend(affine, clip[:, ::-1]) < -0.025, (seed, camera)  # rising when reversed
    assert min(trends["affine"]) > 0.025, trends
    assert np.mean(trends["median"]) < 0.5 * np.mean(trends["affine"]), trends  # the fit is what finds it
    still = _zooming_falling_part_clip()
    np.testing.assert_allclose(np.asarray(affine(still)), np.asarray(median(still)), atol=0.02)
    with pytest.raises(ValueError, match="camera_motion"):
        FlowStatistics(moving_part=True, camera_motion="homography")


def test_brightness_norm_ignores_flicker_and_keeps_the_motion():
    """With ``brightness_norm`` a per-frame gain and offset of the brightness (flicker, auto exposure)
    changes nothing, where the plain statistics read it as motion; a real shift still shows."""
    from seqvision.flow import FLOW_STAT_FIELDS, FlowStatistics

    rng = np.random.default_rng(3)
    steps = 8
    gains, offsets = rng.uniform(0.75, 1.25, steps), rng.uniform(-20, 20, steps)

    def flicker(clip):
        return clip * gains[None, :, None, None, None] + offsets[None, :, None, None, None]

    plain, steady = FlowStatistics(), FlowStatistics(brightness_norm=True)
    still = np.repeat(_falling_part_clip(steps=steps, fall_per_step=0, shake=0)[:, :1], steps, axis=1)
    magnitude = FLOW_STAT_FIELDS.index("magnitude")

    def whole_frame_magnitude(stats):  # finest scale, whole frame, steps 1..
        return stats[0, 1:].reshape(steps - 1, 3, -1, len(FLOW_STAT_FIELDS))[:, 0, 0, magnitude]

    assert 64 < still.min() and flicker(still).max() < 255 and flicker(still).min() > 0  # no clipping
    assert whole_frame_magnitude(np.asarray(plain(still))).max() < 1e-4
    assert whole_frame_magnitude(np.asarray(plain(flicker(still)))).min() > 0.01  # flicker read as motion
    np.testing.assert_allclose(np.asarray(steady(flicker(still))), 0.0, atol=1e-4)
    moving = _falling_part_clip(steps=steps, shake=0)
    np.testing.assert_allclose(np.asarray(steady(flicker(moving))), np.asarray(steady(moving)), atol=1e-4)
    assert whole_frame_magnitude(np.asarray(steady(moving))).min() > 0.001


@pytest.mark.parametrize("moving_part, brightness_norm, camera_motion",
                         [(False, False, "median"), (True, False, "median"), (False, True, "median"),
                          (True, True, "affine")])
def test_flow_statistics_next_to_embeddings_keep_masks_exact_and_match_the_cache(tmp_path, moving_part,
                                                                                 brightness_norm, camera_motion):
    """The frame model with flow statistics = its head on [embedding, statistics] (what the cache
    stores), padding changes nothing, and the model saves and loads."""
    from seqvision.flow import FlowStatistics
    from seqvision.training import _copy_head

    keras.utils.set_random_seed(11)
    backbone = build_backbone("cnn", 32, filters=(8,), channels=3, pooling="gap")
    options = dict(head="trend", feature_diff=True)
    flow_stats = FlowStatistics(moving_part=moving_part, brightness_norm=brightness_norm, camera_motion=camera_motion)
    stats_dim = flow_stats.compute_output_shape((None, None, 32, 32, 3))[-1]
    features_model = build_sequence_classifier(backbone.output_shape[-1] + stats_dim, 3, "features", **options)
    rng = np.random.default_rng(12)
    for layer in features_model.layers:  # small enough that the probabilities do not saturate
        layer.set_weights([rng.normal(0, 0.1, w.shape).astype("float32") if "variance" not in w.path
                           else rng.uniform(0.5, 2.0, w.shape).astype("float32") for w in layer.weights])
    frame_model = build_video_classifier(backbone, 3, 32, flow_statistics=FlowStatistics(
        moving_part=moving_part, brightness_norm=brightness_norm, camera_motion=camera_motion), **options)
    _copy_head(features_model, frame_model)
    frames = np.concatenate([_turning_clip(degrees_per_step=3, steps=6, side=32),
                             _turning_clip(shift_xy=(1, 0), steps=6, side=32, seed=1)])
    embeddings = backbone.predict(frames.reshape(-1, 32, 32, 3), verbose=0).reshape(2, 6, -1)
    cached = np.concatenate([embeddings, np.asarray(flow_stats(frames))], axis=-1)
    expected = features_model.predict({"features": cached, "mask": np.ones((2, 6), bool)}, verbose=0)
    unpadded = frame_model.predict({"frames": frames, "mask": np.ones((2, 6), bool)}, verbose=0)
    np.testing.assert_allclose(unpadded, expected, atol=1e-4)
    _assert_padding_changes_nothing_and_saves(frame_model, frames, unpadded, 4, tmp_path / "flow_stats.keras")


def test_change_stream_embeds_frames_and_their_changes_and_keeps_masks_exact(tmp_path):
    """With the change stream the model's per-step vector is [backbone(frame), backbone(change image),
    descriptors] (the cache's order), the change image is the NumPy twin's, padding changes nothing
    and the model saves and loads."""
    from seqvision.flow import FlowStatistics
    from seqvision.models import FrameChange

    keras.utils.set_random_seed(13)
    rng = np.random.default_rng(14)
    frames = rng.integers(0, 256, (2, 5, 32, 32, 3)).astype("float32")
    change = np.asarray(FrameChange()(frames))
    np.testing.assert_array_equal(change[:, 0], 0.0)
    np.testing.assert_array_equal(change[:, 1:], np.clip(3.0 * np.abs(frames[:, 1:] - frames[:, :-1]), 0, 255))
    np.testing.assert_array_equal(change, np.round(change))  # whole numbers: the cache stores them as uint8

    backbone = build_backbone("cnn", 32, filters=(8,), channels=3, pooling="gap")
    model = build_video_classifier(backbone, 3, 32, head="trend", feature_diff=True, flow_statistics=FlowStatistics(),
                                   change_stream=True)
    per_step = keras.Model(model.inputs, model.get_layer("features_and_flow_statistics").output)
    embed = lambda x: backbone.predict(x.reshape(-1, 32, 32, 3), verbose=0).reshape(2, 5, -1)  # noqa: E731
    expected = np.concatenate([embed(frames), embed(change),
                               np.asarray(FlowStatistics()(frames))], axis=-1)
    got = per_step({"frames": frames, "mask": np.ones((2, 5), bool)})
    np.testing.assert_allclose(np.asarray(got), expected, atol=1e-4)

    unpadded = model.predict({"frames": frames, "mask": np.ones((2, 5), bool)}, verbose=0)
    padded, mask = _padded(frames, 3, 255.0)
    np.testing.assert_allclose(model.predict({"frames": padded, "mask": mask}, verbose=0), unpadded, atol=1e-5)
    model.save(tmp_path / "change.keras")
    loaded = keras.models.load_model(tmp_path / "change.keras")
    np.testing.assert_allclose(loaded.predict({"frames": padded, "mask": mask}, verbose=0), unpadded, atol=1e-5)


def _clip_change_twin(frames: np.ndarray, length: int) -> np.ndarray:
    """NumPy reference of ClipChange for one clip's ``frames [T, H, W, C]`` with ``length`` valid steps."""
    quarter = max(length // 4, 1)
    valid = frames[:length].astype(np.float64)
    change = np.abs(valid[length - quarter:].mean(0) - valid[:quarter].mean(0))
    return np.clip(change * 255.0 / max(change.max(), 1.0), 0, 255)


def test_clip_change_is_the_quarter_means_difference_of_valid_frames_and_even_in_time():
    from seqvision.models import ClipChange

    rng = np.random.default_rng(21)
    frames = rng.integers(0, 256, (3, 9, 8, 8, 3)).astype("float32")
    lengths = np.array([9, 6, 1])
    mask = np.arange(9)[None] < lengths[:, None]
    images = np.asarray(ClipChange()(frames, mask))
    for clip, length in enumerate(lengths):
        np.testing.assert_allclose(images[clip], _clip_change_twin(frames[clip], length), atol=1e-3)
    assert images[0].max() == pytest.approx(255.0) and not images[2].any()  # one step: nothing changed
    reversed_frames = frames.copy()
    for clip, length in enumerate(lengths):
        reversed_frames[clip, :length] = frames[clip, :length][::-1]
    np.testing.assert_allclose(np.asarray(ClipChange()(reversed_frames, mask)), images, atol=1e-3)
    padded = frames.copy()
    padded[~mask] = 255.0  # padding is never read
    np.testing.assert_array_equal(np.asarray(ClipChange()(padded, mask)), images)


def test_clip_change_projection_keeps_the_leading_directions_centred():
    from seqvision.models import fit_clip_change_projection

    rng = np.random.default_rng(22)
    direction = rng.standard_normal(12)
    direction /= np.linalg.norm(direction)
    vectors = 5.0 + np.outer(rng.standard_normal(40) * 10.0, direction) + 0.01 * rng.standard_normal((40, 12))
    kernel, bias = fit_clip_change_projection(vectors, components=4)
    projected = vectors @ kernel + bias
    np.testing.assert_allclose(projected.mean(0), 0.0, atol=1e-3)
    assert abs(kernel[:, 0] @ direction) > 0.999  # the first component is the direction of most variance
    assert projected[:, 0].var() > 1e3 * projected[:, 1:].var(0).max()
    few_kernel, _ = fit_clip_change_projection(vectors[:3], components=4)  # 3 vectors: 3 directions at most
    assert not few_kernel[:, 3].any() and few_kernel[:, :2].any()


def test_clip_change_model_embeds_the_clip_image_last_and_keeps_masks_exact(tmp_path):
    """Per step [backbone(frame), descriptors, backbone(clip-change image)] (the cache's order); the head sees
    that vector's projection; padding changes nothing; the frozen projection saves and loads."""
    from seqvision.flow import FlowStatistics
    from seqvision.models import fit_clip_change_projection

    keras.utils.set_random_seed(23)
    rng = np.random.default_rng(24)
    frames = rng.integers(0, 256, (2, 6, 32, 32, 3)).astype("float32")
    backbone = build_backbone("cnn", 32, filters=(8,), channels=3, pooling="gap")
    model = build_video_classifier(backbone, 3, 32, head="trend", feature_diff=True, flow_statistics=FlowStatistics(),
                                   clip_change=True)
    projection = model.get_layer("clip_change_pca")
    assert not projection.trainable
    projection.set_weights(list(fit_clip_change_projection(rng.standard_normal((30, 8)))))
    per_step = keras.Model(model.inputs, model.get_layer("features_and_clip_change").output)
    mask = np.ones((2, 6), bool)
    images = np.stack([_clip_change_twin(clip, 6) for clip in frames]).astype("float32")
    embed = lambda x: backbone.predict(x.reshape(-1, 32, 32, 3), verbose=0)  # noqa: E731
    expected = np.concatenate([embed(frames).reshape(2, 6, -1), np.asarray(FlowStatistics()(frames)),
                               np.repeat(embed(images)[:, None], 6, axis=1)], axis=-1)
    np.testing.assert_allclose(np.asarray(per_step({"frames": frames, "mask": mask})), expected, atol=1e-3)

    unpadded = model.predict({"frames": frames, "mask": mask}, verbose=0)
    loaded = _assert_padding_changes_nothing_and_saves(model, frames, unpadded, 3, tmp_path / "clip_change.keras")
    np.testing.assert_array_equal(loaded.get_layer("clip_change_pca").get_weights()[0], projection.get_weights()[0])
