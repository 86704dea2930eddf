"""Timelines over long videos: planted events recovered, windows as the index rule says, one decode,
frame-level evaluation against UCF-Crime-style annotations."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.metrics import average_precision_score, roc_auc_score

from seqvision.cli import main
from seqvision.clip_index import window_ranges
from seqvision.sampling import sample_uniform_indices
from seqvision.timeline import class_timeline, read_timeline_csv
from tests.conftest import decode_index, write_video

PLANTED = ((100, 160), (220, 260))


def write_planted_video(path: Path, num_frames: int = 300, events=PLANTED, size: int = 32) -> Path:
    """Static noise, except inside ``events`` (frame ranges, end exclusive) where a bright square moves."""
    rng = np.random.default_rng(0)
    background = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (size, size))
    for i in range(num_frames):
        frame = background.copy()
        for start, end in events:
            if start <= i < end:
                x, y = (3 * (i - start)) % (size - 8), (2 * (i - start)) % (size - 8)
                frame[y:y + 8, x:x + 8] = 255
        writer.write(frame)
    writer.release()
    return path


def save_motion_run(run_dir: Path, seq_len: int = 8, img_size: int = 32) -> Path:
    """A run directory like ``train`` writes, whose model is fixed by hand: P("motion") =
    sigmoid(2 * (m - 6)), m = mean absolute change between consecutive sampled frames (0..255 units)."""
    import keras
    from keras import layers

    from seqvision.models import TemporalDifference

    frames = keras.Input((seq_len, img_size, img_size, 3), name="frames")
    mask = keras.Input((seq_len,), dtype="bool", name="mask")
    change = TemporalDifference(keep_input=False, name="change")(frames)
    magnitude = layers.Add()([layers.ReLU()(change), layers.ReLU()(layers.Rescaling(-1.0)(change))])
    steps = layers.Reshape((seq_len, img_size * img_size * 3))(magnitude)
    per_value = layers.GlobalAveragePooling1D()(steps, mask=mask)
    probs = layers.Dense(2, activation="softmax", name="classes")(per_value)
    model = keras.Model({"frames": frames, "mask": mask}, probs)
    width = img_size * img_size * 3
    kernel = np.zeros((width, 2), np.float32)
    kernel[:, 1] = 2.0 / width
    model.get_layer("classes").set_weights([kernel, np.array([0.0, -12.0], np.float32)])
    run_dir.mkdir(parents=True)
    model.save(run_dir / "model.keras")
    (run_dir / "config.json").write_text(json.dumps({"kind": "video", "seq_len": seq_len, "img_size": img_size,
                                                     "batch_size": 16}))
    (run_dir / "labels.json").write_text(json.dumps(["static", "motion"]))
    return run_dir


def _iou(a, b) -> float:
    overlap = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    return overlap / (max(a[1], b[1]) - min(a[0], b[0]))


def test_timeline_events_recover_planted_segments(tmp_path):
    video = write_planted_video(tmp_path / "long.avi")
    run = save_motion_run(tmp_path / "run")
    result = CliRunner().invoke(main, ["predict", str(run), str(video), "--window", "16", "--stride", "8",
                                       "--segments", "--class", "motion", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)["videos"][0]
    assert Path(report["files"]["png"]).stat().st_size > 0
    assert Path(report["files"]["csv"]).parent == run / "timelines"
    events = [(e["start_frame"], e["end_frame"]) for e in report["segments"]]
    assert all(e["label"] == "motion" for e in report["segments"])
    assert len(events) == len(PLANTED), events  # nothing else flagged
    for planted, found in zip(PLANTED, events):
        assert _iou(planted, found) >= 0.5, (planted, found)
    with open(report["files"]["segments"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(int(r["start_frame"]), int(r["end_frame"])) for r in rows] == events
    assert float(rows[0]["start_s"]) == pytest.approx(events[0][0] / 25.0, abs=1e-3)
    # Without --class every class gets its segments: static windows are the complement.
    result = CliRunner().invoke(main, ["predict", str(run), str(video), "--window", "16", "--stride", "8",
                                       "--segments", "--out", str(tmp_path / "all")])
    assert result.exit_code == 0, result.output
    with open(tmp_path / "all" / "long_segments.csv", newline="") as f:
        labels = {r["label"] for r in csv.DictReader(f)}
    assert labels == {"static", "motion"}
    result = CliRunner().invoke(main, ["predict", str(run), str(video), "--window", "16", "--views", "4"])
    assert result.exit_code == 2 and "--views goes without --window" in result.output


class FrameIndexRun:
    """Stand-in video run: P = (index of the clip's first frame, index of its last frame); records
    the frame indices every window was given."""

    kind, path, labels = "video", Path("fake-run"), ["first", "last"]
    config = {"seq_len": 6, "img_size": 96}

    def __init__(self):
        self.windows, self.batch_sizes = [], []

    def predict_proba(self, frames, mask):
        self.batch_sizes.append(len(frames))
        out = []
        for clip, valid in zip(frames, mask):
            indices = [decode_index(f) for f in clip[valid]]
            self.windows.append(indices)
            out.append([indices[0], indices[-1]])
        return np.array(out, np.float32)


@pytest.mark.parametrize("num_frames,window,stride", [(150, 16, 12), (96, 16, 16), (11, 16, 8)])
def test_windows_follow_the_index_rule_and_the_video_is_decoded_once(tmp_path, monkeypatch, num_frames, window,
                                                                     stride):
    video = write_video(tmp_path / "v.avi", num_frames)
    opened = []
    real_capture = cv2.VideoCapture
    monkeypatch.setattr(cv2, "VideoCapture", lambda *args: opened.append(args) or real_capture(*args))
    run = FrameIndexRun()
    timeline = class_timeline(run, video, window, stride, chunk_windows=4, progress=False)
    assert len(opened) == 1
    expected = window_ranges(num_frames, window, stride)
    assert [tuple(r) for r in timeline.ranges.tolist()] == expected
    assert run.windows == [sample_uniform_indices(num_frames, 6, s, e).tolist() for s, e in expected]
    assert max(run.batch_sizes) <= 4  # windows are scored in chunks, never the whole video at once
    timeline.threshold = None
    from seqvision.timeline import write_timeline

    files = write_timeline(timeline, tmp_path / "out")
    ranges, columns = read_timeline_csv(files["csv"])
    assert ranges.tolist() == [list(r) for r in expected]
    np.testing.assert_array_equal(columns["first"], [w[0] for w in run.windows])
    assert ranges[-1, 1] == num_frames


def test_container_overstating_the_length_reads_the_last_window_again(tmp_path, monkeypatch):
    import seqvision.video

    video = write_video(tmp_path / "v.avi", 70)
    real_metadata = seqvision.video._metadata
    monkeypatch.setattr(seqvision.video, "_metadata", lambda cap: (real_metadata(cap)[0] + 200, 25.0))
    run = FrameIndexRun()
    timeline = class_timeline(run, video, 16, 16, progress=False)
    expected = window_ranges(70, 16, 16)
    assert [tuple(r) for r in timeline.ranges.tolist()] == expected and expected[-1] == (54, 70)
    assert run.windows[-1] == sample_uniform_indices(70, 6, 54, 70).tolist()


def _write_timeline_csv(path: Path, ranges, scores, column="score"):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["start_frame", "end_frame", "start_s", "end_s", column])
        for (start, end), score in zip(ranges, scores):
            writer.writerow([start, end, start / 25, end / 25, score])


def test_evaluate_timeline_frame_level_auc_matches_sklearn(tmp_path):
    rng = np.random.default_rng(0)
    timelines = tmp_path / "timelines"
    timelines.mkdir()
    videos = {"Arrest001_x264": (120, [(30, 55), (90, 100)]), "Normal_Videos_003_x264": (75, [])}
    all_labels, all_scores = [], []
    for name, (n, events) in videos.items():
        ranges = window_ranges(n, 16, 8)
        scores = rng.random(len(ranges))
        _write_timeline_csv(timelines / f"{name}_timeline.csv", ranges, scores)
        # Independent reference: brute-force max over the windows covering each frame.
        all_scores.append(np.array([max(sc for (s, e), sc in zip(ranges, scores) if s <= f < e) for f in range(n)]))
        all_labels.append(np.array([any(s <= f < e for s, e in events) for f in range(n)], int))
    _write_timeline_csv(timelines / "Unlisted_timeline.csv", [(0, 16)], [0.5])
    annotations = tmp_path / "annotations.txt"
    annotations.write_text("Arrest001_x264.mp4  Arrest  30  55  90  100\n"
                           "Normal_Videos_003_x264  Normal  -1  -1  -1  -1\n"
                           "Fighting002_x264.mp4  Fighting  10  20  -1  -1\n")
    result = CliRunner().invoke(main, ["evaluate-timeline", str(timelines), str(annotations), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    labels, scores = np.concatenate(all_labels), np.concatenate(all_scores)
    assert report["overall"]["roc_auc"] == pytest.approx(roc_auc_score(labels, scores))
    assert report["overall"]["pr_auc"] == pytest.approx(average_precision_score(labels, scores))
    assert report["overall"]["n_frames"] == 195 and report["overall"]["anomalous_frames"] == 35
    arrest, normal = report["videos"]
    assert arrest["roc_auc"] == pytest.approx(roc_auc_score(all_labels[0], all_scores[0]))
    assert normal["roc_auc"] is None and normal["anomalous_frames"] == 0
    assert report["unannotated"] == [str(timelines / "Unlisted_timeline.csv")]
    assert report["missing"] == ["Fighting002_x264.mp4"]
    text = CliRunner().invoke(main, ["evaluate-timeline", str(timelines / "Arrest001_x264_timeline.csv"),
                                     str(annotations), "--reduce", "mean"])
    assert text.exit_code == 0 and "overall (1 videos" in text.output
    bad = CliRunner().invoke(main, ["evaluate-timeline", str(timelines), str(annotations), "--class", "fight"])
    assert bad.exit_code != 0 and "no column 'fight'" in bad.output and "Traceback" not in bad.output
    annotations.write_text("Arrest001_x264.mp4  Arrest  30\n")
    bad = CliRunner().invoke(main, ["evaluate-timeline", str(timelines), str(annotations)])
    assert bad.exit_code != 0 and f"{annotations}:1" in bad.output


def test_videos_with_one_name_are_refused_before_any_timeline_is_written(tmp_path):
    from click.testing import CliRunner

    from seqvision.cli import main

    for folder in ("cam1", "cam2"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "clip.avi").write_bytes(b"x")
    (tmp_path / "run").mkdir()
    result = CliRunner().invoke(main, ["predict", str(tmp_path / "run"), str(tmp_path / "cam1" / "clip.avi"),
                                       str(tmp_path / "cam2" / "clip.avi"), "--window", "8"])
    assert result.exit_code == 1 and "would both write clip_timeline.csv" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "run" / "timelines").exists()
