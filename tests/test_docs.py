"""The docs a new user reads first: README pictures exist, data/README covers every format."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_pictures_are_committed_pngs():
    readme = (ROOT / "README.md").read_text()
    pictures = re.findall(r'<img src="([^"]+)"', readme) + re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    assert len(pictures) >= 2
    for picture in pictures:
        data = (ROOT / picture).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) < 200_000, picture


def test_data_readme_describes_every_format_and_dataset():
    text = (ROOT / "data" / "README.md").read_text()
    for topic in ("manifest.csv", "frames.json", "clip,group", "path,split", "keypoint_score", "Temporal_Anomaly",
                  "config.json", "features.npy", "X_<split>.npy", "detector.json", "serve", "mifs.csv",
                  "UCF101", "HMDB51", "UCF-Crime", "PYSKL"):
        assert topic in text, topic
