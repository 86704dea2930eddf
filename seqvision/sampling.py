"""Which frame indices to take from a clip: uniform, stride, every N seconds (pure NumPy).

Every sampler returns sorted, unique ``int64 [T]`` indices inside ``[start, end)`` with
``end`` clipped to ``num_frames``. None of them repeats or invents a frame: when the range
holds fewer frames than asked for, the result is shorter and the caller pads (and records the
true length in the mask).
"""
from __future__ import annotations

import math

import numpy as np

from seqvision.errors import SeqvisionError


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise SeqvisionError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise SeqvisionError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_range(num_frames, start, end) -> tuple[int, int]:
    """``[start, stop)`` with ``stop = min(end, num_frames)``; ``stop <= start`` means empty."""
    num_frames = _check_int("num_frames", num_frames, 0)
    start = _check_int("start", start, 0)
    if end is None:
        return start, num_frames
    end = _check_int("end", end, 0)
    if end < start:
        raise SeqvisionError(f"end ({end}) must be >= start ({start})")
    return start, min(end, num_frames)


def _check_max_len(max_len) -> int | None:
    return None if max_len is None else _check_int("max_len", max_len, 1)


def sample_uniform_indices(num_frames: int, seq_len: int, start: int = 0, end: int | None = None,
                           offset: float = 0.5) -> np.ndarray:
    """``seq_len`` indices spread evenly over ``[start, end)``, TSN-style.

    The range is cut into ``seq_len`` equal segments and the frame at fraction ``offset`` of
    each segment is taken (0.5, the default, is its centre), so the samples cover the whole
    range; other offsets give temporally shifted views of the same clip. A range of
    ``seq_len`` frames or fewer gives every frame in it. Returns int64 ``[min(seq_len, frames in range)]``.
    """
    seq_len = _check_int("seq_len", seq_len, 1)
    start, stop = _check_range(num_frames, start, end)
    offset = float(offset)
    if not 0 <= offset < 1:
        raise SeqvisionError(f"offset must be in [0, 1), got {offset}")
    n = max(stop - start, 0)
    if n <= seq_len:
        return np.arange(start, start + n, dtype=np.int64)
    k = np.arange(seq_len, dtype=np.int64)
    if offset == 0.5:
        # Integer arithmetic: floor((k + 0.5) * n / seq_len) without float rounding surprises.
        return start + ((2 * k + 1) * n) // (2 * seq_len)
    return start + np.minimum(np.floor((k + offset) * n / seq_len).astype(np.int64), n - 1)


def sample_uniform_batch(lengths, seq_len: int | None, rng: np.random.Generator | None = None
                         ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`sample_uniform_indices` for many sequences at once, padded: ``(index int64 [N, T],
    mask bool [N, T])`` for sequences of ``lengths [N]``.

    Without ``rng`` each row is ``sample_uniform_indices(length, seq_len)`` (segment centres);
    with it, each segment gives a random frame of its own (training jitter). Sequences of
    ``seq_len`` frames or fewer keep every frame and are right-padded (mask False, index 0).
    ``seq_len=None`` keeps every frame, T = the longest.
    """
    lengths = np.asarray(lengths, np.int64)
    if seq_len is None:
        steps = np.arange(lengths.max() if len(lengths) else 0)
        mask = steps < lengths[:, None]
        return np.where(mask, steps, 0), mask
    seq_len = _check_int("seq_len", seq_len, 1)
    steps = np.arange(seq_len, dtype=np.int64)
    if rng is None:  # the integer form of sample_uniform_indices' centres
        uniform = ((2 * steps + 1) * lengths[:, None]) // (2 * seq_len)
    else:
        # Integer segment bounds [lo, hi): each segment of a sequence longer than seq_len holds at
        # least one frame of its own, so the draws are strictly increasing (no frame twice).
        low = (steps * lengths[:, None]) // seq_len
        high = ((steps + 1) * lengths[:, None]) // seq_len
        uniform = low + np.floor(rng.random((len(lengths), seq_len)) * (high - low)).astype(np.int64)
    long = lengths[:, None] > seq_len
    mask = long | (steps < lengths[:, None])
    return np.where(long, uniform, np.where(mask, steps, 0)), mask


def view_offsets(views: int) -> tuple[float, ...]:
    """Segment offsets of ``views`` evenly shifted uniform samplings: ``(v + 0.5) / views``.

    One view is the segment centres; four views take the frames at 1/8, 3/8, 5/8 and 7/8
    of each segment, a fixed (so cacheable) stand-in for random temporal jitter.
    """
    views = _check_int("views", views, 1)
    return tuple((v + 0.5) / views for v in range(views))


def sample_stride_indices(num_frames: int, stride: int, start: int = 0, end: int | None = None,
                          max_len: int | None = None) -> np.ndarray:
    """Every ``stride``-th frame from ``start``: ``start, start + stride, …`` below ``end``.

    At most ``max_len`` indices when given. Returns int64 ``[T]``.
    """
    stride = _check_int("stride", stride, 1)
    start, stop = _check_range(num_frames, start, end)
    max_len = _check_max_len(max_len)
    if max_len is not None:
        stop = min(stop, start + stride * max_len)
    return np.arange(start, max(stop, start), stride, dtype=np.int64)


def sample_every_seconds_indices(num_frames: int, fps: float, seconds: float, start: int = 0,
                                 end: int | None = None, max_len: int | None = None) -> np.ndarray:
    """One frame every ``seconds``: the frame whose time is nearest ``start / fps + k * seconds``.

    Frame ``i`` is taken to show time ``i / fps`` (constant frame rate). When ``seconds`` is
    shorter than a frame, several times map to one frame; it is taken once. At most
    ``max_len`` indices when given. Returns int64 ``[T]``.
    """
    fps = _check_positive("fps", fps)
    seconds = _check_positive("seconds", seconds)
    start, stop = _check_range(num_frames, start, end)
    max_len = _check_max_len(max_len)
    if stop <= start:
        return np.zeros(0, dtype=np.int64)
    step = seconds * fps  # frames between samples, may be fractional
    if step <= 1:  # consecutive sample times round to consecutive (or equal) frames: every frame
        return np.arange(start, stop if max_len is None else min(stop, start + max_len), dtype=np.int64)
    if step >= stop - start:  # the second sample would fall past the end (a huge step may even be inf)
        return np.array([start], dtype=np.int64)
    count = math.floor((stop - 1 - start) / step) + 1  # k with start + k * step <= stop - 1 (before rounding)
    if max_len is not None:
        count = min(count, max_len)
    offsets = np.floor(np.arange(count + 1) * step + 0.5)  # float: a huge step must not overflow int64
    indices = start + offsets[offsets < stop - start].astype(np.int64)
    return indices[:max_len] if max_len is not None else indices


def _check_positive(name: str, value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise SeqvisionError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise SeqvisionError(f"{name} must be a finite number > 0, got {value}"
                             + (" (the video reports no frame rate)" if name == "fps" else ""))
    return value
