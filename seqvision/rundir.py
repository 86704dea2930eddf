"""A run folder changes only when a new run has something to replace it with.

``train`` into a folder holding a finished run (``model.keras``, no resumable backup) is
refused unless ``overwrite``; with it, the new run is written beside it as
``.<name>.new-<pid>`` and swapped in only once it has succeeded. An interrupted run (a
non-empty ``backup*/`` folder, or the ``INCOMPLETE`` marker) is resumed or restarted in
place. A first run that fails before its first checkpoint leaves no folder behind.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import shutil
from pathlib import Path

from seqvision.diskspace import with_path
from seqvision.errors import SeqvisionError

log = logging.getLogger(__name__)

INCOMPLETE = "INCOMPLETE"  # present while training; a folder with it is not a finished run


def has_backup(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds the saved state of an interrupted ``fit``."""
    return any(b.is_dir() and any(b.iterdir()) for b in Path(run_dir).glob("backup*"))


def is_finished_run(run_dir: Path) -> bool:
    run_dir = Path(run_dir)
    return ((run_dir / "model.keras").exists() and not (run_dir / INCOMPLETE).exists()
            and not has_backup(run_dir))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_siblings(run_dir: Path) -> None:
    """``.<name>.new-<pid>`` / ``.<name>.old-<pid>`` folders of processes that died."""
    for sibling in run_dir.parent.glob(f".{run_dir.name}.*-*"):
        kind, _, pid = sibling.name[len(run_dir.name) + 2:].rpartition("-")
        if kind in ("new", "old") and pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(sibling, ignore_errors=True)


def exchange_folders(a: Path, b: Path) -> None:
    """Swap two folders in one step (Linux ``renameat2(RENAME_EXCHANGE)``), else by two renames."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.renameat2(-100, os.fsencode(a), -100, os.fsencode(b), 2) == 0:  # AT_FDCWD, RENAME_EXCHANGE
            return
        failure = ctypes.get_errno()
    except (OSError, AttributeError):
        failure = errno.ENOSYS
    if failure not in (errno.ENOSYS, errno.EINVAL):
        raise OSError(failure, os.strerror(failure), str(b))
    aside = b.parent / f".{b.name}.old-{os.getpid()}"
    os.rename(b, aside)
    os.rename(a, b)
    os.rename(aside, a)


@contextlib.contextmanager
def staged_run_dir(run_dir: str | Path, config: dict, overwrite: bool = False):
    """Yield ``(folder to train in, resuming)`` for a run into ``run_dir``; see the module docstring.

    ``config`` is written to the training folder's ``config.json`` (:func:`prepare_run_dir`).
    An ENOSPC error without a file name is given ``run_dir``.
    """
    from seqvision.fitting import prepare_run_dir

    run_dir = Path(run_dir)
    _remove_stale_siblings(run_dir)
    finished = is_finished_run(run_dir)
    if finished and not overwrite:
        raise SeqvisionError(f"{run_dir} holds a finished run; pass --overwrite to replace it (the old run stays "
                             "until the new one has finished), or choose another --out")
    in_place = not finished and not (overwrite and has_backup(run_dir))
    work = run_dir if in_place else run_dir.parent / f".{run_dir.name}.new-{os.getpid()}"
    existed = work.exists()
    # Nothing worth keeping: a new or empty folder, or what a kill before the first epoch left.
    disposable = (not existed or not any(work.iterdir()) or
                  ((work / INCOMPLETE).exists() and not (work / "model.keras").exists() and not has_backup(work)))
    try:
        with with_path(run_dir):
            resuming = prepare_run_dir(work, config)
            (work / INCOMPLETE).write_text(f"training started by process {os.getpid()}\n")
            yield work, resuming
            (work / INCOMPLETE).unlink()
            if not in_place and (work / "model.keras").exists():  # multi-worker: only the chief's has one
                exchange_folders(work, run_dir)
                log.info("replaced the earlier run in %s", run_dir)
            if not in_place:
                shutil.rmtree(work)
    except BaseException:
        if not in_place:
            shutil.rmtree(work, ignore_errors=True)
        elif disposable and not has_backup(work):  # nothing to resume: leave no stub
            for child in list(work.iterdir()) if work.exists() else []:
                if child.is_dir():
                    shutil.rmtree(child)
                else:
                    child.unlink()
            if not existed and work.exists() and not any(work.iterdir()):
                work.rmdir()
        raise
