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
#: Services a lecture's cells read, started if needed (every lecture also gets the ADEME replay)
LECTURE_SERVICES = {
    "03_kafka_postgres": ("postgres", "kafka"),
    "04_spark_iceberg": ("postgres", "minio", "spark-master", "spark-worker"),
    "05_trino_superset": ("trino", "trino-worker", "superset"),
    "06_airflow": ("airflow",),
}
#: Lectures that show the main job's output (lake.dpe.*, the course dashboard)
NEEDS_MAIN_JOB = {"05_trino_superset"}


def prepare_stack(lecture, ensure_services) -> None:
    if lecture.stem in LECTURE_SERVICES:
        ensure_services(*LECTURE_SERVICES[lecture.stem])
    if lecture.stem in NEEDS_MAIN_JOB:
        from dpe_pipeline import pipeline

        if not pipeline.lake_is_loaded():
            ensure_services("api", "consumer", "spark-worker")
        # Runs the whole pipeline on an empty lake, else only refreshes the course dashboard
        assert pipeline.run_main_job_if_needed() == 0, "the main job failed: see its output above"


@pytest.mark.parametrize("lecture", LECTURES, ids=lambda path: path.name)
def test_lecture_runs_under_nbval_lax(lecture, ademe_api, ensure_services):
    prepare_stack(lecture, ensure_services)
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
