"""Reading clips from disk: class folders of videos or of frame folders, and one frame folder.

A frame folder (written by ``extract-frames`` or by hand) holds images named by their position,
``000000.png, 000001.png, …``; they are read in numeric order, never glob order.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from seqvision.errors import SeqvisionError
from seqvision.sampling import sample_uniform_indices
from seqvision.video import VIDEO_EXTENSIONS, normalize_size

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MIN_FRAMES = 2  # one frame carries no order for a sequence model


def visible(path: Path) -> bool:
    return not path.name.startswith(".")


def find_videos(videos_dir: str | Path) -> list[tuple[str, Path]]:
    """``(label, path)`` for each video in ``videos_dir/<label>/``, sorted by label then name.

    One level of class folders; files whose extension is in ``VIDEO_EXTENSIONS`` (any case);
    hidden files and folders are ignored. Raises ValueError when the folder does not exist or
    holds no class folder with a video.
    """
    videos_dir = Path(videos_dir)
    if not videos_dir.is_dir():
        raise SeqvisionError(f"{videos_dir}: not a folder")
    found = [(label_dir.name, path)
             for label_dir in sorted(videos_dir.iterdir()) if label_dir.is_dir() and visible(label_dir)
             for path in sorted(label_dir.iterdir())
             if visible(path) and path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS]
    if not found:
        raise SeqvisionError(f"{videos_dir}: no videos found; expected {videos_dir}/<label>/<clip>"
                             f" with one of {', '.join(sorted(VIDEO_EXTENSIONS))}")
    return found


def _is_frame_file(path: Path) -> bool:
    """An image named by a plain decimal number (``str.isdigit`` also takes "²")."""
    return (path.suffix.lower() in IMAGE_SUFFIXES and path.stem.isascii() and path.stem.isdecimal()
            and visible(path))


def _frame_files(clip_dir: Path) -> list[Path]:
    """Image files named by an integer, in numeric order (never glob order: 10 sorts before 9).

    Raises ValueError when two files carry the same number (``1.png`` and ``000001.png``,
    or ``000001.png`` and ``000001.jpg``): their order would be a guess.
    """
    files = sorted(filter(_is_frame_file, clip_dir.iterdir()), key=lambda p: (int(p.stem), p.name))
    for before, after in zip(files, files[1:]):
        if int(before.stem) == int(after.stem):
            raise SeqvisionError(f"{clip_dir}: {before.name} and {after.name} are both frame {int(before.stem)}; "
                                 "keep one")
    return files


def read_frame_folder(clip_dir: str | Path, size: int | tuple[int, int] | None = None,
                      seq_len: int | None = None, offsets: tuple[float, ...] = (0.5,)) -> np.ndarray:
    """Frames of one clip folder: uint8 ``[T, H, W, 3]`` RGB in numeric file order.

    ``size``: int for a square side or ``(width, height)``, resized with ``cv2.INTER_AREA``.
    ``seq_len``: read only that many frames, spread uniformly over the folder (all when fewer);
    with several segment ``offsets``, the sorted union of those views (see ``view_offsets``).
    Raises ValueError for a missing folder, no frames, an unreadable image or mixed sizes.
    """
    clip_dir = Path(clip_dir)
    size = normalize_size(size)
    files = frame_files(clip_dir)
    if seq_len is not None:
        wanted = np.unique(np.concatenate([sample_uniform_indices(len(files), seq_len, offset=offset)
                                           for offset in offsets]))
        files = [files[i] for i in wanted]
    frames = []
    for path in files:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise SeqvisionError(f"{path}: cannot be read as an image")
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        if size is not None and (image.shape[1], image.shape[0]) != size:
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        frames.append(image)
    if len({f.shape for f in frames}) > 1:
        raise SeqvisionError(f"{clip_dir}: frames differ in size; pass size= to resize")
    return np.stack(frames)


def frame_files(clip_dir: str | Path) -> list[Path]:
    """The frame images of a clip folder in temporal (numeric) order; ValueError when there are none."""
    clip_dir = Path(clip_dir)
    if not clip_dir.is_dir():
        raise SeqvisionError(f"{clip_dir}: not a folder")
    files = _frame_files(clip_dir)
    if not files:
        raise SeqvisionError(f"{clip_dir}: no frame images (000000.png, 000001.png, …)")
    return files


def list_frame_clips(frames_dir: str | Path) -> list[tuple[str, Path]]:
    """``(label, clip_dir)`` for complete clip folders in ``frames_dir/<label>/<clip>/``, sorted.

    A clip folder holds numbered frame images; hidden folders (partial extractions) are
    ignored. Raises ValueError when ``frames_dir`` is not a folder.
    """
    frames_dir = Path(frames_dir)
    if not frames_dir.is_dir():
        raise SeqvisionError(f"{frames_dir}: not a folder")
    return [(label_dir.name, clip_dir)
            for label_dir in sorted(frames_dir.iterdir()) if label_dir.is_dir() and visible(label_dir)
            for clip_dir in sorted(label_dir.iterdir())
            if clip_dir.is_dir() and visible(clip_dir) and any(map(_is_frame_file, clip_dir.iterdir()))]


def too_few_frames_reason(num_frames: int) -> str:
    """Why a video of ``num_frames`` decodable frames is refused (also by training)."""
    return f"only {num_frames} decodable frame{'s' * (num_frames != 1)}; a sequence needs at least {MIN_FRAMES}"
