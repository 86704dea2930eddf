"""PYSKL skeleton pickles: safe loading, checked selection of a split, class names.

A PYSKL 2D file (``ucf101_2d.pkl``…) holds ``split`` {name: [frame_dir]} and ``annotations``:
dicts with ``keypoint`` [M, T, 17, 2] (pixels, COCO joint order), ``keypoint_score`` [M, T, 17],
``frame_dir``, ``label``, ``img_shape`` (h, w), ``total_frames``.
"""
from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from seqvision.errors import SeqvisionError

log = logging.getLogger(__name__)

COCO_JOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
NUM_JOINTS = len(COCO_JOINTS)
COCO_LEFT_RIGHT_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
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
            raise SeqvisionError(f"unknown class {c!r}: give label ids" + (" or names from the label file" if names else
                                                                         " (or pass a label-name file to use names)"))
    if len(set(ids)) != len(ids):
        raise SeqvisionError(f"classes listed twice: {classes}")
    return ids
