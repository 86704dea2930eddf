"""On-disk cache of per-frame backbone embeddings for frozen-backbone training.

A cache is a folder holding ``features.npy`` (float16 ``[N, V, T, D]``, memory-mapped; float32
when float16 cannot hold the values, see :func:`fits_float16`; V temporally shifted uniform
views per clip (``sampling.view_offsets``), zero after each clip's true length),
``lengths.npy`` (int32 ``[N]``), ``backbone.weights.h5``
(the Keras backbone's weights, so a reused cache always matches the backbone that
produced it) and ``manifest.json`` (backbone, weights id, image size, T, sampling,
embedding dim, clip list with labels, file sizes and mtimes). Rows are in path order, so
the same clips give the same cache whatever order (train/validation split) they come in,
and a cache of more clips (``seqvision embed`` on the whole folder) serves any subset.
It is built under a temporary name and renamed into place only when complete, so a
folder with a manifest is always whole; a killed run leaves only a ``.partial-*`` folder
that is ignored and removed. A lock file lets one process build while others wait.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqvision.diskspace import allocate_npy, with_path
from seqvision.errors import SeqvisionError
from seqvision.io import atomic_write_json, read_json

log = logging.getLogger(__name__)

CACHE_VERSION = 4  # 2: rows in path order; 3: float32 when float16 cannot hold the features; 4: V views
_reported_unreadable: set[str] = set()  # caches already warned about in this process


@dataclass
class EmbeddingCache:
    path: Path
    features: np.ndarray  # float16 (or float32, manifest "dtype") [N, V, T, D], memory-mapped
    lengths: np.ndarray  # int32 [N]
    manifest: dict

    @property
    def clip_paths(self) -> list[str]:
        return [c["path"] for c in self.manifest["clips"]]

    @property
    def masks(self) -> np.ndarray:
        """bool ``[N, T]``: True for real frames."""
        return np.arange(self.features.shape[2])[None] < self.lengths[:, None]

    def rows_for(self, clips) -> np.ndarray:
        """int64 ``[len(clips)]``: the cache row of each clip, in the order given."""
        row_of = {path: i for i, path in enumerate(self.clip_paths)}
        paths = [str(Path(c.path).resolve()) for c in clips]
        missing = [path for path in paths if path not in row_of]
        if missing:
            raise SeqvisionError(f"{self.path}: {len(missing)} clips are not in this cache, e.g. {missing[0]}")
        return np.array([row_of[path] for path in paths], np.int64)


def default_cache_root() -> Path:
    """``$SEQVISION_CACHE_DIR``, else ``$XDG_CACHE_HOME/seqvision``, else ``~/.cache/seqvision``."""
    if os.environ.get("SEQVISION_CACHE_DIR"):
        return Path(os.environ["SEQVISION_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "seqvision"


def cache_key(clips, backbone_id: dict, seq_len: int, img_size: int, views: int = 1,
              flow_stats: dict | None = None, change_gain: float | None = None, clip_change: bool = False) -> dict:
    """Everything the cached numbers depend on (JSON-ready); clips in path order, once each.
    ``flow_stats``: the config of the :class:`seqvision.flow.FlowStatistics` appended to each
    embedding; ``change_gain``: that of the change images embedded next to the frames;
    ``clip_change``: each view's clip-change embedding appended last (each absent from the key when
    None / False, so caches made before it keep their keys)."""
    entries = {}
    for clip in clips:
        path = Path(clip.path).resolve()
        stat = _content_stat(path)
        entries[str(path)] = {"path": str(path), "label": clip.label, "size": stat[0], "mtime": stat[1]}
    entries = [entries[path] for path in sorted(entries)]
    key = {"version": CACHE_VERSION, "backbone": backbone_id, "img_size": img_size, "seq_len": seq_len,
           "sampling": "uniform", "views": views, "clips": entries}
    key = {**key, "flow_stats": flow_stats} if flow_stats else key
    key = {**key, "clip_change": True} if clip_change else key
    return {**key, "change_gain": change_gain} if change_gain else key


def flow_stats_key(layer) -> dict | None:
    """What the flow statistics in a cache depend on: the layer's class and settings (None: none)."""
    if layer is None:
        return None
    key = {"class": type(layer).__name__, "size": layer.size, "grids": list(layer.grids)}
    # Options added later enter the key only when on: caches made before them keep their keys.
    key = {**key, "moving_part": True} if layer.moving_part else key
    key = {**key, "brightness_norm": True} if layer.brightness_norm else key
    return {**key, "camera_motion": layer.camera_motion} if layer.moving_part and layer.camera_motion != "median" else key


def _content_stat(path: Path) -> tuple[int, float]:
    """(bytes, newest mtime) of a video file or a frame folder."""
    if path.is_dir():
        stats = [p.stat() for p in path.iterdir() if p.is_file()]
        return sum(s.st_size for s in stats), max((s.st_mtime for s in stats), default=0.0)
    stat = path.stat()
    return stat.st_size, stat.st_mtime


def cache_dir_for(key: dict, cache_root: str | Path) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    name = key["backbone"].get("name", "backbone")
    return Path(cache_root) / "embeddings" / f"{name}-{key['img_size']}px-T{key['seq_len']}x{key['views']}-{digest}"


def _same_extras(manifest: dict, key: dict) -> bool:
    """Whether a cache holds the same numbers next to its embeddings as ``key`` asks for (none included)."""
    return all(manifest.get(extra) == key.get(extra) for extra in ("flow_stats", "change_gain", "clip_change"))


def open_embedding_cache(path: str | Path, key: dict | None = None) -> EmbeddingCache | None:
    """The cache at ``path`` if it is complete (and matches ``key``), else None."""
    path = Path(path)
    manifest_path = path / "manifest.json"
    if not manifest_path.exists():
        return None
    try:
        manifest = read_json(manifest_path)
    except (OSError, ValueError) as error:
        _warn_unreadable(path, error)
        return None
    if key is not None and ({k: manifest.get(k) for k in key} != key or not _same_extras(manifest, key)):
        return None
    try:
        features = np.load(path / "features.npy", mmap_mode="r")
        lengths = np.load(path / "lengths.npy")
    except (OSError, ValueError) as error:
        _warn_unreadable(path, error)
        return None
    expected = (len(manifest["clips"]), manifest.get("views", 1), manifest["seq_len"], manifest["embedding_dim"])
    if features.shape != expected or lengths.shape != (expected[0],):
        log.warning("%s: embedding cache has shape %s, manifest says %s; rebuilding", path, features.shape, expected)
        return None
    return EmbeddingCache(path, features, lengths, manifest)


def _warn_unreadable(path: Path, error: Exception) -> None:
    if str(path) not in _reported_unreadable:
        _reported_unreadable.add(str(path))
        log.warning("%s: unreadable embedding cache (%s); rebuilding", path, error)


def fits_float16(values: np.ndarray) -> bool:
    """Whether float16 holds ``values`` to its usual precision (2**-11) relative to the largest:
    False when any overflows (|value| > 65504) or when the largest is below float16's smallest
    normal (6.1e-5), as for a randomly initialised backbone (features near 1e-11 become zeros).

    A few tiny values beside large ones (ImageNet MobileNetV2: about 1 in 20,000 below 6.1e-5)
    keep float16: as subnormals they are off by at most 3e-8.
    """
    finite = values[np.isfinite(values)].astype(np.float32)
    if finite.size == 0:
        return True
    scale = float(np.abs(finite).max())
    if scale > float(np.finfo(np.float16).max):
        return False
    with np.errstate(over="ignore"):
        error = np.abs(finite.astype(np.float16).astype(np.float32) - finite)
    return bool((error <= scale * 2.0 ** -11).all())


def _widened_to_float32(features: np.memmap, path: Path) -> np.memmap:
    """A float32 copy of the float16 memory map ``features``, replacing it at ``path``."""
    wide_path = path.with_name(f"wide-{path.name}")
    wide = allocate_npy(wide_path, np.float32, features.shape)
    for start in range(0, len(features), 256):
        wide[start:start + 256] = features[start:start + 256]
    os.replace(wide_path, path)
    log.info("features outside float16's range: caching them as float32")
    return wide


def _partial_dir(cache_dir: Path) -> Path:
    return cache_dir.parent / f".{cache_dir.name}.partial-{os.getpid()}"


def build_embedding_cache(clips, backbone, backbone_id: dict, seq_len: int, img_size: int,
                          cache_dir: str | Path, views: int = 1, batch_frames: int = 256, workers: int | None = None,
                          progress: bool = True, flow_stats=None, change_stream: bool = False,
                          clip_change: bool = False) -> EmbeddingCache:
    """Decode every clip once (all ``views``), embed its frames in batches of ``batch_frames``, write the cache.

    ``flow_stats`` (a :class:`seqvision.flow.FlowStatistics` or None): its ``[T, F]`` motion
    descriptors of each view are appended to the embeddings, ``D + F`` numbers per step.
    ``change_stream``: each step's change image (:class:`seqvision.models.FrameChange`) is
    embedded too, in the same batches: ``[frame D, change D, F]`` per step, as the model's order.
    ``clip_change``: each view's :class:`seqvision.models.ClipChange` image is embedded in the same
    batches and its ``D`` numbers follow at every valid step (the model's order again).
    Decoding runs in a thread pool (OpenCV releases the GIL) ahead of the model calls.
    Clips that cannot be read are logged and stored with length 0 (all-False mask);
    callers drop them.
    """
    from tqdm import tqdm

    from seqvision.datasets import load_clip_views
    from seqvision.models import ClipChange, FrameChange
    from seqvision.sampling import view_offsets
    from seqvision.video import VideoError

    cache_dir = Path(cache_dir)
    frame_change = FrameChange() if change_stream else None
    clip_change_layer = ClipChange() if clip_change else None
    key = cache_key(clips, backbone_id, seq_len, img_size, views, flow_stats_key(flow_stats),
                    frame_change.gain if frame_change is not None else None, clip_change)
    offsets = view_offsets(views)
    by_path = {str(Path(c.path).resolve()): c for c in clips}
    clips = [by_path[entry["path"]] for entry in key["clips"]]  # row order = manifest order
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    for stale in cache_dir.parent.glob(f".{cache_dir.name}.partial-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = _partial_dir(cache_dir)
    tmp.mkdir()
    embedding_dim = int(backbone.output_shape[-1])
    streams = 2 if change_stream else 1
    stats_dim = (int(flow_stats.compute_output_shape((None, None, img_size, img_size, 3))[-1])
                 if flow_stats is not None else 0)
    dim = streams * embedding_dim + stats_dim + (embedding_dim if clip_change else 0)
    features = allocate_npy(tmp / "features.npy", np.float16, (len(clips), views, seq_len, dim))
    lengths = np.zeros(len(clips), np.int32)

    def load(index):
        try:
            return index, *load_clip_views(clips[index].path, seq_len, img_size, offsets)
        except (VideoError, OSError, ValueError) as error:
            log.warning("skipping %s", error if isinstance(error, VideoError) else f"{clips[index].path}: {error}")
            return index, None, 0

    pending_frames, pending_rows = [], []  # frames [n, S, S, 3]; (clip index, length, copies, flow statistics)

    def flush():
        nonlocal features
        if not pending_frames:
            return
        batch = np.concatenate(pending_frames)
        embedded = np.asarray(backbone.predict_on_batch(batch), np.float32)
        if features.dtype == np.float16 and not fits_float16(embedded):
            features = _widened_to_float32(features, tmp / "features.npy")
        offset = 0
        for index, length, copies, motion in pending_rows:
            rows = embedded[offset:offset + copies * streams * length].reshape(copies, streams, length, embedding_dim)
            rows = np.concatenate(list(rows.transpose(1, 0, 2, 3)), axis=-1)  # [copies, length, streams * D]
            offset += copies * streams * length
            if motion is not None:
                rows = np.concatenate([rows, motion], axis=-1)
            if clip_change_layer is not None:  # one vector per view, at every valid step
                change = embedded[offset:offset + copies]
                rows = np.concatenate([rows, np.repeat(change[:, None], length, axis=1)], axis=-1)
                offset += copies
            features[index, :, :length] = rows  # one embedded view fills every view when they are the same
        pending_frames.clear()
        pending_rows.clear()

    bar = tqdm(total=len(clips), desc="embedding clips", unit="clip", disable=not progress)
    queued = 0
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        for index, frames, length in bounded_map(pool, load, range(len(clips)), ahead=4 * workers):
            lengths[index] = length
            if length:
                # A clip of T frames or fewer gives the same frames in every view: embed them once.
                copies = 1 if all(np.array_equal(frames[0], view) for view in frames[1:]) else views
                views_frames = frames[:copies, :length]
                motion = np.asarray(flow_stats(views_frames), np.float32) if flow_stats is not None else None
                if frame_change is not None:  # per view: its frames, then its change images (whole numbers)
                    changes = np.asarray(frame_change(views_frames)).astype(np.uint8)
                    views_frames = np.concatenate([views_frames, changes], axis=1)
                pending_frames.append(views_frames.reshape(-1, *frames.shape[2:]))
                if clip_change_layer is not None:  # float images: the model feeds them unrounded
                    pending_frames.append(np.asarray(clip_change_layer(frames[:copies, :length],
                                                                       np.ones((copies, length), bool)), np.float32))
                pending_rows.append((index, length, copies, motion))
                queued += copies * (streams * length + (1 if clip_change_layer is not None else 0))
            if queued >= batch_frames:
                flush()
                queued = 0
            bar.update(1)
        flush()
    bar.close()
    features.flush()
    dtype = str(features.dtype)
    del features
    if not lengths.any():
        shutil.rmtree(tmp, ignore_errors=True)
        raise SeqvisionError(f"none of the {len(clips)} clips could be read (see the warnings above); no cache written")
    np.save(tmp / "lengths.npy", lengths)
    if hasattr(backbone, "save_weights") and backbone.weights:
        backbone.save_weights(tmp / "backbone.weights.h5")
    atomic_write_json(tmp / "manifest.json", {**key, "embedding_dim": dim, "dtype": dtype,
                                             "frames_embedded": int(lengths.sum())})
    shutil.rmtree(cache_dir, ignore_errors=True)
    try:
        os.replace(tmp, cache_dir)
    except OSError:  # another process (e.g. a second worker) finished the same cache first
        shutil.rmtree(tmp, ignore_errors=True)
        if open_embedding_cache(cache_dir, key) is None:
            raise
    log.info("embedding cache written: %s (%d clips, %d frames)", cache_dir, len(clips), int(lengths.sum()))
    cache = open_embedding_cache(cache_dir)
    assert cache is not None
    return cache


def bounded_map(pool, fn, items, ahead: int):
    """``pool.map`` in order, with at most ``ahead`` results decoded but not yet consumed."""
    from collections import deque

    pending = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def find_covering_cache(key: dict, cache_root: str | Path) -> EmbeddingCache | None:
    """A complete cache with the same settings whose clips include all of ``key``'s, else None."""
    wanted = {json.dumps(entry, sort_keys=True) for entry in key["clips"]}
    settings = {k: v for k, v in key.items() if k != "clips"}
    exact = cache_dir_for(key, cache_root)
    for path in sorted(exact.parent.glob(exact.name.rsplit("-", 1)[0] + "-*")):
        try:
            manifest = read_json(path / "manifest.json")
        except (OSError, ValueError):
            continue
        if ({k: manifest.get(k) for k in settings} == settings and _same_extras(manifest, key)
                and wanted <= {json.dumps(entry, sort_keys=True) for entry in manifest.get("clips", [])}):
            cache = open_embedding_cache(path)
            if cache is not None:
                return cache
    return None


@contextmanager
def _build_lock(cache_dir: Path):
    """Hold an exclusive lock on ``cache_dir``'s lock file; waits while another process builds it."""
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(cache_dir.parent / f".{cache_dir.name}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another process is building %s; waiting for it", cache_dir)
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def get_embedding_cache(clips, backbone, backbone_id: dict, seq_len: int, img_size: int,
                        cache_root: str | Path | None = None, views: int = 1, flow_stats=None,
                        change_stream: bool = False, clip_change: bool = False,
                        **build_options) -> EmbeddingCache:
    """Reuse a cache of these clips (or of more) with these settings, or build it.

    Rows are in path order: use :meth:`EmbeddingCache.rows_for` to find a clip's row.
    On reuse, the backbone's weights are set to those stored with the cache. ``flow_stats``: see
    :func:`build_embedding_cache`.
    """
    from seqvision.models import CHANGE_GAIN

    key = cache_key(clips, backbone_id, seq_len, img_size, views, flow_stats_key(flow_stats),
                    CHANGE_GAIN if change_stream else None, clip_change)
    cache_root = cache_root or default_cache_root()
    path = cache_dir_for(key, cache_root)
    cache = open_embedding_cache(path, key) or find_covering_cache(key, cache_root)
    if cache is None:
        with _build_lock(path):
            cache = open_embedding_cache(path, key)  # built by the process we waited for
            if cache is None:
                try:
                    with with_path(path):
                        return build_embedding_cache(clips, backbone, backbone_id, seq_len, img_size, path,
                                                     views, flow_stats=flow_stats, change_stream=change_stream,
                                                     clip_change=clip_change, **build_options)
                except BaseException:
                    shutil.rmtree(_partial_dir(path), ignore_errors=True)
                    raise
    log.info("reusing embedding cache %s", cache.path)
    if (cache.path / "backbone.weights.h5").exists():
        backbone.load_weights(cache.path / "backbone.weights.h5")
    return cache
