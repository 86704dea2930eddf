"""Most informative frame: the frame of each video an image classifier finds most typical of its class.

For ``VIDEOS_DIR/<category>/<video>``, every frame (or every ``every``-th) is decoded in one
sequential pass, streamed into batches of ``batch_size`` and classified; the frame with the
highest probability of the video's own category (its "true class", a line of the labels file)
is the most informative frame (MIF).
"""
from __future__ import annotations

import csv
import io
import logging
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from seqvision.errors import SeqvisionError
from seqvision.io import atomic_write_text

log = logging.getLogger(__name__)

# Pixel scaling the classifier expects: x * factor + offset on 0..255 pixels.
SCALES = {"0..1": (1 / 255.0, 0.0), "-1..1": (1 / 127.5, -1.0), "0..255": (1.0, 0.0)}
DEFAULT_BATCH_SIZE = 64
CSV_COLUMNS = ("category", "fname", "mif_idx", "mif_time_s", "softmax_true")


@dataclass
class ImageClassifier:
    """``predict(images float32 [B, S, S, 3], scaled) -> [B, K]`` (logits or probabilities).

    ``size``: the square input side the model fixes (None when it takes any size);
    ``default_scale``: a key of ``SCALES``.
    """

    predict: Callable[[np.ndarray], np.ndarray]
    size: int | None
    default_scale: str
    owner: object = None  # a loaded SavedModel owns the variables its functions use: keep it alive


def load_image_classifier(model: str | Path) -> ImageClassifier:
    """A ``.keras``/``.h5`` file (default scale 0..255: such models usually rescale inside), or a
    SavedModel folder / TF Hub handle (default scale 0..1, the TF Hub image convention)."""
    path = Path(model)
    if path.is_file():
        if path.suffix.lower() not in (".keras", ".h5"):
            raise SeqvisionError(f"{path}: not a model (expected a .keras or .h5 file, a SavedModel folder or a TF Hub "
                                 "handle)")
        import keras

        from seqvision.model_files import load_model_file

        keras_model = load_model_file(path) if path.suffix.lower() == ".keras" else keras.models.load_model(path)
        return ImageClassifier(lambda x: np.asarray(keras_model.predict_on_batch(x)),
                               _square_side(keras_model.input_shape), "0..255")
    if path.is_dir() and not (path / "saved_model.pb").exists():
        raise SeqvisionError(f"{path}: not a SavedModel folder (no saved_model.pb)")
    import tensorflow as tf

    from seqvision.backbone_layers import image_function, load_saved_model

    module = load_saved_model(str(model))
    function, spec = image_function(module, str(model))
    return ImageClassifier(lambda x: np.asarray(function(tf.constant(x, spec.dtype))),
                           _square_side(tuple(spec.shape)), "0..1", owner=module)


def _square_side(shape) -> int | None:
    shape = shape[0] if isinstance(shape, list) else shape
    if len(shape) == 4 and shape[1] and shape[1] == shape[2]:
        return int(shape[1])
    return None


def read_labels(path: str | Path) -> list[str]:
    """Class names, line ``i`` naming output ``i``; ValueError for an empty file or a repeated name."""
    lines = [line.strip() for line in Path(path).read_text().splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if not lines or not all(lines):
        raise SeqvisionError(f"{path}: expected one class name per line, with no blank lines")
    repeated = sorted({n for n in lines if lines.count(n) > 1})
    if repeated:
        raise SeqvisionError(f"{path}: class names repeated: {', '.join(repeated)}")
    return lines


def class_index(category: str, labels: list[str]) -> int | None:
    """Index of ``category`` in ``labels`` (exact, else the one case-insensitive match), or None."""
    if category in labels:
        return labels.index(category)
    folded = [i for i, name in enumerate(labels) if name.casefold() == category.casefold()]
    return folded[0] if len(folded) == 1 else None


def iter_video_frames(path: str | Path, every: int = 1, size: int | None = None) -> tuple[float, Iterator]:
    """``(fps, iterator of (frame index, RGB uint8 [S, S, 3]))`` over every ``every``-th frame, one
    sequential decode (``grab`` every frame, convert only the kept ones). fps is 0.0 when unknown."""
    from seqvision.video_stream import VideoStream

    stream = VideoStream(path, lambda index: index % every == 0, size)
    return stream.fps, ((index, image) for index, image in stream if image is not None)


def to_probabilities(outputs: np.ndarray) -> np.ndarray:
    """``outputs [B, K]`` as probabilities: kept when already (non-negative, rows sum to 1), else softmax."""
    outputs = np.asarray(outputs, np.float64)
    if (outputs >= 0).all() and np.allclose(outputs.sum(axis=1), 1.0, atol=1e-3):
        return outputs
    shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


@dataclass
class VideoMIF:
    """Per video: ``frame_indices [F]``, ``probs [F, K]``, the chosen frame and its true-class probability."""

    category: str
    path: Path
    fps: float
    frame_indices: np.ndarray
    probs: np.ndarray
    mif_idx: int
    softmax_true: float
    frame: np.ndarray | None  # RGB uint8 [S, S, 3] when asked to keep it

    @property
    def mif_time_s(self) -> float | None:
        return self.mif_idx / self.fps if self.fps > 0 else None


def video_mif(classifier: ImageClassifier, path: str | Path, category: str, true_class: int, size: int,
              scale: str, every: int = 1, batch_size: int = DEFAULT_BATCH_SIZE, keep_frame: bool = False) -> VideoMIF:
    """Classify every ``every``-th frame of ``path`` in batches; the frame with the highest ``true_class``
    probability wins (the first on ties). Raises VideoError for a video that cannot be read."""
    from seqvision.video import VideoError

    factor, offset = SCALES[scale]
    fps, frames = iter_video_frames(path, every, size)
    batch = np.empty((batch_size, size, size, 3), np.float32)
    indices, probs = [], []
    best = (-1.0, -1, None)  # (probability, frame index, frame)
    kept: list[np.ndarray] = []

    def flush(n: int):
        nonlocal best
        out = to_probabilities(classifier.predict(batch[:n]))
        if out.ndim != 2 or out.shape[0] != n or true_class >= out.shape[1]:
            raise SeqvisionError(f"the model gives outputs of shape {out.shape} for {n} images; expected [{n}, K] "
                                 f"with K > {true_class} (one per line of the labels file)")
        probs.append(out)
        top = int(np.argmax(out[:, true_class]))
        if out[top, true_class] > best[0]:
            best = (float(out[top, true_class]), indices[-n + top], kept[top] if keep_frame else None)

    n = 0
    for index, frame in frames:
        batch[n] = frame * factor + offset
        indices.append(index)
        if keep_frame:
            kept.append(frame)
        n += 1
        if n == batch_size:
            flush(n)
            n, kept = 0, []
    if n:
        flush(n)
    if not indices:
        raise VideoError(path, "no decodable frames")
    probs_all = np.concatenate(probs).astype(np.float32)
    return VideoMIF(category, Path(path), fps, np.array(indices, np.int64), probs_all, best[1], best[0], best[2])


def find_informative_frames(videos_dir: str | Path, model: str | Path, labels: list[str], *, every: int = 1,
                            size: int | None = None, scale: str | None = None,
                            batch_size: int = DEFAULT_BATCH_SIZE, keep_frames: bool = False,
                            progress: bool = True) -> tuple[list[VideoMIF], dict]:
    """The MIF of each video in ``videos_dir/<category>/``.

    Returns ``(results, problems)``; ``problems``: ``{"unknown_categories": [...],
    "unknown_category_videos": count, "unreadable": [(path, reason)]}``; those videos are skipped.
    ``size`` defaults to the model's input side; ``scale`` (a key of ``SCALES``) to the model
    kind's (see :func:`load_image_classifier`).
    """
    from tqdm import tqdm

    from seqvision.frames import find_videos
    from seqvision.video import VideoError

    if every < 1 or batch_size < 1:
        raise SeqvisionError(f"every and batch_size must be >= 1, got {every} and {batch_size}")
    if scale is not None and scale not in SCALES:
        raise SeqvisionError(f"unknown scale {scale!r}; choose one of {list(SCALES)}")
    videos = find_videos(videos_dir)
    unknown = sorted({c for c, _ in videos if class_index(c, labels) is None})
    if unknown:
        log.warning("categories not in the labels file, skipped: %s", ", ".join(unknown))
    known = [(c, p) for c, p in videos if c not in unknown]
    classifier = load_image_classifier(model)
    size = size or classifier.size
    if size is None:
        raise SeqvisionError(f"{model}: the model takes any input size; pass --size")
    if classifier.size and size != classifier.size:
        raise SeqvisionError(f"{model}: the model takes {classifier.size} px images, not --size {size}")
    results, unreadable = [], []
    bar = tqdm(known, disable=not progress, file=sys.stderr, unit="video", desc="mif")
    for category, path in bar:
        try:
            results.append(video_mif(classifier, path, category, class_index(category, labels), size,
                                     scale or classifier.default_scale, every, batch_size, keep_frames))
        except VideoError as error:
            log.warning("skipped %s", error)
            unreadable.append((str(path), error.reason))
    bar.close()
    return results, {"unknown_categories": unknown, "unknown_category_videos": len(videos) - len(known),
                     "unreadable": unreadable}


# === Outputs (atomic) ===

def write_mif_csv(results: list[VideoMIF], path: str | Path) -> Path:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in results:
        time_s = "" if r.mif_time_s is None else f"{r.mif_time_s:.3f}"
        writer.writerow([r.category, r.path.name, r.mif_idx, time_s, f"{r.softmax_true:.6f}"])
    return atomic_write_text(path, text.getvalue())


def _atomic_write_bytes(path: Path, write: Callable) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_all_probs(results: list[VideoMIF], labels: list[str], path: str | Path) -> Path:
    """``.npz``: ``<category>/<fname>`` -> probabilities ``[F, K]``, ``<category>/<fname>:frames`` -> frame
    indices ``[F]``, and ``labels`` ``[K]``."""
    arrays = {"labels": np.array(labels)}
    for r in results:
        key = f"{r.category}/{r.path.name}"
        arrays[key], arrays[f"{key}:frames"] = r.probs, r.frame_indices
    return _atomic_write_bytes(Path(path), lambda f: np.savez(f, **arrays))


def save_mif_frames(results: list[VideoMIF], out_dir: str | Path) -> list[Path]:
    """Each chosen frame as ``out_dir/<category>/<video stem>_mif<index>.png``."""
    import cv2

    written = []
    for r in results:
        ok, png = cv2.imencode(".png", cv2.cvtColor(r.frame, cv2.COLOR_RGB2BGR))
        if not ok:
            raise SeqvisionError(f"cannot encode the chosen frame of {r.path} as PNG")
        target = Path(out_dir) / r.category / f"{r.path.stem}_mif{r.mif_idx}.png"
        written.append(_atomic_write_bytes(target, lambda f: f.write(png.tobytes())))
    return written
