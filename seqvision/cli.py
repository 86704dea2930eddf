"""``seqvision`` command line: parses options and calls library functions.

stdout carries only results (JSON with ``--json``); logs and progress go to stderr. The analysis
commands (index, anomaly, mif, …) live in ``cli_analysis.py``.
"""
from __future__ import annotations

import os

from seqvision.cli_support import echo_json, friendly_errors, given_options, log, setup_logging

import click  # noqa: E402

from seqvision.backbones import BACKBONES  # noqa: E402  (specs only: no TensorFlow import)
from seqvision.clip_embeddings import DEFAULT_POOL as DEFAULT_CLIP_POOL, POOLS as CLIP_POOLS  # noqa: E402
from seqvision.video import MIN_DECODED_FRACTION  # noqa: E402


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.version_option(package_name="seqvision")
def main(verbose: bool) -> None:
    """Video and skeleton action recognition with Keras 3."""
    setup_logging(verbose)


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
@click.option("--backbone", type=click.Choice(sorted(BACKBONES)), default="mobilenet", show_default=True,
              help="Frame model: " + "; ".join(f"{n}: {s.summary}" for n, s in BACKBONES.items())
              + " (frozen ones cache their embeddings; see --weights, --hub-handle, --fine-tune-at). The default "
              "needs the ImageNet weights (Keras downloads them once into ~/.keras/models; offline: --weights "
              "FILE); cnn needs none.")
@click.option("--seq-len", type=click.IntRange(1), default=16, show_default=True, help="Frames per clip (T).")
@click.option("--img-size", type=click.IntRange(16), help="Frame side in pixels [default: "
              + ", ".join(f"{s.default_img_size} {n}" for n, s in BACKBONES.items()) + "].")
@click.option("--weights", default="imagenet", show_default=True,
              help="keras.applications backbones: imagenet (downloaded once into ~/.keras/models), none "
              "(random) or a weights file.")
@click.option("--alpha", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="mobilenet width multiplier.")
@click.option("--hub-handle", help="mobilenet: use a frozen image model instead, from a TF Hub URL, a SavedModel "
              "folder or a .keras file (any input size; frames are resized to its signature; copied into the run).")
@click.option("--hub-input-range", type=click.Choice(["0,1", "-1,1", "0,255"]), default="0,1", show_default=True,
              help="--hub-handle: the pixel range that model expects (TF Hub image models: 0,1; a Keras "
              "MobileNetV2 export(): -1,1).")
@click.option("--fine-tune-at", type=click.IntRange(0), help="Pretrained backbones ("
              + ", ".join(n for n, s in BACKBONES.items() if s.fine_tunable) + "): epoch after which to fine-tune.")
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
              help="Held-out share, stratified and group-aware (UCF101 v_Class_gNN groups, or --groups); "
              "0 = no validation.")
@click.option("--groups", "groups_file", type=click.Path(exists=True, dir_okay=False),
              help="CSV 'clip,group' (clip name without extension, or label/name) for --val-split, for data "
              "not named like UCF101.")
@click.option("--val-dir", type=click.Path(exists=True, file_okay=False), help="Separate validation folder.")
@click.option("--train-list", type=click.Path(exists=True, dir_okay=False), help="UCF101 trainlistNN.txt.")
@click.option("--val-list", type=click.Path(exists=True, dir_okay=False), help="UCF101 testlistNN.txt.")
@click.option("--units", type=click.IntRange(1), default=128, show_default=True, help="LSTM units.")
@click.option("--layers", "num_layers", type=click.IntRange(1), default=1, show_default=True)
@click.option("--bidirectional/--unidirectional", default=True, show_default=True,
              help="LSTM reading both ways (the backward pass starts at each clip's last real frame).")
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=0.3, show_default=True)
@click.option("--head", type=click.Choice(["lstm", "trend", "mean"]),
              help="Temporal model: lstm; trend = a linear classifier on each feature's mean, time trend and mean "
              "change (few weights: for a frozen backbone and few clips); mean = order-free baseline. "
              "[default: trend with a frozen pretrained backbone (mobilenet, efficientnetv2b0), lstm with cnn]")
@click.option("--motion", type=click.Choice(["flow", "diff", "frames", "two_stream"]),
              help="--backbone cnn [default: flow]: what it sees per step: flow = optical flow from the previous "
              "sampled frame (Lucas-Kanade, in the model), diff = each frame next to its difference from the previous "
              "one, frames = frames alone, "
              "two_stream = one CNN on the flow and one on the frames, each with its own LSTM, the pair's weights "
              "chosen on the validation split.")
@click.option("--feature-diff/--no-feature-diff", default=True, show_default=True,
              help="Feed the temporal head each frame's features next to their change since the previous frame.")
@click.option("--flow-stats/--no-flow-stats", default=None,
              help="Put motion descriptors of each frame (Lucas-Kanade flow: direction, turning, approaching, per "
              "region) next to its features; cached with the embeddings of a frozen backbone. "
              "[default: on with a frozen pretrained backbone, off with cnn]")
@click.option("--moving-part/--no-moving-part", default=False, show_default=True,
              help="With --flow-stats: also where the part that moves against the frame is and how it moves "
              "(camera shake removed), per flow scale.")
@click.option("--brightness-norm/--no-brightness-norm", default=None,
              help="With --flow-stats: standardise each frame's brightness before the flow, so flicker and exposure "
              "changes do not read as motion (see bench/generalisation_notes.md). [default: on with --flow-stats]")
@click.option("--camera-motion", type=click.Choice(["median", "affine"]), default="median", show_default=True,
              help="With --moving-part: the camera motion removed before finding what moves: median = the flow's "
              "median (shake, pans), affine = a robust affine fit of the flow (also zoom and roll).")
@click.option("--change-stream", is_flag=True,
              help="Frozen pretrained backbones: also embed each step's change image (3 x |frame - previous frame|) "
              "next to the frame, cached with the embeddings; twice the backbone calls (see bench/generalisation.md: "
              "not the default).")
@click.option("--clip-change", is_flag=True,
              help="Frozen pretrained backbones: also embed what changed over each clip (|last quarter - first quarter| "
              "of its frames, one image a clip), projected on its 16 principal components on the training clips; "
              "cached with the embeddings (see bench/generalisation_notes.md: not yet the default).")
@click.option("--weight-decay", type=click.FloatRange(0), default=1e-4, show_default=True,
              help="AdamW decoupled weight decay; 0 = plain Adam.")
@click.option("--head-l1", type=click.FloatRange(0),
              help="L1 penalty on the temporal head's output weights: the head leans on few of its inputs. "
              "[default: 3e-2 with a frozen pretrained backbone, 0 with cnn]")
@click.option("--refit/--no-refit", default=True, show_default=True,
              help="A head on cached embeddings (frozen backbone, no --fine-tune-at): once the run with validation "
              "has reported, train it again on training + validation clips and keep that head (its validation "
              "figures then stay those of the first run).")
@click.option("--train-views", type=click.IntRange(1), default=4, show_default=True,
              help="Temporally shifted samplings decoded (and cached) per clip; training takes one per epoch (a head "
              "on cached embeddings: all of them).")
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
    """Train a video classifier (frame backbone + temporal head) on DATA_DIR (videos or frame folders in
    <label>/ subfolders)."""
    if options["motion"] is None:
        options.pop("motion")
    elif "channels" not in BACKBONES[options["backbone"]].options:
        raise click.UsageError(f"--motion is for --backbone cnn; {options['backbone']} embeds the frames "
                               "(--change-stream adds their change images)")
    from seqvision.training import VideoTrainConfig, train_video

    if options["flip_pairs"]:
        options["flip_pairs"] = [p for p in options["flip_pairs"].split(",") if p.strip()]
    best = train_video(VideoTrainConfig(data_dir=data_dir, **options), run_dir, overwrite)
    log.info("best epoch %d; model, curves and history in %s", best["epoch"], run_dir)


@main.command("embed")
@click.argument("data_dir", type=click.Path(exists=True))
@click.option("--out", "cache_root", type=click.Path(file_okay=False),
              help="Cache root [default: ~/.cache/seqvision]; train --cache-dir finds it there. "
              "With an INDEX.csv: the export folder (required).")
@click.option("--backbone", type=click.Choice(sorted(n for n, s in BACKBONES.items() if s.frozen)),
              default="mobilenet", show_default=True)
@click.option("--seq-len", type=click.IntRange(1), default=16, show_default=True)
@click.option("--img-size", type=click.IntRange(16), help="Frame side in pixels [default: the backbone's, as train].")
@click.option("--weights", default="imagenet", show_default=True)
@click.option("--alpha", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True)
@click.option("--hub-handle", help="mobilenet: a TF Hub URL, SavedModel folder or .keras file, as train takes.")
@click.option("--hub-input-range", type=click.Choice(["0,1", "-1,1", "0,255"]), default="0,1", show_default=True,
              help="--hub-handle: the pixel range that model expects (TF Hub image models: 0,1; a Keras "
              "MobileNetV2 export(): -1,1).")
@click.option("--views", type=click.IntRange(1), default=4, show_default=True,
              help="Temporally shifted samplings per clip (train --train-views must match to reuse the cache).")
@click.option("--batch-frames", type=click.IntRange(1), default=256, show_default=True,
              help="Frames per backbone call.")
@click.option("--flow-stats/--no-flow-stats", default=True, show_default=True,
              help="Cache motion descriptors next to the embeddings (train --flow-stats must match to reuse the cache; "
              "ignored with an INDEX.csv).")
@click.option("--moving-part/--no-moving-part", default=False, show_default=True,
              help="With --flow-stats: the moving part's descriptors too (train --moving-part must match).")
@click.option("--brightness-norm/--no-brightness-norm", default=None,
              help="With --flow-stats: flow of brightness-standardised frames (train --brightness-norm must match). "
              "[default: on with --flow-stats]")
@click.option("--camera-motion", type=click.Choice(["median", "affine"]), default="median", show_default=True,
              help="With --moving-part: the camera motion it is measured against (train --camera-motion must match).")
@click.option("--change-stream", is_flag=True,
              help="Cache the embeddings of each step's change image too (train --change-stream must match to reuse "
              "the cache; ignored with an INDEX.csv).")
@click.option("--clip-change", is_flag=True,
              help="Cache the embedding of each view's clip-change image too (train --clip-change must match to reuse "
              "the cache; ignored with an INDEX.csv).")
@click.option("--pool", type=click.Choice(list(CLIP_POOLS)), default=DEFAULT_CLIP_POOL, show_default=True,
              help="INDEX.csv: how frame embeddings become one clip vector (see bench/embed_pooling.md).")
@click.option("--keep-frames", is_flag=True, help="INDEX.csv: also write F_<split>.npy [N, T, D] and mask_<split>.npy.")
@click.option("--run", "run_dir", type=click.Path(exists=True, file_okay=False),
              help="INDEX.csv: a trained video run's penultimate features instead of a backbone.")
@click.option("--videos-dir", type=click.Path(exists=True, file_okay=False),
              help="INDEX.csv: where its paths are [default: recorded in INDEX.json].")
@click.option("--chunk-rows", type=click.IntRange(1), default=128, show_default=True,
              help="INDEX.csv: rows per resumable chunk.")
@click.option("--probe", is_flag=True, help="INDEX.csv: print a logistic-regression ROC-AUC and accuracy on val.")
@friendly_errors
def embed_command(data_dir, cache_root, backbone, seq_len, img_size, weights, alpha, hub_handle, hub_input_range,
                  views, batch_frames, flow_stats, moving_part, brightness_norm, camera_motion, change_stream,
                  clip_change, **index_options):
    """Compute (or reuse) the frozen-backbone embedding cache of DATA_DIR.

    With an INDEX.csv (from seqvision index) instead: one vector per window, per split, into --out
    (X_<split>.npy, y_<split>.npy, rows_<split>.csv, manifest.json); resumable.
    """
    from seqvision.training import (VideoTrainConfig, backbone_identity, backbone_options,
                                    check_flow_statistics_options, flow_statistics_layer)

    settings = {"weights": weights, "alpha": alpha, "hub_handle": hub_handle, "hub_input_range": hub_input_range}
    config = VideoTrainConfig(data_dir=data_dir, backbone=backbone, seq_len=seq_len,
                              img_size=img_size or BACKBONES[backbone].default_img_size, flow_stats=flow_stats,
                              moving_part=moving_part, brightness_norm=brightness_norm,
                              camera_motion=camera_motion, **settings)
    check_flow_statistics_options(config)
    if os.path.isfile(data_dir):
        return _embed_index(data_dir, cache_root, backbone, seq_len, img_size, batch_frames, settings, **index_options)
    from seqvision.backbones import build_backbone
    from seqvision.datasets import find_clips
    from seqvision.embeddings import get_embedding_cache

    img_size = config.img_size
    model = build_backbone(backbone, img_size, **backbone_options(config))
    cache = get_embedding_cache(find_clips(data_dir), model, backbone_identity(config), seq_len, img_size,
                                cache_root, views=views, batch_frames=batch_frames,
                                flow_stats=flow_statistics_layer(config),
                                change_stream=change_stream, clip_change=clip_change)
    click.echo(str(cache.path))


def _embed_index(index_csv, out_dir, backbone, seq_len, img_size, batch_frames, backbone_settings, pool,
                 keep_frames, run_dir, videos_dir, chunk_rows, probe):
    """The INDEX.csv form of ``embed``."""
    from seqvision.clip_embeddings import backbone_encoder, export_clip_embeddings, probe_embeddings, run_encoder
    from seqvision.clip_index import read_clip_index

    if not out_dir:
        raise click.UsageError("embed INDEX.csv needs --out DIR")
    read_clip_index(index_csv)  # a wrong file is named before minutes of building or downloading a model
    encoder = run_encoder(run_dir) if run_dir else backbone_encoder(backbone, img_size, **backbone_settings)
    manifest = export_clip_embeddings(index_csv, out_dir, encoder, seq_len=seq_len, pool=pool, keep_frames=keep_frames,
                                      videos_dir=videos_dir, batch_frames=batch_frames, chunk_rows=chunk_rows)
    for entry in manifest["unreadable"]:
        log.warning("%s: unreadable (%s); its %d rows are zeros", entry["path"], entry["reason"], entry["rows"])
    click.echo(out_dir)
    if probe:
        result = probe_embeddings(out_dir)
        click.echo(f"probe (logistic regression, train -> val): ROC-AUC {result['roc_auc']:.4f}  "
                   f"accuracy {result['accuracy']:.4f}  n_train={result['n_train']} n_val={result['n_val']}")


def _echo_metrics(metrics: dict, as_json: bool) -> None:
    if as_json:
        echo_json(metrics)
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
              "samplings per clip [default: 4].")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as one JSON object on stdout.")
@friendly_errors
def evaluate_command(run_dir, data, list_file, split, batch_size, views, as_json):
    """Metrics of the model in RUN_DIR on DATA (videos/frames folder, or a skeleton pickle).

    Plots (confusion matrix) and metrics JSON are saved under RUN_DIR.
    """
    from seqvision.run import load_run

    metrics = load_run(run_dir).evaluate(data, split, list_file=list_file,
                                         **given_options(views=views, batch_size=batch_size))
    _echo_metrics(metrics, as_json)


@main.command("predict")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--split", help="Skeleton runs: split of the pickle [default: every annotation].")
@click.option("--top-k", type=click.IntRange(1), default=5, show_default=True)
@click.option("--views", type=click.IntRange(1), help="Video runs: average K temporally shifted samplings per "
              "input [default: 4].")
@click.option("--json", "as_json", is_flag=True, help="Print predictions as JSON on stdout.")
@click.option("--window", type=click.IntRange(1), help="Timeline: class probabilities of every window of N frames "
              "of each video, written as <stem>_timeline.csv and .png (see --out).")
@click.option("--stride", type=click.IntRange(1), help="Timeline: frames between window starts [default: window/2].")
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Timeline: folder [default: RUN_DIR/timelines].")
@click.option("--segments", is_flag=True, help="Timeline: merge consecutive windows above --threshold into events "
              "(<stem>_segments.csv), per class.")
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Timeline: for --segments.")
@click.option("--class", "class_name", help="Timeline: segments of this class only [default: every class].")
@friendly_errors
def predict_command(run_dir, inputs, split, top_k, views, as_json, window, stride, out_dir, segments, threshold,
                    class_name):
    """Top-k labels for each input: video files or frame folders, or one skeleton pickle.

    With --window: a timeline of class probabilities over each (long) video instead.
    """
    from seqvision.run import load_run

    if window is None and (stride or out_dir or segments or class_name):
        raise click.UsageError("--stride, --out, --segments and --class go with --window")
    if window is not None and views is not None:
        raise click.UsageError("--views goes without --window: a timeline takes each window's frames once")
    if window is not None:
        from seqvision.cli_analysis import predict_timelines

        return predict_timelines(run_dir, inputs, window, stride, out_dir, segments, threshold, class_name, as_json)

    results = load_run(run_dir).predict(list(inputs), top_k, split=split, **given_options(views=views))
    if as_json:
        echo_json(results)
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
@click.option("--groups", "groups_file", type=click.Path(exists=True, dir_okay=False),
              help="CSV 'clip,group' (by frame_dir) for --val-fraction, for files not named like UCF101.")
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
@click.option("--per-person/--one-centre", "per_person", default=None,
              help="Centre and scale each person by its own body, or every person by the first one's "
              "[default: per person].")
@click.option("--units", type=click.IntRange(1), help="LSTM units.")
@click.option("--layers", "num_layers", type=click.IntRange(1))
@click.option("--bidirectional/--unidirectional", default=None, help="LSTM reading both ways [default: both].")
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True))
@click.option("--flip/--no-flip", default=None, help="Random left-right flips with joint swaps; only for classes "
              "a mirror image does not change [default: off].")
@click.option("--flip-pairs", help="Flip, mapping each class to its mirror class: LEFT:RIGHT,… (ids or names), "
              "e.g. raise_left_arm:raise_right_arm.")
@click.option("--epochs", type=click.IntRange(1))
@click.option("--batch-size", type=click.IntRange(1), help="Sequences per replica.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True))
@click.option("--patience", type=click.IntRange(1), help="Early-stopping epochs (with --keep best).")
@click.option("--keep", type=click.Choice(["last", "best"]),
              help="Keep the last epoch, or the one of lowest validation loss (early stopping) [default: last].")
@click.option("--weight-decay", type=click.FloatRange(0), help="AdamW decoupled weight decay [default: 0].")
@click.option("--feature-diff/--no-feature-diff", default=None,
              help="Feed the LSTM each step's change next to the positions [default: no].")
@click.option("--strategy", type=click.Choice(["mirrored", "multiworker"]))
@click.option("--seed", type=int)
@click.option("--overwrite", is_flag=True, help="Replace a finished run in --out (once the new one has finished).")
@friendly_errors
def train_skeleton_command(ann_path, run_dir, classes, seq_len, overwrite, **options):
    """Train a masked LSTM on 2D keypoints from a PYSKL pickle (ANN_PATH, e.g. ucf101_2d.pkl).

    Defaults not shown here are those of seqvision.skeleton.SkeletonTrainConfig.
    """
    from seqvision.skeleton import train_skeleton

    settings = given_options(**options)
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
    result = run_demo(out_dir, seed=seed, compare_orderless=compare_orderless, **given_options(epochs=epochs))
    click.echo(f"test accuracy (CNN-LSTM): {result['accuracy']:.4f}")
    if compare_orderless:
        click.echo(f"test accuracy (order-free mean pooling): {result['orderless_accuracy']:.4f}; "
                   f"within time-reversed pairs: {result['orderless_direction_pair_accuracy']:.4f}")
    click.echo("plots: " + ", ".join(result["plots"]))
    click.echo(f"run directory: {result['run_dir']}  ({time.perf_counter() - start:.0f} s)")


def _add_analysis_commands() -> None:
    from seqvision.cli_analysis import anomaly_group, evaluate_timeline_command, index_command, mif_command

    for command in (index_command, anomaly_group, mif_command, evaluate_timeline_command):
        main.add_command(command)


_add_analysis_commands()

if __name__ == "__main__":
    main()
