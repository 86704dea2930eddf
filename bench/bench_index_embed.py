"""Benchmark: ``embed INDEX.csv`` against the notebook approach, and the pooling measurement.

Run:  nice -n 10 python bench/bench_index_embed.py speed [--img-size 224]
      nice -n 10 python bench/bench_index_embed.py pooling      (table of bench/embed_pooling.md)

speed: one index over real videos of ``/work/shared/data`` (clip_len 32, stride 16), in one
process with one MobileNetV2 (the real ImageNet weights of ``/work/shared/weights`` if present):
1. ``export_clip_embeddings`` (one decode per video, distinct frames embedded once, batched);
2. the notebook loop: for each clip, for each of its T frames ``cap.set(CAP_PROP_POS_FRAMES, i)``
   + ``cap.read()``, then one model call per clip.
Both take the same T uniformly sampled frames of each window. Measured (2 shared CPU cores,
real weights, 224 px, T=16, 63 clips from 4 videos): embed 1.97 clips/s, notebook 0.56 clips/s, 3.50x.

pooling: a label that only motion carries. Each real source video is written twice at 224 px
(MJPG): as it is (``Normal_speed``, y=0) and at 4x speed, every 4th frame (``Fast``, y=1), so
appearance is shared and the speed of change differs. Windows are indexed and embedded once
(``--keep-frames``); each pool is computed from the same frame embeddings and probed with a
logistic regression, train -> val, over ``--repeats`` random splits by source video (both
versions of a source, and sources showing the same scene, stay in one split).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")  # as the seqvision CLI does

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from seqvision.clip_embeddings import POOLS, backbone_encoder, export_clip_embeddings, pool_frame_embeddings  # noqa: E402
from seqvision.clip_index import build_clip_index, read_clip_index  # noqa: E402
from seqvision.sampling import sample_uniform_indices  # noqa: E402
from seqvision.video import read_video_frames  # noqa: E402

SHARED = Path("/work/shared")
WEIGHTS = SHARED / "weights" / "mobilenet_v2_imagenet_1.0_224_no_top.h5"
SPEED_SOURCES = ["st-gcn/ta_chi.mp4", "mmaction2/test.avi", "mmaction2/demo.mp4", "st-gcn/skateboarding.mp4"]
# group: sources showing the same scene share a group (shared/data/README.md)
POOL_SOURCES = {"st-gcn/ta_chi.mp4": 0, "st-gcn/clean_and_jerk.mp4": 1, "st-gcn/skateboarding.mp4": 2,
                "mmaction2/demo.mp4": 3, "mmaction2/test.mp4": 3, "mmaction2/test_video_structuralize.mp4": 4,
                "mmaction2/test.avi": 5, "video_features/v_GGSY1Qvo990.mp4": 6, "video_features/v_ZNVhz7ctTq0.mp4": 7,
                "decord/flipping_a_pancake.mkv": 8, "mmaction2/S001C001P001R001A001_rgb.avi": 9}


def encoder(img_size: int):
    weights = str(WEIGHTS) if WEIGHTS.exists() else "none"
    print(f"MobileNetV2 {img_size}px, weights: {weights}", file=sys.stderr)
    return backbone_encoder("mobilenet", img_size, weights=weights)


def notebook_embed(index_csv: Path, videos_dir: Path, model, seq_len: int, img_size: int) -> np.ndarray:
    """One seek + read per frame, one model call per clip: ``[N, T, D]``."""
    out = []
    for row in read_clip_index(index_csv):
        cap = cv2.VideoCapture(str(videos_dir / row["path"]))
        frames = []
        for i in sample_uniform_indices(row["n_frames"], seq_len, row["start_frame"], row["end_frame"]):
            cap.set(cv2.CAP_PROP_POS_FRAMES, int(i))
            ok, frame = cap.read()
            frames.append(cv2.resize(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), (img_size, img_size),
                                     interpolation=cv2.INTER_AREA))
        cap.release()
        out.append(np.asarray(model.predict_on_batch(np.stack(frames)), np.float32))
    return out


def speed(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for source in SPEED_SOURCES:
            (tmp / "videos" / "Normal").mkdir(parents=True, exist_ok=True)
            (tmp / "videos" / "Normal" / Path(source).name).symlink_to(SHARED / "data" / source)
        build_clip_index(tmp / "videos", tmp / "index.csv", val_fraction=0, test_fraction=0, progress=False)
        n = len(read_clip_index(tmp / "index.csv"))
        enc = encoder(args.img_size)
        enc.model.predict_on_batch(np.zeros((2, args.img_size, args.img_size, 3), np.float32))  # warm-up
        start = time.perf_counter()
        export_clip_embeddings(tmp / "index.csv", tmp / "emb", enc, seq_len=args.seq_len, progress=False)
        ours = time.perf_counter() - start
        start = time.perf_counter()
        notebook_embed(tmp / "index.csv", tmp / "videos", enc.model, args.seq_len, args.img_size)
        theirs = time.perf_counter() - start
    print(f"{n} clips (T={args.seq_len}, {args.img_size}px) from {len(SPEED_SOURCES)} videos")
    print(f"embed INDEX.csv: {ours:.1f} s, {n / ours:.2f} clips/s")
    print(f"notebook (seek per frame, one model call per clip): {theirs:.1f} s, {n / theirs:.2f} clips/s")
    print(f"speed-up: {theirs / ours:.2f}x")


def write_speed_set(videos_dir: Path, speedup: int) -> dict[str, int]:
    """Normal_speed/<name>.avi and Fast/<name>.avi per source; returns {name: group}."""
    groups = {}
    for source, group in POOL_SOURCES.items():
        frames, _, info = read_video_frames(SHARED / "data" / source, stride=1, size=224)
        name = Path(source).stem
        for category, step in (("Normal_speed", 1), ("Fast", speedup)):
            path = videos_dir / category / f"{name}.avi"
            path.parent.mkdir(parents=True, exist_ok=True)
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), info.fps or 25.0, (224, 224))
            for frame in frames[::step]:
                writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            writer.release()
        groups[name] = group
    return groups


def pooling(args) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        groups = write_speed_set(tmp / "videos", args.speedup)
        split_file = tmp / "splits.csv"
        split_file.write_text("path,split\n" + "".join(f"{c}/{name}.avi,all\n" for name in groups
                                                       for c in ("Normal_speed", "Fast")))
        build_clip_index(tmp / "videos", tmp / "index.csv", split_file=split_file, progress=False)
        export_clip_embeddings(tmp / "index.csv", tmp / "emb", encoder(224), seq_len=args.seq_len, keep_frames=True)
        frames, mask = np.load(tmp / "emb" / "F_all.npy").astype(np.float32), np.load(tmp / "emb" / "mask_all.npy")
        y = np.load(tmp / "emb" / "y_all.npy")
        rows = read_clip_index(tmp / "index.csv")
    group = np.array([groups[Path(r["path"]).stem] for r in rows])
    print(f"{len(rows)} windows ({int((y == 0).sum())} normal speed, {int(y.sum())} at {args.speedup}x), "
          f"{len(set(group))} scene groups, T={args.seq_len}")
    rng = np.random.default_rng(0)
    print("| pool | dim | val ROC-AUC (mean ± sd over splits) |\n|---|---|---|")
    splits = [rng.permutation(sorted(set(group))) for _ in range(args.repeats)]
    for pool in POOLS:
        x = pool_frame_embeddings(frames, mask, pool)
        aucs = []
        for order in splits:
            val = np.isin(group, order[:3])
            model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x[~val], y[~val])
            aucs.append(roc_auc_score(y[val], model.predict_proba(x[val])[:, 1]))
        print(f"| {pool} | {x.shape[1]} | {np.mean(aucs):.3f} ± {np.std(aucs):.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=["speed", "pooling"])
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--seq-len", type=int, default=16)
    parser.add_argument("--speedup", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    speed(args) if args.task == "speed" else pooling(args)


if __name__ == "__main__":
    main()
