"""Video training: settings, which clips, the backbone, and end-to-end or cached-head training.

A run directory holds everything needed to evaluate or predict later:
``config.json`` (all settings, ``kind`` = ``video`` | ``features`` | ``skeleton``),
``labels.json``, ``model.keras`` (the best epoch so far, replaced atomically),
``best.json``, ``history.csv``, ``training_curves.png``, and ``backbone/`` when the frozen
backbone came from a SavedModel or TF Hub URL (a copy). An interrupted run leaves
``backup/`` behind and resumes from it when started again with the same settings.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from seqvision.errors import SeqvisionError
from seqvision.fitting import fit_classifier, is_chief, make_strategy, precision_policy
from seqvision.io import atomic_write_json, read_json
from seqvision.model_files import save_model_atomic
from seqvision.rundir import staged_run_dir

log = logging.getLogger(__name__)


@dataclass
class VideoTrainConfig:
    """Settings of a video run; saved as the run's ``config.json``."""

    data_dir: str
    # Frozen ImageNet MobileNetV2 (Keras downloads its weights once): chosen on the selection sets of
    # bench/generalisation.md (demo / rotation / appear 1.000 / 0.975 / 0.908 against the cnn's
    # 1.000 / 0.908 / 0.458); "cnn" needs no pretrained weights.
    backbone: str = "mobilenet"
    seq_len: int = 16
    img_size: int | None = None  # pixels; None = the backbone's default
    epochs: int = 30
    batch_size: int = 8  # per replica
    lr: float = 1e-3
    val_split: float = 0.2
    groups_file: str | None = None  # CSV clip,group for --val-split; None = the UCF101 name rule
    val_dir: str | None = None
    train_list: str | None = None
    val_list: str | None = None
    seed: int = 0
    units: int = 128
    num_layers: int = 1
    bidirectional: bool = True  # chosen on the selection sets of bench/generalisation.md
    dropout: float = 0.3
    head: str | None = None  # "lstm" | "trend" (linear on mean, time trend, change) | "mean" (order-free baseline);
    # None = default_head(backbone)
    motion: str = "flow"  # cnn: what it sees per step: "flow" (from the previous step) | "diff" | "frames"
    # | "two_stream" (flow and frames, one CNN each)
    appearance_size: int | None = None  # two_stream: side in pixels of the frames the second CNN sees; None = img_size
    appearance_filters: list[int] | None = None  # two_stream: the second CNN's conv widths; None = filters
    appearance_stride: int = 1  # two_stream: stride of the second CNN's first convolution
    feature_diff: bool = True  # per-frame vectors next to their change, before the temporal head
    flow_stats: bool | None = None  # each embedding next to Lucas-Kanade motion descriptors (flow.FlowStatistics);
    # None = default_flow_stats(backbone)
    moving_part: bool = False  # flow statistics: also the centre and flow of what moves against the frame
    brightness_norm: bool | None = None  # flow statistics: each frame's grey level standardised before the flow;
    # None = on whenever there are flow statistics (default_brightness_norm)
    camera_motion: str = "median"  # moving part: the camera motion it is measured against (flow.CAMERA_MOTIONS)
    change_stream: bool = False  # frozen backbones: also embed each step's change image |frame_t - frame_t-1|
    clip_change: bool = False  # frozen backbones: also embed what changed over the clip (models.ClipChange)
    weight_decay: float = 1e-4  # AdamW decoupled weight decay
    head_l1: float | None = None  # L1 penalty on the temporal head's output weights; None = default_head_l1(backbone)
    refit: bool = True  # head on cached embeddings, no fine-tuning: after the run with validation, train it again
    # on training + validation clips (its epochs; under keep="best" the best one's) and keep that head
    pooling: str = "grid"  # cnn: "grid" (4x4 cells, keeps where things are) | "gap" (global average)
    filters: list[int] = dataclasses.field(default_factory=lambda: [32, 64, 128, 128])  # cnn conv widths
    train_views: int = 4  # temporally shifted samplings decoded (and cached) per clip; one per epoch (cached: all)
    flip: bool = False  # mirror images keep the label: only for classes without a side
    flip_pairs: list | None = None  # ["left_x:right_x", …] class names: flip, swapping these labels
    keep: str = "last"  # "last" epoch (end of the cosine schedule) or "best" (lowest validation loss)
    patience: int = 8  # with keep="best": early stopping after this many epochs without improvement
    cache: str = "auto"  # decoded clips in memory: "auto" | "memory" | "none"
    weights: str | None = "imagenet"  # keras.applications backbones: "imagenet" | "none" | weights file
    alpha: float = 1.0  # mobilenet width multiplier
    hub_handle: str | None = None  # mobilenet: any image model from a TF Hub URL, SavedModel folder or .keras file
    hub_input_range: str = "0,1"  # the pixel range that model expects: "0,1" (TF Hub), "-1,1", "0,255"
    fine_tune_at: int | None = None  # epoch after which the backbone's top layers train too
    unfreeze: int = 30  # backbone layers unfrozen for fine-tuning
    cache_dir: str | None = None  # embedding cache root; None = the user cache folder
    mixed_precision: bool = False
    strategy: str = "mirrored"  # "mirrored" | "multiworker" (from TF_CONFIG)
    kind: str = "video"


def estimate_cache_bytes(num_clips: int, seq_len: int, img_size: int, views: int = 1) -> int:
    return num_clips * views * seq_len * img_size * img_size * 3


def resolve_cache(cache: str, num_clips: int, seq_len: int, img_size: int, limit_bytes: int = 2 << 30,
                  views: int = 1) -> bool:
    """Whether to cache decoded clips in memory: ``auto`` does so below ``limit_bytes``."""
    if cache not in ("auto", "memory", "none"):
        raise SeqvisionError(f"cache must be auto, memory or none, got {cache!r}")
    if cache == "auto":
        return estimate_cache_bytes(num_clips, seq_len, img_size, views) <= limit_bytes
    return cache == "memory"


def backbone_input_size(config: VideoTrainConfig) -> int:
    """The side in pixels of what the backbone sees per step: half the frame side under flow."""
    from seqvision.backbones import backbone_spec

    takes_motion = "channels" in backbone_spec(config.backbone).options
    return config.img_size // 2 if takes_motion and config.motion in ("flow", "two_stream") else config.img_size


def backbone_options(config: VideoTrainConfig) -> dict:
    """Keyword arguments of ``build_backbone`` for this config: the options its spec takes."""
    from seqvision.backbones import BACKBONES, backbone_spec
    from seqvision.flow import flow_channels

    if config.hub_handle and "hub_handle" not in backbone_spec(config.backbone).options:
        takers = ", ".join(n for n, s in BACKBONES.items() if "hub_handle" in s.options)
        raise SeqvisionError(f"--hub-handle applies to the {takers} backbone, not {config.backbone}")
    channels = {"frames": 3, "diff": 6, "flow": flow_channels(), "two_stream": flow_channels()}[config.motion]
    settings = {**dataclasses.asdict(config), "channels": channels}
    options = {option: settings[option] for option in backbone_spec(config.backbone).options}
    if not config.hub_handle or options.get("hub_input_range") == "0,1":
        options.pop("hub_input_range", None)  # the builder's default; caches and detectors made before it stay valid
    return {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}


def backbone_identity(config: VideoTrainConfig) -> dict:
    """What the embeddings of a frozen backbone depend on (part of the cache key): its name and
    options, with the files they name as path, size and newest mtime (a SavedModel or weights file
    replaced in place must not reuse old embeddings)."""
    from seqvision.backbones import backbone_spec

    identity = {"name": config.backbone, **backbone_options(config)}
    for option in backbone_spec(config.backbone).path_options:
        path = Path(str(identity[option])) if identity[option] else None
        if path is None or not path.exists():  # "imagenet", "none", unset, a URL
            continue
        stats = [f.stat() for f in path.rglob("*") if f.is_file()] if path.is_dir() else [path.stat()]
        identity[option] = {"path": str(path.resolve()), "size": sum(s.st_size for s in stats),
                            "mtime": max((s.st_mtime for s in stats), default=0.0)}
    return identity


def readable_clips(clips, seq_len: int, img_size: int) -> list:
    """The ``clips`` that decode; the others are logged (path + reason) and left out.

    Used for the validation clips before training: Keras cannot validate on a set that yields no
    batch, and a group-aware split can put every unreadable clip of a small folder there.
    """
    from concurrent.futures import ThreadPoolExecutor

    from seqvision.datasets import load_clip
    from seqvision.video import VideoError

    def readable(clip) -> bool:
        try:
            load_clip(clip.path, seq_len, img_size)
            return True
        except (VideoError, OSError, ValueError) as error:
            log.warning("validation: skipping %s", error if isinstance(error, VideoError) else f"{clip.path}: {error}")
            return False

    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        kept = [clip for clip, ok in zip(clips, pool.map(readable, clips)) if ok]
    if clips and not kept:
        log.warning("none of the %d validation clips could be read: training without validation", len(clips))
    return kept


def split_clips(config: VideoTrainConfig):
    """``(train_clips, val_clips, labels)`` from the data options of ``config``."""
    from seqvision.datasets import clips_in_list, find_clips, split_train_val

    clips = find_clips(config.data_dir)
    if config.train_list:
        clips = clips_in_list(clips, config.train_list)
    if config.val_dir:
        train_clips, val_clips = clips, find_clips(config.val_dir)
    elif config.val_list:
        val_clips = clips_in_list(find_clips(config.data_dir), config.val_list)
        held = {c.key for c in val_clips}
        train_clips = [c for c in clips if c.key not in held]  # --val-list alone: train on the rest
    elif config.val_split > 0:
        train_clips, val_clips = split_train_val(clips, config.val_split, config.seed, config.groups_file)
    else:
        train_clips, val_clips = clips, []
    shared = sorted({c.key for c in train_clips} & {c.key for c in val_clips})
    if shared:
        raise SeqvisionError(f"{len(shared)} clip(s) are both training and validation clips (e.g. {shared[0]}); "
                             "the validation accuracy would flatter the model: make the two sets disjoint")
    labels = sorted({c.label for c in train_clips})
    unknown = sorted({c.label for c in val_clips} - set(labels))
    if unknown:
        raise SeqvisionError(f"validation labels missing from training data: {', '.join(unknown)}")
    log.info("%d training clips, %d validation clips, %d classes", len(train_clips), len(val_clips), len(labels))
    return train_clips, val_clips, labels


def default_head(backbone: str) -> str:
    """The temporal head a backbone trains with unless told: ``"trend"`` on a frozen pretrained
    backbone (its embeddings are fixed, the clips few), ``"lstm"`` on the end-to-end ``cnn``.
    Chosen on the selection sets of ``bench/generalisation.md`` (frozen ImageNet MobileNetV2:
    trend 0.833 / 0.592 / 0.800 vs lstm 0.767 / 0.483 / 0.708 on demo / rotation / appear;
    cnn: lstm 0.908 vs trend 0.825 on rotation, 1.000 on demo for both)."""
    from seqvision.backbones import backbone_spec

    return "trend" if backbone_spec(backbone).frozen else "lstm"


def default_flow_stats(backbone: str) -> bool:
    """Whether a backbone's per-frame vectors get motion descriptors (:class:`seqvision.flow.FlowStatistics`)
    unless told: yes for a frozen pretrained backbone, whose image embeddings hardly change when
    a scene turns or moves; no for the ``cnn``, which learns from flow itself (``--motion flow``).
    Chosen on the selection sets of ``bench/generalisation.md`` (see its notes, 2026-12-05)."""
    from seqvision.backbones import backbone_spec

    return backbone_spec(backbone).frozen


def check_flow_statistics_options(config: VideoTrainConfig) -> None:
    """Refuse options that change the flow statistics when a run has none (they would be ignored)."""
    for option in ("moving_part", "brightness_norm"):
        if getattr(config, option) and not config.flow_stats:
            raise SeqvisionError(f"--{option.replace('_', '-')} changes the flow statistics: it needs --flow-stats "
                                 "(the default with a frozen pretrained backbone)")
    if config.camera_motion != "median" and not config.moving_part:
        raise SeqvisionError(f"--camera-motion {config.camera_motion} changes the moving part: it needs --moving-part")


def default_brightness_norm(flow_stats: bool) -> bool:
    """Standardise each frame's brightness before the flow unless told: yes whenever there are flow
    statistics (flicker and exposure changes otherwise read as motion). Chosen on the selection sets of
    ``bench/generalisation.md`` (see its notes, 2026-12-07, night)."""
    return bool(flow_stats)


def resolve_flow_options(config: VideoTrainConfig) -> VideoTrainConfig:
    """``config`` with its flow options left to defaults (None) resolved: ``flow_stats`` by
    :func:`default_flow_stats`, ``brightness_norm`` by :func:`default_brightness_norm`."""
    flow_stats = default_flow_stats(config.backbone) if config.flow_stats is None else config.flow_stats
    brightness_norm = default_brightness_norm(flow_stats) if config.brightness_norm is None else config.brightness_norm
    return dataclasses.replace(config, flow_stats=flow_stats, brightness_norm=brightness_norm)


def flow_statistics_layer(config: VideoTrainConfig):
    """The :class:`seqvision.flow.FlowStatistics` a run's per-step vectors get (None without flow statistics),
    its options resolved as :func:`resolve_flow_options` does."""
    from seqvision.flow import FlowStatistics

    config = resolve_flow_options(config)
    if not config.flow_stats:
        return None
    return FlowStatistics(moving_part=config.moving_part, brightness_norm=config.brightness_norm,
                          camera_motion=config.camera_motion, name="flow_statistics")


def default_head_l1(backbone: str) -> float:
    """The L1 penalty on the temporal head's output weights unless told: 3e-2 on a frozen pretrained
    backbone, whose linear head sees thousands of pooled inputs from a few hundred clips, most of
    them telling scenes apart rather than classes; none for the ``cnn``, which learns its features.
    Chosen on the selection sets of ``bench/generalisation.md`` (see its notes, 2026-12-05, L1)."""
    from seqvision.backbones import backbone_spec

    return 3e-2 if backbone_spec(backbone).frozen else 0.0


def train_video(config: VideoTrainConfig, run_dir: str | Path, overwrite: bool = False) -> dict:
    """Train a frame-backbone + temporal-head classifier on ``config.data_dir``; returns the best record.

    A backbone whose spec is not ``frozen`` (``cnn``) trains end to end on frames. A frozen one
    (``mobilenet``, ``efficientnetv2b0``): its per-frame embeddings are computed once into the
    embedding cache and only the head trains on them; with ``fine_tune_at`` the top
    ``unfreeze`` backbone layers then train end to end on frames at a tenth of the learning rate.
    Either way ``model.keras`` takes frames.
    A finished run in ``run_dir`` is replaced only with ``overwrite``, and only once the new
    one has finished (:func:`seqvision.rundir.staged_run_dir`).
    """
    from seqvision.backbone_layers import backbone_files_root, is_url
    from seqvision.backbones import BACKBONES, backbone_spec
    from seqvision.models import MOTION_INPUTS

    spec = backbone_spec(config.backbone)
    if config.motion not in MOTION_INPUTS:
        raise SeqvisionError(f"unknown motion input {config.motion!r}; choose one of {', '.join(MOTION_INPUTS)}")
    if config.motion != "flow" and "channels" not in spec.options:
        raise SeqvisionError(f"motion input {config.motion!r} is for the cnn backbone; {spec.name} embeds the frames")
    if config.fine_tune_at is not None and not spec.fine_tunable:
        raise SeqvisionError(f"--fine-tune-at applies to pretrained backbones "
                             f"({', '.join(n for n, s in BACKBONES.items() if s.fine_tunable)}), not {spec.name}")
    if config.fine_tune_at is not None and config.hub_handle and not config.hub_handle.endswith(".keras"):
        raise SeqvisionError("fine-tuning needs Keras layers: TF Hub models and SavedModels are used frozen "
                             "(a .keras file can be fine-tuned)")
    # A SavedModel path made absolute: while training, relative handles name the run's own copies.
    hub_handle = config.hub_handle if not config.hub_handle or is_url(config.hub_handle) else \
        str(Path(config.hub_handle).resolve())
    # Lists, as config.json gives them back: a resumed run compares the two.
    config = dataclasses.replace(resolve_flow_options(config), img_size=config.img_size or spec.default_img_size,
                                 hub_handle=hub_handle, head=config.head or default_head(config.backbone),
                                 head_l1=default_head_l1(config.backbone) if config.head_l1 is None
                                 else config.head_l1,
                                 filters=list(config.filters),
                                 appearance_filters=list(config.appearance_filters) if config.appearance_filters else None,
                                 flip_pairs=list(config.flip_pairs) if config.flip_pairs else None)
    run_dir = Path(run_dir)
    keras.utils.set_random_seed(config.seed)
    train_clips, val_clips, labels = split_clips(config)
    if config.flip_pairs:
        from seqvision.labels import mirror_classes

        mirror_classes(config.flip_pairs, labels)  # an unknown class is refused before anything is written
    check_flow_statistics_options(config)
    if config.change_stream and not spec.frozen:
        raise SeqvisionError(f"the change stream is for frozen pretrained backbones; {spec.name} sees motion "
                             f"through --motion")
    if config.clip_change and not spec.frozen:
        raise SeqvisionError(f"--clip-change is for frozen pretrained backbones; {spec.name} sees motion "
                             f"through --motion")
    if spec.frozen and (config.flip or config.flip_pairs) and config.fine_tune_at is None:
        log.warning("flips act on frames: with a frozen %s they apply only while fine-tuning (--fine-tune-at)",
                    config.backbone)
    # The run's model.keras names a copied SavedModel relative to the run folder (copy_saved_models_into_run).
    with staged_run_dir(run_dir, dataclasses.asdict(config), overwrite) as (work_dir, resuming), \
            backbone_files_root(work_dir):
        return _train_video_in(config, work_dir, resuming, train_clips, val_clips, labels)


def _train_video_in(config: VideoTrainConfig, run_dir: Path, resuming: bool, train_clips, val_clips,
                    labels: list[str]) -> dict:
    """:func:`train_video` in the folder chosen for it."""
    from seqvision.backbone_layers import copy_saved_models_into_run
    from seqvision.backbones import backbone_spec, build_backbone
    from seqvision.datasets import make_clip_dataset
    from seqvision.labels import mirror_classes
    from seqvision.models import build_video_classifier

    atomic_write_json(run_dir / "labels.json", labels)

    strategy = make_strategy(config.strategy)
    global_batch = config.batch_size * strategy.num_replicas_in_sync
    steps_per_epoch = -(-len(train_clips) // global_batch)  # frame datasets skip unreadable clips: length unknown
    head_options = dict(units=config.units, num_layers=config.num_layers, bidirectional=config.bidirectional,
                        dropout=config.dropout, head=config.head, feature_diff=config.feature_diff,
                        l1=config.head_l1)
    spec = backbone_spec(config.backbone)
    frame_options = dict(head_options, motion=config.motion if "channels" in spec.options else "frames",
                         change_stream=config.change_stream)

    def frame_datasets():
        cache = resolve_cache(config.cache, len(train_clips) * config.train_views + len(val_clips), config.seq_len,
                              config.img_size)
        common = dict(label_names=labels, seq_len=config.seq_len, img_size=config.img_size,
                      batch_size=global_batch, cache=cache, views=config.train_views, seed=config.seed)
        mirror = mirror_classes(config.flip_pairs, labels) if config.flip_pairs else None
        train_ds = make_clip_dataset(train_clips, training=True, flip=config.flip or mirror is not None,
                                     mirror_classes=mirror, **common)
        # Validation as evaluation does by default: one view, the segment centres.
        readable = readable_clips(val_clips, config.seq_len, config.img_size)
        return train_ds, make_clip_dataset(readable, **{**common, "views": 1}) if readable else None

    with precision_policy(config.mixed_precision):
        # Functions restored from a SavedModel loaded under a strategy scope fail when called in a
        # replica (TF: "graph generated from the cross-replica context"); the Hub model is frozen,
        # so plain variables lose nothing.
        saved_model = config.hub_handle and not config.hub_handle.endswith(".keras")
        with contextlib.nullcontext() if saved_model else strategy.scope():
            backbone = build_backbone(config.backbone, backbone_input_size(config), **backbone_options(config))
            if frame_options["motion"] == "two_stream":  # the second stream: the same CNN on the frames
                frame_options["frames_backbone"] = build_backbone(
                    config.backbone, config.appearance_size or config.img_size, model_name=f"{config.backbone}_frames",
                    **{**backbone_options(config), "channels": 3,
                       "filters": tuple(config.appearance_filters or config.filters),
                       "stem_stride": config.appearance_stride})
        copy_saved_models_into_run(backbone, run_dir)
        if not spec.frozen:
            train_ds, val_ds = frame_datasets()
            model, best = fit_classifier(
                lambda: build_video_classifier(backbone, len(labels), config.img_size,
                                               flow_statistics=flow_statistics_layer(config), **frame_options),
                train_ds, val_ds, run_dir, config.epochs, config.lr, config.patience, strategy, resuming,
                weight_decay=config.weight_decay, keep=config.keep, steps_per_epoch=steps_per_epoch)
            if frame_options["motion"] == "two_stream" and val_ds is not None and is_chief(strategy):
                best = {**best, **choose_stream_weights(model, val_ds)}
                save_model_atomic(model, run_dir / "model.keras")
                atomic_write_json(run_dir / "best.json", best)
            return best

        model, best = train_head_on_embeddings(config, backbone, train_clips, val_clips, labels, run_dir,
                                               strategy, resuming, head_options)
        if config.fine_tune_at is None or config.fine_tune_at >= config.epochs:
            return best
        # The model's own backbone: on resume the model is loaded from disk, not built from `backbone`.
        unfreeze_top_layers(model.get_layer("frame_features").layer, config.unfreeze)
        train_ds, val_ds = frame_datasets()
        model, best = fit_classifier(lambda: model, train_ds, val_ds, run_dir, config.epochs - config.fine_tune_at,
                                     config.lr * 0.1, config.patience, strategy, resuming, phase="finetune",
                                     weight_decay=config.weight_decay, keep=config.keep,
                                     steps_per_epoch=steps_per_epoch)
        best = {**best, "phase": "finetune"}
        if is_chief(strategy):
            save_model_atomic(model, run_dir / "model.keras")
            atomic_write_json(run_dir / "best.json", best)
    return best


STREAM_CHOICES = ((1.0, 0.0), (0.0, 1.0), (1.0, 1.0))  # flow alone, frames alone, both


def choose_stream_weights(model: keras.Model, val_ds) -> dict:
    """Set the ``stream_fusion`` weights of a two-stream ``model`` to the choice in ``STREAM_CHOICES``
    with the lowest log loss on ``val_ds`` (held-out clips); returns what was chosen and each
    choice's validation loss and accuracy."""
    fusion = model.get_layer("stream_fusion")
    per_stream = keras.Model(model.input, fusion.input)
    stream_probs, labels = [], []
    for inputs, label in val_ds:
        stream_probs.append(np.stack([np.asarray(p) for p in per_stream(inputs, training=False)], axis=1))
        labels.append(np.asarray(label))
    log_probs = np.log(np.maximum(np.concatenate(stream_probs).astype(np.float64), 1e-7))  # [N, S, K]
    labels = np.concatenate(labels)
    scores = []
    for weights in STREAM_CHOICES:
        fused = np.einsum("nsk,s->nk", log_probs, np.asarray(weights))
        fused -= fused.max(1, keepdims=True)
        log_fused = fused - np.log(np.exp(fused).sum(1, keepdims=True))
        scores.append({"stream_weights": list(weights), "val_loss": float(-log_fused[np.arange(len(labels)), labels].mean()),
                       "val_accuracy": float((log_fused.argmax(1) == labels).mean())})
    chosen = min(scores, key=lambda score: score["val_loss"])
    fusion.stream_weights.assign(np.asarray(chosen["stream_weights"], np.float32))
    log.info("stream weights (flow, frames) %s chosen on %d validation clips: %s", chosen["stream_weights"],
             len(labels), "; ".join(f"{s['stream_weights']}: loss {s['val_loss']:.3f}, accuracy {s['val_accuracy']:.3f}"
                                   for s in scores))
    return {"stream_weights": chosen["stream_weights"], "stream_choices": scores}


def train_head_on_embeddings(config, backbone, train_clips, val_clips, labels, run_dir, strategy, resuming,
                             head_options) -> keras.Model:
    """Cache the frozen backbone's embeddings, train the head on them, save the frame model.

    Returns ``(frames -> probabilities model (backbone + trained head), best record)``.
    """
    from seqvision.datasets import make_feature_dataset
    from seqvision.embeddings import get_embedding_cache
    from seqvision.models import build_sequence_classifier, build_video_classifier, fit_clip_change_projection

    best_path = Path(run_dir) / "best.json"
    if resuming and best_path.exists() and (best := read_json(best_path)).get("phase") == "head":
        log.info("head training already finished in %s; continuing from its model", run_dir)
        with strategy.scope():
            return keras.models.load_model(Path(run_dir) / "model.keras"), best
    log.info("the head trains on cached embeddings of unaugmented frames; crop%s augmentation applies only "
             "when frames are fed (cnn backbone, fine-tuning)", " and flip" if config.flip else "")
    cache = get_embedding_cache(train_clips + val_clips, backbone, backbone_identity(config), config.seq_len,
                                config.img_size, config.cache_dir, views=config.train_views,
                                flow_stats=flow_statistics_layer(config), change_stream=config.change_stream,
                                clip_change=config.clip_change)
    label_index = {name: i for i, name in enumerate(labels)}
    y = np.array([label_index.get(c["label"], -1) for c in cache.manifest["clips"]], np.int32)
    train_rows, val_rows = (rows[cache.lengths[rows] > 0] for rows in (cache.rows_for(train_clips),
                                                                        cache.rows_for(val_clips)))
    global_batch = config.batch_size * strategy.num_replicas_in_sync
    train_ds = make_feature_dataset(cache.features, cache.masks, y, train_rows, global_batch, training=True,
                                    seed=config.seed)
    val_ds = make_feature_dataset(cache.features, cache.masks, y, val_rows, global_batch) if len(val_rows) else None
    dim = cache.features.shape[-1]
    epochs = config.fine_tune_at if config.fine_tune_at is not None else config.epochs
    clip_change_dim = int(backbone.output_shape[-1]) if config.clip_change else 0
    projection = fit_clip_change_projection(  # no training rows: fit_classifier says so below
        _clip_change_vectors(cache, train_rows, clip_change_dim)) if clip_change_dim and len(train_rows) else None

    def build_head():
        head = build_sequence_classifier(dim, len(labels), "features", clip_change_dim=clip_change_dim,
                                         **head_options)
        if projection is not None:
            head.get_layer("clip_change_pca").set_weights(list(projection))
        return head

    refit = config.refit and len(val_rows) > 0 and config.fine_tune_at is None
    validated = refit and resuming and best_path.exists() and read_json(best_path).get("phase") == "head_validation"
    if validated:
        best = {k: v for k, v in read_json(best_path).items() if k != "phase"}
        log.info("the head's validation run already finished in %s; refitting", run_dir)
    else:
        head, best = fit_classifier(build_head, train_ds, val_ds, run_dir, max(1, epochs), config.lr,
                                    config.patience, strategy, resuming, phase="head",
                                    weight_decay=config.weight_decay, keep=config.keep)
        if refit and is_chief(strategy):
            atomic_write_json(best_path, {**best, "phase": "head_validation"})
    if refit:
        head, best = _refit_head(config, build_head, cache, y, np.concatenate([train_rows, val_rows]), best,
                                 run_dir, strategy, resuming)
    with strategy.scope():
        model = build_video_classifier(backbone, len(labels), config.img_size,
                                       flow_statistics=flow_statistics_layer(config),
                                       change_stream=config.change_stream, clip_change=config.clip_change,
                                       **head_options)
        _copy_head(head, model)
    best = {**best, "phase": "head"}
    if is_chief(strategy):
        save_model_atomic(model, run_dir / "model.keras")
        atomic_write_json(run_dir / "best.json", best)
    return model, best


def _clip_change_vectors(cache, rows, dim: int) -> np.ndarray:
    """The clip-change embeddings ``[len(rows) * V, dim]`` of every cached view of ``rows``: the last ``dim``
    numbers of step 0, where each view's vector sits (only those are read from the cache file)."""
    return np.asarray(cache.features[rows, :, 0, -dim:], np.float32).reshape(-1, dim)


def _refit_head(config, build_head, cache, y, rows, best: dict, run_dir, strategy, resuming):
    """Train a fresh head on the cached ``rows`` (training + validation clips) for the epochs the
    validation run kept; returns ``(head, best)`` with ``best`` still holding the validation figures
    and a ``"refit"`` record. A few hundred clips make the held-out share worth having back once
    the validation run has reported (bench/generalisation_notes.md, 2026-12-05)."""
    from seqvision.datasets import make_feature_dataset
    from seqvision.evaluation import plot_training_curves

    epochs = int(best["epoch"]) if config.keep == "best" else max(1, config.epochs)
    log.info("refitting the head on %d training + validation clips for %d epochs (the validation figures are "
             "those of the run above; --no-refit keeps its head)", len(rows), epochs)
    global_batch = config.batch_size * strategy.num_replicas_in_sync
    all_ds = make_feature_dataset(cache.features, cache.masks, y, rows, global_batch, training=True,
                                  seed=config.seed)
    head, refit = fit_classifier(build_head, all_ds, None, run_dir, epochs, config.lr, config.patience, strategy,
                                 resuming, phase="head_refit", weight_decay=config.weight_decay, keep="last")
    history = Path(run_dir) / "history_head.csv"
    if history.exists():  # the run's curves stay those with validation
        plot_training_curves(history, Path(run_dir) / "training_curves.png")
    record = {k: v for k, v in refit.items() if k != "score"}
    return head, {**best, "refit": {**record, "clips": int(len(rows))}}


def _copy_head(head: keras.Model, model: keras.Model) -> None:
    """Copy the trained head layers (same names in both models) into the frame model."""
    for layer in head.layers:
        if layer.weights:
            model.get_layer(layer.name).set_weights(layer.get_weights())


def unfreeze_top_layers(backbone: keras.Model, count: int) -> None:
    """Make the top ``count`` layers of the backbone's base network trainable, BatchNorm excepted.

    BatchNorm stays frozen so its statistics are not ruined by small video batches: a
    Keras 3 BatchNormalization with ``trainable=False`` runs in inference mode whatever
    ``training`` flag the outer model passes down.
    """
    base = next(layer for layer in backbone.layers if isinstance(layer, keras.Model))
    base.trainable = True
    for i, layer in enumerate(base.layers):
        layer.trainable = i >= len(base.layers) - count and not isinstance(layer, keras.layers.BatchNormalization)
