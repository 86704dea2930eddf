"""Embedding export from a clip index: right frames, masked pooling, resume after SIGKILL, CLI."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from seqvision.cli import main
from seqvision.clip_embeddings import (KILL_AFTER_CHUNKS_ENV, ClipEncoder, export_clip_embeddings,
                                       pool_frame_embeddings, read_json)
from seqvision.clip_index import build_clip_index, read_clip_index
from seqvision.sampling import sample_uniform_indices
from tests.conftest import decode_index, write_video

ROOT = Path(__file__).parents[1]
SIZE = 96  # the synthetic frames are 96 x 64; a 96 px square keeps their index blocks readable


class FrameIndexBackbone:
    """Stand-in backbone: ``[B, S, S, 3]`` -> ``[B, 2]`` (the index a synthetic frame carries, 1);
    counts the frames it embeds."""

    output_shape = (None, 2)

    def __init__(self):
        self.frames_seen = 0

    def predict_on_batch(self, frames):
        self.frames_seen += len(frames)
        return np.array([[decode_index(f), 1.0] for f in frames], np.float32)


def fake_encoder(backbone=None) -> ClipEncoder:
    return ClipEncoder("frames", backbone or FrameIndexBackbone(), {"name": "frame-index"}, SIZE, 2)


@pytest.fixture
def index(tmp_path) -> Path:
    for rel, n in {"Normal/a.avi": 70, "Normal/b.avi": 10, "Normal/c.avi": 40, "Fight/d.avi": 50,
                   "Fight/e.avi": 33, "Fight/f.avi": 80}.items():
        write_video(tmp_path / "videos" / rel, n)
    build_clip_index(tmp_path / "videos", tmp_path / "index.csv", clip_len=32, stride=16, val_fraction=0.34,
                     test_fraction=0, progress=False)
    return tmp_path / "index.csv"


def test_windows_get_their_sampled_frames_and_pooling_uses_the_mask(index, tmp_path):
    seq_len = 16
    shorter_than_t = 0
    manifest = export_clip_embeddings(index, tmp_path / "out", fake_encoder(), seq_len=seq_len, pool="mean+diff",
                                      keep_frames=True, chunk_rows=5, progress=False)
    assert manifest["pool"] == "mean+diff" and manifest["pooled_dim"] == 4
    rows = read_clip_index(index)
    for split, n in manifest["splits"].items():
        split_rows = [r for r in rows if r["split"] == split]
        assert n == len(split_rows)
        assert (tmp_path / "out" / f"rows_{split}.csv").read_text().splitlines()[1:] == \
            [line for line in index.read_text().splitlines()[1:] if line.startswith(split + ",")]
        frames = np.load(tmp_path / "out" / f"F_{split}.npy")
        mask = np.load(tmp_path / "out" / f"mask_{split}.npy")
        x = np.load(tmp_path / "out" / f"X_{split}.npy")
        assert x.dtype == np.float16 and x.shape == (n, 4) and frames.shape == (n, seq_len, 2)
        np.testing.assert_array_equal(np.load(tmp_path / "out" / f"y_{split}.npy"), [r["y"] for r in split_rows])
        for i, row in enumerate(split_rows):
            wanted = sample_uniform_indices(row["n_frames"], seq_len, row["start_frame"], row["end_frame"])
            assert mask[i].sum() == len(wanted) and mask[i, :len(wanted)].all()
            shorter_than_t += len(wanted) < seq_len
            np.testing.assert_array_equal(frames[i, :len(wanted), 0], wanted)
            assert not frames[i, len(wanted):].any()
            # Pooled over the valid frames only: padding would pull the mean down and add a jump.
            np.testing.assert_allclose(x[i, :2], [wanted.mean(), 1.0], rtol=1e-3)
            np.testing.assert_allclose(x[i, 2:], [np.diff(wanted).mean(), 0.0], rtol=1e-3)
    assert shorter_than_t == 1  # the 10-frame video: one window of 10 frames, mask 10 of 16


def test_pool_frame_embeddings_ignores_masked_frames():
    rng = np.random.default_rng(0)
    frames = rng.normal(size=(3, 6, 4)).astype(np.float32)
    lengths = np.array([6, 3, 1])
    mask = np.arange(6)[None] < lengths[:, None]
    garbage = frames.copy()
    garbage[~mask] = 1e6  # whatever sits in padded slots must not matter
    for pool in ("mean", "mean+diff", "mean+std", "max"):
        pooled = pool_frame_embeddings(garbage, mask, pool)
        for i, length in enumerate(lengths):
            alone = pool_frame_embeddings(frames[i:i + 1, :length], np.ones((1, length), bool), pool)
            np.testing.assert_allclose(pooled[i], alone[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pool_frame_embeddings(frames, mask, "mean+diff")[2, 4:], 0)
    with pytest.raises(ValueError, match="choose one of"):
        pool_frame_embeddings(frames, mask, "median")


_CHILD = """
import sys
from tests.test_clip_embeddings import fake_encoder
from seqvision.clip_embeddings import export_clip_embeddings
export_clip_embeddings(sys.argv[1], sys.argv[2], fake_encoder(), seq_len=8, keep_frames=True, chunk_rows=4,
                       progress=False)
"""


def test_killed_export_resumes_to_byte_identical_arrays(index, tmp_path):
    settings = dict(seq_len=8, keep_frames=True, chunk_rows=4, progress=False)
    export_clip_embeddings(index, tmp_path / "whole", fake_encoder(), **settings)
    env = {**os.environ, KILL_AFTER_CHUNKS_ENV: "2", "PYTHONPATH": str(ROOT)}
    killed = subprocess.run([sys.executable, "-c", _CHILD, str(index), str(tmp_path / "resumed")], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    state = read_json(tmp_path / "resumed" / "progress.json")
    assert sum(map(len, state["done"].values())) == 2
    assert not (tmp_path / "resumed" / "manifest.json").exists()

    backbone = FrameIndexBackbone()
    export_clip_embeddings(index, tmp_path / "resumed", fake_encoder(backbone), **settings)
    whole_backbone = FrameIndexBackbone()
    export_clip_embeddings(index, tmp_path / "again", fake_encoder(whole_backbone), **settings)
    assert 0 < backbone.frames_seen < whole_backbone.frames_seen  # finished chunks were not redone
    names = sorted(p.name for p in (tmp_path / "whole").iterdir() if p.suffix in (".npy", ".csv"))
    assert any(n.startswith("F_") for n in names) and any(n.startswith("X_") for n in names)
    for name in names:
        assert (tmp_path / "resumed" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
    # a complete export is not redone; other settings in the same folder are refused
    assert export_clip_embeddings(index, tmp_path / "whole", fake_encoder(backbone), **settings)["pool"]
    with pytest.raises(ValueError, match="other settings.*seq_len"):
        export_clip_embeddings(index, tmp_path / "whole", fake_encoder(), **{**settings, "seq_len": 4})


class ClipCountModel:
    """A stand-in for a run's clip model: [number of real frames, 1] per clip, whatever the pixels."""

    def predict_on_batch(self, inputs):
        mask = np.asarray(inputs["mask"])
        return np.stack([mask.sum(axis=1), np.ones(len(mask))], axis=1).astype(np.float32)


@pytest.mark.parametrize("kind", ["frames", "clips"])
def test_unreadable_video_rows_are_zero_and_listed(index, tmp_path, kind):
    (tmp_path / "videos" / "Fight" / "d.avi").write_text("damaged")
    encoder = fake_encoder() if kind == "frames" else ClipEncoder("clips", ClipCountModel(), {"run": "r"}, SIZE, 2,
                                                                  seq_len=8)
    manifest = export_clip_embeddings(index, tmp_path / "out", encoder, seq_len=8, progress=False)
    assert [Path(u["path"]).name for u in manifest["unreadable"]] == ["d.avi"]
    rows = read_clip_index(index)
    split = next(r["split"] for r in rows if r["path"] == "Fight/d.avi")
    x = np.load(tmp_path / "out" / f"X_{split}.npy")
    bad = np.array([r["path"] == "Fight/d.avi" for r in rows if r["split"] == split])
    assert not x[bad].any() and x[~bad].any()


def test_embed_cli_with_index_mobilenet_and_probe(index, tmp_path):
    result = CliRunner().invoke(main, ["embed", str(index), "--out", str(tmp_path / "emb"), "--img-size", "32",
                                       "--alpha", "0.35", "--weights", "none", "--seq-len", "4", "--pool", "mean",
                                       "--probe"])
    assert result.exit_code == 0, result.output
    manifest = read_json(tmp_path / "emb" / "manifest.json")
    assert manifest["encoder"]["name"] == "mobilenet" and manifest["pool"] == "mean"
    assert np.load(tmp_path / "emb" / "X_train.npy").shape == (manifest["splits"]["train"], manifest["dim"])
    assert "ROC-AUC" in result.output
    result = CliRunner().invoke(main, ["embed", str(index)])
    assert result.exit_code != 0 and "--out" in result.output


def test_run_encoder_gives_the_features_the_final_layer_reads(index, tmp_path):
    import json

    import keras

    from seqvision.backbones import build_backbone
    from seqvision.clip_embeddings import run_encoder
    from seqvision.models import build_video_classifier
    from seqvision.video import read_video_frames

    keras.utils.set_random_seed(0)
    backbone = build_backbone("cnn", 32, filters=(8,), pooling="gap")
    model = build_video_classifier(backbone, 2, 32, seq_len=4, units=8, head="mean")
    run = tmp_path / "run"
    run.mkdir()
    model.save(run / "model.keras")
    (run / "config.json").write_text(json.dumps({"kind": "video", "seq_len": 4, "img_size": 32}))
    (run / "labels.json").write_text(json.dumps(["a", "b"]))
    manifest = export_clip_embeddings(index, tmp_path / "out", run_encoder(run), progress=False)
    assert manifest["pool"] == "run-penultimate" and manifest["seq_len"] == 4 and manifest["dim"] == 8
    row = read_clip_index(index)[0]
    x = np.load(tmp_path / "out" / f"X_{row['split']}.npy")[0].astype(np.float32)
    wanted = sample_uniform_indices(row["n_frames"], 4, row["start_frame"], row["end_frame"])
    frames, _, _ = read_video_frames(tmp_path / "videos" / row["path"], indices=wanted, size=32)
    probs = model.predict_on_batch({"frames": frames[None].astype(np.float32), "mask": np.ones((1, 4), bool)})[0]
    kernel, bias = model.layers[-1].get_weights()
    logits = x @ kernel + bias
    np.testing.assert_allclose(np.exp(logits) / np.exp(logits).sum(), probs, atol=2e-3)


def test_an_identity_holding_a_tuple_still_finds_its_finished_export(index, tmp_path):
    """Backbone options hold tuples (filters); progress.json gives lists back: a rerun is "done", not refused."""
    encoder = ClipEncoder("frames", FrameIndexBackbone(), {"name": "frame-index", "filters": (32, 64)}, SIZE, 2)
    first = export_clip_embeddings(index, tmp_path / "out", encoder, seq_len=4, progress=False)
    again = export_clip_embeddings(index, tmp_path / "out", encoder, seq_len=4, progress=False)
    assert again == json.loads(json.dumps(first))
