"""
### The DPE main job, orchestrated: ingest → wait for lag 0 → Spark → quality → dashboard

Every step is `python -m dpe_pipeline.pipeline STEP`, run by a Bash task with the course's
interpreter (`$DPE_CORE_PYTHON`): Airflow's own environment never imports Spark, Kafka or
Trino clients, it only schedules, retries and records.

| task | what it does |
|---|---|
| `resolve_scope` | department and reception dates of this run (XCom) |
| `ingest` | `POST /ingestions` on the ingestion API, waits for the job (XCom: the job's status) |
| `has_new_records` | stops the run here, successfully, when the ingestion published nothing |
| `wait_for_consumers` | waits until the consumer group's lag on `dpe.raw` is 0 |
| `spark_lakehouse` | `raw.dpe` → `lake.dpe.logements` (Iceberg MERGE) and its aggregate |
| `quality_checks` | through Trino: rows > 0, no duplicate `numero_dpe`, labels A–G only |
| `refresh_dashboard` | provisions or refreshes the Superset dashboard |

**Scope of a run.**

- *Scheduled (daily) and backfill runs* are incremental: the data interval (one day, midnight
  to midnight UTC) gives the range of reception dates, `date_from` = start of the interval,
  `date_to` = the day before its end (the API's bounds are inclusive): one run, one day.
- *Manual runs* take the params (or the `conf` of the REST call): `department` (empty: the
  `.env` department), `date_from` and `date_to` (empty: no bound, i.e. every DPE of the
  department). Dates given in the params also override a scheduled run's interval.

**Nothing new is not a failure.** Some departments have no reception date at all (Lozère,
48, in the bundled sample): an incremental run there ingests nothing. The quality checks
would then judge a table this run did not touch (and fail on a new, empty stack), so
`has_new_records` short-circuits: the downstream tasks are *skipped* and the run succeeds.

**Idempotent.** Rerunning a day republishes the same records: the consumers upsert them
(same rows), the Spark MERGE inserts and updates nothing, the checks and the dashboard are
unchanged. `max_active_runs=1`: runs share one Kafka consumer group and one Spark cluster.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, CronDataIntervalTimetable, Param, get_current_context, task

#: The course's code runs with the course's interpreter, never inside Airflow's environment
PIPELINE = (
    '"${DPE_CORE_PYTHON:?DPE_CORE_PYTHON must name the Python that has dpe_pipeline installed}" '
    "-m dpe_pipeline.pipeline"
)
#: The scope travels to the shell as environment variables (never spliced into the command)
SCOPE_ENVIRONMENT = {
    name: f"{{{{ ti.xcom_pull(task_ids='resolve_scope')['{key}'] }}}}"
    for name, key in (
        ("DPE_SCOPE_DEPARTMENT", "department"),
        ("DPE_SCOPE_DATE_FROM", "date_from"),
        ("DPE_SCOPE_DATE_TO", "date_to"),
    )
}
INCREMENTAL_RUN_TYPES = {"scheduled", "backfill"}


def pipeline_step(task_id: str, step: str, timeout_minutes: int, doc: str, with_scope: bool = False) -> BashOperator:
    """A Bash task running one step of ``dpe_pipeline.pipeline``; its last line (JSON) goes to XCom."""
    scope_options = (
        ' --department "$DPE_SCOPE_DEPARTMENT" --date-from "$DPE_SCOPE_DATE_FROM" --date-to "$DPE_SCOPE_DATE_TO"'
        if with_scope
        else ""
    )
    return BashOperator(
        task_id=task_id,
        bash_command=f"{PIPELINE} {step} --json-result{scope_options}",
        env=SCOPE_ENVIRONMENT if with_scope else None,
        # Keep the environment of the scheduler (DPE_CORE_PYTHON, the .env settings)
        append_env=True,
        execution_timeout=timedelta(minutes=timeout_minutes),
        doc_md=doc,
    )


def incremental_dates(start: datetime, end: datetime) -> tuple[str, str]:
    """A data interval [start, end) as inclusive reception dates: one day for a daily run."""
    last_day = end - timedelta(days=1) if end > start else end
    return start.date().isoformat(), last_day.date().isoformat()


with DAG(
    dag_id="dpe_pipeline",
    description="DPE ADEME → API → Kafka → PostgreSQL → Spark/Iceberg → Trino → Superset",
    doc_md=__doc__,
    # A cron string alone gives Airflow 3 runs of zero length (CronTriggerTimetable): ask for
    # real daily intervals, [D 00:00, D+1 00:00) UTC, run just after they end
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=datetime(2021, 7, 1, tzinfo=UTC),  # first DPE of the current ADEME dataset
    catchup=False,  # history on demand: `airflow backfill create`, never on unpause
    max_active_runs=1,
    default_args={
        "owner": "dpe-course",
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
    },
    params={
        "department": Param(
            "",
            type="string",
            pattern=r"^(|\d{2}|2[AaBb]|97\d)$",
            title="Département",
            description="Code du département (vide : DPE_DEPARTMENT du fichier .env)",
        ),
        "date_from": Param(
            None,
            type=["null", "string"],
            pattern=r"^(|\d{4}-\d{2}-\d{2})$",
            title="Date de réception minimale",
            description="AAAA-MM-JJ, incluse (vide : sans borne, ou l'intervalle de données d'une exécution planifiée)",
        ),
        "date_to": Param(
            None,
            type=["null", "string"],
            pattern=r"^(|\d{4}-\d{2}-\d{2})$",
            title="Date de réception maximale",
            description="AAAA-MM-JJ, incluse (vide : sans borne, ou l'intervalle de données d'une exécution planifiée)",
        ),
    },
    tags=["dpe", "module-6"],
) as dag:

    @task
    def resolve_scope() -> dict[str, str]:
        """Department and inclusive reception dates of this run ("" = not set)."""
        context = get_current_context()
        params, run = context["params"], context["dag_run"]
        run_type = str(getattr(run.run_type, "value", run.run_type))
        date_from, date_to = params.get("date_from") or "", params.get("date_to") or ""
        start, end = context.get("data_interval_start"), context.get("data_interval_end")
        if run_type in INCREMENTAL_RUN_TYPES and not (date_from or date_to) and start and end:
            date_from, date_to = incremental_dates(start, end)
        scope = {"department": params.get("department") or "", "date_from": date_from, "date_to": date_to}
        print(f"run {run.run_id} ({run_type}): scope {scope}")
        return scope

    @task.short_circuit
    def has_new_records() -> bool:
        """True when the ingestion published records; False skips every downstream task."""
        job = json.loads(get_current_context()["ti"].xcom_pull(task_ids="ingest"))
        published = int(job["counts"]["published"])
        print(f"ingestion {job['id']}: {published} records published")
        return published > 0

    ingest = pipeline_step(
        "ingest", "ingest", 30, "Starts an ingestion through the API and waits for it.", with_scope=True
    )
    wait_for_consumers = pipeline_step("wait_for_consumers", "wait-lag", 15, "Waits for consumer lag 0.")
    spark_lakehouse = pipeline_step("spark_lakehouse", "spark", 30, "raw.dpe → Iceberg lake.dpe.logements.")
    quality_checks = pipeline_step("quality_checks", "quality", 10, "Counts, duplicates and labels via Trino.")
    refresh_dashboard = pipeline_step("refresh_dashboard", "dashboard", 10, "Superset dashboard, as code.")

    (
        resolve_scope()
        >> ingest
        >> has_new_records()
        >> wait_for_consumers
        >> spark_lakehouse
        >> quality_checks
        >> refresh_dashboard
    )
