"""Anomaly detection end to end on real footage: index -> embed (real ImageNet MobileNetV2) -> fit -> score.

Run:  nice -n 10 python bench/anomaly_real.py OUT_DIR [--img-size 224 --clip-len 32 --stride 16 --seq-len 8]

Videos: the real clips of ``../shared/data`` (see its README), labelled by how vigorous the
action is (judged from their frames, not from any file name):

    Normal_calm       ta_chi (tai chi), v_ZNVhz7ctTq0 (walking a dog), S001C001P001R001A001_rgb
                      (drinking water), part_0 (a pole moved slowly in a pool), test.avi (applying eye
                      make-up), flipping_a_pancake (at home, hand-held), test_video_structuralize
                      (people walking in a gym)
    Vigorous          clean_and_jerk, skateboarding, v_GGSY1Qvo990 (weightlifting), demo.mp4 and
                      test.mp4 (arm wrestling, one scene), demo_spatiotemporal_det (arm wrestling,
                      with drawn boxes)

Split by whole video (``--split-file``; demo.mp4 and test.mp4 together): train = four calm
videos, val = two calm + two vigorous, test = one calm + the other vigorous ones (``SPLITS``).
Each scene is its own camera, so a held-out calm video is also a new scene: this measures
novelty of scene and motion together, on a tiny set. The videos are linked (not copied) into
``OUT_DIR/videos/<category>/``; the index, embeddings, detector, report (``scores_<split>.csv``,
``score_distributions.png``, ``roc_curve.png``) and the timelines of the test videos
(``anomaly timeline``'s files) are written under ``OUT_DIR``.

Measured (2 shared CPU cores, about 1 minute; defaults: 224 px, windows of 32 frames every 16,
8 frames per window, mean+diff, knn, Youden threshold on val):

    split  normal anomalous  ROC-AUC  PR-AUC  acc. normal  acc. anomalous
    val         7        21    0.932   0.972        0.857           1.000
    test       18        75    0.584   0.795        0.222           0.840

Val (drinking water, a pool vs clean and jerk, arm wrestling) separates; on test the tai chi
windows, a scene and a person unlike any calm training video, score as high as the vigorous
clips (14 of its 18 windows flagged). The raw-video timelines of the test videos reproduce the
test scores (largest relative difference 3e-6, the CSV's 6 digits).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")  # as the seqvision CLI does

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared"
DATA = SHARED / "data"
WEIGHTS = SHARED / "weights" / "mobilenet_v2_imagenet_1.0_224_no_top.h5"
CATEGORIES = {
    "Normal_calm": ["st-gcn/ta_chi.mp4", "video_features/v_ZNVhz7ctTq0.mp4", "mmaction2/S001C001P001R001A001_rgb.avi",
                    "mmaction2/part_0.mp4", "mmaction2/test.avi", "decord/flipping_a_pancake.mkv",
                    "mmaction2/test_video_structuralize.mp4"],
    "Vigorous": ["st-gcn/clean_and_jerk.mp4", "st-gcn/skateboarding.mp4", "video_features/v_GGSY1Qvo990.mp4",
                 "mmaction2/demo.mp4", "mmaction2/test.mp4", "mmaction2/demo_spatiotemporal_det.mp4"],
}
SPLITS = {
    "train": ["v_ZNVhz7ctTq0.mp4", "test.avi", "flipping_a_pancake.mkv", "test_video_structuralize.mp4"],
    "val": ["S001C001P001R001A001_rgb.avi", "part_0.mp4", "clean_and_jerk.mp4", "demo_spatiotemporal_det.mp4"],
    "test": ["ta_chi.mp4", "skateboarding.mp4", "v_GGSY1Qvo990.mp4", "demo.mp4", "test.mp4"],
}


def link_videos(data_dir: Path, videos_dir: Path) -> Path:
    """``videos_dir/<category>/<name>`` symlinks to the real files, and ``splits.csv`` beside them."""
    split_of = {name: split for split, names in SPLITS.items() for name in names}
    rows = []
    for category, sources in CATEGORIES.items():
        (videos_dir / category).mkdir(parents=True, exist_ok=True)
        for source in sources:
            name = Path(source).name
            link = videos_dir / category / name
            if not link.exists():
                link.symlink_to((data_dir / source).resolve())
            rows.append(f"{category}/{name},{split_of[name]}")
    split_file = videos_dir.parent / "splits.csv"
    split_file.write_text("path,split\n" + "\n".join(rows) + "\n")
    return split_file


def run_real_anomaly(out_dir: str | Path, data_dir: str | Path = DATA, weights: str | Path = WEIGHTS,
                     img_size: int = 224, clip_len: int = 32, stride: int = 16, seq_len: int = 8,
                     detector: str = "knn", timelines: bool = True, progress: bool = False) -> dict:
    """The whole pipeline into ``out_dir``; returns ``{"report": score_embedding_dir(...), "timelines": [...]}``."""
    from seqvision.anomaly import fit_detector, save_detector, score_embedding_dir
    from seqvision.anomaly_videos import score_videos
    from seqvision.clip_embeddings import backbone_encoder, export_clip_embeddings
    from seqvision.clip_index import build_clip_index
    from seqvision.timeline import merge_segments, write_timeline

    out_dir = Path(out_dir)
    split_file = link_videos(Path(data_dir), out_dir / "videos")
    build_clip_index(out_dir / "videos", out_dir / "index.csv", clip_len=clip_len, stride=stride,
                     split_file=split_file, normal_class="Normal", progress=progress)
    encoder = backbone_encoder("mobilenet", img_size, weights=str(weights), alpha=1.0, hub_handle=None)
    export_clip_embeddings(out_dir / "index.csv", out_dir / "emb", encoder, seq_len=seq_len, progress=progress)
    save_detector(fit_detector(out_dir / "emb", detector), out_dir / "det", overwrite=True)
    report = score_embedding_dir(out_dir / "det", out_dir / "emb")
    written = []
    if timelines:
        test_videos = sorted(p for p in (out_dir / "videos").glob("*/*") if p.name in SPLITS["test"])
        fitted, results = score_videos(out_dir / "det", test_videos, progress=progress)
        for timeline in results:
            if isinstance(timeline, Exception):
                continue
            events = merge_segments(timeline, "score", fitted.threshold, label="anomaly")
            written.append({k: str(v) for k, v in write_timeline(timeline, out_dir / "timelines", events).items()})
    return {"report": report, "timelines": written}


def main() -> None:
    from seqvision.anomaly_report import format_report
    from seqvision.cli_support import echo_json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--clip-len", type=int, default=32)
    parser.add_argument("--stride", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=8)
    parser.add_argument("--detector", default="knn")
    parser.add_argument("--json", action="store_true", help="print the report as JSON (anomaly score --json)")
    args = parser.parse_args()
    if not DATA.is_dir() or not WEIGHTS.is_file():
        sys.exit(f"needs {DATA.resolve()} and {WEIGHTS.resolve()}")
    result = run_real_anomaly(args.out_dir, img_size=args.img_size, clip_len=args.clip_len, stride=args.stride,
                              seq_len=args.seq_len, detector=args.detector, progress=True)
    if args.json:
        echo_json(result["report"])
    else:
        print(format_report(result["report"]))
    for files in result["timelines"]:
        print("timeline:", json.dumps(files))


if __name__ == "__main__":
    main()
