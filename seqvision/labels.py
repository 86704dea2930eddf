"""Class-label helpers shared by the video and skeleton paths."""
from __future__ import annotations

from typing import Sequence

from seqvision.errors import SeqvisionError


def mirror_classes(pairs: Sequence[str], labels: list[str], label_ids: Sequence[int] = ()) -> tuple[int, ...]:
    """Class index of each class's mirror image from ``["left_a:right_a", …]``.

    Each side of a pair is a class name (``labels``) or, when ``label_ids`` are given, a
    label id. Classes in no pair are their own mirror image. Raises ValueError for an
    unknown class or a class in two pairs.
    """
    def index(name: str) -> int:
        name = name.strip()
        if name in labels:
            return labels.index(name)
        if name.isdigit() and int(name) in list(label_ids):
            return list(label_ids).index(int(name))
        raise SeqvisionError(f"flip pair class {name!r} is not one of the trained classes ({', '.join(labels)})")

    mirror = list(range(len(labels)))
    seen: set[int] = set()
    for pair in pairs:
        left, sep, right = str(pair).partition(":")
        if not sep:
            raise SeqvisionError(f"flip pair {pair!r} must be LEFT:RIGHT")
        a, b = index(left), index(right)
        if a == b or {a, b} & seen:
            raise SeqvisionError(f"flip pair {pair!r}: a class can mirror only one other class")
        seen |= {a, b}
        mirror[a], mirror[b] = b, a
    return tuple(mirror)
