"""docker-compose.yml, checked by the real Compose v2 CLI and against stack/ and .env.example."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from compose_env import COMPOSE_FILE, PROFILES, ROOT, env_example_values

from dpe_pipeline.compose_cli import ComposeError, compose_command, compose_config

# Services that publish a web UI (or the ingestion API) on the host, and nothing else
UI_SERVICES = {"jupyter", "superset", "trino", "spark-master", "minio", "api", "airflow-apiserver"}
NEVER_PUBLISHED = {"postgres", "kafka"}
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")


def one_shot(service: dict) -> bool:
    return service.get("restart", "no") == "no"


# --- the Compose CLI itself ------------------------------------------------------------------


def test_compose_cli_accepts_the_file_with_every_profile(compose_binary, env_file):
    for profiles in ((), PROFILES):
        command = [*compose_command(compose_binary, COMPOSE_FILE, env_file, profiles), "config", "--quiet"]
        result = subprocess.run(command, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert "is not set" not in result.stderr, result.stderr


def test_compose_cli_rejects_a_broken_file(compose_binary, env_file, tmp_path):
    """The validation is able to fail: a dependency on a service that does not exist."""
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(
        COMPOSE_FILE.read_text(encoding="utf-8").replace("condition: service_healthy", "condition: service_healthy\n"
                                                         "      no-such-service:\n"
                                                         "        condition: service_healthy", 1),
        encoding="utf-8",
    )
    with pytest.raises(ComposeError):
        compose_config(compose_binary, broken, env_file)


def test_an_undefined_variable_is_an_error(compose_binary, env_file, tmp_path):
    partial = tmp_path / "env"
    partial.write_text(
        "".join(line + "\n" for line in env_file.read_text().splitlines() if not line.startswith("API_KEY=")),
        encoding="utf-8",
    )
    with pytest.raises(ComposeError, match="API_KEY"):
        compose_config(compose_binary, COMPOSE_FILE, partial, PROFILES)


# --- variables and secrets -------------------------------------------------------------------


def test_every_variable_is_defined_in_env_example():
    used = set(VARIABLE.findall(COMPOSE_FILE.read_text(encoding="utf-8")))
    missing = used - set(env_example_values())
    assert used and not missing, f"variables used by docker-compose.yml but absent from .env.example: {missing}"


def test_no_secret_is_written_in_the_compose_file(services):
    secret_setting = re.compile(r"^\s*([A-Z0-9_]*(?:PASSWORD|SECRET|TOKEN|_KEY)):\s*(.+)$")
    settings = [secret_setting.match(line) for line in COMPOSE_FILE.read_text(encoding="utf-8").splitlines()]
    settings = [match for match in settings if match]
    assert settings
    for match in settings:
        assert "${" in match.group(2), f"{match.group(1)} is written in docker-compose.yml instead of coming from .env"
    # and the secrets of the env file do reach the services that need them
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == "test-postgres-password"


# --- images, health and start order ----------------------------------------------------------


def test_every_image_is_pinned(services):
    for name, service in services.items():
        image = service.get("image", "")
        repository, _, tag = image.rpartition(":")
        assert repository and tag and "/" not in tag, f"{name}: image {image!r} has no tag"
        assert tag != "latest", f"{name}: {image} uses latest"
    assert services["minio"]["image"].startswith("quay.io/minio/minio:RELEASE.")
    assert services["minio-init"]["image"].startswith("quay.io/minio/mc:RELEASE.")


def test_versions_match_the_native_run(services):
    assert services["kafka"]["image"] == f"apache/kafka:{env_example_values()['KAFKA_VERSION']}"
    fetch_trino = (ROOT / "scripts" / "fetch-trino.sh").read_text(encoding="utf-8")
    native_trino = re.search(r'TRINO_VERSION="\$\{TRINO_VERSION:-(\d+)\}"', fetch_trino).group(1)
    assert services["trino"]["image"] == services["trino-worker"]["image"] == f"trinodb/trino:{native_trino}"
    superset_pin = re.search(r"^apache-superset==(\S+)$", (ROOT / "requirements" / "superset.in").read_text(), re.M)
    assert services["superset"]["image"].endswith(":" + superset_pin.group(1))
    airflow_pin = re.search(r"^apache-airflow==(\S+)$", (ROOT / "requirements" / "airflow.in").read_text(), re.M)
    assert services["airflow-scheduler"]["image"] == f"dpe-course/airflow:{airflow_pin.group(1)}"


def test_every_long_running_service_has_a_health_check(services):
    for name, service in services.items():
        if one_shot(service):
            continue
        healthcheck = service.get("healthcheck", {})
        assert healthcheck.get("test") and not healthcheck.get("disable"), f"{name} has no health check"


def test_start_order_waits_for_health_or_for_completed_init_jobs(services):
    for name, service in services.items():
        for target, dependency in service.get("depends_on", {}).items():
            condition = dependency["condition"]
            if one_shot(services[target]):
                assert condition == "service_completed_successfully", f"{name} → {target}: {condition}"
            else:
                assert condition == "service_healthy", f"{name} → {target}: {condition}"
    init_jobs = {name for name, service in services.items() if one_shot(service)}
    assert {"postgres-init", "minio-init", "kafka-init", "trino-config", "superset-init"} <= init_jobs


def test_airflow_is_behind_its_profile(services):
    airflow = {name for name in services if name.startswith("airflow")}
    assert airflow and all(services[name].get("profiles") == ["airflow"] for name in airflow)
    assert not any(service.get("profiles") for name, service in services.items() if name not in airflow)


def test_consumers_scale_with_the_env_file(services):
    assert services["consumer"]["deploy"]["replicas"] == int(env_example_values()["CONSUMER_INSTANCES"])
    assert "container_name" not in services["consumer"]  # a fixed name forbids --scale


# --- network exposure ------------------------------------------------------------------------


def test_only_ui_ports_are_published_and_only_on_loopback(services):
    publishing = {name for name, service in services.items() if service.get("ports")}
    assert publishing == UI_SERVICES
    for name in publishing:
        for port in services[name]["ports"]:
            assert port.get("host_ip") == "127.0.0.1", f"{name} publishes {port} beyond 127.0.0.1"


def test_no_published_port_for_kafka_or_postgresql(services):
    for name in NEVER_PUBLISHED:
        assert not services[name].get("ports"), f"{name} must not publish a port"


def test_data_services_live_on_the_internal_network_only(resolved, services):
    assert resolved["networks"]["backend"].get("internal") is True
    for name in NEVER_PUBLISHED:
        assert set(services[name]["networks"]) == {"backend"}


def test_postgresql_and_minio_keep_their_data_in_named_volumes(resolved, services):
    for name, target in (("postgres", "/var/lib/postgresql/data"), ("minio", "/data")):
        (volume,) = [mount for mount in services[name]["volumes"] if mount["target"] == target]
        assert volume["type"] == "volume" and volume["source"] in resolved["volumes"]


# --- configuration shared with the native run ------------------------------------------------


def bind_mounts(services) -> list[tuple[str, str, str]]:
    return [
        (name, mount["source"], mount["target"])
        for name, service in services.items()
        for mount in service.get("volumes", [])
        if mount["type"] == "bind"
    ]


def test_every_bind_mounted_file_exists(services):
    mounts = bind_mounts(services)
    assert mounts
    for name, source, _ in mounts:
        assert Path(source).exists(), f"{name} mounts {source}, which does not exist"


def mounted_stack_files(services) -> set[str]:
    """The stack/ files that compose mounts, one by one or inside a mounted folder."""
    files = set()
    for _, source, _ in bind_mounts(services):
        source = Path(source).resolve()
        if source.is_relative_to(ROOT / "stack") or source == ROOT:
            candidates = [source] if source.is_file() else source.rglob("*")
            files |= {str(path.relative_to(ROOT)) for path in candidates if path.is_file()}
    return {name for name in files if name.startswith("stack/")}


def native_sources() -> str:
    native = ROOT / "src" / "dpe_pipeline" / "native"
    return "\n".join(path.read_text(encoding="utf-8") for path in native.rglob("*.py"))


def test_compose_mounts_the_native_configuration_files(services):
    assert {"stack/postgres/postgresql.conf", "stack/postgres/pg_hba.conf", "stack/kafka/server.properties",
            "stack/kafka/log4j2.properties"} <= mounted_stack_files(services)


@pytest.mark.parametrize(
    "stack_file", sorted(str(path.relative_to(ROOT)) for path in (ROOT / "stack").glob("*/*") if path.is_file())
)
def test_mounted_stack_files_are_the_native_ones(services, stack_file):
    """A stack/ file mounted in compose is the very file the native runner reads (named in native/)."""
    if stack_file not in mounted_stack_files(services):
        pytest.skip(f"{stack_file} is not bind-mounted by compose")
    service_folder, file_name = stack_file.split("/")[1:]
    native_code = native_sources()
    if f'"{service_folder}"' not in native_code:
        pytest.skip(f"no native {service_folder} service yet: {stack_file} is used by compose only for now")
    assert f'"{file_name}"' in native_code, f"{stack_file} is mounted in compose but the native runner never reads it"


def test_kafka_topics_have_the_native_partition_counts(services):
    from dpe_pipeline.native.kafka import course_topics
    from dpe_pipeline.settings import Settings

    settings = Settings(**{key: value for key, value in env_example_values().items()})
    command = " ".join(services["kafka-init"]["command"])
    topics = (("KAFKA_TOPIC_RAW", settings.kafka_topic_raw), ("KAFKA_TOPIC_DLQ", settings.kafka_topic_dlq))
    for variable, topic in topics:
        # ($$ is how compose escapes the shell's $, and how `config` prints it)
        created = re.search(r'--topic "\$\$?' + variable + r'" --partitions (\d+)', command)
        assert created, f"kafka-init does not create {variable}"
        assert int(created.group(1)) == course_topics(settings)[topic]
