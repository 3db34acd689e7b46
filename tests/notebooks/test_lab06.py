"""Lab 6 « Airflow »: the solution's DAG runs, retries and backfills; the untouched lab fails its checks kindly."""

from __future__ import annotations

import contextlib

import pytest
from notebook_cells import (
    assert_every_self_check_fails_kindly,
    assert_every_self_check_passes,
    assert_only_self_checks_fail,
)

from dpe_pipeline import checks
from dpe_pipeline.airflow_api import AirflowClient, AirflowError
from dpe_pipeline.settings import project_dir

pytestmark = pytest.mark.notebooks

SOLUTION = project_dir() / "solutions" / "06_airflow.ipynb"
LAB = project_dir() / "labs" / "06_airflow.ipynb"
SELF_CHECKS = 7  # one per exercise
SOLUTION_LEARNER = "nbtest"
LAB_LEARNER = "nbtest_unfinished"
SERVICES = ("replay", "airflow")


def remove_learner_dag(learner_id: str) -> None:
    """The learner's DAG file, then its metadata (deleting the metadata first, the parser would recreate it)."""
    (project_dir() / "dags" / f"lab_{learner_id}.py").unlink(missing_ok=True)
    with contextlib.suppress(AirflowError):  # never parsed, or already gone
        AirflowClient.from_settings().request("DELETE", f"/dags/{checks.lab_dag_id(learner_id)}")


@pytest.fixture(scope="module")
def solution_run(run_notebook, ensure_services):
    ensure_services(*SERVICES)
    remove_learner_dag(SOLUTION_LEARNER)
    run = run_notebook(SOLUTION, SOLUTION_LEARNER, parameters={"department": "48"})
    print(f"{SOLUTION.name}: {run.seconds:.1f} s under papermill")
    yield run
    remove_learner_dag(SOLUTION_LEARNER)


@pytest.fixture(scope="module")
def lab_run(run_notebook, ensure_services):
    ensure_services(*SERVICES)
    remove_learner_dag(LAB_LEARNER)
    yield run_notebook(LAB, LAB_LEARNER, allow_errors=True)
    remove_learner_dag(LAB_LEARNER)


# --- the solution -------------------------------------------------------------------


def test_solution_passes_every_self_check(solution_run):
    assert_every_self_check_passes(solution_run, SELF_CHECKS)


def test_solution_dag_lives_in_the_learner_namespace_and_backfilled_three_days(solution_run):
    client = AirflowClient.from_settings()
    dag_id = checks.lab_dag_id(SOLUTION_LEARNER)
    assert client.dag(dag_id)["fileloc"].endswith(f"dags/lab_{SOLUTION_LEARNER}.py")
    runs = client.request("GET", f"/dags/{dag_id}/dagRuns", params={"run_type": "backfill"})["dag_runs"]
    assert sorted(run["logical_date"][:10] for run in runs) == ["2024-04-01", "2024-04-02", "2024-04-03"]


def test_lab_dag_file_is_ignored_by_git():
    gitignore = (project_dir() / ".gitignore").read_text(encoding="utf-8")
    assert "dags/lab_*.py" in gitignore.splitlines()


# --- the lab, as a student receives it ------------------------------------------------


def test_unfinished_lab_fails_each_self_check_with_a_french_hint(lab_run):
    assert_every_self_check_fails_kindly(lab_run, SELF_CHECKS, "À FAIRE")


def test_unfinished_lab_raises_only_in_its_self_checks(lab_run):
    # Without the token of exercise 1 the cells that call the API wait for it (⏳), as does the XCom of exercise 5
    waiting = assert_only_self_checks_fail(lab_run)
    assert {"main-dag", "xcom", "main-runs"} <= waiting


def test_unfinished_lab_starts_no_run(lab_run):
    client = AirflowClient.from_settings()
    try:
        runs = client.request("GET", f"/dags/{checks.lab_dag_id(LAB_LEARNER)}/dagRuns")["dag_runs"]
    except AirflowError:
        runs = []  # the DAG was never imported: dag_id is still None
    assert runs == []
