"""Per-frame backbones: ``[B, H, W, 3]`` pixels in 0..255 -> ``[B, D]`` features.

Each backbone owns its input scaling, so the data pipeline always delivers raw 0..255
pixels. ``BACKBONES`` maps a name to its builder; the CLI's choices come from it.
"""
from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="seqvision")
class CoordinateChannels(layers.Layer):
    """Append two channels holding the normalised x and y pixel position, in [-1, 1].

    A convolution + global average pooling otherwise discards where things are in the
    frame; with coordinates as inputs the pooled features can encode position, which
    motion direction (left vs right) depends on.
    """

    def call(self, images):
        shape = ops.shape(images)
        batch, height, width = shape[0], shape[1], shape[2]
        ys = ops.linspace(-1.0, 1.0, height)
        xs = ops.linspace(-1.0, 1.0, width)
        grid_y, grid_x = ops.meshgrid(ys, xs, indexing="ij")
        coords = ops.stack([grid_x, grid_y], axis=-1)[None]
        coords = ops.cast(ops.broadcast_to(coords, (batch, height, width, 2)), images.dtype)
        return ops.concatenate([images, coords], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + 2)


def build_cnn_backbone(img_size: int, filters: tuple[int, ...] = (32, 64, 128, 128),
                       name: str = "cnn") -> keras.Model:
    """Small CNN: conv-BN-ReLU blocks with max pooling, ending in global average pooling.

    ``[B, img_size, img_size, 3]`` in 0..255 -> ``[B, filters[-1]]``.
    """
    images = keras.Input((img_size, img_size, 3), name="images")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale")(images)
    x = CoordinateChannels(name="coords")(x)
    for i, width in enumerate(filters):
        x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
        if i < len(filters) - 1:
            x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    features = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(images, features, name=name)


BACKBONES = {
    "cnn": build_cnn_backbone,
}


def build_backbone(name: str, img_size: int, **options) -> keras.Model:
    """Build the backbone called ``name`` (a key of ``BACKBONES``)."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")
    return BACKBONES[name](img_size, **options)
