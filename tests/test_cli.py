"""End to end through the command line, on synthetic videos plus broken files."""
import csv
import json
import re

import pytest
from click.testing import CliRunner

from seqvision.cli import main
from seqvision.demo import make_demo_videos


@pytest.fixture(scope="module")
def video_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    make_demo_videos(root, clips_per_class=6, groups_per_class=3, classes=("move_left", "move_right"))
    (root / "move_left" / "empty.avi").write_bytes(b"")
    (root / "move_left" / "notes.avi").write_text("not a video at all\n")
    good = sorted((root / "move_right").glob("*.avi")) + sorted((root / "move_right").glob("*.mp4"))
    data = good[0].read_bytes()
    (root / "move_right" / "truncated.mp4").write_bytes(data[: len(data) // 5])
    return root


def _runner():
    return CliRunner()


def test_extract_frames_reports_bad_files_and_writes_manifest(video_tree, tmp_path):
    out = tmp_path / "frames"
    result = _runner().invoke(main, ["extract-frames", str(video_tree), str(out), "--seq-len", "6",
                                     "--size", "32", "--jobs", "2"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    rows = list(csv.DictReader(open(out / "manifest.csv")))
    status = {r["clip"]: r for r in rows}
    assert status["empty"]["status"] == "failed" and status["empty"]["reason"]
    assert status["notes"]["status"] == "failed"
    assert status["truncated"]["status"] == "failed" and "truncated" in status["truncated"]["reason"]
    assert sum(r["status"] == "ok" for r in rows) >= 12
    assert "empty.avi" in result.output and "notes.avi" in result.output
    # Re-running skips what is complete.
    again = _runner().invoke(main, ["extract-frames", str(video_tree), str(out), "--seq-len", "6",
                                    "--size", "32"])
    assert again.exit_code == 0
    assert all(r["status"] in ("skipped", "failed") for r in csv.DictReader(open(out / "manifest.csv")))


def test_extract_frames_with_no_usable_video_fails_clearly(tmp_path):
    (tmp_path / "v" / "a").mkdir(parents=True)
    (tmp_path / "v" / "a" / "x.avi").write_bytes(b"")
    result = _runner().invoke(main, ["extract-frames", str(tmp_path / "v"), str(tmp_path / "out")])
    assert result.exit_code != 0
    assert "no usable video" in result.output and "Traceback" not in result.output
    result = _runner().invoke(main, ["extract-frames", str(tmp_path / "missing"), str(tmp_path / "out")])
    assert result.exit_code != 0 and "Traceback" not in result.output


@pytest.mark.slow
def test_train_evaluate_predict_from_videos(video_tree, tmp_path):
    run = tmp_path / "run"
    result = _runner().invoke(main, ["train", str(video_tree), "--out", str(run), "--backbone", "cnn", "--seq-len", "6",
                                     "--img-size", "32", "--epochs", "2", "--batch-size", "4", "--units", "8"])
    assert result.exit_code == 0, result.output
    for name in ("model.keras", "config.json", "labels.json", "history.csv", "training_curves.png", "best.json"):
        assert (run / name).exists(), name
    assert json.loads((run / "labels.json").read_text()) == ["move_left", "move_right"]
    config = json.loads((run / "config.json").read_text())
    assert config["head"] == "lstm"  # the cnn's default head, resolved
    assert config["head_l1"] == 0.0  # no L1 on the cnn's head
    assert config["flow_stats"] is False and config["brightness_norm"] is False  # no statistics to standardise for

    result = _runner().invoke(main, ["evaluate", str(run), str(video_tree), "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)  # stdout holds only the JSON object
    for key in ("accuracy", "mean_class_accuracy", "n", "labels", "per_class", "confusion_matrix"):
        assert key in metrics
    assert metrics["n"] == 12 and metrics["skipped"] == 3
    assert (run / "eval_confusion_matrix.png").exists()

    good = next((video_tree / "move_left").glob("v_*"))
    result = _runner().invoke(main, ["predict", str(run), str(good), str(video_tree / "move_left" / "empty.avi"),
                                     "--top-k", "1", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert rows[0]["predictions"][0]["label"] in ("move_left", "move_right")
    assert "error" in rows[1] and "empty.avi" in rows[1]["error"]


def test_train_defaults_to_imagenet_mobilenet_and_says_what_to_do_offline(video_tree, tmp_path, monkeypatch):
    """No --backbone: frozen MobileNetV2 with the ImageNet weights (Keras' download, here a stand-in);
    offline without them, one line that names the ways out, and no run is left behind."""
    import keras

    real_mobilenet = keras.applications.MobileNetV2
    asked = []

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -2] Name or "
                        "service not known")

    def downloaded(*args, weights=None, **kwargs):  # what Keras loads once the file is in ~/.keras/models
        asked.append(weights)
        return real_mobilenet(*args, weights=None, **kwargs)

    args = ["train", str(video_tree), "--out", str(tmp_path / "run"), "--img-size", "32", "--seq-len", "4",
            "--epochs", "1", "--train-views", "1", "--val-split", "0"]
    monkeypatch.setenv("SEQVISION_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(keras.applications, "MobileNetV2", offline)
    result = _runner().invoke(main, args)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "cannot download the ImageNet weights" in result.output and "--backbone cnn" in result.output
    assert "--weights FILE" in result.output and not (tmp_path / "run").exists()

    monkeypatch.setattr(keras.applications, "MobileNetV2", downloaded)
    result = _runner().invoke(main, args)
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert asked and set(asked) == {"imagenet"}
    assert (config["backbone"], config["weights"], config["head"]) == ("mobilenet", "imagenet", "trend")
    assert config["flow_stats"] is True and config["head_l1"] == pytest.approx(3e-2)
    assert config["brightness_norm"] is True  # the default with flow statistics


def test_motion_input_is_refused_for_a_frozen_backbone(video_tree, tmp_path):
    result = _runner().invoke(main, ["train", str(video_tree), "--out", str(tmp_path / "run"), "--motion", "diff"])
    assert result.exit_code == 2 and "--motion is for --backbone cnn" in result.output, result.output
    assert not (tmp_path / "run").exists()
    from seqvision.errors import SeqvisionError
    from seqvision.training import VideoTrainConfig, train_video

    with pytest.raises(SeqvisionError, match="'frames' is for the cnn backbone; mobilenet embeds the frames"):
        train_video(VideoTrainConfig(data_dir=str(video_tree), motion="frames"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_evaluate_on_a_non_run_is_a_clear_error(tmp_path, video_tree):
    result = _runner().invoke(main, ["evaluate", str(tmp_path), str(video_tree)])
    assert result.exit_code != 0
    assert "not a run directory" in result.output and "Traceback" not in result.output
    result = _runner().invoke(main, ["train", str(video_tree), "--out", str(tmp_path / "run"), "--backbone", "vgg"])
    assert result.exit_code == 2 and "'vgg' is not one of 'cnn', 'efficientnetv2b0', 'mobilenet'" in result.output
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_demo_learns_temporal_order(tmp_path):
    result = _runner().invoke(main, ["demo", "--out", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    accuracy = float(re.search(r"test accuracy \(CNN-LSTM\): ([0-9.]+)", result.output).group(1))
    assert accuracy >= 0.95
    assert (tmp_path / "demo" / "run" / "training_curves.png").exists()
    assert (tmp_path / "demo" / "run" / "eval_confusion_matrix.png").exists()


def test_train_and_embed_with_no_readable_clip_fail_clearly(tmp_path):
    (tmp_path / "v" / "a").mkdir(parents=True)
    (tmp_path / "v" / "a" / "empty.avi").write_bytes(b"")
    (tmp_path / "v" / "a" / "notes.avi").write_text("not a video\n")
    (tmp_path / "v" / "b").mkdir()
    (tmp_path / "v" / "b" / "x.avi").write_bytes(b"")
    (tmp_path / "v" / "b" / "y.avi").write_text("also not a video\n")
    result = _runner().invoke(main, ["train", str(tmp_path / "v"), "--out", str(tmp_path / "run"), "--backbone", "cnn",
                                     "--epochs", "1", "--img-size", "16", "--seq-len", "2", "--val-split", "0.5"])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "every training clip was unreadable" in result.output and "empty.avi" in result.output
    result = _runner().invoke(main, ["embed", str(tmp_path / "v"), "--weights", "none", "--img-size", "32",
                                     "--out", str(tmp_path / "cache")])
    assert result.exit_code == 1 and "none of the 4 clips could be read" in result.output, result.output
    assert not any((tmp_path / "cache").rglob("manifest.json"))


def test_cli_choices_are_the_library_names():
    """The CLI spells model choices out (it must not import Keras to parse options); they stay the library's."""
    import click

    from seqvision.flow import CAMERA_MOTIONS
    from seqvision.models import MOTION_INPUTS, TEMPORAL_HEADS

    def choices(command: str, option: str) -> tuple:
        param = next(p for p in main.commands[command].params if p.name == option)
        assert isinstance(param.type, click.Choice)
        return tuple(param.type.choices)

    assert choices("train", "camera_motion") == choices("embed", "camera_motion") == CAMERA_MOTIONS
    assert choices("train", "motion") == MOTION_INPUTS
    assert sorted(choices("train", "head")) == sorted(TEMPORAL_HEADS)
