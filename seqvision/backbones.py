"""Per-frame backbones: ``[B, H, W, 3]`` pixels in 0..255 -> ``[B, D]`` features.

Each backbone owns its input scaling, so the data pipeline always delivers raw 0..255
pixels. ``BACKBONES`` maps a name to its builder.
"""
from __future__ import annotations

import keras
from keras import layers, ops


# Keras' default 0.99 keeps ~20% of the initial statistics after 160 steps (20 epochs of 60 clips),
# so a small dataset is evaluated with stale moving averages; 0.9 tracks them within ~20 steps.
BN_MOMENTUM = 0.9


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


def build_cnn_backbone(img_size: int, filters: tuple[int, ...] = (32, 64, 128, 128), channels: int = 3,
                       pooling: str = "grid", grid: int = 4, grid_width: int = 128, name: str = "cnn") -> keras.Model:
    """Small CNN: conv-BN-ReLU blocks with max pooling, then ``pooling``.

    ``[B, img_size, img_size, channels]`` in 0..255 -> ``[B, D]`` (``channels=6``: frames next
    to their differences, see ``models.TemporalDifference``). ``pooling="grid"`` averages the
    last feature map down to ``grid x grid`` cells and projects them to ``grid_width`` features, so
    where things are (and which way they turn) survives; ``"gap"`` is global average pooling
    (``D = filters[-1]``), which keeps only what is present.
    """
    if pooling not in ("grid", "gap"):
        raise ValueError(f"pooling must be grid or gap, got {pooling!r}")
    images = keras.Input((img_size, img_size, channels), name="images")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale")(images)
    x = CoordinateChannels(name="coords")(x)
    for i, filters_i in enumerate(filters):
        x = layers.Conv2D(filters_i, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
        if i < len(filters) - 1:
            x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    if pooling == "gap":
        features = layers.GlobalAveragePooling2D(name="gap")(x)
    else:
        cells = max(1, min(grid, x.shape[1]))
        stride = x.shape[1] // cells  # windows of size - (cells - 1) * stride cover the whole map
        x = layers.AveragePooling2D(x.shape[1] - (cells - 1) * stride, strides=stride, name="grid_pool")(x)
        x = layers.Flatten(name="grid_flat")(x)
        x = layers.Dense(grid_width, use_bias=False, name="grid_dense")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="grid_bn")(x)
        features = layers.ReLU(name="grid_relu")(x)
    return keras.Model(images, features, name=name)


@keras.saving.register_keras_serializable(package="seqvision")
class HubImageFeatures(layers.Layer):
    """A TF Hub image feature-vector SavedModel as a Keras 3 layer (frozen).

    ``handle`` is a tfhub.dev / Kaggle URL or a local SavedModel folder. Inputs are
    pixels in 0..255 ``[B, H, W, 3]``; TF Hub image models expect [0, 1], so they are
    divided by 255 here. Output ``[B, D]``. ``hub.KerasLayer`` is a Keras 2 object that
    Keras 3 refuses, hence this wrapper around ``hub.load``; the SavedModel's variables
    are not Keras weights, so the layer is never trained.
    """

    def __init__(self, handle: str, output_dim: int | None = None, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.handle = str(handle)
        self._module = _load_hub_module(self.handle)  # owns the variables: keep it referenced
        self._features = _image_function(self._module, self.handle)
        self.output_dim = output_dim or _probe_output_dim(self._features)

    def call(self, images):
        return self._features(ops.cast(images, "float32") / 255.0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_dim)

    def get_config(self):
        return {**super().get_config(), "handle": self.handle, "output_dim": self.output_dim}


def _load_hub_module(handle: str):
    import tensorflow_hub as hub

    try:
        module = hub.load(handle)
    except Exception as error:  # hub raises many types (OSError, ValueError, URL errors)
        raise ValueError(f"cannot load TF Hub model {handle!r}: {error}. Without internet, pass a local "
                         "SavedModel folder or set TFHUB_CACHE_DIR to a cache that holds it") from None
    return module


def _image_function(module, handle: str):
    """The loaded SavedModel's function from images ``[B, H, W, 3]`` in [0, 1] to features."""
    if callable(module):  # TF Hub feature vectors
        return module
    if hasattr(module, "serve"):  # keras Model.export()
        return module.serve
    signature = getattr(module, "signatures", {}).get("serving_default")
    if signature is not None:  # TF1-style or signature-only SavedModels: one image input, one output
        input_name = next(iter(signature.structured_input_signature[1]))
        return lambda images: next(iter(signature(**{input_name: images}).values()))
    raise ValueError(f"TF Hub model {handle!r} is neither callable nor has a 'serve' or 'serving_default' "
                     "function taking images")


def _probe_output_dim(module) -> int:
    import tensorflow as tf

    return int(module(tf.zeros((1, 32, 32, 3))).shape[-1])


def build_mobilenet_backbone(img_size: int, weights: str | None = "imagenet", alpha: float = 1.0,
                             hub_handle: str | None = None, name: str = "mobilenet") -> keras.Model:
    """MobileNetV2 features, ``[B, S, S, 3]`` in 0..255 -> ``[B, 1280]`` (for ``alpha`` <= 1).

    From ``keras.applications`` (``weights``: ``"imagenet"``, ``None`` for random
    initialisation, or a weights file path; inputs scaled to [-1, 1] as MobileNetV2
    expects) or, with ``hub_handle``, from a TF Hub feature-vector SavedModel (inputs
    scaled to [0, 1] as TF Hub image models expect).
    """
    images = keras.Input((img_size, img_size, 3), name="images")
    if hub_handle:
        features = HubImageFeatures(hub_handle, name="hub_features")(images)
    else:
        x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale")(images)
        base = keras.applications.MobileNetV2(
            input_shape=(img_size, img_size, 3), include_top=False, pooling="avg", alpha=alpha,
            weights=None if weights in (None, "none") else weights)
        base.trainable = False
        features = base(x, training=False)
    return keras.Model(images, features, name=name)


BACKBONES = {
    "cnn": build_cnn_backbone,
    "mobilenet": build_mobilenet_backbone,
}


def build_backbone(name: str, img_size: int, **options) -> keras.Model:
    """Build the backbone called ``name`` (a key of ``BACKBONES``)."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")
    return BACKBONES[name](img_size, **options)
