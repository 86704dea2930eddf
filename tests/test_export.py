"""``seqvision export``: the exported SavedModel (and TFLite file) predicts what the run predicts."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from seqvision.cli import main
from seqvision.demo import make_demo_videos

TOLERANCE = 1e-4
# TensorFlow's own tf.lite.Interpreter warns that it moves to the ai_edge_litert package.
pytestmark = pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")


@pytest.fixture(scope="module")
def video_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    make_demo_videos(root, clips_per_class=3, groups_per_class=3, classes=("move_left", "move_right"))
    return root


def _train_video_run(video_tree, run_dir, *options):
    result = CliRunner().invoke(main, ["train", str(video_tree), "--out", str(run_dir), "--backbone", "cnn",
                                       "--seq-len", "6", "--img-size", "32", "--epochs", "1", "--batch-size", "4",
                                       "--units", "8",
                                       "--val-split", "0", *options])
    assert result.exit_code == 0, result.output
    return run_dir


def _export(run_dir, out_dir, *options):
    result = CliRunner().invoke(main, ["export", str(run_dir), str(out_dir), *options])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out_dir)
    return out_dir


def _frames_with_padding(rng, batch=3, seq_len=6, size=32):
    """Random clips; clip 1 has two padded frames at the end (zero pixels, mask False)."""
    frames = rng.integers(0, 256, (batch, seq_len, size, size, 3), dtype=np.uint8)
    mask = np.ones((batch, seq_len), bool)
    frames[1, 4:], mask[1, 4:] = 0, False
    return frames, mask


def _serve(out_dir, **inputs):
    import tensorflow as tf

    serve = tf.saved_model.load(str(out_dir)).signatures["serve"]
    return serve(**{k: tf.constant(v) for k, v in inputs.items()})["probabilities"].numpy()


def _tflite_probabilities(path, **inputs):
    """One sample at a time: the TFLite signature has batch size 1."""
    import tensorflow as tf

    runner = tf.lite.Interpreter(model_path=str(path)).get_signature_runner("serve")
    count = len(next(iter(inputs.values())))
    return np.concatenate([runner(**{k: v[i:i + 1] for k, v in inputs.items()})["probabilities"]
                           for i in range(count)])


def _check_files(out_dir, input_names, labels):
    assert json.loads((out_dir / "labels.json").read_text()) == labels
    signature = json.loads((out_dir / "signature.json").read_text())
    assert list(signature["inputs"]) == input_names
    assert signature["outputs"]["probabilities"] == {"dtype": "float32", "shape": [None, len(labels)]}
    assert not list(out_dir.parent.glob(f".{out_dir.name}.*")), "temporary folder left behind"
    return signature


def test_cnn_run_exports_savedmodel_and_tflite_equal_to_the_run(video_tree, tmp_path):
    import tensorflow as tf

    from seqvision.run import load_run

    run = _train_video_run(video_tree, tmp_path / "run")
    out = _export(run, tmp_path / "export", "--tflite")
    signature = _check_files(out, ["frames", "mask"], ["move_left", "move_right"])
    assert signature["inputs"]["frames"] == {"dtype": "uint8", "shape": [None, 6, 32, 32, 3]}
    assert signature["inputs"]["mask"] == {"dtype": "bool", "shape": [None, 6]}
    assert signature["run"]["backbone"] == "cnn" and "weights" not in signature["run"]

    loaded = tf.saved_model.load(str(out))
    assert {"serve", "serving_default"} <= set(loaded.signatures)
    assert loaded.signatures["serving_default"].structured_input_signature[1]["frames"].dtype == tf.uint8

    frames, mask = _frames_with_padding(np.random.default_rng(0))
    expected = load_run(run).predict_proba(frames, mask)
    exported = _serve(out, frames=frames, mask=mask)
    assert exported.dtype == np.float32 and exported.shape == (3, 2)
    np.testing.assert_allclose(exported, expected, atol=TOLERANCE, rtol=0)
    np.testing.assert_allclose(_tflite_probabilities(out / "model.tflite", frames=frames, mask=mask), exported,
                               atol=TOLERANCE, rtol=0)


def test_two_stream_run_chooses_its_stream_weights_and_exports_equal_to_the_run(video_tree, tmp_path):
    import json

    from seqvision.run import load_run

    run = _train_video_run(video_tree, tmp_path / "run", "--motion", "two_stream", "--val-split", "0.34")
    best = json.loads((run / "best.json").read_text())
    chosen = min(best["stream_choices"], key=lambda choice: choice["val_loss"])
    assert best["stream_weights"] == chosen["stream_weights"]
    model = load_run(run).model
    np.testing.assert_array_equal(model.get_layer("stream_fusion").stream_weights.numpy(), best["stream_weights"])
    out = _export(run, tmp_path / "export")
    assert _check_files(out, ["frames", "mask"], ["move_left", "move_right"])["run"]["motion"] == "two_stream"
    frames, mask = _frames_with_padding(np.random.default_rng(2))
    np.testing.assert_allclose(_serve(out, frames=frames, mask=mask), load_run(run).predict_proba(frames, mask),
                               atol=TOLERANCE, rtol=0)


def test_mobilenet_run_exports_equal_to_the_run(video_tree, tmp_path):
    from seqvision.run import load_run

    run = _train_video_run(video_tree, tmp_path / "run", "--backbone", "mobilenet", "--weights", "none",
                           "--alpha", "0.35", "--cache-dir", str(tmp_path / "cache"),
                           "--moving-part", "--camera-motion", "affine", "--clip-change")
    out = _export(run, tmp_path / "export")
    signature = _check_files(out, ["frames", "mask"], ["move_left", "move_right"])
    assert signature["run"]["backbone"] == "mobilenet" and signature["run"]["alpha"] == 0.35
    assert signature["run"]["camera_motion"] == "affine"  # the robust fit (a batched solve) exports too
    assert signature["run"]["flow_stats"] is True  # motion descriptors inside the exported model too
    assert signature["run"]["clip_change"] is True  # the clip-change image and its frozen projection too
    assert not (out / "model.tflite").exists()

    frames, mask = _frames_with_padding(np.random.default_rng(1))
    np.testing.assert_allclose(_serve(out, frames=frames, mask=mask), load_run(run).predict_proba(frames, mask),
                               atol=TOLERANCE, rtol=0)


def test_skeleton_run_exports_equal_to_the_run(tmp_path):
    from seqvision.run import load_run
    from seqvision.skeleton import load_skeleton_arrays, train_skeleton
    from seqvision.skeleton_data import read_skeleton_pickle
    from seqvision.skeleton_inputs import skeleton_inputs
    from seqvision.skeleton_synth import make_synthetic_skeleton_dataset

    ann = tmp_path / "synthetic.pkl"
    make_synthetic_skeleton_dataset(ann, num_per_class=4, num_classes=2, seed=3, min_frames=12, max_frames=30)
    train_skeleton(ann, tmp_path / "run", epochs=1, units=8, batch_size=8, seq_len=24, val_fraction=0.0)
    out = _export(tmp_path / "run", tmp_path / "export", "--tflite")
    run = load_run(tmp_path / "run")
    model, config = run.model, run.config
    signature = _check_files(out, ["keypoints", "mask"], run.labels)
    dim = model.input["keypoints"].shape[-1]
    assert signature["inputs"]["keypoints"] == {"dtype": "float32", "shape": [None, 24, dim]}
    assert signature["run"]["kind"] == "skeleton"

    arrays, _ = load_skeleton_arrays(read_skeleton_pickle(ann), "test1", config)
    keypoints, mask = skeleton_inputs(arrays, None, config["seq_len"], config["use_score"])
    assert (~mask[:, -1]).any(), "no padded sequence: lower min_frames"
    exported = _serve(out, keypoints=keypoints, mask=mask)
    np.testing.assert_allclose(exported, run.predict_proba(ann, split="test1"), atol=TOLERANCE, rtol=0)
    np.testing.assert_allclose(_tflite_probabilities(out / "model.tflite", keypoints=keypoints, mask=mask),
                               exported, atol=TOLERANCE, rtol=0)


def test_export_refuses_an_existing_folder_and_replaces_it_with_overwrite(tmp_path):
    from seqvision.export import export_run
    from seqvision.models import build_sequence_classifier
    from seqvision.io import atomic_write_json

    run = tmp_path / "run"
    run.mkdir()
    build_sequence_classifier(4, 2, "keypoints", 5, units=4).save(run / "model.keras")
    atomic_write_json(run / "config.json", {"kind": "skeleton", "seq_len": 5})
    atomic_write_json(run / "labels.json", ["a", "b"])
    out = tmp_path / "export"
    out.mkdir()
    (out / "old.txt").write_text("earlier export\n")

    result = CliRunner().invoke(main, ["export", str(run), str(out)])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "already exists" in result.output and str(out) in result.output
    assert (out / "old.txt").exists()

    export_run(run, out, overwrite=True)
    assert not (out / "old.txt").exists() and (out / "saved_model.pb").exists()
    assert not list(tmp_path.glob(".export.*"))

    result = CliRunner().invoke(main, ["export", str(tmp_path), str(tmp_path / "other")])
    assert result.exit_code != 0 and "not a run directory" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "other").exists()


def test_full_length_skeleton_run_exports_any_length_and_refuses_tflite_clearly(tmp_path):
    from seqvision.run import load_run
    from seqvision.skeleton import train_skeleton
    from seqvision.skeleton_synth import make_synthetic_skeleton_dataset

    ann = tmp_path / "synthetic.pkl"
    make_synthetic_skeleton_dataset(ann, num_per_class=3, num_classes=2, seed=5, min_frames=12, max_frames=20)
    train_skeleton(ann, tmp_path / "run", epochs=1, units=8, batch_size=8, seq_len=None, val_fraction=0.0)
    result = CliRunner().invoke(main, ["export", str(tmp_path / "run"), str(tmp_path / "export"), "--tflite"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "--tflite needs a run with a fixed sequence length" in result.output
    assert not (tmp_path / "export").exists() and not list(tmp_path.glob(".export.*"))

    out = _export(tmp_path / "run", tmp_path / "export")
    model = load_run(tmp_path / "run").model
    dim = model.input["keypoints"].shape[-1]
    assert json.loads((out / "signature.json").read_text())["inputs"]["keypoints"]["shape"] == [None, None, dim]
    rng = np.random.default_rng(2)
    for steps in (9, 17):
        keypoints = rng.normal(size=(2, steps, dim)).astype(np.float32)
        mask = np.arange(steps)[None, :] < np.array([steps, steps - 4])[:, None]  # the second one padded
        keypoints[~mask] = 0
        expected = model.predict_on_batch({"keypoints": keypoints, "mask": mask})
        np.testing.assert_allclose(_serve(out, keypoints=keypoints, mask=mask), expected, atol=TOLERANCE, rtol=0)
