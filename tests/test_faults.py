"""Issue 10, "nothing lost under faults": failed runs, a full disk, concurrent runs, damaged files."""
import csv
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from seqvision.cli import main

REPO = Path(__file__).parents[1]
IMG = 16
TRAIN_ARGS = ["--backbone", "cnn", "--epochs", "1", "--img-size", str(IMG), "--seq-len", "4", "--val-split", "0",
              "--units", "8", "--batch-size", "4"]


def _frame_clips(root: Path, labels=("left", "right"), clips=2, frames=4) -> Path:
    rng = np.random.default_rng(0)
    for label in labels:
        for c in range(clips):
            clip = root / label / f"v_{label}_g{c + 1:02d}_c01"
            clip.mkdir(parents=True)
            for i in range(frames):
                cv2.imwrite(str(clip / f"{i:06d}.png"), rng.integers(0, 256, (IMG, IMG, 3), dtype=np.uint8))
    return root


def _text_videos(root: Path, labels=("a", "b")) -> Path:
    """Folders whose only "clips" are text files named .avi."""
    for label in labels:
        (root / label).mkdir(parents=True)
        (root / label / "notes.avi").write_text("not a video\n")
    return root


def _env():
    return {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}


def _cli(*args, timeout=300, **kwargs):
    return subprocess.run([sys.executable, "-m", "seqvision.cli", *map(str, args)], env=_env(), capture_output=True,
                          text=True, timeout=timeout, **kwargs)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """``(frames folder, run folder)``: a finished one-epoch cnn run."""
    root = tmp_path_factory.mktemp("finished")
    data = _frame_clips(root / "frames")
    result = CliRunner().invoke(main, ["train", str(data), "--out", str(root / "run"), *TRAIN_ARGS])
    assert result.exit_code == 0, result.output
    return data, root / "run"


@pytest.fixture
def run_copy(finished_run, tmp_path):
    shutil.copytree(finished_run[1], tmp_path / "run")
    return finished_run[0], tmp_path / "run"


# --------------------------------------------------------------------------- 1. failed runs


def test_failed_train_into_a_finished_run_leaves_it_intact(run_copy, tmp_path):
    data, run = run_copy
    before = _files(run)
    bad = _text_videos(tmp_path / "bad")
    result = CliRunner().invoke(main, ["train", str(bad), "--out", str(run), *TRAIN_ARGS])
    assert result.exit_code == 1 and "--overwrite" in result.output, result.output
    assert _files(run) == before
    result = CliRunner().invoke(main, ["train", str(bad), "--out", str(run), "--overwrite", *TRAIN_ARGS])
    assert result.exit_code == 1 and "unreadable" in result.output, result.output
    assert _files(run) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no half-written sibling
    result = CliRunner().invoke(main, ["predict", str(run), str(next(data.glob("left/*")))])
    assert result.exit_code == 0, result.output


def test_overwrite_replaces_a_finished_run_once_the_new_one_is_done(run_copy, tmp_path):
    _, run = run_copy
    other = _frame_clips(tmp_path / "other", labels=("up", "down", "still"))
    result = CliRunner().invoke(main, ["train", str(other), "--out", str(run), "--overwrite", *TRAIN_ARGS])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "labels.json").read_text()) == ["down", "still", "up"]
    assert json.loads((run / "config.json").read_text())["data_dir"] == str(other)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    result = CliRunner().invoke(main, ["predict", str(run), str(next(other.glob("up/*"))), "--json"])
    assert result.exit_code == 0 and len(json.loads(result.stdout)[0]["predictions"]) == 3, result.output


def test_failed_first_run_leaves_no_stub(tmp_path):
    bad = _text_videos(tmp_path / "bad")
    result = CliRunner().invoke(main, ["train", str(bad), "--out", str(tmp_path / "run"), *TRAIN_ARGS])
    assert result.exit_code == 1, result.output
    assert not (tmp_path / "run").exists()
    (tmp_path / "run").mkdir()  # what a kill before the first epoch leaves
    (tmp_path / "run" / "config.json").write_text("{}")
    (tmp_path / "run" / "INCOMPLETE").write_text("")
    result = CliRunner().invoke(main, ["train", str(bad), "--out", str(tmp_path / "run"), *TRAIN_ARGS])
    assert result.exit_code == 1 and list((tmp_path / "run").iterdir()) == [], result.output


def _skeleton_data(tmp_path):
    from seqvision.skeleton_synth import make_synthetic_skeleton_dataset

    ann = tmp_path / "skeleton.pkl"
    make_synthetic_skeleton_dataset(ann, num_per_class=6, num_classes=2, min_frames=10, max_frames=20, seed=0)
    return ann


SKELETON = dict(epochs=1, units=8, batch_size=8, seq_len=8, val_fraction=0)


def test_skeleton_run_is_refused_without_overwrite_and_swapped_with_it(tmp_path):
    import seqvision.fitting as fitting
    from seqvision.skeleton import train_skeleton

    ann = _skeleton_data(tmp_path)
    run = tmp_path / "run"
    train_skeleton(ann, run, **SKELETON)
    before = _files(run)
    with pytest.raises(ValueError, match="--overwrite"):
        train_skeleton(ann, run, **{**SKELETON, "units": 4})
    assert _files(run) == before
    fit = fitting.fit_classifier

    def killed(*args, **kwargs):
        raise RuntimeError("killed in training")

    fitting.fit_classifier = killed
    try:
        with pytest.raises(RuntimeError, match="killed in training"):
            train_skeleton(ann, run, overwrite=True, **{**SKELETON, "units": 4})
    finally:
        fitting.fit_classifier = fit
    assert _files(run) == before
    train_skeleton(ann, run, overwrite=True, **{**SKELETON, "units": 4})
    assert json.loads((run / "config.json").read_text())["units"] == 4
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# --------------------------------------------------------------------------- 2. full disk


def _enospc(path="x"):
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def test_extract_frames_stops_on_a_full_disk(tmp_path, monkeypatch):
    import seqvision.frames as frames
    from seqvision.demo import make_demo_videos

    videos = make_demo_videos(tmp_path / "videos", clips_per_class=2, groups_per_class=1,
                              classes=("move_left", "move_right"))
    write, calls = frames._write_image, []

    def full_after_two_videos(path, *args):
        calls.append(path)
        if len(calls) > 8:
            raise _enospc(path)
        return write(path, *args)

    monkeypatch.setattr(frames, "_write_image", full_after_two_videos)
    out = tmp_path / "frames"
    result = CliRunner().invoke(main, ["extract-frames", str(videos), str(out), "--seq-len", "4", "--jobs", "1"])
    assert result.exit_code == 1 and "no space left on device writing" in result.output, result.output
    assert "Traceback" not in result.output
    assert not list(out.rglob(".*partial*"))


def test_embed_checks_free_space_first(tmp_path, monkeypatch):
    videos = _frame_clips(tmp_path / "frames")
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=1000))
    result = CliRunner().invoke(main, ["embed", str(videos), "--weights", "none", "--img-size", "32",
                                       "--seq-len", "4", "--out", str(tmp_path / "cache")])
    assert result.exit_code == 1 and "no space left on device writing" in result.output, result.output
    assert "features.npy" in result.output
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_dir() and "partial" in p.name]


def test_embed_out_of_space_while_writing_cleans_up(tmp_path, monkeypatch):
    import seqvision.embeddings as embeddings

    videos = _frame_clips(tmp_path / "frames")
    save = np.save

    def full(path, *args, **kwargs):
        if str(path).endswith("lengths.npy"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return save(path, *args, **kwargs)

    monkeypatch.setattr(embeddings.np, "save", full)
    result = CliRunner().invoke(main, ["embed", str(videos), "--weights", "none", "--img-size", "32",
                                       "--seq-len", "4", "--out", str(tmp_path / "cache")])
    assert result.exit_code == 1 and "no space left on device writing" in result.output, result.output
    assert not [p for p in (tmp_path / "cache").rglob("*") if "partial" in p.name]


def test_train_out_of_space_is_a_clear_error_and_removes_the_temporary_model(tmp_path, monkeypatch):
    import keras

    data = _frame_clips(tmp_path / "frames")
    save = keras.Model.save

    def full(self, path, *args, **kwargs):
        Path(path).write_bytes(b"PK" + b"\0" * 1000)  # what a write stopped by ENOSPC leaves
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(keras.Model, "save", full)
    run = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", str(data), "--out", str(run), *TRAIN_ARGS])
    monkeypatch.setattr(keras.Model, "save", save)
    assert result.exit_code == 1 and "no space left on device writing" in result.output, result.output
    assert not list(tmp_path.rglob(".*tmp.keras"))


def test_evaluate_out_of_space_is_a_clear_error(run_copy, monkeypatch):
    import seqvision.evaluation as evaluation

    data, run = run_copy

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(evaluation, "plot_confusion_matrix", full)
    result = CliRunner().invoke(main, ["evaluate", str(run), str(data)])
    assert result.exit_code == 1 and "no space left on device writing" in result.output, result.output


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 2 MiB tmpfs mounted under tmp_path (root only), unmounted afterwards."""
    mount = tmp_path / "small"
    mount.mkdir()
    if shutil.which("mount") is None or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                                                       capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root and mount permission)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _fill(mount: Path, leave: int) -> None:
    with open(mount / "filler", "wb") as f:
        f.write(b"\0" * max(0, shutil.disk_usage(mount).free - leave))


@pytest.mark.slow
def test_real_full_disk(small_tmpfs, tmp_path):
    from seqvision.demo import make_demo_videos

    videos = make_demo_videos(tmp_path / "videos", clips_per_class=3, groups_per_class=1,
                              classes=("move_left", "move_right"))
    _fill(small_tmpfs, 200_000)
    result = _cli("extract-frames", videos, small_tmpfs / "frames", "--seq-len", "16", "--jobs", "2")
    assert result.returncode == 1 and "no space left on device writing" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not list(small_tmpfs.rglob(".*partial*"))
    frames = _frame_clips(tmp_path / "frames")
    (small_tmpfs / "filler").unlink()
    _fill(small_tmpfs, 100_000)
    result = _cli("embed", frames, "--weights", "none", "--img-size", "32", "--seq-len", "16",
                  "--out", small_tmpfs / "cache")
    assert result.returncode == 1 and "no space left on device writing" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not list(small_tmpfs.rglob("*partial*"))
    result = _cli("train", frames, "--out", small_tmpfs / "run", *TRAIN_ARGS)
    assert result.returncode == 1 and "no space left on device writing" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not list(small_tmpfs.rglob("*.keras"))


# --------------------------------------------------------------------------- 3. concurrent extract-frames


def test_concurrent_extract_frames_into_one_folder(tmp_path, monkeypatch):
    import seqvision.frames as frames
    from seqvision.demo import make_demo_videos

    videos = make_demo_videos(tmp_path / "videos", clips_per_class=2, groups_per_class=1,
                              classes=("move_left", "move_right"))
    out = tmp_path / "frames"
    read, other = frames.read_video_frames, []
    log_path = tmp_path / "other.log"

    def read_while_another_run_starts(*args, **kwargs):
        if not other:  # a second extract-frames into the same folder starts while this one decodes
            with open(log_path, "w") as log:
                other.append(subprocess.Popen(
                    [sys.executable, "-m", "seqvision.cli", "extract-frames", str(videos), str(out),
                     "--seq-len", "4", "--jobs", "1"], env=_env(), stderr=log, stdout=log))
            deadline = time.monotonic() + 120
            while other[0].poll() is None and "waiting" not in log_path.read_text() and time.monotonic() < deadline:
                time.sleep(0.1)
        return read(*args, **kwargs)

    monkeypatch.setattr(frames, "read_video_frames", read_while_another_run_starts)
    results = frames.extract_frames(videos, out, seq_len=4, jobs=1, progress=False)
    assert other[0].wait(120) == 0, log_path.read_text()
    assert [r.status for r in results if r.status == "failed"] == [], [r.reason for r in results]
    rows = list(csv.DictReader(open(out / "manifest.csv")))
    assert len(rows) == 4 and all(r["status"] in ("ok", "skipped") for r in rows), rows


# --------------------------------------------------------------------------- 4. damaged backup


def test_resume_from_a_truncated_backup(tmp_path):
    from test_training import StopAfterEpoch, _toy_datasets

    from seqvision.models import build_sequence_classifier
    from seqvision.fitting import fit_classifier, make_strategy, prepare_run_dir

    train_ds, val_ds = _toy_datasets()
    strategy = make_strategy()

    def build():
        return build_sequence_classifier(1, 2, units=8, dropout=0.0)

    def interrupted_run(run):
        prepare_run_dir(run, {"kind": "toy"})
        with pytest.raises(KeyboardInterrupt):
            fit_classifier(build, train_ds, val_ds, run, 4, 1e-2, 10, strategy, extra_callbacks=[StopAfterEpoch(1)])
        weights = run / "backup" / "latest.weights.h5"
        weights.write_bytes(weights.read_bytes()[:1000])  # killed while writing the second epoch's state

    run = tmp_path / "run"
    interrupted_run(run)
    assert prepare_run_dir(run, {"kind": "toy"}) is True
    _, best = fit_classifier(build, train_ds, val_ds, run, 4, 1e-2, 10, strategy, resuming=True)
    rows = list(csv.DictReader(open(run / "history.csv")))
    assert [int(r["epoch"]) for r in rows][-2:] == [2, 3] and not (run / "backup").exists()

    run = tmp_path / "both_damaged"
    interrupted_run(run)
    for damaged in (run / "backup").glob("*.bkp"):
        damaged.write_bytes(b"")
    with pytest.raises(ValueError, match="delete .*backup"):
        fit_classifier(build, train_ds, val_ds, run, 4, 1e-2, 10, strategy, resuming=True)


# --------------------------------------------------------------------------- 5. float16 cache


@pytest.mark.parametrize("weights", ["none", "imagenet_file"])
def test_cached_embeddings_equal_the_backbone_output(tmp_path, weights):
    from seqvision.backbones import build_backbone
    from seqvision.datasets import find_clips, load_clip
    from seqvision.embeddings import get_embedding_cache

    if weights == "imagenet_file":
        weights = str(Path(__file__).resolve().parents[2] / "shared" / "weights" / "mobilenet_v2_imagenet_1.0_224_no_top.h5")
        if not Path(weights).exists():
            pytest.skip(f"ImageNet weights not found at {weights}")
    clips = find_clips(_frame_clips(tmp_path / "frames", clips=1))
    backbone = build_backbone("mobilenet", 32, weights=weights)
    cache = get_embedding_cache(clips, backbone, {"name": "mobilenet", "weights": weights}, 4, 32, tmp_path / "c")
    for clip, row in zip(clips, cache.rows_for(clips)):
        frames, length = load_clip(clip.path, 4, 32)
        direct = np.asarray(backbone.predict_on_batch(frames[:length]), np.float32)
        cached = np.asarray(cache.features[row, 0, :length], np.float32)
        assert np.abs(cached).max() > 0
        np.testing.assert_allclose(cached, direct, rtol=2e-3, atol=1e-3 * np.abs(direct).max())
    assert cache.manifest["dtype"] == str(cache.features.dtype)


def test_fits_float16():
    from seqvision.embeddings import fits_float16

    assert not fits_float16(np.full(8, 1e-11, np.float32))  # random-init MobileNetV2: all zeros in float16
    assert not fits_float16(np.array([1.0, 7e4], np.float32))  # overflow
    assert fits_float16(np.array([6.0, 4e-5, 1e-9, 0.0, np.nan], np.float32))  # tiny beside large: kept closely
    assert fits_float16(np.zeros(3, np.float32))


# --------------------------------------------------------------------------- 6. keypoints inf in float32


def _annotations(n=4, bad=None):
    from test_skeleton import annotation

    anns = [annotation(f"s{i}", label=i % 2, length=12, seed=i) for i in range(n)]
    if bad:
        bad(anns[0])
    return anns


def test_keypoints_infinite_in_float32_are_skipped():
    from test_skeleton import read_skeleton_pickle_obj

    from seqvision.skeleton_data import select_samples

    def huge(ann):
        ann["keypoint"] = ann["keypoint"].astype(np.float64)
        ann["keypoint"][0, 0, 0, 0] = 1e300

    samples = select_samples(read_skeleton_pickle_obj(_annotations(bad=huge)), None)
    assert samples.skipped == 1 and len(samples) == 3
    assert all(np.isfinite(k).all() for k in samples.keypoints)


def test_training_without_a_finite_loss_says_so(tmp_path):
    import tensorflow as tf

    from seqvision.models import build_sequence_classifier
    from seqvision.fitting import fit_classifier, make_strategy

    x = np.full((8, 5, 1), np.nan, np.float32)
    ds = tf.data.Dataset.from_tensor_slices(({"features": x, "mask": np.ones((8, 5), bool)},
                                             np.zeros(8, np.int32))).batch(4)
    with pytest.raises(ValueError, match="no epoch"):
        fit_classifier(lambda: build_sequence_classifier(1, 2, units=4), ds, ds, tmp_path, 2, 1e-2, 5,
                       make_strategy())


def test_json_output_never_holds_nan(tmp_path, monkeypatch):
    import seqvision.run

    class FakeRun:
        def predict(self, *args, **kwargs):
            return [{"path": "x", "predictions": [{"label": "a", "probability": float("nan")}]}]

    monkeypatch.setattr(seqvision.run, "load_run", lambda run_dir: FakeRun())
    result = CliRunner().invoke(main, ["predict", str(tmp_path), "x", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout, parse_constant=lambda name: pytest.fail(f"{name} in JSON output"))
    assert rows[0]["predictions"][0]["probability"] is None


# --------------------------------------------------------------------------- 7. smaller faults


def test_huge_label_is_skipped_not_a_traceback():
    from test_skeleton import read_skeleton_pickle_obj

    from seqvision.skeleton_data import select_samples

    samples = select_samples(read_skeleton_pickle_obj(_annotations(bad=lambda a: a.update(label=10 ** 30))), None)
    assert samples.skipped == 1 and len(samples) == 3


def test_classes_without_data_are_refused(tmp_path):
    from seqvision.skeleton import train_skeleton

    ann = _skeleton_data(tmp_path)
    with pytest.raises(ValueError, match="42"):
        train_skeleton(ann, tmp_path / "run", classes=[0, 42], **SKELETON)
    assert not (tmp_path / "run").exists()


def test_truncated_model_is_reported_as_damaged(run_copy):
    from seqvision.run import load_run

    _, run = run_copy
    model = run / "model.keras"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    with pytest.raises(ValueError, match="damaged or truncated") as error:
        load_run(run)
    assert str(model) in str(error.value)


@pytest.mark.parametrize("name", ["config.json", "labels.json"])
def test_corrupt_run_json_names_the_file(run_copy, name):
    data, run = run_copy
    (run / name).write_text('{"kind": "vid')
    result = CliRunner().invoke(main, ["predict", str(run), str(next(data.glob("left/*")))])
    assert result.exit_code == 1 and str(run / name) in result.output, result.output


def test_corrupt_cache_manifest_is_rebuilt_and_reported_once(tmp_path, caplog):
    import logging

    from seqvision.backbones import build_backbone
    from seqvision.datasets import find_clips
    from seqvision.embeddings import get_embedding_cache

    clips = find_clips(_frame_clips(tmp_path / "frames", clips=1))
    backbone = build_backbone("mobilenet", 32, weights="none")
    identity = {"name": "mobilenet", "weights": "none"}
    cache = get_embedding_cache(clips, backbone, identity, 4, 32, tmp_path / "c")
    (cache.path / "manifest.json").write_text('{"version": ')
    with caplog.at_level(logging.WARNING, logger="seqvision"):
        rebuilt = get_embedding_cache(clips, backbone, identity, 4, 32, tmp_path / "c")
    assert rebuilt.path == cache.path and rebuilt.manifest["clips"]
    messages = [r.getMessage() for r in caplog.records if "unreadable embedding cache" in r.getMessage()]
    assert len(messages) == 1 and str(cache.path / "manifest.json") in messages[0], messages
    np.load(cache.path / "features.npy", mmap_mode="r")  # rebuilt with its own data


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_extract_frames_workers_exit_when_the_parent_is_killed(tmp_path):
    from seqvision.demo import make_demo_videos

    videos = make_demo_videos(tmp_path / "videos", clips_per_class=6, groups_per_class=2,
                              classes=("move_left", "move_right"))
    parent = subprocess.Popen([sys.executable, "-m", "seqvision.cli", "extract-frames", str(videos),
                               str(tmp_path / "frames"), "--jobs", "2"], env=_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(workers := _children(parent.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(workers) >= 2
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 15
    while any(map(_alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [pid for pid in workers if _alive(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, "worker processes outlived the killed extract-frames"


def test_one_frame_video_is_refused_by_train_as_by_extract_frames(make_video, tmp_path):
    from seqvision.datasets import load_clip
    from seqvision.frames import extract_frames
    from seqvision.video import VideoError

    path = make_video("videos/a/one.avi", 1)
    make_video("videos/a/two.avi", 2)
    results = extract_frames(tmp_path / "videos", tmp_path / "frames", seq_len=4, jobs=1, progress=False)
    reason = next(r.reason for r in results if r.clip == "one")
    with pytest.raises(VideoError) as error:
        load_clip(path, 4, 16)
    assert error.value.reason == reason
    assert load_clip(tmp_path / "videos/a/two.avi", 4, 16)[1] == 2


def test_opencv_warnings_are_silenced(tmp_path):
    video = tmp_path / "notes.avi"
    video.write_text("not a video\n")
    code = ("import cv2, seqvision.video\n"
            f"assert not cv2.VideoCapture({str(video)!r}, cv2.CAP_FFMPEG).isOpened()\n")
    result = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "WARN" not in result.stderr, result.stderr
