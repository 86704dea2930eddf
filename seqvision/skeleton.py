"""The skeleton path: PYSKL pose pickles -> normalised keypoint sequences -> masked LSTM.

Stages and what each hands on:

    read_skeleton_pickle(path)          SkeletonPickle: ``splits`` {name: [frame_dir]}, raw ``annotations``
    select_samples(pickle, split)       SkeletonSamples, checked; per sequence ``keypoint`` float32
                                        [M, T, 17, 2] (pixels) and ``score`` float32 [M, T, 17]
    preprocess_skeletons(samples)       SkeletonArrays: ``frames`` float32 [F, P, 17, 3] = (x, y in body
                                        units, score), all sequences laid end to end (ragged in time)
    skeleton_inputs(arrays, rows)       ``keypoints`` float32 [B, T, P*17*C] and ``mask`` bool [B, T]
    make_skeleton_dataset(arrays, ...)  tf.data of ``({"keypoints", "mask"}, label int32 [B])``

Person choice, score thresholding and normalisation are deterministic and done once;
temporal sampling (with jitter when training) and augmentation run per batch on top.
Everything up to ``skeleton_inputs`` is NumPy; TensorFlow is imported only to train and predict.
"""
from __future__ import annotations

import dataclasses
import itertools
import logging
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from seqvision.errors import SeqvisionError
from seqvision.io import atomic_write_json, read_json
from seqvision.labels import mirror_classes
from seqvision.sampling import sample_uniform_batch
from seqvision.splits import group_of, groups_from_file, split_by_groups

log = logging.getLogger(__name__)

COCO_JOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
NUM_JOINTS = len(COCO_JOINTS)
COCO_LEFT_RIGHT_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))


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
IMAGE_TORSO_FRACTION = 0.2
MAX_LISTED_PROBLEMS = 20
MAX_LABEL = 2 ** 31  # label ids are int32 in the model's inputs



class SkeletonDataError(SeqvisionError):
    """A file that cannot be read as PYSKL skeleton annotations; the message gives path and reason."""

    def __init__(self, path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


# --------------------------------------------------------------------------- loading

@dataclass
class SkeletonPickle:
    """A PYSKL annotation file: ``splits`` {name: [frame_dir]} and unchecked ``annotations``."""

    path: str
    splits: dict[str, list[str]]
    annotations: list
    _positions: dict[str, int] | None = field(default=None, repr=False, compare=False)

    def positions(self) -> dict[str, int]:
        """``frame_dir -> index`` in ``annotations`` (built once)."""
        if self._positions is None:
            self._positions = {str(a.get("frame_dir")): i for i, a in enumerate(self.annotations)
                               if isinstance(a, dict)}
        return self._positions


@dataclass
class SkeletonSamples:
    """Checked sequences of one split.

    keypoints: per sequence float32 [M, T, 17, 2], pixels; scores: float32 [M, T, 17];
    labels: int64 [N] original label ids (-1 when the file has none); img_shapes: float32 [N, 2]
    (h, w), 0 when unknown; ``skipped`` malformed entries, ``excluded`` entries of other classes.
    """

    keypoints: list[np.ndarray]
    scores: list[np.ndarray]
    labels: np.ndarray
    frame_dirs: list[str]
    img_shapes: np.ndarray
    skipped: int = 0
    excluded: int = 0

    def __len__(self) -> int:
        return len(self.keypoints)


# A PYSKL pickle holds dicts, lists, tuples and NumPy arrays; nothing else may be imported
# while unpickling (a pickle can otherwise run any code).
_PICKLE_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("collections", "OrderedDict"),
}


class _ForbiddenGlobal(Exception):
    pass


class _AnnotationUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise _ForbiddenGlobal(f"{module}.{name}")


def read_skeleton_pickle(path: str | Path) -> SkeletonPickle:
    """Read a PYSKL annotation pickle (``{"split": …, "annotations": […]}``, or a bare list of
    annotations); Python 2 pickles too. Raises ``SkeletonDataError`` naming the file and why."""
    path = Path(path)
    if not path.is_file():
        raise SkeletonDataError(path, "no such file")
    with open(path, "rb") as f:
        head = f.read(64)
        if not head:
            raise SkeletonDataError(path, "empty file (0 bytes)")
        if head.startswith(b"version https://git-lfs"):
            raise SkeletonDataError(path, "a Git LFS pointer, not the data; fetch the file with `git lfs pull`")
        f.seek(0)
        try:
            data = _AnnotationUnpickler(f, encoding="latin1").load()
        except _ForbiddenGlobal as error:
            raise SkeletonDataError(path, f"not a PYSKL annotation pickle: it stores {error} objects "
                                          f"({str(error).split('.')[0]} would be needed to read it); "
                                          "expected dicts, lists and NumPy arrays only") from None
        except Exception as error:  # truncated or foreign files fail in many ways (EOFError, UnpicklingError, …)
            raise SkeletonDataError(path, f"not a readable pickle ({type(error).__name__}: {error}); "
                                          "the file may be truncated or of another format") from None
    if isinstance(data, dict) and "annotations" in data:
        annotations, splits = data["annotations"], data.get("split") or {}
    elif isinstance(data, list) and data and all(isinstance(a, dict) for a in data):
        annotations, splits = data, {}
    else:
        raise SkeletonDataError(path, "not a PYSKL annotation pickle: expected a dict with 'split' and "
                                      f"'annotations', found {_describe(data)}")
    if not isinstance(annotations, list) or not annotations:
        raise SkeletonDataError(path, f"'annotations' is {_describe(annotations)}, expected a non-empty list")
    if not any(isinstance(a, dict) and "keypoint" in a for a in annotations):
        keys = sorted(annotations[0]) if isinstance(annotations[0], dict) else []
        raise SkeletonDataError(path, "no annotation has a 'keypoint' array (keys: " + ", ".join(map(str, keys))
                                + "); PYSKL's Kinetics-400 variant keeps keypoints in separate kpfiles, "
                                "which seqvision does not read: convert them to 'keypoint' / 'keypoint_score'")
    if not isinstance(splits, dict) or not all(isinstance(v, (list, tuple)) for v in splits.values()):
        raise SkeletonDataError(path, f"'split' is {_describe(splits)}, expected {{name: [frame_dir, …]}}")
    return SkeletonPickle(str(path), {str(k): [str(d) for d in v] for k, v in splits.items()}, annotations)


def _describe(obj) -> str:
    if isinstance(obj, dict):
        return f"a dict with keys {sorted(map(str, obj))[:8]}"
    if isinstance(obj, (list, tuple)):
        inner = f" of {type(obj[0]).__name__}" if obj else ""
        return f"a {type(obj).__name__} of {len(obj)} items{inner}"
    return f"a {type(obj).__name__}"


def select_samples(data: SkeletonPickle, split: str | None = None, label_ids: Sequence[int] | None = None,
                   require_labels: bool = True) -> SkeletonSamples:
    """The checked sequences of ``split`` (None: all annotations), in split order.

    Malformed entries (missing keys, wrong shapes, empty T, NaN/inf, a ``keypoint_score``
    that does not match ``keypoint``) are logged with frame_dir and reason and skipped.
    ``label_ids`` keeps only those classes.
    """
    if split is None:
        chosen = data.annotations
    else:
        if split not in data.splits:
            available = ", ".join(sorted(data.splits)) or "none (the file has no 'split'; use every annotation)"
            raise SkeletonDataError(data.path, f"no split {split!r}; available splits: {available}")
        positions = data.positions()
        names = data.splits[split]
        chosen = [data.annotations[positions[n]] for n in names if n in positions]
        if len(chosen) < len(names):
            log.warning("%s: %d frame_dirs of split %s have no annotation", data.path, len(names) - len(chosen), split)
    keep = None if label_ids is None else set(int(i) for i in label_ids)
    keypoints, scores, labels, frame_dirs, shapes = [], [], [], [], []
    skipped = excluded = 0
    for i, ann in enumerate(chosen):
        problem = _annotation_problem(ann, require_labels)
        if problem:
            skipped += 1
            if skipped <= MAX_LISTED_PROBLEMS:
                name = ann.get("frame_dir", f"#{i}") if isinstance(ann, dict) else f"#{i}"
                log.warning("%s: skipping %s: %s", data.path, name, problem)
            continue
        label = int(ann["label"]) if "label" in ann else -1
        if keep is not None and label not in keep:
            excluded += 1
            continue
        keypoints.append(np.asarray(ann["keypoint"], np.float32))
        scores.append(np.asarray(ann["keypoint_score"], np.float32))
        labels.append(label)
        frame_dirs.append(str(ann.get("frame_dir", f"#{i}")))
        shapes.append(_image_shape(ann))
    if skipped > MAX_LISTED_PROBLEMS:
        log.warning("%s: skipped %d malformed entries in all (first %d listed)", data.path, skipped,
                    MAX_LISTED_PROBLEMS)
    if chosen and not keypoints and not excluded:
        raise SkeletonDataError(data.path, f"none of the {len(chosen)} entries of split {split!r} is usable "
                                           "(see the warnings above); expected keypoint [M, T, 17, 2]")
    return SkeletonSamples(keypoints, scores, np.array(labels, np.int64), frame_dirs,
                           np.array(shapes, np.float32).reshape(-1, 2), skipped, excluded)


def _annotation_problem(ann, require_labels: bool) -> str | None:
    """Why ``ann`` cannot be used, or None."""
    if not isinstance(ann, dict):
        return f"not a dict but {type(ann).__name__}"
    required = ("keypoint", "keypoint_score", "label") if require_labels else ("keypoint", "keypoint_score")
    missing = [k for k in required if k not in ann]
    if missing:
        return "missing " + ", ".join(missing)
    kp, score = ann["keypoint"], ann["keypoint_score"]
    if not isinstance(kp, np.ndarray) or not isinstance(score, np.ndarray):
        return "keypoint and keypoint_score must be NumPy arrays"
    if kp.dtype.kind not in "fiu" or score.dtype.kind not in "fiu":
        return f"non-numeric arrays ({kp.dtype}, {score.dtype})"
    if kp.ndim != 4 or kp.shape[2:] != (NUM_JOINTS, 2):
        return f"keypoint shape {kp.shape}, expected [M, T, {NUM_JOINTS}, 2]"
    if kp.shape[0] == 0 or kp.shape[1] == 0:
        return f"empty keypoint array {kp.shape}"
    if score.shape != kp.shape[:3]:
        return f"keypoint_score shape {score.shape} does not match keypoint {kp.shape}"
    with np.errstate(over="ignore", invalid="ignore"):  # float64 beyond float32's range becomes inf
        finite = np.isfinite(kp.astype(np.float32)).all() and np.isfinite(score.astype(np.float32)).all()
    if not finite:
        return "NaN or infinite values (in float32)"
    if "label" in ann:
        label = ann["label"]
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= label < MAX_LABEL:
            return f"label {label!r} is not a class index (0 to {MAX_LABEL - 1})"
    return None


def _image_shape(ann: dict) -> tuple[float, float]:
    shape = ann.get("img_shape")
    try:
        h, w = (float(v) for v in shape)
    except (TypeError, ValueError):
        return 0.0, 0.0
    return (h, w) if h > 0 and w > 0 else (0.0, 0.0)


def read_label_names(path: str | Path) -> list[str]:
    """Class names from a text file, one per line: line i names label i."""
    path = Path(path)
    try:
        lines = [line.strip() for line in path.read_text().splitlines()]
    except (OSError, UnicodeDecodeError) as error:
        raise SkeletonDataError(path, f"cannot read label names ({error})") from None
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise SkeletonDataError(path, "no label names")
    if "" in lines:
        raise SkeletonDataError(path, f"line {lines.index('') + 1} is empty; give one name per line")
    return lines


def resolve_classes(classes: Sequence[int | str], names: list[str] | None) -> list[int]:
    """Label ids of ``classes`` given as ids (``3``, ``"3"``) or as names from the label file."""
    ids = []
    for c in classes:
        if isinstance(c, (int, np.integer)) or str(c).isdigit():
            ids.append(int(c))
        elif names and c in names:
            ids.append(names.index(c))
        else:
            raise ValueError(f"unknown class {c!r}: give label ids" + (" or names from the label file" if names else
                                                                         " (or pass a label-name file to use names)"))
    if len(set(ids)) != len(ids):
        raise ValueError(f"classes listed twice: {classes}")
    return ids


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


def preprocess_skeletons(samples: SkeletonSamples, max_persons: int = 2,
                         score_threshold: float = 0.1) -> SkeletonArrays:
    """Keep the ``max_persons`` most confident persons (mean score; absent ones stay zero),
    drop joints scoring below ``score_threshold`` and normalise each sequence to body units."""
    lengths = np.array([k.shape[1] for k in samples.keypoints], np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    frames = np.zeros((int(lengths.sum()), max_persons, NUM_JOINTS, 3), np.float32)
    for start, kp, score in zip(starts, samples.keypoints, samples.scores):
        order = np.argsort(-score.mean(axis=(1, 2)), kind="stable")[:max_persons]
        end = start + kp.shape[1]
        frames[start:end, : len(order), :, :2] = kp[order].transpose(1, 0, 2, 3)
        frames[start:end, : len(order), :, 2] = score[order].transpose(1, 0, 2)
    normalise_skeletons(frames, lengths, samples.img_shapes, score_threshold)
    return SkeletonArrays(frames, starts, lengths, samples.labels.copy(), list(samples.frame_dirs))


def normalise_skeletons(frames: np.ndarray, lengths: np.ndarray, img_shapes: np.ndarray,
                        score_threshold: float = 0.1) -> np.ndarray:
    """Pixels to body units, one centre and scale per sequence, in place; returns ``frames``.

    frames: float32 [F, P, 17, 3] (x, y pixels, score) of sequences of ``lengths`` laid end to end;
    img_shapes: [N, 2] (h, w), 0 when unknown. Joints with a score of 0 or below
    ``score_threshold`` are invalid: they become (0, 0, 0) and never enter the centre or scale.
    Centre: the median mid-hip of the first person over frames showing both hips (else the
    mid-shoulder "neck", else the mean valid joint). Scale: the median neck-to-mid-hip
    distance, else ``IMAGE_TORSO_FRACTION`` of the image height. One centre per sequence
    (not per frame) keeps whole-body motion such as squatting visible.
    """
    num = len(lengths)
    segment = np.repeat(np.arange(num), lengths)
    score = frames[..., 2]
    valid = (score > 0) & (score >= score_threshold)
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
    scale = np.where(has_torso & (torso[:, 0] > 1e-6), torso[:, 0], fallback)

    # In place: a large file's frames take gigabytes, a second copy would double that.
    factor = valid * (1 / scale).astype(np.float32)[segment][:, None, None]
    centre = centre.astype(np.float32)[segment]
    for k in (0, 1):  # one channel at a time: NumPy is slow on a length-2 innermost axis
        channel = frames[..., k]
        channel -= centre[:, k, None, None]
        channel *= factor
    score *= valid
    return frames


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
    ``seed`` (a mirrored sequence gets its class's mirror label, ``augmentation.mirror_classes``); otherwise the order is fixed and sampling centred. ``seq_len=None`` pads
    each batch to its longest sequence.
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


# --------------------------------------------------------------------------- training and inference

@dataclass
class SkeletonTrainConfig:
    """Settings of a skeleton run; saved as the run's ``config.json``."""

    ann_path: str = ""
    train_split: str | None = "train1"  # None = every annotation (files without splits)
    val_split: str | None = None  # a split of the file; None = hold out val_fraction of train_split
    val_fraction: float = 0.1
    groups_file: str | None = None  # CSV clip,group (by frame_dir); None = the UCF101 name rule
    classes: list | None = None  # label ids or names to keep; None = every class in train_split
    label_names: str | None = None  # text file, line i names label i
    seq_len: int | None = DEFAULT_SEQ_LEN  # frames sampled uniformly over each sequence; None = all
    max_persons: int = 2
    score_threshold: float = 0.1
    use_score: bool = True  # feed each joint's score as a third channel
    units: int = 128
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.3
    input_dropout: float = 0.0
    epochs: int = 60
    batch_size: int = 32  # per replica
    lr: float = 2e-3
    patience: int = 10
    seed: int = 0
    flip: bool = False  # mirror images keep the label: only for classes without a side
    flip_pairs: list | None = None  # ["left_x:right_x", …] (ids or names): flip, swapping these labels
    rotate_degrees: float = 10.0
    scale_range: float = 0.1
    shift: float = 0.1
    temporal_jitter: bool = True
    strategy: str = "mirrored"  # "mirrored" | "multiworker" (from TF_CONFIG)
    label_ids: list[int] = field(default_factory=list)  # filled in: model class i is label label_ids[i]
    kind: str = "skeleton"

    def augmentation(self, labels: list[str] | None = None) -> Augmentation:
        """The training augmentation; ``labels`` (model class names) resolve ``flip_pairs``."""
        mirror = None
        if self.flip_pairs:
            mirror = mirror_classes(self.flip_pairs, labels or [str(i) for i in self.label_ids], self.label_ids)
        return Augmentation(self.flip or mirror is not None, self.rotate_degrees, self.scale_range, self.shift,
                            self.temporal_jitter, mirror)


def split_train_val(labels: np.ndarray, frame_dirs: Sequence[str], val_fraction: float, seed: int = 0,
                    groups_file: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Group-aware, class-balanced hold-out of about ``val_fraction`` of the rows:
    ``(train_rows, val_rows)``, as for videos (:func:`seqvision.splits.split_by_groups`).

    Sequences of one UCF101 recording group (``v_X_g08_c01``…) stay on one side; ``groups_file``
    (CSV ``clip,group`` by ``frame_dir``) gives the groups of files named otherwise.
    """
    frame_dirs = [str(d) for d in frame_dirs]
    groups = ([group_of(d) for d in frame_dirs] if groups_file is None else
              groups_from_file(frame_dirs, frame_dirs, groups_file))
    train, val = split_by_groups([int(v) for v in labels], groups, val_fraction, seed)
    return np.sort(np.asarray(train, np.int64)), np.sort(np.asarray(val, np.int64))


def _class_indices(labels: np.ndarray, label_ids: Sequence[int]) -> np.ndarray:
    """Original label ids -> model class indices (-1 for other labels)."""
    ids = np.asarray(label_ids, np.int64)
    order = np.argsort(ids)
    at = np.minimum(np.searchsorted(ids[order], labels), len(ids) - 1)  # no table as long as the largest id
    return np.where(ids[order][at] == labels, order[at], -1).astype(np.int32)


def load_skeleton_arrays(data: SkeletonPickle, split: str | None, config: dict, require_labels: bool = True
                         ) -> tuple[SkeletonArrays, SkeletonSamples]:
    """Select ``split`` of the run's classes and preprocess it as the run ``config`` did;
    labels become class indices (-1 for classes the run does not know)."""
    samples = select_samples(data, split, config["label_ids"] if require_labels else None, require_labels)
    arrays = preprocess_skeletons(samples, config["max_persons"], config["score_threshold"])
    arrays.labels = _class_indices(arrays.labels, config["label_ids"])
    return arrays, samples


def train_skeleton(ann_path: str | Path, out_dir: str | Path, config: SkeletonTrainConfig | None = None,
                   overwrite: bool = False, **settings) -> dict:
    """Train the masked LSTM on the ``train_split`` of a PYSKL pickle; returns the best epoch's record.

    ``settings`` override fields of ``config`` (``SkeletonTrainConfig``), e.g. ``epochs=20``.
    Writes into ``out_dir``: ``model.keras`` (best validation accuracy), ``config.json``,
    ``labels.json``, ``best.json``, ``history.csv``, ``training_curves.png``; an interrupted
    run leaves ``backup/`` and resumes from it when started again with the same settings. A
    finished run in ``out_dir`` is replaced only with ``overwrite``, once the new one has finished.
    """
    from seqvision.rundir import staged_run_dir

    import keras

    config = dataclasses.replace(config or SkeletonTrainConfig(), ann_path=str(ann_path), **settings)
    if config.classes is not None:
        config.classes = list(config.classes)
    if config.flip_pairs:
        config.flip_pairs = list(config.flip_pairs)  # as config.json gives it back, for resume
    keras.utils.set_random_seed(config.seed)
    names = read_label_names(config.label_names) if config.label_names else None
    data = read_skeleton_pickle(config.ann_path)
    label_ids = resolve_classes(config.classes, names) if config.classes else None
    train = select_samples(data, config.train_split, label_ids)
    if not len(train):
        raise SkeletonDataError(data.path, f"split {config.train_split!r} has no usable sequences")
    _check_classes_present(data.path, config.train_split, label_ids, train.labels)
    config.label_ids = label_ids or sorted(set(train.labels.tolist()))
    if names and max(config.label_ids) >= len(names):
        raise SkeletonDataError(config.label_names, f"names {len(names)} labels, the data uses label "
                                                    f"{max(config.label_ids)}")
    labels = [names[i] if names else str(i) for i in config.label_ids]
    config.augmentation(labels)  # an unknown --flip-pairs class is refused before anything is written
    saved = dataclasses.asdict(config)
    train_arrays = preprocess_skeletons(train, config.max_persons, config.score_threshold)
    train_arrays.labels = _class_indices(train_arrays.labels, config.label_ids)
    if config.val_split:
        val_arrays, _ = load_skeleton_arrays(data, config.val_split, saved)
        if not len(val_arrays):
            raise SkeletonDataError(data.path, f"validation split {config.val_split!r} has no usable sequences "
                                               "of the training classes")
    elif config.val_fraction > 0:
        train_rows, val_rows = split_train_val(train_arrays.labels, train_arrays.frame_dirs, config.val_fraction,
                                               config.seed, config.groups_file)
        train_arrays, val_arrays = train_arrays.take(train_rows), train_arrays.take(val_rows)
    else:
        val_arrays = None
    del data, train
    log.info("%d training, %d validation sequences, %d classes", len(train_arrays),
             len(val_arrays) if val_arrays else 0, len(labels))

    with staged_run_dir(Path(out_dir), saved, overwrite) as (run_dir, resuming):
        return _fit_skeleton(config, run_dir, resuming, labels, train_arrays, val_arrays)


def _check_classes_present(path: str, split: str | None, label_ids: list[int] | None, labels: np.ndarray) -> None:
    """Refuse asked-for classes without a training sequence: the model would learn never to predict them."""
    missing = sorted(set(label_ids or ()) - set(labels.tolist()))
    if missing:
        raise SkeletonDataError(path, f"no usable sequence of class {', '.join(map(str, missing))} in split "
                                      f"{split!r}; leave it out of --classes")


def _fit_skeleton(config: SkeletonTrainConfig, run_dir: Path, resuming: bool, labels: list[str],
                  train_arrays: SkeletonArrays, val_arrays: SkeletonArrays | None) -> dict:
    """:func:`train_skeleton` in the folder chosen for it."""
    from seqvision.models import build_sequence_classifier
    from seqvision.training import fit_classifier, make_strategy

    atomic_write_json(run_dir / "labels.json", labels)
    strategy = make_strategy(config.strategy)
    batch = config.batch_size * strategy.num_replicas_in_sync
    common = dict(seq_len=config.seq_len, use_score=config.use_score, seed=config.seed)
    train_ds = make_skeleton_dataset(train_arrays, batch, training=True, augmentation=config.augmentation(labels),
                                     **common)
    val_ds = make_skeleton_dataset(val_arrays, batch, **common) if val_arrays else None
    dim = feature_dim(config.max_persons, config.use_score)

    def build():
        return build_sequence_classifier(dim, len(labels), "keypoints", None, units=config.units,
                                         num_layers=config.num_layers, bidirectional=config.bidirectional,
                                         dropout=config.dropout, input_dropout=config.input_dropout,
                                         name="skeleton_classifier")

    _, best = fit_classifier(build, train_ds, val_ds, run_dir, config.epochs, config.lr, config.patience, strategy,
                             resuming)
    return {**best, "num_train": len(train_arrays),
            "num_val": len(val_arrays) if val_arrays else 0}


def load_skeleton_run(run_dir: str | Path):
    """``(model, config, labels)`` of a run directory written by ``train_skeleton``."""
    import seqvision.models  # noqa: F401  (custom layers for deserialisation)

    run_dir = Path(run_dir)
    missing = [n for n in ("config.json", "labels.json", "model.keras") if not (run_dir / n).exists()]
    if missing:
        raise ValueError(f"{run_dir}: not a finished run directory (missing {', '.join(missing)})")
    config = read_json(run_dir / "config.json")
    if config.get("kind") != "skeleton":
        raise ValueError(f"{run_dir}: a {config.get('kind')!r} run, not a skeleton run")
    if (run_dir / "backup").is_dir():
        log.warning("%s: training was interrupted; using the best model saved so far", run_dir)
    from seqvision.inference import load_model_file

    return load_model_file(run_dir / "model.keras"), config, read_json(run_dir / "labels.json")


def predict_probs(model, arrays: SkeletonArrays, config: dict, batch_size: int = 128) -> np.ndarray:
    """Class probabilities float32 [N, K] of preprocessed sequences, sampled as in ``config``."""
    import contextlib
    import sys

    if not len(arrays):
        return np.zeros((0, model.output_shape[-1]), np.float32)
    dataset = make_skeleton_dataset(arrays, batch_size, seq_len=config["seq_len"], use_score=config["use_score"])
    with contextlib.redirect_stdout(sys.stderr):
        return model.predict(dataset, verbose=0)
