"""Benchmark: extract-frames (one grab pass) vs the notebook's seek-per-frame approach.

    python bench/bench_extract.py [--repeats 3] [--seq-len 10]

For each video, in this process, best of ``--repeats`` runs of:
  sequential  one plain decode, ``while cap.read()``: the floor for reading every frame
  seek        notebook approach: for each of seq_len uniform indices ``cap.set(POS_FRAMES, i)``
              then ``cap.read()``, cvtColor to RGB (``seek+png`` also saves PNGs as we do)
  ours        ``read_video_frames(seq_len=…)`` (``ours+png``: ``extract_frames(jobs=1)``)
and checks that our frames equal the sequential decode at our indices and that the seek
approach returned the same frames (a mismatch there is a seek landing on the wrong frame).

Videos: the long-GOP H.264 files in ../shared/data, mmaction2/test.avi (MPEG-4 part 2), and
synthetic short-GOP (12) XVID / mp4v files written here with cv2.VideoWriter.
"""
from __future__ import annotations

import argparse
import shutil
import struct
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from seqvision.frame_folders import read_frame_folder
from seqvision.frames import IMAGE_FORMATS, extract_frames
from seqvision.sampling import sample_uniform_indices
from seqvision.video import read_video_frames

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
REAL = ["mmaction2/demo.mp4", "mmaction2/test.mp4", "st-gcn/clean_and_jerk.mp4", "st-gcn/skateboarding.mp4",
        "st-gcn/ta_chi.mp4", "video_features/v_GGSY1Qvo990.mp4", "video_features/v_ZNVhz7ctTq0.mp4",
        "mmaction2/test.avi"]


def keyframes(path: Path) -> list[int] | None:
    """Keyframe indices from an MP4 ``stss`` box or an AVI ``idx1`` chunk; None if not found."""
    data = path.read_bytes()
    if path.suffix == ".avi":
        at = data.find(b"idx1")
        if at < 0:
            return None
        size = struct.unpack("<I", data[at + 4:at + 8])[0]
        keys, frame = [], 0
        for entry in range(at + 8, at + 8 + size, 16):
            if data[entry + 2:entry + 4] in (b"dc", b"db"):
                if struct.unpack("<I", data[entry + 4:entry + 8])[0] & 0x10:
                    keys.append(frame)
                frame += 1
        return keys
    at = data.find(b"stss")  # first video track's sync samples (video comes first in these files)
    if at < 0:
        return None
    count = struct.unpack(">I", data[at + 8:at + 12])[0]
    return [k - 1 for k in struct.unpack(f">{count}I", data[at + 12:at + 12 + 4 * count])]


def write_synthetic(path: Path, fourcc: str, num_frames: int = 300, size=(320, 240)) -> Path:
    """A textured scene panning right, so inter frames carry real motion."""
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.integers(0, 256, (size[1], size[0] * 3, 3), dtype=np.uint8), (7, 7), 0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 25, size)
    for i in range(num_frames):
        x = (i * 2) % (size[0] * 2)
        frame = texture[:, x:x + size[0]].copy()
        cv2.putText(frame, str(i), (10, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (255, 255, 255), 2)
        writer.write(frame)
    writer.release()
    return path


def sequential(path: Path) -> int:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    count = 0
    while cap.read()[0]:
        count += 1
    cap.release()
    return count


def seek_read(path: Path, seq_len: int, out_dir: Path | None) -> tuple[np.ndarray, list[np.ndarray]]:
    """The notebook approach; writes PNGs into ``out_dir`` when given."""
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    indices = sample_uniform_indices(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), seq_len)
    frames = []
    for position, i in enumerate(indices):
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(i))
        ok, bgr = cap.read()
        if not ok:
            break
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        frames.append(rgb)
        if out_dir is not None:
            cv2.imwrite(str(out_dir / f"{position:06d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                        IMAGE_FORMATS["png"])
    cap.release()
    return indices, frames


def best_of(repeats: int, runs: list) -> list[float]:
    """Fastest time of each callable; rounds interleave them so a burst of load hits all alike."""
    best = [float("inf")] * len(runs)
    for _ in range(repeats):
        for k, run in enumerate(runs):
            start = time.perf_counter()
            run()
            best[k] = min(best[k], time.perf_counter() - start)
    return best


def reference_frames(path: Path, indices) -> dict[int, np.ndarray]:
    wanted, out = set(int(i) for i in indices), {}
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    i = 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        if i in wanted:
            out[i] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        i += 1
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seq-len", type=int, default=10)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_extract_"))
    try:
        videos = [DATA / name for name in REAL if (DATA / name).exists()]
        if not videos:
            print(f"note: {DATA} not found; synthetic videos only")
        videos += [write_synthetic(work / "synthetic_xvid.avi", "XVID"),
                   write_synthetic(work / "synthetic_mp4v.mp4", "mp4v")]
        header = (f"{'video':36s} {'frames':>6s} {'keyfr':>5s} {'seq ms':>7s} {'seek ms':>8s} {'ours ms':>8s} "
                  f"{'seek+png':>8s} {'ours+png':>8s} {'speedup':>7s} {'ours/seq':>8s}  check")
        print(f"seq_len={args.seq_len}, best of {args.repeats}; speedup = seek+png / ours+png "
              f"(extract_frames); ours/seq = read_video_frames / one sequential decode; keyfr = keyframes in index")
        print(header)
        print("-" * len(header))
        totals = np.zeros(5)
        for number, path in enumerate(videos):
            label = f"{path.parent.name}/{path.name}" if path.parent != work else f"synthetic/{path.name}"
            tree = work / "tree" / f"{number}_{path.stem}"
            (tree / "videos" / "c").mkdir(parents=True)
            (tree / "videos" / "c" / path.name).symlink_to(path.resolve())

            def ours_png():
                shutil.rmtree(tree / "out", ignore_errors=True)
                results = extract_frames(tree / "videos", tree / "out", seq_len=args.seq_len, jobs=1, progress=False)
                assert results[0].status == "ok", results[0].reason

            def seek_png():
                shutil.rmtree(tree / "seek", ignore_errors=True)
                (tree / "seek").mkdir()
                seek_read(path, args.seq_len, tree / "seek")

            t_seq, t_seek, t_ours, t_seek_png, t_ours_png = best_of(args.repeats, [
                lambda: sequential(path), lambda: seek_read(path, args.seq_len, None),
                lambda: read_video_frames(path, seq_len=args.seq_len), seek_png, ours_png])
            totals += [t_seq, t_seek, t_ours, t_seek_png, t_ours_png]

            frames, indices, info = read_video_frames(path, seq_len=args.seq_len)
            truth = reference_frames(path, indices)
            saved = read_frame_folder(tree / "out" / "c" / path.stem)
            seek_indices, seek_frames = seek_read(path, args.seq_len, None)
            problems = []
            if not all(np.array_equal(f, truth[int(i)]) for f, i in zip(frames, indices)):
                problems.append("OURS != sequential")
            if not np.array_equal(saved, frames):
                problems.append("saved PNG != read")
            if list(seek_indices) != list(indices):
                problems.append("seek indices differ (metadata count)")
            wrong = [int(i) for f, i in zip(seek_frames, indices) if not np.array_equal(f, truth[int(i)])]
            if wrong or len(seek_frames) != len(indices):
                problems.append(f"seek wrong frame at {wrong}")
            keys = keyframes(path)
            print(f"{label:36s} {info.num_frames:6d} {len(keys) if keys else '?':>5} {t_seq * 1e3:7.0f} "
                  f"{t_seek * 1e3:8.0f} {t_ours * 1e3:8.0f} {t_seek_png * 1e3:8.0f} {t_ours_png * 1e3:8.0f} "
                  f"{t_seek_png / t_ours_png:6.2f}x {t_ours / t_seq:8.2f}  {'; '.join(problems) or 'equal'}")
        seq, seek, ours, seek_png, ours_png = totals
        print("-" * len(header))
        print(f"{'total':36s} {'':6s} {'':>5s} {seq * 1e3:7.0f} {seek * 1e3:8.0f} {ours * 1e3:8.0f} "
              f"{seek_png * 1e3:8.0f} {ours_png * 1e3:8.0f} {seek_png / ours_png:6.2f}x {ours / seq:8.2f}")
        print(f"overall: extract_frames {seek_png / ours_png:.2f}x faster than seek+png; "
              f"read_video_frames {seek / ours:.2f}x faster than seek-read and takes {ours / seq:.2f} of one "
              f"sequential decode (extract_frames, with PNG writing: {ours_png / seq:.2f})")
        start = time.perf_counter()
        all_tree = work / "all"
        (all_tree / "videos" / "c").mkdir(parents=True)
        for path in videos:
            (all_tree / "videos" / "c" / f"{len(list(all_tree.rglob('*.*')))}{path.suffix}").symlink_to(path.resolve())
        extract_frames(all_tree / "videos", all_tree / "out", seq_len=args.seq_len, jobs=1, progress=False)
        print(f"one extract_frames(jobs=1) call over all {len(videos)} videos: {time.perf_counter() - start:.2f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
