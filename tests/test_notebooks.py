"""The tutorial notebooks: valid, and (slow) they run top to bottom in quick mode."""
import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def code_of(notebook: Path) -> str:
    cells = json.loads(notebook.read_text())["cells"]
    return "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


def test_notebooks_exist():
    assert [n.name for n in NOTEBOOKS] == ["01_video_quickstart.ipynb", "02_transfer_learning.ipynb", "03_skeleton.ipynb"]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda n: n.stem)
def test_notebook_is_valid_and_clean(notebook):
    nb = json.loads(notebook.read_text())
    assert nb["nbformat"] == 4
    for cell in nb["cells"]:
        assert cell["cell_type"] in ("markdown", "code")
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, "commit notebooks without outputs"
    ast.parse(code_of(notebook), filename=str(notebook))


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda n: n.stem)
def test_notebook_runs_in_quick_mode(notebook, tmp_path):
    env = {**os.environ, "SEQVISION_NOTEBOOK_QUICK": "1", "SEQVISION_NOTEBOOK_DIR": str(tmp_path / "work"),
           "MPLBACKEND": "Agg", "SEQVISION_CACHE_DIR": str(tmp_path / "cache")}
    # As `python -c`, like a kernel: no __main__ file, so spawned extraction workers do not re-run it.
    result = subprocess.run([sys.executable, "-c", code_of(notebook)], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
