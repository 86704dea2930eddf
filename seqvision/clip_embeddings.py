"""Embedding export from a clip index: one vector per window, per split, memory-mapped.

Output folder (the format ``seqvision anomaly`` reads)::

    X_<split>.npy     float16 [N, D_pool]  pooled clip vectors (``--run``: the run's penultimate features)
    F_<split>.npy     float16 [N, T, D]    with keep_frames: per-frame embeddings, zero where mask is False
    mask_<split>.npy  bool [N, T]          with keep_frames: True for real (sampled) frames
    y_<split>.npy     int64 [N]            0 normal, 1 anomalous (the index's ``y``)
    rows_<split>.csv  the index rows of that split, same order (row order = index order)
    manifest.json     written last: encoder id, seq_len (T), img_size, dim (D), pool, pooled_dim,
                      splits with row counts, index path and sha256, the index's windows
                      (clip_len, stride, every_seconds), unreadable videos
    progress.json     resume state: settings and finished chunks per split

Each window's T frames are ``sample_uniform_indices(n_frames, T, start, end)``; a window of
fewer than T frames gives fewer (never repeated) frames and pooling uses only those (the mask).
Rows are processed in fixed chunks of ``chunk_rows``; a chunk's rows are written and flushed
before ``progress.json`` records it, so a killed run resumes at the first unfinished chunk and
ends with arrays byte-identical to an uninterrupted run. Within a chunk each video is decoded
once for all its windows (explicit indices, threads across videos), each distinct frame is
embedded once, and the backbone sees ``batch_frames`` frames per call. Rows of a video that
no longer decodes are zero and listed in the manifest under ``unreadable``.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import os
import signal
import sys
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqvision.clip_index import INDEX_COLUMNS, file_sha256, index_videos_dir, read_clip_index, sidecar_path
from seqvision.diskspace import allocate_npy
from seqvision.errors import SeqvisionError
from seqvision.io import atomic_write_json, atomic_write_text, read_json
from seqvision.sampling import sample_uniform_indices

log = logging.getLogger(__name__)

EXPORT_VERSION = 1
DEFAULT_POOL = "mean+diff"  # see bench/embed_pooling.md
# Tests set this to make the process SIGKILL itself after that many chunks (a crash mid-run).
KILL_AFTER_CHUNKS_ENV = "SEQVISION_TEST_KILL_AFTER_CHUNKS"


def _masked_mean(frames: np.ndarray, mask: np.ndarray) -> np.ndarray:
    weights = mask[..., None].astype(np.float32)
    return (frames * weights).sum(1) / np.maximum(weights.sum(1), 1.0)


def _mean_abs_diff(frames: np.ndarray, mask: np.ndarray) -> np.ndarray:
    both = (mask[:, 1:] & mask[:, :-1]).astype(np.float32)[..., None]
    return (np.abs(np.diff(frames, axis=1)) * both).sum(1) / np.maximum(both.sum(1), 1.0)


def _masked_std(frames: np.ndarray, mask: np.ndarray) -> np.ndarray:
    centred = (frames - _masked_mean(frames, mask)[:, None]) * mask[..., None]
    return np.sqrt(_masked_mean(centred ** 2, mask))


def _masked_max(frames: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.where(mask[..., None], frames, -np.inf).max(1)


# name -> parts concatenated along features; each part maps ([N, T, D], bool [N, T]) -> [N, D]
POOLS = {
    "mean": (_masked_mean,),
    "mean+diff": (_masked_mean, _mean_abs_diff),
    "mean+std": (_masked_mean, _masked_std),
    "max": (_masked_max,),
    "mean+std+diff": (_masked_mean, _masked_std, _mean_abs_diff),
}


def pool_frame_embeddings(frames: np.ndarray, mask: np.ndarray, pool: str = DEFAULT_POOL) -> np.ndarray:
    """``[N, T, D]`` frame embeddings + bool mask ``[N, T]`` (valid frames first) -> float32
    ``[N, k*D]`` over the valid frames only. ``mean+diff``: the mean, then the mean absolute
    difference of consecutive valid frames (0 for a one-frame clip)."""
    if pool not in POOLS:
        raise SeqvisionError(f"unknown pool {pool!r}; choose one of {', '.join(POOLS)}")
    frames, mask = np.asarray(frames, np.float32), np.asarray(mask, bool)
    if not mask.any(axis=1).all():
        raise SeqvisionError("every clip needs at least one valid frame to pool")
    return np.concatenate([part(frames, mask) for part in POOLS[pool]], axis=1)


@dataclass
class ClipEncoder:
    """What turns frames into vectors. ``kind="frames"``: ``model`` maps uint8-valued
    ``[B, S, S, 3]`` -> ``[B, D]`` per frame, then pooling; ``kind="clips"``: ``model`` maps
    ``{"frames": [B, T, S, S, 3], "mask": [B, T]}`` -> ``[B, D]`` (no pooling)."""

    kind: str
    model: object
    identity: dict
    img_size: int
    dim: int
    seq_len: int | None = None  # fixed T of a "clips" model


def backbone_encoder(name: str, img_size: int | None = None, **settings) -> ClipEncoder:
    """A frozen backbone (``seqvision.backbones`` spec ``name``; ``settings`` such as ``weights``,
    ``alpha``, ``hub_handle`` as ``train`` takes them), identified as the embedding cache does."""
    from seqvision.backbones import backbone_spec, build_backbone
    from seqvision.training import VideoTrainConfig, backbone_identity, backbone_options

    img_size = img_size or backbone_spec(name).default_img_size
    config = VideoTrainConfig(data_dir="", backbone=name, img_size=img_size, **settings)
    model = build_backbone(name, img_size, **backbone_options(config))
    return ClipEncoder("frames", model, backbone_identity(config), img_size, int(model.output_shape[-1]))


def run_encoder(run_dir: str | Path) -> ClipEncoder:
    """A trained video run's penultimate features: the input of its final softmax Dense,
    computed on frames + mask."""
    import keras

    from seqvision.run import load_run

    run = load_run(run_dir)
    if run.kind != "video":
        raise SeqvisionError(f"{run_dir}: not a video run; --run needs a model that takes frames")
    model, config = run.model, run.config
    heads = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    features = keras.Model(model.input, heads[-1].input, name="penultimate")
    identity = {"run": str(Path(run_dir).resolve()), "model_mtime": (Path(run_dir) / "model.keras").stat().st_mtime}
    return ClipEncoder("clips", features, identity, int(config["img_size"]), int(features.output_shape[-1]),
                       seq_len=int(config["seq_len"]))


@dataclass
class _Unit:
    """The windows of one video inside one chunk: decoded in one read."""

    path: Path
    rows: list[int]  # positions inside the split
    samples: list[np.ndarray]  # per row, frame indices (int64 [L], L <= T)


def _decode(unit: _Unit, img_size: int):
    from seqvision.video import VideoError, read_video_frames

    wanted = np.unique(np.concatenate(unit.samples))
    try:
        frames, indices, _ = read_video_frames(unit.path, indices=wanted, size=img_size)
    except (VideoError, OSError) as error:
        return unit, None, None, str(error)
    return unit, frames, indices, None


def predict_in_batches(model, batch, batch_size: int) -> np.ndarray:
    """``model.predict_on_batch`` over ``batch`` (an array or a dict of arrays) ``batch_size`` rows
    at a time, float32, concatenated."""
    parts = [np.asarray(model.predict_on_batch(_slice(batch, i, batch_size)), np.float32)
             for i in range(0, _length(batch), batch_size)]
    return np.concatenate(parts)


def _length(batch) -> int:
    return len(batch["frames"]) if isinstance(batch, dict) else len(batch)


def _slice(batch, start: int, size: int):
    if isinstance(batch, dict):
        return {k: v[start:start + size] for k, v in batch.items()}
    return batch[start:start + size]


def _embed_chunk(encoder: ClipEncoder, decoded: list, seq_len: int, batch_frames: int):
    """``(frame embeddings [n, T, D] or None, mask [n, T], clip vectors [n, D] or None)`` for the
    rows of one chunk, in the order of ``decoded``'s units and their rows."""
    samples = [(unit, i, s) for unit, frames, indices, _ in decoded if frames is not None
               for i, s in enumerate(unit.samples)]
    n = sum(len(unit.rows) for unit, *_ in decoded)
    mask = np.zeros((n, seq_len), bool)
    position = {}
    at = 0
    for unit, frames, *_ in decoded:
        for i, row in enumerate(unit.rows):
            position[(id(unit), i)] = at
            if frames is not None:
                mask[at, :len(unit.samples[i])] = True
            at += 1
    if encoder.kind == "frames":
        usable = [d for d in decoded if d[1] is not None]
        embedded = (predict_in_batches(encoder.model, np.concatenate([d[1] for d in usable]), batch_frames)
                    if usable else np.zeros((0, encoder.dim), np.float32))
        out = np.zeros((n, seq_len, encoder.dim), np.float32)
        offset = {}
        start = 0
        for unit, frames, indices, _ in usable:
            offset[id(unit)] = (start, indices)
            start += len(frames)
        for unit, i, s in samples:
            first, indices = offset[id(unit)]
            out[position[(id(unit), i)], :len(s)] = embedded[first + np.searchsorted(indices, s)]
        return out, mask, None
    frames_in = np.zeros((n, seq_len, encoder.img_size, encoder.img_size, 3), np.float32)
    for unit, frames, indices, _ in decoded:
        if frames is None:
            continue
        for i, s in enumerate(unit.samples):
            frames_in[position[(id(unit), i)], :len(s)] = frames[np.searchsorted(indices, s)]
    vectors = predict_in_batches(encoder.model, {"frames": frames_in, "mask": mask}, max(1, batch_frames // seq_len))
    vectors[~mask.any(axis=1)] = 0  # rows of unreadable videos: zeros, as the frames path leaves them
    return None, mask, vectors


def _chunks(rows: list[dict], chunk_rows: int) -> list[range]:
    return [range(s, min(s + chunk_rows, len(rows))) for s in range(0, len(rows), chunk_rows)]


def _units(rows: list[dict], chunk: range, videos_dir: Path, seq_len: int) -> list[_Unit]:
    by_path = defaultdict(list)
    for i in chunk:
        by_path[rows[i]["path"]].append(i)
    return [_Unit(videos_dir / path, positions,
                  [sample_uniform_indices(rows[i]["n_frames"], seq_len, rows[i]["start_frame"], rows[i]["end_frame"])
                   for i in positions])
            for path, positions in by_path.items()]


def _rows_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=INDEX_COLUMNS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _save_npy_atomic(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)


def _open_outputs(out_dir: Path, split: str, n: int, key: dict, pooled_dim: int, resume: bool) -> dict:
    shapes = {"X": (n, pooled_dim)}
    if key["keep_frames"]:
        shapes.update(F=(n, key["seq_len"], key["dim"]), mask=(n, key["seq_len"]))
    arrays = {}
    for name, shape in shapes.items():
        path = out_dir / f"{name}_{split}.npy"
        dtype = bool if name == "mask" else np.float16
        arrays[name] = (np.load(path, mmap_mode="r+") if resume and path.exists()
                        else allocate_npy(path, dtype, shape))
        if arrays[name].shape != shape:
            raise SeqvisionError(f"{path}: shape {arrays[name].shape}, expected {shape}; remove {out_dir} and rerun")
    return arrays


def export_clip_embeddings(index_csv: str | Path, out_dir: str | Path, encoder: ClipEncoder, *,
                           seq_len: int = 16, pool: str = DEFAULT_POOL, keep_frames: bool = False,
                           videos_dir: str | Path | None = None, batch_frames: int = 256, chunk_rows: int = 128,
                           workers: int | None = None, progress: bool = True) -> dict:
    """Embed every row of ``index_csv`` into ``out_dir`` (format: module docstring); resumes a
    killed run with the same settings. Returns the manifest."""
    from tqdm import tqdm

    from seqvision.embeddings import bounded_map, fits_float16

    if encoder.kind == "clips":
        if keep_frames:
            raise SeqvisionError("keep_frames needs a frame backbone; a run gives one vector per clip")
        seq_len, pool = encoder.seq_len, "run-penultimate"
    elif pool not in POOLS:
        raise SeqvisionError(f"unknown pool {pool!r}; choose one of {', '.join(POOLS)}")
    rows = read_clip_index(index_csv)
    with open(index_csv, newline="") as f:
        raw_rows = list(csv.DictReader(f))  # the index's own text, for rows_<split>.csv
    videos_dir = index_videos_dir(index_csv, videos_dir)
    out_dir = Path(out_dir)
    key = {"version": EXPORT_VERSION, "index_sha256": file_sha256(index_csv), "videos_dir": str(videos_dir.resolve()),
           "encoder": encoder.identity, "seq_len": seq_len, "img_size": encoder.img_size, "dim": encoder.dim,
           "pool": pool, "keep_frames": keep_frames, "chunk_rows": chunk_rows, "batch_frames": batch_frames}
    key = json.loads(json.dumps(key))  # as progress.json gives it back (tuples become lists)
    pooled_dim = encoder.dim * (len(POOLS[pool]) if encoder.kind == "frames" else 1)
    manifest_path, progress_path = out_dir / "manifest.json", out_dir / "progress.json"
    state = read_json(progress_path) if progress_path.exists() else None
    if state is not None and state["key"] != key:
        changed = sorted(k for k in key if state["key"].get(k) != key[k])
        raise SeqvisionError(f"{out_dir}: holds an export with other settings ({', '.join(changed)}); "
                             "use another --out or remove it")
    if state is None and out_dir.exists() and any(out_dir.iterdir()):
        raise SeqvisionError(f"{out_dir}: not empty and not an embedding export; use another --out")
    if state is not None and manifest_path.exists():
        log.info("%s: export already complete", out_dir)
        return read_json(manifest_path)
    resume = state is not None
    state = state or {"key": key, "done": {}, "unreadable": []}
    out_dir.mkdir(parents=True, exist_ok=True)
    splits = sorted({r["split"] for r in rows})
    by_split = {s: [r for r in rows if r["split"] == s] for s in splits}
    atomic_write_json(progress_path, state)
    kill_after = int(os.environ.get(KILL_AFTER_CHUNKS_ENV, "0"))
    chunks_run = 0
    total = len(rows)
    done_rows = sum(len(_chunks(by_split[s], chunk_rows)[c]) for s in state["done"] for c in state["done"][s])
    bar = tqdm(total=total, initial=done_rows, disable=not progress, file=sys.stderr, unit="clip", desc="embed")
    workers = workers or min(8, os.cpu_count() or 1)
    warned_range = False
    with ThreadPoolExecutor(workers) as pool_threads:
        for split in splits:
            split_rows = by_split[split]
            arrays = _open_outputs(out_dir, split, len(split_rows), key, pooled_dim, resume)
            _save_npy_atomic(out_dir / f"y_{split}.npy", np.array([r["y"] for r in split_rows], np.int64))
            atomic_write_text(out_dir / f"rows_{split}.csv", _rows_csv([r for r in raw_rows if r["split"] == split]))
            done = set(state["done"].get(split, []))
            todo = [(c, chunk) for c, chunk in enumerate(_chunks(split_rows, chunk_rows)) if c not in done]
            jobs = [(c, chunk, unit) for c, chunk in todo for unit in _units(split_rows, chunk, videos_dir, seq_len)]
            decoded_by_chunk = defaultdict(list)
            units_left = Counter(c for c, *_ in jobs)
            results = bounded_map(pool_threads, lambda job: (job[0], job[1], _decode(job[2], encoder.img_size)),
                                   jobs, ahead=2 * workers)
            for c, chunk, decoded in results:
                decoded_by_chunk[c].append(decoded)
                units_left[c] -= 1
                if units_left[c]:
                    continue
                units = decoded_by_chunk.pop(c)
                for unit, _, _, error in units:
                    if error:
                        log.warning("rows of %s left as zeros: %s", unit.path, error)
                        state["unreadable"].append({"split": split, "path": str(unit.path), "reason": error,
                                                    "rows": len(unit.rows)})
                frames_emb, mask, vectors = _embed_chunk(encoder, units, seq_len, batch_frames)
                order = np.array([row for unit, *_ in units for row in unit.rows])
                if vectors is None:
                    vectors = np.zeros((len(order), pooled_dim), np.float32)
                    valid = mask.any(1)
                    vectors[valid] = pool_frame_embeddings(frames_emb[valid], mask[valid], pool)
                if not warned_range and not fits_float16(vectors):
                    warned_range = True
                    log.warning("clip vectors outside float16's range or precision; stored as float16 anyway")
                arrays["X"][order] = vectors
                if keep_frames:
                    arrays["F"][order] = frames_emb
                    arrays["mask"][order] = mask
                for array in arrays.values():
                    array.flush()
                state["done"].setdefault(split, []).append(c)
                atomic_write_json(progress_path, state)
                bar.update(len(chunk))
                chunks_run += 1
                if kill_after and chunks_run >= kill_after:
                    os.kill(os.getpid(), signal.SIGKILL)
            del arrays
    bar.close()
    manifest = {"version": EXPORT_VERSION, "encoder": encoder.identity, "seq_len": seq_len,
                "img_size": encoder.img_size, "dim": encoder.dim, "pool": pool, "pooled_dim": pooled_dim,
                "dtype": "float16", "keep_frames": keep_frames, "row_order": "index order within each split",
                "index": str(Path(index_csv).resolve()), "index_sha256": key["index_sha256"],
                "videos_dir": key["videos_dir"], "splits": {s: len(by_split[s]) for s in splits},
                "windows": index_windows(index_csv, rows), "unreadable": state["unreadable"]}
    atomic_write_json(manifest_path, manifest)
    return manifest


def index_windows(index_csv: str | Path, rows: list[dict]) -> dict:
    """How the index cut its videos: ``{"clip_len", "stride", "every_seconds"}`` from its sidecar
    ``.json``, else from its rows (``stride`` None when the rows disagree), so the same windows
    can be cut from new videos."""
    sidecar = sidecar_path(index_csv)
    if sidecar.exists():
        settings = read_json(sidecar)
        return {k: settings.get(k) for k in ("clip_len", "stride", "every_seconds")}
    clip_lens, strides = {r["clip_len"] for r in rows}, {r["stride"] for r in rows}
    return {"clip_len": max(clip_lens), "stride": strides.pop() if len(strides) == 1 else None,
            "every_seconds": None}


def probe_embeddings(out_dir: str | Path, train: str = "train", val: str = "val") -> dict:
    """Logistic regression (standardised inputs) fit on ``X_train``/``y_train``, scored on val:
    ``{"roc_auc", "accuracy", "n_train", "n_val"}``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out_dir = Path(out_dir)
    data = {}
    for split in (train, val):
        if not (out_dir / f"X_{split}.npy").exists():
            raise SeqvisionError(f"{out_dir}: no {split} split to probe with (X_{split}.npy missing)")
        data[split] = (np.load(out_dir / f"X_{split}.npy").astype(np.float32), np.load(out_dir / f"y_{split}.npy"))
    for split, (_, y) in data.items():
        if len(set(y.tolist())) < 2:
            raise SeqvisionError(f"{out_dir}: the {split} split holds one class only; the probe needs both")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(*data[train])
    x_val, y_val = data[val]
    scores = model.predict_proba(x_val)[:, 1]
    return {"roc_auc": float(roc_auc_score(y_val, scores)),
            "accuracy": float(accuracy_score(y_val, scores >= 0.5)),
            "n_train": len(data[train][1]), "n_val": len(y_val)}
