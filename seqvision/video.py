"""Open a video, count its decodable frames, read the frames at chosen indices (OpenCV, no TF).

The truth is a plain sequential decode (``while cap.read()``): frame ``i`` is the ``i``-th
frame it returns and the true length is how many it returns before the first failure.
Container metadata (frame count, sometimes fps) can lie; it is only used as a first guess.

Speed: one sequential pass that ``grab()``s (decodes) every frame but ``retrieve()``s (converts
to BGR) only the kept ones. Uniform sampling needs the true length, so that pass runs to the
end; when the length turns out to differ from the metadata, the indices are recomputed and
frames not already kept are read in a second pass (rare). Modes whose indices do not depend on
the length (explicit indices, a bounded stride…) stop after the last wanted frame and may
jump over long gaps with one verified seek (see ``SEEK_MIN_GAP``).

Rotation: OpenCV 5 applies the rotation stored in the container (``video_90.mov`` decodes as
568×320, not 320×568). Whatever the sequential decode returns is what we return; ``width`` and
``height`` in :class:`VideoInfo` are those of the decoded frames.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

# FFmpeg reads this once, when OpenCV first loads it: silence its per-packet decoder chatter
# ("[h264 @ 0x…] Invalid NAL unit size") unless the user asked for a level. Our own errors are
# raised as VideoError and are not affected.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from seqvision.errors import SeqvisionError  # noqa: E402
from seqvision.sampling import (  # noqa: E402
    sample_every_seconds_indices, sample_stride_indices, sample_uniform_indices)

VIDEO_EXTENSIONS: frozenset[str] = frozenset({
    ".avi", ".mp4", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".m4v", ".ogv", ".ogg", ".flv",
    ".wmv", ".asf", ".3gp", ".3g2", ".gif", ".ts", ".mts", ".m2ts", ".vob", ".mxf", ".dv",
})

# A forward jump of at least this many frames may use one seek instead of grabbing every frame
# in between. A seek decodes from the keyframe before the target, so it only pays when the gap
# is longer than a typical GOP (x264 default: 250). None disables seeking.
SEEK_MIN_GAP: int | None = 300

# Containers whose demuxers seek through a frame index; MPEG-PS/TS and Ogg seek by bisection
# and land on the wrong frame (sine_stereo_mp2.mpg: a seek to 9 returns frame 13).
_SEEKABLE_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v", ".3gp", ".mkv", ".webm", ".avi"})


# Containers estimate lengths (mkv/webm from duration x fps) and miss a frame or two; a file that
# decodes under 90% of its listed frames has lost part of its content.
MIN_DECODED_FRACTION = 0.9


class VideoError(SeqvisionError):
    """A video that cannot be read; ``str()`` is ``"PATH: reason"``."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason

    def __reduce__(self):  # picklable across process pools despite the two-argument constructor
        return (type(self), (self.path, self.reason))


@dataclass
class VideoInfo:
    """What is known about a video.

    ``num_frames``: true decodable count, or None when the call did not decode to the end
    (``probe_video(count_frames=False)``, or a read that stopped after its last wanted frame).
    ``metadata_frames``: what the container claims (0 when unknown). ``fps``: container frame
    rate, 0.0 when unknown. ``width``/``height``: pixels of the decoded (auto-rotated) frames.
    """

    path: str
    num_frames: int | None
    fps: float
    width: int
    height: int
    metadata_frames: int


def _quiet_opencv():
    """Lower OpenCV's own log level (its WARN lines on unreadable files); returns the old one."""
    try:
        return cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    except AttributeError:  # pragma: no cover - builds without the logging utils
        return None


def _restore_opencv_log(level) -> None:
    if level is not None:
        cv2.utils.logging.setLogLevel(level)


if "OPENCV_LOG_LEVEL" not in os.environ:
    # Once for the process: a per-call lower/restore races between decoding threads, and a
    # thread restoring the level lets another's "can't be used to capture by name" through.
    _quiet_opencv()


def _open(path: Path) -> cv2.VideoCapture:
    if not path.exists():
        raise VideoError(path, "file not found")
    if not path.is_file():
        raise VideoError(path, "not a file")
    size = path.stat().st_size
    if size == 0:
        raise VideoError(path, "empty file (0 bytes)")
    old = _quiet_opencv()
    try:
        cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    finally:
        _restore_opencv_log(old)
    if not cap.isOpened():
        raise VideoError(path, f"cannot be opened as a video ({size} bytes; not a video, "
                               "or a truncated or unsupported container)")
    return cap


def _fourcc(cap: cv2.VideoCapture) -> str:
    code = int(cap.get(cv2.CAP_PROP_FOURCC))
    text = "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4))
    return text if text.isprintable() and text.strip() else "unknown"


def _metadata(cap: cv2.VideoCapture) -> tuple[int, float]:
    """``(frame count, fps)`` as the container claims them; 0 where unknown or nonsense."""
    count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    fps = cap.get(cv2.CAP_PROP_FPS)
    count = int(count) if math.isfinite(count) and count > 0 else 0
    fps = float(fps) if math.isfinite(fps) and fps > 0 else 0.0
    return count, fps


def _to_rgb(frame: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    elif frame.shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    else:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    if size is not None and (frame.shape[1], frame.shape[0]) != size:
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    return frame


def normalize_size(size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    """``size`` as ``(width, height)``: an int is a square side; None keeps the source size."""
    if size is None:
        return None
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (int(size), int(size))
    try:
        width, height = (int(s) for s in size)
    except (TypeError, ValueError):
        raise SeqvisionError(f"size must be an int or a (width, height) pair, got {size!r}") from None
    if width < 1 or height < 1:
        raise SeqvisionError(f"size must be positive, got {size!r}")
    return width, height


class _Pass:
    """One sequential pass over a video that keeps the frames at wanted indices.

    ``pos`` is the index of the frame the next ``grab()`` returns. A forward jump of at least
    ``SEEK_MIN_GAP`` frames may seek instead, only in containers with a frame index and only
    while every frame grabbed so far sits on the constant-frame-rate time grid. A seek is kept
    if OpenCV then reports the target frame number and the landed frame's timestamp is where
    that grid puts the target; otherwise the video is reopened and the gap grabbed, and the
    pass seeks no more. It also stops seeking after a seek that cost more than grabbing the gap.
    """

    def __init__(self, path: Path, cap: cv2.VideoCapture, fps: float, size: tuple[int, int] | None,
                 allow_seek: bool):
        self.path, self.cap, self.fps, self.size = path, cap, fps, size
        self.pos = 0
        self.eof = False
        self.frames: dict[int, np.ndarray] = {}
        self.source_hw: tuple[int, int] | None = None  # decoded (auto-rotated) frame size
        self.seek_ok = (allow_seek and SEEK_MIN_GAP is not None and fps > 0
                        and path.suffix.lower() in _SEEKABLE_EXTENSIONS)
        self.times: list[tuple[int, float]] = []  # (index, POS_MSEC) of grabbed frames
        self.grab_seconds = 0.0
        self.grabs = 0
        self.seeks = 0

    def run(self, wanted: np.ndarray, stop_at: int | None) -> None:
        """Grab up to frame ``stop_at - 1`` (to the end when None), keeping frames in ``wanted``."""
        targets = sorted({int(i) for i in wanted if i >= self.pos})
        t = 0
        while not self.eof and (stop_at is None or self.pos < stop_at):
            while t < len(targets) and targets[t] < self.pos:
                t += 1
            nxt = targets[t] if t < len(targets) else (stop_at - 1 if stop_at is not None else None)
            grabbed = False
            if nxt is not None and self.seek_ok and nxt - self.pos >= SEEK_MIN_GAP:
                grabbed = self._seek(nxt)
            if not grabbed and not self._grab():
                self.eof = True
                break
            if t < len(targets) and targets[t] == self.pos:
                ok, frame = self.cap.retrieve()
                if not ok or frame is None:
                    # Decoded but not convertible: cap.read() would stop here, so do we.
                    self.eof = True
                    break
                if self.source_hw is None:
                    self.source_hw = frame.shape[:2]
                self.frames[self.pos] = _to_rgb(frame, self.size)
            self.pos += 1

    def _grab(self) -> bool:
        start = time.perf_counter()
        ok = self.cap.grab()
        self.grab_seconds += time.perf_counter() - start
        self.grabs += 1
        if ok and self.seek_ok:
            self.times.append((self.pos, self.cap.get(cv2.CAP_PROP_POS_MSEC)))
        return ok

    def _time_grid(self) -> tuple[float, float] | None:
        """``(t0, dt)`` in ms when every frame grabbed so far sits on the constant-rate grid."""
        if len(self.times) < 2 or self.times[0][0] != 0:
            return None
        dt = 1000.0 / self.fps
        t0 = self.times[0][1]
        tolerance = min(1.0, dt / 4)  # mkv/webm timestamps are whole milliseconds
        if any(abs(ms - (t0 + index * dt)) > tolerance for index, ms in self.times):
            return None
        return t0, dt

    def _seek(self, target: int) -> bool:
        """Try to land on ``target`` and grab it; True when that frame is now grabbed."""
        grid = self._time_grid()
        if grid is None:
            self.seek_ok = False
            return False
        t0, dt = grid
        gap = target - self.pos
        per_grab = self.grab_seconds / max(self.grabs, 1)
        start = time.perf_counter()
        landed = (self.cap.set(cv2.CAP_PROP_POS_FRAMES, target)
                  and int(self.cap.get(cv2.CAP_PROP_POS_FRAMES)) == target
                  and self.cap.grab())
        ms = self.cap.get(cv2.CAP_PROP_POS_MSEC) if landed else math.nan
        landed = landed and abs(ms - (t0 + target * dt)) <= dt / 2
        if time.perf_counter() - start > gap * per_grab:
            self.seek_ok = False  # slower than grabbing (keyframe far behind): not again
        self.seeks += 1
        if landed:
            self.pos = target
            self.times.append((target, ms))
            return True
        self.seek_ok = False
        self._reopen_at(self.pos)
        return False

    def _reopen_at(self, index: int) -> None:
        self.cap.release()
        self.cap = _open(self.path)
        self.pos = 0
        while self.pos < index:
            if not self.cap.grab():
                self.eof = True
                return
            self.pos += 1


def _sampler(indices, seq_len, stride, every_seconds, start, end, max_len, offsets=(0.5,)):
    """Validate the sampling arguments; return ``(mode, sampler(num_frames, fps) -> indices)``.

    Uniform sampling with several ``offsets`` samples the union of those views."""
    modes = [name for name, value in (("seq_len", seq_len), ("stride", stride),
                                      ("every_seconds", every_seconds)) if value is not None]
    if indices is not None:
        if modes:
            raise SeqvisionError(f"give either indices or a sampling mode, not both (got indices and {modes[0]})")
        if start != 0 or end is not None or max_len is not None:
            raise SeqvisionError("start, end and max_len apply to sampling modes, not to explicit indices")
        explicit = np.asarray(indices)
        if explicit.ndim != 1 or explicit.size == 0 or not np.issubdtype(explicit.dtype, np.integer):
            raise SeqvisionError(f"indices must be a non-empty 1-D sequence of integers, got {indices!r}")
        if explicit.min() < 0:
            raise SeqvisionError(f"indices must be >= 0, got {int(explicit.min())}")
        explicit = explicit.astype(np.int64)
        return "indices", lambda n, fps: explicit
    if len(modes) != 1:
        raise SeqvisionError("give exactly one of seq_len, stride or every_seconds"
                             + (f" (got {', '.join(modes)})" if modes else ""))
    if seq_len is not None:
        if max_len is not None:
            raise SeqvisionError("max_len applies to stride and every_seconds; seq_len already bounds the length")
        for offset in offsets:
            sample_uniform_indices(0, seq_len, start, end, offset)  # validates
        return "uniform", lambda n, fps: np.unique(np.concatenate(
            [sample_uniform_indices(n, seq_len, start, end, offset) for offset in offsets]))
    if stride is not None:
        sample_stride_indices(0, stride, start, end, max_len)
        return "stride", lambda n, fps: sample_stride_indices(n, stride, start, end, max_len)
    sample_every_seconds_indices(0, 1.0, every_seconds, start, end, max_len)
    return "every_seconds", lambda n, fps: sample_every_seconds_indices(n, fps, every_seconds, start, end, max_len)


def _stop_at(mode: str, sampler, wanted: np.ndarray, fps: float, end: int | None,
             max_len: int | None) -> int | None:
    """How far the first pass must decode for ``wanted`` to be final; None = to the end.

    Uniform sampling depends on the true length of ``[start, end)``; stride and every-N-seconds
    only on whether their next frame exists, so they can stop once the list cannot grow.
    """
    if mode == "indices":
        return int(wanted.max()) + 1
    if mode == "uniform":
        return end
    if end is None and max_len is None:
        return None
    complete = sampler(end if end is not None else 2 ** 62, fps)
    if len(wanted) and np.array_equal(wanted, complete):
        return int(wanted[-1]) + 1
    return end


def check_min_decoded_fraction(value: float) -> float:
    """``value`` if it is a fraction in [0, 1], else ValueError."""
    if not 0 <= value <= 1:
        raise SeqvisionError(f"min_decoded_fraction must be in [0, 1], got {value}")
    return value


def read_video_frames(path: str | Path, indices=None, *, seq_len: int | None = None,
                      stride: int | None = None, every_seconds: float | None = None, start: int = 0,
                      end: int | None = None, max_len: int | None = None,
                      size: int | tuple[int, int] | None = None, offsets: tuple[float, ...] = (0.5,),
                      min_decoded_fraction: float = MIN_DECODED_FRACTION) -> tuple[np.ndarray, np.ndarray, VideoInfo]:
    """Read the frames at ``indices`` or at those a sampling mode picks.

    Give explicit ``indices`` (any order, repeats allowed) or exactly one mode:
    ``seq_len`` (uniform over ``[start, end)``, see :func:`sample_uniform_indices`; with several
    segment ``offsets`` the sorted union of those views, see :func:`view_offsets`), ``stride``
    or ``every_seconds`` (both optionally capped by ``max_len``). ``size``: an int resizes to a
    square, a pair to ``(width, height)``, with ``cv2.INTER_AREA``.

    A video read to its end that decodes fewer than ``min_decoded_fraction`` of the frames its
    container lists is refused as truncated or damaged (sampling what is left would cover only
    part of the action); ``0`` accepts whatever decodes.

    Returns ``(frames uint8 [T, H, W, 3] RGB, indices int64 [T], info)``: the frames are those
    at ``indices`` in a full sequential decode. Raises ``VideoError`` (path + reason) for a
    missing, empty, non-video or undecodable file, or explicit indices past its end, and
    ``ValueError`` for bad arguments.
    """
    path = Path(path)
    size = normalize_size(size)
    check_min_decoded_fraction(min_decoded_fraction)
    if seq_len is None and tuple(offsets) != (0.5,):
        raise SeqvisionError("offsets apply to uniform (seq_len) sampling only")
    mode, sampler = _sampler(indices, seq_len, stride, every_seconds, start, end, max_len, tuple(offsets))
    cap = _open(path)
    metadata_frames, fps = _metadata(cap)
    fourcc = _fourcc(cap)
    if mode == "every_seconds" and fps <= 0:
        cap.release()
        raise VideoError(path, "the video reports no frame rate, so every_seconds cannot be used")
    wanted = sampler(metadata_frames, fps)
    stop_at = _stop_at(mode, sampler, wanted, fps, end, max_len)
    first = _Pass(path, cap, fps, size, allow_seek=stop_at is not None)
    try:
        first.run(wanted, stop_at)
    except cv2.error as error:
        raise VideoError(path, f"OpenCV failed while decoding: {error.err or error}") from None
    finally:
        first.cap.release()
    if first.eof and first.pos == 0:
        raise VideoError(path, f"no decodable frames (codec {fourcc}, metadata claims {metadata_frames} frames)")
    num_frames = first.pos if first.eof else None
    if num_frames is not None and num_frames < min_decoded_fraction * metadata_frames:
        raise VideoError(path, f"truncated or damaged: only {num_frames} of the {metadata_frames} frames the "
                               f"container lists decode (below min_decoded_fraction={min_decoded_fraction})")
    # Past stop_at the sampler's answer no longer depends on the length (see _stop_at).
    final = sampler(num_frames if first.eof else stop_at, fps)
    if mode == "indices" and num_frames is not None and final.max() >= num_frames:
        raise VideoError(path, f"frame index {int(final.max())} is past the end: the video has "
                               f"{num_frames} decodable frames (metadata claims {metadata_frames})")
    if len(final) == 0:
        raise VideoError(path, f"no frames in the range start={start}, end={end}: the video has "
                               f"{num_frames} decodable frames")
    frames = first.frames
    source_hw = first.source_hw
    missing = sorted(set(final.tolist()) - frames.keys())
    if missing:  # metadata count was wrong and the indices moved: read the new ones
        second = _Pass(path, _open(path), fps, size, allow_seek=True)
        try:
            second.run(np.asarray(missing), stop_at=missing[-1] + 1)
        except cv2.error as error:
            raise VideoError(path, f"OpenCV failed while decoding: {error.err or error}") from None
        finally:
            second.cap.release()
        if second.eof:
            raise VideoError(path, f"frame {second.pos} decoded in one pass but not in the next")
        frames = {**frames, **second.frames}
        source_hw = source_hw or second.source_hw
    try:
        out = np.stack([frames[int(i)] for i in final])
    except ValueError:
        raise VideoError(path, "frame size changes within the video; pass size= to resize") from None
    height, width = source_hw
    info = VideoInfo(str(path), num_frames, fps, int(width), int(height), metadata_frames)
    return out, final.astype(np.int64), info


def probe_video(path: str | Path, count_frames: bool = True) -> VideoInfo:
    """Metadata of a video; with ``count_frames`` also its true length (one grab-only pass).

    Raises ``VideoError`` for a missing, empty or non-video file, and (when counting) for a
    video with no decodable frame.
    """
    path = Path(path)
    cap = _open(path)
    try:
        metadata_frames, fps = _metadata(cap)
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if not count_frames:
            return VideoInfo(str(path), None, fps, width, height, metadata_frames)
        fourcc = _fourcc(cap)
        num_frames = 0
        if cap.grab():
            ok, frame = cap.retrieve()
            if ok and frame is not None:  # decoded size is the truth (rotation applied)
                height, width = frame.shape[:2]
            num_frames = 1
            while cap.grab():
                num_frames += 1
    except cv2.error as error:
        raise VideoError(path, f"OpenCV failed while decoding: {error.err or error}") from None
    finally:
        cap.release()
    if num_frames == 0:
        raise VideoError(path, f"no decodable frames (codec {fourcc}, metadata claims {metadata_frames} frames)")
    return VideoInfo(str(path), num_frames, fps, int(width), int(height), metadata_frames)
