
import numpy as np
import pytest

from seqvision.sampling import sample_every_seconds_indices, sample_stride_indices, sample_uniform_indices


@pytest.mark.parametrize("num_frames,seq_len", [(10, 10), (11, 10), (100, 7), (300, 16), (1001, 3), (17, 16)])
def test_uniform_takes_segment_centres_over_the_whole_range(num_frames, seq_len):
    idx = sample_uniform_indices(num_frames, seq_len)
    assert idx.dtype == np.int64 and len(idx) == seq_len
    assert np.all(np.diff(idx) > 0)
    seg = num_frames / seq_len
    # Frame i spans [i, i + 1): each index is the frame under its segment's centre.
    for k, i in enumerate(idx):
        assert i <= (k + 0.5) * seg < i + 1
    assert idx[0] < seg and idx[-1] >= num_frames - seg


def test_uniform_short_range_returns_every_frame_never_repeats():
    assert sample_uniform_indices(3, 8).tolist() == [0, 1, 2]
    assert sample_uniform_indices(1, 8).tolist() == [0]
    assert sample_uniform_indices(0, 8).tolist() == []
    assert sample_uniform_indices(20, 8, start=5, end=9).tolist() == [5, 6, 7, 8]


def test_uniform_start_end_and_end_past_the_video():
    idx = sample_uniform_indices(1000, 4, start=100, end=200)
    assert idx.tolist() == [112, 137, 162, 187]
    # end beyond the video is clipped to the frames that exist
    assert sample_uniform_indices(50, 5, start=40, end=500).tolist() == [41, 43, 45, 47, 49]
    assert sample_uniform_indices(50, 5, start=60).tolist() == []


def test_stride():
    assert sample_stride_indices(10, 3).tolist() == [0, 3, 6, 9]
    assert sample_stride_indices(10, 3, start=2).tolist() == [2, 5, 8]
    assert sample_stride_indices(10, 3, start=2, end=8).tolist() == [2, 5]
    assert sample_stride_indices(100, 10, max_len=3).tolist() == [0, 10, 20]
    assert sample_stride_indices(10, 1, start=10).tolist() == []
    # a huge num_frames with max_len stays cheap
    assert sample_stride_indices(2 ** 62, 5, max_len=2).tolist() == [0, 5]


def test_every_seconds_takes_nearest_frame():
    # 29.97 fps, every 1 s: frames nearest 0, 1, 2, 3 s
    assert sample_every_seconds_indices(100, 29.97, 1.0).tolist() == [0, 30, 60, 90]
    # 12.5 frames apart: halves round up
    assert sample_every_seconds_indices(100, 25, 0.5).tolist() == [0, 13, 25, 38, 50, 63, 75, 88]
    assert sample_every_seconds_indices(100, 30, 1.0, start=10, end=75).tolist() == [10, 40, 70]
    assert sample_every_seconds_indices(1000, 30, 2.0, max_len=3).tolist() == [0, 60, 120]
    # the last time rounds to a frame that exists; it never rounds past the end
    assert sample_every_seconds_indices(31, 10, 1.0).tolist() == [0, 10, 20, 30]
    assert sample_every_seconds_indices(30, 10, 1.0).tolist() == [0, 10, 20]


def test_every_seconds_shorter_than_a_frame_takes_each_frame_once():
    idx = sample_every_seconds_indices(10, 10, 0.03)
    assert idx.tolist() == list(range(10))
    assert sample_every_seconds_indices(10 ** 9, 10, 0.03, max_len=4).tolist() == [0, 1, 2, 3]
    assert len(sample_every_seconds_indices(10 ** 6, 30, 1e-9)) == 10 ** 6  # one index per frame, not per time


def test_every_seconds_longer_than_the_video_takes_the_first_frame():
    assert sample_every_seconds_indices(100, 30, 1e18).tolist() == [0]  # no int64 overflow
    assert sample_every_seconds_indices(100, 30, 1e308, start=7).tolist() == [7]


@pytest.mark.parametrize("fps", [0, -1, float("nan"), float("inf"), None, "x"])
def test_every_seconds_refuses_unknown_frame_rate(fps):
    with pytest.raises(ValueError, match="fps"):
        sample_every_seconds_indices(100, fps, 1.0)


@pytest.mark.parametrize("call,match", [
    (lambda: sample_uniform_indices(10, 0), "seq_len"),
    (lambda: sample_uniform_indices(10, 2.5), "seq_len"),
    (lambda: sample_uniform_indices(-1, 2), "num_frames"),
    (lambda: sample_uniform_indices(10, 2, start=-1), "start"),
    (lambda: sample_uniform_indices(10, 2, start=5, end=3), "end"),
    (lambda: sample_stride_indices(10, 0), "stride"),
    (lambda: sample_stride_indices(10, True), "stride"),
    (lambda: sample_stride_indices(10, 2, max_len=0), "max_len"),
    (lambda: sample_every_seconds_indices(10, 25, 0), "seconds"),
    (lambda: sample_every_seconds_indices(10, 25, float("nan")), "seconds"),
])
def test_argument_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_batch_sampler_rows_are_the_single_clip_sampler_padded():
    from seqvision.sampling import sample_uniform_batch

    lengths = [1, 5, 16, 17, 31, 150, 1000]
    index, mask = sample_uniform_batch(lengths, 16)
    for row, n in enumerate(lengths):
        expected = sample_uniform_indices(n, 16)
        np.testing.assert_array_equal(index[row, : len(expected)], expected)
        assert mask[row].sum() == len(expected) and not index[row, len(expected):].any()
    rng = np.random.default_rng(1)
    jittered, jmask = sample_uniform_batch(lengths, 16, rng)
    np.testing.assert_array_equal(jmask, mask)
    assert (np.diff(jittered[-1]) > 0).all() and not np.array_equal(jittered[-1], index[-1])
    # Jitter never takes a frame twice, even when segments are barely longer than one frame.
    for _ in range(200):
        draws, _ = sample_uniform_batch([5, 17, 31], 4, rng)
        assert (np.diff(draws, axis=1) > 0).all(), draws
