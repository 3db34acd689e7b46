"""The module 4 transformation on 1 000 000 synthetic DPE: Spark (2 cores) against DuckDB SQL, same run.

    .venv/bin/python benchmarks/spark_transform/bench_spark_transform.py [--rows 1000000] [--cores 2]

The input is the real bundled sample enlarged with its real distributions
(:mod:`dpe_pipeline.synthetic`, every row marked ``synthetique`` and ``SYN…``), written
once to Parquet under ``var/bench/``. Each engine runs in its own process, reading that
file and writing its two outputs (the newest valid row per DPE, enriched, and the
commune × month statistics) to Parquet:

- Spark: ``local[N]`` with the functions of :mod:`dpe_pipeline.spark_jobs`
  (``clean_dpe`` → ``enrich_dpe`` → ``latest_per_dpe`` → ``commune_month_stats``);
- DuckDB: the same rules written in SQL (:data:`DUCKDB_SQL`), ``threads = N``.

Wall time covers process start to outputs written (Spark's JVM start included). Peak
memory is the largest RSS of the engine's process **with its children** (Spark's JVM),
sampled every 50 ms with psutil. The row counts of both outputs must match, else the run
fails. The result is printed and written to ``benchmarks/results/spark_transform-<time>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil

from dpe_pipeline.settings import project_dir

RESULTS_DIR = project_dir() / "benchmarks" / "results"
WORK_DIR = project_dir() / "var" / "bench" / "spark_transform"
SAMPLE_INTERVAL = 0.05

# The rules of spark_jobs.clean_dpe / enrich_dpe / latest_per_dpe / commune_month_stats, in SQL
DUCKDB_SQL = """
CREATE VIEW typed AS
SELECT * REPLACE (
    upper(trim(etiquette_dpe)) AS etiquette_dpe,
    upper(trim(etiquette_ges)) AS etiquette_ges,
    try_cast(date_etablissement_dpe AS DATE) AS date_etablissement_dpe,
    try_cast(date_reception_dpe AS DATE) AS date_reception_dpe)
FROM read_parquet('{input}');

CREATE VIEW checked AS
SELECT *, list_filter([
    CASE WHEN numero_dpe IS NULL OR NOT regexp_full_match(numero_dpe, '\\w{{13}}')
         THEN 'numero_dpe absent ou invalide' END,
    CASE WHEN date_reception_dpe IS NULL AND date_etablissement_dpe IS NULL THEN 'aucune date' END,
    CASE WHEN etiquette_dpe NOT IN ('A','B','C','D','E','F','G') THEN 'etiquette_dpe hors A-G' END,
    CASE WHEN etiquette_ges NOT IN ('A','B','C','D','E','F','G') THEN 'etiquette_ges hors A-G' END,
    CASE WHEN date_etablissement_dpe > date_reception_dpe THEN 'établi après sa réception' END,
    CASE WHEN NOT surface_habitable_logement BETWEEN 1 AND 5000 THEN 'surface_habitable_logement hors [1, 5000]' END,
    CASE WHEN NOT conso_5_usages_par_m2_ep BETWEEN 0 AND 5000 THEN 'conso_5_usages_par_m2_ep hors [0, 5000]' END,
    CASE WHEN NOT emission_ges_5_usages_par_m2 BETWEEN 0 AND 1000
         THEN 'emission_ges_5_usages_par_m2 hors [0, 1000]' END,
    CASE WHEN NOT cout_total_5_usages BETWEEN 0 AND 100000 THEN 'cout_total_5_usages hors [0, 100000]' END
], lambda reason: reason IS NOT NULL) AS raisons
FROM typed;

CREATE VIEW enriched AS
SELECT *,
    coalesce(date_reception_dpe, date_etablissement_dpe) AS date_reference,
    year(coalesce(date_reception_dpe, date_etablissement_dpe)) AS annee,
    CAST(date_trunc('month', coalesce(date_reception_dpe, date_etablissement_dpe)) AS DATE) AS mois,
    coalesce(code_departement_ban, CASE WHEN starts_with(code_insee_ban, '97') THEN substr(code_insee_ban, 1, 3)
                                        ELSE substr(code_insee_ban, 1, 2) END) AS departement,
    coalesce(nom_commune_ban, code_insee_ban, code_postal_ban) AS commune,
    CASE WHEN annee_construction IS NULL THEN NULL
         WHEN annee_construction <= 1947 THEN 'avant 1948' WHEN annee_construction <= 1974 THEN '1948-1974'
         WHEN annee_construction <= 1977 THEN '1975-1977' WHEN annee_construction <= 1982 THEN '1978-1982'
         WHEN annee_construction <= 1988 THEN '1983-1988' WHEN annee_construction <= 2000 THEN '1989-2000'
         WHEN annee_construction <= 2005 THEN '2001-2005' WHEN annee_construction <= 2012 THEN '2006-2012'
         WHEN annee_construction <= 2021 THEN '2013-2021' ELSE 'après 2021' END AS periode_construction,
    round(cout_total_5_usages / surface_habitable_logement, 2) AS cout_par_m2,
    nullif(list_position(['A','B','C','D','E','F','G'], etiquette_dpe), 0) AS rang_etiquette
FROM checked WHERE len(raisons) = 0;

CREATE VIEW latest AS
SELECT * FROM enriched
QUALIFY row_number() OVER (PARTITION BY numero_dpe ORDER BY date_etablissement_dpe DESC NULLS LAST,
                                                            date_reception_dpe DESC NULLS LAST) = 1;

COPY (SELECT * EXCLUDE (raisons) FROM latest) TO '{output}/logements.parquet' (FORMAT parquet);
COPY (
    SELECT departement, commune, mois, count(*) AS nb_dpe,
        count(*) FILTER (etiquette_dpe = 'A') AS nb_a, count(*) FILTER (etiquette_dpe = 'B') AS nb_b,
        count(*) FILTER (etiquette_dpe = 'C') AS nb_c, count(*) FILTER (etiquette_dpe = 'D') AS nb_d,
        count(*) FILTER (etiquette_dpe = 'E') AS nb_e, count(*) FILTER (etiquette_dpe = 'F') AS nb_f,
        count(*) FILTER (etiquette_dpe = 'G') AS nb_g,
        round(avg(CASE WHEN etiquette_dpe IN ('F', 'G') THEN 1.0 ELSE 0.0 END), 4) AS part_passoires,
        round(avg(conso_5_usages_par_m2_ep), 1) AS conso_moyenne_m2,
        round(avg(cout_par_m2), 2) AS cout_moyen_m2
    FROM latest GROUP BY ALL
) TO '{output}/stats.parquet' (FORMAT parquet);
"""


# --- one engine, in its own process ----------------------------------------------------------


def run_spark(input_path: Path, output: Path, cores: int) -> None:
    from dpe_pipeline import spark_jobs

    spark = spark_jobs.local_session("bench-spark-transform", conf={
        "spark.master": f"local[{cores}]",
        "spark.driver.memory": "2g",
        "spark.sql.shuffle.partitions": str(cores * 4),
    })
    raw = spark.read.parquet(str(input_path))
    valid, _rejected = spark_jobs.clean_dpe(raw)
    latest = spark_jobs.latest_per_dpe(spark_jobs.enrich_dpe(valid)).persist()
    latest.write.mode("overwrite").parquet(str(output / "logements.parquet"))
    spark_jobs.commune_month_stats(latest).write.mode("overwrite").parquet(str(output / "stats.parquet"))
    spark.stop()


def run_duckdb(input_path: Path, output: Path, cores: int) -> None:
    import duckdb

    connection = duckdb.connect()
    connection.execute(f"SET threads = {cores}")
    connection.execute(DUCKDB_SQL.format(input=input_path, output=output))
    connection.close()


def count_rows(path: Path) -> int:
    import duckdb

    pattern = f"{path}/*.parquet" if path.is_dir() else str(path)
    return duckdb.connect().execute(f"SELECT count(*) FROM read_parquet('{pattern}')").fetchone()[0]


# --- the benchmark -------------------------------------------------------------------------


def measure(engine: str, input_path: Path, cores: int) -> dict:
    """Run one engine in a child process; wall time and peak RSS of its process tree."""
    output = WORK_DIR / f"out-{engine}"
    shutil.rmtree(output, ignore_errors=True)
    output.mkdir(parents=True)
    command = [sys.executable, __file__, "--engine", engine, "--input", str(input_path), "--output", str(output),
               "--cores", str(cores)]
    log = WORK_DIR / f"{engine}.log"  # a file, not a pipe: Spark's JVM logs could fill a pipe and block
    started = time.perf_counter()
    with log.open("w") as log_file:
        process = psutil.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
        peak = 0
        while process.poll() is None:
            peak = max(peak, tree_rss(process))
            time.sleep(SAMPLE_INTERVAL)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{engine} failed ({process.returncode}), see {log}: {log.read_text()[-3000:]}")
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mib": round(peak / 2**20),
        "logements_rows": count_rows(output / "logements.parquet"),
        "stats_rows": count_rows(output / "stats.parquet"),
    }


def tree_rss(process: psutil.Process) -> int:
    total = 0
    try:
        for member in [process, *process.children(recursive=True)]:
            try:
                total += member.memory_info().rss
            except psutil.NoSuchProcess:
                continue
    except psutil.NoSuchProcess:
        pass
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--engine", choices=("spark", "duckdb"), help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:  # child process: one engine
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        (run_spark if args.engine == "spark" else run_duckdb)(args.input, args.output, args.cores)
        return 0

    from dpe_pipeline import synthetic

    started = time.perf_counter()
    input_path = synthetic.write_enlarged(WORK_DIR / f"dpe_synthetique_{args.rows}.parquet", args.rows)
    print(f"input: {input_path} ({count_rows(input_path)} rows, {time.perf_counter() - started:.1f} s)")
    results = {engine: measure(engine, input_path, args.cores) for engine in ("spark", "duckdb")}
    for engine, result in results.items():
        print(f"{engine:7} {result}")
    if {(r["logements_rows"], r["stats_rows"]) for r in results.values()} != {
            (results["spark"]["logements_rows"], results["spark"]["stats_rows"])}:
        print("the two engines disagree on the output row counts", file=sys.stderr)
        return 1

    when = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    report = {
        "when": when,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_average": os.getloadavg()},
        "rows": args.rows,
        "cores": args.cores,
        "results": results,
        "spark_over_duckdb_time": round(results["spark"]["seconds"] / results["duckdb"]["seconds"], 1),
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"spark_transform-{when}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
