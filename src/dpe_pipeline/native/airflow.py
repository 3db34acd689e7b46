"""Airflow 3 for the native stack: its own pinned environment, metadata in PostgreSQL, three programs.

- Airflow pins its own SQLAlchemy, FastAPI and pydantic: it gets a venv of its own, built once
  from ``requirements/airflow.txt`` in ``$DPE_CACHE/venvs/airflow-<lock hash>``; it needs none
  of the course's packages, because every task runs ``python -m dpe_pipeline.pipeline`` with
  the course's interpreter, named by ``DPE_CORE_PYTHON`` in the tasks' environment;
- ``AIRFLOW_HOME`` is ``var/airflow``; the DAGs are read from ``<repo>/dags``; the metadata
  database ``airflow`` is created through the ``.env`` user, then ``airflow db migrate`` runs
  when the marker ``var/airflow/migrated`` does not match the lock;
- three supervised programs rather than ``airflow standalone`` (a development command that
  finds ``airflow`` on PATH, runs the migration at every start, and whose children outlive a
  SIGTERM to it): ``airflow-scheduler`` (LocalExecutor, parallelism 4),
  ``airflow-dag-processor`` and ``airflow`` (the API server: UI, REST API, execution API);
- the simple auth manager's admin and password come from ``.env`` (a passwords file written
  at each start, readable by its owner only).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from dpe_pipeline.native import postgres as postgres_native
from dpe_pipeline.native.registry import StackContext, StackError
from dpe_pipeline.settings import Settings

logger = logging.getLogger(__name__)

AIRFLOW_DATABASE = "airflow"
LOCK_FILE = "requirements/airflow.txt"
PIP_VERSION = "26.3"
#: LocalExecutor forks this many task processes; the default (32) costs about 5 GiB RSS
PARALLELISM = 4
INSTALL_TIMEOUT_SECONDS = 900
COMMAND_TIMEOUT_SECONDS = 300


def lock_hash(ctx: StackContext) -> str:
    return hashlib.sha256((ctx.paths.project_dir / LOCK_FILE).read_bytes()).hexdigest()[:12]


def venv_dir(ctx: StackContext) -> Path:
    return ctx.paths.cache_dir / "venvs" / f"airflow-{lock_hash(ctx)}"


def home_dir(ctx: StackContext) -> Path:
    return ctx.paths.state_dir / "airflow"


def passwords_file(ctx: StackContext) -> Path:
    return home_dir(ctx) / "simple_auth_manager_passwords.json"


def dags_dir(ctx: StackContext) -> Path:
    return ctx.paths.project_dir / "dags"


def metadata_url(settings: Settings) -> str:
    user, password = quote(settings.postgres_user, safe=""), quote(settings.postgres_password, safe="")
    address = f"{settings.postgres_host}:{settings.postgres_port}"
    return f"postgresql+psycopg2://{user}:{password}@{address}/{AIRFLOW_DATABASE}"


def jwt_secret(settings: Settings) -> str:
    """The tokens' signing key, derived from ``AIRFLOW_SECRET_KEY``: 64 bytes, as HS512 asks (RFC 7518 §3.2).

    The 24-character ``.env`` secret used directly makes PyJWT warn (InsecureKeyLengthWarning)
    at every token.
    """
    return hashlib.sha512(f"airflow-jwt:{settings.airflow_secret_key}".encode()).hexdigest()


def environment(ctx: StackContext) -> dict[str, str]:
    """Airflow's configuration (``AIRFLOW__SECTION__KEY``) plus what the tasks need to run our code."""
    s = ctx.settings
    airflow = {
        "AIRFLOW_HOME": str(home_dir(ctx)),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_dir(ctx)),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(PARALLELISM),
        # Tasks reach the API server here; the default (localhost:8080) is Trino's HTTP port
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{s.airflow_url}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{s.airflow_admin_user}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file(ctx)),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url(s),
        "AIRFLOW__API__HOST": s.airflow_host,
        "AIRFLOW__API__PORT": str(s.airflow_port),
        "AIRFLOW__API__BASE_URL": s.airflow_url,
        "AIRFLOW__API__SECRET_KEY": s.airflow_secret_key,
        "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret(s),
        # A new DAG file (a learner's, in lab 6) shows up within 15 s (default 5 min)
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "15",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(ctx.paths.log_dir / "airflow"),
    }
    # The learners' DAGs (lab 6) read ADEME from Airflow's own environment, with requests
    lines_url = f"{s.ademe_base_url}/datasets/{s.ademe_dataset}/lines"
    tasks = ctx.python_environment(DPE_CORE_PYTHON=sys.executable, DPE_ADEME_LINES_URL=lines_url)
    # The venv's bin first: Airflow starts `airflow` subprocesses; a task's `python` is Airflow's
    path = os.pathsep.join([str(venv_dir(ctx) / "bin"), "/usr/local/bin", "/usr/bin", "/bin"])
    return {**tasks, **airflow, "PATH": path}


def program_command(ctx: StackContext, program: str) -> tuple[str, ...]:
    """``airflow api-server`` / ``scheduler`` / ``dag-processor`` from the venv."""
    command = [str(venv_dir(ctx) / "bin" / "airflow"), program]
    if program == "scheduler":
        # Its log server would listen on every interface (port 8793) for remote workers; here the
        # tasks run on this machine and the API server reads their logs from the same folder
        command.append("--skip-serve-logs")
    if program == "api-server":
        s = ctx.settings
        command += ["--host", s.airflow_host, "--port", str(s.airflow_port), "--workers", "1"]
    return tuple(command)


# --- health ------------------------------------------------------------------------------------

# Local service: never through an HTTP proxy from the environment
_DIRECT_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class AirflowCheck:
    """``GET /api/v2/monitor/health`` answers, and says the components listed are healthy."""

    url: str
    components: tuple[str, ...] = ("metadatabase", "scheduler", "dag_processor")

    def probe(self, timeout: float) -> str | None:
        endpoint = f"{self.url}/api/v2/monitor/health"
        try:
            with _DIRECT_OPENER.open(endpoint, timeout=timeout) as response:
                report = json.load(response)
        except (urllib.error.URLError, OSError, ValueError) as error:
            return f"GET {endpoint}: {getattr(error, 'reason', error)}"
        unhealthy = [
            f"{name}={(report.get(name) or {}).get('status')}"
            for name in self.components
            if (report.get(name) or {}).get("status") != "healthy"
        ]
        return f"Airflow pas prêt : {', '.join(unhealthy)}" if unhealthy else None


# --- preparation ----------------------------------------------------------------------------


def prepare(ctx: StackContext) -> None:
    """Environment, metadata database, schema, admin password: each step skipped when done."""
    install_environment(ctx)
    home_dir(ctx).mkdir(parents=True, exist_ok=True)
    write_passwords_file(ctx)
    create_metadata_database(ctx.settings)
    migrate_metadata(ctx)


def install_environment(ctx: StackContext) -> None:
    """The pinned Airflow venv, once per lock (a ``.complete`` marker records a full install)."""
    venv = venv_dir(ctx)
    if (venv / ".complete").exists():
        return
    print(f"Installation d'Airflow dans {venv} (une seule fois, ~1 min)…", flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    python = getattr(sys, "_base_executable", sys.executable)
    steps = (
        [python, "-m", "venv", str(venv)],
        [str(venv / "bin" / "pip"), "install", "--quiet", f"pip=={PIP_VERSION}"],
        [str(venv / "bin" / "pip"), "install", "--quiet", "-r", str(ctx.paths.project_dir / LOCK_FILE)],
    )
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_SECONDS)
        if result.returncode != 0:
            logger.error("airflow install step %s failed: %s", step, result.stderr)
            raise StackError(f"L'installation d'Airflow a échoué :\n{result.stderr.strip()[-2000:]}")
    (venv / ".complete").touch()


def write_passwords_file(ctx: StackContext) -> None:
    """The simple auth manager reads the admin's password here (else it generates one)."""
    s = ctx.settings
    path = passwords_file(ctx)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(json.dumps({s.airflow_admin_user: s.airflow_admin_password}), encoding="utf-8")


def create_metadata_database(settings: Settings) -> None:
    """Database ``airflow`` owned by the ``.env`` user."""
    postgres_native.create_databases(settings, (AIRFLOW_DATABASE,), purpose="la base d'Airflow")


def migrate_metadata(ctx: StackContext) -> None:
    """``airflow db migrate``, only when the marker says the lock changed since the last one."""
    marker = home_dir(ctx) / "migrated"
    expected = f"lock={lock_hash(ctx)}\n"
    if marker.exists() and marker.read_text(encoding="utf-8") == expected:
        return
    print("Initialisation d'Airflow (schéma de la base airflow ; ~20 s)…", flush=True)
    run_airflow(ctx, "db", "migrate")
    marker.write_text(expected, encoding="utf-8")


def run_airflow(ctx: StackContext, *args: str) -> str:
    command = [str(venv_dir(ctx) / "bin" / "airflow"), *args]
    result = subprocess.run(
        command, env=environment(ctx), cwd=home_dir(ctx), capture_output=True, text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        logger.error("airflow %s failed (%s): %s", args[0], result.returncode, output)
        raise StackError(f"« airflow {' '.join(args[:2])} » a échoué :\n{output[-2000:]}")
    return result.stdout
