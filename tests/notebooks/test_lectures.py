"""Lecture notebooks: every code cell runs against the stack (nbval, lax) and every cell is on a slide."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dpe_pipeline.settings import project_dir

pytestmark = pytest.mark.notebooks

ROOT = project_dir()
LECTURES = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SLIDE_TYPES = {"slide", "subslide", "fragment", "skip", "notes", "-"}


@pytest.mark.parametrize("lecture", LECTURES, ids=lambda path: path.name)
def test_lecture_runs_under_nbval_lax(lecture, ademe_api):
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q", str(lecture)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


@pytest.mark.parametrize("lecture", LECTURES, ids=lambda path: path.name)
def test_lecture_is_a_slide_deck(lecture):
    cells = json.loads(lecture.read_text(encoding="utf-8"))["cells"]
    types = [cell["metadata"].get("slideshow", {}).get("slide_type") for cell in cells]
    assert None not in types, "give every cell a slideshow.slide_type"
    assert set(types) <= SLIDE_TYPES
    assert types[0] == "slide"
    assert 15 <= types.count("slide") + types.count("subslide") <= 25
