import keras
import numpy as np
import pytest

from seqvision.backbones import BACKBONES, build_backbone
from seqvision.models import (TEMPORAL_HEADS, FrameEncoder, build_sequence_classifier,
                              build_video_classifier)


def _padded(x, extra, fill):
    pad = np.full((x.shape[0], extra, *x.shape[2:]), fill, x.dtype)
    mask = np.zeros((x.shape[0], x.shape[1] + extra), bool)
    mask[:, : x.shape[1]] = True
    return np.concatenate([x, pad], axis=1), mask


@pytest.mark.parametrize("bidirectional,num_layers", [(False, 1), (True, 1), (False, 2)])
def test_padded_masked_video_equals_unpadded(bidirectional, num_layers):
    keras.utils.set_random_seed(1)
    model = build_video_classifier(build_backbone("cnn", 32, filters=(8, 16)), 3, 32,
                                   bidirectional=bidirectional, num_layers=num_layers, units=16)
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
    backbone = build_backbone("cnn", 24, filters=(4, 8))
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


def test_cnn_backbone_is_global_pooled_and_position_aware():
    backbone = build_backbone("cnn", 32, filters=(8, 16))
    assert backbone.output_shape == (None, 16)
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
