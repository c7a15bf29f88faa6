"""The notebooks in ``notebooks/`` run top to bottom without an error, and are committed without outputs.

Each notebook is executed with nbclient on the ``python3`` kernel (installed into the environment by ipykernel), in
the ``notebooks/`` folder, with the repository root first on the kernel's PYTHONPATH so that it imports this working
tree's ``preference_games`` (not whatever copy happens to be installed). Any exception in any cell — including the
notebooks' own ``assert`` checks of the theorems and fixed points — fails the test. Each takes well under a minute
on one CPU core (measured: about 10–25 s each, kernel start included).
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPECTED = {"rps_dynamics.ipynb", "checking_a_theorem.ipynb", "new_algorithm_template.ipynb"}
CELL_TIMEOUT_S = 600  # generous: a loaded 2-core machine can be several times slower than an idle one


def _builder():
    spec = importlib.util.spec_from_file_location("build_notebooks", NOTEBOOK_DIR / "build_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_notebook_is_here():
    assert EXPECTED <= {path.name for path in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for i, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: cell {i} has outputs; strip them"
            assert cell.execution_count is None, f"{path.name}: cell {i} has an execution count; strip it"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_matches_its_builder(path):
    """The committed file is what ``python notebooks/build_notebooks.py`` writes (edit the builder, not the file)."""
    builder = _builder()
    assert path.name in builder.NOTEBOOKS, f"{path.name} is not built by notebooks/build_notebooks.py"
    expected = json.loads(nbformat.writes(builder.notebook(path.name)))
    assert json.loads(path.read_text(encoding="utf-8")) == expected, "rebuild: python notebooks/build_notebooks.py"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    monkeypatch.setenv("MPLBACKEND", "Agg")  # headless; the notebooks' %matplotlib inline takes over in the kernel
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError on the first failing cell
    elapsed = time.perf_counter() - start
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    print(f"{path.name}: {elapsed:.1f} s")
