"""Saving and loading ``.keras`` model files: atomic writes, damaged files named, run-relative backbones."""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

from seqvision.diskspace import with_path
from seqvision.errors import SeqvisionError


def load_model_file(path: str | Path):
    """``keras.models.load_model``; a damaged ``.keras`` file is a ValueError saying so (Keras says
    "File not found"). A SavedModel backbone copied into the run (``backbone/``) is found beside
    ``path``, wherever the run folder now is."""
    import keras

    import seqvision.models  # noqa: F401  (registers custom layers for deserialisation, as does the next)
    from seqvision.backbone_layers import backbone_files_root

    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, EOFError) as error:
        damaged = str(error)
    if damaged:
        raise SeqvisionError(f"{path}: damaged or truncated model file ({damaged}); restore it or train again")
    with backbone_files_root(Path(path).parent):
        try:
            return keras.models.load_model(path)
        except TypeError as error:  # Keras wraps a layer's error (e.g. its SavedModel is gone) in TypeErrors
            cause = str(error).strip().splitlines()[-1].removeprefix("Exception encountered: ")
            raise SeqvisionError(f"{path}: cannot load the model: {cause}") from None


def save_model_atomic(model, path: Path) -> None:
    """``model.save(path)`` through a temporary file: ``path`` is always a whole model."""
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    try:
        with with_path(path):
            model.save(tmp)
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
