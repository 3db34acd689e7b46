"""The course's main job, step by step: ADEME → API → Kafka → PostgreSQL → Spark → Iceberg → Trino → Superset.

Each step is a function the Airflow DAG calls as a task and the ``./dpe up`` banner job
calls in a row; ``python -m dpe_pipeline.pipeline STEP`` runs one from a shell::

    ingest      POST /ingestions to the ingestion API and wait until every record is in Kafka
    wait-lag    wait until the consumers have written everything to PostgreSQL (lag 0)
    spark       run the lakehouse job (raw.dpe → lake.dpe.logements and its aggregate)
    quality     check the Iceberg table through Trino (counts, no duplicates, labels A–G)
    dashboard   provision (or refresh) the Superset dashboard
    all         every step above, in this order
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from dataclasses import dataclass

import requests

from dpe_pipeline.settings import Settings, get_settings

logger = logging.getLogger(__name__)


class PipelineError(RuntimeError):
    """A step of the pipeline failed; the message says which and why (in French)."""


@dataclass(frozen=True)
class Scope:
    """What the pipeline ingests: one department and an optional range of reception dates."""

    department: str
    date_from: str | None = None
    date_to: str | None = None
    max_records: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Scope:
        return cls(settings.dpe_department, settings.dpe_date_from or None, settings.dpe_date_to or None)


def _say(message: str) -> None:
    print(f"[pipeline] {message}", flush=True)


# --------------------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------------------
def ingest(scope: Scope, settings: Settings | None = None, timeout: float = 900) -> dict:
    """Start an ingestion through the API and wait for it; returns the job's final status."""
    settings = settings or get_settings()
    base = f"http://{settings.api_host}:{settings.api_port}"
    headers = {"X-API-KEY": settings.api_key}
    body = {"department": scope.department, "date_from": scope.date_from, "date_to": scope.date_to}
    if scope.max_records:
        body["max_records"] = scope.max_records
    response = requests.post(f"{base}/ingestions", json=body, headers=headers, timeout=30)
    if response.status_code >= 400:
        raise PipelineError(f"L'API d'ingestion a refusé la demande ({response.status_code}) : {response.text}")
    job = response.json()
    dates = f"{scope.date_from or '…'} → {scope.date_to or '…'}" if scope.date_from or scope.date_to else "toutes dates"
    _say(f"ingestion {job['id']} lancée : département {scope.department}, {dates}")
    deadline = time.monotonic() + timeout
    while job["status"] in ("pending", "running"):
        if time.monotonic() > deadline:
            raise PipelineError(f"L'ingestion {job['id']} n'a pas fini en {timeout:.0f} s")
        time.sleep(1)
        job = requests.get(f"{base}/ingestions/{job['id']}", headers=headers, timeout=30).json()
    if job["status"] != "succeeded":
        raise PipelineError(f"L'ingestion {job['id']} a échoué : {job.get('errors')}")
    _say(f"ingestion terminée : {job['counts']['published']} DPE publiés dans Kafka")
    return job


def wait_for_consumers(settings: Settings | None = None, timeout: float = 600) -> int:
    """Wait until the consumer group's lag on ``dpe.raw`` is 0; returns the rows in ``raw.dpe``."""
    from dpe_pipeline import kafka_io, postgres

    settings = settings or get_settings()
    deadline = time.monotonic() + timeout
    while (lag := kafka_io.consumer_lag(settings=settings).total) > 0:
        if time.monotonic() > deadline:
            raise PipelineError(f"Les consommateurs ont encore {lag} messages de retard après {timeout:.0f} s")
        time.sleep(1)
    with postgres.connect(settings) as conn:
        rows = postgres.count_rows(conn)
    _say(f"consommateurs à jour (retard 0) : {rows} lignes dans raw.dpe")
    return rows


def run_spark(settings: Settings | None = None, namespace: str = "dpe"):
    """Run the lakehouse job on the Spark cluster; returns its report (``LakehouseReport``)."""
    from dpe_pipeline import spark_jobs

    settings = settings or get_settings()
    spark = spark_jobs.lake_session(settings, app_name="dpe-main-job")
    try:
        report = spark_jobs.run_lakehouse_job(spark, settings, namespace=namespace)
    finally:
        spark.stop()
    _say(
        f"Spark : {report.raw_rows} lignes brutes, {report.valid_rows} valides, "
        f"{report.rejected_rows} en quarantaine ; "
        f"{report.inserted} insérées et {report.updated} mises à jour dans lake.{namespace}.logements"
    )
    return report


QUALITY_CHECKS = {
    "lignes": "SELECT count(*) FROM iceberg.{ns}.logements",
    "doublons": "SELECT count(*) - count(DISTINCT numero_dpe) FROM iceberg.{ns}.logements",
    "etiquettes hors A-G": "SELECT count(*) FROM iceberg.{ns}.logements "
                           "WHERE etiquette_dpe IS NOT NULL AND etiquette_dpe NOT IN ('A','B','C','D','E','F','G')",
}


def check_quality(settings: Settings | None = None, namespace: str = "dpe") -> dict[str, int]:
    """Data-quality checks through Trino; raises when the table is empty or has duplicates or bad labels."""
    from dpe_pipeline import trino_queries

    settings = settings or get_settings()
    with trino_queries.connect(settings) as conn:
        cursor = conn.cursor()
        results = {}
        for name, sql in QUALITY_CHECKS.items():
            cursor.execute(sql.format(ns=namespace))
            results[name] = int(cursor.fetchone()[0])
    problems = [f"{name} = {value}" for name, value in results.items() if name != "lignes" and value]
    if results["lignes"] == 0:
        problems.append("la table logements est vide")
    if problems:
        raise PipelineError("Contrôle qualité en échec : " + ", ".join(problems))
    _say(f"qualité OK : {results['lignes']} logements, aucun doublon, étiquettes A-G")
    return results


def refresh_dashboard(settings: Settings | None = None) -> str:
    """Provision or refresh the Superset dashboard; returns its URL."""
    from dpe_pipeline import superset

    settings = settings or get_settings()
    result = superset.provision_dashboard(settings)
    _say(f"tableau de bord « {result.title} » prêt : {result.url}")
    return result.url


def run_all(scope: Scope, settings: Settings | None = None) -> None:
    """Every step in order."""
    settings = settings or get_settings()
    ingest(scope, settings)
    wait_for_consumers(settings)
    run_spark(settings)
    check_quality(settings)
    refresh_dashboard(settings)


def lake_is_loaded(settings: Settings | None = None, namespace: str = "dpe") -> bool:
    """Does the main job's Iceberg table exist and hold rows (asked to Trino)?"""
    from dpe_pipeline import trino_queries

    settings = settings or get_settings()
    if not trino_queries.table_exists(f"{namespace}.logements", settings):
        return False
    rows = trino_queries.query(f"SELECT count(*) AS n FROM iceberg.{namespace}.logements", settings)
    return int(rows["n"].iloc[0]) > 0


def run_main_job_if_needed(settings: Settings | None = None) -> int:
    """``./dpe up``: run every step once on a new stack; on a loaded one, only refresh the dashboard.

    Returns a process exit code (0 when the dashboard is filled).
    """
    settings = settings or get_settings()
    try:
        if lake_is_loaded(settings):
            _say("le lac contient déjà les DPE (./dpe pipeline pour relancer le pipeline complet)")
            refresh_dashboard(settings)
        else:
            _say("premier démarrage : pipeline complet sur les données ADEME embarquées")
            run_all(Scope.from_settings(settings), settings)
    except (PipelineError, OSError, RuntimeError) as error:
        print(f"Échec du pipeline principal : {error}", file=sys.stderr)
        return 1
    return 0


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m dpe_pipeline.pipeline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["ingest", "wait-lag", "spark", "quality", "dashboard", "all"])
    # An empty value is how the Airflow DAG says "not set": the .env department, no date bound
    parser.add_argument("--department", default=settings.dpe_department,
                        help="department code (empty: DPE_DEPARTMENT from .env)")
    parser.add_argument("--date-from", default=settings.dpe_date_from or None,
                        help="YYYY-MM-DD, inclusive (empty: no bound)")
    parser.add_argument("--date-to", default=settings.dpe_date_to or None,
                        help="YYYY-MM-DD, inclusive (empty: no bound)")
    parser.add_argument("--max-records", type=int, default=None)
    parser.add_argument("--json-result", action="store_true",
                        help="print the step's result as one JSON line at the end (Airflow's XCom of a Bash task)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("kafka", "py4j"):  # one line per connection / per Java call at INFO
        logging.getLogger(name).setLevel(logging.WARNING)
    scope = Scope(args.department or settings.dpe_department, args.date_from or None, args.date_to or None,
                  args.max_records)
    steps = {
        "ingest": lambda: ingest(scope, settings),
        "wait-lag": lambda: wait_for_consumers(settings),
        "spark": lambda: run_spark(settings),
        "quality": lambda: check_quality(settings),
        "dashboard": lambda: refresh_dashboard(settings),
        "all": lambda: run_all(scope, settings),
    }
    try:
        result = steps[args.step]()
    except PipelineError as error:
        print(f"Échec : {error}", file=sys.stderr)
        return 1
    if args.json_result:
        print(json.dumps(result_as_json(result), default=str), flush=True)
    return 0


def result_as_json(result: object) -> object:
    """A step's result as plain JSON values (the Spark report is a dataclass)."""
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return dataclasses.asdict(result)
    return result


if __name__ == "__main__":
    sys.exit(main())
