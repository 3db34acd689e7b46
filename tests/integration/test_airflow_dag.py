"""Module 6 against the live stack: Airflow parses ``dags/`` and runs the main job end to end.

Two manual runs of ``dpe_pipeline`` through Airflow's REST API (v2, JWT from ``/auth/token``),
both on Lozère (48), the bundled department whose records carry no reception date:

- with empty dates (every DPE of the department): every task succeeds, the lake holds one
  row per DPE of ``raw.dpe`` and the dashboard has just been refreshed;
- with a one-day range, as a daily run would ask: nothing is ingested, the run still
  succeeds and the steps after the ingestion are skipped.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dpe_pipeline import postgres, superset, trino_queries
from dpe_pipeline.airflow_api import AirflowClient
from dpe_pipeline.settings import get_settings

pytestmark = pytest.mark.integration

DAG_ID = "dpe_pipeline"
DEPARTMENT = "48"
SERVICES = (
    "postgres", "kafka", "replay", "api", "consumer", "minio", "spark-master", "spark-worker",
    "trino", "trino-worker", "superset", "airflow",
)
TASKS = {
    "resolve_scope", "ingest", "has_new_records", "wait_for_consumers", "spark_lakehouse",
    "quality_checks", "refresh_dashboard",
}
AFTER_INGESTION = {"wait_for_consumers", "spark_lakehouse", "quality_checks", "refresh_dashboard"}
RUN_TIMEOUT_SECONDS = 1800


@pytest.fixture(scope="module")
def client(ensure_services) -> AirflowClient:
    ensure_services(*SERVICES)
    client = AirflowClient.from_settings()
    client.wait_for_dag(DAG_ID)
    # A paused DAG's runs stay queued; unpausing also schedules the latest daily interval,
    # which is an incremental run like the one tested below (max_active_runs=1 queues them)
    paused = client.dag(DAG_ID)["is_paused"]
    client.set_paused(DAG_ID, False)
    yield client
    client.set_paused(DAG_ID, paused)  # as found: no daily run on a developer's stack after the tests


def run_to_completion(client: AirflowClient, conf: dict) -> tuple[dict, dict[str, str | None]]:
    started = time.monotonic()
    run_id = client.trigger(DAG_ID, conf=conf)
    run = client.wait_for_run(DAG_ID, run_id, timeout=RUN_TIMEOUT_SECONDS)
    print(f"{DAG_ID} {run_id} {conf}: {run['state']} in {time.monotonic() - started:.0f} s")
    return run, client.task_states(DAG_ID, run_id)


@pytest.fixture(scope="module")
def full_run(client):
    return run_to_completion(client, {"department": DEPARTMENT, "date_from": None, "date_to": None})


@pytest.fixture(scope="module")
def incremental_run(client):
    return run_to_completion(client, {"department": DEPARTMENT, "date_from": "2024-03-01", "date_to": "2024-03-01"})


# --- parsing ---------------------------------------------------------------------------------


def test_dags_folder_has_no_import_error(client):
    # Learners' files (lab 6, dags/lab_<id>.py, ignored by git) may be unfinished
    errors = [error for error in client.import_errors() if not Path(error["filename"]).name.startswith("lab_")]
    assert errors == []


def test_dag_is_parsed_with_its_tasks_and_schedule(client):
    dag = client.dag(DAG_ID)
    assert dag["is_stale"] is False
    assert dag["max_active_runs"] == 1
    assert {task["task_id"] for task in client.tasks(DAG_ID)} == TASKS
    assert all(task["retries"] >= 1 for task in client.tasks(DAG_ID))


# --- a full run on department 48 ---------------------------------------------------------------


def test_full_run_succeeds_with_every_task(full_run):
    run, states = full_run
    assert run["state"] == "success", states
    assert states == dict.fromkeys(TASKS, "success")


def test_lake_holds_one_row_per_valid_raw_dpe(full_run):
    settings = get_settings()
    lake_rows = trino_queries.query("SELECT count(*) AS n FROM iceberg.dpe.logements", settings)["n"].iloc[0]
    rejected = trino_queries.query(
        "SELECT count(DISTINCT numero_dpe) AS n FROM iceberg.dpe.quarantaine "
        "WHERE numero_dpe NOT IN (SELECT numero_dpe FROM iceberg.dpe.logements)",
        settings,
    )["n"].iloc[0]
    with postgres.connect(settings) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT count(DISTINCT numero_dpe) FROM raw.dpe")
        (raw_dpe,) = cursor.fetchone()
        cursor.execute("SELECT count(DISTINCT numero_dpe) FROM raw.dpe WHERE code_departement_ban = %s", (DEPARTMENT,))
        (raw_department,) = cursor.fetchone()
    assert raw_department > 0
    assert lake_rows + rejected == raw_dpe


def test_dashboard_shows_what_the_run_wrote(full_run, client):
    run, _ = full_run
    settings = get_settings()
    admin = superset.SupersetClient.from_settings(settings)
    dashboard = admin.find("dashboard", "dashboard_title", superset.dashboard_title(settings))
    assert dashboard is not None
    # The refresh task's XCom (its last line) is the URL of this dashboard
    url = str(client.xcom(DAG_ID, run["dag_run_id"], "refresh_dashboard")).strip('"')
    assert url.rstrip("/").endswith(f"/dashboard/{dashboard['id']}")
    # Its chart of F-G shares, computed by Superset through Trino, matches the lake
    charts = admin.request("GET", f"/api/v1/dashboard/{dashboard['id']}/charts")["result"]
    (chart_id,) = [chart["id"] for chart in charts if chart["slice_name"].startswith("Part des logements F et G")]
    shown = {row["departement"]: row["MAX(part_f_g_pct)"] for row in admin.chart_data(chart_id)}
    lake = trino_queries.query(trino_queries.FG_SHARE_BY_DEPARTMENT.format(schema="dpe"), settings)
    expected = zip(lake["departement"], lake["part_f_g_pct"], strict=True)
    assert shown == {department: float(share) for department, share in expected}
    assert DEPARTMENT in shown


def test_rerunning_changes_nothing(full_run, client):
    _, first_states = full_run
    settings = get_settings()
    count = "SELECT count(*) AS n FROM iceberg.dpe.logements"
    snapshots = "SELECT count(*) AS n FROM iceberg.dpe.\"logements$snapshots\""
    before = (trino_queries.query(count, settings)["n"].iloc[0], trino_queries.query(snapshots, settings)["n"].iloc[0])
    run, states = run_to_completion(client, {"department": DEPARTMENT})
    after = (trino_queries.query(count, settings)["n"].iloc[0], trino_queries.query(snapshots, settings)["n"].iloc[0])
    assert run["state"] == "success", states
    assert after == before, "a second run must neither add rows nor commit a snapshot"


# --- an incremental run that finds nothing -----------------------------------------------------


def test_incremental_run_without_records_succeeds_and_skips_the_rest(incremental_run):
    run, states = incremental_run
    assert run["state"] == "success", states
    assert {task: states[task] for task in ("resolve_scope", "ingest", "has_new_records")} == dict.fromkeys(
        ("resolve_scope", "ingest", "has_new_records"), "success"
    )
    assert {task: states[task] for task in AFTER_INGESTION} == dict.fromkeys(AFTER_INGESTION, "skipped")
