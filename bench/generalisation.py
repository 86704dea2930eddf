"""Generalisation protocol: which defaults hold on data nobody tuned them on.

A table of datasets x methods, test accuracy on held-out recording groups (or held-out
source videos / subjects), one row per (dataset, method) with the mean and the value of
each seed. Defaults are chosen on the ``select`` datasets only; the ``report`` datasets
are measured with whatever was chosen and never used to choose.

Datasets (all order-sensitive; most made by generators written independently of each
other and of ``seqvision.demo``, see ``bench/generators/``):

    demo        select  seqvision's demo generator (moving / growing shapes)
    rotation    select  textured shapes rotating cw / ccw, approaching / receding
    appear      select  items placed / removed one by one, containers filling / draining
                        (added 2026-12-03: a selection set for appear / disappear classes)
    handheld    report  camera shake, flicker, occlusion: opening / closing, rising / falling
    particles   report  particle clouds gathering / scattering, strokes painted / erased
    real        report  real footage from ../shared/data: forward vs time-reversed windows,
                        all windows of one source video on one side of the split
    real_s1     report  the same windows' source videos split another way (generator seed 1, 2;
    real_s2             "real" is seed 0): 5 test sources per split, so three splits measure
                        the task on more than one draw of test videos
    real_camera report  real footage from ../shared/data filmed by a virtual camera that pans left /
    real_camera_s1      right or zooms in / out (time-reversed pairs; the scene itself plays forward or
    real_camera_s2      backward at random): a learnable order task on real scenes, textures and
                        compression; the three split seeds as for real (added 2026-12-07, late session)
    appear_wide         appear's / handheld's training clips, 160 test clips: their own 40 and all
    handheld_wide       120 clips of the generator run with seed 1 (added 2026-12-07: 40 test
                        clips give a 95% interval of +-0.09 around 0.90, 160 of +-0.05);
    rotation_wide,      likewise for rotation and particles (added 2026-12-07, later). Role: that of
    particles_wide      their generator (rotation_wide and appear_wide select since 2026-12-07, later)
    <set>_draw2 .. 4    another draw of training clips: the training split of <set>'s generator run
                        with seed 2, 3 or 4 (other scenes), tested on <set>_wide's 160 clips (added
                        2026-12-07, later: one draw of training scenes decides much of a set's figure);
                        role of <set>
    skel_synth  select  seqvision's skeleton generator (time-reversed pairs)
    skel_sides  report  side-specific classes (raise left vs right arm, ...)
    skel_daily  report  everyday actions with time-reversed pairs, two persons

Methods (video): ``notebook`` (the seed notebooks' recipe: 16 frames at 64 px,
TimeDistributed CNN -> LSTM(64), zero padding without a mask, 20 epochs), ``defaults``
(``seqvision train`` with no options: since 2026-12-06 the frozen ImageNet MobileNetV2, the file of
``../shared/weights`` standing in for Keras' download, so the same settings as ``mobilenet`` below; since
2026-12-07 (night) with brightness-standardised flow statistics, ``mobilenet_plainflow`` without),
``cnn`` (``--backbone cnn`` and its defaults: the CNN sees Lucas-Kanade flow, ``--motion flow``; the
default backbone before 2026-12-06, its rows of that time were named ``defaults``), ``orderless``
(the cnn with the mean-pooling head), ``v0`` (the cnn options before this
protocol: 112 px, global average pooling, no motion input, one view, no weight decay; it shares the
later fixes: BatchNorm momentum, keeping the last epoch, the validation split) and one-change
ablations of the cnn's defaults (``diff``: frames next to their differences, the default before flow;
``frames``; ``trend``: ``--head trend``; ``no_feature_diff``, ``one_view``, ``gap``, ``small``, ``no_val``; ``bidir``: a bidirectional LSTM, the default since 2026-12-03, and
``unidirectional`` after that; ``late_fusion``: ``--motion two_stream``, a flow CNN and a frames CNN with
their own heads, weights chosen on validation, ``late_fusion32`` / ``late_fusion_thin`` with a 32 px or
narrower frames CNN, ``late_fusion_s2`` with a strided 5x5 first convolution in the frames CNN). Rows whose option is not in the code (``flow128``, ``flow_edges``,
``groupnorm``, and ``two_stream`` / ``two_stream64``: the streams fused before one LSTM, branch
``twostream``) ran on an uncommitted change, described in ``generalisation_notes.md``. ImageNet MobileNetV2
features (``../shared/weights``), on any video set: ``nb_mobilenet`` (16 frames, MobileNetV2 features,
Masking + LSTM(64)), ``meanpool_logreg`` (mean feature + logistic regression), ``mobilenet``
(``seqvision train --backbone mobilenet --weights FILE``, its defaults) and one change to it:
``mobilenet_lstm`` / ``mobilenet_trend`` (``--head lstm`` / ``--head trend``), ``mobilenet_trend_nofd``
(``--head trend --no-feature-diff``), ``mobilenet_noflow`` (``--no-flow-stats``: the embeddings alone, the
default before 2026-12-05; ``mobilenet_trend`` rows ran before motion descriptors existed, so the same),
``mobilenet_noval`` / ``mobilenet_noval_wd10`` (``--val-split 0``, with weight decay 10), ``mobilenet_epochs60``,
``mobilenet_t32`` (32 sampled steps), ``mobilenet_views8`` (8 cached views per clip), ``mobilenet_change``
(``--change-stream``: change images embedded too; ``mobilenet_change_l1_1e-1`` with ``--head-l1 0.1``;
``mobilenet_moving``: ``--moving-part``, the flow statistics with the centre and flow of what moves against the
frame, added 2026-12-07; ``mobilenet_brightness``: ``--brightness-norm``, the flow statistics of frames whose
brightness is standardised, added 2026-12-07 (later); ``mobilenet_brightness_affine``: that with
``--moving-part --camera-motion affine``, the moving part against a robust affine fit of the camera's motion,
added 2026-12-07 (night); ``mobilenet_clip_change``: ``--clip-change``, the embedding of what changed over
the clip (last quarter against first) next to every step, added 2026-12-07 (night session);
``mobilenet_moving_parts`` and ``mobilenet_grid2``, the
last feature map average-pooled on a 2x2 grid instead of globally, ran on uncommitted changes, see the
notes of 2026-12-06), ``mobilenet_norefit``
(``--no-refit``: the head of the run with validation clips held out, the default before the refit). The flow
CNN with those motion descriptors next to its features: ``flow_stats`` / ``flow_stats_trend``. Skeletons:
``defaults`` and one-change ablations: ``flip`` (the old default: mirror without changing
labels), ``one_centre`` (every person normalised by the first one's body), ``keep_best``
(early stopping on the validation loss), ``weight_decay``, ``unidirectional``, ``epochs100``.

Every seqvision run is evaluated with 1 and 4 views (``evaluate --views``).

    python bench/generalisation.py --datasets rotation,demo --methods defaults,cnn,notebook --seeds 0,1,2
    python bench/generalisation.py --table      # rewrite bench/generalisation.md from the results file

Results are appended to ``bench/generalisation_results.jsonl`` (one JSON line per run with the
git commit it ran on; a finished (dataset, method, seed) of the same commit is not run again),
the table goes to ``bench/generalisation.md`` (the newest result of each (dataset, method, seed)).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import re
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared"
WEIGHTS = SHARED / "weights" / "mobilenet_v2_imagenet_1.0_224_no_top.h5"
RESULTS = HERE / "generalisation_results.jsonl"
TABLE = HERE / "generalisation.md"

VIDEO_SETS = {"demo": "select", "rotation": "select", "appear": "select", "handheld": "report", "particles": "report",
              "real": "report", "real_s1": "report", "real_s2": "report",
              "real_camera": "report", "real_camera_s1": "report", "real_camera_s2": "report",
              # the same training clips, 160 test clips (make_video_set): the role of their generator (2026-12-07, later)
              "rotation_wide": "select", "appear_wide": "select", "handheld_wide": "report", "particles_wide": "report"}
VIDEO_GENERATORS = {"rotation": "video_rotation", "appear": "video_appear", "handheld": "video_handheld",
                    "particles": "video_particles"}  # modules in generators/
TRAINING_DRAWS = (2, 3, 4)  # <set>_draw<d>: training clips of the generator run with seed d, tested on <set>_wide
VIDEO_SETS.update({f"{name}_draw{draw}": VIDEO_SETS[name] for name in VIDEO_GENERATORS for draw in TRAINING_DRAWS})
SKELETON_SETS = {"skel_synth": "select", "skel_sides": "report", "skel_daily": "report"}
SIDE_PAIRS = None  # skel_sides: no flip pairs are passed to the defaults; the default must be safe alone

# The small CNN trained end to end (`--backbone cnn`, the default backbone until 2026-12-06: rows named "cnn" are its
# defaults at their commit) and one change each to its defaults.
CNN_VARIANTS = {
    "cnn": {},
    "orderless": {"head": "mean"},
    "trend": {"head": "trend"},  # the CNN's features pooled by mean, time trend and change, then linear
    "diff": {"motion": "diff"},  # the default before flow: frames next to their differences
    "frames": {"motion": "frames"},
    "late_fusion": {"motion": "two_stream"},  # flow CNN and frames CNN, own heads, weights chosen on validation
    "late_fusion32": {"motion": "two_stream", "appearance_size": 32},  # its frames CNN on 32 px frames
    "late_fusion_s2": {"motion": "two_stream", "appearance_stride": 2},  # its frames CNN: a strided 5x5 first conv
    "late_fusion_thin": {"motion": "two_stream", "appearance_filters": [16, 32, 64, 128]},  # a narrower frames CNN
    "v0": {"img_size": 112, "motion": "frames", "feature_diff": False, "train_views": 1, "weight_decay": 0.0,
           "pooling": "gap"},
    "no_feature_diff": {"feature_diff": False},
    "one_view": {"train_views": 1},
    "gap": {"pooling": "gap"},
    "small": {"filters": [32, 64, 64]},
    "bidir": {"bidirectional": True},  # rows of 0662172, before this was the default
    "unidirectional": {"bidirectional": False},
    "no_val": {"val_split": 0.0},
    # the frozen-backbone motion descriptors (flow.FlowStatistics) next to the flow CNN's features
    "flow_stats": {"flow_stats": True},
    "flow_stats_trend": {"flow_stats": True, "head": "trend"},
    # Rows of the branch twostream (code not on main): one CNN per stream, frames pooled to the flow's
    # side (two_stream), or a flow CNN at half the side + a frames CNN at the full side (two_stream64).
}
VIDEO_VARIANTS = {name: {"backbone": "cnn", **options} for name, options in CNN_VARIANTS.items()}

SKELETON_VARIANTS = {"defaults": {}, "flip": {"flip": True}, "one_centre": {"per_person": False},
                     "keep_best": {"keep": "best"}, "weight_decay": {"weight_decay": 1e-4},
                     "unidirectional": {"bidirectional": False}, "epochs100": {"epochs": 100}}

log = logging.getLogger("generalisation")


def _load_generator(name: str):
    spec = importlib.util.spec_from_file_location(name, HERE / "generators" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_video_set(name: str, work: Path) -> Path:
    """``work/<name>/{train,test}/<label>/…`` (made once; a ``done`` marker says it is whole)."""
    root = work / name
    if (root / "done").exists():
        return root
    if name.endswith("_wide"):
        return _make_wide_set(name, work)
    if re.fullmatch(r"\w+_draw\d+", name):
        return _make_draw_set(name, work)
    if name == "demo":
        from seqvision.demo import make_demo_videos

        make_demo_videos(root / "train", clips_per_class=30, groups_per_class=6, first_group=1, seed=0)
        make_demo_videos(root / "test", clips_per_class=10, groups_per_class=2, first_group=7, seed=1000)
    elif name.startswith("real"):
        if not (SHARED / "data").is_dir():
            raise FileNotFoundError(f"{SHARED / 'data'} is missing: the real-footage set needs it")
        generator, _, split = name.partition("_s")
        _load_generator("real_camera" if generator == "real_camera" else "real_reversal").make_dataset(
            root, seed=int(split or 0), shared_data=str(SHARED / "data"))
    else:
        _load_generator(VIDEO_GENERATORS[name]).make_dataset(root, seed=0)
    (root / "done").write_text("")
    return root


def _make_wide_set(name: str, work: Path) -> Path:
    """``<set>_wide``: the training clips of ``<set>`` and four times its test clips: its own test clips
    and every clip of the same generator run with seed 1 (other scenes, objects and nuisances; groups
    renamed ``g1NN``), linked, not copied. 160 test clips instead of 40 narrow the 95% interval from
    about +-0.09 to +-0.05."""
    base_name = name.removesuffix("_wide")
    base = make_video_set(base_name, work)
    other = make_generator_run(base_name, 1, work)
    root = work / name
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    (root / "train").symlink_to(base / "train", target_is_directory=True)
    for source, rename in ((base / "test", False), (other / "train", True), (other / "test", True)):
        for video in sorted(p for p in source.glob("*/*") if p.is_file()):
            name_out = re.sub(r"_g(\d+)_", lambda m: f"_g1{m.group(1)}_", video.name) if rename else video.name
            target = root / "test" / video.parent.name / name_out
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(video.resolve())
    (root / "done").write_text("")
    return root


def _make_draw_set(name: str, work: Path) -> Path:
    """``<set>_draw<d>``: the training clips of ``<set>``'s generator run with seed ``d`` (other scenes,
    objects and nuisances than seed 0's) and the 160 test clips of ``<set>_wide``, linked, not copied."""
    base_name, draw = re.fullmatch(r"(\w+)_draw(\d+)", name).groups()
    if int(draw) < 2:
        raise ValueError(f"{name}: draws 0 and 1 are the set itself and its wide test clips")
    run = make_generator_run(base_name, int(draw), work)
    wide = make_video_set(f"{base_name}_wide", work)
    root = work / name
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    (root / "train").symlink_to(run / "train", target_is_directory=True)
    (root / "test").symlink_to(wide / "test", target_is_directory=True)
    (root / "done").write_text("")
    return root


def make_generator_run(name: str, seed: int, work: Path) -> Path:
    """``work/<name>_seed<seed>/{train,test}/…``: the generator of video set ``name`` run with another seed."""
    root = work / f"{name}_seed{seed}"
    if not (root / "done").exists():
        _load_generator(VIDEO_GENERATORS[name]).make_dataset(root, seed=seed)
        (root / "done").write_text("")
    return root


def make_skeleton_set(name: str, work: Path) -> Path:
    path = work / f"{name}.pkl"
    if not path.exists():
        if name == "skel_synth":
            from seqvision.skeleton_synth import make_synthetic_skeleton_dataset

            make_synthetic_skeleton_dataset(path, seed=0)
        else:
            _load_generator({"skel_sides": "skeleton_sides", "skel_daily": "skeleton_daily"}[name]).make_dataset(
                path, seed=0)
    return path


def run_seqvision_video(root: Path, run_dir: Path, seed: int, overrides: dict) -> dict:
    from seqvision.run import load_run
    from seqvision.training import VideoTrainConfig, train_video

    config = VideoTrainConfig(data_dir=str(root / "train"), seed=seed, **overrides)
    start = time.perf_counter()
    train_video(config, run_dir)
    seconds = time.perf_counter() - start
    run = load_run(run_dir)
    scores = {f"views{v}": run.evaluate(root / "test", views=v)["accuracy"] for v in (1, 4)}
    return {"accuracy": scores["views1"], **scores, "train_s": seconds}


def run_notebook_video(root: Path, seed: int, seq_len: int = 16, size: int = 64, epochs: int = 20) -> dict:
    """The seed notebooks' recipe: TimeDistributed CNN -> LSTM(64), zero padding without a mask."""
    import keras
    from keras import layers

    from seqvision.datasets import find_clips, load_clip

    def arrays(split):
        clips = find_clips(root / split)
        labels = sorted({c.label for c in clips})
        x = np.stack([load_clip(c.path, seq_len, size)[0] for c in clips]).astype(np.float32) / 255.0
        y = np.array([labels.index(c.label) for c in clips])
        return x, y, labels

    x_train, y_train, labels = arrays("train")
    x_test, y_test, _ = arrays("test")
    keras.utils.set_random_seed(seed)
    cnn = keras.Sequential([keras.Input((size, size, 3)),
                            layers.Conv2D(16, 3, activation="relu"), layers.MaxPooling2D(),
                            layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(),
                            layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(),
                            layers.Flatten(), layers.Dense(64, activation="relu")])
    model = keras.Sequential([keras.Input((seq_len, size, size, 3)), layers.TimeDistributed(cnn),
                              layers.LSTM(64), layers.Dense(len(labels), activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x_train, y_train, epochs=epochs, batch_size=8, verbose=0)
    seconds = time.perf_counter() - start
    accuracy = float(np.mean(model.predict(x_test, verbose=0).argmax(1) == y_test))
    return {"accuracy": accuracy, "train_s": seconds}


_FEATURES: dict = {}


def mobilenet_features(root: Path, split: str, seq_len: int = 16):
    """ImageNet MobileNetV2 features of 16 uniform frames: ``(x [N, T, 1280], mask [N, T], y, labels)``."""
    key = (str(root), split)
    if key not in _FEATURES:
        from seqvision.backbones import build_backbone
        from seqvision.datasets import find_clips, load_clip

        backbone = build_backbone("mobilenet", 224, weights=str(WEIGHTS))
        clips = find_clips(root / split)
        labels = sorted({c.label for c in find_clips(root / "train")})
        xs, masks = [], []
        for clip in clips:
            frames, length = load_clip(clip.path, seq_len, 224)
            features = np.zeros((seq_len, 1280), np.float32)
            features[:length] = backbone.predict_on_batch(frames[:length])
            xs.append(features)
            masks.append(np.arange(seq_len) < length)
        _FEATURES[key] = (np.stack(xs), np.stack(masks), np.array([labels.index(c.label) for c in clips]), labels)
    return _FEATURES[key]


def run_notebook_mobilenet(root: Path, seed: int, epochs: int = 30) -> dict:
    import keras
    from keras import layers

    x, _, y, labels = mobilenet_features(root, "train")
    x_test, _, y_test, _ = mobilenet_features(root, "test")
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((None, x.shape[-1])), layers.Masking(0.0), layers.LSTM(64),
                              layers.Dropout(0.3), layers.Dense(len(labels), activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x, y, epochs=epochs, batch_size=8, verbose=0)
    accuracy = float(np.mean(model.predict(x_test, verbose=0).argmax(1) == y_test))
    return {"accuracy": accuracy, "train_s": time.perf_counter() - start}


def run_meanpool_logreg(root: Path, seed: int) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def pooled(split):
        x, mask, y, _ = mobilenet_features(root, split)
        return (x * mask[..., None]).sum(1) / mask.sum(1, keepdims=True), y

    x, y = pooled("train")
    x_test, y_test = pooled("test")
    start = time.perf_counter()
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000, random_state=seed)).fit(x, y)
    return {"accuracy": float(model.score(x_test, y_test)), "train_s": time.perf_counter() - start}


def run_skeleton(path: Path, run_dir: Path, seed: int, overrides: dict) -> dict:
    from seqvision.run import load_run
    from seqvision.skeleton import train_skeleton

    start = time.perf_counter()
    train_skeleton(path, run_dir, seed=seed, **overrides)
    seconds = time.perf_counter() - start
    return {"accuracy": load_run(run_dir).evaluate(path, "test1")["accuracy"], "train_s": seconds}


VIDEO_BASELINES = ("notebook", "nb_mobilenet", "meanpool_logreg")
# `seqvision train --backbone mobilenet --weights WEIGHTS` (frozen ImageNet MobileNetV2, cached embeddings), one
# change each to its defaults. Rows named "mobilenet" before the default head became "trend" (training.default_head)
# were run with the LSTM head and are kept as "mobilenet_lstm".
MOBILENET_VARIANTS = {"mobilenet": {}, "mobilenet_lstm": {"head": "lstm"}, "mobilenet_trend": {"head": "trend"},
                      "mobilenet_trend_nofd": {"head": "trend", "feature_diff": False},
                      # the trend head's regularisation (AdamW shrinks weights by lr * weight_decay per step)
                      "mobilenet_wd1": {"weight_decay": 1.0}, "mobilenet_wd10": {"weight_decay": 10.0},
                      # rows of 0d70ec9, whose head had its own weight decay (10 by default): this one is 1e-4, the
                      # default again since (the two tied on the selection sets)
                      "mobilenet_wd_small": {"weight_decay": 1e-4},
                      "mobilenet_drop6": {"dropout": 0.6},
                      # without the Lucas-Kanade motion descriptors next to the embeddings (the default before
                      # 2026-12-05: the same settings as mobilenet_trend)
                      "mobilenet_noflow": {"flow_stats": False},
                      # no validation group held out (the head keeps its last epoch anyway), and longer training
                      # the head kept from the run with validation clips held out (the default before the refit)
                      "mobilenet_norefit": {"refit": False},
                      "mobilenet_noval": {"val_split": 0.0},
                      "mobilenet_noval_wd10": {"val_split": 0.0, "weight_decay": 10.0},
                      "mobilenet_epochs60": {"epochs": 60},
                      # an L1 penalty on the head's output weights: a few of the ~9000 pooled inputs (e.g. one
                      # region's mean rotation of the flow) carry the order, the rest mostly tell scenes apart
                      "mobilenet_l1_1e-3": {"head_l1": 1e-3}, "mobilenet_l1_3e-3": {"head_l1": 3e-3},
                      "mobilenet_l1_1e-2": {"head_l1": 1e-2}, "mobilenet_l1_3e-2": {"head_l1": 3e-2},
                      "mobilenet_l1_1e-1": {"head_l1": 1e-1},
                      # more sampled steps per clip (smaller motions between them for the flow statistics), and
                      # more cached temporal views per training clip
                      "mobilenet_t32": {"seq_len": 32}, "mobilenet_views8": {"train_views": 8},
                      # the frozen backbone also embeds each step's change image (TSN's RGB difference)
                      "mobilenet_change": {"change_stream": True},
                      # the change stream doubles the embedding inputs of the L1 head: a stronger penalty with it
                      "mobilenet_change_l1_1e-1": {"change_stream": True, "head_l1": 1e-1},
                      # the flow statistics with the moving part's centre and flow (camera motion removed)
                      "mobilenet_moving": {"moving_part": True},
                      "mobilenet_plainflow": {"brightness_norm": False},
                      # the flow statistics of brightness-standardised frames (added 2026-12-07, later)
                      "mobilenet_brightness": {"brightness_norm": True},
                      "mobilenet_brightness_affine": {"brightness_norm": True, "moving_part": True,
                                                      "camera_motion": "affine"},
                      # what changed over the clip, embedded once a view, its 16 principal components (added
                      # 2026-12-07, night session)
                      "mobilenet_clip_change": {"clip_change": True}}


def run_one(dataset: str, method: str, seed: int, work: Path) -> dict:
    import keras

    keras.backend.clear_session()
    run_dir = work / "runs" / f"{dataset}-{method}-{seed}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    if dataset in SKELETON_SETS:
        return run_skeleton(make_skeleton_set(dataset, work), run_dir, seed, SKELETON_VARIANTS[method])
    root = make_video_set(dataset, work)
    if method == "notebook":
        return run_notebook_video(root, seed)
    if method == "nb_mobilenet":
        return run_notebook_mobilenet(root, seed)
    if method == "meanpool_logreg":
        return run_meanpool_logreg(root, seed)
    imagenet = {"weights": str(WEIGHTS), "cache_dir": str(work / "cache")}  # the file stands in for Keras' download
    if method == "defaults":  # `seqvision train` with no options
        return run_seqvision_video(root, run_dir, seed, imagenet)
    if method in MOBILENET_VARIANTS:
        return run_seqvision_video(root, run_dir, seed,
                                   {"backbone": "mobilenet", **imagenet, **MOBILENET_VARIANTS[method]})
    return run_seqvision_video(root, run_dir, seed, VIDEO_VARIANTS[method])


def git_commit() -> str:
    import subprocess

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "../seqvision"], cwd=HERE,
                               capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+changes" if dirty else "")


def load_results() -> list[dict]:
    if not RESULTS.exists():
        return []
    return [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]


def write_table(results: list[dict]) -> None:
    rows: dict[tuple[str, str], dict[int, dict]] = {}
    for r in results:
        rows.setdefault((r["dataset"], r["method"]), {})[r["seed"]] = r
    order = {name: i for i, name in enumerate([*VIDEO_SETS, *SKELETON_SETS])}
    lines = ["# Generalisation table", "",
             "Test accuracy on held-out groups (`python bench/generalisation.py`); role `select` = used to choose "
             "the defaults, `report` = measured only. Mean over seeds, then each seed; accuracy = `evaluate --views 1`, "
             "`views4` = `evaluate --views 4` (the default from 2026-12-06); train time on 2 CPU cores (other jobs may "
             "have shared them). Video: `defaults` = `seqvision train` with no options (the frozen ImageNet MobileNetV2 "
             "since 2026-12-06, the same settings as `mobilenet`), `cnn` = `--backbone cnn` with its defaults (the "
             "default backbone before; rows of that time were named `defaults`); `mobilenet_*` rows are one change to "
             "`mobilenet`, the other seqvision rows one change to `cnn`, at the commit they ran on (see "
             "`generalisation_notes.md`).", "",
             "How far apart two rows must be to differ: each synthetic video set has 40 test clips (one clip = 0.025; "
             "the `_wide` and `_draw` sets 160), `real` / `real_s1` / `real_s2` 58 test windows, `real_camera` 74 (5 test "
             "source videos; other splits differ), `skel_synth` 144 and `skel_sides` / `skel_daily` 108 test "
             "clips. The seeds share the test clips, so they do not narrow this: a binomial 95% interval is about "
             "+-0.09 around 0.90 with 40 clips, +-0.05 with 160, +-0.13 around 0.55 with 58 and +-0.08 around 0.88 "
             "with 74 (windows of one source video are not independent, so wider in truth).", "",
             "| dataset | role | method | accuracy (mean) | seeds | views4 (mean) | train s (mean) | commit |",
             "|---|---|---|---|---|---|---|---|"]
    for (dataset, method), by_seed in sorted(rows.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0][1])):
        accuracy = [by_seed[s]["accuracy"] for s in sorted(by_seed)]
        views4 = [by_seed[s]["views4"] for s in sorted(by_seed) if "views4" in by_seed[s]]
        seconds = [by_seed[s]["train_s"] for s in sorted(by_seed)]
        role = {**VIDEO_SETS, **SKELETON_SETS}.get(dataset, "")
        lines.append(f"| {dataset} | {role} | {method} | {np.mean(accuracy):.3f} | "
                     + ", ".join(f"{a:.3f}" for a in accuracy) + " | "
                     + (f"{np.mean(views4):.3f}" if views4 else "") + f" | {np.mean(seconds):.0f} | "
                     + ", ".join(sorted({by_seed[s].get("commit", "?") for s in by_seed})) + " |")
    TABLE.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="demo,rotation,handheld,particles,real")
    parser.add_argument("--methods", default="notebook,orderless,defaults")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--work", default="/tmp/seqvision-generalisation", help="Data, caches and runs.")
    parser.add_argument("--table", action="store_true", help="Only rewrite the table from the results file.")
    parser.add_argument("--again", action="store_true", help="Run finished (dataset, method, seed) again.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    logging.getLogger("generalisation").setLevel(logging.INFO)
    if not args.table:
        for dataset in args.datasets.split(","):
            if dataset not in VIDEO_SETS and dataset not in SKELETON_SETS:
                parser.error(f"unknown dataset {dataset!r}; choose from {', '.join([*VIDEO_SETS, *SKELETON_SETS])}")
            known = (SKELETON_VARIANTS if dataset in SKELETON_SETS
                     else ["defaults", *VIDEO_BASELINES, *MOBILENET_VARIANTS, *VIDEO_VARIANTS])
            for method in args.methods.split(","):
                if method not in known:
                    parser.error(f"unknown method {method!r} for {dataset}; choose from {', '.join(known)}")
        work = Path(args.work)
        commit = git_commit()
        done = {(r["dataset"], r["method"], r["seed"]) for r in load_results() if r.get("commit") == commit}
        for dataset in args.datasets.split(","):
            for method in args.methods.split(","):
                for seed in (int(s) for s in args.seeds.split(",")):
                    if (dataset, method, seed) in done and not args.again:
                        continue
                    log.info("%s / %s / seed %d", dataset, method, seed)
                    result = {"dataset": dataset, "method": method, "seed": seed, "commit": commit,
                              **run_one(dataset, method, seed, work)}
                    log.info("%s", result)
                    with open(RESULTS, "a") as f:
                        f.write(json.dumps(result) + "\n")
    write_table(load_results())


if __name__ == "__main__":
    sys.exit(main())
