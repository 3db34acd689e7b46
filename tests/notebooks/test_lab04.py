"""Lab 4 « Spark, Iceberg et MinIO »: the solution runs on the cluster, the untouched lab fails its checks kindly."""

from __future__ import annotations

import pytest
from notebook_cells import (
    assert_every_self_check_fails_kindly,
    assert_every_self_check_passes,
    assert_only_self_checks_fail,
    outputs_text,
)

from dpe_pipeline import lakehouse
from dpe_pipeline.settings import project_dir

pytestmark = pytest.mark.notebooks

SOLUTION = project_dir() / "solutions" / "04_spark_iceberg.ipynb"
LAB = project_dir() / "labs" / "04_spark_iceberg.ipynb"
SELF_CHECKS = 8  # one per exercise
SOLUTION_LEARNER = "nbtest"
LAB_LEARNER = "nbtest_unfinished"
SERVICES = ("postgres", "minio", "spark-master", "spark-worker")


@pytest.fixture(scope="module")
def solution_run(run_notebook, ensure_services):
    ensure_services(*SERVICES)
    run = run_notebook(SOLUTION, SOLUTION_LEARNER, parameters={"department": "48", "partitions": 4})
    print(f"{SOLUTION.name}: {run.seconds:.1f} s under papermill")
    return run


@pytest.fixture(scope="module")
def lab_run(run_notebook, ensure_services):
    ensure_services(*SERVICES)
    run = run_notebook(LAB, LAB_LEARNER, allow_errors=True)
    yield run
    lakehouse.drop_namespace(f"lab_{LAB_LEARNER}")


# --- the solution -------------------------------------------------------------------


def test_solution_passes_every_self_check(solution_run):
    assert_every_self_check_passes(solution_run, SELF_CHECKS)


def test_solution_writes_its_tables_in_the_learner_namespace(solution_run):
    catalog = lakehouse.load_lake_catalog()
    namespace = f"lab_{SOLUTION_LEARNER}"
    tables = {name for _, name in catalog.list_tables(namespace)}
    assert {"logements", "quarantaine", "stats_commune_mois"} <= tables
    logements = catalog.load_table((namespace, "logements"))
    assert "passoire" in {field.name for field in logements.schema().fields}  # schema evolution kept
    assert len(logements.snapshots()) >= 3  # MERGE, DELETE, UPDATE


def test_solution_plan_shows_the_filter_pushed_to_postgresql(solution_run):
    # What §2 asks to observe: without read-side char padding, the label filter reaches PostgreSQL
    plan = outputs_text(solution_run.cell("lazy"))
    assert "PushedFilters: [*In(etiquette_dpe" in plan, plan


def test_solution_shows_the_idempotent_rerun_and_the_cluster(solution_run):
    rerun = outputs_text(solution_run.cell("rerun"))
    counts = [line for line in rerun.splitlines() if line.startswith("snapshots de logements")]
    assert counts and counts[0].split(" avant")[0].split(":")[-1].strip() == counts[0].split(", ")[-1].split()[0]
    assert "inserted=0, updated=0" in rerun
    assert "ALIVE" in outputs_text(solution_run.cell("ex1-show"))


# --- the lab, as a student receives it ------------------------------------------------


def test_unfinished_lab_fails_each_self_check_with_a_french_hint(lab_run):
    assert_every_self_check_fails_kindly(lab_run, SELF_CHECKS, "À FAIRE", "ALTER TABLE")


def test_unfinished_lab_raises_only_in_its_self_checks(lab_run):
    # The cells that read an exercise's DataFrame or the job's tables wait for them (⏳)
    waiting = assert_only_self_checks_fail(lab_run)
    assert {"ex1-show", "lazy", "rerun", "ex5-delete", "ex7-show", "end"} <= waiting


def test_unfinished_lab_writes_no_table(lab_run):
    # The setup cell resets the namespace; only the learner's own cells would create tables
    catalog = lakehouse.load_lake_catalog()
    namespace = f"lab_{LAB_LEARNER}"
    assert (namespace,) not in catalog.list_namespaces() or not catalog.list_tables(namespace)
