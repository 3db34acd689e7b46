"""labs/ is generated from solutions/: it must match the generator's output byte for byte.

No service needed: these tests are fast and catch a solution edited without ``./dpe labs``.
"""

from __future__ import annotations

import json

import pytest

from dpe_pipeline import labgen
from dpe_pipeline.settings import project_dir

ROOT = project_dir()
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
COMMITTED_NOTEBOOKS = SOLUTIONS + sorted((ROOT / "labs").glob("*.ipynb")) + sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_solutions():
    assert SOLUTIONS


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda path: path.name)
def test_lab_matches_the_generator_output(solution):
    lab = ROOT / "labs" / solution.name
    assert lab.is_file(), f"{lab} is missing: run ./dpe labs"
    assert lab.read_text(encoding="utf-8") == labgen.render_lab(solution), f"{lab} is stale: run ./dpe labs"


def test_check_mode_agrees(capsys):
    assert labgen.main(["--check"]) == 0, capsys.readouterr().out


@pytest.mark.parametrize("notebook", COMMITTED_NOTEBOOKS, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_committed_notebooks_carry_no_outputs_and_a_kernel(notebook):
    content = json.loads(notebook.read_text(encoding="utf-8"))
    executed = [
        cell.get("id")
        for cell in content["cells"]
        if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert not executed, f"clear the outputs of {notebook.name} before committing: {executed}"
    assert content["metadata"]["kernelspec"]["name"] == "python3"
    assert content["metadata"]["language_info"]["name"] == "python"
