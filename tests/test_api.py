"""The public Python API: lazy ``import seqvision``, ``load_run`` -> ``Run`` for video and skeleton runs."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import seqvision
from seqvision.cli import main
from seqvision.demo import make_demo_videos

REPO = Path(__file__).parents[1]


def test_import_loads_no_tensorflow_and_is_fast():
    code = ("import sys, time; t = time.perf_counter(); import seqvision; names = seqvision.__all__; "
            "print(time.perf_counter() - t, 'tensorflow' in sys.modules or 'keras' in sys.modules, names)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(REPO)}).stdout.split(" ", 2)
    assert float(out[0]) < 1.0 and out[1] == "False"
    assert "load_run" in out[2] and "SeqvisionError" in out[2]


def test_help_loads_no_tensorflow():
    code = ("import sys; from click.testing import CliRunner; from seqvision.cli import main; "
            "r = CliRunner().invoke(main, ['--help']); print(r.exit_code, 'tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(REPO)}).stdout.split()
    assert out == ["0", "False"]


def test_every_public_name_resolves():
    for name in seqvision.__all__:
        assert getattr(seqvision, name) is not None, name
    with pytest.raises(AttributeError):
        seqvision.no_such_thing  # noqa: B018
    assert issubclass(seqvision.VideoError, seqvision.SeqvisionError)
    assert issubclass(seqvision.SeqvisionError, ValueError)


@pytest.fixture(scope="module")
def video_run(tmp_path_factory):
    """``(videos folder, run)``: a 2-epoch cnn run on 2 demo classes (32 px, 6 frames)."""
    root = tmp_path_factory.mktemp("api")
    make_demo_videos(root / "videos", clips_per_class=4, groups_per_class=2, classes=("move_left", "move_right"))
    result = CliRunner().invoke(main, ["train", str(root / "videos"), "--out", str(root / "run"), "--backbone", "cnn",
                                       "--epochs", "2", "--img-size", "32", "--seq-len", "6", "--val-split", "0",
                                       "--units", "8",
                                       "--train-views", "1"])
    assert result.exit_code == 0, result.output
    return root / "videos", seqvision.load_run(root / "run")


def test_video_run_predicts_files_and_arrays_alike(video_run):
    from seqvision.datasets import load_clip

    videos, run = video_run
    assert run.kind == "video" and run.labels == ["move_left", "move_right"]
    assert run.config["seq_len"] == 6 and run.config["img_size"] == 32
    paths = sorted(videos.rglob("*.avi"))[:3]
    from_files = run.predict_proba(paths, views=1)  # the segment centres, as load_clip samples
    assert from_files.shape == (3, 2) and from_files.dtype == np.float32
    np.testing.assert_allclose(from_files.sum(axis=1), 1, atol=1e-5)
    clips = [load_clip(p, 6, 32) for p in paths]
    frames = np.stack([c[0] for c in clips])
    mask = np.stack([np.arange(6) < c[1] for c in clips])
    np.testing.assert_allclose(run.predict_proba(frames, mask), from_files, atol=1e-5)
    assert not np.allclose(run.predict_proba(paths), from_files, atol=1e-5)  # default: 4 shifted views
    with pytest.raises(seqvision.SeqvisionError, match="one sampling per row"):
        run.predict_proba(frames, mask, views=4)
    # Frames at another size are resized to the run's; a missing mask means every frame is real.
    from seqvision.run import resize_frames

    big = np.repeat(np.repeat(frames, 2, axis=2), 2, axis=3)  # 64 px; area resizing gives the 32 px back
    np.testing.assert_array_equal(resize_frames(big, 32), frames)
    np.testing.assert_allclose(run.predict_proba(big, mask), from_files, atol=1e-5)
    full = mask.all(axis=1)
    np.testing.assert_allclose(run.predict_proba(frames[full]), from_files[full], atol=1e-5)


def test_video_run_padded_input_predicts_as_unpadded(video_run):
    videos, run = video_run
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 4, 32, 32, 3), dtype=np.uint8)
    padded = np.concatenate([frames, rng.integers(0, 256, (2, 3, 32, 32, 3), dtype=np.uint8)], axis=1)
    mask = np.arange(7) < 4
    np.testing.assert_allclose(run.predict_proba(padded, np.tile(mask, (2, 1))), run.predict_proba(frames),
                               atol=1e-5)


def test_video_run_evaluate_matches_cli_json(video_run, tmp_path):
    videos, run = video_run
    metrics = run.evaluate(videos, save=False)
    assert metrics["n"] == 8 and "files" not in metrics
    result = CliRunner().invoke(main, ["evaluate", str(run.path), str(videos), "--json"])
    assert result.exit_code == 0, result.output
    cli = json.loads(result.stdout)
    assert cli["accuracy"] == metrics["accuracy"] and cli["confusion_matrix"] == metrics["confusion_matrix"]
    assert Path(cli["files"]["confusion_png"]).exists()


def test_video_run_reports_bad_input_by_path(video_run, tmp_path):
    videos, run = video_run
    bad = tmp_path / "notes.avi"
    bad.write_text("not a video\n")
    good = sorted(videos.rglob("*.avi"))[0]
    rows = run.predict([good, bad], top_k=1)
    assert "predictions" in rows[0] and str(bad) in rows[1]["error"]
    with pytest.raises(seqvision.SeqvisionError, match="notes.avi"):
        run.predict_proba([good, bad])
    with pytest.raises(seqvision.SeqvisionError, match=r"\[N, T, H, W, 3\]"):
        run.predict_proba(np.zeros((2, 6, 32, 32), np.uint8))
    with pytest.raises(seqvision.SeqvisionError, match="mask"):
        run.predict_proba(np.zeros((2, 6, 32, 32, 3), np.uint8), np.ones((2, 5), bool))
    with pytest.raises(seqvision.SeqvisionError, match="not a run directory"):
        seqvision.load_run(tmp_path)


@pytest.fixture(scope="module")
def skeleton_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("api_skeleton")
    ann = root / "synthetic.pkl"
    seqvision.make_synthetic_skeleton_dataset(ann, num_per_class=8, num_classes=4, seed=3)
    seqvision.train_skeleton(ann, root / "run", epochs=2, units=8, batch_size=8, seq_len=16)
    return ann, seqvision.load_run(root / "run")


def test_skeleton_run_predicts_pickles_annotations_and_arrays_alike(skeleton_run):
    import pickle

    ann, run = skeleton_run
    assert run.kind == "skeleton" and len(run.labels) == 4
    data = pickle.loads(ann.read_bytes())
    names = data["split"]["test1"][:4]
    by_name = {a["frame_dir"]: a for a in data["annotations"]}
    annotations = [by_name[n] for n in names]
    from_pickle = run.predict_proba(ann, split="test1")[:4]
    from_annotations = run.predict_proba(annotations)
    assert from_annotations.shape == (4, 4)
    np.testing.assert_allclose(from_annotations, from_pickle, atol=1e-5)
    # Keypoint arrays: pad to one length; the mask gives each true length.
    steps = max(a["keypoint"].shape[1] for a in annotations)
    persons = max(a["keypoint"].shape[0] for a in annotations)
    keypoints = np.zeros((4, persons, steps, 17, 3), np.float32)
    mask = np.zeros((4, steps), bool)
    for n, a in enumerate(annotations):
        m, t = a["keypoint"].shape[:2]
        keypoints[n, :m, :t, :, :2] = a["keypoint"]
        keypoints[n, :m, :t, :, 2] = a["keypoint_score"]
        mask[n, :t] = True
    from_arrays = run.predict_proba(keypoints, mask)
    # The pickle gives the image size, used only when a torso is missing: the arrays match closely.
    np.testing.assert_allclose(from_arrays, from_pickle, atol=1e-3)


def test_skeleton_run_evaluate_matches_cli_json(skeleton_run):
    ann, run = skeleton_run
    metrics = run.evaluate(ann, "test1", save=False)
    result = CliRunner().invoke(main, ["evaluate", str(run.path), str(ann), "--split", "test1", "--json"])
    assert result.exit_code == 0, result.output
    cli = json.loads(result.stdout)
    assert cli["accuracy"] == metrics["accuracy"] and cli["n"] == metrics["n"] > 0
    probs = run.predict_proba(ann, split="test1")
    assert np.mean(probs.argmax(1) == np.array([run.labels.index(r["true_label"])
                                                for r in run.predict(ann, split="test1")])) == metrics["accuracy"]
    with pytest.raises(seqvision.SeqvisionError, match="views"):
        run.evaluate(ann, "test1", views=4)


def test_skeleton_predict_proba_refuses_inputs_it_cannot_line_up(skeleton_run, tmp_path):
    import pickle

    ann, run = skeleton_run
    data = pickle.loads(ann.read_bytes())
    data["annotations"][0] = {**data["annotations"][0], "keypoint": data["annotations"][0]["keypoint"][..., :1]}
    broken = tmp_path / "broken.pkl"
    broken.write_bytes(pickle.dumps(data))
    with pytest.raises(seqvision.SeqvisionError, match="broken.pkl: 1 of the sequences are malformed"):
        run.predict_proba(broken)
    rows = run.predict(broken, top_k=1)  # predict names the usable sequences instead
    assert len(rows) == len(data["annotations"]) - 1
