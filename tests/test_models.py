import keras
import numpy as np
import pytest

from seqvision.backbones import BACKBONES, build_backbone
from seqvision.models import (TEMPORAL_HEADS, FrameEncoder, TemporalDifference, build_sequence_classifier,
                              build_video_classifier)


def _padded(x, extra, fill):
    pad = np.full((x.shape[0], extra, *x.shape[2:]), fill, x.dtype)
    mask = np.zeros((x.shape[0], x.shape[1] + extra), bool)
    mask[:, : x.shape[1]] = True
    return np.concatenate([x, pad], axis=1), mask


@pytest.mark.parametrize("bidirectional,num_layers,diffs,pooling,appearance", [
    (False, 1, False, "gap", True), (True, 1, False, "grid", True), (False, 2, False, "gap", True),
    (False, 1, True, "grid", True), (True, 2, True, "gap", True), (False, 1, True, "grid", False)])
def test_padded_masked_video_equals_unpadded(bidirectional, num_layers, diffs, pooling, appearance):
    keras.utils.set_random_seed(1)
    backbone = build_backbone("cnn", 32, filters=(8, 16), channels=6 if diffs and appearance else 3, pooling=pooling)
    model = build_video_classifier(backbone, 3, 32, bidirectional=bidirectional, num_layers=num_layers, units=16,
                                   frame_diff=diffs, feature_diff=diffs, appearance=appearance)
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


def test_frame_difference_input_sees_the_direction_of_time():
    """Reversing a clip changes what each step's vector is, not only their order."""
    keras.utils.set_random_seed(3)
    backbone = build_backbone("cnn", 16, filters=(4, 8), channels=6)
    model = build_video_classifier(backbone, 2, 16, frame_diff=True, units=4)
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
    model = build_video_classifier(build_backbone("cnn", 16, filters=(4, 8), channels=6), 3, 16, units=4,
                                   frame_diff=True, feature_diff=True)
    frames, length = load_clip_views(clip, 6, 16, view_offsets(3))
    mask = np.tile(np.arange(6) < length, (1, 3, 1))
    averaged = predict_views(model, {"frames": frames[None], "mask": mask})
    singles = [model.predict_on_batch({"frames": load_clip_views(clip, 6, 16, (offset,))[0],
                                       "mask": (np.arange(6) < length)[None]}) for offset in view_offsets(3)]
    np.testing.assert_allclose(averaged, np.mean(singles, axis=0), atol=1e-6)
    assert np.abs(singles[0] - singles[2]).max() > 1e-6  # the views differ, so the mean is not trivial
