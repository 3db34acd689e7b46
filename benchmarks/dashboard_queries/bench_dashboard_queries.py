"""p50/p95 latency of the dashboard's queries: Trino (coordinator + worker) vs DuckDB, same Iceberg table.

DuckDB's ``iceberg`` extension is downloaded at run time from extensions.duckdb.org, which
the course's registries do not serve; so DuckDB reads the table the way a notebook would
without it: PyIceberg plans the scan and reads the Parquet files into Arrow (timed as
``load``), then DuckDB runs the same SQL on that Arrow table (timed per query, warm). Trino
reads the Parquet files from MinIO at every query. The SQL is :data:`trino_queries.DASHBOARD_QUERIES`
with the ``iceberg.<schema>.`` prefix removed for DuckDB.

    .venv/bin/python benchmarks/dashboard_queries/bench_dashboard_queries.py --rows 1000000  # synthetic 1M
    .venv/bin/python benchmarks/dashboard_queries/bench_dashboard_queries.py --namespace dpe  # the main job's
    .venv/bin/python benchmarks/dashboard_queries/bench_dashboard_queries.py --sample   # bundled sample

``--rows N`` writes N synthetic rows (the real sample enlarged with its real distributions by
``dpe_pipeline.synthetic``, as in module 4's benchmark; every ``numero_dpe`` starts with
``SYN``) into the namespace ``bench_synthetique`` with PyIceberg, newest version per
``numero_dpe``, and its aggregate table, then measures.
Results: ``benchmarks/results/dashboard_queries-<UTC time>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

from dpe_pipeline import lake_sample, synthetic, trino_queries
from dpe_pipeline.settings import get_settings

RESULTS = Path(__file__).resolve().parents[1] / "results"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def summarize(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(1000 * statistics.median(values), 1),
        "p95_ms": round(1000 * percentile(values, 0.95), 1),
        "runs": len(values),
    }


def time_trino(sql: str, settings, runs: int) -> list[float]:
    connection = trino_queries.connect(settings)
    cursor = connection.cursor()
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        cursor.execute(sql)
        cursor.fetchall()
        timings.append(time.perf_counter() - started)
    connection.close()
    return timings


def write_synthetic_lake(namespace: str, rows: int, settings) -> None:
    """``rows`` synthetic DPE (newest version per number) and their aggregate, as the dashboard reads them."""
    raw = synthetic.enlarge(lake_sample.read_bundled(), rows)
    reference = raw["date_reception_dpe"].fillna(raw["date_etablissement_dpe"])
    raw = raw.assign(_reference=reference).sort_values("_reference").drop_duplicates("numero_dpe", keep="last")
    logements = lake_sample.logements_frame(raw.drop(columns="_reference"))
    lake_sample.write_iceberg(settings, namespace, "logements", logements)
    lake_sample.write_iceberg(settings, namespace, "stats_commune_mois", lake_sample.stats_frame(logements))


def load_duckdb(namespace: str, settings):
    import duckdb

    catalog = trino_queries.lake_catalog(settings)
    connection = duckdb.connect()
    started = time.perf_counter()
    for table in ("logements", "stats_commune_mois"):
        arrow = catalog.load_table(f"{namespace}.{table}").scan().to_arrow()
        connection.register(table, arrow)
    return connection, time.perf_counter() - started


def time_duckdb(connection, sql: str, runs: int) -> list[float]:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        connection.execute(sql).fetchall()
        timings.append(time.perf_counter() - started)
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespace", default="bench_module5", help="Iceberg namespace to read")
    parser.add_argument("--sample", action="store_true", help="(re)write the bundled sample into --namespace first")
    parser.add_argument("--rows", type=int, help="(re)write this many synthetic rows into bench_synthetique first")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    settings = get_settings()
    if args.sample:
        lake_sample.build_sample_lake(args.namespace, settings=settings)
    elif args.rows:
        args.namespace = "bench_synthetique"
        write_synthetic_lake(args.namespace, args.rows, settings)
    rows = trino_queries.query(f"SELECT count(*) AS n FROM iceberg.{args.namespace}.logements", settings)
    duck, load_seconds = load_duckdb(args.namespace, settings)
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "namespace": args.namespace,
        "synthetic": bool(args.rows),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "rows_logements": int(rows["n"].iloc[0]),
        "duckdb_load_via_pyiceberg_s": round(load_seconds, 2),
        "queries": {},
    }
    for name in trino_queries.DASHBOARD_QUERIES:
        sql = trino_queries.dashboard_sql(name, settings, schema=args.namespace)
        time_trino(sql, settings, 2)  # warm-up: plans, metadata cache, JIT
        trino_times = time_trino(sql, settings, args.runs)
        duck_sql = sql.replace(f"iceberg.{args.namespace}.", "")
        time_duckdb(duck, duck_sql, 2)
        duck_times = time_duckdb(duck, duck_sql, args.runs)
        trino_summary, duck_summary = summarize(trino_times), summarize(duck_times)
        report["queries"][name] = {"trino": trino_summary, "duckdb": duck_summary}
        print(f"{name:26s} trino p50 {trino_summary['p50_ms']:8.1f} ms p95 {trino_summary['p95_ms']:8.1f} ms"
              f" | duckdb p50 {duck_summary['p50_ms']:7.1f} ms p95 {duck_summary['p95_ms']:7.1f} ms")
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    output = RESULTS / f"dashboard_queries-{stamp}.json"
    output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"rows: {report['rows_logements']}, DuckDB load via PyIceberg {load_seconds:.2f} s → {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
