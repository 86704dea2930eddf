"""Skeleton sequences to model inputs: person choice, normalisation to body units, temporal
sampling, augmentation and the ``tf.data`` pipeline (NumPy until the last step)."""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from seqvision.sampling import sample_uniform_batch
from seqvision.skeleton_data import COCO_LEFT_RIGHT_PAIRS, NUM_JOINTS, SkeletonSamples

def _flip_index(pairs=COCO_LEFT_RIGHT_PAIRS, num_joints: int = NUM_JOINTS) -> tuple[int, ...]:
    """Joint order of the mirrored skeleton: each left joint takes its right partner's place."""
    index = list(range(num_joints))
    for left, right in pairs:
        index[left], index[right] = right, left
    return tuple(index)


COCO_FLIP_INDEX = _flip_index()
_LEFT_HIP, _RIGHT_HIP, _LEFT_SHOULDER, _RIGHT_SHOULDER = 11, 12, 5, 6

DEFAULT_SEQ_LEN = 64
# Scale when no frame shows both shoulders and both hips: a standing person's torso is
# roughly a fifth of the frame height in typical action videos.
# Scale when no frame shows both shoulders and both hips: a standing person's torso is
# roughly a fifth of the frame height in typical action videos.
IMAGE_TORSO_FRACTION = 0.2


# --------------------------------------------------------------------------- preprocessing

@dataclass
class SkeletonArrays:
    """Preprocessed sequences laid end to end along time.

    frames: float32 [F, P, 17, 3]: x, y in body units (centred on the mid-hip, torso length 1)
    and the joint's score; missing joints and persons are all zero.
    Sequence n is ``frames[starts[n]:starts[n] + lengths[n]]``; labels int32/int64 [N].
    """

    frames: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray
    frame_dirs: list[str]

    def __len__(self) -> int:
        return len(self.lengths)

    def take(self, rows) -> SkeletonArrays:
        """The sequences ``rows`` (int indices), repacked."""
        rows = np.asarray(rows, np.int64)
        lengths = self.lengths[rows]
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        source = np.repeat(self.starts[rows] - starts, lengths) + np.arange(lengths.sum())
        return SkeletonArrays(self.frames[source], starts, lengths, self.labels[rows],
                              [self.frame_dirs[i] for i in rows])


def preprocess_skeletons(samples: SkeletonSamples, max_persons: int = 2, score_threshold: float = 0.1,
                         per_person: bool = False) -> SkeletonArrays:
    """Keep the ``max_persons`` most confident persons (mean score; absent ones stay zero),
    drop joints scoring below ``score_threshold`` and normalise each sequence to body units
    (each person to its own with ``per_person``, see :func:`normalise_skeletons`)."""
    lengths = np.array([k.shape[1] for k in samples.keypoints], np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    frames = np.zeros((int(lengths.sum()), max_persons, NUM_JOINTS, 3), np.float32)
    for start, kp, score in zip(starts, samples.keypoints, samples.scores):
        order = np.argsort(-score.mean(axis=(1, 2)), kind="stable")[:max_persons]
        end = start + kp.shape[1]
        frames[start:end, : len(order), :, :2] = kp[order].transpose(1, 0, 2, 3)
        frames[start:end, : len(order), :, 2] = score[order].transpose(1, 0, 2)
    normalise_skeletons(frames, lengths, samples.img_shapes, score_threshold, per_person)
    return SkeletonArrays(frames, starts, lengths, samples.labels.copy(), list(samples.frame_dirs))


def normalise_skeletons(frames: np.ndarray, lengths: np.ndarray, img_shapes: np.ndarray,
                        score_threshold: float = 0.1, per_person: bool = False) -> np.ndarray:
    """Pixels to body units, one centre and scale per sequence, in place; returns ``frames``.

    frames: float32 [F, P, 17, 3] (x, y pixels, score) of sequences of ``lengths`` laid end to end;
    img_shapes: [N, 2] (h, w), 0 when unknown. Joints with a score of 0 or below
    ``score_threshold`` are invalid: they become (0, 0, 0) and never enter the centre or scale.
    Centre: the median mid-hip of the first person over frames showing both hips (else the
    mid-shoulder "neck", else the mean valid joint). Scale: the median neck-to-mid-hip
    distance, else ``IMAGE_TORSO_FRACTION`` of the image height. One centre per sequence
    (not per frame) keeps whole-body motion such as squatting visible. ``per_person``: every
    person gets its own centre and scale (from its own joints, the same rules), so where the
    other person stands does not move the first one's coordinates and vice versa.
    """
    num = len(lengths)
    segment = np.repeat(np.arange(num), lengths)
    score = frames[..., 2]
    valid = (score > 0) & (score >= score_threshold)
    if per_person:
        persons = [(slice(p, p + 1), _centre_and_scale(frames[:, p:p + 1], valid[:, p:p + 1], segment, num, img_shapes))
                   for p in range(frames.shape[1])]
    else:
        persons = [(slice(None), _centre_and_scale(frames, valid, segment, num, img_shapes))]
    # In place: a large file's frames take gigabytes, a second copy would double that.
    for person, (centre, scale) in persons:
        factor = valid[:, person] * (1 / scale).astype(np.float32)[segment][:, None, None]
        centre = centre.astype(np.float32)[segment]
        for k in (0, 1):  # one channel at a time: NumPy is slow on a length-2 innermost axis
            channel = frames[:, person, :, k]
            channel -= centre[:, k, None, None]
            channel *= factor
    score *= valid
    return frames


def _centre_and_scale(frames: np.ndarray, valid: np.ndarray, segment: np.ndarray, num: int,
                      img_shapes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre float64 [num, 2] and scale [num] (pixels) of each sequence, from person 0 of
    ``frames [F, P, 17, 3]`` (the mean valid joint of any of them as the last resort)."""
    first, seen = frames[:, 0, :, :2], valid[:, 0]
    hips = seen[:, _LEFT_HIP] & seen[:, _RIGHT_HIP]
    shoulders = seen[:, _LEFT_SHOULDER] & seen[:, _RIGHT_SHOULDER]
    mid_hip = (first[:, _LEFT_HIP] + first[:, _RIGHT_HIP]) / 2
    neck = (first[:, _LEFT_SHOULDER] + first[:, _RIGHT_SHOULDER]) / 2

    centre, has_hip = segment_median(mid_hip, segment, hips, num)
    lost = ~has_hip
    if lost.any():
        neck_centre, has_neck = segment_median(neck, segment, shoulders & lost[segment], num)
        centre[has_neck] = neck_centre[has_neck]
        lost &= ~has_neck
    if lost.any():  # rare: the mean valid joint of any person, else the image centre
        centre[lost] = img_shapes[lost, ::-1] / 2
        rows = lost[segment]
        picked = valid[rows]
        joint_segment = np.broadcast_to(segment[rows][:, None, None], picked.shape)[picked]
        counts = np.bincount(joint_segment, minlength=num)
        for k in (0, 1):
            sums = np.bincount(joint_segment, frames[rows][..., k][picked], minlength=num)
            centre[:, k] = np.where(counts > 0, sums / np.maximum(counts, 1), centre[:, k])

    torso, has_torso = segment_median(np.linalg.norm(neck - mid_hip, axis=-1)[:, None], segment, hips & shoulders, num)
    fallback = np.where(img_shapes[:, 0] > 0, IMAGE_TORSO_FRACTION * img_shapes[:, 0], 1.0)
    return centre, np.where(has_torso & (torso[:, 0] > 1e-6), torso[:, 0], fallback)


def segment_median(values: np.ndarray, segment: np.ndarray, use: np.ndarray,
                   num: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-segment median of ``values [F, D]`` over rows where ``use [F]``.

    ``segment [F]`` gives each row's sequence (0..num-1). Returns ``(median [num, D], found [num] bool)``.
    """
    picked, seg = values[use], segment[use]
    counts = np.bincount(seg, minlength=num)
    found = counts > 0
    first = np.cumsum(counts) - counts
    low, high = (first + (counts - 1) // 2)[found], (first + counts // 2)[found]
    median = np.zeros((num, values.shape[1]), np.float64)
    for d in range(values.shape[1]):
        column = picked[:, d].astype(np.float64)
        span = column.max(initial=0) - column.min(initial=0) + 1
        # One float64 key sorts by segment, then value; twice as fast as np.lexsort.
        ordered = column[np.argsort(seg + (column - column.min(initial=0)) / span)]
        median[found, d] = (ordered[low] + ordered[high]) / 2
    return median, found


# --------------------------------------------------------------------------- augmentation

@dataclass(frozen=True)
class Augmentation:
    """Training augmentation: one random draw per sequence, the same for all its frames."""

    flip: bool = False  # mirror with probability 0.5: only for classes a mirror image does not change
    rotate_degrees: float = 10.0  # in-plane rotation, uniform in ±this
    scale_range: float = 0.1  # size factor, uniform in 1 ± this
    shift: float = 0.1  # body units, uniform in ±this along x and y
    temporal_jitter: bool = True  # a random frame of each uniform segment instead of its middle
    # Class index of each class's mirror image (``mirror_classes[i] == i`` for symmetric classes);
    # set, flipping also swaps the label, so left/right-specific classes keep their meaning.
    mirror_classes: tuple[int, ...] | None = None


def flip_left_right(x: np.ndarray) -> np.ndarray:
    """Mirror ``x [..., 17, C]`` (x, y in body units, …) about the body centre: x -> -x, and
    swap the COCO left/right joints so a left arm stays a left arm."""
    out = x[..., list(COCO_FLIP_INDEX), :]  # fancy indexing copies
    out[..., 0] *= -1
    return out


def augment_skeletons(x: np.ndarray, rng: np.random.Generator,
                      augmentation: Augmentation = Augmentation(), flip: np.ndarray | None = None) -> np.ndarray:
    """Randomly flip, rotate, scale and shift ``x`` float32 [B, T, P, 17, 3]; missing joints stay 0.

    ``flip`` bool ``[B]`` says which sequences to mirror (drawn here when None and
    ``augmentation.flip``); the caller that mirrors labels draws it.
    """
    x = np.array(x, np.float32)
    batch = len(x)
    if flip is None and augmentation.flip:
        flip = rng.random(batch) < 0.5
    if flip is not None:
        x[flip] = flip_left_right(x[flip])
    angle = np.deg2rad(rng.uniform(-augmentation.rotate_degrees, augmentation.rotate_degrees, batch))
    size = rng.uniform(1 - augmentation.scale_range, 1 + augmentation.scale_range, batch)
    shift = rng.uniform(-augmentation.shift, augmentation.shift, (batch, 2))
    cos, sin = ((f(angle) * size).astype(np.float32)[:, None, None, None] for f in (np.cos, np.sin))
    shift = shift.astype(np.float32)[:, None, None, None, :]
    keep = x[..., 2] > 0
    x0, x1 = x[..., 0].copy(), x[..., 1]
    x[..., 0] = (cos * x0 - sin * x1 + shift[..., 0]) * keep
    x[..., 1] = (sin * x0 + cos * x1 + shift[..., 1]) * keep
    return x


# --------------------------------------------------------------------------- model inputs

def feature_dim(max_persons: int, use_score: bool = True) -> int:
    """Features per time step: persons x joints x (x, y[, score])."""
    return max_persons * NUM_JOINTS * (3 if use_score else 2)


def skeleton_inputs(arrays: SkeletonArrays, rows=None, seq_len: int | None = DEFAULT_SEQ_LEN, use_score: bool = True,
                    rng: np.random.Generator | None = None, augmentation: Augmentation | None = None,
                    flip: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Model inputs for sequences ``rows`` (default all): ``keypoints`` float32 [B, T, P*17*C]
    (C = 3 with the score channel, else 2) and ``mask`` bool [B, T].

    With ``rng`` and ``augmentation`` the frames are jittered and augmented; else sampling is
    centred and deterministic. ``flip``: see :func:`augment_skeletons`.
    """
    rows = np.arange(len(arrays)) if rows is None else np.asarray(rows, np.int64)
    train = rng is not None and augmentation is not None
    index, mask = sample_uniform_batch(arrays.lengths[rows], seq_len,
                                       rng if train and augmentation.temporal_jitter else None)
    x = arrays.frames[arrays.starts[rows][:, None] + index]
    x[~mask] = 0
    if train:
        x = augment_skeletons(x, rng, augmentation, flip)
    if not use_score:
        x = x[..., :2]
    return np.ascontiguousarray(x.reshape(len(rows), mask.shape[1], int(np.prod(x.shape[2:])))), mask


def make_skeleton_dataset(arrays: SkeletonArrays, batch_size: int, training: bool = False, seed: int = 0,
                          seq_len: int | None = DEFAULT_SEQ_LEN, use_score: bool = True,
                          augmentation: Augmentation | None = Augmentation()):
    """Batches ``({"keypoints": float32 [B, T, D], "mask": bool [B, T]}, label int32 [B])``.

    ``training`` reshuffles every epoch and applies ``augmentation``, reproducibly from
    ``seed`` (a mirrored sequence gets its class's mirror label, ``augmentation.mirror_classes``);
    otherwise the order is fixed and sampling centred. ``seq_len=None`` pads each batch to its
    longest sequence.
    """
    import tensorflow as tf

    count = len(arrays)
    dim = feature_dim(arrays.frames.shape[1], use_score)
    epochs = itertools.count()

    def batches():
        rng = np.random.default_rng([seed, next(epochs)]) if training else None
        order = rng.permutation(count) if training else np.arange(count)
        for begin in range(0, count, batch_size):
            rows = order[begin:begin + batch_size]
            labels = arrays.labels[rows].astype(np.int32)
            flip = rng.random(len(rows)) < 0.5 if training and augmentation and augmentation.flip else None
            if flip is not None and augmentation.mirror_classes is not None:
                labels = np.where(flip, np.asarray(augmentation.mirror_classes, np.int32)[labels], labels)
            keypoints, mask = skeleton_inputs(arrays, rows, seq_len, use_score, rng,
                                              augmentation if training else None, flip)
            yield {"keypoints": keypoints, "mask": mask}, labels

    signature = ({"keypoints": tf.TensorSpec((None, seq_len, dim), tf.float32),
                  "mask": tf.TensorSpec((None, seq_len), tf.bool)},
                 tf.TensorSpec((None,), tf.int32))
    dataset = tf.data.Dataset.from_generator(batches, output_signature=signature)
    return dataset.apply(tf.data.experimental.assert_cardinality(-(-count // batch_size))).prefetch(tf.data.AUTOTUNE)
