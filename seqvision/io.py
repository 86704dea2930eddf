"""Atomic file writes: a reader never sees a half-written result."""
from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path

from seqvision.errors import SeqvisionError


def _file_mode() -> int:
    """The mode ``open()`` gives a new file (0o666 less the umask); mkstemp would give 0o600."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _file_mode())
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as error:
        Path(tmp).unlink(missing_ok=True)
        if error.errno == errno.ENOSPC and not error.filename:
            raise OSError(error.errno, error.strerror, str(path)) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: str | Path, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def read_json(path: str | Path):
    """The JSON in ``path``; a damaged file is a ValueError naming it."""
    with open(path) as f:
        try:
            return json.load(f)
        except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
            raise SeqvisionError(f"{path}: damaged JSON file ({error})") from None
