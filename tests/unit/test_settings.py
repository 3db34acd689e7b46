"""The .env is created on first use, with fresh secrets, and never overwritten."""

import shutil

import pytest
from pydantic import ValidationError

from dpe_pipeline.settings import RANDOM_PLACEHOLDER, Settings, ensure_env_file, project_dir


@pytest.fixture
def checkout(tmp_path):
    shutil.copy(project_dir() / ".env.example", tmp_path / ".env.example")
    return tmp_path


def read_env(path):
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and line[0] != "#")


def test_first_run_creates_env_with_random_secrets(checkout):
    env_file = ensure_env_file(checkout)
    values = read_env(env_file)
    assert RANDOM_PLACEHOLDER not in values.values()
    assert len(values["POSTGRES_PASSWORD"]) >= 20
    assert values["LEARNER_ID"].startswith("apprenant_")
    assert env_file.stat().st_mode & 0o077 == 0  # secrets readable by the owner only


def test_two_checkouts_get_different_secrets(checkout, tmp_path_factory):
    other = tmp_path_factory.mktemp("other")
    shutil.copy(checkout / ".env.example", other / ".env.example")
    first, second = read_env(ensure_env_file(checkout)), read_env(ensure_env_file(other))
    assert first["API_KEY"] != second["API_KEY"]
    assert first["LEARNER_ID"] != second["LEARNER_ID"]


def test_existing_env_is_kept(checkout):
    (checkout / ".env").write_text("LEARNER_ID=marie\n")
    ensure_env_file(checkout)
    assert (checkout / ".env").read_text() == "LEARNER_ID=marie\n"


def test_settings_read_the_file_and_the_environment_wins(checkout, monkeypatch):
    env_file = ensure_env_file(checkout)
    monkeypatch.setenv("POSTGRES_HOST", "postgres")
    settings = Settings(_env_file=env_file)
    assert settings.postgres_host == "postgres"
    assert settings.ademe_mode == "replay"
    assert settings.ademe_base_url == f"http://127.0.0.1:{settings.replay_port}/data-fair/api/v1"
    assert settings.lab_namespace == f"lab_{settings.learner_id}"
    assert settings.lab_topic("dpe.raw") == f"lab.{settings.learner_id}.dpe.raw"


def test_live_mode_uses_the_official_api(checkout, monkeypatch):
    monkeypatch.setenv("ADEME_MODE", "live")
    settings = Settings(_env_file=ensure_env_file(checkout))
    assert settings.ademe_base_url == "https://data.ademe.fr/data-fair/api/v1"


def test_bad_learner_id_is_explained_in_french(checkout, monkeypatch):
    monkeypatch.setenv("LEARNER_ID", "Marie Dupont")
    with pytest.raises(ValidationError, match="LEARNER_ID='Marie Dupont' est invalide"):
        Settings(_env_file=ensure_env_file(checkout))
