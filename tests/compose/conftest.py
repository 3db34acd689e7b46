"""Fixtures of the compose checks: the real Compose v2 CLI (no engine) and a fully defined env file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from compose_env import COMPOSE_FILE, PROFILES, env_example_values

from dpe_pipeline.compose_cli import compose_config, install_compose_cli


@pytest.fixture(scope="session")
def compose_binary() -> Path:
    return install_compose_cli()


@pytest.fixture(scope="session")
def env_file(tmp_path_factory) -> Path:
    """An env file with exactly the keys of ``.env.example`` (not the developer's ``.env``)."""
    path = tmp_path_factory.mktemp("compose") / "env"
    path.write_text("".join(f"{key}={value}\n" for key, value in env_example_values().items()), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def resolved(compose_binary, env_file) -> dict[str, Any]:
    """The compose file as the Compose CLI resolves it, with every profile."""
    return compose_config(compose_binary, COMPOSE_FILE, env_file, PROFILES)


@pytest.fixture(scope="session")
def services(resolved) -> dict[str, dict[str, Any]]:
    return resolved["services"]
