"""Execute every notebook top to bottom with few draws; a broken cell fails the test.

The cell tagged ``parameters`` is kept and an override cell is inserted right after it,
the way papermill does, so the notebooks stay plain Jupyter files.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from .conftest import CHINCHILLA_CSV, real_data_path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
FAST = "CHAINS, WARMUP, DRAWS = 2, 300, 300\nBOOTSTRAP = 12\n"
OVERRIDES = {
    "02-chinchilla-replication.ipynb": FAST + f"RUNS = {str(CHINCHILLA_CSV)!r}\n",
    # In the kernel: its fits reuse the compiled programs of the comparison cell, where spawned workers would
    # each import the package and compile their own (local processes are tested in test_executor.py).
    "04-which-law.ipynb": FAST + 'EXECUTOR = "sequential"\n',
}


def _execute(path: Path, override: str) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    index = next((i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])), None)
    assert index is not None, f"{path.name} has no cell tagged 'parameters'"
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(override))
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_notebook_runs_top_to_bottom(name):
    if name in OVERRIDES and "RUNS" in OVERRIDES[name]:
        real_data_path()
    nb = _execute(NOTEBOOKS / name, OVERRIDES.get(name, FAST))
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    images = sum("image/png" in o.get("data", {})
                 for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert images >= 1, f"{name} shows no figure"


def test_notebooks_are_stored_without_outputs():
    for path in NOTEBOOKS.glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        stored = [c for c in nb.cells if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count"))]
        assert not stored, f"{path.name}: clear outputs before committing (see README, Notebooks)"


def test_notebooks_use_the_public_api_only():
    for path in NOTEBOOKS.glob("*.ipynb"):
        source = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        assert "bayes_scaling." not in source.replace("import bayes_scaling as bs", ""), path.name
