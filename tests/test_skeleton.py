"""The skeleton path: PYSKL pickles -> preprocessing -> masked LSTM -> evaluate / predict."""
from __future__ import annotations

import io
import json
import logging
import pickle
import struct
import time

import numpy as np
import pytest

from seqvision.run import load_run
from seqvision.sampling import sample_uniform_batch
from seqvision.skeleton import SkeletonTrainConfig, split_train_val, train_skeleton
from seqvision.skeleton_data import (COCO_JOINTS, COCO_LEFT_RIGHT_PAIRS, NUM_JOINTS, SkeletonDataError,
                                     read_label_names, read_skeleton_pickle, resolve_classes, select_samples)
from seqvision.skeleton_inputs import (IMAGE_TORSO_FRACTION, Augmentation, augment_skeletons, flip_left_right,
                                       preprocess_skeletons, skeleton_inputs)
from seqvision.skeleton_synth import CLASS_NAMES, make_synthetic_skeleton_dataset, synthetic_annotation

# --------------------------------------------------------------------------- helpers


def annotation(frame_dir: str, label: int = 0, persons: int = 1, length: int = 40, seed: int = 0) -> dict:
    """A well-formed PYSKL annotation (synthetic person(s), ``persons`` of them)."""
    rng = np.random.default_rng(seed)
    ann = synthetic_annotation(rng, label, CLASS_NAMES[label % 6], frame_dir, length, length, 0.0,
                               two_person_rate=0.0)
    if persons > 1:
        extra = [ann["keypoint"][0] + 50.0 * (i + 1) for i in range(persons - 1)]
        ann["keypoint"] = np.concatenate([ann["keypoint"], np.stack(extra)])
        ann["keypoint_score"] = np.concatenate([ann["keypoint_score"]] * persons)
    return ann


def write_pickle(path, obj, protocol: int = 4):
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


class Py2Pickler(pickle._Pickler):
    """Writes what Python 2's ``cPickle.dump(obj, f, 2)`` writes: every ``str`` and ``bytes``
    as a Python 2 byte string (``SHORT_BINSTRING`` / ``BINSTRING``), which Python 3 can only
    read with ``encoding="latin1"``."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_string(self, obj):
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = save_py2_string
    dispatch[bytes] = save_py2_string


def py2_pickle_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    # NumPy 1.x (and so every Python 2 pickle) names its reconstructor numpy.core.multiarray.
    return buffer.getvalue().replace(b"numpy._core.", b"numpy.core.")


def arrays_from(annotations, **options):
    samples = select_samples(read_skeleton_pickle_obj(annotations), None)
    return preprocess_skeletons(samples, **options)


def read_skeleton_pickle_obj(annotations):
    from seqvision.skeleton_data import SkeletonPickle
    return SkeletonPickle("<memory>", {}, list(annotations))


# --------------------------------------------------------------------------- loading


def test_reads_splits_in_split_order(tmp_path):
    anns = [annotation(f"v{i}", label=i % 3, persons=1 + i % 2, length=30 + i, seed=i) for i in range(6)]
    path = write_pickle(tmp_path / "ann.pkl", {"split": {"train1": ["v4", "v0", "v2"], "test1": ["v1", "v3", "v5"]},
                                               "annotations": anns})
    data = read_skeleton_pickle(path)
    assert sorted(data.splits) == ["test1", "train1"]
    train = select_samples(data, "train1")
    assert train.frame_dirs == ["v4", "v0", "v2"]
    assert train.labels.tolist() == [1, 0, 2]
    assert [k.shape for k in train.keypoints] == [(1, 34, 17, 2), (1, 30, 17, 2), (1, 32, 17, 2)]
    assert [s.shape for s in train.scores] == [(1, 34, 17), (1, 30, 17), (1, 32, 17)]
    np.testing.assert_array_equal(train.keypoints[0], anns[4]["keypoint"])
    assert train.img_shapes.tolist()[0] == list(anns[4]["img_shape"])
    assert select_samples(data, "test1").frame_dirs == ["v1", "v3", "v5"]
    assert len(select_samples(data, None)) == 6


def test_unknown_split_names_the_available_ones(tmp_path):
    path = write_pickle(tmp_path / "ann.pkl", {"split": {"xsub_train": ["a"], "xsub_val": []},
                                               "annotations": [annotation("a")]})
    with pytest.raises(SkeletonDataError, match=r"no split 'train1'; available splits: xsub_train, xsub_val"):
        select_samples(read_skeleton_pickle(path), "train1")


def test_reads_python2_pickle(tmp_path):
    ann = annotation("v_Archery_g01_c01", label=2, persons=2, length=12)
    ann["keypoint"] = ann["keypoint"].astype(np.float16)  # as PYSKL's HRNet files store them
    data = py2_pickle_bytes({"split": {"train1": ["v_Archery_g01_c01"]}, "annotations": [ann]})
    with pytest.raises(UnicodeDecodeError):  # really a Python 2 pickle: the default encoding fails
        pickle.loads(data)
    path = tmp_path / "py2.pkl"
    path.write_bytes(data)
    samples = select_samples(read_skeleton_pickle(path), "train1")
    assert samples.frame_dirs == ["v_Archery_g01_c01"]
    assert samples.labels.tolist() == [2]
    np.testing.assert_array_equal(samples.keypoints[0], ann["keypoint"].astype(np.float32))
    np.testing.assert_array_equal(samples.scores[0], ann["keypoint_score"])


def test_class_subset_and_label_names(tmp_path):
    anns = [annotation(f"v{i}", label=i % 3, seed=i) for i in range(9)]
    path = write_pickle(tmp_path / "ann.pkl", {"split": {"train1": [f"v{i}" for i in range(9)]}, "annotations": anns})
    names_path = tmp_path / "names.txt"
    names_path.write_text("walk\nrun\njump\n\n")
    names = read_label_names(names_path)
    assert names == ["walk", "run", "jump"]
    ids = resolve_classes(["jump", "1"], names)
    assert ids == [2, 1]
    samples = select_samples(read_skeleton_pickle(path), "train1", ids)
    assert samples.frame_dirs == ["v1", "v2", "v4", "v5", "v7", "v8"]
    assert set(samples.labels.tolist()) == {1, 2}
    assert samples.excluded == 3
    with pytest.raises(ValueError, match="unknown class 'swim'"):
        resolve_classes(["swim"], names)
    names_path.write_text("walk\n\nrun\n")
    with pytest.raises(SkeletonDataError, match="line 2 is empty"):
        read_label_names(names_path)


def test_malformed_entries_are_skipped_with_path_and_reason(tmp_path, caplog):
    good = [annotation("good0", seed=0), annotation("good1", label=1, seed=1)]
    bad = {
        "joints25": {**annotation("joints25"), "keypoint": np.zeros((1, 40, 25, 2), np.float32),
                     "keypoint_score": np.ones((1, 40, 25), np.float32)},
        "emptyT": {**annotation("emptyT"), "keypoint": np.zeros((1, 0, 17, 2), np.float32),
                   "keypoint_score": np.zeros((1, 0, 17), np.float32)},
        "nan": annotation("nan"),
        "noscore": {k: v for k, v in annotation("noscore").items() if k != "keypoint_score"},
        "scoreshape": {**annotation("scoreshape"), "keypoint_score": np.ones((1, 39, 17), np.float32)},
        "badlabel": {**annotation("badlabel"), "label": -3},
    }
    bad["nan"]["keypoint"][0, 5, 3, 0] = np.nan
    anns = [good[0], *bad.values(), "not a dict", good[1]]
    listed = [a["frame_dir"] for a in anns if isinstance(a, dict)]
    path = write_pickle(tmp_path / "ann.pkl", {"split": {"train1": listed}, "annotations": anns})
    with caplog.at_level(logging.WARNING, logger="seqvision"):
        samples = select_samples(read_skeleton_pickle(path), None)
    assert samples.frame_dirs == ["good0", "good1"]
    assert samples.skipped == len(bad) + 1
    messages = [r.getMessage() for r in caplog.records]
    reasons = {"joints25": "keypoint shape (1, 40, 25, 2), expected [M, T, 17, 2]", "emptyT": "empty keypoint array",
               "nan": "NaN or infinite", "noscore": "missing keypoint_score",
               "scoreshape": "does not match keypoint", "badlabel": "label -3 is not a class index"}
    for name, reason in reasons.items():
        assert any(str(path) in m and name in m and reason in m for m in messages), (name, messages)
    assert any("not a dict but str" in m for m in messages)
    assert all("Traceback" not in m for m in messages)


def test_split_with_only_malformed_entries_is_refused(tmp_path):
    ann = {**annotation("a"), "keypoint": np.zeros((1, 10, 17, 3), np.float32)}
    path = write_pickle(tmp_path / "ann.pkl", {"split": {"train1": ["a"]}, "annotations": [ann]})
    with pytest.raises(SkeletonDataError, match=r"none of the 1 entries of split 'train1' is usable"):
        select_samples(read_skeleton_pickle(path), "train1")


@pytest.mark.parametrize("content, reason", [
    (b"", "empty file"),
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"0" * 64 + b"\nsize 123\n", "Git LFS pointer"),
    (b"frame_dir,label\nv1,0\n", "not a readable pickle"),
    (pickle.dumps({"split": {}, "annotations": [annotation("a")]})[:200], "not a readable pickle"),
    (pickle.dumps({"videos": ["a.mp4"], "labels": [0]}), "expected a dict with 'split' and 'annotations'"),
    (pickle.dumps({"split": {}, "annotations": []}), "expected a non-empty list"),
    (pickle.dumps({"split": {"train": ["a"]}, "annotations": [{"frame_dir": "a", "label": 0}]}),
     "no annotation has a 'keypoint' array"),
    (pickle.dumps({"split": ["a"], "annotations": [annotation("a")]}), "'split' is a list"),
])
def test_refuses_files_that_are_not_pyskl_annotations(tmp_path, content, reason):
    path = tmp_path / "ann.pkl"
    path.write_bytes(content)
    with pytest.raises(SkeletonDataError, match=reason) as error:
        read_skeleton_pickle(path)
    assert str(path) in str(error.value)


def test_never_runs_code_from_a_pickle(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pkl"
    path.write_bytes(b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    with pytest.raises(SkeletonDataError, match="stores os.system objects"):
        read_skeleton_pickle(path)
    assert not marker.exists()
    with pytest.raises(SkeletonDataError, match="no such file"):
        read_skeleton_pickle(tmp_path / "missing.pkl")


def test_real_pickles_are_read_or_refused_clearly(shared_data):
    kpfile = shared_data / "mmaction2" / "pickles" / "kinetics_kpfile_sample.pkl"
    fused = shared_data / "mmaction2" / "pickles" / "fuse_joint_scores.pkl"
    if not kpfile.exists() or not fused.exists():
        pytest.skip(f"mmaction2 sample pickles not found under {shared_data}")
    with pytest.raises(SkeletonDataError, match="no annotation has a 'keypoint' array.*kpfiles") as error:
        read_skeleton_pickle(kpfile)
    assert str(kpfile) in str(error.value)
    with pytest.raises(SkeletonDataError, match=r"stores torch\._utils\._rebuild_tensor_v2 objects") as error:
        read_skeleton_pickle(fused)
    assert str(fused) in str(error.value)
    # Whatever else is there (LFS pointers, empty files, real annotation files) reads or is refused by name.
    for path in sorted(shared_data.rglob("*.pkl")):
        try:
            data = read_skeleton_pickle(path)
        except SkeletonDataError as error:
            assert str(path) in str(error) and error.reason
        else:
            assert len(select_samples(data, None, require_labels=False)) > 0


# --------------------------------------------------------------------------- preprocessing


def test_persons_most_confident_first_and_missing_persons_zero():
    three = annotation("three", persons=3, length=20)
    three["keypoint_score"] = three["keypoint_score"] * np.array([0.3, 0.9, 0.6], np.float32)[:, None, None]
    one = annotation("one", length=25)
    arrays = arrays_from([three, one], max_persons=2, score_threshold=0.0)
    first = arrays.frames[: 20]
    # Person 1 of the file (score 0.9) comes first, then person 2 (0.6); person 0 (0.3) is dropped.
    np.testing.assert_allclose(first[:, 0, :, 2], three["keypoint_score"][1], rtol=1e-6)
    np.testing.assert_allclose(first[:, 1, :, 2], three["keypoint_score"][2], rtol=1e-6)
    assert np.allclose(first[:, 1, :, :2] - first[:, 0, :, :2], 50.0 / torso_px(three["keypoint"][1]), atol=1e-3)
    second = arrays.frames[20:]
    assert np.abs(second[:, 0]).sum() > 0
    assert not second[:, 1].any(), "an absent person must be all zeros (score 0 marks it missing)"
    assert arrays.lengths.tolist() == [20, 25]


def torso_px(keypoint):
    """Median neck-to-mid-hip distance of ``keypoint [T, 17, 2]`` (pixels)."""
    neck = keypoint[:, [5, 6]].mean(1)
    hip = keypoint[:, [11, 12]].mean(1)
    return np.median(np.linalg.norm(neck - hip, axis=-1))


def test_normalisation_is_in_body_units_and_invariant_to_image_scale_and_position():
    ann = annotation("a", persons=2, length=60, seed=3)
    rng = np.random.default_rng(0)
    missing = rng.random(ann["keypoint_score"].shape) < 0.1
    ann["keypoint"][missing] = 0
    ann["keypoint_score"][missing] = 0
    moved = dict(ann, img_shape=(1080, 1920), keypoint=ann["keypoint"] * 2.5 + np.array([300.0, -40.0], np.float32))
    moved["keypoint"][missing] = 0  # pose estimators leave missing joints at (0, 0)
    a, b = arrays_from([ann, moved], score_threshold=0.0).frames.reshape(2, 60, 2, 17, 3)
    np.testing.assert_allclose(a, b, atol=2e-4)
    assert (a[..., 2] == 0).sum() == missing.sum()
    assert not a[..., :2][a[..., 2] == 0].any(), "missing joints stay exactly zero"
    # Body units: the median mid-hip is the origin and the median torso length is 1.
    person = a[:, 0]
    both = (person[:, [5, 6, 11, 12], 2] > 0).all(1)
    hip = person[both][:, [11, 12], :2].mean(1)
    neck = person[both][:, [5, 6], :2].mean(1)
    assert np.abs(np.median(hip, axis=0)).max() < 0.05
    assert np.median(np.linalg.norm(neck - hip, axis=-1)) == pytest.approx(1.0, abs=0.05)


def test_per_person_normalisation_gives_each_person_its_own_body_units():
    ann = annotation("a", persons=2, length=40, seed=4)  # person 1 = person 0 moved by 50 px
    shared = arrays_from([ann], score_threshold=0.0).frames
    own = arrays_from([ann], score_threshold=0.0, per_person=True).frames
    np.testing.assert_array_equal(own[:, 0], shared[:, 0])  # the first person is normalised as before
    np.testing.assert_allclose(own[:, 1], own[:, 0], atol=1e-4)  # the second no longer carries the offset
    assert not np.allclose(shared[:, 1], shared[:, 0], atol=1e-2)
    bigger = dict(ann, keypoint=ann["keypoint"].copy())
    bigger["keypoint"][1] = bigger["keypoint"][1] * 1.7 + 200.0  # a nearer person elsewhere in the image
    np.testing.assert_allclose(arrays_from([bigger], score_threshold=0.0, per_person=True).frames, own, atol=2e-4)


def test_normalisation_survives_missing_hips_and_torso():
    ann = annotation("a", length=30)
    no_hips = dict(ann, keypoint=ann["keypoint"].copy(), keypoint_score=ann["keypoint_score"].copy())
    no_hips["keypoint"][:, :, [11, 12]] = 0
    no_hips["keypoint_score"][:, :, [11, 12]] = 0
    frames = arrays_from([no_hips]).frames[:, 0]
    assert np.isfinite(frames).all()
    neck = frames[:, [5, 6], :2].mean(1)
    assert np.abs(np.median(neck, axis=0)).max() < 0.05, "without hips the neck is the centre"
    # No torso at all: the scale falls back to a fraction of the image height.
    h = ann["img_shape"][0]
    frames = arrays_from([no_hips], score_threshold=0.0).frames[:, 0]
    span = ann["keypoint"][0, :, 0, 1] - ann["keypoint"][0, :, 16, 1]
    np.testing.assert_allclose(frames[:, 0, 1] - frames[:, 16, 1], span / (IMAGE_TORSO_FRACTION * h), rtol=1e-4)


def test_score_threshold_drops_unreliable_joints():
    ann = annotation("a", length=10)
    ann["keypoint_score"][:, :, 9] = 0.05
    frames = arrays_from([ann], score_threshold=0.1).frames
    assert not frames[:, 0, 9].any()
    assert (frames[:, 0, 10, 2] > 0.1).all()


def test_uniform_sampling_covers_the_whole_sequence():
    index, mask = sample_uniform_batch([150, 64, 30], 64)
    assert index.shape == mask.shape == (3, 64)
    assert mask[0].all() and mask[1].all() and mask.sum(1).tolist() == [64, 64, 30]
    assert index[0, 0] <= 2 and index[0, -1] >= 147, "the first and the last frames are both sampled"
    assert (np.diff(index[0]) > 0).all()
    np.testing.assert_array_equal(index[1], np.arange(64))
    np.testing.assert_array_equal(index[2, :30], np.arange(30))
    rng = np.random.default_rng(0)
    for _ in range(20):
        jittered, jmask = sample_uniform_batch([150, 1000, 30], 64, rng)
        segment = np.arange(64)
        assert (jittered[0] >= np.floor(segment * 150 / 64)).all()
        assert (jittered[0] < np.ceil((segment + 1) * 150 / 64)).all()
        assert jittered[1, -1] >= 984 and jmask.sum(1).tolist() == [64, 64, 30]
    full, full_mask = sample_uniform_batch([5, 3], None)
    assert full.shape == (2, 5) and full_mask.sum(1).tolist() == [5, 3]


def test_model_inputs_reach_the_last_frames_and_mask_the_true_length():
    anns = [annotation("long", length=150), annotation("short", length=30, seed=1)]
    arrays = arrays_from(anns, max_persons=2)
    marker = arrays.starts[0] + np.arange(145, 150)  # something happens only in the last 5 frames
    arrays.frames[marker, 0, 0, 0] = 99.0
    keypoints, mask = skeleton_inputs(arrays, None, seq_len=64)
    assert keypoints.shape == (2, 64, 2 * NUM_JOINTS * 3) and mask.dtype == bool
    assert (keypoints[0, :, 0] == 99.0).sum() >= 2, "uniform sampling must see the end of a long sequence"
    assert mask.sum(1).tolist() == [64, 30]
    assert not keypoints[1, 30:].any(), "padding is zeros"
    no_score, _ = skeleton_inputs(arrays, [1], seq_len=None, use_score=False)
    assert no_score.shape == (1, 30, 2 * NUM_JOINTS * 2)


def test_flip_swaps_left_right_joints_and_mirrors_x():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 2, NUM_JOINTS, 3)).astype(np.float32)
    flipped = flip_left_right(x)
    for left, right in COCO_LEFT_RIGHT_PAIRS:
        assert COCO_JOINTS[left].replace("left", "right") == COCO_JOINTS[right]
        np.testing.assert_array_equal(flipped[..., left, 0], -x[..., right, 0])
        np.testing.assert_array_equal(flipped[..., right, 1], x[..., left, 1])
        np.testing.assert_array_equal(flipped[..., left, 2], x[..., right, 2])
    np.testing.assert_array_equal(flipped[..., 0, :2], x[..., 0, :2] * np.array([-1, 1], np.float32))  # the nose
    np.testing.assert_array_equal(flip_left_right(flipped), x)
    # Inside augmentation (flip only): every sequence is either unchanged or exactly flipped.
    only_flip = Augmentation(flip=True, rotate_degrees=0, scale_range=0, shift=0, temporal_jitter=False)
    x = rng.normal(size=(16, 5, 2, NUM_JOINTS, 3)).astype(np.float32)
    x[..., 2] = 1.0
    out = augment_skeletons(x, np.random.default_rng(3), only_flip)
    kept = [np.array_equal(o, i) for o, i in zip(out, x)]
    mirrored = [np.array_equal(o, flip_left_right(i)) for o, i in zip(out, x)]
    assert all(k != m for k, m in zip(kept, mirrored)) and any(kept) and any(mirrored)


def test_augmentation_is_a_similarity_transform_that_keeps_missing_joints_zero():
    x = np.random.default_rng(0).normal(size=(4, 8, 2, NUM_JOINTS, 3)).astype(np.float32)
    x[..., 2] = 1.0
    x[:, :, 1, 3:6] = 0.0  # missing joints
    x[:, 6:] = 0.0  # padding
    out = augment_skeletons(x, np.random.default_rng(1), Augmentation(flip=False, rotate_degrees=30, scale_range=0.3,
                                                                       shift=0.5))
    assert not out[:, :, 1, 3:6].any() and not out[:, 6:].any()
    np.testing.assert_array_equal(out[..., 2], x[..., 2])
    for o, i in zip(out, x):  # distances between two joints change by one factor per sequence
        ratio = np.linalg.norm(o[:6, 0, 0, :2] - o[:6, 0, 9, :2], axis=-1) / np.linalg.norm(
            i[:6, 0, 0, :2] - i[:6, 0, 9, :2], axis=-1)
        assert 0.7 - 1e-4 <= ratio[0] <= 1.3 + 1e-4
        np.testing.assert_allclose(ratio, ratio[0], rtol=1e-4)


def test_validation_hold_out_keeps_ucf_groups_together():
    frame_dirs = [f"v_Class{c}_g{g:02d}_c{i:02d}" for c in range(3) for g in range(1, 9) for i in range(1, 4)]
    labels = np.array([int(d[7]) for d in frame_dirs])
    train, val = split_train_val(labels, frame_dirs, 0.25, seed=0)
    assert len(set(train) & set(val)) == 0 and len(train) + len(val) == len(frame_dirs)
    group = lambda rows: {frame_dirs[r].rsplit("_", 1)[0] for r in rows}  # noqa: E731
    assert not group(train) & group(val)
    assert set(labels[val]) == {0, 1, 2}


# --------------------------------------------------------------------------- model


@pytest.mark.parametrize("bidirectional", [True, False], ids=["bidirectional", "forward"])
@pytest.mark.parametrize("feature_diff", [False, True], ids=["positions", "with_velocity"])
def test_padded_and_masked_sequence_predicts_as_the_unpadded_one(feature_diff, bidirectional):
    import keras

    from seqvision.models import build_sequence_classifier
    from seqvision.skeleton_inputs import feature_dim, make_skeleton_dataset

    keras.utils.set_random_seed(0)
    arrays = arrays_from([annotation("a", length=23), annotation("b", length=64, seed=1),
                          annotation("c", length=41, seed=2)])
    model = build_sequence_classifier(feature_dim(2), 4, "keypoints", units=16, feature_diff=feature_diff,
                                      bidirectional=bidirectional, name="skeleton_classifier")
    singles = [dict(zip(("keypoints", "mask"), skeleton_inputs(arrays, [i], seq_len=None))) for i in range(3)]
    alone = np.concatenate([model.predict_on_batch(single) for single in singles])
    keypoints, mask = skeleton_inputs(arrays, None, seq_len=None)  # padded to 64
    assert keypoints.shape[1] == 64 and mask.sum(1).tolist() == [23, 64, 41]
    np.testing.assert_allclose(model.predict_on_batch({"keypoints": keypoints, "mask": mask}), alone, atol=1e-5)
    padded = np.concatenate([keypoints, np.full((3, 20, keypoints.shape[2]), 7.0, np.float32)], axis=1)
    extended = np.concatenate([mask, np.zeros((3, 20), bool)], axis=1)
    np.testing.assert_allclose(model.predict_on_batch({"keypoints": padded, "mask": extended}), alone, atol=1e-5,
                               err_msg="whatever the padding holds, masked steps must not count")
    batches = list(make_skeleton_dataset(arrays, batch_size=2, seq_len=64).as_numpy_iterator())
    assert [b[0]["keypoints"].shape for b in batches] == [(2, 64, feature_dim(2)), (1, 64, feature_dim(2))]
    np.testing.assert_allclose(np.concatenate([model.predict_on_batch(b[0]) for b in batches]), alone, atol=1e-5)


def test_training_batches_are_augmented_and_reshuffled_reproducibly():
    from seqvision.skeleton_inputs import make_skeleton_dataset

    arrays = arrays_from([annotation(f"v{i}", label=i % 2, length=80 + i, seed=i) for i in range(6)])
    arrays.labels = np.arange(6)
    dataset = make_skeleton_dataset(arrays, batch_size=6, training=True, seed=5, seq_len=32)
    first, second = (next(iter(dataset.as_numpy_iterator())) for _ in range(2))
    assert sorted(first[1].tolist()) == list(range(6))
    assert first[1].tolist() != second[1].tolist() or not np.array_equal(first[0]["keypoints"], second[0]["keypoints"])
    again = next(make_skeleton_dataset(arrays, batch_size=6, training=True, seed=5, seq_len=32).as_numpy_iterator())
    np.testing.assert_array_equal(again[0]["keypoints"], first[0]["keypoints"])
    plain, _ = skeleton_inputs(arrays, first[1], seq_len=32)
    assert not np.allclose(first[0]["keypoints"], plain)


def test_default_never_flips_and_flip_pairs_mirror_the_label():
    from seqvision.skeleton_inputs import make_skeleton_dataset

    one = annotation("v", label=0, length=40, seed=3)
    arrays = arrays_from([{**one, "frame_dir": f"v{i}"} for i in range(64)])  # 64 copies of one sequence
    arrays.labels = np.zeros(64, np.int64)
    plain, _ = skeleton_inputs(arrays, [0], seq_len=16)
    mirror = flip_left_right(plain.reshape(1, 16, -1, NUM_JOINTS, 3)).reshape(plain.shape)
    assert SkeletonTrainConfig(label_ids=[0, 1, 2]).augmentation().flip is False  # left arm stays left arm
    only_flip = dict(rotate_degrees=0, scale_range=0, shift=0, temporal_jitter=False)
    augmentation = SkeletonTrainConfig(label_ids=[0, 1, 2], flip_pairs=["0:1"], **only_flip).augmentation(
        ["0", "1", "2"])
    assert augmentation.flip and augmentation.mirror_classes == (1, 0, 2)
    dataset = make_skeleton_dataset(arrays, batch_size=64, training=True, seq_len=16, augmentation=augmentation)
    (inputs, labels), = list(dataset.as_numpy_iterator())
    mirrored = np.array([np.allclose(k, mirror[0]) for k in inputs["keypoints"]])
    assert all(np.allclose(k, plain[0]) for k in inputs["keypoints"][~mirrored])
    assert 0.2 < mirrored.mean() < 0.8
    np.testing.assert_array_equal(labels == 1, mirrored)  # exactly the mirrored sequences changed class
    with pytest.raises(ValueError, match="not one of the trained classes"):
        SkeletonTrainConfig(label_ids=[0, 1], flip_pairs=["0:7"]).augmentation(["0", "1"])


@pytest.mark.slow
def test_default_settings_keep_side_specific_classes_apart(tmp_path):
    """Issue #9: a set whose classes differ only by side (raise LEFT vs RIGHT arm, ...) is not
    harmed by the defaults; the old default flip turned one class into its mirror class."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "bench" / "generators" / "skeleton_sides.py"
    spec = importlib.util.spec_from_file_location("skeleton_sides", path)
    sides = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sides)
    ann = tmp_path / "sides.pkl"
    sides.make_dataset(ann, seed=2, sequences_per_class=30)
    names = list(sides.CLASS_NAMES)
    keep = [names.index(n) for n in ("raise_left_arm", "raise_right_arm", "kick_left_leg", "kick_right_leg")]
    train_skeleton(ann, tmp_path / "run", classes=keep, epochs=25, seq_len=32)
    metrics = load_run(tmp_path / "run").evaluate(ann, "test1")
    print(f"side-specific classes, default settings: test accuracy {metrics['accuracy']:.3f} (n={metrics['n']})")
    assert metrics["accuracy"] >= 0.9


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A run trained for two epochs on a small 4-class synthetic set."""
    root = tmp_path_factory.mktemp("skeleton")
    ann, names_path = root / "synthetic.pkl", root / "names.txt"
    make_synthetic_skeleton_dataset(ann, num_per_class=12, num_classes=4, seed=1, label_names_path=names_path)
    run_dir = root / "run"
    best = train_skeleton(ann, run_dir, epochs=2, units=16, batch_size=8, label_names=str(names_path), seq_len=32)
    return ann, run_dir, best


def test_train_writes_a_complete_run_directory(small_run):
    ann, run_dir, best = small_run
    for name in ("model.keras", "config.json", "labels.json", "best.json", "history.csv", "training_curves.png"):
        assert (run_dir / name).exists(), name
    config = json.loads((run_dir / "config.json").read_text())
    assert config["kind"] == "skeleton" and config["seq_len"] == 32 and config["label_ids"] == [0, 1, 2, 3]
    assert {k for k in SkeletonTrainConfig.__dataclass_fields__} <= set(config)
    assert json.loads((run_dir / "labels.json").read_text()) == list(CLASS_NAMES[:4])
    assert best["num_train"] + best["num_val"] == 4 * 8 and best["num_val"] >= 4
    assert np.isfinite(best["loss"]) and 1 <= best["epoch"] <= 2


def test_evaluate_and_predict_a_run(small_run):
    ann, run_dir, _ = small_run
    metrics = load_run(run_dir).evaluate(ann, "test1")
    assert metrics["n"] == 4 * 4 and metrics["labels"] == list(CLASS_NAMES[:4])
    assert {"accuracy", "mean_class_accuracy", "n", "labels", "per_class", "confusion_matrix"} <= set(metrics)
    assert np.array(metrics["confusion_matrix"]).sum() == 16
    assert metrics["accuracy"] == pytest.approx(np.trace(metrics["confusion_matrix"]) / 16)
    saved = json.loads((run_dir / "eval_metrics.json").read_text())
    assert saved["accuracy"] == metrics["accuracy"] and saved["split"] == "test1"
    assert (run_dir / "eval_confusion_matrix.png").exists()
    rows = load_run(run_dir).predict(ann, 2, split="test1")
    assert len(rows) == 16
    assert all(len(r["predictions"]) == 2 and r["true_label"] in CLASS_NAMES[:4] for r in rows)
    assert all(r["predictions"][0]["probability"] >= r["predictions"][1]["probability"] for r in rows)
    hits = np.mean([r["predictions"][0]["label"] == r["true_label"] for r in rows])
    assert hits == pytest.approx(metrics["accuracy"])
    assert len(load_run(run_dir).predict(ann, 1, split=None)) == 4 * 12


def test_a_run_saved_before_per_person_normalisation_keeps_its_shared_centre():
    from seqvision.skeleton import load_skeleton_arrays

    data = read_skeleton_pickle_obj([annotation("a", persons=2, length=40, seed=4)])  # person 1 stands elsewhere
    old_config = {"max_persons": 2, "score_threshold": 0.1, "label_ids": [0]}  # saved without "per_person"
    old, _ = load_skeleton_arrays(data, None, old_config)
    shared, _ = load_skeleton_arrays(data, None, {**old_config, "per_person": False})
    own, _ = load_skeleton_arrays(data, None, {**old_config, "per_person": True})
    np.testing.assert_array_equal(old.frames, shared.frames)
    assert not np.allclose(own.frames[:, 1], shared.frames[:, 1], atol=1e-2)
    assert SkeletonTrainConfig().per_person is True


def test_evaluate_leaves_out_classes_the_run_does_not_know(small_run, tmp_path):
    ann, run_dir, _ = small_run
    data = pickle.loads(ann.read_bytes())
    data["annotations"].append({**data["annotations"][0], "frame_dir": "other", "label": 9})
    data["split"]["test1"].append("other")
    bigger = write_pickle(tmp_path / "bigger.pkl", data)
    metrics = load_run(run_dir).evaluate(bigger, "test1")
    assert metrics["n"] == 16 and metrics["excluded"] == 1
    rows = load_run(run_dir).predict(bigger, 1, split="test1")
    assert len(rows) == 17 and "true_label" not in rows[-1]


@pytest.mark.slow
def test_default_settings_separate_time_reversed_pairs(tmp_path):
    """Issue #4: DEFAULT settings reach >= 0.95 test accuracy on the synthetic pairs set
    (30-150 frames, movement mostly in the last frames, 1-2 persons, ~5% joints missing)."""
    ann = tmp_path / "pairs.pkl"
    make_synthetic_skeleton_dataset(ann, num_per_class=80, seed=1)
    samples = select_samples(read_skeleton_pickle(ann), "test1")
    lengths = [k.shape[1] for k in samples.keypoints]
    assert min(lengths) >= 30 and max(lengths) <= 150 and max(lengths) > 140
    assert {k.shape[0] for k in samples.keypoints} == {1, 2}
    present = np.concatenate([s[s.any(-1)] for s in samples.scores])  # [persons x frames present, 17]
    assert 0.04 < np.mean(present == 0) < 0.07, "about 5% of the joints of persons present are missing"
    start = time.perf_counter()
    train_skeleton(ann, tmp_path / "run")
    metrics = load_run(tmp_path / "run").evaluate(ann, "test1")
    print(f"test accuracy {metrics['accuracy']:.3f} on {metrics['n']} sequences, "
          f"{time.perf_counter() - start:.0f} s to train and evaluate")
    assert metrics["n"] == 6 * 24
    assert metrics["accuracy"] >= 0.95


def test_cli_evaluate_and_predict_a_skeleton_run(small_run):
    from click.testing import CliRunner

    from seqvision.cli import main

    ann, run_dir, _ = small_run
    result = CliRunner().invoke(main, ["evaluate", str(run_dir), str(ann), "--split", "test1", "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["n"] == 16 and metrics["split"] == "test1" and len(metrics["confusion_matrix"]) == 4
    result = CliRunner().invoke(main, ["predict", str(run_dir), str(ann), "--split", "test1", "--top-k", "1",
                                       "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 16 and rows[0]["path"] == f"{CLASS_NAMES[0]}_00000"
    result = CliRunner().invoke(main, ["evaluate", str(run_dir), str(ann), "--split", "nope"])
    assert result.exit_code != 0 and "no split 'nope'; available splits: test1, train1" in result.output
    assert "Traceback" not in result.output


def test_cli_train_skeleton_passes_only_the_options_given(tmp_path):
    from click.testing import CliRunner

    from seqvision.cli import main

    ann = tmp_path / "synthetic.pkl"
    make_synthetic_skeleton_dataset(ann, num_per_class=6, num_classes=4, seed=2)
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(main, ["train-skeleton", str(ann), "--out", str(run_dir), "--train-split", "all",
                                       "--classes", "0,stand_up", "--label-names", str(_names_file(tmp_path)),
                                       "--seq-len", "0", "--no-flip", "--epochs", "1", "--units", "8",
                                       "--one-centre", "--keep", "best", "--weight-decay", "0.001",
                                       "--feature-diff"])
    assert result.exit_code == 0, result.output
    config = json.loads((run_dir / "config.json").read_text())
    assert config["train_split"] is None and config["seq_len"] is None and config["flip"] is False
    assert config["per_person"] is False and config["keep"] == "best" and config["weight_decay"] == 0.001
    assert config["feature_diff"] is True
    assert config["label_ids"] == [0, 3] and config["units"] == 8 and config["epochs"] == 1
    defaults = SkeletonTrainConfig()
    assert config["max_persons"] == defaults.max_persons and config["lr"] == defaults.lr
    assert json.loads((run_dir / "labels.json").read_text()) == [CLASS_NAMES[0], CLASS_NAMES[3]]


def _names_file(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("\n".join(CLASS_NAMES[:4]) + "\n")
    return path
