"""Score raw videos with a fitted anomaly detector (``seqvision anomaly score DET_DIR VIDEO…``,
``seqvision anomaly timeline DET_DIR VIDEO…``).

A detector (``seqvision anomaly fit``) records in ``detector.json`` the embedding it was fitted
on: the encoder's identity (backbone name and options, weights file with size and mtime, or a
run), ``seq_len``, ``img_size``, ``pool``, and the windows its clip index cut (``clip_len``,
``stride`` or ``every_seconds``). A video is scored the same way: cut into those windows
(:func:`seqvision.timeline.iter_window_chunks`, one decode), ``seq_len`` frames sampled per
window, embedded by the rebuilt encoder, pooled, rounded to float16 as the embedding export
stores clip vectors, and scored; so a window gets the score its row would get through
``index`` -> ``embed`` -> ``anomaly score``.
"""
from __future__ import annotations

import json

import csv
import logging
from pathlib import Path

import numpy as np

from seqvision.errors import SeqvisionError
from seqvision.io import read_json
from seqvision.timeline import DEFAULT_CHUNK_WINDOWS, Timeline, WindowChunk, video_timeline

log = logging.getLogger(__name__)


def detector_windows(detector, window: int | None = None, stride: int | None = None) -> dict:
    """``{"clip_len", "stride", "every_seconds"}``: the detector's training windows, ``window`` and
    ``stride`` replacing what is given. Detectors fitted before windows were recorded fall back to
    their embedding folder's ``manifest.json`` or ``rows_train.csv``."""
    recorded = detector.info.get("windows") or _windows_from_embedding_dir(detector.info.get("embedding_dir"))
    recorded = dict(recorded or {"clip_len": None, "stride": None, "every_seconds": None})
    if window is not None:
        recorded["clip_len"] = window
    if stride is not None:
        recorded.update(stride=stride, every_seconds=None)
    if recorded.get("clip_len") is None or (recorded.get("stride") is None and recorded.get("every_seconds") is None):
        raise SeqvisionError("the detector does not record the windows it was fitted on; pass --window and --stride")
    return recorded


def _windows_from_embedding_dir(emb_dir: str | None) -> dict | None:
    if not emb_dir or not Path(emb_dir).is_dir():
        return None
    manifest = Path(emb_dir) / "manifest.json"
    if manifest.exists() and read_json(manifest).get("windows"):
        return read_json(manifest)["windows"]
    rows_path = Path(emb_dir) / "rows_train.csv"
    if not rows_path.exists():
        return None
    with open(rows_path, newline="") as f:
        rows = list(csv.DictReader(f))
    strides = {r["stride"] for r in rows}
    return {"clip_len": max(int(r["clip_len"]) for r in rows),
            "stride": int(strides.pop()) if len(strides) == 1 else None, "every_seconds": None}


def detector_encoder(detector):
    """The encoder the detector's embeddings were made with, rebuilt from ``detector.json``.

    ValueError when it cannot be rebuilt the same (a weights file or run model changed since,
    or an encoder that was not a ``seqvision.backbones`` backbone or a run)."""
    from seqvision.backbones import BACKBONES
    from seqvision.clip_embeddings import backbone_encoder, run_encoder

    embedding = detector.info["embedding"]
    identity = embedding.get("encoder") or embedding.get("backbone")
    if not isinstance(identity, dict):
        raise SeqvisionError(f"the detector's embeddings name no rebuildable encoder ({identity!r})")
    if "run" in identity:
        encoder = run_encoder(identity["run"])
    elif identity.get("name") in BACKBONES:
        options = {k: v["path"] if isinstance(v, dict) and "path" in v else v
                   for k, v in identity.items() if k != "name"}
        encoder = backbone_encoder(identity["name"], int(embedding["img_size"]), **options)
    else:
        raise SeqvisionError(f"the detector's encoder {identity.get('name')!r} is not a seqvision backbone or a run; "
                             "embed the videos with seqvision index + embed instead")
    rebuilt = json.loads(json.dumps(encoder.identity))  # as detector.json stores it (tuples become lists)
    changed = sorted(k for k in set(identity) | set(rebuilt) if identity.get(k) != rebuilt.get(k))
    if changed:
        detail = "; ".join(f"{k}: fitted with {identity.get(k)!r}, now {rebuilt.get(k)!r}" for k in changed)
        raise SeqvisionError(f"the detector's encoder changed since it was fitted ({detail}); fit a new detector")
    if embedding.get("dim") is not None and encoder.dim != int(embedding["dim"]):
        raise SeqvisionError(f"the rebuilt encoder gives {encoder.dim} features, the detector's embeddings "
                             f"{embedding['dim']}")
    return encoder


def embed_window_chunk(encoder, chunk: WindowChunk, pool: str, batch_frames: int = 256) -> np.ndarray:
    """float16 ``[B, D]`` clip vectors of a chunk's windows, as ``export_clip_embeddings`` stores them
    (frame backbones: each distinct frame embedded once, then ``pool``; runs: one vector per clip)."""
    from seqvision.clip_embeddings import pool_frame_embeddings, predict_in_batches

    if encoder.kind == "frames":
        embedded = predict_in_batches(encoder.model, chunk.frames, batch_frames)
        per_frame = embedded[chunk.positions] * chunk.mask[..., None]
        vectors = pool_frame_embeddings(per_frame, chunk.mask, pool)
    else:
        clips = {"frames": chunk.clips().astype(np.float32), "mask": chunk.mask}
        vectors = predict_in_batches(encoder.model, clips, max(1, batch_frames // chunk.mask.shape[1]))
    return vectors.astype(np.float16)


def anomaly_timeline(detector, encoder, video: str | Path, windows: dict, *, batch_frames: int = 256,
                     chunk_windows: int = DEFAULT_CHUNK_WINDOWS, progress: bool = True) -> Timeline:
    """Anomaly score (column ``score``; flagged above ``detector.threshold``) of every window of
    ``video``; ``windows`` from :func:`detector_windows`."""
    embedding = detector.info["embedding"]
    pool = embedding["pool"]

    def score_chunk(chunk: WindowChunk) -> np.ndarray:
        return detector.score(embed_window_chunk(encoder, chunk, pool, batch_frames))[:, None]

    return video_timeline(video, int(windows["clip_len"]), windows.get("stride"), int(embedding["seq_len"]),
                          int(embedding["img_size"]), score_chunk, ["score"], threshold=detector.threshold,
                          every_seconds=windows.get("every_seconds"), chunk_windows=chunk_windows, progress=progress)


def score_videos(det_dir: str | Path, videos: list, window: int | None = None, stride: int | None = None, *,
                 progress: bool = True) -> tuple[object, list]:
    """``(detector, [Timeline or VideoError per video])``: every window of each video scored by
    the detector in ``det_dir``; a video that cannot be read is logged and given its error."""
    from seqvision.anomaly import load_detector
    from seqvision.video import VideoError

    detector = load_detector(det_dir)
    windows = detector_windows(detector, window, stride)
    encoder = detector_encoder(detector)
    results = []
    for video in videos:
        try:
            results.append(anomaly_timeline(detector, encoder, video, windows, progress=progress))
        except VideoError as error:
            log.warning("skipping %s", error)
            results.append(error)
    return detector, results
