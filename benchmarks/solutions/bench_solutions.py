"""Wall time of every solution notebook under papermill, with its default parameters, on the running stack.

What a teacher's regression spends on the notebooks themselves (the tests add the unfinished
labs and their assertions). Each notebook runs as learner ``bench`` (its own topics, schemas,
lake namespace, Superset objects and DAG), from the project folder, one after the other:

    ./dpe up
    .venv/bin/python benchmarks/solutions/bench_solutions.py              # every solutions/NN_*.ipynb
    .venv/bin/python benchmarks/solutions/bench_solutions.py 03 05        # some of them

Results: ``benchmarks/results/solutions-<UTC>.json`` (seconds per notebook, total, load average).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import papermill

from dpe_pipeline.settings import project_dir

RESULTS = Path(__file__).resolve().parents[1] / "results"
LEARNER_ID = "bench"


def run_solution(notebook: Path, output_dir: Path) -> float:
    started = time.perf_counter()
    papermill.execute_notebook(
        str(notebook),
        str(output_dir / notebook.name),
        kernel_name="python3",
        cwd=str(project_dir()),
        progress_bar=False,
    )
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="module numbers (default: all), e.g. 03 05")
    args = parser.parse_args()
    notebooks = sorted((project_dir() / "solutions").glob("[0-9][0-9]_*.ipynb"))
    if args.modules:
        notebooks = [path for path in notebooks if path.name[:2] in args.modules]
    os.environ["LEARNER_ID"] = LEARNER_ID
    os.environ["DPE_PROJECT_DIR"] = str(project_dir())
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-solutions-") as output_dir:
        for notebook in notebooks:
            seconds[notebook.stem] = round(run_solution(notebook, Path(output_dir)), 1)
            print(f"{notebook.stem:22s} {seconds[notebook.stem]:7.1f} s", flush=True)
    total = round(sum(seconds.values()), 1)
    print(f"{'total':22s} {total:7.1f} s")
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": seconds,
        "total_s": total,
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    output = RESULTS / f"solutions-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"→ {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
