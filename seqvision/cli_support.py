"""What every ``seqvision`` command shares: logging to stderr, errors without tracebacks, JSON on stdout.

Imported before anything that loads TensorFlow: it sets TensorFlow's environment first.
"""
from __future__ import annotations

import functools
import json
import logging
import math
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow's default CPU allocator returns large tensors to the OS after each op, so every
# training step page-faults its activations in again; a BFC pool reuses them (demo training on
# 2 cores: system time 42 s -> 7 s, epochs up to 2x faster). Read once, before TF starts.
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")

import click  # noqa: E402

log = logging.getLogger("seqvision")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of each message."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def setup_logging(verbose: bool) -> None:
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    if not any(isinstance(h, _StderrHandler) for h in log.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("seqvision: %(levelname)s: %(message)s"))
        log.addHandler(handler)
    for noisy in ("tensorflow", "absl", "h5py", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _user_errors():
    """Errors caused by input (bad paths, bad files, bad settings), shown without traceback."""
    from seqvision.video import VideoError

    # SkeletonDataError is a ValueError.
    return (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError, VideoError)


def _no_space_message(error: OSError) -> str:
    detail = error.strerror[error.strerror.find("("):] if "(" in (error.strerror or "") else ""
    return f"no space left on device writing {error.filename or 'the output'} {detail}".rstrip()


def friendly_errors(command):
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from seqvision.diskspace import is_no_space

        try:
            return command(*args, **kwargs)
        except _user_errors() as error:
            raise click.ClickException(str(error)) from None
        except OSError as error:
            if is_no_space(error):
                raise click.ClickException(_no_space_message(error)) from None
            raise
    return wrapper


def given_options(**options) -> dict:
    """The options the user set (click gives None for the others), so library defaults apply."""
    return {k: v for k, v in options.items() if v is not None}


def json_safe(obj):
    """``obj`` with NaN and infinities as None: JSON has no such numbers."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def echo_json(obj) -> None:
    click.echo(json.dumps(json_safe(obj), indent=2, allow_nan=False))
