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


FLOW_STAT_FIELDS = ("u", "v", "magnitude", "curl", "divergence", "expansion", "rotation")
MOVING_PART_FIELDS = ("x", "y", "u", "v", "magnitude")
BRIGHTNESS_SPREAD = 50.0  # grey standard deviation (0..255) of a frame after standardise_brightness
CAMERA_MOTIONS = ("median", "affine")  # what FlowStatistics(moving_part=True) removes as the camera's motion


@keras.saving.register_keras_serializable(package="seqvision")
class FlowStatistics(layers.Layer):
    """Motion descriptors per step: ``[B, T, S, S, 3]`` 0..255 -> ``[B, T, F]``, F = ``flow_statistics_dim``.

    Frames are average-pooled to about ``size`` px and :class:`LucasKanadeFlow` gives the flow from
    the previous step at three scales (tanh-coded, -1..1). Per scale and per region (the whole frame
    and the cells of each ``grids`` g x g grid), the mean of ``FLOW_STAT_FIELDS``: the flow ``u, v``,
    its magnitude ``|u| + |v|``, curl and divergence (central differences), and its first moments
    about the region's centre, expansion ``x u + y v`` and rotation ``x v - y u`` (coordinates
    standardised per region; +x right, +y down). These say which way things move, turn, approach or
    recede, whatever they look like: what a frozen image embedding hardly shows. ``moving_part``
    adds, per scale, ``MOVING_PART_FIELDS`` of what moves against the frame (the flow minus its
    median over the frame, i.e. camera shake and pans removed, each pixel weighted by its squared
    magnitude): its centre ``x, y`` (-1..1, +x right, +y down), its flow ``u, v`` and the mean
    magnitude. A small part rising or falling in a shaking view is hardly visible in the region
    means; its centre's trend over time says which way it goes. ``camera_motion="affine"`` removes a
    robust affine fit of the flow instead of its median, so a hand-held camera's zoom and roll drop
    out too. ``brightness_norm`` standardises
    each frame's grey level (mean and spread over the frame) before the flow, so flicker and exposure
    changes, which brightness constancy reads as motion, drop out. No weights; step t depends on
    steps t and t-1 only, so right padding never changes the real steps.
    """

    def __init__(self, size: int = 64, grids=(2, 3), moving_part: bool = False, brightness_norm: bool = False,
                 camera_motion: str = "median", **kwargs):
        super().__init__(**kwargs)
        if camera_motion not in CAMERA_MOTIONS:
            raise ValueError(f"camera_motion must be one of {CAMERA_MOTIONS}, not {camera_motion!r}")
        self.size = int(size)
        self.grids = tuple(int(g) for g in grids)
        self.moving_part = bool(moving_part)
        self.brightness_norm = bool(brightness_norm)
        self.camera_motion = camera_motion
        self.flow = LucasKanadeFlow(name="lucas_kanade")

    def build(self, input_shape):
        self.flow.build(input_shape)  # no weights: the flow layer only needs marking as built

    def _pool_factor(self, side: int) -> int:
        return max(1, side // self.size)

    def _region_matrices(self, height: int, width: int):
        """``[H*W, R]`` averaging weights per region and the same times each pixel's standardised x and y."""
        import numpy as np

        cells = [(0, height, 0, width)]
        for g in self.grids:
            cells += [(i * height // g, (i + 1) * height // g, j * width // g, (j + 1) * width // g)
                      for i in range(g) for j in range(g)]
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
        mean_w, x_w, y_w = (np.zeros((height * width, len(cells))) for _ in range(3))
        for r, (top, bottom, left, right) in enumerate(cells):
            inside = np.zeros((height, width), bool)
            inside[top:bottom, left:right] = True
            count = max(int(inside.sum()), 1)
            x, y = xs[inside], ys[inside]
            x = (x - x.mean()) / (x.std() + 1e-6) if x.size else x
            y = (y - y.mean()) / (y.std() + 1e-6) if y.size else y
            mean_w[inside.ravel(), r] = 1.0 / count
            x_w[inside.ravel(), r] = x / count
            y_w[inside.ravel(), r] = y / count
        return [ops.convert_to_tensor(m.astype("float32")) for m in (mean_w, x_w, y_w)]

    def call(self, frames):
        batch, steps = ops.shape(frames)[0], ops.shape(frames)[1]
        side = frames.shape[2]
        factor = self._pool_factor(side)
        if factor > 1:
            flat = ops.reshape(ops.cast(frames, "float32"), (-1, side, frames.shape[3], 3))
            pooled = ops.average_pool(flat, factor, factor)
            frames = ops.reshape(pooled, (batch, steps, pooled.shape[1], pooled.shape[2], 3))
        if self.brightness_norm:
            frames = standardise_brightness(frames)
        coded = ops.cast(self.flow(frames), "float32") / 127.5 - 1.0  # [B, T, h, w, 2K]
        height, width, channels = coded.shape[2], coded.shape[3], coded.shape[4]
        mean_w, x_w, y_w = self._region_matrices(height, width)
        flow = ops.reshape(coded, (-1, height, width, channels))
        padded = ops.pad(flow, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="symmetric")
        d_dx = (padded[:, 1:-1, 2:] - padded[:, 1:-1, :-2]) / 2
        d_dy = (padded[:, 2:, 1:-1] - padded[:, :-2, 1:-1]) / 2
        u, v = flow[..., 0::2], flow[..., 1::2]  # [N, h, w, K]
        curl = d_dx[..., 1::2] - d_dy[..., 0::2]
        divergence = d_dx[..., 0::2] + d_dy[..., 1::2]

        def pixels(field):
            return ops.reshape(field, (-1, height * width, channels // 2))

        def region_mean(field, weights):  # [N, h*w, K] x [h*w, R] -> [N, K, R]
            return ops.einsum("npk,pr->nkr", pixels(field), weights)

        stats = [region_mean(u, mean_w), region_mean(v, mean_w), region_mean(ops.abs(u) + ops.abs(v), mean_w),
                 region_mean(curl, mean_w), region_mean(divergence, mean_w),
                 region_mean(u, x_w) + region_mean(v, y_w), region_mean(v, x_w) - region_mean(u, y_w)]
        stats = ops.reshape(ops.stack(stats, axis=-1), (batch, steps, -1))  # [B, T, K * R * 7]
        if self.moving_part:
            part = moving_part_statistics(pixels(u), pixels(v), height, width, self.camera_motion)  # [N, K, 5]
            stats = ops.concatenate([stats, ops.reshape(part, (batch, steps, -1))], axis=-1)
        return ops.cast(stats, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], flow_statistics_dim(self.grids, moving_part=self.moving_part))

    def get_config(self):
        return {**super().get_config(), "size": self.size, "grids": list(self.grids), "moving_part": self.moving_part,
                "brightness_norm": self.brightness_norm, "camera_motion": self.camera_motion}


def standardise_brightness(frames, spread: float = BRIGHTNESS_SPREAD, eps: float = 1e-3):
    """Each frame of ``[B, T, H, W, 3]`` (0..255) shifted and scaled so that its grey level has mean
    127.5 and standard deviation ``spread`` over the frame: a global brightness or contrast change
    between frames leaves no trace. A flat frame (e.g. padding) becomes flat 127.5."""
    frames = ops.cast(frames, "float32")
    mean = ops.mean(frames, axis=(2, 3, 4), keepdims=True)
    std = ops.std(ops.mean(frames, axis=-1, keepdims=True), axis=(2, 3, 4), keepdims=True)
    return (frames - mean) / (std + eps) * spread + 127.5


def _pixel_coordinates(height: int, width: int):
    """``x, y`` of each pixel, row by row, -1..1 (+x right, +y down): two ``[h*w]`` float32 arrays."""
    import numpy as np

    ys, xs = np.mgrid[0:height, 0:width].astype("float32")
    return ((xs.ravel() - (width - 1) / 2) / max((width - 1) / 2, 1),
            (ys.ravel() - (height - 1) / 2) / max((height - 1) / 2, 1))


def affine_flow_residual(u, v, height: int, width: int, iterations: int = 3, eps: float = 1e-6):
    """The flow ``u, v`` (``[N, h*w, K]``, pixels row by row) minus a robust affine fit of it over
    the frame (``u ~ a + b x + c y``, likewise ``v``): the camera's translation, zoom, roll and shear
    removed, what moves against them left. Iteratively reweighted least squares with Cauchy weights
    (scale: 1.4826 x the median residual), so a moving part of under half the frame barely pulls the fit."""
    import numpy as np

    xs, ys = _pixel_coordinates(height, width)
    design = ops.convert_to_tensor(np.stack([np.ones_like(xs), xs, ys], axis=1))  # [P, 3]
    weight = ops.ones_like(u)
    for _ in range(iterations + 1):
        gram = ops.einsum("pi,npk,pj->nkij", design, weight, design) + eps * ops.eye(3)[None, None]
        rhs = ops.stack([ops.einsum("pi,npk->nki", design, weight * u),
                         ops.einsum("pi,npk->nki", design, weight * v)], axis=-1)
        coefficients = ops.solve(gram, rhs)  # [N, K, 3, 2]
        residual_u = u - ops.einsum("pi,nki->npk", design, coefficients[..., 0])
        residual_v = v - ops.einsum("pi,nki->npk", design, coefficients[..., 1])
        size = ops.sqrt(residual_u * residual_u + residual_v * residual_v)
        scale = 1.4826 * ops.quantile(size, 0.5, axis=1, keepdims=True) + 1e-4
        weight = 1.0 / (1.0 + ops.square(size / (2.0 * scale)))
    return residual_u, residual_v


def moving_part_statistics(u, v, height: int, width: int, camera_motion: str = "median", eps: float = 1e-6):
    """``MOVING_PART_FIELDS`` of the flow ``u, v`` (``[N, h*w, K]``, pixels row by row) against the
    camera's motion (``median``: its median over the frame; ``affine``: :func:`affine_flow_residual`):
    ``[N, K, 5]``. With nothing moving the centre and flow are 0."""
    if camera_motion == "affine":
        u, v = affine_flow_residual(u, v, height, width)
    else:
        u = u - ops.quantile(u, 0.5, axis=1, keepdims=True)
        v = v - ops.quantile(v, 0.5, axis=1, keepdims=True)
    weight = u * u + v * v
    total = ops.mean(weight, axis=1) + eps  # [N, K]
    xs, ys = (ops.convert_to_tensor(c)[None, :, None] for c in _pixel_coordinates(height, width))

    def weighted(field):
        return ops.mean(weight * field, axis=1) / total

    magnitude = ops.mean(ops.sqrt(weight), axis=1)
    return ops.stack([weighted(xs), weighted(ys), weighted(u), weighted(v), magnitude], axis=-1)


def flow_statistics_dim(grids=(2, 3), scales=FLOW_SCALES, moving_part: bool = False) -> int:
    """Length of :class:`FlowStatistics`' vector per step."""
    regions = len(scales) * (1 + sum(g * g for g in grids)) * len(FLOW_STAT_FIELDS)
    return regions + (len(scales) * len(MOVING_PART_FIELDS) if moving_part else 0)
