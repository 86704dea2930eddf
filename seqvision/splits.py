"""Leak-free train / validation splits by recording group, for videos and skeletons alike.

The group rule: a clip named ``<prefix>_gNN_cNN`` (UCF101 and HMDB-style names such as
``v_ApplyEyeMakeup_g08_c01``, without extension) belongs to group ``<prefix>_gNN``; clips of one
group share actor and scene, so near duplicates never land on both sides. Any other name is its
own group. Datasets named otherwise pass a groups file (``--groups FILE``): a CSV with a header
``clip,group``, where ``clip`` is a clip name without extension (a frame folder's name, a
skeleton ``frame_dir``) or ``label/name`` where one name occurs under several labels.
"""
from __future__ import annotations

import csv
import logging
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from seqvision.errors import SeqvisionError

log = logging.getLogger(__name__)

GROUP_PATTERN = re.compile(r"^(?P<group>.+_g\d+)_c\d+$", re.IGNORECASE)


def group_of(name: str, own: str | None = None) -> str:
    """The recording group of a clip called ``name`` (no extension); ``own`` (default ``name``)
    when the name does not follow the ``<prefix>_gNN_cNN`` rule."""
    match = GROUP_PATTERN.match(name)
    return match.group("group") if match else (own if own is not None else name)


def read_groups_file(path: str | Path) -> dict[str, str]:
    """``{clip: group}`` from a CSV with columns ``clip,group``."""
    path = Path(path)
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise SeqvisionError(f"{path}: cannot read the groups file ({error})") from None
    if not rows or not {"clip", "group"} <= set(rows[0]):
        raise SeqvisionError(f"{path}: a groups file needs a header 'clip,group' and one row per clip")
    groups = {}
    for line, row in enumerate(rows, start=2):
        clip, group = (row.get("clip") or "").strip(), (row.get("group") or "").strip()
        if not clip or not group:
            raise SeqvisionError(f"{path}: line {line}: empty clip or group")
        if groups.setdefault(clip, group) != group:
            raise SeqvisionError(f"{path}: clip {clip!r} is given two groups ({groups[clip]!r}, {group!r})")
    return groups


def groups_from_file(names: Sequence[str], keys: Sequence[str], groups_file: str | Path) -> list[str]:
    """The group of each clip (``names[i]``, or ``keys[i]`` = ``label/name``) in ``groups_file``;
    a clip missing from the file is an error."""
    table = read_groups_file(groups_file)
    groups, missing = [], []
    for name, key in zip(names, keys):
        group = table.get(key, table.get(name))
        if group is None:
            missing.append(key)
        groups.append(group)
    if missing:
        raise SeqvisionError(f"{groups_file}: no group for {len(missing)} clip(s): {', '.join(missing[:5])}"
                             + (" …" if len(missing) > 5 else ""))
    return groups


def split_by_groups(labels: list, groups: list, val_fraction: float, seed: int = 0, items: list | None = None,
                    tries: int = 256):
    """``(train, val)`` of ``items`` (default: their indices), holding out whole ``groups``:
    close to ``val_fraction`` of them, every class on both sides where the groups allow.

    Whole groups are held out, so the share can only approach ``val_fraction``; among many
    seeded group orders, the one closest to it (with the most classes on both sides) is taken,
    and a warning says when the groups force a share more than 5 points off.
    """
    if not 0 < val_fraction <= 0.5:
        raise SeqvisionError(f"val_fraction must be in (0, 0.5], got {val_fraction}")
    items = list(range(len(labels))) if items is None else items
    names = sorted(set(groups))
    if len(names) < 2:
        raise SeqvisionError(f"cannot hold out a validation set by group: all {len(labels)} clips are in one "
                             "group; use --val-dir or a split file")
    classes = sorted(set(labels))
    counts = np.zeros((len(names), len(classes)), np.int64)  # clips per group and class
    group_row = {g: i for i, g in enumerate(names)}
    class_col = {c: i for i, c in enumerate(classes)}
    for label, group in zip(labels, groups):
        counts[group_row[group], class_col[label]] += 1
    target = val_fraction * len(labels)
    rng = np.random.default_rng(seed)
    best, best_score = None, None
    totals = counts.sum(axis=0)
    for _ in range(tries if len(names) < 1000 else 16):
        order = rng.permutation(len(names))
        cumulative = np.cumsum(counts[order], axis=0)  # [G, C]: clips held out by the first g+1 groups
        held = cumulative.sum(axis=1)
        crossing = int(np.searchsorted(held, target))
        for size in {max(1, crossing), min(len(names) - 1, crossing + 1)}:  # just below and at/above target
            emptied = int(np.sum(cumulative[size - 1] == totals))  # classes with no training clip left
            score = (emptied, int(np.sum(cumulative[size - 1] == 0)), abs(held[size - 1] - target))
            if best_score is None or score < best_score:
                best, best_score = order[:size], score
    if best_score[0]:
        single = [str(c) for c, n in zip(classes, (counts > 0).sum(axis=0)) if n == 1]
        raise SeqvisionError("cannot hold out a validation set by group and keep every class in training: "
                             f"{len(single)} class(es) have a single recording group ({', '.join(single[:5])}); "
                             "use --val-dir, a split file or a groups file")
    val_groups = {names[i] for i in best}
    val = [item for item, group in zip(items, groups) if group in val_groups]
    train = [item for item, group in zip(items, groups) if group not in val_groups]
    share = len(val) / len(labels)
    if abs(share - val_fraction) > 0.05:
        log.warning("holding out %d of %d recording groups: %.0f%% of the clips instead of the %.0f%% asked for, "
                    "as groups are never split", len(val_groups), len(names), 100 * share, 100 * val_fraction)
    return train, val


