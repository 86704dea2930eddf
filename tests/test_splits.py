"""One group rule and one splitter for videos and skeletons; groups files for other naming schemes."""
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from seqvision.datasets import Clip, split_train_val
from seqvision.errors import SeqvisionError
from seqvision.skeleton import split_train_val as split_skeletons
from seqvision.splits import group_of, read_groups_file


def test_the_group_rule():
    assert group_of("v_ApplyEyeMakeup_g08_c01") == "v_ApplyEyeMakeup_g08"
    assert group_of("V_Run_G12_C3") == "V_Run_G12"
    assert group_of("clip_0007") == "clip_0007"
    assert group_of("clip_0007", own="walk/clip_0007") == "walk/clip_0007"
    # The video and skeleton paths use the same rule: a video named like a PYSKL frame_dir gets its group.
    assert Clip(Path("/d/Run/v_Run_g03_c02.avi"), "Run").group == group_of("v_Run_g03_c02") == "v_Run_g03"
    assert Clip(Path("/d/Run/v_Run_g03_c02"), "Run").group == "v_Run_g03"  # a frame folder


def _groups_csv(path: Path, rows) -> Path:
    path.write_text("clip,group\n" + "".join(f"{c},{g}\n" for c, g in rows))
    return path


def test_video_split_follows_a_groups_file(tmp_path):
    # Names that say nothing of the recording: the file says clips 3k..3k+2 of a class are one session.
    clips = [Clip(Path(f"/d/{label}/take{i:03d}.mp4"), label) for label in "AB" for i in range(30)]
    groups = _groups_csv(tmp_path / "groups.csv", [(f"{c.label}/take{i % 30:03d}", f"{c.label}{(i % 30) // 3}")
                                                   for i, c in enumerate(clips)])
    train, val = split_train_val(clips, 0.2, seed=0, groups_file=groups)
    table = read_groups_file(groups)
    held = {table[c.key] for c in val}
    assert held.isdisjoint(table[c.key] for c in train)
    assert len(val) == 12 and {c.label for c in val} == {"A", "B"}
    assert all(len([c for c in val if table[c.key] == g]) == 3 for g in held)
    # Bare names (no label) work when they are unique.
    bare = _groups_csv(tmp_path / "bare.csv", [(f"take{i:03d}", f"s{i // 3}") for i in range(30)])
    train, val = split_train_val(clips, 0.2, seed=0, groups_file=bare)
    assert {f"s{int(c.path.stem[4:]) // 3}" for c in val}.isdisjoint(f"s{int(c.path.stem[4:]) // 3}" for c in train)


def test_groups_file_errors_name_the_file_and_the_clips(tmp_path):
    clips = [Clip(Path(f"/d/{label}/take{i}.mp4"), label) for label in "AB" for i in range(4)]
    partial = _groups_csv(tmp_path / "partial.csv", [("A/take0", "x")])
    with pytest.raises(SeqvisionError, match=r"partial.csv: no group for 7 clip\(s\): A/take1"):
        split_train_val(clips, 0.2, groups_file=partial)
    (tmp_path / "noheader.csv").write_text("A/take0,x\n")
    with pytest.raises(SeqvisionError, match="header 'clip,group'"):
        read_groups_file(tmp_path / "noheader.csv")
    twice = _groups_csv(tmp_path / "twice.csv", [("a", "x"), ("a", "y")])
    with pytest.raises(SeqvisionError, match="two groups"):
        read_groups_file(twice)


def test_skeleton_split_uses_the_same_splitter_and_groups_file(tmp_path):
    frame_dirs = [f"seq{i:03d}" for i in range(40)]
    labels = np.array([i % 2 for i in range(40)])
    groups = _groups_csv(tmp_path / "g.csv", [(d, f"person{i // 4}") for i, d in enumerate(frame_dirs)])
    train, val = split_skeletons(labels, frame_dirs, 0.2, seed=0, groups_file=groups)
    person = lambda rows: {int(r) // 4 for r in rows}  # noqa: E731
    assert person(train).isdisjoint(person(val)) and len(val) == 8
    assert set(labels[val]) == {0, 1}
    # Without a file every sequence is its own group: exactly the share asked for.
    train, val = split_skeletons(labels, frame_dirs, 0.2, seed=0)
    assert len(val) == 8 and len(train) == 32


def test_train_skeleton_takes_groups_from_the_cli(tmp_path):
    import pickle

    from seqvision.cli import main
    from seqvision.skeleton_synth import make_synthetic_skeleton_dataset

    ann = tmp_path / "s.pkl"
    make_synthetic_skeleton_dataset(ann, num_per_class=10, num_classes=2, seed=0)
    data = pickle.loads(ann.read_bytes())
    train_dirs = data["split"]["train1"]
    groups = _groups_csv(tmp_path / "g.csv", [(d, f"g{i // 2}") for i, d in enumerate(train_dirs)])
    result = CliRunner().invoke(main, ["train-skeleton", str(ann), "--out", str(tmp_path / "run"), "--epochs", "1",
                                       "--units", "4", "--seq-len", "8", "--groups", str(groups),
                                       "--val-fraction", "0.25"])
    assert result.exit_code == 0, result.output
    import json
    assert json.loads((tmp_path / "run" / "config.json").read_text())["groups_file"] == str(groups)
    missing = _groups_csv(tmp_path / "m.csv", [(train_dirs[0], "g")])
    result = CliRunner().invoke(main, ["train-skeleton", str(ann), "--out", str(tmp_path / "run2"), "--epochs", "1",
                                       "--groups", str(missing)])
    assert result.exit_code == 1 and "no group for" in result.output and "Traceback" not in result.output


def test_a_val_list_alone_holds_its_clips_out_of_training(tmp_path):
    from seqvision.demo import make_demo_videos
    from seqvision.training import VideoTrainConfig, split_clips

    make_demo_videos(tmp_path / "v", clips_per_class=2, groups_per_class=2, classes=("move_left", "move_right"))
    listing = tmp_path / "testlist.txt"
    listing.write_text("move_left/v_move_left_g01_c01.avi\nmove_right/v_move_right_g01_c01.avi\n")
    train, val, _ = split_clips(VideoTrainConfig(data_dir=str(tmp_path / "v"), val_list=str(listing)))
    assert {c.key for c in val} == {"move_left/v_move_left_g01_c01", "move_right/v_move_right_g01_c01"}
    assert len(train) == 2 and not {c.key for c in train} & {c.key for c in val}
    with pytest.raises(SeqvisionError, match="both training and validation"):
        split_clips(VideoTrainConfig(data_dir=str(tmp_path / "v"), val_dir=str(tmp_path / "v")))
