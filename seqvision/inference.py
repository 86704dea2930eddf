"""Load a saved video run's model; batched prediction over views (used by ``seqvision.run``)."""
from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import keras
import numpy as np

from seqvision.io import read_json

log = logging.getLogger(__name__)


def load_run(run_dir: str | Path) -> tuple[keras.Model, dict, list[str]]:
    """``(model, config, labels)`` of a run directory written by ``train``."""
    run_dir = Path(run_dir)
    missing = [n for n in ("config.json", "labels.json", "model.keras") if not (run_dir / n).exists()]
    if missing:
        raise ValueError(f"{run_dir}: not a finished run directory (missing {', '.join(missing)})")
    if any(any(b.iterdir()) for b in run_dir.glob("backup*") if b.is_dir()):
        log.warning("%s: training was interrupted; using the best model saved so far", run_dir)
    model = load_model_file(run_dir / "model.keras")
    return model, read_json(run_dir / "config.json"), read_json(run_dir / "labels.json")


def load_model_file(path: Path) -> keras.Model:
    """``keras.models.load_model``; a damaged ``.keras`` file is a ValueError saying so (Keras says
    "File not found"). A SavedModel backbone copied into the run (``backbone/``) is found beside
    ``path``, wherever the run folder now is."""
    import seqvision.models  # noqa: F401  (registers custom layers for deserialisation, as does the next)
    from seqvision.backbone_layers import backbone_files_root

    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, EOFError) as error:
        damaged = str(error)
    if damaged:
        raise ValueError(f"{path}: damaged or truncated model file ({damaged}); restore it or train again")
    with backbone_files_root(Path(path).parent):
        try:
            return keras.models.load_model(path)
        except TypeError as error:  # Keras wraps a layer's error (e.g. its SavedModel is gone) in TypeErrors
            cause = str(error).strip().splitlines()[-1].removeprefix("Exception encountered: ")
            raise ValueError(f"{path}: cannot load the model: {cause}") from None


def predict_views(model: keras.Model, inputs: dict) -> np.ndarray:
    """Probabilities ``[B, K]`` for ``frames [B, T, S, S, 3]``, or the mean over views for
    ``frames [B, V, T, S, S, 3]`` with ``mask [B, V, T]``."""
    frames, mask = np.asarray(inputs["frames"]), np.asarray(inputs["mask"])
    if frames.ndim == 5:
        return model.predict_on_batch({"frames": frames, "mask": mask})
    batch, views = frames.shape[:2]
    probs = model.predict_on_batch({"frames": frames.reshape(batch * views, *frames.shape[2:]),
                                    "mask": mask.reshape(batch * views, -1)})
    return np.asarray(probs).reshape(batch, views, -1).mean(axis=1)
