"""Resident memory of each native service at rest, against the 6 GB budget (DESIGN §9).

RSS of every process of a service's supervisord program and its descendants (psutil),
summed per service; a Python service's threads count once. Run it on a stack that is up
and idle (``./dpe up``, wait a minute):

    .venv/bin/python benchmarks/footprint/bench_footprint.py
    .venv/bin/python benchmarks/footprint/bench_footprint.py --time-up   # also: ./dpe down; time ./dpe up

``--time-up`` stops the stack and measures ``./dpe up`` to every service healthy with a warm
cache (artifacts and venvs already there). Results: ``benchmarks/results/footprint-<UTC>.json``.
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


def time_up(project: Path) -> float:
    subprocess.run([str(project / "dpe"), "down"], check=True)
    started = time.perf_counter()
    subprocess.run([str(project / "dpe"), "up"], check=True)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-up", action="store_true")
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
    print(f"{'total':14s} {total:8.1f} MiB / budget {BUDGET_MIB} MiB")
    RESULTS.mkdir(parents=True, exist_ok=True)
    output = RESULTS / f"footprint-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"→ {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
