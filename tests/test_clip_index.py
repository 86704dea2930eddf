"""Clip index: window coverage, whole-video splits, split files, --check."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
from click.testing import CliRunner

from seqvision.cli import main
from seqvision.clip_index import (INDEX_COLUMNS, assign_splits, build_clip_index, check_clip_index,
                                  read_clip_index, window_ranges)
from tests.conftest import write_video


def _assert_covers_as_specified(windows: list[tuple[int, int]], n: int, clip_len: int, stride: int) -> None:
    """Starts 0, stride, … while a window fits, then one end-aligned window if frames are left."""
    if n <= clip_len:
        assert windows == [(0, n)]
        return
    regular = [w for w in windows if w[0] % stride == 0 and w[1] <= n]
    assert [s for s, _ in regular] == list(range(0, n - clip_len + 1, stride))
    assert all(e - s == clip_len for s, e in windows)
    covered = set()
    for s, e in windows:
        covered.update(range(s, e))
    assert covered == set(range(n))
    extra = windows[len(regular):]
    assert extra == ([] if regular[-1][1] == n else [(n - clip_len, n)])


@pytest.mark.parametrize("n", [1, 5, 31, 32, 33, 48, 49, 100])
def test_window_ranges_cover_exactly(n):
    _assert_covers_as_specified(window_ranges(n, 32, 16), n, 32, 16)


def _write_tree(root: Path, lengths: dict[str, int]) -> Path:
    for rel, n in lengths.items():
        write_video(root / rel, n, size=(32, 32))
    return root


LENGTHS = {"Normal_a/v0.avi": 40, "Normal_a/v1.avi": 20, "normal_b/v2.avi": 64, "Normal_a/v3.avi": 33,
           "Fighting/f0.avi": 50, "Fighting/f1.avi": 12, "Fighting/f2.avi": 70, "Stealing/s0.avi": 45}


@pytest.fixture
def videos(tmp_path):
    return _write_tree(tmp_path / "videos", LENGTHS)


def test_index_of_synthetic_videos(videos, tmp_path):
    out = tmp_path / "index.csv"
    build_clip_index(videos, out, clip_len=32, stride=16, val_fraction=0.25, test_fraction=0.25, seed=3,
                     progress=False)
    with open(out, newline="") as f:
        assert tuple(next(csv.reader(f))) == INDEX_COLUMNS
    rows = read_clip_index(out)
    by_video = {}
    for row in rows:
        by_video.setdefault(row["path"], []).append(row)
    assert set(by_video) == set(LENGTHS)
    for path, windows in by_video.items():
        assert {w["n_frames"] for w in windows} == {LENGTHS[path]}  # decodable count, probed
        assert [w["clip_idx"] for w in windows] == list(range(len(windows)))
        _assert_covers_as_specified([(w["start_frame"], w["end_frame"]) for w in windows], LENGTHS[path], 32, 16)
        assert len({w["split"] for w in windows}) == 1  # no leak
        assert {w["y"] for w in windows} == {0 if path.lower().startswith("normal") else 1}
    assert {r["split"] for r in rows} == {"train", "val", "test"}
    assert check_clip_index(out)[0] == []


def test_splits_stratified_whole_videos_and_seeded():
    videos = [(c, f"{c}/{i}.avi") for c in ("a", "b") for i in range(10)] + [("c", f"c/{i}.avi") for i in range(4)]
    splits = assign_splits(videos, 0.25, 0.25, seed=0)
    assert set(splits) == {p for _, p in videos}
    for category, total in (("a", 10), ("b", 10)):
        counts = [sum(s == name for p, s in splits.items() if p.startswith(category)) for name in ("test", "val")]
        assert all(2 <= c <= 3 for c in counts), counts
    assert assign_splits(videos, 0.25, 0.25, seed=0) == splits
    assert assign_splits(videos, 0.25, 0.25, seed=1) != splits
    with pytest.raises(ValueError, match="too few"):
        assign_splits(videos[:2], 0.5, 0.4)


def test_split_file_honoured_and_missing_videos_reported(videos, tmp_path, caplog):
    split_file = tmp_path / "splits.csv"
    listed = {"Normal_a/v0.avi": "train", "normal_b/v2.avi": "official_test", "Fighting/f0.avi": "train",
              "Fighting/f2.avi": "official_test", "Gone/x.avi": "train"}
    split_file.write_text("path,split\n" + "".join(f"{p},{s}\n" for p, s in listed.items()))
    summary = build_clip_index(videos, tmp_path / "i.csv", split_file=split_file, progress=False)
    rows = read_clip_index(tmp_path / "i.csv")
    assert {r["path"]: r["split"] for r in rows} == {p: s for p, s in listed.items() if p != "Gone/x.avi"}
    skipped = {s["path"] for s in summary["skipped"]}
    assert skipped == set(LENGTHS) - set(listed)
    assert "Gone/x.avi" in caplog.text


def test_unreadable_video_reported_and_skipped(videos, tmp_path, caplog):
    (videos / "Fighting" / "broken.avi").write_text("not a video")
    summary = build_clip_index(videos, tmp_path / "i.csv", progress=False)
    assert [s["path"] for s in summary["skipped"]] == ["Fighting/broken.avi"]
    assert "broken.avi" in caplog.text
    assert "Fighting/broken.avi" not in {r["path"] for r in read_clip_index(tmp_path / "i.csv")}


def test_every_seconds_sets_stride_from_fps(tmp_path):
    write_video(tmp_path / "v" / "Normal" / "a.avi", 60, fps=10.0, size=(32, 32))
    build_clip_index(tmp_path / "v", tmp_path / "i.csv", clip_len=16, every_seconds=0.5, val_fraction=0,
                     test_fraction=0, progress=False)
    rows = read_clip_index(tmp_path / "i.csv")
    assert {r["stride"] for r in rows} == {5}
    _assert_covers_as_specified([(r["start_frame"], r["end_frame"]) for r in rows], 60, 16, 5)


def _rewrite(path: Path, change) -> None:
    rows = read_clip_index(path)
    change(rows)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=INDEX_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def test_check_cli_rejects_leaked_and_out_of_range_index(videos, tmp_path):
    runner = CliRunner()
    good = tmp_path / "good.csv"
    result = runner.invoke(main, ["index", str(videos), str(good), "--val-fraction", "0.25", "--test-fraction", "0.25"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["index", "--check", str(good)])
    assert result.exit_code == 0, result.output
    assert "train:" in result.output and "ok" in result.output

    leaked = tmp_path / "leaked.csv"
    leaked.write_bytes(good.read_bytes())
    (tmp_path / "leaked.json").write_bytes((tmp_path / "good.json").read_bytes())

    def leak(rows):
        video = rows[0]["path"]
        other = next(r["split"] for r in rows if r["split"] != rows[0]["split"])
        next(r for r in rows if r["path"] == video and r["clip_idx"] == 0)["split"] = other
    _rewrite(leaked, leak)
    result = runner.invoke(main, ["index", "--check", str(leaked), "--videos-dir", str(videos)])
    assert result.exit_code == 1
    assert "leak across splits" in result.output

    out_of_range = tmp_path / "range.csv"
    out_of_range.write_bytes(good.read_bytes())

    def stretch(rows):
        last = [r for r in rows if r["path"] == "Fighting/f2.avi"][-1]
        last["end_frame"] = last["n_frames"] + 8
    _rewrite(out_of_range, stretch)
    result = runner.invoke(main, ["index", "--check", str(out_of_range), "--videos-dir", str(videos)])
    assert result.exit_code == 1
    assert "is not inside the video's 70 frames" in result.output

    (videos / "Fighting" / "f1.avi").unlink()
    result = runner.invoke(main, ["index", "--check", str(good)])
    assert result.exit_code == 1 and "Fighting/f1.avi: not found" in result.output


def test_real_videos_covered(shared_data, tmp_path):
    root = tmp_path / "real"
    sources = {"Normal_calm/ta_chi.mp4": "st-gcn/ta_chi.mp4", "Normal_calm/test.avi": "mmaction2/test.avi",
               "Fight/part_0.mp4": "mmaction2/part_0.mp4", "Fight/det.mp4": "mmaction2/demo_spatiotemporal_det.mp4",
               "Fight/one.mp4": "torchcodec/testsrc2_mpeg4.mp4", "Fight/corrupted.mp4": "decord/corrupted.mp4"}
    for rel, source in sources.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).symlink_to((shared_data / source).resolve())
    build_clip_index(root, tmp_path / "i.csv", val_fraction=0.2, test_fraction=0.2, progress=False)
    rows = read_clip_index(tmp_path / "i.csv")
    # decoded lengths from shared/data/README.md; corrupted.mp4 claims 50 frames, 28 decode
    expected = {"Normal_calm/ta_chi.mp4": 300, "Normal_calm/test.avi": 164, "Fight/part_0.mp4": 32,
                "Fight/det.mp4": 57, "Fight/one.mp4": 1, "Fight/corrupted.mp4": 28}
    for path, n in expected.items():
        windows = [(r["start_frame"], r["end_frame"]) for r in rows if r["path"] == path]
        assert {r["n_frames"] for r in rows if r["path"] == path} == {n}
        _assert_covers_as_specified(windows, n, 32, 16)
    assert check_clip_index(tmp_path / "i.csv")[0] == []


def test_commands_name_a_wrong_index_file_without_a_traceback(tmp_path):
    from click.testing import CliRunner

    from seqvision.cli import main

    (tmp_path / "notes.avi").write_text("not a video\n")
    (tmp_path / "folder").mkdir()
    for args in (["index", "--check", str(tmp_path / "folder")], ["embed", str(tmp_path / "notes.avi"), "--out",
                                                                   str(tmp_path / "emb")]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        assert str(tmp_path / ("folder" if args[0] == "index" else "notes.avi")) in result.output
    assert not (tmp_path / "emb").exists()
