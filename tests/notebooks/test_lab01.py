"""Lab 1 « API REST avec Python »: the solution runs end to end, the untouched lab fails its checks kindly."""

from __future__ import annotations

import json

import pytest
from notebook_cells import (
    assert_every_self_check_fails_kindly,
    assert_every_self_check_passes,
    assert_only_self_checks_fail,
    outputs_text,
)

from dpe_pipeline.ademe import AdemeClient
from dpe_pipeline.settings import get_settings, project_dir

pytestmark = pytest.mark.notebooks

SOLUTION = project_dir() / "solutions" / "01_api_rest.ipynb"
LAB = project_dir() / "labs" / "01_api_rest.ipynb"
DEPARTMENT, YEAR = "69", 2023
SELF_CHECKS = 9  # one per exercise
SOLUTION_LEARNER = "nbtest"  # later labs' tests read what this run saved
LAB_LEARNER = "nbtest_unfinished"


@pytest.fixture(scope="module")
def api_total(ademe_api) -> int:
    client = AdemeClient(ademe_api, get_settings().ademe_dataset)
    return client.count(department=DEPARTMENT, date_from=f"{YEAR}-01-01", date_to=f"{YEAR}-12-31")


@pytest.fixture(scope="module")
def solution_run(run_notebook):
    run = run_notebook(SOLUTION, SOLUTION_LEARNER, parameters={"department": DEPARTMENT, "year": YEAR})
    print(f"{SOLUTION.name}: {run.seconds:.1f} s under papermill")
    return run


@pytest.fixture(scope="module")
def lab_run(run_notebook):
    return run_notebook(LAB, LAB_LEARNER, allow_errors=True)


# --- the solution -------------------------------------------------------------------


def test_solution_passes_every_self_check(solution_run):
    assert_every_self_check_passes(solution_run, SELF_CHECKS)


def test_solution_saves_every_dpe_of_the_filter_under_the_learner_namespace(solution_run, api_total):
    raw_file = project_dir() / "data" / "raw" / f"lab_{SOLUTION_LEARNER}" / f"dpe_{DEPARTMENT}_{YEAR}.jsonl"
    assert raw_file.parent == solution_run.raw_dir
    assert raw_file.is_file()
    records = [json.loads(line) for line in raw_file.read_text(encoding="utf-8").splitlines()]
    assert api_total > 10_000, "the filter must need cursor paging"
    assert len(records) == len({record["numero_dpe"] for record in records}) == api_total
    assert {record["code_departement_ban"] for record in records} == {DEPARTMENT}
    assert all(record["date_reception_dpe"].startswith(str(YEAR)) for record in records)


def test_solution_shows_the_real_window_error_and_a_label_plot(solution_run):
    window_check = outputs_text(solution_run.cell("ex2-check"))
    assert '"size * page" cannot be more than 10000' in window_check
    plot_outputs = solution_run.cell("ex6-plot")["outputs"]
    assert any("image/png" in output.get("data", {}) for output in plot_outputs)


def test_solution_shows_the_warning_line_then_the_exception(solution_run):
    # § 9 promises both: the client's WARNING log line, then the AdemeQueryError the code catches
    shown = outputs_text(solution_run.cell("client-demo"))
    assert "WARNING dpe_pipeline.ademe : ADEME refused" in shown
    assert "AdemeQueryError :" in shown


def test_solution_ran_with_the_injected_parameters(solution_run):
    injected = solution_run.cells_tagged("injected-parameters")
    assert injected and f"year = {YEAR}" in injected[0]["source"]


# --- the lab, as a student receives it ------------------------------------------------


def test_unfinished_lab_fails_each_self_check_with_a_french_hint(lab_run):
    assert_every_self_check_fails_kindly(lab_run, SELF_CHECKS, "complétez la cellule « À FAIRE »")


def test_unfinished_lab_raises_only_in_its_self_checks(lab_run):
    # The cells that explore an exercise's result wait for it (⏳) instead of raising
    waiting = assert_only_self_checks_fail(lab_run)
    assert {"ex1-explore", "ex5-explore", "ex9-explore"} <= waiting


def test_unfinished_lab_writes_nothing(lab_run):
    assert not lab_run.raw_dir.exists()
