"""Benchmark: embedding cache throughput and cached-head vs end-to-end epoch time.

Run:  python bench/bench_embed.py [--clips 48] [--img-size 224] [--seq-len 16]

In one process, on the same synthetic clips (frame folders):
1. embedding throughput of ``build_embedding_cache`` (decode + MobileNetV2 + write),
   against MobileNetV2 ``predict`` on the same frames already in memory, same batch size;
2. mean epoch time of the LSTM head on cached embeddings (one fit() of --head-epochs), against
   that of the end-to-end frames model (frozen MobileNetV2 recomputed every epoch, as without
   a cache; one fit() of --full-epochs), both after a warm-up epoch.
MobileNetV2 has random weights (no network here); speed does not depend on them.
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

import keras  # noqa: E402
import numpy as np  # noqa: E402

from seqvision.backbones import build_backbone  # noqa: E402
from seqvision.datasets import find_clips, load_clip, make_clip_dataset, make_feature_dataset  # noqa: E402
from seqvision.demo import make_demo_videos  # noqa: E402
from seqvision.embeddings import build_embedding_cache  # noqa: E402
from seqvision.frames import extract_frames  # noqa: E402
from seqvision.models import build_sequence_classifier, build_video_classifier  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=48)
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--seq-len", type=int, default=16)
    parser.add_argument("--batch-frames", type=int, default=128)
    parser.add_argument("--full-epochs", type=int, default=2, help="epochs timed end to end")
    parser.add_argument("--head-epochs", type=int, default=20, help="epochs timed for the cached head")
    args = parser.parse_args()
    size, seq_len = args.img_size, args.seq_len
    print(f"cores: {os.cpu_count()}, clips: {args.clips}, T={seq_len}, {size}x{size}, "
          f"batch {args.batch_frames} frames", file=sys.stderr)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_demo_videos(tmp / "videos", clips_per_class=args.clips // 4, groups_per_class=4)
        extract_frames(tmp / "videos", tmp / "frames", seq_len=seq_len, size=size, jobs=os.cpu_count(),
                       progress=False)
        clips = find_clips(tmp / "frames")
        keras.utils.set_random_seed(0)
        backbone = build_backbone("mobilenet", size, weights=None)
        backbone.predict_on_batch(np.zeros((args.batch_frames, size, size, 3), np.float32))  # warm-up

        frames = np.concatenate([f[:n] for f, n in (load_clip(c.path, seq_len, size) for c in clips)])
        frames = frames.astype(np.float32)  # the model's input dtype: no conversion inside the timing
        n_frames = len(frames)
        baseline_s, _ = timed(lambda: backbone.predict(frames, batch_size=args.batch_frames, verbose=0))
        del frames
        ours_s, cache = timed(lambda: build_embedding_cache(
            clips, backbone, {"name": "mobilenet"}, seq_len, size, tmp / "cache" / "c",
            batch_frames=args.batch_frames, progress=False))
        print(f"\n1. embedding {n_frames} frames")
        print(f"   MobileNetV2 predict, frames in memory : {n_frames / baseline_s:8.1f} frames/s")
        print(f"   build_embedding_cache (decode+embed)  : {n_frames / ours_s:8.1f} frames/s")
        print(f"   ratio ours / predict                  : {baseline_s / ours_s:8.2f}  (target >= 0.9)")

        labels = sorted({c.label for c in clips})
        y = np.array([labels.index(c.label) for c in clips], np.int32)
        rows = np.arange(len(clips))
        feature_ds = make_feature_dataset(cache.features, cache.masks, y, rows, 8, training=True)
        head = build_sequence_classifier(cache.features.shape[-1], len(labels), "features")
        head.compile("adam", "sparse_categorical_crossentropy")
        head.fit(feature_ds, epochs=1, verbose=0)  # compile / trace
        head_s, _ = timed(lambda: head.fit(feature_ds, epochs=args.head_epochs, verbose=0))
        head_s /= args.head_epochs

        frame_ds = make_clip_dataset(clips, labels, seq_len, size, 8, training=True)
        full = build_video_classifier(backbone, len(labels), size)
        full.compile("adam", "sparse_categorical_crossentropy")
        full.fit(frame_ds.take(1), epochs=1, verbose=0)  # compile / trace
        full_s, _ = timed(lambda: full.fit(frame_ds, epochs=args.full_epochs, verbose=0))
        full_s /= args.full_epochs
        print(f"\n2. one training epoch over {len(clips)} clips, batch 8 clips (mean epoch time of one "
              f"fit() of {args.full_epochs} / {args.head_epochs} epochs after a warm-up)")
        print(f"   end to end (frozen MobileNetV2 each epoch): {full_s:8.2f} s")
        print(f"   LSTM head on cached embeddings            : {head_s:8.3f} s")
        print(f"   speed-up                                  : {full_s / head_s:8.1f}x  (target >= 50x)")


if __name__ == "__main__":
    main()
