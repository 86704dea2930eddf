"""Sequence classifiers. Every path (frames, cached features, keypoints) ends in the
same masked LSTM head, so padding is handled in one place.

The mask is always an explicit boolean input ``[B, T]`` (True = real step). Keras 3
``TimeDistributed`` does not propagate masks, so the head receives it directly.
Sequences are right-padded, which keeps the LSTM eligible for cuDNN on GPU.
"""
from __future__ import annotations

import keras
from keras import layers


def masked_lstm_head(
    sequence,
    mask,
    num_classes: int,
    units: int = 128,
    num_layers: int = 1,
    bidirectional: bool = False,
    dropout: float = 0.3,
    name: str = "head",
):
    """Apply stacked (Bi)LSTMs to ``sequence [B, T, D]`` under ``mask [B, T]`` bool.

    Returns class probabilities ``[B, num_classes]`` (float32 even under mixed precision).
    Only input dropout is used (no ``recurrent_dropout``) so cuDNN stays usable.
    """
    x = sequence
    for i in range(num_layers):
        last = i == num_layers - 1
        lstm = layers.LSTM(units, return_sequences=not last, dropout=dropout if i else 0.0,
                           name=f"{name}_lstm{i}")
        if bidirectional:
            lstm = layers.Bidirectional(lstm, name=f"{name}_bilstm{i}")
        x = lstm(x, mask=mask)
    x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return layers.Dense(num_classes, activation="softmax", dtype="float32", name=f"{name}_probs")(x)


def build_sequence_classifier(
    feature_dim: int,
    num_classes: int,
    input_name: str = "features",
    seq_len: int | None = None,
    units: int = 128,
    num_layers: int = 1,
    bidirectional: bool = False,
    dropout: float = 0.3,
    input_dropout: float = 0.0,
    name: str = "sequence_classifier",
) -> keras.Model:
    """Classifier over per-step vectors: ``{input_name: [B, T, D], "mask": [B, T]} -> [B, K]``.

    Used for cached backbone embeddings (``input_name="features"``) and skeletons
    (``input_name="keypoints"``). ``seq_len=None`` accepts any length.
    """
    features = keras.Input((seq_len, feature_dim), name=input_name)
    mask = keras.Input((seq_len,), dtype="bool", name="mask")
    x = layers.Dropout(input_dropout, name="input_dropout")(features) if input_dropout else features
    probs = masked_lstm_head(x, mask, num_classes, units, num_layers, bidirectional, dropout)
    return keras.Model({input_name: features, "mask": mask}, probs, name=name)


def build_video_classifier(
    backbone: keras.Model,
    num_classes: int,
    img_size: int,
    seq_len: int | None = None,
    units: int = 128,
    num_layers: int = 1,
    bidirectional: bool = False,
    dropout: float = 0.3,
    name: str = "video_classifier",
) -> keras.Model:
    """``{"frames": [B, T, H, W, 3] in 0..255, "mask": [B, T] bool} -> [B, K]``.

    ``TimeDistributed(backbone)`` turns each frame into a vector ``[B, T, D]``; the
    backbone does its own input scaling. ``seq_len=None`` accepts any length.
    """
    frames = keras.Input((seq_len, img_size, img_size, 3), name="frames")
    mask = keras.Input((seq_len,), dtype="bool", name="mask")
    features = layers.TimeDistributed(backbone, name="frame_features")(frames)
    probs = masked_lstm_head(features, mask, num_classes, units, num_layers, bidirectional, dropout)
    return keras.Model({"frames": frames, "mask": mask}, probs, name=name)


def build_orderless_classifier(
    feature_dim: int,
    num_classes: int,
    input_name: str = "features",
    name: str = "orderless_classifier",
) -> keras.Model:
    """Baseline that averages step vectors over valid steps (no temporal order)."""
    features = keras.Input((None, feature_dim), name=input_name)
    mask = keras.Input((None,), dtype="bool", name="mask")
    pooled = layers.GlobalAveragePooling1D(name="masked_mean")(features, mask=mask)
    x = layers.Dense(128, activation="relu")(pooled)
    probs = layers.Dense(num_classes, activation="softmax", dtype="float32")(x)
    return keras.Model({input_name: features, "mask": mask}, probs, name=name)
