"""The one exception type users catch: bad input, missing files, unusable settings."""
from __future__ import annotations


class SeqvisionError(ValueError):
    """A problem with the user's data, run directory or settings; the message names the path and
    the reason. A ``ValueError``, so code written against earlier versions keeps catching it."""
