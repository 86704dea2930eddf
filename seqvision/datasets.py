"""tf.data pipelines for clips stored as frame folders or video files.

Each element is ``({"frames": uint8 [T, S, S, 3], "mask": bool [T]}, label int32)``
(batched: a leading ``B``). Frames are RGB in 0..255, right-padded with zeros after
the clip's true length; ``mask`` is True exactly for the frames the sampler returned,
so padding is never inferred from pixel values.

Decoding and resizing are deterministic and may be cached; random augmentation
(one crop / flip per clip, the same for all its frames) runs after the cache.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from seqvision.frames import MIN_FRAMES, find_videos, list_frame_clips, read_frame_folder, too_few_frames_reason
from seqvision.video import VIDEO_EXTENSIONS, VideoError, read_video_frames

log = logging.getLogger(__name__)

UCF_GROUP = re.compile(r"_g(\d+)_c\d+", re.IGNORECASE)


@dataclass(frozen=True)
class Clip:
    """One labelled sample: a frame folder or a video file."""

    path: Path
    label: str

    @property
    def key(self) -> str:
        """``label/stem``, the form UCF101 split files use (without extension)."""
        return f"{self.label}/{_stem(self.path)}"

    @property
    def group(self) -> str:
        """Recording group for leak-free splits: UCF101's ``gNN``, else the clip itself."""
        match = UCF_GROUP.search(self.path.name)
        return f"g{int(match.group(1)):02d}" if match else self.key


def _stem(path: Path) -> str:
    return path.stem if path.suffix.lower() in VIDEO_EXTENSIONS else path.name


def find_clips(data_dir: str | Path) -> list[Clip]:
    """Clips under ``data_dir/<label>/``: frame folders (from extract-frames) or videos.

    A folder holding both kinds is refused: mixing them would silently train on two
    different samplings.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ValueError(f"{data_dir}: not a folder")
    frame_clips = list_frame_clips(data_dir)
    try:
        videos = find_videos(data_dir)
    except ValueError:
        videos = []
    if frame_clips and videos:
        raise ValueError(f"{data_dir}: holds both frame folders and video files; use one kind per folder")
    found = frame_clips or videos
    if not found:
        raise ValueError(f"{data_dir}: no clips found; expected {data_dir}/<label>/<clip>.mp4|avi|… "
                         "or frame folders written by `seqvision extract-frames`")
    return [Clip(Path(path), label) for label, path in found]


def clips_in_list(clips: list[Clip], list_file: str | Path) -> list[Clip]:
    """Keep the clips named in a UCF101-style split file (``Label/v_X_g01_c01.avi [index]``)."""
    wanted = set()
    for line in Path(list_file).read_text().splitlines():
        if line.strip():
            name = line.split()[0].replace("\\", "/")
            label, _, file = name.rpartition("/")
            wanted.add(f"{label}/{_stem(Path(file))}")
    kept = [c for c in clips if c.key in wanted]
    if not kept:
        raise ValueError(f"{list_file}: none of its {len(wanted)} entries match the clips found")
    if len(kept) < len(wanted):
        log.warning("%s: %d of %d listed clips were not found", list_file, len(wanted) - len(kept), len(wanted))
    return kept


def split_train_val(clips: list[Clip], val_fraction: float, seed: int = 0) -> tuple[list[Clip], list[Clip]]:
    """Stratified, group-aware split: clips of one group never land on both sides."""
    from sklearn.model_selection import StratifiedGroupKFold

    if not 0 < val_fraction <= 0.5:
        raise ValueError(f"val_fraction must be in (0, 0.5], got {val_fraction}")
    labels = [c.label for c in clips]
    groups = [c.group for c in clips]
    n_splits = int(1 / val_fraction + 0.5)  # one fold of a k-fold split is held out: 1/k ≈ val_fraction
    n_groups = len(set(groups))
    if n_groups < 2:
        raise ValueError(f"cannot hold out a validation set by group: all {len(clips)} clips are in one group; "
                         "use --val-dir or a split file")
    if n_groups < n_splits:
        log.warning("only %d recording groups: holding out 1/%d of them for validation instead of %.0f%%",
                    n_groups, n_groups, 100 * val_fraction)
        n_splits = n_groups
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class" on small sets
        train_idx, val_idx = next(splitter.split(np.zeros(len(clips)), labels, groups))
    return [clips[i] for i in train_idx], [clips[i] for i in val_idx]


def load_clip(clip_path: str | Path, seq_len: int, img_size: int) -> tuple[np.ndarray, int]:
    """Read ``seq_len`` frames spread over a clip, resized to ``img_size``.

    Returns ``(frames uint8 [seq_len, S, S, 3] right-padded, true length)``.
    Raises ``VideoError`` for an unreadable clip.
    """
    path = Path(clip_path)
    if path.is_dir():
        frames = read_frame_folder(path, size=img_size, seq_len=seq_len)
    else:
        frames, _, info = read_video_frames(path, seq_len=seq_len, size=img_size)
        if info.num_frames is not None and info.num_frames < MIN_FRAMES:  # as extract-frames refuses it
            raise VideoError(path, too_few_frames_reason(info.num_frames))
    length = len(frames)
    if length == 0:
        raise VideoError(path, "no frames")
    padded = np.zeros((seq_len, img_size, img_size, 3), np.uint8)
    padded[:length] = frames
    return padded, length


def make_clip_dataset(
    clips: list[Clip],
    label_names: list[str],
    seq_len: int,
    img_size: int,
    batch_size: int,
    training: bool = False,
    cache: bool = False,
    flip: bool = False,
    min_crop_area: float = 0.7,
    colour_jitter: float = 0.2,
    seed: int = 0,
) -> tf.data.Dataset:
    """Batched ``({"frames", "mask"}, label)`` dataset; see the module docstring.

    A clip that fails to decode is logged (path + reason) and dropped, never fatal.
    ``cache`` keeps decoded clips in memory after the first pass. ``training`` adds
    shuffling and per-clip augmentation (random crop of at least ``min_crop_area``,
    brightness / contrast / saturation jitter of up to ``colour_jitter``, horizontal flip
    only when ``flip``: it swaps left/right motions), drawn once per clip.
    """
    label_index = {name: i for i, name in enumerate(label_names)}
    paths = [str(c.path) for c in clips]
    labels = np.array([label_index[c.label] for c in clips], np.int32)
    reported: set[str] = set()

    def load_or_empty(path_bytes):
        path = path_bytes.decode()
        try:
            frames, length = load_clip(path, seq_len, img_size)
        except (VideoError, OSError, ValueError) as error:
            if path not in reported:
                reported.add(path)
                log.warning("skipping %s", error if isinstance(error, VideoError) else f"{path}: {error}")
            return np.zeros((seq_len, img_size, img_size, 3), np.uint8), np.int32(0)
        return frames, np.int32(length)

    def decode(path, label):
        frames, length = tf.numpy_function(load_or_empty, [path], (tf.uint8, tf.int32), stateful=False)
        frames.set_shape((seq_len, img_size, img_size, 3))
        length.set_shape(())
        return frames, length, label

    ds = tf.data.Dataset.from_tensor_slices((paths, labels))
    if training:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    # Deterministic order: multi-worker DATA sharding needs every worker to see the same sequence.
    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.filter(lambda frames, length, label: length > 0)
    if cache:
        ds = ds.cache()
        if training:
            ds = ds.shuffle(min(len(paths), 512), seed=seed, reshuffle_each_iteration=True)
    if training:
        generator = tf.random.Generator.from_seed(seed)

        def augment(frames, length, label):
            return augment_clip(frames, generator, min_crop_area, flip, colour_jitter, length), length, label

        ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)

    def to_inputs(frames, length, label):
        return {"frames": frames, "mask": tf.range(seq_len) < length}, label

    return ds.map(to_inputs).batch(batch_size).prefetch(tf.data.AUTOTUNE)


def augment_clip(frames, generator: tf.random.Generator, min_crop_area: float, flip: bool,
                 colour_jitter: float = 0.0, length=None):
    """One random crop (resized back), colour jitter and optional flip shared by all frames.

    ``frames`` uint8 ``[T, S, S, 3]``; ``colour_jitter`` j draws brightness in ±j·255,
    contrast and saturation factors in [1-j, 1+j]. Frames from ``length`` on (padding)
    stay zero.
    """
    size = tf.shape(frames)[1:3]
    area = generator.uniform((), min_crop_area, 1.0)
    side = tf.sqrt(area)
    y0 = generator.uniform((), 0.0, 1.0 - side)
    x0 = generator.uniform((), 0.0, 1.0 - side)
    box = tf.stack([y0, x0, y0 + side, x0 + side])
    steps = tf.shape(frames)[0]
    boxes = tf.tile(box[None], [steps, 1])
    cropped = tf.image.crop_and_resize(tf.cast(frames, tf.float32), boxes, tf.range(steps), size)
    if flip:
        cropped = tf.cond(generator.uniform(()) < 0.5, lambda: tf.reverse(cropped, axis=[2]), lambda: cropped)
    if colour_jitter:
        length = steps if length is None else length
        grey = tf.reduce_mean(cropped, axis=-1, keepdims=True)
        cropped = grey + (cropped - grey) * generator.uniform((), 1 - colour_jitter, 1 + colour_jitter)
        mean = tf.reduce_mean(cropped[:length])
        cropped = ((cropped - mean) * generator.uniform((), 1 - colour_jitter, 1 + colour_jitter) + mean
                   + 255.0 * generator.uniform((), -colour_jitter, colour_jitter))
        cropped *= tf.cast(tf.range(steps) < length, tf.float32)[:, None, None, None]
    return tf.cast(tf.clip_by_value(tf.round(cropped), 0, 255), tf.uint8)


def make_feature_dataset(features: np.ndarray, masks: np.ndarray, labels: np.ndarray, rows: np.ndarray,
                         batch_size: int, training: bool = False, seed: int = 0) -> tf.data.Dataset:
    """Batched ``({"features": float32 [B, T, D], "mask": bool [B, T]}, label)`` from cached embeddings.

    ``features`` may be a float16 memmap ``[N, T, D]``; only ``rows`` are read.
    """
    rows = np.sort(np.asarray(rows))
    ds = tf.data.Dataset.from_tensor_slices(({"features": np.asarray(features[rows]), "mask": masks[rows]},
                                             labels[rows]))
    if training:
        ds = ds.shuffle(len(rows), seed=seed, reshuffle_each_iteration=True)

    def to_float(inputs, label):
        return {"features": tf.cast(inputs["features"], tf.float32), "mask": inputs["mask"]}, label

    return ds.batch(batch_size).map(to_float).prefetch(tf.data.AUTOTUNE)
