"""Spark standalone for the native stack: one master and one worker from the venv's pyspark.

pip's pyspark ships ``bin/spark-class`` but not ``sbin/start-master.sh``, and
``sbin/spark-daemon.sh`` forks into the background, which a process manager cannot follow:
both daemons run ``spark-class … Master|Worker`` in the foreground instead. Every Spark
process binds 127.0.0.1 (``SPARK_LOCAL_IP``; else Spark picks the eth0 address).

The Iceberg jars (runtime, AWS bundle for S3FileIO, PostgreSQL driver) come from Maven
Central through ``scripts/fetch-jars.sh``; ``stack/spark/spark-defaults.conf.template`` is
rendered into ``var/spark/conf`` for ``spark-submit`` (the same template compose renders).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from string import Template

from dpe_pipeline.native.registry import StackContext, StackError
from dpe_pipeline.settings import Settings

logger = logging.getLogger(__name__)

# pyspark's folder, found without importing it (``./dpe status`` stays quick)
SPARK_HOME = Path(importlib.util.find_spec("pyspark").origin).resolve().parent
FETCH_SCRIPT = Path("scripts") / "fetch-jars.sh"
DEFAULTS_TEMPLATE = Path("stack") / "spark" / "spark-defaults.conf.template"
HOST = "127.0.0.1"
#: The AWS SDK v2 sends CRC checksums by default, which non-AWS stores may reject (apache/iceberg#14439)
AWS_CHECKSUM_ENVIRONMENT = {
    "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
    "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
}


def state_dir(ctx: StackContext) -> Path:
    return ctx.paths.state_dir / "spark"


def conf_dir(ctx: StackContext) -> Path:
    return state_dir(ctx) / "conf"


def master_command(settings: Settings) -> tuple[str, ...]:
    return (
        str(SPARK_HOME / "bin" / "spark-class"), "org.apache.spark.deploy.master.Master",
        "--host", HOST, "--port", str(settings.spark_master_port), "--webui-port", str(settings.spark_master_ui_port),
    )


def worker_command(settings: Settings) -> tuple[str, ...]:
    return (
        str(SPARK_HOME / "bin" / "spark-class"), "org.apache.spark.deploy.worker.Worker",
        "--host", HOST,
        "--cores", str(settings.spark_worker_cores),
        "--memory", settings.spark_worker_memory,
        "--webui-port", str(settings.spark_worker_ui_port),
        f"spark://{HOST}:{settings.spark_master_port}",
    )


def daemon_environment(ctx: StackContext) -> dict[str, str]:
    """Environment of the master and the worker (and so of the executors the worker starts)."""
    return {
        "SPARK_HOME": str(SPARK_HOME),
        "SPARK_CONF_DIR": str(conf_dir(ctx)),
        "SPARK_LOCAL_IP": HOST,
        "SPARK_LOG_DIR": str(ctx.paths.log_dir),
        "SPARK_WORKER_DIR": str(state_dir(ctx) / "work"),
        # The daemons themselves are small; the worker's --memory is for its executors
        "SPARK_DAEMON_MEMORY": "512m",
        # Executors run Python with the same interpreter and packages as the driver
        "PYSPARK_PYTHON": sys.executable,
        **AWS_CHECKSUM_ENVIRONMENT,
    }


def fetch_jars(ctx: StackContext) -> list[str]:
    """The three jars' paths, fetched from Maven Central on first use (a cache hit afterwards)."""
    script = ctx.paths.project_dir / FETCH_SCRIPT
    environment = {**os.environ, "DPE_CACHE": str(ctx.paths.cache_dir)}
    result = subprocess.run([str(script)], env=environment, capture_output=True, text=True)
    if result.returncode != 0:
        logger.error("fetch-jars.sh failed (%s): %s", result.returncode, result.stderr)
        raise StackError(
            "Le téléchargement des jars Iceberg depuis Maven Central a échoué (scripts/fetch-jars.sh) : "
            f"{result.stderr.strip()[-1500:]}"
        )
    return result.stdout.strip().splitlines()[-1].split(",")


def render_defaults(ctx: StackContext, jars: list[str]) -> Path:
    """``var/spark/conf/spark-defaults.conf`` from the shared template and ``.env``."""
    s = ctx.settings
    values = {
        "spark_jars": ",".join(jars),
        "postgres_host": s.postgres_host,
        "postgres_port": s.postgres_port,
        "iceberg_db": s.iceberg_db,
        "iceberg_db_user": s.postgres_user,
        "iceberg_db_password": s.postgres_password,
        "s3_bucket": s.s3_bucket,
        "s3_endpoint": s.s3_endpoint,
        "s3_access_key": s.s3_access_key,
        "s3_secret_key": s.s3_secret_key,
        "s3_region": s.s3_region,
    }
    template = ctx.paths.project_dir / DEFAULTS_TEMPLATE
    text = Template(template.read_text(encoding="utf-8")).substitute(values)
    target = conf_dir(ctx) / "spark-defaults.conf"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    target.chmod(0o600)  # holds the catalog and S3 passwords
    return target


def prepare(ctx: StackContext) -> None:
    """Jars in the cache, the rendered defaults, the worker's scratch folder."""
    if not (SPARK_HOME / "bin" / "spark-class").exists():
        raise StackError(f"pyspark est installé sans bin/spark-class ({SPARK_HOME}) : réinstallez l'environnement.")
    render_defaults(ctx, fetch_jars(ctx))
    (state_dir(ctx) / "work").mkdir(parents=True, exist_ok=True)


def master_state(settings: Settings, timeout: float) -> dict:
    """The master's ``/json/`` document: status, workers, applications."""
    url = f"http://{HOST}:{settings.spark_master_ui_port}/json/"
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=timeout) as response:
        return json.load(response)


@dataclass(frozen=True)
class MasterCheck:
    """The master's ``/json/`` answers ALIVE."""

    settings: Settings

    def probe(self, timeout: float) -> str | None:
        try:
            state = master_state(self.settings, timeout)
        except (urllib.error.URLError, OSError, ValueError) as error:
            return f"Spark master /json/: {getattr(error, 'reason', error)}"
        return None if state.get("status") == "ALIVE" else f"Spark master status {state.get('status')}"


@dataclass(frozen=True)
class WorkerCheck:
    """A worker with this stack's UI port is registered ALIVE at the master."""

    settings: Settings

    def probe(self, timeout: float) -> str | None:
        try:
            state = master_state(self.settings, timeout)
        except (urllib.error.URLError, OSError, ValueError) as error:
            return f"Spark master /json/: {getattr(error, 'reason', error)}"
        suffix = f":{self.settings.spark_worker_ui_port}"
        alive = [w for w in state.get("workers", []) if w.get("state") == "ALIVE"
                 and str(w.get("webuiaddress", "")).endswith(suffix)]
        return None if alive else "no ALIVE worker registered at the master yet"
