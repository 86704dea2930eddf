"""Per-frame backbones: ``[B, H, W, 3]`` pixels in 0..255 -> ``[B, D]`` features.

Each backbone owns its input scaling, so the data pipeline always delivers raw 0..255
pixels. ``BACKBONES`` maps a name to its :class:`BackboneSpec`; training, ``seqvision embed``,
the CLI's ``--backbone`` choices and the run loader all read it, so adding a backbone is one
entry here and one test (CONTRIBUTING.md, "Adding a backbone"). Importing this module does not
import Keras: the builders do, when called.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

from seqvision.errors import SeqvisionError

# Keras' default 0.99 keeps ~20% of the initial statistics after 160 steps (20 epochs of 60 clips),
# so a small dataset is evaluated with stale moving averages; 0.9 tracks them within ~20 steps.
BN_MOMENTUM = 0.9


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone and how a run uses it.

    ``builder(img_size, pixel_range=..., name=..., **options)`` returns a ``keras.Model``
    ``[B, img_size, img_size, C]`` in 0..255 -> ``[B, D]`` that scales pixels to ``pixel_range``
    itself. ``options`` are the run settings (``VideoTrainConfig`` fields, plus ``channels``: 6
    when the run feeds flow or frames next to their differences, 3 for frames alone) it takes, and the cache identity
    of its embeddings; ``path_options`` are those that may name a file, folder or URL (their
    contents are fingerprinted in the cache identity; a SavedModel is copied into the run).
    ``frozen``: used as it is, with per-frame embeddings cached and only the head trained;
    else trained end to end on frames. ``fine_tunable``: ``--fine-tune-at`` can unfreeze its top.
    """

    name: str
    builder: Callable
    default_img_size: int
    pixel_range: tuple[float, float]
    frozen: bool
    summary: str
    options: tuple[str, ...] = ()
    path_options: tuple[str, ...] = ()
    fine_tunable: bool = False


def build_cnn_backbone(img_size: int, filters: tuple[int, ...] = (32, 64, 128, 128), channels: int = 3,
                       pooling: str = "grid", grid: int = 4, grid_width: int = 128, name: str = "cnn",
                       pixel_range: tuple[float, float] = (-1.0, 1.0), stem_stride: int = 1):
    """Small CNN: conv-BN-ReLU blocks with max pooling, then ``pooling``.

    ``[B, img_size, img_size, channels]`` in 0..255 -> ``[B, D]`` (``channels=6``: flow at three
    scales, see ``seqvision.flow``, or frames next to their differences). ``pooling="grid"``
    averages the last feature map down to ``grid x grid`` cells and projects them to
    ``grid_width`` features, so
    where things are (and which way they turn) survives; ``"gap"`` is global average pooling
    (``D = filters[-1]``), which keeps only what is present. ``stem_stride=2`` makes the first
    convolution (5x5) strided: the rest of the CNN runs at half the side, a quarter of the cost.
    """
    import keras
    from keras import layers

    from seqvision.backbone_layers import CoordinateChannels

    if pooling not in ("grid", "gap"):
        raise SeqvisionError(f"pooling must be grid or gap, got {pooling!r}")
    images = keras.Input((img_size, img_size, channels), name="images")
    x = _scale_pixels(images, pixel_range)
    x = CoordinateChannels(name="coords")(x)
    for i, filters_i in enumerate(filters):
        stride = stem_stride if i == 0 else 1
        x = layers.Conv2D(filters_i, 5 if stride > 1 else 3, strides=stride, padding="same", use_bias=False,
                          name=f"conv{i}")(x)
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


def _scale_pixels(images, pixel_range: tuple[float, float]):
    """0..255 pixels to ``pixel_range`` (a Rescaling layer named ``scale``; none for (0, 255))."""
    from keras import layers

    low, high = pixel_range
    if (low, high) == (0, 255):
        return images
    return layers.Rescaling((high - low) / 255.0, offset=low, name="scale")(images)


def build_keras_application_backbone(img_size: int, application: str, weights: str | None = "imagenet",
                                     pixel_range: tuple[float, float] = (-1.0, 1.0), name: str | None = None,
                                     **application_options):
    """``keras.applications.<application>`` without its classifier, average-pooled, frozen.

    ``[B, S, S, 3]`` in 0..255 -> ``[B, D]``. ``weights``: ``"imagenet"`` (downloaded once by
    Keras), ``None`` / ``"none"`` for random initialisation, or a weights file path; the weights
    are saved with the run's ``model.keras``.
    """
    import keras

    images = keras.Input((img_size, img_size, 3), name="images")
    try:
        base = getattr(keras.applications, application)(
            input_shape=(img_size, img_size, 3), include_top=False, pooling="avg",
            weights=None if weights in (None, "none") else weights, **application_options)
    except Exception as error:  # Keras raises a bare Exception when the download fails
        if weights != "imagenet" or "URL fetch failure" not in str(error):
            raise
        raise SeqvisionError(f"cannot download the ImageNet weights of {application} (no internet?): pass "
                             "--weights FILE (the .h5 file of keras.applications, downloaded elsewhere, or put "
                             "it in ~/.keras/models), --backbone cnn (a small CNN that needs no pretrained "
                             "weights) or --weights none") from None
    base.trainable = False
    features = base(_scale_pixels(images, pixel_range), training=False)
    return keras.Model(images, features, name=name or application.lower())


def build_mobilenet_backbone(img_size: int, weights: str | None = "imagenet", alpha: float = 1.0,
                             hub_handle: str | None = None, name: str = "mobilenet",
                             pixel_range: tuple[float, float] = (-1.0, 1.0), hub_input_range: str = "0,1"):
    """MobileNetV2 features, ``[B, S, S, 3]`` in 0..255 -> ``[B, 1280]`` (for ``alpha`` <= 1).

    From ``keras.applications`` (inputs scaled to [-1, 1] as MobileNetV2 expects) or, with
    ``hub_handle``, any frozen image model from a TF Hub URL, a SavedModel folder or a ``.keras``
    file (inputs scaled to ``hub_input_range``: "0,1" as TF Hub image models expect, "-1,1" for
    a Keras MobileNetV2 ``export()``, "0,255"; resized to the size its signature fixes;
    :func:`seqvision.backbone_layers.build_file_backbone`).
    """
    if hub_handle:
        from seqvision.backbone_layers import INPUT_RANGES, build_file_backbone

        if hub_input_range not in INPUT_RANGES:
            raise SeqvisionError(f"hub input range must be one of {', '.join(INPUT_RANGES)}, got {hub_input_range!r}")
        return build_file_backbone(img_size, hub_handle, name=name, input_range=INPUT_RANGES[hub_input_range])
    return build_keras_application_backbone(img_size, "MobileNetV2", weights, pixel_range, name, alpha=alpha)


BACKBONES = {
    "cnn": BackboneSpec(
        "cnn", build_cnn_backbone, default_img_size=64, pixel_range=(-1.0, 1.0), frozen=False,
        summary="small CNN trained end to end on optical flow of the frames (--motion)",
        options=("channels", "pooling", "filters")),
    "mobilenet": BackboneSpec(
        "mobilenet", build_mobilenet_backbone, default_img_size=224, pixel_range=(-1.0, 1.0), frozen=True,
        summary="MobileNetV2 (keras.applications, or any image model with --hub-handle), frozen",
        options=("weights", "alpha", "hub_handle", "hub_input_range"), path_options=("weights", "hub_handle"),
        fine_tunable=True),
    "efficientnetv2b0": BackboneSpec(
        "efficientnetv2b0", functools.partial(build_keras_application_backbone, application="EfficientNetV2B0"),
        default_img_size=224, pixel_range=(0.0, 255.0),  # EfficientNetV2 rescales its input itself
        frozen=True, summary="EfficientNetV2-B0 (keras.applications), frozen",
        options=("weights",), path_options=("weights",), fine_tunable=True),
}


def backbone_spec(name: str) -> BackboneSpec:
    """The spec called ``name``; a ValueError naming the choices for an unknown one."""
    if name not in BACKBONES:
        raise SeqvisionError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")
    return BACKBONES[name]


def build_backbone(name: str, img_size: int, model_name: str | None = None, **options):
    """Build the backbone called ``name`` (a key of ``BACKBONES``) as a ``keras.Model`` named
    ``model_name`` (default ``name``)."""
    spec = backbone_spec(name)
    return spec.builder(img_size, pixel_range=spec.pixel_range, name=model_name or name, **options)
