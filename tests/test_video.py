import pickle

import cv2
import numpy as np
import pytest
from conftest import decode_index, sequential_decode

from seqvision import video
from seqvision.sampling import sample_uniform_indices
from seqvision.video import VIDEO_EXTENSIONS, VideoError, VideoInfo, probe_video, read_video_frames


def assert_frames_match(frames, indices, reference):
    assert frames.dtype == np.uint8 and frames.ndim == 4 and frames.shape[-1] == 3
    assert len(frames) == len(indices)
    for frame, i in zip(frames, indices):
        assert np.array_equal(frame, reference[i]), f"frame {i} differs from the sequential decode"


@pytest.fixture
def count_seeks(monkeypatch):
    """Seek on gaps of 5+ frames and record each seek's outcome."""
    outcomes = []
    seek = video._Pass._seek

    def spy(self, target):
        landed = seek(self, target)
        outcomes.append(landed)
        return landed
    monkeypatch.setattr(video._Pass, "_seek", spy)
    monkeypatch.setattr(video, "SEEK_MIN_GAP", 5)
    return outcomes


# --- synthetic videos: every frame carries its index ---------------------------------------

@pytest.mark.parametrize("name,fourcc", [("clip.avi", "MJPG"), ("clip.mp4", "mp4v"), ("clip_xvid.avi", "XVID")])
def test_uniform_frames_equal_sequential_decode(make_video, name, fourcc):
    path = make_video(name, 40, fourcc)
    reference = sequential_decode(path)
    frames, indices, info = read_video_frames(path, seq_len=8)
    assert indices.dtype == np.int64
    assert indices.tolist() == sample_uniform_indices(40, 8).tolist()
    assert_frames_match(frames, indices, reference)
    assert [decode_index(f) for f in frames] == indices.tolist()
    assert info == VideoInfo(str(path), 40, 25.0, 96, 64, 40)


def test_short_video_gives_all_frames_unpadded(make_video):
    path = make_video("short.avi", 5)
    frames, indices, info = read_video_frames(path, seq_len=16)
    assert indices.tolist() == [0, 1, 2, 3, 4] and frames.shape == (5, 64, 96, 3)
    assert info.num_frames == 5


def test_explicit_indices_any_order_and_repeats(make_video):
    path = make_video("clip.avi", 30)
    reference = sequential_decode(path)
    frames, indices, info = read_video_frames(path, [20, 3, 3, 29])
    assert indices.tolist() == [20, 3, 3, 29]
    assert_frames_match(frames, indices, reference)
    assert info.num_frames is None  # stopped after frame 29: true length not needed


def test_explicit_index_past_the_end(make_video):
    path = make_video("clip.avi", 30)
    with pytest.raises(VideoError, match="index 30 is past the end: the video has 30 decodable frames"):
        read_video_frames(path, [0, 30])


def test_stride_every_seconds_start_end(make_video):
    path = make_video("clip.mp4", 50, "mp4v", fps=10)
    reference = sequential_decode(path)
    frames, indices, info = read_video_frames(path, stride=7, start=3)
    assert indices.tolist() == [3, 10, 17, 24, 31, 38, 45] and info.num_frames == 50
    assert_frames_match(frames, indices, reference)
    frames, indices, _ = read_video_frames(path, stride=4, start=10, end=30, max_len=3)
    assert indices.tolist() == [10, 14, 18]
    assert_frames_match(frames, indices, reference)
    frames, indices, _ = read_video_frames(path, every_seconds=1.5)
    assert indices.tolist() == [0, 15, 30, 45]
    assert_frames_match(frames, indices, reference)
    frames, indices, _ = read_video_frames(path, seq_len=4, start=20, end=40)
    assert indices.tolist() == [22, 27, 32, 37]
    assert_frames_match(frames, indices, reference)


def test_resize(make_video):
    path = make_video("clip.avi", 12)
    reference = sequential_decode(path)
    frames, indices, info = read_video_frames(path, seq_len=3, size=32)
    assert frames.shape == (3, 32, 32, 3) and (info.width, info.height) == (96, 64)
    expected = cv2.resize(reference[indices[0]], (32, 32), interpolation=cv2.INTER_AREA)
    assert np.array_equal(frames[0], expected)
    frames, _, _ = read_video_frames(path, seq_len=3, size=(40, 20))
    assert frames.shape == (3, 20, 40, 3)


def test_seeking_over_long_gaps_matches_sequential_decode(make_video, count_seeks):
    path = make_video("long.mp4", 120, "mp4v")  # keyframe every 12 frames
    reference = sequential_decode(path)
    wanted = [0, 1, 2, 50, 51, 90, 119]
    frames, indices, _ = read_video_frames(path, wanted)
    assert_frames_match(frames, indices, reference)
    assert count_seeks and all(count_seeks)
    frames, indices, _ = read_video_frames(path, stride=25, start=2, end=110)
    assert_frames_match(frames, indices, reference)
    assert [decode_index(f) for f in frames] == indices.tolist()


def test_uniform_sampling_never_seeks(make_video, count_seeks):
    path = make_video("long.mp4", 120, "mp4v")
    read_video_frames(path, seq_len=3)
    assert count_seeks == []


def test_argument_errors(make_video):
    path = make_video("clip.avi", 10)
    with pytest.raises(ValueError, match="exactly one"):
        read_video_frames(path)
    with pytest.raises(ValueError, match="exactly one"):
        read_video_frames(path, seq_len=4, stride=2)
    with pytest.raises(ValueError, match="not both"):
        read_video_frames(path, [1, 2], seq_len=4)
    with pytest.raises(ValueError, match="indices"):
        read_video_frames(path, [])
    with pytest.raises(ValueError, match=">= 0"):
        read_video_frames(path, [-1])
    with pytest.raises(ValueError, match="seq_len"):
        read_video_frames(path, seq_len=0)
    with pytest.raises(ValueError, match="size"):
        read_video_frames(path, seq_len=2, size=(0, 4))
    with pytest.raises(VideoError, match="no frames in the range"):
        read_video_frames(path, stride=1, start=20)


def test_extensions():
    assert {".avi", ".mp4", ".mov", ".mkv", ".webm", ".gif", ".ogv", ".mpg"} <= VIDEO_EXTENSIONS
    assert all(ext == ext.lower() and ext.startswith(".") for ext in VIDEO_EXTENSIONS)


# --- bad input -------------------------------------------------------------------------------

def test_video_error_message_and_pickle(tmp_path):
    missing = tmp_path / "missing.mp4"
    with pytest.raises(VideoError) as caught:
        read_video_frames(missing, seq_len=4)
    error = caught.value
    assert error.path == str(missing) and error.reason == "file not found"
    assert str(error) == f"{missing}: file not found"
    again = pickle.loads(pickle.dumps(error))
    assert (again.path, again.reason, str(again)) == (error.path, error.reason, str(error))


def test_zero_byte_and_text_files(tmp_path):
    empty = tmp_path / "empty.avi"
    empty.touch()
    with pytest.raises(VideoError, match=r"empty file \(0 bytes\)"):
        read_video_frames(empty, seq_len=4)
    text = tmp_path / "notes.avi"
    text.write_text("this is not a video\n" * 20)
    with pytest.raises(VideoError, match="cannot be opened as a video"):
        read_video_frames(text, seq_len=4)
    with pytest.raises(VideoError, match="cannot be opened as a video"):
        probe_video(text)


def test_one_frame_video_is_read(shared_data):
    """A 1-frame video is a valid video here; extract_frames is what refuses it for sequences."""
    frames, indices, info = read_video_frames(shared_data / "torchcodec" / "testsrc2_mpeg4.mp4", seq_len=10)
    assert frames.shape == (1, 64, 64, 3) and indices.tolist() == [0] and info.num_frames == 1


def test_a_video_whose_frames_all_fail_to_decode_is_refused(make_video, tmp_path):
    # The container and its index are intact (it opens, lists 20 frames); every JPEG is wiped.
    data = bytearray(make_video("wiped.avi", 20).read_bytes())
    start = data.find(b"\xff\xd8\xff")
    while start >= 0:
        data[start:start + 400] = bytes(len(data[start:start + 400]))
        start = data.find(b"\xff\xd8\xff", start + 400)
    path = tmp_path / "wiped_frames.avi"
    path.write_bytes(bytes(data))
    assert probe_video(path, count_frames=False).metadata_frames == 20 and not sequential_decode(path)
    with pytest.raises(VideoError, match="no decodable frames .*metadata claims 20"):
        read_video_frames(path, seq_len=8)
    with pytest.raises(VideoError, match="no decodable frames"):
        probe_video(path)


def test_av1_decodes_as_the_reference_or_is_refused(shared_data):
    # Whether AV1 decodes depends on the FFmpeg inside the installed OpenCV (4.x wheels: no
    # decoder, every read fails; 5.x: decodes): either way seqvision must say what the reference says.
    path = shared_data / "torchcodec" / "av1_video.mkv"
    assert probe_video(path, count_frames=False).metadata_frames == 125
    reference = sequential_decode(path)
    if not reference:
        with pytest.raises(VideoError, match="no decodable frames .*metadata claims 125"):
            read_video_frames(path, seq_len=8)
        with pytest.raises(VideoError, match="no decodable frames"):
            probe_video(path)
        return
    frames, indices, info = read_video_frames(path, seq_len=8)
    assert info.num_frames == len(reference) == 125 and len(indices) == 8
    for frame, i in zip(frames, indices):
        assert np.array_equal(frame, reference[i])


def test_truncated_copies(shared_data, tmp_path):
    # MP4 with its index at the end: a 30% copy cannot be opened at all.
    data = (shared_data / "mmaction2" / "demo.mp4").read_bytes()
    mp4 = tmp_path / "truncated.mp4"
    mp4.write_bytes(data[: len(data) * 3 // 10])
    with pytest.raises(VideoError, match="cannot be opened"):
        read_video_frames(mp4, seq_len=8)
    # AVI: opens, claims 164 frames, decodes the first part only; sampling follows the truth.
    data = (shared_data / "mmaction2" / "test.avi").read_bytes()
    avi = tmp_path / "truncated.avi"
    avi.write_bytes(data[: len(data) * 3 // 10])
    reference = sequential_decode(avi)
    assert 0 < len(reference) < 164
    with pytest.raises(VideoError, match=f"truncated or damaged: only {len(reference)} of the 164 frames"):
        read_video_frames(avi, seq_len=8)
    # Asked to keep what decodes, it samples the decodable part exactly.
    frames, indices, info = read_video_frames(avi, seq_len=8, min_decoded_fraction=0)
    assert info.metadata_frames == 164 and info.num_frames == len(reference)
    assert indices.tolist() == sample_uniform_indices(len(reference), 8).tolist()
    assert_frames_match(frames, indices, reference)


# --- real files ------------------------------------------------------------------------------

REAL = {  # path: (metadata frames, decodable frames)
    "mmaction2/demo.mp4": (280, 280),
    "mmaction2/test.avi": (164, 164),
    "decord/flipping_a_pancake.mkv": (311, 310),
    "decord/corrupted.mp4": (50, 28),
    "torchcodec/discard_first_keyframe.mp4": (30, 25),
    "torchcodec/testsrc2_vp9.webm": (30, 30),
    "keras-video-generators/vidtest.ogv": (205, 205),
    "decord/video_90.mov": (3, 3),
    "torchcodec/nasa_13013_rotated.mp4": (17, 17),
    "kinetics-i3d/v_CricketShot_g04_c01_rgb.gif": (79, 79),
    "torchcodec/sine_stereo_mp2.mpg": (100, 100),
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_files_match_sequential_decode(shared_data, reference_decode, name):
    path = shared_data / name
    reference = reference_decode(path)
    metadata_frames, true_frames = REAL[name]
    assert len(reference) == true_frames
    frames, indices, info = read_video_frames(path, seq_len=10, min_decoded_fraction=0)
    assert info.num_frames == true_frames and info.metadata_frames == metadata_frames
    assert indices.tolist() == sample_uniform_indices(true_frames, 10).tolist()
    assert_frames_match(frames, indices, reference)
    assert (info.height, info.width) == reference[0].shape[:2]
    assert probe_video(path).num_frames == true_frames


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_files_with_seeking_match_sequential_decode(shared_data, reference_decode, count_seeks, monkeypatch,
                                                         name):
    # Seek in every container, even those we normally keep away from: the checks must catch it.
    monkeypatch.setattr(video, "_SEEKABLE_EXTENSIONS", VIDEO_EXTENSIONS)
    path = shared_data / name
    reference = reference_decode(path)
    n = len(reference)
    wanted = sorted({0, 1, 2, n // 4, n // 2, n // 2 + 1, n - 2, n - 1})
    frames, indices, _ = read_video_frames(path, wanted)
    assert_frames_match(frames, indices, reference)
    frames, indices, _ = read_video_frames(path, stride=max(n // 5, 1), start=1, end=n)
    assert_frames_match(frames, indices, reference)


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_files_that_lost_frames_are_refused_by_default(shared_data, name):
    metadata_frames, true_frames = REAL[name]
    if true_frames >= 0.9 * metadata_frames:  # e.g. the mkv whose duration-based count is one too many
        assert read_video_frames(shared_data / name, seq_len=4)[2].num_frames == true_frames
    else:
        with pytest.raises(VideoError, match=f"only {true_frames} of the {metadata_frames} frames"):
            read_video_frames(shared_data / name, seq_len=4)


def test_inexact_seek_is_caught(shared_data, reference_decode, count_seeks, monkeypatch):
    """MPEG-PS seeks by bisection: OpenCV lands on frame 13 when asked for 9. We must notice."""
    monkeypatch.setattr(video, "_SEEKABLE_EXTENSIONS", VIDEO_EXTENSIONS)
    path = shared_data / "torchcodec" / "sine_stereo_mp2.mpg"
    frames, indices, _ = read_video_frames(path, [2, 9])
    assert_frames_match(frames, indices, reference_decode(path))
    assert count_seeks == [False]


def test_rotation_follows_the_decoder(shared_data, reference_decode):
    path = shared_data / "decord" / "video_90.mov"
    frames, _, info = read_video_frames(path, seq_len=2)
    # OpenCV 5 applies the 90-degree rotation: the 568x320 stream decodes as 320 wide, 568 high.
    assert frames.shape[1:] == reference_decode(path)[0].shape == (568, 320, 3)
    assert (info.width, info.height) == (320, 568)


def test_probe_without_counting_trusts_metadata(shared_data):
    info = probe_video(shared_data / "decord" / "corrupted.mp4", count_frames=False)
    assert info.num_frames is None and info.metadata_frames == 50 and info.fps == 10.0
    assert probe_video(shared_data / "decord" / "corrupted.mp4").num_frames == 28
