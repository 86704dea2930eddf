"""``mif`` finds a planted frame: the one red frame of a blue video, seen by a colour classifier."""
from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from seqvision.cli import main

SIZE, FPS, NUM_FRAMES = 32, 10.0, 12
BLUE, RED = (200, 60, 40), (30, 40, 220)  # BGR


def write_planted_video(path: Path, planted: int | None) -> Path:
    """MJPG video of blue frames where frame ``planted`` alone is red."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (SIZE, SIZE))
    for i in range(NUM_FRAMES):
        writer.write(np.full((SIZE, SIZE, 3), RED if i == planted else BLUE, np.uint8))
    writer.release()
    return path


def build_colour_classifier():
    """``[B, 32, 32, 3]`` pixels 0..255 -> logits ``[B, 2]``: class A = redness (R - B), class B = 0."""
    import keras
    from keras import layers

    images = keras.Input((SIZE, SIZE, 3))
    mean_colour = layers.GlobalAveragePooling2D()(images)
    logits = layers.Dense(2, name="logits")(mean_colour)
    model = keras.Model(images, logits)
    kernel = np.zeros((3, 2), np.float32)
    kernel[0, 0], kernel[2, 0] = 0.05, -0.05
    model.get_layer("logits").set_weights([kernel, np.zeros(2, np.float32)])
    return model


@pytest.fixture(scope="module")
def classifier_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("model")
    model = build_colour_classifier()
    model.save(root / "colour.keras")
    model.export(str(root / "colour_savedmodel"), verbose=False)
    (root / "labels.txt").write_text("A\nB\n")
    return root


@pytest.fixture
def videos_dir(tmp_path):
    write_planted_video(tmp_path / "videos" / "A" / "one.avi", planted=7)
    write_planted_video(tmp_path / "videos" / "A" / "two.avi", planted=2)
    write_planted_video(tmp_path / "videos" / "B" / "plain.avi", planted=None)
    return tmp_path / "videos"


def run_mif(videos_dir, model_path, labels, out, *extra):
    result = CliRunner().invoke(main, ["mif", str(videos_dir), "--model", str(model_path), "--labels", str(labels),
                                       "--out", str(out), "--batch-size", "5", *extra])
    assert result.exit_code == 0, result.output
    with open(out, newline="") as f:
        return {r["fname"]: r for r in csv.DictReader(f)}, result


@pytest.mark.parametrize("model_name,extra", [("colour.keras", ()),
                                              ("colour_savedmodel", ("--scale", "0..255"))])
def test_mif_finds_the_planted_frame(videos_dir, classifier_files, tmp_path, model_name, extra):
    rows, _ = run_mif(videos_dir, classifier_files / model_name, classifier_files / "labels.txt",
                      tmp_path / "mifs.csv", "--all-probs", str(tmp_path / "probs.npz"),
                      "--save-frames", str(tmp_path / "frames"), *extra)
    assert list(rows["one.avi"]) == ["category", "fname", "mif_idx", "mif_time_s", "softmax_true"]
    assert (rows["one.avi"]["mif_idx"], rows["one.avi"]["mif_time_s"]) == ("7", "0.700")
    assert (rows["two.avi"]["mif_idx"], rows["two.avi"]["mif_time_s"]) == ("2", "0.200")
    assert float(rows["one.avi"]["softmax_true"]) > 0.99
    # B's video: the true class is B, whose probability is highest on the bluest frame (all equal: the first).
    assert rows["plain.avi"]["category"] == "B" and float(rows["plain.avi"]["softmax_true"]) > 0.9
    with np.load(tmp_path / "probs.npz") as probs:
        assert probs["labels"].tolist() == ["A", "B"]
        np.testing.assert_array_equal(probs["A/one.avi:frames"], np.arange(NUM_FRAMES))
        assert probs["A/one.avi"].shape == (NUM_FRAMES, 2)
        assert int(np.argmax(probs["A/one.avi"][:, 0])) == 7
        np.testing.assert_allclose(probs["A/one.avi"].sum(axis=1), 1.0, rtol=1e-5)
    saved = cv2.imread(str(tmp_path / "frames" / "A" / "one_mif7.png"))
    assert saved is not None and saved[..., 2].mean() > 150 > saved[..., 0].mean()  # the red frame


def test_every_k_classifies_only_every_kth_frame(videos_dir, classifier_files, tmp_path):
    rows, _ = run_mif(videos_dir, classifier_files / "colour.keras", classifier_files / "labels.txt",
                      tmp_path / "mifs.csv", "--every", "2", "--all-probs", str(tmp_path / "probs.npz"))
    assert rows["two.avi"]["mif_idx"] == "2"  # planted on an even frame: seen
    assert int(rows["one.avi"]["mif_idx"]) % 2 == 0  # planted on frame 7: skipped
    assert float(rows["one.avi"]["softmax_true"]) < 0.5
    with np.load(tmp_path / "probs.npz") as probs:
        np.testing.assert_array_equal(probs["A/one.avi:frames"], np.arange(0, NUM_FRAMES, 2))


def test_unknown_category_and_unreadable_video_are_reported_and_skipped(videos_dir, classifier_files, tmp_path):
    write_planted_video(videos_dir / "Unlisted" / "x.avi", planted=1)
    write_planted_video(videos_dir / "Other" / "y.avi", planted=1)
    (videos_dir / "A" / "broken.avi").write_text("not a video")
    rows, result = run_mif(videos_dir, classifier_files / "colour.keras", classifier_files / "labels.txt",
                           tmp_path / "mifs.csv")
    assert set(rows) == {"one.avi", "two.avi", "plain.avi"}
    warnings = [line for line in result.stderr.splitlines() if "not in the labels file" in line]
    assert len(warnings) == 1 and "Other, Unlisted" in warnings[0]
    assert "broken.avi" in result.stderr and "cannot be opened as a video" in result.stderr
    assert "Traceback" not in result.output
