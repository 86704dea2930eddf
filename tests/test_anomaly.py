"""Anomaly detectors on synthetic embedding folders: normal clips on a low-rank manifold, anomalies off it."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.metrics import average_precision_score, roc_auc_score

from seqvision.anomaly import (
    ROW_COLUMNS, choose_threshold, fit_detector, holdout_normal_rows, load_detector, load_embedding_dir,
    save_detector, score_embedding_dir)
from seqvision.cli import main

DIM, RANK = 32, 4
FAST_AE = {"hidden": [16, RANK], "epochs": 60, "patience": 5, "batch_size": 32}


def _manifold(rng, n: int, basis: np.ndarray) -> np.ndarray:
    return rng.normal(size=(n, RANK)) @ basis + 0.1 * rng.normal(size=(n, DIM))


def make_split(rng, basis, n_normal: int, n_anomalous: int, videos: int = 10):
    """``(x [N, D], y [N], categories, paths)``: anomalies are normal points pushed off the manifold."""
    x = _manifold(rng, n_normal + n_anomalous, basis)
    off = rng.normal(size=(n_anomalous, DIM))
    off -= off @ np.linalg.pinv(basis) @ basis  # the part of the push inside the manifold removed
    x[n_normal:] += 2.5 * off / np.linalg.norm(off, axis=1, keepdims=True) * np.sqrt(DIM) / 2
    y = np.r_[np.zeros(n_normal, int), np.ones(n_anomalous, int)]
    categories = ["Normal_Videos"] * n_normal + ["Fighting"] * n_anomalous
    paths = [f"{c}/v{i % videos}.mp4" for i, c in enumerate(categories)]
    return x, y, categories, paths


def write_embedding_dir(root: Path, splits: dict, **manifest) -> Path:
    """An embedding folder as ``seqvision embed`` writes it, from ``{split: (x, y, categories, paths)}``."""
    root.mkdir(parents=True, exist_ok=True)
    dim = next(iter(splits.values()))[0].shape[1]
    for name, (x, y, categories, paths) in splits.items():
        np.save(root / f"X_{name}.npy", np.asarray(x, np.float16))
        np.save(root / f"y_{name}.npy", np.asarray(y, np.int64))
        with open(root / f"rows_{name}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(ROW_COLUMNS)
            for i, (label, category, path) in enumerate(zip(y, categories, paths)):
                writer.writerow([name, label, category, path, i, 16 * i, 16 * i + 32, 32, 16, 25.0, 1000])
    (root / "manifest.json").write_text(json.dumps(
        {"encoder": {"name": "mobilenet", "weights": "imagenet"}, "seq_len": 16, "img_size": 224, "dim": dim // 2,
         "pool": "mean+diff", "pooled_dim": dim, **manifest}))
    return root


@pytest.fixture(scope="module")
def basis():
    return np.random.default_rng(1).normal(size=(RANK, DIM))


@pytest.fixture(scope="module")
def emb_dir(tmp_path_factory, basis):
    rng = np.random.default_rng(0)
    return write_embedding_dir(tmp_path_factory.mktemp("emb"), {
        "train": make_split(rng, basis, 300, 0), "val": make_split(rng, basis, 80, 20),
        "test": make_split(rng, basis, 100, 40)})


@pytest.mark.parametrize("kind,settings", [("knn", {}), ("mahalanobis", {}), ("ae", FAST_AE)])
def test_each_detector_separates_off_manifold_anomalies(emb_dir, tmp_path, kind, settings):
    detector = fit_detector(emb_dir, kind, **settings)
    save_detector(detector, tmp_path / "det")
    results = score_embedding_dir(tmp_path / "det", emb_dir, plots=False)
    assert results["test"]["roc_auc"] >= 0.9, results["test"]
    assert results["test"]["accuracy_anomalous"] >= 0.8 and results["test"]["accuracy_normal"] >= 0.8


@pytest.mark.parametrize("kind", ["knn", "mahalanobis"])
def test_anomalous_train_rows_do_not_change_the_detector(tmp_path, basis, kind):
    rng = np.random.default_rng(2)
    train = make_split(rng, basis, 120, 0)
    extra = make_split(rng, basis, 0, 30)
    with_anomalies = tuple(np.r_[a, b] if isinstance(a, np.ndarray) else a + b for a, b in zip(train, extra))
    val = make_split(rng, basis, 40, 10)
    clean = fit_detector(write_embedding_dir(tmp_path / "a", {"train": train, "val": val}), kind)
    mixed = fit_detector(write_embedding_dir(tmp_path / "b", {"train": with_anomalies, "val": val}), kind)
    assert clean.threshold == mixed.threshold
    np.testing.assert_array_equal(clean.mean, mixed.mean)
    for key in clean.arrays:
        if not key.startswith("_"):
            np.testing.assert_array_equal(clean.arrays[key], mixed.arrays[key])


def test_percentile_threshold_of_normal_val_scores(emb_dir):
    detector = fit_detector(emb_dir, "knn", threshold_rule="percentile", percentile=90)
    _, splits = load_embedding_dir(emb_dir)
    val = splits["val"]
    scores = detector.score(val.x)
    assert detector.threshold == pytest.approx(np.percentile(scores[val.y == 0], 90))
    assert detector.info["threshold_rule"] == "percentile"


def test_youden_is_the_default_with_labelled_val_anomalies(emb_dir):
    detector = fit_detector(emb_dir, "knn")
    _, splits = load_embedding_dir(emb_dir)
    scores, y = detector.score(splits["val"].x), splits["val"].y
    assert detector.info["threshold_rule"] == "youden"
    tpr_minus_fpr = [np.mean(scores[y == 1] > t) - np.mean(scores[y == 0] > t) for t in np.unique(scores)]
    flags = scores > detector.threshold
    assert np.mean(flags[y == 1]) - np.mean(flags[y == 0]) == pytest.approx(max(tpr_minus_fpr))


def test_youden_without_anomalies_is_refused():
    with pytest.raises(ValueError, match="labelled anomalies"):
        choose_threshold([0.1, 0.2, 0.3], [0, 0, 0], "youden")


def test_holdout_of_normal_train_videos_without_val(tmp_path, basis):
    rng = np.random.default_rng(3)
    train = make_split(rng, basis, 200, 20, videos=10)
    root = write_embedding_dir(tmp_path / "emb", {"train": train})
    _, splits = load_embedding_dir(root)
    fit_rows, held = holdout_normal_rows(splits["train"], 0.2)
    paths = np.array(train[3])
    assert not set(paths[fit_rows]) & set(paths[held]), "a video is in both parts"
    assert (splits["train"].y[held] == 0).all() and len(held) == pytest.approx(40, abs=20)
    detector = fit_detector(root, "knn", percentile=95)
    assert detector.info["n_fit"] == len(fit_rows) and detector.info["threshold_rule"] == "percentile"
    held_scores = detector.score(splits["train"].x[held])
    assert detector.threshold == pytest.approx(np.percentile(held_scores, 95))


def test_fit_and_score_through_the_cli_json(emb_dir, tmp_path):
    runner = CliRunner()
    det = tmp_path / "det"
    fit = runner.invoke(main, ["anomaly", "fit", str(emb_dir), "--out", str(det), "--detector", "mahalanobis"])
    assert fit.exit_code == 0, fit.output
    scored = runner.invoke(main, ["anomaly", "score", str(det), str(emb_dir), "--json"])
    assert scored.exit_code == 0, scored.output
    results = json.loads(scored.stdout)
    threshold = json.loads((det / "detector.json").read_text())["threshold"]
    for split in ("train", "val", "test"):
        with open(det / f"scores_{split}.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        y = np.array([int(r["y"]) for r in rows])
        scores = np.array([float(r["score"]) for r in rows])
        assert [int(r["flag"]) for r in rows] == (scores > threshold).astype(int).tolist()
        m = results[split]
        assert set(m) == {"roc_auc", "pr_auc", "threshold", "n_normal", "n_anomalous", "accuracy_normal",
                          "accuracy_anomalous"}
        assert (m["n_normal"], m["n_anomalous"]) == ((y == 0).sum(), (y == 1).sum())
        assert m["accuracy_normal"] == pytest.approx(np.mean(scores[y == 0] <= threshold))
        if split == "train":  # normal only
            assert m["roc_auc"] is None and m["pr_auc"] is None and m["accuracy_anomalous"] is None
        else:
            assert m["roc_auc"] == pytest.approx(roc_auc_score(y, scores))
            assert m["pr_auc"] == pytest.approx(average_precision_score(y, scores))
            assert m["accuracy_anomalous"] == pytest.approx(np.mean(scores[y == 1] > threshold))
    for png in ("score_distributions.png", "roc_curve.png"):
        assert (det / png).stat().st_size > 1000
    again = runner.invoke(main, ["anomaly", "fit", str(emb_dir), "--out", str(det)])
    assert again.exit_code != 0 and "--overwrite" in again.output


@pytest.mark.parametrize("change", [{"encoder": {"name": "cnn"}}, {"pool": "mean"}])
def test_score_refuses_embeddings_made_another_way(emb_dir, tmp_path, basis, change):
    save_detector(fit_detector(emb_dir, "knn"), tmp_path / "det")
    rng = np.random.default_rng(4)
    other = write_embedding_dir(tmp_path / "other", {"train": make_split(rng, basis, 20, 0)}, **change)
    result = CliRunner().invoke(main, ["anomaly", "score", str(tmp_path / "det"), str(other)])
    assert result.exit_code != 0
    assert "do not match the detector" in result.output and next(iter(change)) in result.output
    assert "Traceback" not in result.output


def test_score_refuses_another_width(emb_dir, tmp_path):
    save_detector(fit_detector(emb_dir, "knn"), tmp_path / "det")
    rng = np.random.default_rng(5)
    wide = (rng.normal(size=(10, DIM + 8)), np.zeros(10, int), ["Normal"] * 10, ["Normal/a.mp4"] * 10)
    other = write_embedding_dir(tmp_path / "wide", {"train": wide})
    with pytest.raises(ValueError, match="pooled_dim"):
        score_embedding_dir(tmp_path / "det", other)


def test_autoencoder_round_trips_through_its_folder(emb_dir, tmp_path):
    detector = fit_detector(emb_dir, "ae", **{**FAST_AE, "epochs": 3})
    save_detector(detector, tmp_path / "det")
    loaded = load_detector(tmp_path / "det")
    _, splits = load_embedding_dir(emb_dir)
    np.testing.assert_allclose(loaded.score(splits["test"].x), detector.score(splits["test"].x), rtol=1e-5)
    assert not list(tmp_path.glob(".det.*")), "staging folder left behind"


def test_rows_of_unreadable_videos_are_left_out(tmp_path, basis):
    """``embed`` leaves an unreadable video's rows as zeros and lists it; they are not normal footage."""
    from seqvision.anomaly import load_embedding_dir

    rng = np.random.default_rng(3)
    x, y, categories, paths = make_split(rng, basis, 40, 0, videos=4)
    x[[p == "Normal_Videos/v1.mp4" for p in paths]] = 0
    emb = write_embedding_dir(tmp_path / "emb", {"train": (x, y, categories, paths)},
                              unreadable=[{"split": "train", "path": "/data/videos/Normal_Videos/v1.mp4",
                                           "reason": "damaged", "rows": 10}])
    _, splits = load_embedding_dir(emb)
    assert len(splits["train"].rows) == 30 and all(r["path"] != "Normal_Videos/v1.mp4" for r in splits["train"].rows)
    assert np.asarray(splits["train"].x, np.float32).any(axis=1).all()
