"""seqvision: video and skeleton action recognition with Keras 3 on TensorFlow.

The public API is imported lazily: ``import seqvision`` loads no TensorFlow, so the command
line's ``--help`` stays fast; the first use of a name below imports its module.

>>> import seqvision
>>> run = seqvision.load_run("runs/cnn")
>>> probs = run.predict_proba(["clip.mp4"])          # float32 [1, C]
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "SeqvisionError": "seqvision.errors",
    "Run": "seqvision.run",
    "load_run": "seqvision.run",
    "extract_frames": "seqvision.frames",
    "VideoTrainConfig": "seqvision.training",
    "train_video": "seqvision.training",
    "SkeletonTrainConfig": "seqvision.skeleton",
    "train_skeleton": "seqvision.skeleton",
    "read_video_frames": "seqvision.video",
    "VideoError": "seqvision.video",
    "make_demo_videos": "seqvision.demo",
    "make_synthetic_skeleton_dataset": "seqvision.skeleton_synth",
    "export_run": "seqvision.export",
    "build_clip_index": "seqvision.clip_index",
    "check_clip_index": "seqvision.clip_index",
    "export_clip_embeddings": "seqvision.clip_embeddings",
    "backbone_encoder": "seqvision.clip_embeddings",
    "pool_frame_embeddings": "seqvision.clip_embeddings",
    "fit_detector": "seqvision.anomaly",
    "save_detector": "seqvision.anomaly",
    "load_detector": "seqvision.anomaly",
    "score_embedding_dir": "seqvision.anomaly",
    "class_timeline": "seqvision.timeline",
    "evaluate_timelines": "seqvision.timeline_eval",
    "find_informative_frames": "seqvision.mif",
}

__all__ = sorted(_PUBLIC) + ["__version__"]


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'seqvision' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
