"""Lab 3 « Kafka et PostgreSQL »: the solution runs against Kafka and PostgreSQL, the untouched lab fails kindly."""

from __future__ import annotations

import json

import pytest
from notebook_cells import (
    assert_every_self_check_fails_kindly,
    assert_every_self_check_passes,
    assert_only_self_checks_fail,
    displayed_text,
    outputs_text,
)

from dpe_pipeline import kafka_io, labgen, postgres
from dpe_pipeline.settings import project_dir

pytestmark = pytest.mark.notebooks

SOLUTION = project_dir() / "solutions" / "03_kafka_postgres.ipynb"
LAB = project_dir() / "labs" / "03_kafka_postgres.ipynb"
SELF_CHECKS = 6  # one per exercise
SOLUTION_LEARNER = "nbtest"
LAB_LEARNER = "nbtest_unfinished"
SERVICES = ("postgres", "kafka")
MAX_RECORDS = 1500
#: Solution lines that other, given cells of the lab use too: they reveal nothing.
GENERIC_LINES = {"producer.flush()", "with connection.cursor() as cursor:"}


def lab_topics(learner_id: str) -> list[str]:
    return [f"lab.{learner_id}.dpe.raw", f"lab.{learner_id}.dpe.dlq"]


def lab_groups(learner_id: str) -> list[str]:
    return [f"lab-{learner_id}-postgres", f"lab-{learner_id}-pool"]


def forget_learner(learner_id: str) -> None:
    """Delete what a lab run wrote: its topics, consumer groups and PostgreSQL schema."""
    admin = kafka_io.create_admin()
    try:
        admin.delete_groups(lab_groups(learner_id))
    except Exception:  # noqa: BLE001 - groups that were never created
        pass
    finally:
        admin.close()
    kafka_io.delete_topics(lab_topics(learner_id))
    with postgres.connect() as connection:
        postgres.drop_schema(connection, f"lab_{learner_id}")
    connection.close()


@pytest.fixture(scope="module")
def solution_run(run_notebook, ensure_services):
    ensure_services(*SERVICES)
    run = run_notebook(SOLUTION, SOLUTION_LEARNER, parameters={"department": "48", "max_records": MAX_RECORDS})
    print(f"{SOLUTION.name}: {run.seconds:.1f} s under papermill")
    yield run
    forget_learner(SOLUTION_LEARNER)


@pytest.fixture(scope="module")
def lab_run(run_notebook, ensure_services):
    ensure_services(*SERVICES)
    run = run_notebook(LAB, LAB_LEARNER, allow_errors=True)
    yield run
    forget_learner(LAB_LEARNER)


def describe_group(group: str) -> dict:
    admin = kafka_io.create_admin()
    try:
        return admin.describe_groups([group])[group]
    finally:
        admin.close()


# --- the solution -------------------------------------------------------------------


def test_solution_passes_every_self_check(solution_run):
    assert_every_self_check_passes(solution_run, SELF_CHECKS)


def test_solution_creates_its_topics_in_the_learner_namespace(solution_run):
    raw_topic, dlq_topic = lab_topics(SOLUTION_LEARNER)
    admin = kafka_io.create_admin()
    try:
        descriptions = {item["name"]: item for item in admin.describe_topics([raw_topic, dlq_topic])}
    finally:
        admin.close()
    assert len(descriptions[raw_topic]["partitions"]) == 3
    assert len(descriptions[dlq_topic]["partitions"]) == 1


def test_solution_stores_rows_in_the_learner_schema(solution_run):
    with postgres.connect() as connection:
        rows = postgres.count_rows(connection, f"lab_{SOLUTION_LEARNER}")
        with connection.cursor() as cursor:
            cursor.execute(f'SELECT count(DISTINCT kafka_partition) FROM "lab_{SOLUTION_LEARNER}".dpe')
            partitions = cursor.fetchone()[0]
    connection.close()
    assert 0 < rows <= MAX_RECORDS
    assert partitions == 3
    assert "lignes réécrites : 0 ; lag après : 0" in outputs_text(solution_run.cell("replay"))  # idempotent replay


def test_solution_observes_both_rebalances(solution_run):
    table = outputs_text(solution_run.cell("ex5-table"))
    assert "panne détectée après" in table
    assert "deux rééquilibrages" in outputs_text(solution_run.cell("ex5-check"))
    # Every consumer the notebook started has stopped and left the group
    assert describe_group(lab_groups(SOLUTION_LEARNER)[1])["members"] == []


def test_solution_routes_malformed_messages_to_the_learner_dlq(solution_run):
    raw_topic, dlq_topic = lab_topics(SOLUTION_LEARNER)
    lag = kafka_io.consumer_lag(group_id=lab_groups(SOLUTION_LEARNER)[0], topic=dlq_topic)
    letters = sum(partition.end_offset for partition in lag.partitions)
    assert letters >= 5  # 2 broken messages × 2 groups + the learner's own
    assert "la vôtre" in outputs_text(solution_run.cell("ex6-check"))
    assert f"lab.{SOLUTION_LEARNER}." in raw_topic
    shown = displayed_text(solution_run.cell("ex6-show"))
    assert "LAB-CASSE-3" in shown and "b'LAB" not in shown  # keys decoded for display


# --- the lab, as a student receives it ------------------------------------------------


def test_unfinished_lab_fails_each_self_check_with_a_french_hint(lab_run):
    assert_every_self_check_fails_kindly(lab_run, SELF_CHECKS, " : ", "À FAIRE")


def test_unfinished_lab_raises_only_in_its_self_checks(lab_run):
    # The cells that show an exercise's result (a topic, `delivered`, `assignment_history`…) wait for it (⏳)
    waiting = assert_only_self_checks_fail(lab_run)
    assert {"ex1", "ex1-describe", "per-partition", "same-key", "ex5-table", "ex6-show"} <= waiting


def test_unfinished_lab_contains_no_solution_code():
    solution_code = {
        line.strip()
        for cell in json.loads(SOLUTION.read_text(encoding="utf-8"))["cells"]
        for line in labgen.solution_lines(labgen.cell_source(cell))
        if len(line.strip()) > 12  # skip `)` and other lines too short to give anything away
    } - GENERIC_LINES
    lab_code = {
        line.strip()
        for cell in json.loads(LAB.read_text(encoding="utf-8"))["cells"] if cell["cell_type"] == "code"
        for line in labgen.cell_source(cell).split("\n")
    }
    assert solution_code and not solution_code & lab_code, sorted(solution_code & lab_code)


def test_unfinished_lab_leaves_no_consumer_running(lab_run):
    assert describe_group(lab_groups(LAB_LEARNER)[1])["members"] == []
