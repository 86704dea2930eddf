"""A full disk is an error that names the file, never a signal or a half-written output.

Writes through a memory map (``np.memmap``) cannot report ENOSPC: the kernel sends SIGBUS
when a page finds no free block. :func:`allocate_npy` reserves every block first, so a
full disk fails there, as an ``OSError`` naming the file.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
from pathlib import Path

import numpy as np


def is_no_space(error: BaseException) -> bool:
    """ENOSPC, or a library's wrapped message of it (h5py, zipfile)."""
    return isinstance(error, OSError) and (error.errno in (errno.ENOSPC, errno.EDQUOT)
                                           or "No space left on device" in str(error))


def no_space(path: str | Path, detail: str = "") -> OSError:
    message = os.strerror(errno.ENOSPC) + (f" ({detail})" if detail else "")
    return OSError(errno.ENOSPC, message, str(path))


@contextlib.contextmanager
def with_path(path: str | Path):
    """Give an ENOSPC error raised inside the block ``path`` when it names no file."""
    try:
        yield
    except OSError as error:
        if is_no_space(error) and not error.filename:
            raise no_space(path) from error
        raise


def check_free_space(path: str | Path, needed: int) -> None:
    """Raise ENOSPC naming ``path`` when its file system has under ``needed`` bytes free."""
    free = shutil.disk_usage(Path(path).parent).free
    if free < needed:
        raise no_space(path, f"needs {needed / 1e6:.1f} MB, {free / 1e6:.1f} MB free")


def allocate_npy(path: str | Path, dtype, shape: tuple[int, ...]) -> np.memmap:
    """A zero-filled ``.npy`` memory map whose disk blocks are all allocated."""
    path = Path(path)
    needed = int(np.prod(shape)) * np.dtype(dtype).itemsize
    check_free_space(path, needed + 4096)
    array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    try:
        with open(path, "r+b") as f:
            os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
    except OSError as error:
        del array
        path.unlink(missing_ok=True)
        raise no_space(path) if is_no_space(error) else error from None
    return array
