"""Sequence classifiers. Every path (frames, cached features, keypoints) ends in the
same masked LSTM head, so padding is handled in one place.

The mask is always an explicit boolean input ``[B, T]`` (True = real step). Keras 3
``TimeDistributed`` does not propagate masks, so the head receives it directly.
Sequences are right-padded, which keeps the LSTM eligible for cuDNN on GPU.
"""
from __future__ import annotations

import keras
from keras import layers, ops

from seqvision.errors import SeqvisionError
from seqvision.flow import LucasKanadeFlow


@keras.saving.register_keras_serializable(package="seqvision")
class FrameEncoder(layers.Wrapper):
    """Apply a per-frame model to every frame in one batched call.

    ``[B, T, H, W, C] -> [B, T, D]`` by folding time into the batch. Keras 3's
    ``TimeDistributed`` instead calls the model once per time step (or through
    ``vectorized_map`` when T is unknown), which is slower and, for a variable-length
    input retraced inside ``predict``, gave different numbers in our tests.
    """

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build((None, *input_shape[2:]))

    def call(self, frames, training=None):
        batch, steps = ops.shape(frames)[0], ops.shape(frames)[1]
        flat = ops.reshape(frames, (-1, *frames.shape[2:]))
        features = self.layer(flat, training=training)
        return ops.reshape(features, (batch, steps, *features.shape[1:]))

    def compute_output_shape(self, input_shape):
        inner = self.layer.compute_output_shape((None, *input_shape[2:]))
        return (input_shape[0], input_shape[1], *inner[1:])


@keras.saving.register_keras_serializable(package="seqvision")
class TemporalDifference(layers.Layer):
    """Append each step's change since the previous step: ``[B, T, ..., C] -> [B, T, ..., 2C]``.

    The change is ``scale * (x[t] - x[t-1]) + offset`` (``offset`` alone at t = 0), as in TSN's
    RGB-difference stream: the direction of a motion shows in every single step, where frames
    alone show it only in their order. Step t depends on steps t and t-1 only, so right padding
    never changes the real steps. For pixels in 0..255, ``scale=0.5, offset=127.5`` keeps the
    change in 0..255 too, so the backbone's own pixel scaling applies to both halves.
    """

    def __init__(self, scale: float = 1.0, offset: float = 0.0, keep_input: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)
        self.offset = float(offset)
        self.keep_input = bool(keep_input)

    def call(self, x):
        x = ops.cast(x, self.compute_dtype)
        change = ops.concatenate([ops.zeros_like(x[:, :1]), x[:, 1:] - x[:, :-1]], axis=1)
        change = change * self.scale + self.offset
        return ops.concatenate([x, change], axis=-1) if self.keep_input else change

    def compute_output_shape(self, input_shape):
        channels = input_shape[-1]
        return (*input_shape[:-1], channels if channels is None or not self.keep_input else 2 * channels)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset, "keep_input": self.keep_input}


CHANGE_GAIN = 3.0  # |frame_t - frame_t-1| is mostly dark: x3 (clipped to 255) before the backbone sees it


@keras.saving.register_keras_serializable(package="seqvision")
class FrameChange(layers.Layer):
    """What changed since the previous step, as an image: ``[B, T, H, W, C]`` 0..255 ->
    ``gain * |x[t] - x[t-1]|`` clipped to 0..255 (step 0 black). A pretrained backbone embeds these
    next to the frames: the things that appear, vanish or move, whatever the scene around them
    (TSN's RGB difference, for a frozen network). Step t depends on steps t and t-1 only."""

    def __init__(self, gain: float = CHANGE_GAIN, **kwargs):
        super().__init__(**kwargs)
        self.gain = float(gain)

    def call(self, frames):
        x = ops.cast(frames, "float32")
        change = ops.concatenate([ops.zeros_like(x[:, :1]), ops.abs(x[:, 1:] - x[:, :-1])], axis=1)
        return ops.cast(ops.clip(change * self.gain, 0.0, 255.0), self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "gain": self.gain}


CLIP_CHANGE_COMPONENTS = 16  # principal components of the clip-change embedding the head sees


@keras.saving.register_keras_serializable(package="seqvision")
class ClipChange(layers.Layer):
    """What changed over the clip, as one image: ``frames [B, T, H, W, C]`` 0..255 under ``mask [B, T]``
    -> ``|mean of the last quarter of the valid frames - mean of the first quarter|`` ``[B, H, W, C]``,
    scaled so its brightest value is 255 (at most x255: a still clip stays dark). The same for a clip
    and its reversal, and the static scene cancels: what kind of change, not its direction (the head's
    trend inputs give that). Only valid steps count; a one-step clip gives a black image."""

    def call(self, frames, mask):
        x = ops.cast(frames, "float32")
        valid = ops.cast(mask, "float32")
        count = ops.sum(valid, axis=1, keepdims=True)  # [B, 1]
        quarter = ops.maximum(ops.floor(count / 4.0), 1.0)
        position = ops.cumsum(valid, axis=1) - 1.0  # 0 .. count-1 on valid steps
        first = valid * ops.cast(position < quarter, "float32")
        last = valid * ops.cast(position >= count - quarter, "float32")

        def mean_over(weights):
            total = ops.sum(x * weights[:, :, None, None, None], axis=1)
            return total / ops.maximum(ops.sum(weights, axis=1), 1.0)[:, None, None, None]

        change = ops.abs(mean_over(last) - mean_over(first))
        peak = ops.max(change, axis=(1, 2, 3), keepdims=True)
        return ops.cast(ops.clip(change * (255.0 / ops.maximum(peak, 1.0)), 0.0, 255.0), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *input_shape[2:])


@keras.saving.register_keras_serializable(package="seqvision")
class OverValidSteps(layers.Layer):
    """``[B, D]`` under ``mask [B, T]`` -> ``[B, T, D]``: the vector at every valid step, 0 on padding."""

    def call(self, x, mask):
        return x[:, None, :] * ops.cast(mask, x.dtype)[:, :, None]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], None, input_shape[-1])


def fit_clip_change_projection(vectors, components: int = CLIP_CHANGE_COMPONENTS):
    """Principal components of clip-change embeddings ``vectors [N, D]`` (NumPy, training clips only):
    ``(kernel [D, components], bias [components])`` of the frozen ``Dense`` that projects onto them,
    centred, not scaled (the default ``trend`` head standardises its inputs). Fewer than ``components``
    directions: zero columns."""
    import numpy as np

    vectors = np.asarray(vectors, np.float64)
    mean = vectors.mean(axis=0)
    _, _, directions = np.linalg.svd(vectors - mean, full_matrices=False)
    kernel = np.zeros((vectors.shape[1], components))
    kept = directions[:components].T
    kernel[:, :kept.shape[1]] = kept
    return kernel.astype(np.float32), (-mean @ kernel).astype(np.float32)


@keras.saving.register_keras_serializable(package="seqvision")
class HalvesSideBySide(layers.Layer):
    """``[B, 2T, D]`` (two sequences one after the other in time) -> ``[B, T, 2D]`` (step t of both, side by side)."""

    def call(self, x):
        batch, steps, dim = ops.shape(x)[0], ops.shape(x)[1] // 2, x.shape[-1]
        halves = ops.transpose(ops.reshape(x, (batch, 2, steps, dim)), (0, 2, 1, 3))
        return ops.reshape(halves, (batch, steps, 2 * dim))

    def compute_output_shape(self, input_shape):
        steps = input_shape[1] // 2 if input_shape[1] is not None else None
        return (input_shape[0], steps, 2 * input_shape[2])


@keras.saving.register_keras_serializable(package="seqvision")
class MaskedTrendPooling(layers.Layer):
    """Order-aware pooling over valid steps: ``[B, T, D]`` under ``mask [B, T]`` -> ``[B, 3D]``.

    Per channel: the mean, the least-squares slope against time scaled to -1..1 over the clip's
    own valid steps (the idea of approximate rank pooling / dynamic images, Bilen et al. 2016:
    reversing a clip flips its sign), and the mean absolute change between consecutive valid
    steps (how much moves). Only valid steps count, so padding changes nothing; a one-step clip
    has slope and change 0. Computed in float32.
    """

    def call(self, x, mask=None):
        x = ops.cast(x, "float32")
        valid = ops.cast(mask, "float32")[..., None] if mask is not None else ops.ones_like(x[..., :1])
        count = ops.sum(valid, axis=1)  # [B, 1]
        mean = ops.sum(x * valid, axis=1) / ops.maximum(count, 1.0)
        position = ops.cumsum(valid, axis=1) - 1.0  # 0 .. count-1 on valid steps
        half = (count[:, None] - 1.0) / 2.0
        time = (position - half) / ops.maximum(half, 1.0) * valid  # -1 .. 1, 0 on padding
        slope = ops.sum(time * (x - mean[:, None]), axis=1) / ops.maximum(ops.sum(time * time, axis=1), 1e-6)
        pairs = valid[:, 1:] * valid[:, :-1]
        change = ops.sum(ops.abs(x[:, 1:] - x[:, :-1]) * pairs, axis=1) / ops.maximum(ops.sum(pairs, axis=1), 1.0)
        return ops.concatenate([mean, slope, change], axis=-1)

    def compute_mask(self, x, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        channels = input_shape[-1]
        return (input_shape[0], None if channels is None else 3 * channels)


def masked_lstm_head(sequence, mask, num_classes: int, units: int = 128, num_layers: int = 1,
                     bidirectional: bool = False, dropout: float = 0.3, name: str = "head", l1: float = 0.0):
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
    return _class_probabilities(x, num_classes, dropout, name, l1)


def masked_mean_head(sequence, mask, num_classes: int, units: int = 128, num_layers: int = 1,
                     bidirectional: bool = False, dropout: float = 0.3, name: str = "head", l1: float = 0.0):
    """Order-free baseline: average ``sequence [B, T, D]`` over valid steps, then an MLP.

    Same signature as ``masked_lstm_head`` (``num_layers`` and ``bidirectional`` unused).
    """
    x = layers.GlobalAveragePooling1D(name=f"{name}_masked_mean")(sequence, mask=mask)
    x = layers.Dense(units, activation="relu", name=f"{name}_dense")(x)
    return _class_probabilities(x, num_classes, dropout, name, l1)


def masked_trend_head(sequence, mask, num_classes: int, units: int = 128, num_layers: int = 1,
                      bidirectional: bool = False, dropout: float = 0.3, name: str = "head", l1: float = 0.0):
    """Linear classifier on :class:`MaskedTrendPooling` of ``sequence [B, T, D]`` (mean, time trend,
    mean change), standardised by BatchNorm: few weights, so it suits a frozen backbone and a few
    hundred clips. Same signature as ``masked_lstm_head`` (``units``, ``num_layers`` and
    ``bidirectional`` unused).
    """
    x = MaskedTrendPooling(name=f"{name}_trend")(sequence, mask=mask)
    x = layers.BatchNormalization(name=f"{name}_standardise")(x)
    return _class_probabilities(x, num_classes, dropout, name, l1)


def _class_probabilities(x, num_classes: int, dropout: float, name: str, l1: float = 0.0):
    """Dropout, then softmax probabilities ``[B, num_classes]`` in float32 (also under mixed precision);
    ``l1`` > 0 adds ``l1 * sum |w|`` of the output weights to the loss (few inputs used, many near 0)."""
    x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    penalty = keras.regularizers.L1(l1) if l1 else None
    return layers.Dense(num_classes, activation="softmax", dtype="float32", kernel_regularizer=penalty,
                        name=f"{name}_probs")(x)


TEMPORAL_HEADS = {"lstm": masked_lstm_head, "mean": masked_mean_head, "trend": masked_trend_head}


def temporal_head(head: str):
    """The head function called ``head`` (a key of ``TEMPORAL_HEADS``)."""
    if head not in TEMPORAL_HEADS:
        raise SeqvisionError(f"unknown temporal head {head!r}; choose one of {sorted(TEMPORAL_HEADS)}")
    return TEMPORAL_HEADS[head]


def build_sequence_classifier(feature_dim: int, num_classes: int, input_name: str = "features",
                              seq_len: int | None = None, units: int = 128, num_layers: int = 1,
                              bidirectional: bool = False, dropout: float = 0.3, input_dropout: float = 0.0,
                              head: str = "lstm", feature_diff: bool = False, l1: float = 0.0,
                              clip_change_dim: int = 0, name: str = "sequence_classifier") -> keras.Model:
    """Classifier over per-step vectors: ``{input_name: [B, T, D], "mask": [B, T]} -> [B, K]``.

    Used for cached backbone embeddings (``input_name="features"``) and skeletons
    (``input_name="keypoints"``). ``seq_len=None`` accepts any length. ``head`` picks the
    temporal model from ``TEMPORAL_HEADS`` (``"mean"`` is the order-free baseline);
    ``feature_diff`` feeds it each step's vector and its change since the previous step.
    ``clip_change_dim``: the last that many numbers of each step are the clip-change embedding
    (:class:`ClipChange`), projected by the frozen ``clip_change_pca`` layer (set its weights with
    :func:`fit_clip_change_projection`).
    """
    features = keras.Input((seq_len, feature_dim), name=input_name)
    mask = keras.Input((seq_len,), dtype="bool", name="mask")
    probs = _temporal_model(features, mask, num_classes, units, num_layers, bidirectional, dropout, head,
                            feature_diff, input_dropout, l1=l1, clip_change_dim=clip_change_dim)
    return keras.Model({input_name: features, "mask": mask}, probs, name=name)


def _temporal_model(sequence, mask, num_classes, units, num_layers, bidirectional, dropout, head,
                    feature_diff, input_dropout=0.0, prefix: str = "", l1: float = 0.0, clip_change_dim: int = 0):
    """``[B, T, D]`` under ``mask`` -> probabilities; the layers the video and feature models share by name
    (``prefix`` names a second stream's own layers)."""
    if clip_change_dim:
        # float32 under mixed precision too: the uncentred projection and its bias nearly cancel
        projected = layers.Dense(CLIP_CHANGE_COMPONENTS, trainable=False, dtype="float32",
                                 name=f"{prefix}clip_change_pca")(sequence[..., -clip_change_dim:])
        sequence = layers.Concatenate(name=f"{prefix}with_clip_change_components")(
            [sequence[..., :-clip_change_dim], ops.cast(projected, sequence.dtype)])
    x = TemporalDifference(name=f"{prefix}feature_diff")(sequence) if feature_diff else sequence
    x = layers.Dropout(input_dropout, name=f"{prefix}input_dropout")(x) if input_dropout else x
    return temporal_head(head)(x, mask, num_classes, units, num_layers, bidirectional, dropout, name=f"{prefix}head",
                               l1=l1)


@keras.saving.register_keras_serializable(package="seqvision")
class StreamFusion(layers.Layer):
    """Late fusion of per-stream class probabilities: ``softmax(sum_s w_s * log p_s)``.

    ``[p_1, ..., p_S]`` each ``[B, K]`` -> ``[B, K]``. While training, each sample is scored by
    one stream alone or by all of them (equally likely), so every stream must classify on its
    own and none can lean on another. At inference the weights ``w`` (not trained; all ones
    until set) apply: :func:`seqvision.training.choose_stream_weights` picks them on held-out
    clips, so a stream that only memorised its training clips can be switched off.
    """

    def __init__(self, num_streams: int = 2, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.num_streams = int(num_streams)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        self.stream_weights = self.add_weight(shape=(self.num_streams,), initializer="ones", trainable=False,
                                              name="stream_weights")

    def call(self, stream_probs, training=None):
        log_probs = ops.stack([ops.log(ops.maximum(ops.cast(p, "float32"), 1e-7)) for p in stream_probs], axis=1)
        if training:
            choice = keras.random.randint((ops.shape(log_probs)[0],), 0, self.num_streams + 1,
                                          seed=self.seed_generator)
            weights = ops.one_hot(choice, self.num_streams + 1)
            weights = weights[:, :self.num_streams] + weights[:, self.num_streams:]  # the last choice: all
        else:
            weights = ops.expand_dims(ops.cast(self.stream_weights, "float32"), 0)
        return ops.softmax(ops.sum(log_probs * ops.expand_dims(weights, -1), axis=1), axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "num_streams": self.num_streams, "seed": self.seed}


MOTION_INPUTS = ("flow", "diff", "frames", "two_stream")


def motion_input_layer(motion: str):
    """The layer turning frames ``[B, T, S, S, 3]`` into what a trained-from-scratch backbone sees
    per step under ``motion`` (None for ``"frames"``): ``"flow"`` Lucas–Kanade flow from the
    previous step at half the side (``[B, T, S/2, S/2, 6]``, see ``seqvision.flow``), ``"diff"``
    each frame next to its difference from the previous one (``[B, T, S, S, 6]``)."""
    if motion not in MOTION_INPUTS:
        raise SeqvisionError(f"unknown motion input {motion!r}; choose one of {', '.join(MOTION_INPUTS)}")
    if motion in ("flow", "two_stream"):
        return LucasKanadeFlow(name="flow")
    if motion == "diff":
        return TemporalDifference(scale=0.5, offset=127.5, name="frame_diff")
    return None


def build_video_classifier(backbone: keras.Model, num_classes: int, img_size: int, seq_len: int | None = None,
                           units: int = 128, num_layers: int = 1, bidirectional: bool = False, dropout: float = 0.3,
                           input_dropout: float = 0.0, head: str = "lstm", motion: str = "frames",
                           feature_diff: bool = False, frames_backbone: keras.Model | None = None,
                           flow_statistics: keras.layers.Layer | None = None, change_stream: bool = False,
                           l1: float = 0.0, clip_change: bool = False,
                           name: str = "video_classifier") -> keras.Model:
    """``{"frames": [B, T, H, W, 3] in 0..255, "mask": [B, T] bool} -> [B, K]``.

    ``FrameEncoder(backbone)`` (a batched ``TimeDistributed``) turns each step into a vector
    ``[B, T, D]``; the backbone does its own input scaling. ``motion`` (``MOTION_INPUTS``) is what
    it sees per step: the frames, or their flow or differences (:func:`motion_input_layer`; the
    backbone must take that size and channel count). ``feature_diff`` feeds the temporal head each
    vector next to its change since the previous step. ``seq_len=None`` accepts any length.
    ``motion="two_stream"``: ``backbone`` sees the flow and ``frames_backbone`` the frames, each
    stream with its own temporal head, fused by :class:`StreamFusion`; frames are area-downscaled to
    the side ``frames_backbone`` takes. ``flow_statistics`` (a :class:`seqvision.flow.FlowStatistics`,
    e.g. :func:`seqvision.training.flow_statistics_layer`): each step's vector is followed by its
    motion descriptors of the frames, ``[B, T, F]``, as the embedding cache stores them for a frozen
    backbone. ``change_stream``: the backbone also embeds
    each step's :class:`FrameChange` image, in the same batched call; per step ``[frame vector,
    change vector, descriptors]``, the cache's order. ``clip_change``: the backbone also embeds the
    clip's :class:`ClipChange` image (one per clip), appended to every valid step, last.
    """
    frames = keras.Input((seq_len, img_size, img_size, 3), name="frames")
    mask = keras.Input((seq_len,), dtype="bool", name="mask")
    motion_layer = motion_input_layer(motion)
    x = motion_layer(frames) if motion_layer is not None else frames
    if change_stream:  # one encoder over [frames; changes] along time: one backbone, one batched call
        x = layers.Concatenate(axis=1, name="frames_and_changes")([x, FrameChange(name="frame_change")(x)])
    features = FrameEncoder(backbone, name="frame_features")(x)
    if change_stream:
        features = HalvesSideBySide(name="frame_and_change_features")(features)
    if flow_statistics is not None:
        motion_features = flow_statistics(frames)
        features = layers.Concatenate(name="features_and_flow_statistics")(
            [features, ops.cast(motion_features, features.dtype)])
    clip_change_dim = 0
    if clip_change:
        change_vector = backbone(ClipChange(name="clip_change")(frames, mask))
        clip_change_dim = int(change_vector.shape[-1])
        features = layers.Concatenate(name="features_and_clip_change")(
            [features, ops.cast(OverValidSteps(name="clip_change_over_steps")(change_vector, mask), features.dtype)])
    probs = _temporal_model(features, mask, num_classes, units, num_layers, bidirectional, dropout, head,
                            feature_diff, input_dropout, l1=l1, clip_change_dim=clip_change_dim)
    if motion == "two_stream":
        if frames_backbone is None:
            raise SeqvisionError("motion 'two_stream' needs frames_backbone: the CNN that sees the frames")
        shrink = img_size // frames_backbone.input_shape[1]
        appearance = layers.AveragePooling3D((1, shrink, shrink), name="appearance_pool")(frames) if shrink > 1 else frames
        appearance = FrameEncoder(frames_backbone, name="appearance_features")(appearance)
        appearance_probs = _temporal_model(appearance, mask, num_classes, units, num_layers, bidirectional, dropout,
                                           head, feature_diff, input_dropout, prefix="appearance_", l1=l1)
        probs = StreamFusion(2, dtype="float32", name="stream_fusion")([probs, appearance_probs])
    return keras.Model({"frames": frames, "mask": mask}, probs, name=name)
