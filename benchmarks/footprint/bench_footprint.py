"""Resident memory of each native service, at rest and during the main job, against the 6 GB budget (DESIGN §9).

RSS of every process of a service's supervisord program and its descendants (psutil),
summed per service; a Python service's threads count once. Run it on a stack that is up
and idle (``./dpe up``, wait a minute):

    .venv/bin/python benchmarks/footprint/bench_footprint.py                       # at rest
    .venv/bin/python benchmarks/footprint/bench_footprint.py --during-main-job     # + peak during ./dpe pipeline
    .venv/bin/python benchmarks/footprint/bench_footprint.py --time-up             # + ./dpe down; time ./dpe up

``--time-up`` stops the stack and measures ``./dpe up --no-pipeline`` to every service healthy
with a warm cache (artifacts and venvs already there). ``--during-main-job`` runs the whole
main job (``./dpe pipeline``: ingestion, consumers, Spark, quality, dashboard) and samples
every service twice a second; the job's own process tree (the Spark driver) is counted as
``main-job``. Results: ``benchmarks/results/footprint-<UTC>.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil

from dpe_pipeline.native.registry import StackPaths
from dpe_pipeline.native.supervisor import Supervisor

BUDGET_MIB = 6 * 1024
RESULTS = Path(__file__).resolve().parents[1] / "results"


def service_rss_mib(supervisor: Supervisor) -> dict[str, float]:
    usage: dict[str, float] = {}
    for name, infos in supervisor.processes().items():
        total = 0
        for info in infos:
            if not info.get("pid"):
                continue
            try:
                root = psutil.Process(info["pid"])
                processes = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for process in processes:
                try:
                    total += process.memory_info().rss
                except psutil.NoSuchProcess:
                    continue
        if total:
            usage[name] = round(total / 2**20, 1)
    return usage


def tree_rss_mib(process: psutil.Process) -> float:
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return round(total / 2**20, 1)


def time_up(project: Path) -> float:
    subprocess.run([str(project / "dpe"), "down"], check=True)
    started = time.perf_counter()
    subprocess.run([str(project / "dpe"), "up", "--no-pipeline"], check=True)
    return time.perf_counter() - started


def peak_during_main_job(project: Path, supervisor: Supervisor) -> dict[str, object]:
    """Run ``./dpe pipeline`` and keep, per service, the highest RSS seen; and the highest total."""
    started = time.perf_counter()
    job = psutil.Popen([str(project / "dpe"), "pipeline"], stdout=subprocess.DEVNULL)
    peaks: dict[str, float] = {}
    peak_total = 0.0
    while job.poll() is None:
        usage = service_rss_mib(supervisor)
        usage["main-job"] = tree_rss_mib(job) if job.poll() is None else 0.0
        for name, mib in usage.items():
            peaks[name] = max(peaks.get(name, 0.0), mib)
        peak_total = max(peak_total, sum(usage.values()))
        time.sleep(0.5)
    if job.returncode != 0:
        raise SystemExit(f"./dpe pipeline failed ({job.returncode})")
    return {
        "main_job_s": round(time.perf_counter() - started, 1),
        "peak_rss_mib": peaks,
        "peak_total_mib": round(peak_total, 1),
        "peak_within_budget": peak_total <= BUDGET_MIB,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-up", action="store_true", help="also time ./dpe up to every service healthy")
    parser.add_argument("--during-main-job", action="store_true", help="also the peak during ./dpe pipeline")
    args = parser.parse_args()
    paths = StackPaths.from_environment()
    report: dict[str, object] = {"when": datetime.now(UTC).isoformat(timespec="seconds")}
    if args.time_up:
        report["up_to_healthy_s"] = round(time_up(paths.project_dir), 1)
        time.sleep(60)  # "at rest": let JVMs and gunicorn settle
    usage = service_rss_mib(Supervisor(paths))
    total = round(sum(usage.values()), 1)
    report.update(rss_mib=usage, total_mib=total, budget_mib=BUDGET_MIB, within_budget=total <= BUDGET_MIB)
    for name, mib in sorted(usage.items(), key=lambda item: -item[1]):
        print(f"{name:14s} {mib:8.1f} MiB")
    print(f"{'total':14s} {total:8.1f} MiB / budget {BUDGET_MIB} MiB (at rest)")
    if args.during_main_job:
        during = peak_during_main_job(paths.project_dir, Supervisor(paths))
        report["during_main_job"] = during
        for name, mib in sorted(during["peak_rss_mib"].items(), key=lambda item: -item[1]):
            print(f"{name:14s} {mib:8.1f} MiB (peak)")
        print(f"{'total':14s} {during['peak_total_mib']:8.1f} MiB / budget {BUDGET_MIB} MiB "
              f"(peak during the main job, {during['main_job_s']} s)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    output = RESULTS / f"footprint-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"→ {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
