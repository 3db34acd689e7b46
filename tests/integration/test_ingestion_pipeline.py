"""Replay → ingestion API → Kafka → consumers → PostgreSQL, on the real services.

Every test works in its own namespace: a topic pair, a consumer group and a PostgreSQL
schema named after a random suffix, all removed at the end, so the tests can run again
on the same stack. The API and the consumers run as real processes (their ``python -m``
entry points), pointed at that namespace through the environment.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from kafka import KafkaConsumer, TopicPartition

from dpe_pipeline import kafka_io, postgres
from dpe_pipeline.ademe import AdemeClient
from dpe_pipeline.settings import Settings, get_settings, project_dir

pytestmark = pytest.mark.integration

JULY_2023 = {"department": "69", "date_from": "2023-07-01", "date_to": "2023-07-15"}


@pytest.fixture(scope="module")
def settings(ensure_services) -> Settings:
    ensure_services("postgres", "kafka", "replay")
    return get_settings()


@pytest.fixture(scope="module")
def ademe(settings) -> AdemeClient:
    return AdemeClient.from_settings(settings=settings)


# --- helpers -----------------------------------------------------------------------------


def wait_until(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Pipeline:
    """One test's namespace and the processes it started."""

    settings: Settings
    logs: Path
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    consumers: dict[str, subprocess.Popen] = field(default_factory=dict)
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def topic(self) -> str:
        return f"test.{self.suffix}.dpe.raw"

    @property
    def dlq_topic(self) -> str:
        return f"test.{self.suffix}.dpe.dlq"

    @property
    def group(self) -> str:
        return f"test-{self.suffix}"

    @property
    def schema(self) -> str:
        return f"test_{self.suffix}"

    def environment(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "DPE_PROJECT_DIR": str(project_dir()),
            "KAFKA_TOPIC_RAW": self.topic,
            "KAFKA_TOPIC_DLQ": self.dlq_topic,
            "KAFKA_CONSUMER_GROUP": self.group,
            **extra,
        }

    def spawn(self, name: str, module: str, *args: str, **extra_env: str) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            [sys.executable, "-m", module, *args], env=self.environment(**extra_env),
            stdout=log, stderr=subprocess.STDOUT, cwd=project_dir(),
        )
        log.close()
        self.processes.append(process)
        return process

    # consumers ------------------------------------------------------------------------
    def start_consumer(self, name: str, static: bool = False, batch_size: int = 500) -> subprocess.Popen:
        args = ["--schema", self.schema, "--batch-size", str(batch_size)]
        if static:
            args += ["--instance-id", f"{self.group}-{name}"]
        self.consumers[name] = self.spawn(f"consumer-{name}", "dpe_pipeline.consumer", *args)
        return self.consumers[name]

    def active_members(self) -> dict[str, str]:
        """Consumer name → member id, when the group is stable (static members only)."""
        admin = kafka_io.create_admin(self.settings)
        try:
            group = admin.describe_groups([self.group])[self.group]
        finally:
            admin.close()
        if group["group_state"] != "Stable":
            return {}
        prefix = f"{self.group}-"
        return {member["group_instance_id"].removeprefix(prefix): member["member_id"]
                for member in group["members"] if member.get("group_instance_id")}

    def wait_for_active_members(self, names: tuple[str, ...]) -> dict[str, str]:
        wait_until(lambda: set(names) <= set(self.active_members()), 30, f"consumers {names} in the group")
        return self.active_members()

    def kill_consumer(self, name: str) -> None:
        process = self.consumers[name]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()

    # API ----------------------------------------------------------------------------
    def start_api(self, page_size: int = 1000) -> ApiClient:
        port = free_port()
        self.spawn("api", "dpe_pipeline.api", "--port", str(port), "--page-size", str(page_size))
        api = ApiClient(f"http://127.0.0.1:{port}", self.settings.api_key)
        wait_until(api.is_up, 30, "the ingestion API to answer /health")
        return api

    # state --------------------------------------------------------------------------
    def stored_ids(self) -> list[str]:
        conn = postgres.connect(self.settings)
        try:
            with conn.cursor() as cursor:
                cursor.execute(f"SELECT numero_dpe FROM {postgres.qualified_table(self.schema)}")
                return [numero for (numero,) in cursor.fetchall()]
        except postgres.psycopg2.errors.UndefinedTable:
            return []
        finally:
            conn.close()

    def lag(self) -> int:
        return kafka_io.consumer_lag(self.group, self.topic, self.settings).total

    def wait_until_stored_at_least(self, count: int, timeout: float = 60) -> None:
        wait_until(lambda: len(self.stored_ids()) >= count, timeout, f"{count} rows in {self.schema}.dpe")

    def wait_until_stored(self, expected: int, timeout: float = 90) -> None:
        wait_until(lambda: len(self.stored_ids()) >= expected and self.lag() == 0, timeout,
                   f"{expected} rows in {self.schema}.dpe and no consumer lag")

    def dead_letters(self, expected: int, timeout: float = 30) -> list[dict]:
        consumer = KafkaConsumer(bootstrap_servers=kafka_io.bootstrap_servers(self.settings), enable_auto_commit=False)
        consumer.assign([TopicPartition(self.dlq_topic, 0)])
        consumer.seek_to_beginning()
        letters: list[dict] = []
        deadline = time.monotonic() + timeout
        while len(letters) < expected and time.monotonic() < deadline:
            for messages in consumer.poll(timeout_ms=500).values():
                letters.extend(kafka_io.read_dead_letter(message) for message in messages)
        consumer.close()
        return letters


@dataclass
class ApiClient:
    base_url: str
    api_key: str

    def is_up(self) -> bool:
        try:
            return requests.get(f"{self.base_url}/health", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    def start_ingestion(self, **body) -> str:
        response = requests.post(f"{self.base_url}/ingestions", json=body, headers={"X-API-KEY": self.api_key},
                                 timeout=10)
        assert response.status_code == 202, response.text
        return response.json()["id"]

    def status(self, job_id: str) -> dict:
        response = requests.get(f"{self.base_url}/ingestions/{job_id}", headers={"X-API-KEY": self.api_key},
                                timeout=10)
        response.raise_for_status()
        return response.json()

    def wait_for_job(self, job_id: str, timeout: float = 120) -> dict:
        wait_until(lambda: self.status(job_id)["status"] in ("succeeded", "failed"), timeout, f"ingestion {job_id}")
        return self.status(job_id)


@pytest.fixture
def pipeline(settings, tmp_path):
    namespace = Pipeline(settings, tmp_path)
    kafka_io.ensure_topics(
        {namespace.topic: kafka_io.RAW_TOPIC_PARTITIONS, namespace.dlq_topic: kafka_io.DLQ_TOPIC_PARTITIONS}, settings
    )
    yield namespace
    namespace.stop()
    kafka_io.delete_topics([namespace.topic, namespace.dlq_topic], settings)
    conn = postgres.connect(settings)
    try:
        postgres.drop_schema(conn, namespace.schema)
    finally:
        conn.close()


def source_ids(ademe: AdemeClient, **query) -> list[str]:
    return [record["numero_dpe"] for record in ademe.fetch(select="numero_dpe", **query)]


# --- tests ------------------------------------------------------------------------------------


def test_replay_to_postgres_holds_exactly_the_source_records(pipeline, ademe):
    expected = source_ids(ademe, **JULY_2023)
    assert len(expected) == ademe.count(**JULY_2023) > 1000
    for name in ("a", "b"):
        pipeline.start_consumer(name)
    api = pipeline.start_api()

    job = api.wait_for_job(api.start_ingestion(**JULY_2023))

    assert job["status"] == "succeeded", job
    assert job["counts"] == {"fetched": len(expected), "published": len(expected), "failed": 0}
    pipeline.wait_until_stored(len(expected))
    stored = pipeline.stored_ids()
    assert len(stored) == len(set(stored)) == len(expected)
    assert set(stored) == set(expected)
    assert pipeline.dead_letters(expected=0, timeout=1) == []

    # SIGTERM: each consumer finishes its batch, commits, leaves the group and exits cleanly.
    for process in pipeline.consumers.values():
        process.send_signal(signal.SIGTERM)
    assert [process.wait(timeout=30) for process in pipeline.consumers.values()] == [0, 0]


def test_consumers_killed_during_ingestion_lose_and_double_nothing(pipeline, ademe):
    everything = ademe.fetch(select="numero_dpe,code_departement_ban")
    departments = sorted({record["code_departement_ban"] for record in everything})
    expected = {record["numero_dpe"] for record in everything}
    assert len(expected) == len(everything) == ademe.count()
    names = ("a", "b")
    for name in names:
        pipeline.start_consumer(name, static=True, batch_size=100)
    api = pipeline.start_api(page_size=250)  # small pages and batches: the kills land mid-stream
    pipeline.wait_for_active_members(names)
    jobs = [api.start_ingestion(department=department) for department in departments]

    # Kill -9 a consumer each time another slice of the data has reached PostgreSQL, while it
    # owns partitions, then restart it (same static id: it gets its partitions back).
    kill_points = [int(len(expected) * share) for share in (0.05, 0.2, 0.35, 0.5, 0.65)]
    rows_at_kills = []
    for index, point in enumerate(kill_points):
        victim = names[index % len(names)]
        pipeline.wait_until_stored_at_least(point)
        old_member = pipeline.wait_for_active_members(names)[victim]
        time.sleep(random.Random(point).uniform(0, 0.3))  # land anywhere inside a batch
        pipeline.kill_consumer(victim)
        rows_at_kills.append(len(pipeline.stored_ids()))
        pipeline.start_consumer(victim, static=True, batch_size=100)
        wait_until(lambda v=victim, old=old_member: pipeline.active_members().get(v) not in (None, old), 30,
                   f"consumer {victim} to rejoin")
    print(f"rows stored at each kill: {rows_at_kills} of {len(expected)}")
    assert sum(rows < len(expected) for rows in rows_at_kills) >= 4, rows_at_kills

    statuses = [api.wait_for_job(job) for job in jobs]
    assert [status["status"] for status in statuses] == ["succeeded"] * len(jobs), statuses
    assert sum(status["counts"]["published"] for status in statuses) == len(expected)
    pipeline.wait_until_stored(len(expected), timeout=120)
    stored = pipeline.stored_ids()
    assert len(stored) == len(set(stored)) == len(expected)
    assert set(stored) == expected
    assert pipeline.dead_letters(expected=0, timeout=1) == []


MALFORMED = [
    (b"ceci n'est pas du JSON", "not valid UTF-8 JSON"),
    (json.dumps({"etiquette_dpe": "C", "date_reception_dpe": "2023-07-01"}).encode(), "numero_dpe: Field required"),
    (json.dumps({"numero_dpe": "2369E9999991A", "date_reception_dpe": "2023-13-01"}).encode(),
     "date_reception_dpe: '2023-13-01' is not a valid calendar date"),
    (json.dumps({"numero_dpe": "2369E9999992A", "etiquette_dpe": "H"}).encode(), "etiquette_dpe: Input should be"),
    (json.dumps({"numero_dpe": "2369E9999993A", "surface_habitable_logement": -40}).encode(),
     "surface_habitable_logement: Input should be greater than 0"),
    (json.dumps({"numero_dpe": "2369E9999994A", "adresse_ban": "x" * 1_000_000}).encode(), "message too large"),
]


def test_malformed_messages_go_to_the_dead_letter_topic_and_the_rest_goes_on(pipeline, ademe):
    valid = ademe.fetch(limit=40, **JULY_2023)
    producer = kafka_io.create_producer(pipeline.settings)
    for index, record in enumerate(valid[:20]):
        key, value = kafka_io.encode_dpe_record(record)
        producer.send(pipeline.topic, key=key, value=value, partition=index % 3)
    for index, (payload, _) in enumerate(MALFORMED):
        producer.send(pipeline.topic, key=f"bad-{index}".encode(), value=payload, partition=index % 3)
    producer.flush()
    pipeline.start_consumer("a")

    pipeline.wait_until_stored(20)
    letters = pipeline.dead_letters(expected=len(MALFORMED))

    # Each bad message is in the dead-letter topic, byte for byte, with its reason and origin.
    by_key = {letter["key"]: letter for letter in letters}
    assert len(letters) == len(MALFORMED)
    for index, (payload, reason) in enumerate(MALFORMED):
        letter = by_key[f"bad-{index}".encode()]
        assert letter["value"] == payload
        assert reason in letter["dlq.reason"], letter["dlq.reason"]
        assert letter["dlq.topic"] == pipeline.topic and letter["dlq.partition"] == str(index % 3)
        assert int(letter["dlq.offset"]) >= 0 and letter["dlq.group"] == pipeline.group

    # The pipeline goes on: later valid messages are stored too.
    for record in valid[20:]:
        key, value = kafka_io.encode_dpe_record(record)
        producer.send(pipeline.topic, key=key, value=value)
    producer.flush()
    producer.close()
    pipeline.wait_until_stored(40)
    assert set(pipeline.stored_ids()) == {record["numero_dpe"] for record in valid}


def test_replayed_and_older_messages_never_overwrite_a_newer_dpe(pipeline):
    def version(etablissement: str, label: str) -> dict:
        return {"numero_dpe": "2369E1234567X", "date_etablissement_dpe": etablissement, "etiquette_dpe": label}

    producer = kafka_io.create_producer(pipeline.settings)
    for record in (version("2023-01-10", "F"), version("2024-03-01", "C"), version("2023-06-01", "E"),
                   version("2024-03-01", "C")):
        key, value = kafka_io.encode_dpe_record(record)
        producer.send(pipeline.topic, key=key, value=value).get(timeout=30)
        producer.flush()
    producer.close()
    pipeline.start_consumer("a")
    pipeline.wait_until_stored(1)

    conn = postgres.connect(pipeline.settings)
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT etiquette_dpe, date_etablissement_dpe::text, kafka_offset, payload->>'etiquette_dpe' "
                f"FROM {postgres.qualified_table(pipeline.schema)}"
            )
            assert cursor.fetchall() == [("C", "2024-03-01", 1, "C")]
    finally:
        conn.close()


def test_ademe_faults_during_an_ingestion_are_retried_and_nothing_is_lost(pipeline, ademe, settings):
    query = {**JULY_2023, "max_records": 3000}
    expected = source_ids(ademe, **JULY_2023)[:3000]
    control = f"http://{settings.replay_host}:{settings.replay_port}/_replay/faults"
    pipeline.start_consumer("a")
    api = pipeline.start_api(page_size=250)

    requests.post(control, json={"every": 3, "codes": [429, 500]}, timeout=5).raise_for_status()
    try:
        job = api.wait_for_job(api.start_ingestion(**query))
        faults = requests.get(control, timeout=5).json()
    finally:
        requests.post(control, json={"every": 0}, timeout=5)

    assert faults["injected"] >= 3, faults
    assert job["status"] == "succeeded", job
    assert job["counts"] == {"fetched": 3000, "published": 3000, "failed": 0}
    pipeline.wait_until_stored(3000)
    assert sorted(pipeline.stored_ids()) == sorted(expected)


def test_lag_is_reported_per_partition_for_a_group(pipeline):
    producer = kafka_io.create_producer(pipeline.settings)
    for index in range(9):
        producer.send(pipeline.topic, key=b"k", value=b"{}", partition=index % 3)
    producer.flush()
    producer.close()

    lag = kafka_io.consumer_lag(pipeline.group, pipeline.topic, pipeline.settings)

    assert [(partition.partition, partition.committed, partition.lag) for partition in lag.partitions] == [
        (0, None, 3), (1, None, 3), (2, None, 3)
    ]
    assert lag.total == 9
