"""Optical flow inside the model: Lucas–Kanade between consecutive sampled frames.

A CNN trained from scratch on a few hundred clips learns what each clip looks like long
before it learns which way things move; flow is the motion without the looks (its sign does
not depend on which colour is in front), so a flow CNN learns the motion (TSN / two-stream
networks use it for the same reason). Computed with convolutions, so it trains, exports and
runs wherever the model does: no precomputed flow files.
"""
from __future__ import annotations

import keras
from keras import layers, ops

FLOW_SCALES = (1, 2, 4)


@keras.saving.register_keras_serializable(package="seqvision")
class LucasKanadeFlow(layers.Layer):
    """Dense flow from step t-1 to step t at several scales: ``[B, T, H, W, 3]`` 0..255 ->
    ``[B, T, H // stride, W // stride, 2 * len(scales)]`` in 0..255.

    At each scale (the grey frames average-pooled by ``s``) the flow ``(u, v)`` solves the
    ``window x window`` least-squares brightness-constancy system (regularised by ``reg`` in
    grey units of 0..1, so flat regions give 0). ``u, v`` are in input pixels per step (+x right,
    +y down); coarser scales see larger motions. Each is coded as ``127.5 * (1 + tanh(gain * u))``
    so a backbone's own 0..255 pixel scaling applies. Step 0 has no previous step: flow 0 (127.5).
    Step t depends on steps t and t-1 only, so right padding never changes the real steps.
    """

    def __init__(self, scales=FLOW_SCALES, window: int = 5, reg: float = 1e-4, gain: float = 1.0,
                 stride: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.scales = tuple(int(s) for s in scales)
        self.window = int(window)
        self.reg = float(reg)
        self.gain = float(gain)
        self.stride = int(stride)

    def call(self, frames):
        batch, steps = ops.shape(frames)[0], ops.shape(frames)[1]
        height, width = frames.shape[2], frames.shape[3]
        out_size = (height // self.stride, width // self.stride)
        grey = ops.mean(ops.cast(frames, "float32"), axis=-1, keepdims=True) / 255.0
        grey = ops.reshape(grey, (-1, height, width, 1))
        flows = []
        for scale in self.scales:
            pooled = ops.average_pool(grey, scale, scale) if scale > 1 else grey
            size = (pooled.shape[1], pooled.shape[2])
            current = ops.reshape(pooled, (batch, steps, *size, 1))
            previous = ops.concatenate([current[:, :1], current[:, :-1]], axis=1)
            mean = ops.reshape((current + previous) / 2, (-1, *size, 1))
            dt = ops.reshape(current - previous, (-1, *size, 1))
            # Central differences with edge-replicated borders: zero padding would make a strong false edge there.
            padded = ops.pad(mean, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="symmetric")
            dx = (padded[:, 1:-1, 2:] - padded[:, 1:-1, :-2]) / 2
            dy = (padded[:, 2:, 1:-1] - padded[:, :-2, 1:-1]) / 2
            sums = window_mean(ops.concatenate([dx * dx, dy * dy, dx * dy, dx * dt, dy * dt], axis=-1), self.window)
            sxx, syy, sxy, sxt, syt = (sums[..., i:i + 1] for i in range(5))
            sxx, syy = sxx + self.reg, syy + self.reg
            det = sxx * syy - sxy * sxy
            flow = ops.concatenate([sxy * syt - syy * sxt, sxy * sxt - sxx * syt], axis=-1) / det * float(scale)
            if size[0] > out_size[0]:  # area downscale as a pool: TFLite has no ResizeArea
                factor = (size[0] // out_size[0], size[1] // out_size[1])
                flow = ops.average_pool(flow, factor, factor)
                size = (flow.shape[1], flow.shape[2])
            if size != out_size:
                flow = ops.image.resize(flow, out_size, interpolation="bilinear")
            flows.append(flow)
        coded = 127.5 * (1.0 + ops.tanh(self.gain * ops.concatenate(flows, axis=-1)))
        return ops.cast(ops.reshape(coded, (batch, steps, *out_size, 2 * len(self.scales))), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        height, width = input_shape[2], input_shape[3]
        return (input_shape[0], input_shape[1], height // self.stride if height else None,
                width // self.stride if width else None, 2 * len(self.scales))

    def get_config(self):
        return {**super().get_config(), "scales": list(self.scales), "window": self.window, "reg": self.reg,
                "gain": self.gain, "stride": self.stride}


def window_mean(images, window: int):
    """Mean over each ``window x window`` neighbourhood of ``[N, H, W, C]``, borders averaging only
    the pixels inside the image (as ``average_pool(..., padding="same")``): a separable sum of shifted
    slices, several times faster than that pooling op on CPU."""
    height, width = images.shape[1], images.shape[2]
    radius = window // 2
    padded = ops.pad(images, ((0, 0), (radius, radius), (radius, radius), (0, 0)))
    across = padded[:, :, :width]
    for i in range(1, window):
        across = across + padded[:, :, i:i + width]
    total = across[:, :height]
    for i in range(1, window):
        total = total + across[:, i:i + height]
    rows = [min(i + radius, height - 1) - max(i - radius, 0) + 1 for i in range(height)]
    cols = [min(i + radius, width - 1) - max(i - radius, 0) + 1 for i in range(width)]
    counts = ops.convert_to_tensor([[r * c for c in cols] for r in rows], dtype=images.dtype)
    return total / ops.reshape(counts, (1, height, width, 1))


def flow_channels(scales=FLOW_SCALES) -> int:
    """Channels of :class:`LucasKanadeFlow`'s output."""
    return 2 * len(scales)
