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
import mmap
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from seqvision.errors import SeqvisionError
from seqvision.frame_folders import (MIN_FRAMES, find_videos, frame_files, list_frame_clips, read_frame_folder,
                                     too_few_frames_reason)
from seqvision.sampling import sample_uniform_indices, view_offsets
from seqvision.splits import group_of, groups_from_file, split_by_groups
from seqvision.video import VIDEO_EXTENSIONS, VideoError, read_video_frames

log = logging.getLogger(__name__)

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
        """Recording group for leak-free splits (the rule in :mod:`seqvision.splits`): UCF101's
        ``v_Class_gNN``, else the clip itself."""
        return group_of(_stem(self.path), own=self.key)


def _stem(path: Path) -> str:
    return path.stem if path.suffix.lower() in VIDEO_EXTENSIONS else path.name


def find_clips(data_dir: str | Path) -> list[Clip]:
    """Clips under ``data_dir/<label>/``: frame folders (from extract-frames) or videos.

    A folder holding both kinds is refused: mixing them would silently train on two
    different samplings.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise SeqvisionError(f"{data_dir}: not a folder")
    frame_clips = list_frame_clips(data_dir)
    try:
        videos = find_videos(data_dir)
    except ValueError:
        videos = []
    if frame_clips and videos:
        raise SeqvisionError(f"{data_dir}: holds both frame folders and video files; use one kind per folder")
    found = frame_clips or videos
    if not found:
        raise SeqvisionError(f"{data_dir}: no clips found; expected {data_dir}/<label>/<clip>.mp4|avi|… "
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
        raise SeqvisionError(f"{list_file}: none of its {len(wanted)} entries match the clips found")
    if len(kept) < len(wanted):
        log.warning("%s: %d of %d listed clips were not found", list_file, len(wanted) - len(kept), len(wanted))
    return kept


def split_train_val(clips: list[Clip], val_fraction: float, seed: int = 0,
                    groups_file: str | Path | None = None) -> tuple[list[Clip], list[Clip]]:
    """Group-aware hold-out of close to ``val_fraction`` of the clips (see
    :func:`seqvision.splits.split_by_groups`); groups by the rule of :mod:`seqvision.splits`, or
    from ``groups_file`` (CSV ``clip,group``)."""
    groups = ([c.group for c in clips] if groups_file is None else
              groups_from_file([_stem(c.path) for c in clips], [c.key for c in clips], groups_file))
    return split_by_groups([c.label for c in clips], groups, val_fraction, seed, items=clips)


def load_clip_views(clip_path: str | Path, seq_len: int, img_size: int,
                    offsets: tuple[float, ...] = (0.5,)) -> tuple[np.ndarray, int]:
    """Read ``len(offsets)`` uniform views of a clip (see ``view_offsets``) in one decode.

    Returns ``(frames uint8 [V, seq_len, S, S, 3] right-padded, true length)``; the length
    (``min(seq_len, frames in the clip)``) is the same for every view. Raises ``VideoError``
    for an unreadable clip.
    """
    path = Path(clip_path)
    if path.is_dir():
        num_frames = len(frame_files(path))
        frames = read_frame_folder(path, size=img_size, seq_len=seq_len, offsets=offsets)
    else:
        frames, _, info = read_video_frames(path, seq_len=seq_len, size=img_size, offsets=offsets)
        num_frames = info.num_frames
        if num_frames < MIN_FRAMES:  # as extract-frames refuses it
            raise VideoError(path, too_few_frames_reason(num_frames))
    if len(frames) == 0:
        raise VideoError(path, "no frames")
    per_view = [sample_uniform_indices(num_frames, seq_len, offset=offset) for offset in offsets]
    union = np.unique(np.concatenate(per_view))
    length = len(per_view[0])
    padded = np.zeros((len(offsets), seq_len, img_size, img_size, 3), np.uint8)
    for view, indices in enumerate(per_view):
        padded[view, :length] = frames[np.searchsorted(union, indices)]
    return padded, length


def load_clip(clip_path: str | Path, seq_len: int, img_size: int) -> tuple[np.ndarray, int]:
    """Read ``seq_len`` frames spread over a clip (segment centres), resized to ``img_size``.

    Returns ``(frames uint8 [seq_len, S, S, 3] right-padded, true length)``.
    Raises ``VideoError`` for an unreadable clip.
    """
    frames, length = load_clip_views(clip_path, seq_len, img_size)
    return frames[0], length


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
    views: int = 1,
    stack_views: bool = False,
    mirror_classes: tuple[int, ...] | None = None,
    seed: int = 0,
) -> tf.data.Dataset:
    """Batched ``({"frames", "mask"}, label)`` dataset; see the module docstring.

    A clip that fails to decode is logged (path + reason) and dropped, never fatal.
    ``cache`` keeps decoded clips in memory after the first pass. Each clip is decoded as
    ``views`` temporally shifted uniform samplings (``view_offsets``). ``training`` takes one
    random view per clip and epoch (temporal jitter), shuffles, and adds per-clip augmentation
    (random crop of at least ``min_crop_area``, brightness / contrast / saturation jitter of up
    to ``colour_jitter``, horizontal flip only when ``flip``: it swaps left/right motions, so a
    flipped clip takes the label ``mirror_classes[label]`` when that is given), drawn once per
    clip. Otherwise every view is its own element, or with ``stack_views`` one element per clip
    with ``frames [V, T, S, S, 3]`` and ``mask [V, T]`` (for averaging over views).
    """
    label_index = {name: i for i, name in enumerate(label_names)}
    paths = [str(c.path) for c in clips]
    labels = np.array([label_index[c.label] for c in clips], np.int32)
    offsets = view_offsets(views)
    reported: set[str] = set()

    def load_or_empty(path_bytes):
        path = path_bytes.decode()
        try:
            frames, length = load_clip_views(path, seq_len, img_size, offsets)
        except (VideoError, OSError, ValueError) as error:
            if path not in reported:
                reported.add(path)
                log.warning("skipping %s", error if isinstance(error, VideoError) else f"{path}: {error}")
            return np.zeros((views, seq_len, img_size, img_size, 3), np.uint8), np.int32(0)
        return frames, np.int32(length)

    def decode(path, label):
        frames, length = tf.numpy_function(load_or_empty, [path], (tf.uint8, tf.int32), stateful=False)
        frames.set_shape((views, seq_len, img_size, img_size, 3))
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

    def to_inputs(frames, length, label):
        return {"frames": frames, "mask": tf.range(seq_len) < length}, label

    if training:
        generator = tf.random.Generator.from_seed(seed)

        mirror = tf.constant(mirror_classes if mirror_classes is not None else range(len(label_names)), tf.int32)

        def augment(frames, length, label):
            view = frames[generator.uniform((), 0, views, dtype=tf.int32)]
            flipped = generator.uniform(()) < 0.5 if flip else tf.constant(False)
            label = tf.where(flipped, tf.gather(mirror, label), label)
            return augment_clip(view, generator, min_crop_area, flipped, colour_jitter, length), length, label

        ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE).map(to_inputs)
    elif stack_views:
        ds = ds.map(lambda frames, length, label: (
            {"frames": frames, "mask": tf.tile((tf.range(seq_len) < length)[None], [views, 1])}, label))
    else:
        ds = ds.flat_map(lambda frames, length, label: tf.data.Dataset.from_tensor_slices(
            (frames, tf.fill([views], length), tf.fill([views], label)))).map(to_inputs)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def augment_clip(frames, generator: tf.random.Generator, min_crop_area: float, flip: bool,
                 colour_jitter: float = 0.0, length=None):
    """One random crop (resized back), colour jitter and optional flip shared by all frames.

    ``frames`` uint8 ``[T, S, S, 3]``; ``flip`` a bool (or bool tensor: mirror this clip);
    ``colour_jitter`` j draws brightness in ±j·255, contrast and saturation factors in [1-j, 1+j]. Frames from ``length`` on (padding)
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
    if isinstance(flip, bool):
        flip = generator.uniform(()) < 0.5 if flip else tf.constant(False)
    cropped = tf.cond(flip, lambda: tf.reverse(cropped, axis=[2]), lambda: cropped)
    if colour_jitter:
        length = steps if length is None else length
        grey = tf.reduce_mean(cropped, axis=-1, keepdims=True)
        cropped = grey + (cropped - grey) * generator.uniform((), 1 - colour_jitter, 1 + colour_jitter)
        mean = tf.reduce_mean(cropped[:length])
        cropped = ((cropped - mean) * generator.uniform((), 1 - colour_jitter, 1 + colour_jitter) + mean
                   + 255.0 * generator.uniform((), -colour_jitter, colour_jitter))
        cropped *= tf.cast(tf.range(steps) < length, tf.float32)[:, None, None, None]
    return tf.cast(tf.clip_by_value(tf.round(cropped), 0, 255), tf.uint8)


def read_feature_views(features: np.ndarray, rows: np.ndarray, views: np.ndarray) -> np.ndarray:
    """``features[rows, views]`` as float32 ``[B, T, D]``.

    From a memmap of a whole ``.npy`` file (``np.load(mmap_mode="r")``) the items are read with
    ``os.preadv``: indexing the map would leave every page read mapped into this process, so one
    epoch over a 4 GB cache would add 4 GB to its resident memory (page cache the kernel may
    reclaim, but counted all the same).
    """
    whole_file = (isinstance(features, np.memmap) and isinstance(features.base, mmap.mmap)
                  and features.flags.c_contiguous
                  and len(features.base) == features.nbytes + features.offset % mmap.ALLOCATIONGRANULARITY)
    if not whole_file:
        return np.asarray(features[rows, views], np.float32)
    out = np.empty((len(rows), *features.shape[2:]), features.dtype)
    item_bytes = out[0].nbytes
    with open(features.filename, "rb") as f:
        for item, row, view in zip(out, rows, views):
            start = features.offset + (int(row) * features.shape[1] + int(view)) * item_bytes
            if os.preadv(f.fileno(), [item], start) != item_bytes:
                raise OSError(f"{features.filename}: short read at byte {start} (file truncated?)")
    return out.astype(np.float32)


def make_feature_dataset(features: np.ndarray, masks: np.ndarray, labels: np.ndarray, rows: np.ndarray,
                         batch_size: int, training: bool = False, seed: int = 0) -> tf.data.Dataset:
    """Batched ``({"features": float32 [B, T, D], "mask": bool [B, T]}, label)`` from cached embeddings.

    ``features`` is ``[N, V, T, D]`` (V temporally shifted views per clip), typically a float16
    memmap: batches are read from it as they are needed, never all ``rows`` at once
    (:func:`read_feature_views`).
    Every view of every row is an element (an epoch sees all the samplings that were cached, at
    no decoding cost); ``training`` shuffles them anew each epoch.
    """
    rows = np.sort(np.asarray(rows, np.int64))
    views, steps, dim = features.shape[1:]
    ds = tf.data.Dataset.from_tensor_slices((np.repeat(rows, views), np.tile(np.arange(views), len(rows))))
    if training:
        ds = ds.shuffle(len(rows) * views, seed=seed, reshuffle_each_iteration=True)

    def gather(batch_rows, batch_views):
        return (read_feature_views(features, batch_rows, batch_views), masks[batch_rows],
                labels[batch_rows].astype(np.int32))

    def read(batch_rows, batch_views):
        x, mask, y = tf.numpy_function(gather, [batch_rows, batch_views], (tf.float32, tf.bool, tf.int32),
                                       stateful=False)
        x.set_shape((None, steps, dim))
        mask.set_shape((None, steps))
        y.set_shape((None,))
        return {"features": x, "mask": mask}, y

    return ds.batch(batch_size).map(read).prefetch(tf.data.AUTOTUNE)
