"""An exclusive lock on a file (``fcntl.flock``): one process at a time writes a shared output."""
from __future__ import annotations

import fcntl
import logging
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)


@contextmanager
def exclusive_lock(path: str | Path, waiting_message: str):
    """Hold an exclusive lock on ``path`` (created if missing); while another process holds it,
    log ``waiting_message`` and wait. The kernel releases it when the holder dies."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info(waiting_message)
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
