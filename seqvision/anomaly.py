"""One-class anomaly detectors on clip embeddings (``seqvision anomaly fit`` / ``score``).

Input: an embedding folder written by ``seqvision embed INDEX.csv --out EMB_DIR``: per split
(``train``; ``val`` and ``test`` optional) ``X_<split>.npy`` float16 ``[N, D]``, ``y_<split>.npy``
int ``[N]`` (0 = normal, 1 = anomalous), ``rows_<split>.csv`` (one row per clip, index order) and
``manifest.json`` (``encoder``, ``pool``, ``dim``, ``pooled_dim`` = D, ...).

Detectors are fitted on the NORMAL train rows only and give a score per clip (higher = more
anomalous): ``knn`` (mean Euclidean distance to the k nearest normal train rows),
``mahalanobis`` (distance under a Ledoit-Wolf covariance) and ``ae`` (per-clip mean squared
reconstruction error of a dense autoencoder). All work on embeddings standardised with the mean
and standard deviation of the normal rows they were fitted on. A clip is flagged when its score
is above the threshold (see :func:`choose_threshold`).
"""
from __future__ import annotations

import csv
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqvision.diskspace import with_path
from seqvision.errors import SeqvisionError
from seqvision.io import atomic_write_json, read_json

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
ROW_COLUMNS = ("split", "y", "category", "path", "clip_idx", "start_frame", "end_frame", "clip_len", "stride",
               "fps", "n_frames")
DETECTOR_FILE = "detector.json"
# What score refuses to mix: an embedding folder made with another encoder (``seqvision embed``
# writes ``encoder``; ``backbone`` is accepted too), pooling, frame size, clip length or width.
IDENTITY_KEYS = ("encoder", "backbone", "pool", "img_size", "seq_len", "dim", "pooled_dim")


# === Embedding folder ===

@dataclass
class EmbeddingSplit:
    """One split of an embedding folder: ``x`` float16 ``[N, D]`` (memory-mapped), ``y`` int ``[N]``,
    ``rows``: one dict per clip with the ``ROW_COLUMNS`` (as read, strings)."""

    name: str
    x: np.ndarray
    y: np.ndarray
    rows: list[dict]


def load_embedding_dir(emb_dir: str | Path) -> tuple[dict, dict[str, EmbeddingSplit]]:
    """``(manifest, {split: EmbeddingSplit})`` of the splits in ``emb_dir`` (train required), without
    the rows of unreadable videos; SeqvisionError (path + reason) for a missing manifest or train
    split, lengths that disagree, labels other than 0/1 or a width other than the manifest's."""
    emb_dir = Path(emb_dir)
    if not (emb_dir / "manifest.json").is_file():
        raise SeqvisionError(f"{emb_dir}: not an embedding folder (no manifest.json; make one with seqvision embed)")
    manifest = read_json(emb_dir / "manifest.json")
    splits = {}
    for name in SPLITS:
        paths = [emb_dir / f"{kind}_{name}.{ext}" for kind, ext in (("X", "npy"), ("y", "npy"), ("rows", "csv"))]
        present = [p.exists() for p in paths]
        if not any(present):
            continue
        if not all(present):
            missing = ", ".join(p.name for p, ok in zip(paths, present) if not ok)
            raise SeqvisionError(f"{emb_dir}: split {name!r} is incomplete (missing {missing})")
        splits[name] = _without_unreadable(_load_split(name, *paths, manifest.get("pooled_dim", manifest.get("dim"))),
                                           manifest.get("unreadable", []))
    if "train" not in splits:
        raise SeqvisionError(f"{emb_dir}: no train split (X_train.npy, y_train.npy, rows_train.csv)")
    return manifest, splits


def _load_split(name: str, x_path: Path, y_path: Path, rows_path: Path, dim) -> EmbeddingSplit:
    try:
        x = np.load(x_path, mmap_mode="r")
        y = np.load(y_path)
    except (OSError, ValueError) as error:
        raise SeqvisionError(f"{x_path.parent}: cannot read split {name!r} ({error})") from None
    with open(rows_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if x.ndim != 2:
        raise SeqvisionError(f"{x_path}: expected [N, D] clip embeddings, got shape {x.shape}")
    if dim is not None and x.shape[1] != int(dim):
        raise SeqvisionError(f"{x_path}: width {x.shape[1]} differs from the manifest's pooled_dim/dim {dim}")
    if not (len(x) == len(y) == len(rows)):
        raise SeqvisionError(f"{x_path.parent}: split {name!r} has {len(x)} embeddings, {len(y)} labels and "
                             f"{len(rows)} rows; they must match")
    if len(y) and not np.isin(y, (0, 1)).all():
        raise SeqvisionError(f"{y_path}: labels must be 0 (normal) or 1 (anomalous), found {sorted(set(y.tolist()))}")
    return EmbeddingSplit(name, x, y.astype(np.int64), rows)


def _without_unreadable(split: EmbeddingSplit, unreadable: list[dict]) -> EmbeddingSplit:
    """``split`` without the (all-zero) rows of videos ``embed`` could not read: not footage at all."""
    bad = [str(u["path"]) for u in unreadable if u.get("split") == split.name]
    drop = np.array([any(p == r["path"] or p.endswith("/" + r["path"]) for p in bad) for r in split.rows], bool)
    if not drop.any():
        return split
    log.warning("split %s: leaving out %d rows of %d unreadable video(s)", split.name, int(drop.sum()), len(bad))
    keep = np.flatnonzero(~drop)
    return EmbeddingSplit(split.name, np.asarray(split.x[keep]), split.y[keep], [split.rows[i] for i in keep])


def embedding_identity(manifest: dict) -> dict:
    """The manifest entries a detector must match to score an embedding folder."""
    return {key: manifest.get(key) for key in IDENTITY_KEYS}


def _rows_float32(x: np.ndarray, index: np.ndarray) -> np.ndarray:
    return np.asarray(x[np.sort(index)], dtype=np.float32)


# === Normal rows: fit part and threshold part ===

def holdout_normal_rows(split: EmbeddingSplit, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(fit rows, held-out rows)`` of the normal rows of ``split``, whole videos held out per category.

    Per category about ``fraction`` of its normal rows go to the held-out part, whole videos at a
    time (windows of one video overlap, so splitting them would leak); a category with one video
    is split by rows. Depends on the normal rows only.
    """
    if not 0 < fraction < 1:
        raise SeqvisionError(f"holdout fraction must be between 0 and 1, got {fraction}")
    normal = np.flatnonzero(split.y == 0)
    rng = np.random.default_rng(seed)
    held = []
    categories = sorted({split.rows[i]["category"] for i in normal})
    for category in categories:
        rows = np.array([i for i in normal if split.rows[i]["category"] == category])
        videos = sorted({split.rows[i]["path"] for i in rows})
        want = max(1, round(fraction * len(rows)))
        if len(videos) < 2:
            held.extend(rng.permutation(rows)[:want].tolist())
            continue
        taken = 0
        for video in rng.permutation(videos):
            if taken >= want:
                break
            chosen = [i for i in rows if split.rows[i]["path"] == video]
            held.extend(chosen)
            taken += len(chosen)
    held = np.array(sorted(held), dtype=np.int64)
    fit = np.setdiff1d(normal, held)
    if len(fit) == 0 or len(held) == 0:
        raise SeqvisionError(f"too few normal train rows ({len(normal)}) to hold out {fraction:.0%} for the threshold")
    return fit, held


def choose_threshold(scores, y, rule: str, percentile: float = 95.0) -> float:
    """Score above which a clip is flagged, from validation ``scores [N]`` and labels ``y [N]``.

    ``percentile``: that percentile of the normal scores. ``youden``: the ROC point with the
    largest TPR - FPR (needs normal and anomalous rows).
    """
    scores, y = np.asarray(scores, np.float64), np.asarray(y)
    if rule == "percentile":
        if not (y == 0).any():
            raise SeqvisionError("no normal validation rows to take a percentile of")
        return float(np.percentile(scores[y == 0], percentile))
    if rule == "youden":
        from sklearn.metrics import roc_curve

        if not ((y == 0).any() and (y == 1).any()):
            raise SeqvisionError("the Youden threshold needs labelled anomalies in the validation rows; "
                                 "use --threshold percentile")
        fpr, tpr, thresholds = roc_curve(y, scores)
        best = int(np.argmax(tpr - fpr))
        # roc_curve flags score >= t; we flag score > t, so step just below the chosen score.
        return float(np.nextafter(thresholds[best], -np.inf))
    raise SeqvisionError(f"unknown threshold rule {rule!r}; choose one of ['percentile', 'youden']")


# === Detectors ===

def _fit_knn(z: np.ndarray, z_val: np.ndarray, settings: dict) -> dict:
    k = settings["neighbors"]
    if k > len(z):
        raise SeqvisionError(f"--neighbors {k} is more than the {len(z)} normal rows the detector is fitted on")
    return {"reference": z}


def _score_knn(arrays: dict, z: np.ndarray, settings: dict) -> np.ndarray:
    from sklearn.neighbors import NearestNeighbors

    if "_index" not in arrays:  # built once per loaded detector, not saved
        arrays["_index"] = NearestNeighbors(n_neighbors=settings["neighbors"]).fit(arrays["reference"])
    distances, _ = arrays["_index"].kneighbors(z)
    return distances.mean(axis=1)


def _fit_mahalanobis(z: np.ndarray, z_val: np.ndarray, settings: dict) -> dict:
    from sklearn.covariance import LedoitWolf

    estimate = LedoitWolf().fit(z)
    return {"location": estimate.location_.astype(np.float32), "precision": estimate.precision_.astype(np.float32)}


def _score_mahalanobis(arrays: dict, z: np.ndarray, settings: dict) -> np.ndarray:
    d = z - arrays["location"]
    return np.sqrt(np.maximum(np.einsum("nd,nd->n", d @ arrays["precision"], d), 0.0))


def build_autoencoder(dim: int, hidden: tuple[int, ...] = (256, 64), dropout: float = 0.0):
    """Dense autoencoder ``[B, D] -> [B, D]``: BatchNorm on the input, encoder ``hidden``, mirrored decoder."""
    import keras
    from keras import layers

    # === Layers / Functional Model ===
    inputs = keras.Input((dim,), name="embedding")
    x = layers.BatchNormalization(name="input_bn")(inputs)
    sizes = list(hidden) + list(hidden[-2::-1])
    for i, units in enumerate(sizes):
        x = layers.Dense(units, activation="relu", name=f"dense{i}")(x)
        if dropout and i < len(sizes) - 1:
            x = layers.Dropout(dropout, name=f"dropout{i}")(x)
    outputs = layers.Dense(dim, name="reconstruction")(x)
    return keras.Model(inputs, outputs, name="autoencoder")


def _fit_ae(z: np.ndarray, z_val: np.ndarray, settings: dict) -> dict:
    import keras

    keras.utils.set_random_seed(settings["seed"])
    model = build_autoencoder(z.shape[1], tuple(settings["hidden"]), settings["dropout"])
    model.compile(optimizer=keras.optimizers.Adam(settings["lr"]), loss="mse")
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=settings["patience"],
                                         restore_best_weights=True)
    model.fit(z, z, validation_data=(z_val, z_val), epochs=settings["epochs"], batch_size=settings["batch_size"],
              callbacks=[stop], shuffle=True, verbose=0)
    log.info("autoencoder: %d epochs, best normal val loss %.4f", len(model.history.epoch), stop.best)
    return {"model": model}


def _score_ae(arrays: dict, z: np.ndarray, settings: dict) -> np.ndarray:
    model = arrays["model"]
    reconstruction = model.predict(z, batch_size=1024, verbose=0)
    return np.mean((reconstruction - z) ** 2, axis=1)


DETECTORS = {
    "knn": (_fit_knn, _score_knn),
    "mahalanobis": (_fit_mahalanobis, _score_mahalanobis),
    "ae": (_fit_ae, _score_ae),
}
DEFAULT_DETECTOR = "knn"  # bench/anomaly_detectors.md
DEFAULT_SETTINGS = {"neighbors": 5, "hidden": [256, 64], "dropout": 0.1, "lr": 1e-3, "epochs": 200,
                    "batch_size": 64, "patience": 10, "seed": 0}


def _detector_functions(kind: str):
    if kind not in DETECTORS:
        raise SeqvisionError(f"unknown detector {kind!r}; choose one of {sorted(DETECTORS)}")
    return DETECTORS[kind]


@dataclass
class Detector:
    """A fitted detector: ``score(x [N, D]) -> [N]`` (higher = more anomalous), flag = score > threshold."""

    kind: str
    mean: np.ndarray
    scale: np.ndarray
    arrays: dict
    settings: dict
    threshold: float
    info: dict

    def score(self, x: np.ndarray, batch_rows: int = 8192) -> np.ndarray:
        _, score = _detector_functions(self.kind)
        parts = [score(self.arrays, self.standardise(x[i:i + batch_rows]), self.settings)
                 for i in range(0, len(x), batch_rows)]
        return np.concatenate(parts).astype(np.float64) if parts else np.zeros(0)

    def standardise(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, np.float32) - self.mean) / self.scale


def fit_detector(emb_dir: str | Path, kind: str = DEFAULT_DETECTOR, threshold_rule: str | None = None,
                 percentile: float = 95.0, holdout: float = 0.2, **settings) -> Detector:
    """Fit a ``kind`` detector on the normal train rows of ``emb_dir`` and choose its threshold.

    Normal val rows (or, with no val split, a ``holdout`` part of the normal train rows) stop the
    autoencoder early and set the threshold: by ``threshold_rule`` (default ``youden`` when the
    val split has anomalies, else ``percentile`` of the normal scores).
    """
    fit, _ = _detector_functions(kind)
    unknown = set(settings) - set(DEFAULT_SETTINGS)
    if unknown:
        raise SeqvisionError(f"unknown detector settings {sorted(unknown)}")
    settings = {**DEFAULT_SETTINGS, **settings}
    manifest, splits = load_embedding_dir(emb_dir)
    train = splits["train"]
    if "val" in splits:
        fit_rows = np.flatnonzero(train.y == 0)
        val_x, val_y = splits["val"].x, splits["val"].y
        source = "val split"
        if not (val_y == 0).any():
            raise SeqvisionError(f"{emb_dir}: the val split has no normal rows to stop training and set the threshold")
    else:
        fit_rows, held = holdout_normal_rows(train, holdout, settings["seed"])
        val_x, val_y = train.x[held], train.y[held]
        source = f"{holdout:.0%} of the normal train videos held out (no val split)"
    if len(fit_rows) < 2:
        raise SeqvisionError(f"{emb_dir}: need at least 2 normal train rows to fit on, found {len(fit_rows)}")
    x = _rows_float32(train.x, fit_rows)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-6] = 1.0
    detector = Detector(kind, mean, scale, {}, settings, float("nan"), {})
    val_normal = detector.standardise(np.asarray(val_x, np.float32)[val_y == 0])
    detector.arrays = fit(detector.standardise(x), val_normal, settings)
    rule = threshold_rule or ("youden" if (val_y == 1).any() else "percentile")
    val_scores = detector.score(np.asarray(val_x))
    detector.threshold = choose_threshold(val_scores, val_y, rule, percentile)
    detector.info = {
        "kind": kind, "threshold": detector.threshold, "threshold_rule": rule,
        "percentile": percentile if rule == "percentile" else None, "threshold_rows": source,
        "n_fit": int(len(fit_rows)), "n_threshold_normal": int((val_y == 0).sum()),
        "n_threshold_anomalous": int((val_y == 1).sum()), "settings": settings,
        "embedding": embedding_identity(manifest), "embedding_dir": str(Path(emb_dir).resolve()),
        "windows": manifest.get("windows"),  # how to cut raw videos for score VIDEO (seqvision.anomaly_videos)
    }
    return detector


# === Saving and loading (no pickles: arrays in .npz, the autoencoder as .keras) ===

def save_detector(detector: Detector, det_dir: str | Path, overwrite: bool = False) -> Path:
    """Write ``detector.json``, ``detector.npz`` (and ``autoencoder.keras``) into ``det_dir`` atomically.

    The files are staged in a sibling folder and renamed into place; an existing detector folder
    is replaced only with ``overwrite``.
    """
    from seqvision.rundir import exchange_folders

    det_dir = Path(det_dir)
    if det_dir.exists() and any(det_dir.iterdir()):
        if not (det_dir / DETECTOR_FILE).exists():
            raise SeqvisionError(f"{det_dir}: exists and is not a detector folder; choose another --out")
        if not overwrite:
            raise SeqvisionError(f"{det_dir}: holds a detector; pass --overwrite to replace it")
    staged = det_dir.parent / f".{det_dir.name}.new-{os.getpid()}"
    shutil.rmtree(staged, ignore_errors=True)
    try:
        with with_path(det_dir):
            staged.mkdir(parents=True)
            arrays = {k: v for k, v in detector.arrays.items() if k != "model" and not k.startswith("_")}
            np.savez(staged / "detector.npz", mean=detector.mean, scale=detector.scale, **arrays)
            if "model" in detector.arrays:
                detector.arrays["model"].save(staged / "autoencoder.keras")
            atomic_write_json(staged / DETECTOR_FILE, detector.info)
            if det_dir.exists():
                exchange_folders(staged, det_dir)
                shutil.rmtree(staged)
            else:
                os.rename(staged, det_dir)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return det_dir


def load_detector(det_dir: str | Path) -> Detector:
    """The detector saved in ``det_dir`` by :func:`save_detector`."""
    det_dir = Path(det_dir)
    if not (det_dir / DETECTOR_FILE).is_file():
        raise SeqvisionError(f"{det_dir}: not a detector folder (no {DETECTOR_FILE}; make one with "
                             "seqvision anomaly fit)")
    info = read_json(det_dir / DETECTOR_FILE)
    _detector_functions(info.get("kind"))
    with np.load(det_dir / "detector.npz", allow_pickle=False) as stored:
        arrays = {k: stored[k] for k in stored.files}
    mean, scale = arrays.pop("mean"), arrays.pop("scale")
    if info["kind"] == "ae":
        from seqvision.model_files import load_model_file

        arrays["model"] = load_model_file(det_dir / "autoencoder.keras")
    return Detector(info["kind"], mean, scale, arrays, info["settings"], float(info["threshold"]), info)


def check_embedding_matches(detector: Detector, manifest: dict, emb_dir) -> None:
    """ValueError when ``emb_dir`` was made another way than the detector's embeddings (``IDENTITY_KEYS``)."""
    expected, found = detector.info["embedding"], embedding_identity(manifest)
    differ = [k for k in IDENTITY_KEYS if expected.get(k) != found.get(k)]
    if differ:
        detail = "; ".join(f"{k}: detector {expected.get(k)!r}, embeddings {found.get(k)!r}" for k in differ)
        raise SeqvisionError(f"{emb_dir}: embeddings do not match the detector ({detail}); embed with the "
                             "detector's settings or fit a new detector")


# === Scoring ===

def split_metrics(scores, y, threshold: float) -> dict:
    """ROC-AUC, PR-AUC (average precision), counts and per-class accuracies of ``scores [N]`` at ``threshold``.

    AUCs are None when the split lacks a class; so is the accuracy of a class with no rows.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    scores, y = np.asarray(scores, np.float64), np.asarray(y)
    flags = scores > threshold
    both = (y == 0).any() and (y == 1).any()
    return {
        "roc_auc": float(roc_auc_score(y, scores)) if both else None,
        "pr_auc": float(average_precision_score(y, scores)) if both else None,
        "threshold": float(threshold),
        "n_normal": int((y == 0).sum()),
        "n_anomalous": int((y == 1).sum()),
        "accuracy_normal": float(np.mean(~flags[y == 0])) if (y == 0).any() else None,
        "accuracy_anomalous": float(np.mean(flags[y == 1])) if (y == 1).any() else None,
    }


def score_embedding_dir(det_dir: str | Path, emb_dir: str | Path, out_dir: str | Path | None = None,
                        splits: tuple[str, ...] | None = None, plots: bool = True) -> dict:
    """Score every split of ``emb_dir`` with the detector in ``det_dir``.

    Writes ``scores_<split>.csv`` (the row columns + ``score``, ``flag``) and, with ``plots``, the
    score-distribution and ROC PNGs into ``out_dir`` (default ``det_dir``). Returns
    ``{split: split_metrics(...)}``, plus ``"files"``: the paths written.
    """
    from seqvision.anomaly_report import plot_roc_curves, plot_score_distributions, write_scores_csv

    detector = load_detector(det_dir)
    manifest, available = load_embedding_dir(emb_dir)
    check_embedding_matches(detector, manifest, emb_dir)
    chosen = splits or tuple(available)
    missing = [s for s in chosen if s not in available]
    if missing:
        raise SeqvisionError(f"{emb_dir}: no split {missing[0]!r} (found {', '.join(available)})")
    out_dir = Path(out_dir or det_dir)
    results, scored, files = {}, {}, []
    for name in chosen:
        split = available[name]
        scores = detector.score(split.x)
        scored[name] = (scores, split.y)
        results[name] = split_metrics(scores, split.y, detector.threshold)
        files.append(write_scores_csv(out_dir / f"scores_{name}.csv", split.rows, scores,
                                      scores > detector.threshold))
    if plots:
        files.append(plot_score_distributions(scored, detector.threshold, out_dir / "score_distributions.png"))
        roc = plot_roc_curves(scored, out_dir / "roc_curve.png")
        if roc is not None:
            files.append(roc)
    results["files"] = [str(f) for f in files]
    return results
