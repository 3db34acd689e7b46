"""The stack/ templates of the native run, rendered for compose with the values compose resolves."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from compose_env import ROOT, env_example_values

KAFKA_START = ROOT / "services" / "kafka" / "start.sh"


@pytest.fixture(scope="module")
def renderer():
    path = ROOT / "services" / "python" / "render_stack_config.py"
    spec = importlib.util.spec_from_file_location("render_stack_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_properties(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs if not key.lstrip().startswith("#")}


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl makes the coordinator's certificate")
def test_trino_templates_render_for_both_nodes(renderer, services, tmp_path):
    environment = services["trino-config"]["environment"]
    for role in ("coordinator", "worker"):
        for path in renderer.render_trino(tmp_path / role, environment, role):
            assert "${" not in path.read_text(encoding="utf-8"), path
    coordinator, worker = tmp_path / "coordinator", tmp_path / "worker"
    # Every node reaches the others by service name, never by 127.0.0.1
    assert read_properties(coordinator / "node.properties")["node.internal-address"] == "trino"
    assert read_properties(worker / "node.properties")["node.internal-address"] == "trino-worker"
    assert read_properties(worker / "config.properties")["discovery.uri"] == "http://trino:8080"
    iceberg = read_properties(coordinator / "catalog" / "iceberg.properties")
    assert iceberg["s3.endpoint"] == "http://minio:9000" and iceberg["s3.path-style-access"] == "true"
    assert iceberg["fs.native-s3.enabled"] == "true"
    assert not [key for key in iceberg if key.startswith("hive.s3.")], "legacy S3 keys were removed from Trino"
    assert "postgres:5432" in read_properties(coordinator / "catalog" / "postgresql.properties")["connection-url"]
    # Clients use HTTPS on 443: the port compose gives the Python code and publishes
    assert read_properties(coordinator / "config.properties").get("http-server.https.port") == "443"
    assert services["jupyter"]["environment"]["TRINO_PORT"] == "443"
    assert {port["target"] for port in services["trino"]["ports"]} == {443}


def test_trino_password_file_matches_the_password(renderer):
    import hashlib

    line = renderer.trino_password_line("dpe", "s3cret", salt=b"\x01" * 16)
    user, iterations, salt, digest = line.strip().split(":")
    assert user == "dpe" and int(iterations) >= 1000  # Trino refuses fewer PBKDF2 iterations
    expected = hashlib.pbkdf2_hmac("sha1", b"s3cret", bytes.fromhex(salt), int(iterations), dklen=len(digest) // 2)
    assert expected.hex() == digest
    assert renderer.trino_password_line("dpe", "other", salt=b"\x01" * 16) != line


def test_a_template_placeholder_without_value_is_reported(renderer, tmp_path):
    template = tmp_path / "x.properties.template"
    template.write_text("key=${unknown_value}\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="unknown_value"):
        renderer.render_template(template, {})


def test_spark_defaults_render_for_a_compose_container(renderer, services, tmp_path, monkeypatch):
    jars = tmp_path / "jars"
    jars.mkdir()
    for name in ("iceberg-spark-runtime-4.0_2.13-1.10.1.jar", "iceberg-aws-bundle-1.10.1.jar", "postgresql-42.7.8.jar"):
        (jars / name).write_bytes(b"")
    monkeypatch.setattr(renderer, "SPARK_JARS_DIR", jars)
    conf = renderer.render_spark(tmp_path / "conf", services["jupyter"]["environment"], "jupyter").read_text()
    assert "${" not in conf
    settings = dict(line.split(None, 1) for line in conf.splitlines() if line.strip() and not line.startswith("#"))
    assert settings["spark.driver.host"].strip() == "jupyter" == services["jupyter"]["hostname"]
    assert settings["spark.driver.bindAddress"].strip() == "0.0.0.0"
    assert settings["spark.sql.catalog.lake.uri"].strip() == "jdbc:postgresql://postgres:5432/iceberg"
    assert settings["spark.sql.catalog.lake.s3.endpoint"].strip() == "http://minio:9000"
    assert len(settings["spark.jars"].split(",")) == 3


def test_kafka_config_keeps_the_native_settings_and_adds_two_listeners(services, tmp_path):
    environment = {**os.environ, "KAFKA_CONFIG_TEMPLATE": str(ROOT / "stack" / "kafka" / "server.properties"),
                   "TMPDIR": str(tmp_path)}
    result = subprocess.run(["sh", str(KAFKA_START), "--render-only"], capture_output=True, text=True, env=environment)
    assert result.returncode == 0, result.stderr
    rendered = tmp_path / "server.properties"
    compose, native = read_properties(rendered), read_properties(ROOT / "stack" / "kafka" / "server.properties")
    listener_keys = {
        "listeners", "advertised.listeners", "listener.security.protocol.map", "inter.broker.listener.name"
    }
    for key, value in native.items():
        if key not in listener_keys and "${" not in value:
            assert compose[key] == value, key
    assert compose["advertised.listeners"].split(",")[0] == "INTERNAL://kafka:19092"
    assert "HOST://localhost:9092" in compose["advertised.listeners"]
    assert compose["inter.broker.listener.name"] == "INTERNAL"
    # the containers' bootstrap address is the INTERNAL listener
    assert services["api"]["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:19092"
    assert env_example_values()["KAFKA_BOOTSTRAP_SERVERS"].startswith("127.0.0.1:")
