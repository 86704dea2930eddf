"""Keras layers the backbones are made of, and frozen image models read from files.

``CoordinateChannels`` (the small CNN) and ``HubImageFeatures`` (a TF Hub / SavedModel image
model as a frozen layer) are registered for ``model.keras``. :func:`build_file_backbone` turns a
TF Hub URL, a SavedModel folder or a ``.keras`` file into ``[B, S, S, 3]`` 0..255 -> ``[B, D]``
whatever size its signature fixes; :func:`copy_saved_models_into_run` makes a run self-contained.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import shutil
from pathlib import Path

import keras
from keras import layers, ops

from seqvision.errors import SeqvisionError

RUN_BACKBONE_DIR = "backbone"  # where a run keeps the SavedModels its model.keras refers to
# A run's model.keras names its copied SavedModel relative to the run folder; loading resolves
# it against the folder set here (the run being loaded or trained), so the run can be moved.
_files_root: contextvars.ContextVar[Path | None] = contextvars.ContextVar("seqvision_files_root", default=None)


@contextlib.contextmanager
def backbone_files_root(folder: str | Path):
    """While open, relative ``HubImageFeatures`` handles resolve against ``folder`` (a run directory)."""
    token = _files_root.set(Path(folder))
    try:
        yield
    finally:
        _files_root.reset(token)


def is_url(handle: str) -> bool:
    return "://" in str(handle)


def resolve_handle(handle: str) -> str:
    """``handle`` as ``hub.load`` takes it: URLs and absolute paths as they are, relative paths
    against :func:`backbone_files_root` when one is open."""
    root = _files_root.get()
    if is_url(handle) or Path(handle).is_absolute() or root is None:
        return str(handle)
    return str(root / handle)


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


@keras.saving.register_keras_serializable(package="seqvision")
class HubImageFeatures(layers.Layer):
    """A TF Hub image feature-vector SavedModel as a Keras 3 layer (frozen).

    ``handle`` is a tfhub.dev / Kaggle URL or a SavedModel folder (relative: see
    :func:`backbone_files_root`). Inputs are pixels in 0..255 ``[B, H, W, 3]``, scaled here to
    ``input_range``: [0, 1] for TF Hub image models (their convention), [-1, 1] for a bare
    Keras MobileNetV2 ``export()`` (a ``uint8`` signature gets them as they are), and resized to the height and width the signature fixes, if any. Output
    ``[B, D]``. ``hub.KerasLayer`` is a Keras 2 object that Keras 3 refuses, hence this wrapper
    around ``hub.load``; the SavedModel's variables are not Keras weights, so it never trains.
    """

    def __init__(self, handle: str, output_dim: int | None = None, probe_size: int = 224,
                 input_range: tuple[float, float] = (0.0, 1.0), **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.handle = str(handle)
        self.input_range = tuple(float(v) for v in input_range)
        path = resolve_handle(self.handle)
        self._module = load_saved_model(path)  # owns the variables: keep it referenced
        self._features, spec = image_function(self._module, path)
        self.image_size = tuple(spec.shape[1:3]) if None not in spec.shape[1:3] else None
        self._input_dtype = spec.dtype
        self.output_dim = output_dim or _probe_output_dim(self, path, probe_size)

    def call(self, images):
        import tensorflow as tf

        if self.image_size and tuple(images.shape[1:3]) != self.image_size:
            images = tf.image.resize(ops.cast(images, "float32"), self.image_size)
        if self._input_dtype.is_integer:
            return self._features(tf.cast(tf.round(images), self._input_dtype))
        low, high = self.input_range
        return self._features(ops.cast(images, "float32") * ((high - low) / 255.0) + low)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_dim)

    def get_config(self):
        return {**super().get_config(), "handle": self.handle, "output_dim": self.output_dim,
                "input_range": list(self.input_range)}


def load_saved_model(handle: str):
    """``hub.load(handle)``: a TF Hub URL or a local SavedModel folder; ValueError saying why not."""
    import tensorflow_hub as hub

    try:
        module = hub.load(handle)
    except Exception as error:  # hub raises many types (OSError, ValueError, URL errors)
        raise SeqvisionError(f"cannot load TF Hub model {handle!r}: {error}. Without internet, pass a local "
                             "SavedModel folder or set TFHUB_CACHE_DIR to a cache that holds it") from None
    return module


def _not_an_image_model(handle: str, found: str) -> ValueError:
    return ValueError(f"{handle}: no signature maps images [B, H, W, 3] to vectors [B, D]: {found}")


def image_function(module, handle: str):
    """``(function of images [B, H, W, 3], its input TensorSpec)`` of a loaded SavedModel.

    TF Hub models are called (``__call__``); others through their ``serve`` (Keras
    ``Model.export()``) or ``serving_default`` signature, which must take one tensor.
    """
    import tensorflow as tf

    if callable(module):
        calls = getattr(module.__call__, "concrete_functions", None) or []
        specs = [tf.nest.flatten(c.structured_input_signature[0]) for c in calls]
        specs = [[s for s in args if isinstance(s, tf.TensorSpec)] for args in specs]
        if not specs or len(specs[0]) != 1:
            raise _not_an_image_model(handle, f"its __call__ takes {specs[0] if specs else 'no traced'} inputs")
        function, spec, where = module, specs[0][0], "__call__"
    else:
        where = next((n for n in ("serve", "serving_default") if n in getattr(module, "signatures", {})), None)
        if where is None:
            raise _not_an_image_model(handle, "it has no __call__, 'serve' or 'serving_default' signature")
        signature = module.signatures[where]
        inputs, outputs = signature.structured_input_signature[1], signature.structured_outputs
        if len(inputs) != 1 or len(outputs) != 1:
            raise _not_an_image_model(handle, f"its {where!r} signature takes {len(inputs)} inputs "
                                      f"({', '.join(inputs)}) and returns {len(outputs)} outputs")
        (input_name, spec), = inputs.items()

        def function(images):
            return next(iter(signature(**{input_name: images}).values()))
    if spec.shape.rank != 4 or spec.shape[-1] not in (None, 3):
        raise _not_an_image_model(handle, f"its {where} takes {spec.dtype.name} {spec.shape}")
    return function, spec


def _probe_output_dim(layer: HubImageFeatures, handle: str, probe_size: int) -> int:
    """D, from one call on a black image of the signature's size (else ``probe_size``)."""
    import numpy as np

    height, width = layer.image_size or (probe_size, probe_size)
    try:
        output = layer.call(np.zeros((1, height, width, 3), np.float32))
    except Exception as error:  # TF raises many types for a call the SavedModel cannot take
        raise _not_an_image_model(handle, f"calling it on images (1, {height}, {width}, 3) failed: "
                                  f"{str(error).strip().splitlines()[0]}") from None
    if len(output.shape) != 2:
        raise _not_an_image_model(handle, f"images (1, {height}, {width}, 3) give shape {tuple(output.shape)}")
    return int(output.shape[-1])


def load_keras_image_model(path: str | Path) -> keras.Model:
    """A ``.keras`` model mapping images ``[B, H, W, 3]`` to ``[B, D]``, checked; ValueError otherwise."""
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types for files it cannot read
        raise SeqvisionError(f"{path}: cannot load this .keras file: {error}") from None
    shapes = [tuple(i.shape) for i in model.inputs]
    outputs = [tuple(o.shape) for o in model.outputs]
    if len(shapes) != 1 or len(shapes[0]) != 4 or shapes[0][-1] not in (None, 3) or outputs[0:1] != outputs \
            or len(outputs[0]) != 2:
        raise _not_an_image_model(path, f"the model maps inputs {shapes} to outputs {outputs}")
    return model


# What a file-backed image model expects its pixels in (``--hub-input-range``).
INPUT_RANGES = {"0,1": (0.0, 1.0), "-1,1": (-1.0, 1.0), "0,255": (0.0, 255.0)}


def build_file_backbone(img_size: int, handle: str, name: str = "file_backbone",
                        input_range: tuple[float, float] = (0.0, 1.0)) -> keras.Model:
    """A frozen image model from a TF Hub URL, a SavedModel folder or a ``.keras`` file.

    ``[B, img_size, img_size, 3]`` in 0..255 -> ``[B, D]``: pixels scaled to ``input_range``
    ([0, 1], TF Hub's convention, by default) and resized to the size the model's signature fixes, if any. A ``.keras``
    model is nested whole, so the run's ``model.keras`` holds its weights.
    """
    images = keras.Input((img_size, img_size, 3), name="images")
    if str(handle).endswith(".keras"):
        base = load_keras_image_model(resolve_handle(handle))
        base.trainable = False
        low, high = input_range
        x = layers.Rescaling((high - low) / 255.0, offset=low, name="scale")(images)
        height, width = base.inputs[0].shape[1:3]
        if height and width and (height, width) != (img_size, img_size):
            x = layers.Resizing(height, width, name="resize")(x)
        features = base(x, training=False)
    else:
        features = HubImageFeatures(handle, probe_size=img_size, input_range=input_range, name="hub_features")(images)
    return keras.Model(images, features, name=name)


def copy_saved_models_into_run(backbone: keras.Model, run_dir: str | Path) -> list[str]:
    """Copy the SavedModel of each ``HubImageFeatures`` layer of ``backbone`` into
    ``run_dir/backbone/<layer name>`` and make the layer name the copy, relative to ``run_dir``, so
    the ``model.keras`` saved from it works offline, moved or copied, once the original is gone.

    A TF Hub URL is copied from its download folder (``hub.resolve``); one that is not a local
    folder stays a URL. Weights and ``.keras`` files need no copy: ``model.keras`` holds their
    weights. Each copy is made under a temporary name and renamed into place. Returns the copies.
    """
    copies = []
    for layer in backbone.layers:
        if not isinstance(layer, HubImageFeatures):
            continue
        source = Path(_local_folder(resolve_handle(layer.handle)))
        if not source.is_dir():
            continue
        relative = f"{RUN_BACKBONE_DIR}/{layer.name}"
        target = Path(run_dir) / relative
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            shutil.copytree(source, tmp)
            shutil.rmtree(target, ignore_errors=True)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        layer.handle = relative
        copies.append(relative)
    return copies


def _local_folder(handle: str) -> str:
    """The folder a TF Hub URL was downloaded to (``hub.resolve``); a path as it is."""
    if not is_url(handle):
        return handle
    import tensorflow_hub as hub

    try:
        return hub.resolve(handle)
    except Exception as error:  # hub raises many types (OSError, ValueError, URL errors)
        raise SeqvisionError(f"cannot load TF Hub model {handle!r}: {error}") from None
