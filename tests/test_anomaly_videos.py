"""Anomaly detection on raw videos: ``anomaly score DET_DIR VIDEO…`` equals index -> embed -> score;
end to end on synthetic motion anomalies and on real footage with real ImageNet features."""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from seqvision.cli import main
from tests.conftest import write_video

ROOT = Path(__file__).parents[1]
IMAGENET_WEIGHTS = ROOT / ".." / "shared" / "weights" / "mobilenet_v2_imagenet_1.0_224_no_top.h5"
sys.path.insert(0, str(ROOT / "bench"))


def invoke(*args) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture
def imagenet_weights() -> Path:
    if not IMAGENET_WEIGHTS.is_file():
        pytest.skip(f"real ImageNet MobileNetV2 weights not found at {IMAGENET_WEIGHTS.resolve()}")
    return IMAGENET_WEIGHTS


def _scores_by_window(path: Path) -> dict:
    with open(path, newline="") as f:
        return {(Path(r["path"]).name, int(r["start_frame"]), int(r["end_frame"])): (float(r["score"]), int(r["flag"]))
                for r in csv.DictReader(f)}


def test_score_videos_equals_index_embed_score(tmp_path):
    import keras

    # A fixed (saved) random MobileNetV2, so the detector can rebuild exactly the encoder it was fitted with.
    keras.utils.set_random_seed(0)
    weights = tmp_path / "mobilenet_035.weights.h5"
    keras.applications.MobileNetV2(input_shape=(32, 32, 3), include_top=False, pooling="avg", alpha=0.35,
                                   weights=None).save_weights(weights)
    videos = tmp_path / "videos"
    for rel, n in {"Normal/a.avi": 70, "Normal/b.avi": 40, "Normal/c.avi": 52, "Normal/g.avi": 45,
                   "Fight/d.avi": 50, "Fight/e.avi": 12}.items():
        write_video(videos / rel, n)
    invoke("index", videos, tmp_path / "index.csv", "--clip-len", 16, "--stride", 12, "--val-fraction", 0.34,
           "--test-fraction", 0)
    invoke("embed", tmp_path / "index.csv", "--out", tmp_path / "emb", "--img-size", 32, "--alpha", 0.35,
           "--weights", weights, "--seq-len", 4)
    manifest = json.loads((tmp_path / "emb" / "manifest.json").read_text())
    assert manifest["windows"] == {"clip_len": 16, "stride": 12, "every_seconds": None}
    invoke("anomaly", "fit", tmp_path / "emb", "--out", tmp_path / "det", "--neighbors", 2)
    invoke("anomaly", "score", tmp_path / "det", tmp_path / "emb", "--no-plots", "--out", tmp_path / "report")
    expected = {}
    for split_csv in (tmp_path / "report").glob("scores_*.csv"):
        expected.update(_scores_by_window(split_csv))
    paths = sorted(videos.glob("*/*.avi"))
    bad = tmp_path / "not_a_video.avi"
    bad.write_text("text")
    report = json.loads(invoke("anomaly", "score", tmp_path / "det", *paths, bad, "--json"))
    assert report["videos"][-1]["path"] == str(bad) and "cannot be opened" in report["videos"][-1]["error"]
    got = {(Path(v["path"]).name, w["start_frame"], w["end_frame"]): (w["score"], w["flag"])
           for v in report["videos"][:-1] for w in v["windows"]}
    assert got.keys() == expected.keys()  # the same windows, the short video's [0, 12) included
    keys = sorted(expected)
    np.testing.assert_allclose([got[k][0] for k in keys], [expected[k][0] for k in keys], rtol=1e-4, atol=1e-6)
    assert [got[k][1] for k in keys] == [expected[k][1] for k in keys]
    text = invoke("anomaly", "score", tmp_path / "det", paths[0])
    assert text.splitlines()[0].split("\t") == ["path", "start_frame", "end_frame", "start_s", "end_s", "score", "flag"]
    out = invoke("anomaly", "timeline", tmp_path / "det", paths[0], "--segments", "--out", tmp_path / "tl")
    assert (tmp_path / "tl" / f"{paths[0].stem}_timeline.png").exists() and "timeline.csv" in out
    with open(tmp_path / "tl" / f"{paths[0].stem}_timeline.csv", newline="") as f:
        assert list(next(csv.reader(f))) == ["start_frame", "end_frame", "start_s", "end_s", "score", "flag"]
    # A weights file changed since the fit is refused, not silently used.
    keras.applications.MobileNetV2(input_shape=(32, 32, 3), include_top=False, pooling="avg", alpha=0.35,
                                   weights=None).save_weights(weights)
    result = CliRunner().invoke(main, ["anomaly", "score", str(tmp_path / "det"), str(paths[0])])
    assert result.exit_code != 0 and "changed since it was fitted" in result.output


def _split_file(path: Path, videos: dict, val: int = 2, test: int = 4) -> Path:
    """The last ``test`` normal videos test, the ``val`` before them val, the others train;
    the first video of each anomalous kind val, the others test."""
    rows = []
    for kind, paths in videos.items():
        for i, video in enumerate(paths):
            if kind == "smooth":
                first_val = len(paths) - test - val
                split = "train" if i < first_val else "val" if i < first_val + val else "test"
            else:
                split = "val" if i == 0 else "test"
            rows.append(f"{video.parent.name}/{video.name},{split}")
    path.write_text("path,split\n" + "\n".join(rows) + "\n")
    return path


def test_unseen_motions_are_detected_end_to_end(tmp_path, imagenet_weights):
    """Index -> embed (real ImageNet MobileNetV2, 96 px, mean+diff) -> fit (default detector) -> score:
    anomalies are motions never seen in training (erratic jumps, fast spinning) in the same scenes."""
    from generators.anomaly_motion import make_dataset

    videos = make_dataset(tmp_path / "videos", normal=20, anomalous=4, num_frames=48, size=96, scenes=4)
    split_file = _split_file(tmp_path / "splits.csv", videos)
    invoke("index", tmp_path / "videos", tmp_path / "index.csv", "--clip-len", 16, "--stride", 16,
           "--split-file", split_file)
    invoke("embed", tmp_path / "index.csv", "--out", tmp_path / "emb", "--img-size", 96, "--weights", imagenet_weights,
           "--seq-len", 8)
    invoke("anomaly", "fit", tmp_path / "emb", "--out", tmp_path / "det")
    report = json.loads(invoke("anomaly", "score", tmp_path / "det", tmp_path / "emb", "--json"))
    test = report["test"]
    assert test["n_normal"] == 12 and test["n_anomalous"] == 18
    assert test["roc_auc"] >= 0.9, report


def test_real_footage_report_end_to_end(tmp_path, shared_data, imagenet_weights):
    from anomaly_real import run_real_anomaly

    result = run_real_anomaly(tmp_path, data_dir=shared_data, weights=imagenet_weights, img_size=96, clip_len=32,
                              stride=64, seq_len=4)
    report = result["report"]
    for split in ("val", "test"):
        assert report[split]["n_normal"] > 0 and report[split]["n_anomalous"] > 0
        assert 0.0 <= report[split]["roc_auc"] <= 1.0
    for name in ("score_distributions.png", "roc_curve.png", "scores_test.csv"):
        assert (tmp_path / "det" / name).stat().st_size > 0
