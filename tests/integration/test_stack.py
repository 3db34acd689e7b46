"""The native stack runner on real services: PostgreSQL and Kafka under supervisord.

Most tests use the shared stack (``var/``, reused if running). The port-conflict and
``down`` tests drive the CLI in a private state directory with their own ports, so they
never stop or reconfigure the stack the other tests use.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg2
import pytest
from kafka import KafkaAdminClient

from dpe_pipeline import stack
from dpe_pipeline.native.kafka import course_topics
from dpe_pipeline.native.postgres import FALLBACK_PARENT
from dpe_pipeline.native.registry import Port, StackPaths
from dpe_pipeline.native.supervisor import Supervisor, find_stack_processes
from dpe_pipeline.settings import Settings, get_settings, project_dir

pytestmark = pytest.mark.integration

CORE = ("postgres", "kafka")


@pytest.fixture(scope="module")
def settings(ensure_services) -> Settings:
    ensure_services(*CORE)
    return get_settings()


def running_pids() -> dict[str, list[int]]:
    supervisor = Supervisor(StackPaths.from_environment())
    return {name: [info["pid"] for info in infos] for name, infos in supervisor.processes().items()}


def status_rows(output: str) -> dict[str, list[str]]:
    lines = [line.split() for line in output.splitlines() if line.strip()]
    return {cells[0]: cells for cells in lines[1:] if cells}


# --- the shared stack ------------------------------------------------------------------------


def test_postgres_and_kafka_pass_their_health_checks(settings):
    assert stack.is_healthy("postgres")
    assert stack.is_healthy("kafka")


def test_status_shows_them_running_and_healthy(settings, capsys):
    code = stack.status()
    rows = status_rows(capsys.readouterr().out)
    assert rows["postgres"][1:3] == ["démarré", "ok"]
    assert rows["kafka"][1:3] == ["démarré", "ok"]
    assert rows["kafka"][3] == settings.kafka_bootstrap_servers
    assert code == 0


def test_postgres_logs_in_with_the_env_password_and_has_both_databases(settings):
    with psycopg2.connect(settings.postgres_dsn, connect_timeout=5) as connection, connection.cursor() as cursor:
        cursor.execute(
            "select datname, pg_get_userbyid(datdba) from pg_database where datname in (%s, 'iceberg')",
            (settings.postgres_db,),
        )
        owners = dict(cursor.fetchall())
    connection.close()
    assert owners == {settings.postgres_db: settings.postgres_user, "iceberg": settings.postgres_user}


@pytest.mark.parametrize("password", ["not-the-password", ""])
def test_postgres_refuses_a_wrong_or_missing_password(settings, password):
    with pytest.raises(psycopg2.OperationalError) as refused:
        psycopg2.connect(
            host=settings.postgres_host,
            port=settings.postgres_port,
            dbname=settings.postgres_db,
            user=settings.postgres_user,
            password=password,
            connect_timeout=5,
        )
    message = str(refused.value)
    assert "password authentication failed" in message or "no password supplied" in message


def test_kafka_has_the_course_topics(settings):
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers, client_id="test-stack")
    try:
        described = admin.describe_topics(list(course_topics(settings)))
    finally:
        admin.close()
    partitions = {topic["name"]: len(topic["partitions"]) for topic in described}
    assert partitions == {settings.kafka_topic_raw: 3, settings.kafka_topic_dlq: 1}


def test_up_twice_restarts_nothing(settings, capsys):
    before = running_pids()
    assert stack.up(list(CORE)) == 0
    assert stack.up(list(CORE)) == 0
    output = capsys.readouterr().out
    assert output.count("PostgreSQL : déjà démarré") == 2
    assert output.count("Kafka : déjà démarré") == 2
    after = running_pids()
    assert {name: after[name] for name in CORE} == {name: before[name] for name in CORE}
    assert stack.is_healthy("postgres") and stack.is_healthy("kafka")


def test_logs_shows_a_service_log_and_names_unknown_services(settings, capsys):
    assert stack.logs("kafka") == 0
    assert "kafka" in capsys.readouterr().out.lower()
    assert stack.logs("nope") == 2
    assert "Service inconnu : nope" in capsys.readouterr().err


# --- private stacks (own state directory, own ports) ----------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class PrivateStack:
    """A second stack in a temporary state directory, driven through the CLI as a user would."""

    state_dir: Path
    environment: dict[str, str]

    @property
    def paths(self) -> StackPaths:
        return StackPaths(project_dir(), self.state_dir, StackPaths.from_environment().cache_dir)

    def run(self, *arguments: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """``./dpe <arguments>``; ``ensure <services>`` calls ``stack.ensure`` as the test fixtures do."""
        if arguments[0] == "ensure":
            code = f"from dpe_pipeline import stack; stack.ensure(*{list(arguments[1:])!r})"
            command = [sys.executable, "-c", code]
        else:
            command = [sys.executable, "-m", "dpe_pipeline.cli", *arguments]
        return subprocess.run(
            command, cwd=project_dir(), env=self.environment, capture_output=True, text=True, timeout=timeout
        )


@pytest.fixture
def private_stack(tmp_path) -> Iterator[PrivateStack]:
    state_dir = tmp_path / "state"
    environment = dict(os.environ, DPE_STATE_DIR=str(state_dir))
    private = PrivateStack(state_dir, environment)
    yield private
    private.run("down", timeout=120)
    # As root, PostgreSQL data goes to /var/tmp when pytest's 0700 folder is out of its reach
    shutil.rmtree(FALLBACK_PARENT / f"dpe-course-{private.paths.state_id}", ignore_errors=True)


@pytest.mark.parametrize(
    ("service", "title", "setting", "value"),
    [
        ("postgres", "PostgreSQL", "POSTGRES_PORT", "{port}"),
        ("kafka", "Kafka", "KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:{port}"),
    ],
)
def test_a_taken_port_is_named_in_french_before_anything_starts(private_stack, service, title, setting, value):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        private_stack.environment[setting] = value.format(port=port)
        result = private_stack.run("up", service)

    assert result.returncode == 1, result.stdout + result.stderr
    expected = (
        f"Le port {port} ({title}) est déjà utilisé par un autre programme : "
        f"arrêtez-le ou changez {setting} dans .env."
    )
    assert expected in result.stderr
    assert "prêt" not in result.stdout
    supervisor = Supervisor(private_stack.paths)
    assert all(info["statename"] == "STOPPED" for info in supervisor.processes()[service])


class HealthyHandler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_ensure_reuses_a_healthy_service_it_did_not_start_but_up_refuses_its_port(private_stack):
    server = ThreadingHTTPServer(("127.0.0.1", 0), HealthyHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        private_stack.environment["REPLAY_PORT"] = str(server.server_port)
        reused = private_stack.run("ensure", "replay")
        refused = private_stack.run("up", "replay")
    finally:
        server.shutdown()
        server.server_close()

    assert reused.returncode == 0, reused.stdout + reused.stderr
    assert refused.returncode == 1
    assert f"Le port {server.server_port} (Rejeu ADEME) est déjà utilisé" in refused.stderr
    replay = Supervisor(private_stack.paths).processes()["replay"]
    assert [info["statename"] for info in replay] == ["STOPPED"]


def test_down_leaves_no_process_behind(private_stack):
    postgres_port, kafka_port, controller_port = free_port(), free_port(), free_port()
    private_stack.environment.update(
        POSTGRES_PORT=str(postgres_port),
        KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{kafka_port}",
        KAFKA_CONTROLLER_PORT=str(controller_port),
    )
    ports = [Port("127.0.0.1", number, "test") for number in (postgres_port, kafka_port, controller_port)]

    started = private_stack.run("up", "postgres", "kafka")
    assert started.returncode == 0, started.stdout + started.stderr
    processes = find_stack_processes(private_stack.paths)
    commands = " ".join(Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace") for pid in processes)
    assert "supervisord" in commands and "kafka.Kafka" in commands and "postgres" in commands
    assert len(processes) >= 4  # supervisord, postmaster (+ its workers), the broker
    assert all(stack.port_in_use(port) for port in ports)

    stopped = private_stack.run("down", timeout=120)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert "Pile arrêtée." in stopped.stdout
    assert find_stack_processes(private_stack.paths) == []
    assert not any(stack.port_in_use(port) for port in ports)
    assert not any(Path(f"/proc/{pid}").exists() for pid in processes)


FORKER = """
from dpe_pipeline import stack
from dpe_pipeline.native import services  # noqa: F401
from dpe_pipeline.native.registry import Service, register

@register("forker")
def forker(ctx):
    # A shell that leaves two children: a SIGTERM to the shell alone would orphan them
    return Service(name="forker", title="Forker", command=("sh", "-c", "sleep 600 & sleep 600 & wait"))

raise SystemExit(stack.up(["forker"]))
"""


def test_down_also_stops_the_children_of_a_service(private_stack):
    started = subprocess.run(
        [sys.executable, "-c", FORKER], env=private_stack.environment, capture_output=True, text=True, timeout=60
    )
    assert started.returncode == 0, started.stdout + started.stderr
    processes = find_stack_processes(private_stack.paths)
    commands = [Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] for pid in processes]
    assert commands.count(b"sleep") == 2

    stopped = private_stack.run("down", timeout=60)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert find_stack_processes(private_stack.paths) == []
    assert not any(Path(f"/proc/{pid}").exists() for pid in processes)
