"""Fixtures of the notebook tests: the ADEME replay, notebook runs in a learner's namespace, artifacts.

A notebook that fails (while running, or in a test's assertions) is copied to
``var/artifacts/`` so that CI keeps it for inspection.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest
import requests

from dpe_pipeline.settings import get_settings, project_dir

ARTIFACTS_DIR = project_dir() / "var" / "artifacts"
KERNEL_NAME = "python3"
CELL_TIMEOUT_SECONDS = 600


@dataclass
class ExecutedNotebook:
    """A notebook after a run: its executed copy on disk, its cells and how long it took."""

    path: Path
    notebook: nbformat.NotebookNode
    seconds: float
    raw_dir: Path

    def cells_tagged(self, tag: str) -> list[nbformat.NotebookNode]:
        return [cell for cell in self.notebook.cells if tag in cell.get("metadata", {}).get("tags", [])]

    def cell(self, cell_id: str) -> nbformat.NotebookNode:
        return next(cell for cell in self.notebook.cells if cell.get("id") == cell_id)


def keep_artifact(executed: Path) -> Path:
    """Copy an executed notebook to ``var/artifacts/``."""
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    target = ARTIFACTS_DIR / executed.name
    shutil.copyfile(executed, target)
    return target


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, ExecutedNotebook):
                report.sections.append(("notebook", f"executed notebook kept at {keep_artifact(value.path)}"))
    return report


def _replay_answers(base_url: str) -> bool:
    health_url = base_url.split("/data-fair/")[0] + "/health"
    try:
        return requests.get(health_url, timeout=2).ok
    except requests.RequestException:
        return False


@pytest.fixture(scope="session")
def ademe_api(ensure_services) -> str:
    """The ADEME base URL the notebooks use; in replay mode the replay answers (reused, or started by the stack)."""
    settings = get_settings()
    if settings.ademe_mode == "replay" and not _replay_answers(settings.ademe_base_url):
        ensure_services("replay")
    return settings.ademe_base_url


@pytest.fixture(scope="session")
def run_notebook(ademe_api, tmp_path_factory) -> Callable[..., ExecutedNotebook]:
    """Execute a notebook as learner ``learner_id`` (kernels inherit ``LEARNER_ID``) from the project folder.

    With ``allow_errors`` the run goes on after a failing cell (nbclient), as a student's
    unfinished lab would; otherwise papermill runs it, injects ``parameters`` and stops at
    the first error, which fails the test and keeps the notebook in ``var/artifacts/``.
    """
    output_dir = tmp_path_factory.mktemp("executed")

    def run(
        source: Path, learner_id: str, parameters: dict[str, Any] | None = None, allow_errors: bool = False
    ) -> ExecutedNotebook:
        output = output_dir / f"{source.stem}.{learner_id}.ipynb"
        raw_dir = project_dir() / "data" / "raw" / f"lab_{learner_id}"
        shutil.rmtree(raw_dir, ignore_errors=True)
        started = time.perf_counter()
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("LEARNER_ID", learner_id)
            patch.setenv("DPE_PROJECT_DIR", str(project_dir()))
            if allow_errors:
                _execute_allowing_errors(source, output)
            else:
                _execute_with_papermill(source, output, parameters or {})
        seconds = time.perf_counter() - started
        return ExecutedNotebook(output, nbformat.read(output, as_version=4), seconds, raw_dir)

    return run


def _execute_with_papermill(source: Path, output: Path, parameters: dict[str, Any]) -> None:
    import papermill

    try:
        papermill.execute_notebook(
            str(source),
            str(output),
            parameters=parameters,
            kernel_name=KERNEL_NAME,
            cwd=str(project_dir()),
            progress_bar=False,
            execution_timeout=CELL_TIMEOUT_SECONDS,
        )
    except papermill.PapermillExecutionError as error:
        kept = keep_artifact(output)
        pytest.fail(f"{source.name} failed in cell {error.cell_index} ({error.ename}: {error.evalue}); see {kept}")


def _execute_allowing_errors(source: Path, output: Path) -> None:
    from nbclient import NotebookClient

    notebook = nbformat.read(source, as_version=4)
    client = NotebookClient(
        notebook,
        kernel_name=KERNEL_NAME,
        timeout=CELL_TIMEOUT_SECONDS,
        allow_errors=True,
        resources={"metadata": {"path": str(project_dir())}},
    )
    try:
        client.execute()
    finally:
        nbformat.write(notebook, output)
