import logging

import cv2
import numpy as np
import pytest
import tensorflow as tf

from seqvision.datasets import (Clip, augment_clip, clips_in_list, find_clips, load_clip, make_clip_dataset,
                                split_train_val)


def _write_clip(folder, num_frames, size=16, value=None):
    folder.mkdir(parents=True)
    for i in range(num_frames):
        fill = i * 20 if value is None else value
        cv2.imwrite(str(folder / f"{i:06d}.png"), np.full((size, size, 3), fill, np.uint8))


def test_mask_comes_from_true_length_not_pixels(tmp_path):
    _write_clip(tmp_path / "a" / "black", 3, value=0)  # all-black frames are still real frames
    _write_clip(tmp_path / "b" / "long", 12)
    clips = find_clips(tmp_path)
    ds = make_clip_dataset(clips, ["a", "b"], seq_len=8, img_size=16, batch_size=2)
    (inputs, labels), = list(ds)
    assert inputs["frames"].shape == (2, 8, 16, 16, 3) and inputs["frames"].dtype == tf.uint8
    assert inputs["mask"].dtype == tf.bool
    np.testing.assert_array_equal(inputs["mask"][0], [1, 1, 1, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(inputs["mask"][1], [1] * 8)
    np.testing.assert_array_equal(labels, [0, 1])
    # 12 frames sampled to 8 uniformly, in temporal order, covering the end of the clip.
    values = inputs["frames"].numpy()[1, :, 0, 0, 0]
    assert np.all(np.diff(values.astype(int)) > 0) and values[-1] >= 200


def test_frame_order_is_numeric_not_lexicographic(tmp_path):
    clip = tmp_path / "x" / "clip"
    clip.mkdir(parents=True)
    for i in range(12):  # unpadded names: lexicographic order would put 10, 11 after 1
        cv2.imwrite(str(clip / f"{i}.png"), np.full((8, 8, 3), i * 10, np.uint8))
    frames, length = load_clip(clip, 12, 8)
    assert length == 12
    np.testing.assert_array_equal(frames[:, 0, 0, 0], np.arange(12) * 10)


def test_group_aware_stratified_split_never_leaks_groups():
    clips = [Clip(__import__("pathlib").Path(f"/d/{label}/v_{label}_g{g:02d}_c{c:02d}.avi"), label)
             for label in ("A", "B", "C") for g in range(1, 11) for c in range(1, 4)]
    train, val = split_train_val(clips, 0.2, seed=0)
    assert {c.group for c in train}.isdisjoint({c.group for c in val})
    assert {c.label for c in val} == {"A", "B", "C"}
    assert 0.1 < len(val) / len(clips) < 0.35
    assert split_train_val(clips, 0.2, seed=0) == (train, val)
    assert 0.25 < len(split_train_val(clips, 0.4)[1]) / len(clips) <= 0.4  # 3 folds of 10 groups, not 2
    with pytest.raises(ValueError, match="0.5"):
        split_train_val(clips, 0.6)


def test_clips_without_groups_split_individually_and_small_sets_still_split_by_group():
    from pathlib import Path

    clips = [Clip(Path(f"/d/{l}/clip{i}.mp4"), l) for l in "AB" for i in range(10)]
    train, val = split_train_val(clips, 0.2)
    assert len(val) == 4 and not set(train) & set(val)
    # Fewer groups than 1/fraction: hold out one group of each class, still leak-free.
    few = [Clip(Path(f"/d/{l}/v_{l}_g{g:02d}_c01.avi"), l) for l in "AB" for g in (1, 2, 3)]
    train, val = split_train_val(few, 0.2)
    assert len({c.group for c in val}) == 2 and {c.group for c in train}.isdisjoint({c.group for c in val})
    assert {c.label for c in val} == {c.label for c in train} == {"A", "B"}
    one_group = [Clip(Path(f"/d/A/v_A_g01_c{c:02d}.avi"), "A") for c in (1, 2)]
    with pytest.raises(ValueError, match="one group"):
        split_train_val(one_group, 0.2)
    # A class recorded in one group only stays in training; when every class is, nothing can be held out.
    single = few + [Clip(Path(f"/d/C/v_C_g01_c{c:02d}.avi"), "C") for c in (1, 2)]
    train, val = split_train_val(single, 0.2)
    assert {c.label for c in train} == {"A", "B", "C"} and "C" not in {c.label for c in val}
    singles = [Clip(Path(f"/d/{l}/v_{l}_g01_c{c:02d}.avi"), l) for l in "AB" for c in (1, 2)]
    with pytest.raises(ValueError, match=r"2 class\(es\) have a single recording group \(A, B\)"):
        split_train_val(singles, 0.2)


def test_ucf_split_lists(tmp_path):
    from pathlib import Path

    clips = [Clip(Path(f"/d/{l}/v_{l}_g0{g}_c01.avi"), l) for l in ("Run", "Jump") for g in (1, 2)]
    listing = tmp_path / "trainlist01.txt"
    listing.write_text("Run/v_Run_g01_c01.avi 1\nJump/v_Jump_g02_c01.avi 2\nJump/v_Jump_g09_c01.avi 2\n")
    kept = clips_in_list(clips, listing)
    assert [c.key for c in kept] == ["Run/v_Run_g01_c01", "Jump/v_Jump_g02_c01"]
    listing.write_text("Other/v_Other_g01_c01.avi\n")
    with pytest.raises(ValueError, match="none of"):
        clips_in_list(clips, listing)


def test_augmentation_is_the_same_for_every_frame_of_a_clip():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    clip = tf.constant(np.repeat(frame, 6, axis=0))
    generator = tf.random.Generator.from_seed(0)
    outputs = [augment_clip(clip, generator, 0.5, flip=True).numpy() for _ in range(4)]
    for out in outputs:
        assert out.shape == (6, 32, 32, 3)
        assert all(np.array_equal(out[0], out[t]) for t in range(6))
    assert any(not np.array_equal(outputs[0], o) for o in outputs[1:])  # random across clips
    # Colour jitter: one draw per clip, and the padding after the true length stays zero.
    padded = tf.concat([clip[:4], tf.zeros_like(clip[:2])], axis=0)
    jittered = [augment_clip(padded, generator, 1.0, False, colour_jitter=0.3, length=4).numpy() for _ in range(4)]
    for out in jittered:
        assert all(np.array_equal(out[0], out[t]) for t in range(4)) and not out[4:].any()
    means = [out[:4].mean() for out in jittered]
    assert np.ptp(means) > 5  # brightness / contrast really vary between clips


def test_unreadable_video_is_reported_and_dropped(tmp_path, caplog):
    from seqvision.demo import make_demo_videos

    make_demo_videos(tmp_path / "videos", clips_per_class=1, groups_per_class=1, classes=("grow", "shrink"))
    bad = tmp_path / "videos" / "grow" / "broken.avi"
    bad.write_text("this is not a video")
    clips = find_clips(tmp_path / "videos")
    assert len(clips) == 3
    with caplog.at_level(logging.WARNING):
        batches = list(make_clip_dataset(clips, ["grow", "shrink"], 6, 32, batch_size=4))
    (inputs, labels), = batches
    assert len(labels) == 2
    assert "broken.avi" in caplog.text
    assert inputs["mask"].numpy().all()


def test_val_split_holds_out_close_to_the_fraction_asked(caplog, tmp_path):
    from pathlib import Path

    # 10 groups of 3 clips per class: 20% is exactly 2 groups.
    clips = [Clip(Path(f"/d/{label}/v_{label}_g{g:02d}_c{c:02d}.avi"), label)
             for label in ("A", "B") for g in range(1, 11) for c in range(1, 4)]
    for fraction in (0.1, 0.2, 0.3, 0.5):
        train, val = split_train_val(clips, fraction, seed=1)
        assert len(val) / len(clips) == pytest.approx(fraction)
        assert {c.group for c in train}.isdisjoint({c.group for c in val})
    # 4 recording sessions shared by all classes (a groups file says so): 10% cannot be held out, one
    # session (25%) is, and the log says so.
    clips = [Clip(Path(f"/d/{label}/{label}_s{g}_{c}.avi"), label)
             for label in "ABCD" for g in range(1, 5) for c in range(1, 6)]
    groups = tmp_path / "groups.csv"
    groups.write_text("clip,group\n" + "".join(f"{c.key},{c.path.stem.split('_')[1]}\n" for c in clips))
    with caplog.at_level(logging.WARNING):
        train, val = split_train_val(clips, 0.1, seed=0, groups_file=groups)
    assert len(val) == 20 and {c.label for c in val} == set("ABCD")
    assert "25% of the clips instead of the 10%" in caplog.text


def test_views_are_shifted_uniform_samplings_decoded_once(tmp_path):
    from seqvision.datasets import load_clip_views
    from seqvision.sampling import sample_uniform_indices, view_offsets

    _write_clip(tmp_path / "a" / "clip", 12)  # frame i has value 20 * i
    frames, length = load_clip_views(tmp_path / "a" / "clip", 4, 16, view_offsets(3))
    assert frames.shape == (3, 4, 16, 16, 3) and length == 4
    for view, offset in enumerate(view_offsets(3)):
        expected = sample_uniform_indices(12, 4, offset=offset) * 20
        np.testing.assert_array_equal(frames[view, :, 0, 0, 0], expected)
        single, _ = load_clip_views(tmp_path / "a" / "clip", 4, 16, (offset,))
        np.testing.assert_array_equal(single[0], frames[view])
    assert len({tuple(frames[v, :, 0, 0, 0]) for v in range(3)}) == 3
    # One view is the centred sampling load_clip gives.
    np.testing.assert_array_equal(load_clip(tmp_path / "a" / "clip", 4, 16)[0],
                                  load_clip_views(tmp_path / "a" / "clip", 4, 16)[0][0])
    # A clip shorter than T: every view is every frame.
    _write_clip(tmp_path / "a" / "short", 3)
    frames, length = load_clip_views(tmp_path / "a" / "short", 4, 16, view_offsets(2))
    assert length == 3 and np.array_equal(frames[0], frames[1]) and not frames[:, 3].any()


def test_training_takes_one_view_per_clip_and_flip_pairs_swap_labels(tmp_path):
    _write_clip(tmp_path / "left" / "clip", 8)
    clips = find_clips(tmp_path)
    ds = make_clip_dataset(clips * 40, ["left", "right"], seq_len=2, img_size=16, batch_size=80, training=True,
                           views=4, flip=True, mirror_classes=(1, 0), min_crop_area=1.0, colour_jitter=0.0)
    (inputs, labels), = list(ds)
    first = inputs["frames"].numpy()[:, 0, 0, 0, 0]
    assert set(first.tolist()) == {0, 20, 40, 60}  # frames at 1/8, 3/8, 5/8, 7/8 of the first half
    # Every clip is one class; a flipped copy is the mirror class, about half of them.
    assert 0.2 < np.mean(labels.numpy() == 1) < 0.8
    ds = make_clip_dataset(clips * 40, ["left", "right"], seq_len=2, img_size=16, batch_size=80, training=True)
    (_, labels), = list(ds)
    assert not labels.numpy().any()  # the default never flips, so never relabels


def _rss_file_bytes() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("RssFile:"):
            return int(line.split()[1]) * 1024
    pytest.skip("no RssFile in /proc/self/status (not Linux)")


def _write_feature_cache(path, clips, steps=16, dim=1280):
    """``features.npy`` float16 ``[clips, 1, steps, dim]``, clip i holding ``i % 1000``, opened read-only."""
    features = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(clips, 1, steps, dim))
    for begin in range(0, clips, 500):
        features[begin:begin + 500] = np.arange(begin, min(begin + 500, clips))[:, None, None, None] % 1000
    del features
    return np.load(path, mmap_mode="r")


def test_feature_dataset_streams_a_memmap_without_keeping_it_resident(tmp_path):
    from seqvision.datasets import make_feature_dataset, read_feature_views

    clips, steps = 2000, 16  # 82 MB of float16
    features = _write_feature_cache(tmp_path / "features.npy", clips, steps)
    rows, views = np.array([5, 1999, 0, 5]), np.zeros(4, np.int64)
    np.testing.assert_array_equal(read_feature_views(features, rows, views), np.asarray(features[rows, views]))
    np.testing.assert_array_equal(read_feature_views(features[10:], rows[1:] // 2, views[1:]),  # a slice: indexed
                                  np.asarray(features[10:][rows[1:] // 2, views[1:]]))

    def dataset(cache):
        return make_feature_dataset(cache, np.ones((len(cache), steps), bool), np.arange(len(cache)) % 3,
                                    np.arange(len(cache)), 256, training=True)

    list(dataset(_write_feature_cache(tmp_path / "warm_up.npy", 300, steps)))  # TensorFlow's own first-use pages
    before = _rss_file_bytes()
    seen = np.concatenate([x["features"][:, 0, 0].numpy() for x, _ in dataset(features)])
    grown = _rss_file_bytes() - before
    assert sorted(seen) == sorted(np.arange(clips) % 1000)  # every clip once
    assert grown < 20e6, f"resident file pages grew by {grown / 1e6:.0f} MB reading an 82 MB cache"
