import csv
import json
import shutil

import numpy as np
import pytest
from conftest import decode_index, sequential_decode, write_video

from seqvision.frame_folders import find_videos, list_frame_clips, read_frame_folder
from seqvision.frames import extract_frames

COLUMNS = ["label", "clip", "source", "status", "reason", "frames_written", "source_frames", "fps"]


def read_manifest(out_dir):
    with open(out_dir / "manifest.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COLUMNS
        return {(row["label"], row["clip"], row["source"].rsplit("/", 1)[-1]): row for row in reader}


@pytest.fixture
def videos(tmp_path):
    """A class-folder tree with good videos, bad ones and files that are not videos at all."""
    root = tmp_path / "videos"
    write_video(root / "left" / "a.avi", 30, "MJPG")
    write_video(root / "left" / "a.mp4", 20, "mp4v")          # same clip name as a.avi
    write_video(root / "left" / "b.mp4", 24, "mp4v", fps=12)
    write_video(root / "right" / "c.avi", 45, "XVID")
    write_video(root / "right" / "one.avi", 1, "MJPG")         # 1 frame: no order to learn
    (root / "right" / "empty.avi").touch()
    (root / "right" / "text.avi").write_text("not a video\n" * 50)
    (root / "right" / "notes.txt").write_text("ignored: not a video extension")
    write_video(root / "right" / ".hidden.avi", 10)           # hidden: ignored
    data = write_video(tmp_path / "long.avi", 60, "MJPG").read_bytes()
    (root / "right" / "cut.avi").write_bytes(data[: len(data) * 3 // 10])  # decodes its first 11 frames
    return root


def test_find_videos(videos, tmp_path):
    found = [(label, path.name) for label, path in find_videos(videos)]
    assert found == [("left", "a.avi"), ("left", "a.mp4"), ("left", "b.mp4"), ("right", "c.avi"),
                     ("right", "cut.avi"), ("right", "empty.avi"), ("right", "one.avi"), ("right", "text.avi")]
    with pytest.raises(ValueError, match="not a folder"):
        find_videos(tmp_path / "nope")
    (tmp_path / "flat").mkdir()
    write_video(tmp_path / "flat" / "x.avi", 3)  # videos must sit in class folders
    with pytest.raises(ValueError, match="no videos found"):
        find_videos(tmp_path / "flat")


def test_extract_good_and_bad_videos(videos, tmp_path):
    out = tmp_path / "frames"
    results = extract_frames(videos, out, seq_len=6, jobs=1, progress=False)
    status = {(r.label, r.source.rsplit("/", 1)[-1]): (r.status, r.reason) for r in results}
    assert status[("left", "a.avi")] == ("ok", "")
    assert status[("left", "b.mp4")] == ("ok", "")
    assert status[("right", "c.avi")] == ("ok", "")
    assert status[("right", "cut.avi")][0] == "failed" and "truncated" in status[("right", "cut.avi")][1]
    assert status[("left", "a.mp4")][0] == "failed" and "already taken by a.avi" in status[("left", "a.mp4")][1]
    assert status[("right", "one.avi")] == ("failed", "only 1 decodable frame; a sequence needs at least 2")
    assert status[("right", "empty.avi")] == ("failed", "empty file (0 bytes)")
    assert status[("right", "text.avi")][0] == "failed" and "cannot be opened" in status[("right", "text.avi")][1]

    manifest = read_manifest(out)
    assert len(manifest) == len(results) == 8
    assert manifest[("left", "a", "a.avi")]["frames_written"] == "6"
    assert manifest[("left", "a", "a.avi")]["source_frames"] == "30"
    assert manifest[("left", "b", "b.mp4")]["fps"] == "12.0"
    assert manifest[("right", "text", "text.avi")]["status"] == "failed"

    # Saved PNGs are exactly the sequentially decoded frames at the recorded indices, in order.
    for label, clip, source in [("left", "a", "a.avi"), ("left", "b", "b.mp4"), ("right", "c", "c.avi")]:
        clip_dir = out / label / clip
        meta = json.loads((clip_dir / "frames.json").read_text())
        reference = sequential_decode(videos / label / source)
        assert meta["source_frames"] == len(reference)
        assert sorted(p.name for p in clip_dir.glob("*.png")) == [f"{i:06d}.png" for i in range(6)]
        frames = read_frame_folder(clip_dir)
        assert frames.shape[0] == len(meta["indices"]) == 6
        for frame, i in zip(frames, meta["indices"]):
            assert np.array_equal(frame, reference[i])
        assert [decode_index(f) for f in frames] == meta["indices"]
    assert not (out / "left" / "a" / "000000.png").is_symlink()
    assert [(label, d.name) for label, d in list_frame_clips(out)] == [("left", "a"), ("left", "b"), ("right", "c")]


def test_rerun_skips_complete_clips_and_redoes_partial_ones(videos, tmp_path):
    out = tmp_path / "frames"
    first = extract_frames(videos, out, seq_len=5, jobs=1, progress=False)
    before = (out / "left" / "a" / "000004.png").stat().st_mtime_ns
    # An interrupted run leaves a partial folder behind and no final one.
    shutil.rmtree(out / "left" / "b")
    partial = out / "left" / ".b.partial-12345"
    partial.mkdir()
    (partial / "000000.png").write_bytes(b"half written")
    again = extract_frames(videos, out, seq_len=5, jobs=1, progress=False)
    by_source = {r.source: r for r in again}
    assert by_source[str(videos / "left" / "a.avi")].status == "skipped"
    assert by_source[str(videos / "left" / "b.mp4")].status == "ok"
    assert not partial.exists()
    assert (out / "left" / "a" / "000004.png").stat().st_mtime_ns == before
    expected = {r.source: "failed" if r.status == "failed" else "skipped" for r in first}
    expected[str(videos / "left" / "b.mp4")] = "ok"
    assert {r.source: r.status for r in again} == expected
    manifest = read_manifest(out)
    skipped = manifest[("left", "a", "a.avi")]
    assert (skipped["status"], skipped["frames_written"], skipped["source_frames"]) == ("skipped", "5", "30")
    # Other settings are refused rather than mixed with the old frames.
    other = extract_frames(videos, out, seq_len=7, jobs=1, progress=False)
    assert "other settings" in {r.source: r for r in other}[str(videos / "left" / "a.avi")].reason


def test_video_replaced_under_the_same_name_is_extracted_again(videos, tmp_path):
    out = tmp_path / "frames"
    extract_frames(videos, out, seq_len=5, jobs=1, progress=False)
    source = videos / "left" / "b.mp4"
    write_video(tmp_path / "new.mp4", 40, "mp4v", size=(64, 48)).replace(source)
    again = {r.source: r for r in extract_frames(videos, out, seq_len=5, jobs=1, progress=False)}
    assert (again[str(source)].status, again[str(source)].source_frames) == ("ok", 40)
    meta = json.loads((out / "left" / "b" / "frames.json").read_text())
    reference = sequential_decode(source)
    for position, index in enumerate(meta["indices"]):
        np.testing.assert_array_equal(read_frame_folder(out / "left" / "b")[position], reference[index])
    assert not [p for p in (out / "left").iterdir() if p.name.startswith(".")]
    assert again[str(videos / "left" / "a.avi")].status == "skipped"


def test_damaged_frames_json_is_reported_not_raised(videos, tmp_path):
    out = tmp_path / "frames"
    extract_frames(videos, out, seq_len=5, jobs=1, progress=False)
    for content in ["null", "[]", '{"source": "a.avi"}', "{not json"]:
        (out / "left" / "a" / "frames.json").write_text(content)
        result = next(r for r in extract_frames(videos, out, seq_len=5, jobs=1, progress=False) if r.clip == "a")
        assert result.status == "failed" and "no valid frames.json" in result.reason


def test_jobs_2_writes_the_same_as_jobs_1(videos, tmp_path):
    one = extract_frames(videos, tmp_path / "one", stride=4, jobs=1, progress=False)
    two = extract_frames(videos, tmp_path / "two", stride=4, jobs=2, progress=False)
    assert [(r.label, r.clip, r.status, r.reason, r.frames_written) for r in one] == \
           [(r.label, r.clip, r.status, r.reason, r.frames_written) for r in two]
    files_one = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*.png"))
    files_two = sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*.png"))
    assert files_one == files_two and files_one
    for rel in files_one:
        assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "two" / rel).read_bytes()


def test_every_seconds_size_and_jpg(videos, tmp_path):
    out = tmp_path / "frames"
    results = extract_frames(videos, out, every_seconds=0.5, size=(32, 24), image_format="jpg", jobs=1,
                             progress=False)
    b = next(r for r in results if r.clip == "b")
    meta = json.loads((out / "left" / "b" / "frames.json").read_text())
    assert meta["indices"] == [0, 6, 12, 18] and b.frames_written == 4  # 12 fps, 24 frames
    assert meta["size"] == [32, 24]
    frames = read_frame_folder(out / "left" / "b")
    assert frames.shape == (4, 24, 32, 3)
    assert read_frame_folder(out / "left" / "b", size=16).shape == (4, 16, 16, 3)


def test_all_bad_videos_all_fail(tmp_path):
    root = tmp_path / "videos" / "x"
    root.mkdir(parents=True)
    (root / "empty.mp4").touch()
    (root / "text.avi").write_text("hello")
    results = extract_frames(tmp_path / "videos", tmp_path / "out", seq_len=4, jobs=1, progress=False)
    assert [r.status for r in results] == ["failed", "failed"]
    assert all(r.reason for r in results)
    assert len(read_manifest(tmp_path / "out")) == 2
    assert list_frame_clips(tmp_path / "out") == []


def test_argument_errors(videos, tmp_path):
    with pytest.raises(ValueError, match="exactly one"):
        extract_frames(videos, tmp_path / "o", progress=False)
    with pytest.raises(ValueError, match="exactly one"):
        extract_frames(videos, tmp_path / "o", seq_len=4, stride=2, progress=False)
    with pytest.raises(ValueError, match="image_format"):
        extract_frames(videos, tmp_path / "o", seq_len=4, image_format="bmp", progress=False)
    with pytest.raises(ValueError, match="seq_len"):
        extract_frames(videos, tmp_path / "o", seq_len=0, progress=False)
    with pytest.raises(ValueError, match="not a folder"):
        extract_frames(tmp_path / "missing", tmp_path / "o", seq_len=4, progress=False)
    with pytest.raises(ValueError, match="min_decoded_fraction"):
        extract_frames(videos, tmp_path / "o", seq_len=4, min_decoded_fraction=90, progress=False)


def test_read_frame_folder_uses_numeric_order(tmp_path):
    import cv2
    clip = tmp_path / "clip"
    clip.mkdir()
    for i in [0, 1, 2, 9, 10, 11]:  # unpadded names: text order would put 10 before 2
        image = np.full((4, 4, 3), i, np.uint8)
        cv2.imwrite(str(clip / f"{i}.png"), image)
    (clip / "frames.json").write_text("{}")
    frames = read_frame_folder(clip)
    assert frames[:, 0, 0, 0].tolist() == [0, 1, 2, 9, 10, 11]
    # seq_len reads a uniform subset (segment centres of 6 files in 3 segments: files 1, 3, 5)
    assert read_frame_folder(clip, seq_len=3)[:, 0, 0, 0].tolist() == [1, 9, 11]
    assert len(read_frame_folder(clip, seq_len=10)) == 6
    with pytest.raises(ValueError, match="no frame images"):
        read_frame_folder(tmp_path)
    cv2.imwrite(str(clip / "².png"), np.zeros((4, 4, 3), np.uint8))  # a digit to str.isdigit, not a number
    assert len(read_frame_folder(clip)) == 6
    cv2.imwrite(str(clip / "000009.png"), np.zeros((4, 4, 3), np.uint8))  # two files claim frame 9
    with pytest.raises(ValueError, match="9.png and 9.png are both frame 9|000009.png and 9.png are both frame 9"):
        read_frame_folder(clip)
    with pytest.raises(ValueError, match="not a folder"):
        read_frame_folder(tmp_path / "missing")


def test_list_frame_clips_ignores_partial_and_hidden(tmp_path):
    import cv2
    for name in ["a", ".a.partial-1", ".hidden"]:
        (tmp_path / "lab" / name).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "lab" / name / "000000.png"), np.zeros((2, 2, 3), np.uint8))
    (tmp_path / "lab" / "empty").mkdir()
    assert list_frame_clips(tmp_path) == [("lab", tmp_path / "lab" / "a")]


def test_real_videos(shared_data, tmp_path):
    root = tmp_path / "videos"
    for label, name in [("good", "mmaction2/test.avi"), ("good", "decord/flipping_a_pancake.mkv"),
                        ("odd", "decord/corrupted.mp4"), ("odd", "torchcodec/av1_video.mkv"),
                        ("odd", "torchcodec/testsrc2_mpeg4.mp4")]:
        (root / label).mkdir(parents=True, exist_ok=True)
        (root / label / name.split("/")[-1]).symlink_to((shared_data / name).resolve())
    results = {r.clip: r for r in extract_frames(root, tmp_path / "out", seq_len=8, jobs=1, progress=False)}
    assert results["test"].status == "ok" and results["test"].source_frames == 164
    assert results["flipping_a_pancake"].source_frames == 310
    assert results["corrupted"].status == "failed" and "only 28 of the 50 frames" in results["corrupted"].reason
    if sequential_decode(shared_data / "torchcodec" / "av1_video.mkv"):  # OpenCV 5 wheels decode AV1
        assert results["av1_video"].status == "ok" and results["av1_video"].source_frames == 125
    else:
        assert results["av1_video"].status == "failed" and "no decodable frames" in results["av1_video"].reason
    assert results["testsrc2_mpeg4"].reason.startswith("only 1 decodable frame")
    # A user who accepts damaged files gets exactly the frames that decode.
    kept = {r.clip: r for r in extract_frames(root, tmp_path / "out", seq_len=8, jobs=1, progress=False,
                                               min_decoded_fraction=0)}
    assert kept["corrupted"].status == "ok" and kept["corrupted"].source_frames == 28
    assert kept["test"].status == "skipped"
    meta = json.loads((tmp_path / "out" / "odd" / "corrupted" / "frames.json").read_text())
    reference = sequential_decode(shared_data / "decord" / "corrupted.mp4")
    for frame, i in zip(read_frame_folder(tmp_path / "out" / "odd" / "corrupted"), meta["indices"]):
        assert np.array_equal(frame, reference[i])
