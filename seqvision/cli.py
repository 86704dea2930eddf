"""``seqvision`` command line: parses options and calls library functions.

stdout carries only results (JSON with ``--json``); logs and progress go to stderr.
"""
from __future__ import annotations

import functools
import json
import logging
import math
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow's default CPU allocator returns large tensors to the OS after each op, so every
# training step page-faults its activations in again; a BFC pool reuses them (demo training on
# 2 cores: system time 42 s -> 7 s, epochs up to 2x faster). Read once, before TF starts.
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")

import click  # noqa: E402

from seqvision.video import MIN_DECODED_FRACTION  # noqa: E402

log = logging.getLogger("seqvision")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of each message."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def _setup_logging(verbose: bool) -> None:
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    if not any(isinstance(h, _StderrHandler) for h in log.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("seqvision: %(levelname)s: %(message)s"))
        log.addHandler(handler)
    for noisy in ("tensorflow", "absl", "h5py", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _user_errors():
    """Errors caused by input (bad paths, bad files, bad settings), shown without traceback."""
    from seqvision.video import VideoError

    # SkeletonDataError is a ValueError.
    return (ValueError, FileNotFoundError, NotADirectoryError, PermissionError, VideoError)


def _no_space_message(error: OSError) -> str:
    detail = error.strerror[error.strerror.find("("):] if "(" in (error.strerror or "") else ""
    return f"no space left on device writing {error.filename or 'the output'} {detail}".rstrip()


def friendly_errors(command):
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from seqvision.diskspace import is_no_space

        try:
            return command(*args, **kwargs)
        except _user_errors() as error:
            raise click.ClickException(str(error)) from None
        except OSError as error:
            if is_no_space(error):
                raise click.ClickException(_no_space_message(error)) from None
            raise
    return wrapper


def _given(**options) -> dict:
    """The options the user set (click gives None for the others), so library defaults apply."""
    return {k: v for k, v in options.items() if v is not None}


def _json_safe(obj):
    """``obj`` with NaN and infinities as None: JSON has no such numbers."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def _echo_json(obj) -> None:
    click.echo(json.dumps(_json_safe(obj), indent=2, allow_nan=False))


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.version_option(package_name="seqvision")
def main(verbose: bool) -> None:
    """Video and skeleton action recognition with Keras 3."""
    _setup_logging(verbose)


@main.command("extract-frames")
@click.argument("videos_dir", type=click.Path(file_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--seq-len", type=click.IntRange(1), help="Frames per clip, spread uniformly over the video.")
@click.option("--every-seconds", type=click.FloatRange(min=0, min_open=True), help="One frame every S seconds.")
@click.option("--stride", type=click.IntRange(1), help="Every N-th frame.")
@click.option("--size", type=click.IntRange(1), help="Resize frames to PX x PX (default: keep source size).")
@click.option("--format", "image_format", type=click.Choice(["png", "jpg"]), default="png", show_default=True,
              help="png is lossless; jpg is smaller.")
@click.option("--jobs", type=click.IntRange(1), help="Parallel videos (default: all cores).")
@click.option("--min-decoded-fraction", type=click.FloatRange(0, 1), default=MIN_DECODED_FRACTION, show_default=True,
              help="Refuse a video as truncated when fewer of the frames its container lists decode; 0 keeps any.")
@friendly_errors
def extract_frames_command(videos_dir, out_dir, seq_len, every_seconds, stride, size, image_format, jobs,
                           min_decoded_fraction):
    """Sample frames from VIDEOS_DIR/<label>/<clip>.* into OUT_DIR/<label>/<clip>/NNNNNN.png."""
    from seqvision.frames import DEFAULT_SEQ_LEN, extract_frames

    if sum(x is not None for x in (seq_len, every_seconds, stride)) == 0:
        seq_len = DEFAULT_SEQ_LEN
        log.info("no sampling given: taking --seq-len %d frames per clip", seq_len)
    results = extract_frames(videos_dir, out_dir, seq_len=seq_len, every_seconds=every_seconds, stride=stride,
                             size=size, image_format=image_format, jobs=jobs,
                             min_decoded_fraction=min_decoded_fraction)
    counts = {s: sum(r.status == s for r in results) for s in ("ok", "skipped", "failed")}
    log.info("%d extracted, %d already complete, %d failed; manifest: %s",
             counts["ok"], counts["skipped"], counts["failed"], os.path.join(out_dir, "manifest.csv"))
    if counts["ok"] + counts["skipped"] == 0:
        raise click.ClickException(f"no usable video in {videos_dir}")


@main.command("train")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "run_dir", required=True, type=click.Path(file_okay=False), help="Run directory.")
@click.option("--backbone", default="cnn", show_default=True,
              help="Frame model: cnn (small, trained end to end) or mobilenet (pretrained MobileNetV2, frozen, "
              "with cached embeddings; see --weights, --hub-handle, --fine-tune-at).")
@click.option("--seq-len", type=click.IntRange(1), default=16, show_default=True, help="Frames per clip (T).")
@click.option("--img-size", type=click.IntRange(16), help="Frame side in pixels [default: 64 cnn, 224 mobilenet].")
@click.option("--weights", default="imagenet", show_default=True,
              help="mobilenet: imagenet, none (random) or a weights file.")
@click.option("--alpha", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="mobilenet width multiplier.")
@click.option("--hub-handle", help="mobilenet from a TF Hub feature-vector URL or local SavedModel folder.")
@click.option("--fine-tune-at", type=click.IntRange(0), help="mobilenet: epoch after which to fine-tune.")
@click.option("--unfreeze", type=click.IntRange(1), default=30, show_default=True,
              help="Top backbone layers trained when fine-tuning.")
@click.option("--cache-dir", type=click.Path(file_okay=False),
              help="Embedding cache root [default: ~/.cache/seqvision or $SEQVISION_CACHE_DIR].")
@click.option("--mixed-precision", is_flag=True, help="float16 on GPU, bfloat16 elsewhere.")
@click.option("--strategy", type=click.Choice(["mirrored", "multiworker"]), default="mirrored", show_default=True,
              help="multiworker: MultiWorkerMirroredStrategy from TF_CONFIG (custom training loop).")
@click.option("--epochs", type=click.IntRange(1), default=30, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=8, show_default=True, help="Clips per replica.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True)
@click.option("--val-split", type=click.FloatRange(0, 0.5), default=0.2, show_default=True,
              help="Held-out share, stratified and group-aware (UCF101 _gNN_); 0 = no validation.")
@click.option("--val-dir", type=click.Path(exists=True, file_okay=False), help="Separate validation folder.")
@click.option("--train-list", type=click.Path(exists=True, dir_okay=False), help="UCF101 trainlistNN.txt.")
@click.option("--val-list", type=click.Path(exists=True, dir_okay=False), help="UCF101 testlistNN.txt.")
@click.option("--units", type=click.IntRange(1), default=128, show_default=True, help="LSTM units.")
@click.option("--layers", "num_layers", type=click.IntRange(1), default=1, show_default=True)
@click.option("--bidirectional", is_flag=True)
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=0.3, show_default=True)
@click.option("--head", type=click.Choice(["lstm", "mean"]), default="lstm", show_default=True,
              help="Temporal model; mean = order-free baseline.")
@click.option("--frame-diff/--no-frame-diff", default=True, show_default=True,
              help="cnn: feed each frame next to its difference from the previous frame (motion input).")
@click.option("--feature-diff/--no-feature-diff", default=True, show_default=True,
              help="Feed the temporal head each frame's features next to their change since the previous frame.")
@click.option("--weight-decay", type=click.FloatRange(0), default=1e-4, show_default=True,
              help="AdamW decoupled weight decay; 0 = plain Adam.")
@click.option("--train-views", type=click.IntRange(1), default=4, show_default=True,
              help="Temporally shifted samplings decoded (and cached) per clip; training takes one per epoch.")
@click.option("--flip", is_flag=True, help="Random horizontal flips (not for left/right-sensitive classes).")
@click.option("--flip-pairs", help="Flip, mapping each class to its mirror class: LEFT:RIGHT,… "
              "e.g. move_left:move_right.")
@click.option("--keep", type=click.Choice(["last", "best"]), default="last", show_default=True,
              help="Which epoch's model the run keeps: the last (end of the learning-rate schedule) or the best "
              "validation loss, with early stopping (see bench/generalisation.md for why last is the default).")
@click.option("--patience", type=click.IntRange(1), default=8, show_default=True,
              help="With --keep best: early-stopping epochs.")
@click.option("--cache", type=click.Choice(["auto", "memory", "none"]), default="auto", show_default=True,
              help="Keep decoded clips in memory (auto: when they fit in 2 GiB).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace a finished run in --out (once the new one has finished).")
@friendly_errors
def train_command(data_dir, run_dir, overwrite, **options):
    """Train a CNN-LSTM on DATA_DIR (videos or frame folders in <label>/ subfolders)."""
    from seqvision.training import VideoTrainConfig, train_video

    if options["flip_pairs"]:
        options["flip_pairs"] = [p for p in options["flip_pairs"].split(",") if p.strip()]
    best = train_video(VideoTrainConfig(data_dir=data_dir, **options), run_dir, overwrite)
    log.info("best epoch %d; model, curves and history in %s", best["epoch"], run_dir)


@main.command("embed")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "cache_root", type=click.Path(file_okay=False),
              help="Cache root [default: ~/.cache/seqvision]; train --cache-dir finds it there.")
@click.option("--backbone", type=click.Choice(["mobilenet"]), default="mobilenet", show_default=True)
@click.option("--seq-len", type=click.IntRange(1), default=16, show_default=True)
@click.option("--img-size", type=click.IntRange(16), default=224, show_default=True)
@click.option("--weights", default="imagenet", show_default=True)
@click.option("--alpha", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True)
@click.option("--hub-handle")
@click.option("--views", type=click.IntRange(1), default=4, show_default=True,
              help="Temporally shifted samplings per clip (train --train-views must match to reuse the cache).")
@click.option("--batch-frames", type=click.IntRange(1), default=256, show_default=True,
              help="Frames per backbone call.")
@friendly_errors
def embed_command(data_dir, cache_root, backbone, seq_len, img_size, weights, alpha, hub_handle, views, batch_frames):
    """Compute (or reuse) the frozen-backbone embedding cache of DATA_DIR."""
    from seqvision.backbones import build_backbone
    from seqvision.datasets import find_clips
    from seqvision.embeddings import get_embedding_cache
    from seqvision.training import VideoTrainConfig, backbone_identity, backbone_options

    config = VideoTrainConfig(data_dir=data_dir, backbone=backbone, seq_len=seq_len, img_size=img_size,
                              weights=weights, alpha=alpha, hub_handle=hub_handle)
    model = build_backbone(backbone, img_size, **backbone_options(config))
    cache = get_embedding_cache(find_clips(data_dir), model, backbone_identity(config), seq_len, img_size,
                                cache_root, views=views, batch_frames=batch_frames)
    click.echo(str(cache.path))


def _echo_metrics(metrics: dict, as_json: bool) -> None:
    if as_json:
        _echo_json(metrics)
        return
    click.echo(f"accuracy {metrics['accuracy']:.4f}  mean class accuracy {metrics['mean_class_accuracy']:.4f}"
               f"  n={metrics['n']}" + "".join(f"  {k} {v:.4f}" for k, v in metrics["top_k"].items()))
    click.echo(f"confusion matrix: {metrics['files']['confusion_png']}")


@main.command("evaluate")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("data", type=click.Path(exists=True))
@click.option("--list", "list_file", type=click.Path(exists=True, dir_okay=False),
              help="Video runs: only clips named in this UCF101 split file.")
@click.option("--split", help="Skeleton runs: split of the pickle to evaluate on [default: test1].")
@click.option("--batch-size", type=click.IntRange(1))
@click.option("--views", type=click.IntRange(1), help="Video runs: average the predictions of K temporally shifted "
              "samplings per clip [default: 1].")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as one JSON object on stdout.")
@friendly_errors
def evaluate_command(run_dir, data, list_file, split, batch_size, views, as_json):
    """Metrics of the model in RUN_DIR on DATA (videos/frames folder, or a skeleton pickle).

    Plots (confusion matrix) and metrics JSON are saved under RUN_DIR.
    """
    from seqvision.inference import evaluate_video_run, run_kind

    if run_kind(run_dir) == "skeleton":
        from seqvision.skeleton import evaluate_skeleton

        if list_file or views:
            raise click.UsageError("--list and --views are for video runs; skeleton runs take --split")
        metrics = evaluate_skeleton(run_dir, data, split or "test1", **_given(batch_size=batch_size))
    else:
        if split:
            raise click.UsageError("--split is for skeleton runs; video runs take --list")
        metrics = evaluate_video_run(run_dir, data, list_file, batch_size, **_given(views=views))
    _echo_metrics(metrics, as_json)


@main.command("predict")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--split", help="Skeleton runs: split of the pickle [default: every annotation].")
@click.option("--top-k", type=click.IntRange(1), default=5, show_default=True)
@click.option("--views", type=click.IntRange(1), help="Video runs: average K temporally shifted samplings per "
              "input [default: 1].")
@click.option("--json", "as_json", is_flag=True, help="Print predictions as JSON on stdout.")
@friendly_errors
def predict_command(run_dir, inputs, split, top_k, views, as_json):
    """Top-k labels for each input: video files or frame folders, or one skeleton pickle."""
    from seqvision.inference import predict_video_clips, run_kind

    if run_kind(run_dir) == "skeleton":
        from seqvision.skeleton import predict_skeleton

        if len(inputs) != 1:
            raise click.UsageError("a skeleton run predicts on one pickle file")
        results = [{"path": row.pop("frame_dir"), **row} for row in predict_skeleton(run_dir, inputs[0], split, top_k)]
    else:
        if split:
            raise click.UsageError("--split is for skeleton runs")
        results = predict_video_clips(run_dir, list(inputs), top_k, **_given(views=views))
    if as_json:
        _echo_json(results)
    else:
        for row in results:
            if "error" in row:
                click.echo(f"{row['path']}\terror: {row['error']}")
            else:
                click.echo(row["path"] + "\t" + "  ".join(f"{p['label']} {p['probability']:.3f}"
                                                        for p in row["predictions"]))
    if all("error" in row for row in results):
        raise click.ClickException("no input could be read")


@main.command("export")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--tflite", is_flag=True, help="Also write OUT_DIR/model.tflite (batch size 1).")
@click.option("--overwrite", is_flag=True, help="Replace an existing OUT_DIR (once the new export is complete).")
@friendly_errors
def export_command(run_dir, out_dir, tflite, overwrite):
    """SavedModel of RUN_DIR for serving: signature 'serve' (frames uint8 or keypoints, mask) -> probabilities.

    Also writes labels.json and signature.json (input names, dtypes, shapes, run settings).
    """
    from seqvision.export import export_run

    click.echo(str(export_run(run_dir, out_dir, tflite=tflite, overwrite=overwrite)))


@main.command("train-skeleton")
@click.argument("ann_path", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "run_dir", required=True, type=click.Path(file_okay=False), help="Run directory.")
@click.option("--train-split", help="Split to train on; 'all' = every annotation (files without splits) "
              "[default: train1].")
@click.option("--val-split", help="Split to validate on [default: hold out --val-fraction of the training split].")
@click.option("--val-fraction", type=click.FloatRange(0, 0.5),
              help="Held-out share of the training split, stratified and group-aware; 0 = no validation "
              "[default: 0.1].")
@click.option("--classes", help="Comma-separated label ids or names to keep [default: all].")
@click.option("--label-names", type=click.Path(exists=True, dir_okay=False), help="Text file, line i names label i.")
@click.option("--seq-len", type=click.IntRange(0), help="Frames sampled uniformly per sequence; 0 = full length "
              "with a mask [default: 64].")
@click.option("--max-persons", type=click.IntRange(1), help="Persons per frame, most confident first [default: 2].")
@click.option("--score-threshold", type=click.FloatRange(0, 1), help="Joints below this score count as missing.")
@click.option("--use-score/--no-score", default=None, help="Feed each joint's score as a channel [default: yes].")
@click.option("--units", type=click.IntRange(1), help="LSTM units.")
@click.option("--layers", "num_layers", type=click.IntRange(1))
@click.option("--bidirectional/--unidirectional", default=None)
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True))
@click.option("--flip/--no-flip", default=None, help="Random left-right flips with joint swaps; only for classes "
              "a mirror image does not change [default: off].")
@click.option("--flip-pairs", help="Flip, mapping each class to its mirror class: LEFT:RIGHT,… (ids or names), "
              "e.g. raise_left_arm:raise_right_arm.")
@click.option("--epochs", type=click.IntRange(1))
@click.option("--batch-size", type=click.IntRange(1), help="Sequences per replica.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True))
@click.option("--patience", type=click.IntRange(1), help="Early-stopping epochs.")
@click.option("--strategy", type=click.Choice(["mirrored", "multiworker"]))
@click.option("--seed", type=int)
@click.option("--overwrite", is_flag=True, help="Replace a finished run in --out (once the new one has finished).")
@friendly_errors
def train_skeleton_command(ann_path, run_dir, classes, seq_len, overwrite, **options):
    """Train a masked LSTM on 2D keypoints from a PYSKL pickle (ANN_PATH, e.g. ucf101_2d.pkl).

    Defaults not shown here are those of seqvision.skeleton.SkeletonTrainConfig.
    """
    from seqvision.skeleton import train_skeleton

    settings = _given(**options)
    if settings.get("flip_pairs"):
        settings["flip_pairs"] = [p for p in settings["flip_pairs"].split(",") if p.strip()]
    if classes:
        settings["classes"] = [int(c) if c.strip().isdigit() else c.strip() for c in classes.split(",")]
    if seq_len is not None:
        settings["seq_len"] = seq_len or None
    if settings.get("train_split") == "all":
        settings["train_split"] = None
    best = train_skeleton(ann_path, run_dir, overwrite=overwrite, **settings)
    log.info("best epoch %d; model, curves and history in %s", best["epoch"], run_dir)


@main.command("demo")
@click.option("--out", "out_dir", default="seqvision-demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--epochs", type=click.IntRange(1), help="Training epochs (early stopping may end sooner) [default: 20].")
@click.option("--compare-orderless", is_flag=True, help="Also train an order-free (mean-pooled) baseline.")
@click.option("--seed", type=int, default=0, show_default=True)
@friendly_errors
def demo_command(out_dir, epochs, compare_orderless, seed):
    """Synthetic order-only dataset -> extract-frames -> train -> evaluate."""
    import time

    from seqvision.demo import run_demo

    start = time.perf_counter()
    result = run_demo(out_dir, seed=seed, compare_orderless=compare_orderless, **_given(epochs=epochs))
    click.echo(f"test accuracy (CNN-LSTM): {result['accuracy']:.4f}")
    if compare_orderless:
        click.echo(f"test accuracy (order-free mean pooling): {result['orderless_accuracy']:.4f}; "
                   f"within time-reversed pairs: {result['orderless_direction_pair_accuracy']:.4f}")
    click.echo("plots: " + ", ".join(result["plots"]))
    click.echo(f"run directory: {result['run_dir']}  ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
