"""``seqvision export``: a run as a SavedModel (and optionally TFLite) for deployment.

``OUT_DIR`` holds ``saved_model.pb`` + ``variables/`` (the SavedModel), ``labels.json``,
``signature.json`` (inputs, outputs, run settings) and, with ``tflite``, ``model.tflite``.
The ``serve`` signature (also ``serving_default``) of a video run takes

    frames  uint8 [B, T, S, S, 3]  RGB pixels 0..255 at the run's size S, T = the run's seq_len
    mask    bool  [B, T]           True = real frame; padding at the end is False

and of a skeleton run

    keypoints float32 [B, T, F]  F = persons x 17 joints x (x, y[, score]), normalised as
                                 ``seqvision.skeleton.skeleton_inputs`` makes them; T = the run's
                                 seq_len, or any length (None) for a run trained on full lengths
    mask      bool    [B, T]

and returns ``{"probabilities": float32 [B, C]}`` (C = ``len(labels.json)``). B is free. T is
fixed where the run samples a fixed number of steps: the model was trained on that many, and a
fixed shape lets TFLite plan its memory. ``model.tflite`` has the same signature at B = 1 (the
LSTM's loop becomes built-in TFLite ops only at a fixed batch size).
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from seqvision.errors import SeqvisionError
from seqvision.io import atomic_write_json

log = logging.getLogger(__name__)

SIGNATURE_KEY = "serve"
TFLITE_BATCH = 1
_SUMMARY_KEYS = ("kind", "backbone", "img_size", "seq_len", "head", "units", "num_layers", "bidirectional",
                 "motion", "feature_diff", "flow_stats", "moving_part", "brightness_norm", "camera_motion", "change_stream",
                 "clip_change", "alpha", "weights",
                 "hub_handle", "max_persons", "use_score", "score_threshold", "label_ids")
_MOBILENET_KEYS = ("alpha", "weights", "hub_handle")


class ExportError(SeqvisionError):
    """A run that cannot be exported in the asked-for form; the message says why."""


def serving_inputs(model, config: dict, batch: int | None = None) -> dict:
    """``{name: (shape, dtype name)}`` of the ``serve`` signature for a run's ``model`` and ``config``."""
    seq_len = config.get("seq_len")
    if config.get("kind") == "skeleton":
        return {"keypoints": ((batch, seq_len, int(model.input["keypoints"].shape[-1])), "float32"),
                "mask": ((batch, seq_len), "bool")}
    size = config["img_size"]
    return {"frames": ((batch, seq_len, size, size, 3), "uint8"), "mask": ((batch, seq_len), "bool")}


def build_export_archive(model, config: dict, batch: int | None = None):
    """A ``keras.export.ExportArchive`` with the ``serve`` endpoint described in the module docstring
    (``batch``: a fixed B, else any)."""
    import keras
    import tensorflow as tf

    inputs = serving_inputs(model, config, batch)
    specs = [tf.TensorSpec(shape, dtype, name=name) for name, (shape, dtype) in inputs.items()]
    data_name = specs[0].name

    def serve(data, mask):
        # The run's model takes pixels 0..255 as floats and scales them itself.
        probs = model({data_name: tf.cast(data, tf.float32), "mask": mask}, training=False)
        return {"probabilities": tf.cast(probs, tf.float32)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(SIGNATURE_KEY, serve, input_signature=specs)  # the first endpoint is serving_default
    return archive


def convert_to_tflite(model, config: dict, work_dir: Path) -> bytes:
    """The ``serve`` signature at batch size 1 (:data:`TFLITE_BATCH`) as a TFLite flatbuffer of built-in ops.

    The masked LSTM's loop lowers to built-in TFLite ops only with a fixed batch size; with a free
    one it needs TensorFlow ops (Flex), which full TensorFlow's own interpreter does not carry.
    ``work_dir`` holds the batch-1 SavedModel the converter reads, and is removed.
    """
    import tensorflow as tf

    if config.get("seq_len") is None:
        raise ExportError("--tflite needs a run with a fixed sequence length (this one was trained on full "
                          "lengths, seq_len 0); the SavedModel export works without --tflite")
    try:
        build_export_archive(model, config, TFLITE_BATCH).write_out(str(work_dir), verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(str(work_dir), signature_keys=[SIGNATURE_KEY])
        return converter.convert()
    except Exception as error:  # the converter raises ConverterError and assorted others
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise ExportError(f"TFLite conversion failed ({reason}); the SavedModel export works without "
                          "--tflite") from None
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def export_run(run_dir: str | Path, out_dir: str | Path, tflite: bool = False, overwrite: bool = False) -> Path:
    """Export the run in ``run_dir`` to ``out_dir`` (see the module docstring); returns ``out_dir``.

    Everything is written into a temporary sibling folder, then renamed to ``out_dir``: a failed
    export leaves nothing, and an existing ``out_dir`` is replaced only with ``overwrite``.
    """
    from seqvision.diskspace import with_path
    from seqvision.rundir import exchange_folders
    from seqvision.run import load_run

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise SeqvisionError(f"{out_dir} already exists; pass --overwrite to replace it, or choose another OUT_DIR")
    if out_dir.exists() and not out_dir.is_dir():
        raise SeqvisionError(f"{out_dir} is a file, not an export folder; choose another OUT_DIR")
    run = load_run(run_dir)
    model, config, labels = run.model, run.config, run.labels
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.new-", dir=out_dir.parent))
    try:
        with with_path(out_dir):
            build_export_archive(model, config).write_out(str(work), verbose=False)
            if tflite:
                (work / "model.tflite").write_bytes(convert_to_tflite(model, config, work / "tflite_source"))
            atomic_write_json(work / "labels.json", labels)
            atomic_write_json(work / "signature.json", _signature_summary(model, config, labels, tflite))
            os.chmod(work, 0o777 & ~_umask())
            if out_dir.exists():
                exchange_folders(work, out_dir)
            else:
                os.rename(work, out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the failed export, or the replaced one
    log.info("exported %s to %s%s", run_dir, out_dir, " (with model.tflite)" if tflite else "")
    return out_dir


def _signature_summary(model, config: dict, labels: list[str], tflite: bool) -> dict:
    cnn = config.get("backbone") == "cnn"
    return {
        "signature": SIGNATURE_KEY,
        "inputs": {name: {"dtype": dtype, "shape": list(shape)}
                   for name, (shape, dtype) in serving_inputs(model, config).items()},
        "outputs": {"probabilities": {"dtype": "float32", "shape": [None, len(labels)]}},
        "labels": labels,
        "run": {k: config[k] for k in _SUMMARY_KEYS if k in config and not (k in _MOBILENET_KEYS and cnn)},
        "files": ["saved_model.pb", "variables/", "labels.json", "signature.json",
                  *(["model.tflite"] if tflite else [])],
        **({"tflite": {"file": "model.tflite", "signature": SIGNATURE_KEY, "batch": TFLITE_BATCH}} if tflite else {}),
    }


def _umask() -> int:
    umask = os.umask(0o022)
    os.umask(umask)
    return umask
