"""What the compose checks share: paths, and the values of .env.example with test secrets."""

from __future__ import annotations

from dpe_pipeline.settings import RANDOM_PLACEHOLDER, project_dir

ROOT = project_dir()
COMPOSE_FILE = ROOT / "docker-compose.yml"
PROFILES = ("airflow",)


def env_example_values() -> dict[str, str]:
    """Every key of ``.env.example``, secrets replaced by recognisable test values."""
    values = {}
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            key = key.strip()
            values[key] = f"test-{key.lower().replace('_', '-')}" if value.strip() == RANDOM_PLACEHOLDER else value
    values["LEARNER_ID"] = "compose_test"
    return values
