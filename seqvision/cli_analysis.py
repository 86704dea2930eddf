"""``seqvision`` analysis commands for long videos: clip index, anomaly detection, most informative frame.

Registered on the main command group by ``cli.py``; each parses options and calls library functions.
"""
from __future__ import annotations

import os
import sys

import click

from seqvision.anomaly import DEFAULT_DETECTOR, DETECTORS  # NumPy only, no TensorFlow
from seqvision.cli_support import echo_json, friendly_errors, given_options, log


@click.command("index")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--check", is_flag=True, help="Verify the index INDEX.csv instead of writing one.")
@click.option("--videos-dir", type=click.Path(exists=True, file_okay=False),
              help="--check: where the index's paths are [default: recorded in INDEX.json].")
@click.option("--clip-len", type=click.IntRange(1), default=32, show_default=True, help="Frames per window.")
@click.option("--stride", type=click.IntRange(1), default=16, show_default=True, help="Frames between window starts.")
@click.option("--every-seconds", type=click.FloatRange(min=0, min_open=True),
              help="Window starts every S seconds (replaces --stride; per video from its fps).")
@click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.2, show_default=True)
@click.option("--test-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.2, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--split-file", type=click.Path(exists=True, dir_okay=False),
              help="CSV path,split (paths relative to VIDEOS_DIR) instead of the random split.")
@click.option("--normal-class", default="Normal", show_default=True,
              help="Categories starting with this (any case) are normal (y=0); the others y=1.")
@click.option("--jobs", type=click.IntRange(1), help="Videos probed in parallel.")
@friendly_errors
def index_command(paths, check, videos_dir, jobs, **options):
    """Cut VIDEOS_DIR/<category>/* into windows: seqvision index VIDEOS_DIR OUT.csv.

    seqvision index --check INDEX.csv verifies an index and prints counts per split and class.
    """
    from seqvision.clip_index import build_clip_index, check_clip_index

    if check:
        if len(paths) != 1:
            raise click.UsageError("--check takes one argument: INDEX.csv")
        problems, counts = check_clip_index(paths[0], videos_dir)
        for split, c in counts.items():
            click.echo(f"{split}: {c['clips']} clips from {c['videos']} videos; normal {c['normal']}, "
                       f"anomalous {c['anomalous']}; " + ", ".join(f"{k} {v}" for k, v in c["categories"].items()))
        if problems:
            click.echo(f"{len(problems)} problems in {paths[0]}:", err=True)
            for problem in problems:
                click.echo(f"  {problem}", err=True)
            sys.exit(1)
        click.echo(f"{paths[0]}: ok")
        return
    if len(paths) != 2:
        raise click.UsageError("expected VIDEOS_DIR OUT.csv (or --check INDEX.csv)")
    if options["every_seconds"] is not None:
        options["stride"] = None
    summary = build_clip_index(paths[0], paths[1], jobs=jobs, **options)
    log.info("%d clips from %d videos (%d skipped) written to %s", summary["clips"], summary["videos"],
             len(summary["skipped"]), paths[1])


@click.group("anomaly")
def anomaly_group() -> None:
    """One-class anomaly detection on clip embeddings (seqvision embed INDEX.csv --out EMB_DIR)."""


@anomaly_group.command("fit")
@click.argument("emb_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "det_dir", required=True, type=click.Path(file_okay=False), help="Detector folder.")
@click.option("--detector", "kind", type=click.Choice(sorted(DETECTORS)), default=DEFAULT_DETECTOR, show_default=True,
              help="knn: mean distance to the k nearest normal clips; mahalanobis: Ledoit-Wolf covariance; "
              "ae: dense autoencoder reconstruction error (see bench/anomaly_detectors.md).")
@click.option("--threshold", "threshold_rule", type=click.Choice(["youden", "percentile"]),
              help="youden: max TPR-FPR on labelled val anomalies; percentile: of normal val scores "
              "[default: youden when val has anomalies, else percentile].")
@click.option("--percentile", type=click.FloatRange(0, 100), default=95.0, show_default=True)
@click.option("--holdout", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.2, show_default=True,
              help="Without a val split: share of the normal train videos held out for the threshold and early stopping.")
@click.option("--neighbors", type=click.IntRange(1), help="knn: k [default: 5].")
@click.option("--hidden", help="ae: encoder sizes, the decoder mirrors them [default: 256,64].")
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), help="ae: dropout [default: 0.1].")
@click.option("--epochs", type=click.IntRange(1), help="ae: most epochs (early stopping on normal val loss) [default: 200].")
@click.option("--patience", type=click.IntRange(1), help="ae: early-stopping epochs [default: 10].")
@click.option("--batch-size", type=click.IntRange(1), help="ae [default: 64].")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="ae: Adam learning rate [default: 1e-3].")
@click.option("--seed", type=int, help="Holdout choice and ae initialisation [default: 0].")
@click.option("--overwrite", is_flag=True, help="Replace the detector in --out.")
@friendly_errors
def anomaly_fit_command(emb_dir, det_dir, kind, threshold_rule, percentile, holdout, hidden, overwrite, **options):
    """Fit a detector on the normal train clips of EMB_DIR and choose its threshold."""
    from seqvision.anomaly import fit_detector, save_detector

    settings = given_options(**options)
    if hidden:
        try:
            settings["hidden"] = [int(h) for h in hidden.split(",")]
        except ValueError:
            raise click.BadParameter(f"expected sizes like 256,64, got {hidden!r}", param_hint="--hidden") from None
    detector = fit_detector(emb_dir, kind, threshold_rule, percentile, holdout, **settings)
    save_detector(detector, det_dir, overwrite)
    log.info("%s detector fitted on %d normal clips; threshold %.4g (%s, %s) -> %s", kind, detector.info["n_fit"],
             detector.threshold, detector.info["threshold_rule"], detector.info["threshold_rows"], det_dir)


@anomaly_group.command("score")
@click.argument("det_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("targets", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="EMB_DIR: folder for scores and plots "
              "[default: DET_DIR].")
@click.option("--split", "splits", multiple=True, help="EMB_DIR: split(s) to score [default: all in EMB_DIR].")
@click.option("--no-plots", is_flag=True, help="EMB_DIR: skip the PNGs.")
@click.option("--window", type=click.IntRange(1), help="VIDEO: frames per window [default: the detector's index].")
@click.option("--stride", type=click.IntRange(1),
              help="VIDEO: frames between window starts [default: the detector's index].")
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON object on stdout.")
@friendly_errors
def anomaly_score_command(det_dir, targets, out_dir, splits, no_plots, window, stride, as_json):
    """Score an embedding folder or raw videos: DET_DIR (EMB_DIR | VIDEO...).

    EMB_DIR: scores_<split>.csv (score, flag), ROC-AUC, PR-AUC, accuracies, plots. VIDEO: every
    window (cut as the detector's training index did, embedded with its encoder) gets a score and
    a flag, printed one per line: path, start_frame, end_frame, start_s, end_s, score, flag.
    """
    if len(targets) == 1 and os.path.isdir(targets[0]):
        from seqvision.anomaly import score_embedding_dir
        from seqvision.anomaly_report import format_report

        results = score_embedding_dir(det_dir, targets[0], out_dir, tuple(splits) or None, plots=not no_plots)
        if as_json:
            echo_json(results)
        else:
            click.echo(format_report(results))
        return
    from seqvision.anomaly_videos import score_videos
    from seqvision.timeline import timeline_records

    detector, results = score_videos(det_dir, list(targets), window, stride)
    videos = [{"path": r.path, "error": str(r)} if isinstance(r, Exception) else
              {"path": str(r.path), "n_frames": r.n_frames, "fps": r.fps, "windows": timeline_records(r)}
              for r in results]
    if as_json:
        echo_json({"threshold": detector.threshold, "videos": videos})
    else:
        click.echo("path\tstart_frame\tend_frame\tstart_s\tend_s\tscore\tflag")
        for video in videos:
            for w in video.get("windows", []):
                click.echo(f"{video['path']}\t{w['start_frame']}\t{w['end_frame']}\t{w['start_s']:.3f}\t"
                           f"{w['end_s']:.3f}\t{w['score']:.6g}\t{w['flag']}")
    _fail_if_all_unreadable(videos)


def _fail_if_all_unreadable(videos: list[dict]) -> None:
    if all("error" in v for v in videos):
        raise click.ClickException("no video could be read: " + "; ".join(v["error"] for v in videos))


def write_timelines(timelines: list, out_dir, segment_columns: list[str] | None, threshold: float | None,
                    as_json: bool) -> None:
    """Write each timeline's CSV and PNG (and segments of ``segment_columns`` above ``threshold``)
    into ``out_dir``; print the files and segments (or one JSON object)."""
    from seqvision.timeline import merge_segments, write_timeline

    videos = []
    for timeline in timelines:
        if isinstance(timeline, Exception):  # a VideoError: the video could not be read
            videos.append({"path": timeline.path, "error": str(timeline)})
            continue
        events = None
        if segment_columns is not None:
            events = [e for column in segment_columns for e in merge_segments(timeline, column, threshold)]
            events.sort(key=lambda e: (e["start_frame"], e["label"]))
        files = write_timeline(timeline, out_dir, events, threshold if segment_columns is not None else None)
        videos.append({"path": str(timeline.path), "n_frames": timeline.n_frames, "fps": timeline.fps,
                       "windows": len(timeline.ranges), "files": {k: str(v) for k, v in files.items()},
                       **({"segments": events} if events is not None else {})})
    if as_json:
        echo_json({"videos": videos})
    for video in [] if as_json else videos:
        if "error" in video:
            continue
        click.echo(f"{video['path']}: {video['windows']} windows over {video['n_frames']} frames -> "
                   + ", ".join(video["files"].values()))
        for e in video.get("segments", []):
            click.echo(f"  {e['label']}\tframes {e['start_frame']}-{e['end_frame']}\t"
                       f"{e['start_s']:.2f}-{e['end_s']:.2f} s\tpeak {e['peak']:.3f}")
    _fail_if_all_unreadable(videos)


@anomaly_group.command("timeline")
@click.argument("det_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("videos", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--window", type=click.IntRange(1), help="Frames per window [default: the detector's index].")
@click.option("--stride", type=click.IntRange(1), help="Frames between window starts [default: the detector's index].")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="[default: DET_DIR/timelines].")
@click.option("--segments", is_flag=True, help="Merge consecutive flagged windows into events (<stem>_segments.csv).")
@click.option("--json", "as_json", is_flag=True, help="Print files and segments as one JSON object on stdout.")
@friendly_errors
def anomaly_timeline_command(det_dir, videos, window, stride, out_dir, segments, as_json):
    """Anomaly score of every window of each VIDEO: <stem>_timeline.csv (score, flag) and .png."""
    from seqvision.anomaly_videos import score_videos
    from seqvision.timeline import check_distinct_names

    check_distinct_names(videos)
    detector, timelines = score_videos(det_dir, list(videos), window, stride)
    write_timelines(timelines, out_dir or os.path.join(det_dir, "timelines"), ["score"] if segments else None,
                    detector.threshold, as_json)


def predict_timelines(run_dir, videos, window: int, stride: int | None, out_dir, segments: bool, threshold: float,
                      class_name: str | None, as_json: bool) -> None:
    """``seqvision predict RUN_DIR VIDEO... --window N``: class-probability timelines."""
    from seqvision.run import load_run
    from seqvision.timeline import check_distinct_names, class_timeline
    from seqvision.video import VideoError

    check_distinct_names(videos)
    run = load_run(run_dir)
    if class_name is not None and class_name not in run.labels:
        raise click.BadParameter(f"{class_name!r} is not a class of {run_dir} ({', '.join(run.labels)})",
                                 param_hint="--class")
    timelines = []
    for video in videos:
        try:
            timelines.append(class_timeline(run, video, window, stride))
        except VideoError as error:
            log.warning("skipping %s", error)
            timelines.append(error)
    columns = ([class_name] if class_name else list(run.labels)) if segments else None
    write_timelines(timelines, out_dir or os.path.join(run_dir, "timelines"), columns, threshold, as_json)


@click.command("evaluate-timeline")
@click.argument("timelines", type=click.Path(exists=True))
@click.argument("annotations", type=click.Path(exists=True, dir_okay=False))
@click.option("--class", "class_name", help="Score column of a class-probability timeline.")
@click.option("--score-column", help="Score column by name [default: score].")
@click.option("--reduce", type=click.Choice(["max", "mean"]), default="max", show_default=True,
              help="A frame's score from the windows covering it.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as one JSON object on stdout.")
@friendly_errors
def evaluate_timeline_command(timelines, annotations, class_name, score_column, reduce, as_json):
    """Frame-level ROC-AUC and PR-AUC of TIMELINE.csv (or a folder of *_timeline.csv) against
    temporal annotations in the UCF-Crime format: video class start1 end1 start2 end2 (-1: none)."""
    from seqvision.timeline_eval import evaluate_timelines, format_timeline_report

    if class_name and score_column:
        raise click.UsageError("give --class or --score-column, not both")
    result = evaluate_timelines(timelines, annotations, class_name or score_column, reduce)
    if as_json:
        echo_json(result)
    else:
        click.echo(format_timeline_report(result))


@click.command("mif")
@click.argument("videos_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--model", required=True, help="Image classifier: a .keras file, a SavedModel folder or a TF Hub handle.")
@click.option("--labels", "labels_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Class names, line i naming model output i; the <category> folders are matched against them.")
@click.option("--out", "out_csv", required=True, type=click.Path(dir_okay=False),
              help="CSV: category, fname, mif_idx, mif_time_s, softmax_true.")
@click.option("--every", type=click.IntRange(1), default=1, show_default=True, help="Classify every K-th frame.")
@click.option("--size", type=click.IntRange(1), help="Resize frames to PX x PX [default: the model's input size].")
@click.option("--scale", type=click.Choice(["0..1", "-1..1", "0..255"]),
              help="Pixel range the model expects [default: 0..255 for .keras, 0..1 for SavedModel/TF Hub].")
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True, help="Frames per model call.")
@click.option("--all-probs", type=click.Path(dir_okay=False), help="Also write every classified frame's "
              "probabilities (.npz; key <category>/<fname>, frame indices under <key>:frames).")
@click.option("--save-frames", type=click.Path(file_okay=False), help="Write each chosen frame as a PNG here.")
@friendly_errors
def mif_command(videos_dir, model, labels_file, out_csv, every, size, scale, batch_size, all_probs, save_frames):
    """Most informative frame of each video in VIDEOS_DIR/<category>/: highest probability of its category."""
    from seqvision.mif import find_informative_frames, read_labels, save_mif_frames, write_all_probs, write_mif_csv

    labels = read_labels(labels_file)
    results, problems = find_informative_frames(videos_dir, model, labels, every=every, size=size, scale=scale,
                                                batch_size=batch_size, keep_frames=bool(save_frames))
    if not results:
        raise click.ClickException(f"no video in {videos_dir} could be classified")
    write_mif_csv(results, out_csv)
    if all_probs:
        write_all_probs(results, labels, all_probs)
    if save_frames:
        save_mif_frames(results, save_frames)
    log.info("%d videos -> %s; skipped: %d in categories not in the labels, %d unreadable", len(results), out_csv,
             problems["unknown_category_videos"], len(problems["unreadable"]))
