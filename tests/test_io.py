import os

import pytest

from seqvision.io import atomic_write_json, atomic_write_text, read_json


def test_atomic_write_replaces_whole_files_with_the_usual_permissions(tmp_path):
    old_umask = os.umask(0o022)
    try:
        path = atomic_write_json(tmp_path / "sub" / "result.json", {"a": 1})
        assert read_json(path) == {"a": 1}
        assert path.stat().st_mode & 0o777 == 0o644  # as open() would create it, not mkstemp's 0o600
        os.umask(0o077)
        atomic_write_text(path, "{}\n")
        assert path.stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old_umask)
    assert [p.name for p in path.parent.iterdir()] == ["result.json"]  # no temporary file left


def test_failed_write_keeps_the_old_file(tmp_path):
    path = atomic_write_text(tmp_path / "manifest.csv", "old\n")
    with pytest.raises(TypeError):
        atomic_write_text(path, object())  # fails inside the write
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.csv"]
