"""End-to-end ingestion throughput: the course's pipeline against the naive one, same run.

    .venv/bin/python benchmarks/ingestion/bench_ingestion.py [--records 5000] [--consumers 2] [--repeat 3]

Both pipelines read the same records from the ADEME replay (department 69 by default) and
are timed from the first request to the moment the last row is committed in PostgreSQL:

- pipeline: ``POST /ingestions`` on the real API process (pages of 1 000, batched
  idempotent producer), ``--consumers`` consumer processes (batched upsert, one
  transaction per poll);
- naive: pages of 5 records, one send + flush per record, one INSERT + COMMIT per message.

Each run works in its own topics, group and PostgreSQL schema, dropped at the end. The
result is printed and written to ``benchmarks/results/ingestion-<time>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import platform
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import requests

from dpe_pipeline import kafka_io, postgres, stack
from dpe_pipeline.ademe import AdemeClient
from dpe_pipeline.settings import Settings, get_settings, project_dir

sys.path.insert(0, str(Path(__file__).resolve().parent))
import naive  # noqa: E402 - the baseline lives beside this script

RESULTS_DIR = project_dir() / "benchmarks" / "results"


def wait_until(condition, timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def count_rows(settings: Settings, schema: str) -> int:
    conn = postgres.connect(settings)
    try:
        return postgres.count_rows(conn, schema)
    except postgres.psycopg2.errors.UndefinedTable:
        return 0
    finally:
        conn.close()


def group_members(settings: Settings, group: str) -> int:
    admin = kafka_io.create_admin(settings)
    try:
        description = admin.describe_groups([group])[group]
        return len(description.get("members", [])) if description.get("group_state") == "Stable" else 0
    finally:
        admin.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Namespace:
    """Topics, group and schema of one measured pipeline, removed by :meth:`drop`."""

    def __init__(self, settings: Settings, label: str) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.settings = settings
        self.topic, self.dlq_topic = f"bench.{label}.{suffix}.raw", f"bench.{label}.{suffix}.dlq"
        self.group, self.schema = f"bench-{label}-{suffix}", f"bench_{label}_{suffix}"
        kafka_io.ensure_topics({self.topic: kafka_io.RAW_TOPIC_PARTITIONS, self.dlq_topic: 1}, settings)

    def drop(self) -> None:
        kafka_io.delete_topics([self.topic, self.dlq_topic], self.settings)
        conn = postgres.connect(self.settings)
        try:
            postgres.drop_schema(conn, self.schema)
        finally:
            conn.close()


def measure_pipeline(settings: Settings, query: dict, records: int, consumers: int) -> dict:
    """The course's pipeline: API process + consumer processes, timed from POST to last row."""
    space = Namespace(settings, "pipeline")
    environment = {**os.environ, "DPE_PROJECT_DIR": str(project_dir()), "KAFKA_TOPIC_RAW": space.topic,
                   "KAFKA_TOPIC_DLQ": space.dlq_topic, "KAFKA_CONSUMER_GROUP": space.group, "DPE_LOG_LEVEL": "WARNING"}
    port = free_port()
    processes = [
        subprocess.Popen([sys.executable, "-m", "dpe_pipeline.consumer", "--schema", space.schema], env=environment)
        for _ in range(consumers)
    ]
    processes.append(subprocess.Popen([sys.executable, "-m", "dpe_pipeline.api", "--port", str(port)], env=environment))
    headers = {"X-API-KEY": settings.api_key}
    base = f"http://127.0.0.1:{port}"
    try:
        # Warm up: API answering, every consumer in the group and assigned.
        wait_until(lambda: _answers(f"{base}/health"), 60, "the API")
        wait_until(lambda: group_members(settings, space.group) == consumers, 60, "the consumers to join")

        started = time.perf_counter()
        response = requests.post(f"{base}/ingestions", json={**query, "max_records": records}, headers=headers,
                                 timeout=10)
        response.raise_for_status()
        job_url = f"{base}/ingestions/{response.json()['id']}"
        wait_until(lambda: count_rows(settings, space.schema) >= records, 600, "the rows", interval=0.02)
        elapsed = time.perf_counter() - started

        wait_until(lambda: requests.get(job_url, headers=headers, timeout=10).json()["status"] != "running", 30, "job")
        job = requests.get(job_url, headers=headers, timeout=10).json()
        assert job["status"] == "succeeded" and job["counts"]["published"] == records, job
        assert kafka_io.consumer_lag(space.group, space.topic, settings).total == 0
        return {"records": records, "seconds": round(elapsed, 3), "records_per_second": round(records / elapsed, 1),
                "consumers": consumers, "api_seconds": job["duration_seconds"]}
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        space.drop()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).ok
    except requests.ConnectionError:
        return False


def _naive_consumer(topic: str, group: str, schema: str, expected: int) -> None:
    naive.consume_one_by_one(get_settings(), topic, group, schema, expected, threading.Event())


def measure_naive(settings: Settings, query: dict, records: int) -> dict:
    """The naive pipeline on the same records, its consumer in its own process."""
    space = Namespace(settings, "naive")
    conn = postgres.connect(settings)
    postgres.ensure_raw_table(conn, space.schema)
    conn.close()
    consumer = multiprocessing.get_context("spawn").Process(
        target=_naive_consumer, args=(space.topic, space.group, space.schema, records)
    )
    consumer.start()
    try:
        wait_until(lambda: group_members(settings, space.group) == 1, 60, "the naive consumer to join")
        started = time.perf_counter()
        sent = naive.fetch_and_publish(settings, space.topic, query, records)
        consumer.join(timeout=3600)
        elapsed = time.perf_counter() - started
        stored = count_rows(settings, space.schema)
        assert sent == stored == records, (sent, stored, records)
        return {"records": records, "seconds": round(elapsed, 3), "records_per_second": round(records / elapsed, 1)}
    finally:
        if consumer.is_alive():
            consumer.terminate()
        space.drop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--department", default="69")
    parser.add_argument("--records", type=int, default=5000,
                        help="records per pipeline, 0 = every matching record (the naive one then takes minutes)")
    parser.add_argument("--consumers", type=int, default=2, help="consumer processes of the pipeline (1-3)")
    parser.add_argument("--repeat", type=int, default=3, help="pipeline runs; the median counts (the naive runs once)")
    parser.add_argument("--no-stack", action="store_true", help="services already running: skip stack.ensure")
    args = parser.parse_args(argv)

    if not args.no_stack:
        stack.ensure("postgres", "kafka", "replay")
    settings = get_settings()
    query = {"department": args.department}
    available = AdemeClient.from_settings(settings=settings).count(**query)
    records = min(args.records or available, available)

    print(f"ingesting {records} records of department {args.department} from {settings.ademe_base_url}", flush=True)
    runs = [measure_pipeline(settings, query, records, args.consumers) for _ in range(max(args.repeat, 1))]
    pipeline = sorted(runs, key=lambda run: run["records_per_second"])[len(runs) // 2]
    pipeline["all_runs_records_per_second"] = [run["records_per_second"] for run in runs]
    print(f"pipeline: {pipeline['records_per_second']:.0f} records/s ({pipeline['seconds']} s, median of "
          f"{len(runs)}: {pipeline['all_runs_records_per_second']})", flush=True)
    baseline = measure_naive(settings, query, records)
    print(f"naive:    {baseline['records_per_second']:.0f} records/s ({baseline['seconds']} s)", flush=True)
    ratio = pipeline["records_per_second"] / baseline["records_per_second"]
    print(f"ratio:    {ratio:.1f}x", flush=True)

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    result = {"when": stamp, "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                         "load_average": os.getloadavg()},
              "query": query, "pipeline": pipeline, "naive": baseline, "ratio": round(ratio, 1)}
    (RESULTS_DIR / f"ingestion-{stamp}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
