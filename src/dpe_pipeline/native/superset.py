"""Superset for the native stack: its own pinned environment, metadata in PostgreSQL, gunicorn.

- Superset needs ``sqlalchemy<2``, ``pandas<2.2``, ``pyarrow<19``: it gets a venv of its own,
  built once from ``requirements/superset.txt`` in ``$DPE_CACHE/venvs/superset-<lock hash>``
  (like ``./dpe`` does for the course's environment);
- ``stack/superset/superset_config.py`` reads everything from the environment (compose uses
  the same file); its metadata database ``superset`` is created through the ``.env`` user;
- ``superset db upgrade``, ``fab create-admin``, ``superset init`` run only when the
  marker ``var/superset/initialized`` does not match the lock and the admin account;
- once ``/health`` answers, the dashboard is provisioned if the Iceberg tables exist
  (:func:`dpe_pipeline.superset.provision_dashboard`); otherwise it is left for later.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

from dpe_pipeline.native import postgres as postgres_native
from dpe_pipeline.native.registry import StackContext, StackError
from dpe_pipeline.settings import Settings

logger = logging.getLogger(__name__)

SUPERSET_DATABASE = "superset"
LOCK_FILE = "requirements/superset.txt"
PIP_VERSION = "26.3"
INSTALL_TIMEOUT_SECONDS = 900
COMMAND_TIMEOUT_SECONDS = 300


def lock_hash(ctx: StackContext) -> str:
    return hashlib.sha256((ctx.paths.project_dir / LOCK_FILE).read_bytes()).hexdigest()[:12]


def venv_dir(ctx: StackContext) -> Path:
    return ctx.paths.cache_dir / "venvs" / f"superset-{lock_hash(ctx)}"


def state_dir(ctx: StackContext) -> Path:
    return ctx.paths.state_dir / "superset"


def config_path(ctx: StackContext) -> Path:
    return ctx.paths.project_dir / "stack" / "superset" / "superset_config.py"


def environment(ctx: StackContext) -> dict[str, str]:
    """What ``superset_config.py`` reads, and where Superset keeps its local files."""
    s = ctx.settings
    return {
        "SUPERSET_CONFIG_PATH": str(config_path(ctx)),
        "SUPERSET_HOME": str(state_dir(ctx)),
        "FLASK_APP": "superset",
        "SUPERSET_SECRET_KEY": s.superset_secret_key,
        "POSTGRES_HOST": s.postgres_host,
        "POSTGRES_PORT": str(s.postgres_port),
        "POSTGRES_USER": s.postgres_user,
        "POSTGRES_PASSWORD": s.postgres_password,
        "PYTHONUNBUFFERED": "1",
        "PATH": os.pathsep.join([str(venv_dir(ctx) / "bin"), "/usr/local/bin", "/usr/bin", "/bin"]),
    }


def server_command(ctx: StackContext) -> tuple[str, ...]:
    s = ctx.settings
    return (
        str(venv_dir(ctx) / "bin" / "gunicorn"),
        "-w", "2",
        "-k", "gthread",
        "--threads", "4",
        "--timeout", "120",
        "-b", f"{s.superset_host}:{s.superset_port}",
        "superset.app:create_app()",
    )


# --- preparation ----------------------------------------------------------------------------


def prepare(ctx: StackContext) -> None:
    """Environment, metadata database, schema and admin account: each step skipped when done."""
    install_environment(ctx)
    state_dir(ctx).mkdir(parents=True, exist_ok=True)
    create_metadata_database(ctx.settings)
    initialise_metadata(ctx)


def install_environment(ctx: StackContext) -> None:
    """The pinned Superset venv, once per lock (a ``.complete`` marker records a full install)."""
    venv = venv_dir(ctx)
    if (venv / ".complete").exists():
        return
    print(f"Installation de Superset dans {venv} (une seule fois, ~1,5 min)…", flush=True)
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
            logger.error("superset install step %s failed: %s", step, result.stderr)
            raise StackError(f"L'installation de Superset a échoué :\n{result.stderr.strip()[-2000:]}")
    (venv / ".complete").touch()


def create_metadata_database(settings: Settings) -> None:
    """Database ``superset`` owned by the ``.env`` user."""
    postgres_native.create_databases(settings, (SUPERSET_DATABASE,), purpose="la base de Superset")


def marker_text(ctx: StackContext) -> str:
    """What the metadata was initialised for: the lock, the admin name and a fingerprint of its password."""
    s = ctx.settings
    secret = hashlib.sha256(f"{s.superset_admin_user}:{s.superset_admin_password}".encode()).hexdigest()[:16]
    return f"lock={lock_hash(ctx)} admin={s.superset_admin_user} fingerprint={secret}\n"


def initialise_metadata(ctx: StackContext) -> None:
    """``db upgrade``, admin account, ``init`` — only when the marker says something changed."""
    marker = state_dir(ctx) / "initialized"
    expected = marker_text(ctx)
    if marker.exists() and marker.read_text(encoding="utf-8") == expected:
        return
    s = ctx.settings
    print("Initialisation de Superset (schéma, compte administrateur, rôles ; ~45 s)…", flush=True)
    run_superset(ctx, "db", "upgrade")
    run_superset(
        ctx, "fab", "create-admin",
        "--username", s.superset_admin_user, "--password", s.superset_admin_password,
        "--firstname", "Admin", "--lastname", "DPE", "--email", f"{s.superset_admin_user}@dpe.invalid",
    )
    # create-admin leaves an existing account alone: make its password the one of .env
    run_superset(ctx, "fab", "reset-password", "--username", s.superset_admin_user,
                 "--password", s.superset_admin_password)
    run_superset(ctx, "init")
    marker.write_text(expected, encoding="utf-8")


def run_superset(ctx: StackContext, *args: str) -> str:
    command = [str(venv_dir(ctx) / "bin" / "superset"), *args]
    result = subprocess.run(
        command, env=environment(ctx), cwd=state_dir(ctx), capture_output=True, text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        logger.error("superset %s failed (%s): %s", args[0], result.returncode, output)
        raise StackError(f"« superset {' '.join(args[:2])} » a échoué :\n{output[-2000:]}")
    return result.stdout


# --- initialisation ---------------------------------------------------------------------------


def provision_if_ready(settings: Settings) -> None:
    """Provision the dashboard when the demo's Iceberg tables exist (else the main job will)."""
    from dpe_pipeline import superset as superset_provisioning

    try:
        ready = superset_provisioning.lake_tables_exist(settings)
    except Exception as error:  # noqa: BLE001 - Trino down or no certificate: provision later
        logger.info("dashboard not provisioned yet, Trino not reachable: %s", error)
        return
    if not ready:
        # The main job (./dpe up, ./dpe pipeline) provisions it after the Spark job
        logger.debug("dashboard not provisioned yet: the lake tables do not exist")
        return
    try:
        result = superset_provisioning.provision_dashboard(settings)
    except superset_provisioning.ProvisioningError as error:
        raise StackError(f"Provisionnement du tableau de bord impossible : {error}") from error
    print(f"  Tableau de bord « {result.title} » : {result.url}", flush=True)
