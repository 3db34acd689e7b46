"""Kafka for the DPE pipeline: producer, consumer, topics, dead-letter queue, consumer lag.

Shared by the ingestion API (producer), the consumers (consumer + dead-letter producer),
the Airflow DAG and the labs (lag). Every factory takes the course settings and lets a
caller override any kafka-python option.

Message conventions on ``dpe.raw``: key = ``numero_dpe`` as UTF-8 bytes (so every version
of one DPE lands in the same partition, in order), value = the ADEME record as compact
UTF-8 JSON. On ``dpe.dlq``: the original key and value, byte for byte, and the context in
headers (``dlq.reason``, ``dlq.topic``, ``dlq.partition``, ``dlq.offset``, ``dlq.group``,
``dlq.failed_at``), the layout Kafka Connect uses for its own dead-letter queues.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, OffsetSpec
from kafka.errors import MessageSizeTooLargeError, TopicAlreadyExistsError

from dpe_pipeline.settings import Settings, get_settings

logger = logging.getLogger(__name__)

RAW_TOPIC_PARTITIONS = 3
DLQ_TOPIC_PARTITIONS = 1
#: Bytes of the original value kept when a dead letter is too large to be sent whole.
DLQ_TRUNCATED_VALUE_BYTES = 64 * 1024

#: Producer options tuned for throughput without giving up delivery guarantees:
#: idempotence + acks=all (no loss, no duplicate on retry), batches of up to 512 KiB that
#: wait at most 20 ms to fill, and five requests in flight (the most idempotence allows).
#: No compression: on one machine the CPU is the limit, not the network. That holds only
#: with the C ``crc32c`` package (a pinned dependency): without it kafka-python computes each
#: batch's CRC32C in pure Python, and gzip, which makes batches 4-5 times shorter, is cheaper.
PRODUCER_DEFAULTS: dict[str, Any] = {
    "enable_idempotence": True,
    "acks": "all",
    "linger_ms": 20,
    "batch_size": 512 * 1024,
    "max_in_flight_requests_per_connection": 5,
    "compression_type": None,
    "delivery_timeout_ms": 120_000,
}

#: Consumer options: offsets are committed by hand after the database commit.
CONSUMER_DEFAULTS: dict[str, Any] = {
    "enable_auto_commit": False,
    "auto_offset_reset": "earliest",
    "max_poll_records": 1000,
    "max_poll_interval_ms": 300_000,
    "session_timeout_ms": 10_000,
    "heartbeat_interval_ms": 3_000,
}


def bootstrap_servers(settings: Settings | None = None) -> list[str]:
    settings = settings or get_settings()
    return [server.strip() for server in settings.kafka_bootstrap_servers.split(",") if server.strip()]


# --- producing -------------------------------------------------------------------------


def create_producer(settings: Settings | None = None, **overrides: Any) -> KafkaProducer:
    """An idempotent producer (acks=all) sending bytes; use :func:`encode_dpe_record` for values."""
    options = {"bootstrap_servers": bootstrap_servers(settings), "client_id": "dpe-producer", **PRODUCER_DEFAULTS}
    options.update(overrides)
    return KafkaProducer(**options)


def encode_dpe_record(record: Mapping[str, Any]) -> tuple[bytes | None, bytes]:
    """Kafka key and value of one DPE record: ``numero_dpe`` bytes and compact UTF-8 JSON."""
    numero_dpe = record.get("numero_dpe")
    key = numero_dpe.encode("utf-8") if isinstance(numero_dpe, str) and numero_dpe else None
    value = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")
    return key, value


# --- consuming -------------------------------------------------------------------------


def create_consumer(
    topic: str | None = None,
    group_id: str | None = None,
    settings: Settings | None = None,
    **overrides: Any,
) -> KafkaConsumer:
    """A consumer of ``topic`` (default ``dpe.raw``) in ``group_id`` (default ``dpe-to-postgres``), manual commits."""
    settings = settings or get_settings()
    options = {
        "bootstrap_servers": bootstrap_servers(settings),
        "group_id": group_id or settings.kafka_consumer_group,
        "client_id": "dpe-consumer",
        **CONSUMER_DEFAULTS,
    }
    options.update(overrides)
    return KafkaConsumer(topic or settings.kafka_topic_raw, **options)


# --- topics ----------------------------------------------------------------------------


def create_admin(settings: Settings | None = None, **overrides: Any) -> KafkaAdminClient:
    options = {"bootstrap_servers": bootstrap_servers(settings), "client_id": "dpe-admin", **overrides}
    return KafkaAdminClient(**options)


def ensure_topics(topics: Mapping[str, int] | None = None, settings: Settings | None = None) -> list[str]:
    """Create the topics that do not exist yet (name → partitions); return the names created.

    Without arguments: ``dpe.raw`` with 3 partitions and ``dpe.dlq`` with 1, as named in the
    settings. Replication factor 1: the course runs a single broker.
    """
    settings = settings or get_settings()
    if topics is None:
        topics = {settings.kafka_topic_raw: RAW_TOPIC_PARTITIONS, settings.kafka_topic_dlq: DLQ_TOPIC_PARTITIONS}
    admin = create_admin(settings)
    try:
        existing = set(admin.list_topics())
        missing = {name: partitions for name, partitions in topics.items() if name not in existing}
        if not missing:
            return []
        specs = {name: {"num_partitions": partitions, "replication_factor": 1} for name, partitions in missing.items()}
        response = admin.create_topics(specs, raise_errors=False)
        created = _created_topic_names(response)
        if created:
            admin.wait_for_topics(created, timeout_ms=30_000)
            logger.info("created Kafka topics %s", ", ".join(created))
        return created
    finally:
        admin.close()


def _created_topic_names(response: Mapping[str, Any]) -> list[str]:
    created = []
    for topic in response["topics"]:
        if topic["error_code"] == 0:
            created.append(topic["name"])
        elif topic["error_code"] != TopicAlreadyExistsError.errno:
            raise RuntimeError(f"cannot create topic {topic['name']}: {topic['error_message']}")
    return created


def delete_topics(names: Iterable[str], settings: Settings | None = None) -> None:
    """Delete topics (tests, lab resets); names that do not exist are ignored."""
    admin = create_admin(settings)
    try:
        existing = set(admin.list_topics())
        doomed = [name for name in names if name in existing]
        if doomed:
            admin.delete_topics(doomed, raise_errors=False)
    finally:
        admin.close()


# --- dead-letter queue -----------------------------------------------------------------


@dataclass(frozen=True)
class DeadLetter:
    """A message the consumer could not store, with where it came from and why."""

    key: bytes | None
    value: bytes | None
    reason: str
    topic: str
    partition: int
    offset: int


def dead_letter_headers(letter: DeadLetter, group_id: str) -> list[tuple[str, bytes]]:
    failed_at = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    context = {
        "dlq.reason": letter.reason[:2000],
        "dlq.topic": letter.topic,
        "dlq.partition": str(letter.partition),
        "dlq.offset": str(letter.offset),
        "dlq.group": group_id,
        "dlq.failed_at": failed_at,
    }
    return [(name, value.encode("utf-8")) for name, value in context.items()]


def send_dead_letter(producer: KafkaProducer, dlq_topic: str, letter: DeadLetter, group_id: str):
    """Send one dead letter (returns the send future); a value too large for Kafka is truncated."""
    headers = dead_letter_headers(letter, group_id)
    try:
        return producer.send(dlq_topic, key=letter.key, value=letter.value, headers=headers)
    except MessageSizeTooLargeError:
        logger.warning(
            "dead letter from %s[%d]@%d too large to forward whole, keeping its first %d bytes",
            letter.topic, letter.partition, letter.offset, DLQ_TRUNCATED_VALUE_BYTES,
        )
        truncated = (letter.value or b"")[:DLQ_TRUNCATED_VALUE_BYTES]
        headers.append(("dlq.truncated", b"true"))
        return producer.send(dlq_topic, key=letter.key, value=truncated, headers=headers)


def read_dead_letter(message: Any) -> dict[str, Any]:
    """A dead letter as read back from ``dpe.dlq``: its headers as text plus key and value."""
    context = {name: value.decode("utf-8", "replace") for name, value in (message.headers or [])}
    return {"key": message.key, "value": message.value, **context}


# --- consumer lag ----------------------------------------------------------------------


@dataclass
class PartitionLag:
    partition: int
    committed: int | None
    end_offset: int
    lag: int


@dataclass
class GroupLag:
    """How far a consumer group is behind the end of a topic, per partition and in total."""

    group_id: str
    topic: str
    partitions: list[PartitionLag] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(partition.lag for partition in self.partitions)


def consumer_lag(group_id: str | None = None, topic: str | None = None, settings: Settings | None = None) -> GroupLag:
    """Lag of ``group_id`` on ``topic`` (defaults: the pipeline's group and ``dpe.raw``).

    A partition the group never committed counts from its first retained offset, which is
    where a new group with ``auto_offset_reset=earliest`` starts.
    """
    settings = settings or get_settings()
    group_id = group_id or settings.kafka_consumer_group
    topic = topic or settings.kafka_topic_raw
    admin = create_admin(settings)
    try:
        partitions = _topic_partitions(admin, topic)
        committed = admin.list_group_offsets({group_id: partitions}).get(group_id, {})
        end_offsets = admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in partitions})
        never_committed = [tp for tp in partitions if _committed_offset(committed.get(tp)) is None]
        start_offsets = (
            admin.list_partition_offsets({tp: OffsetSpec.EARLIEST for tp in never_committed}) if never_committed else {}
        )
    finally:
        admin.close()
    lag = GroupLag(group_id=group_id, topic=topic)
    for tp in partitions:
        end = end_offsets[tp].offset
        position = _committed_offset(committed.get(tp))
        start = position if position is not None else start_offsets[tp].offset
        lag.partitions.append(PartitionLag(tp.partition, position, end, max(end - start, 0)))
    return lag


def _topic_partitions(admin: KafkaAdminClient, topic: str) -> list[TopicPartition]:
    description = admin.describe_topics([topic])
    if not description or description[0]["error_code"] != 0:
        raise ValueError(f"unknown Kafka topic {topic!r}")
    return sorted(TopicPartition(topic, partition["partition_index"]) for partition in description[0]["partitions"])


def _committed_offset(offset_and_metadata: Any) -> int | None:
    if offset_and_metadata is None or offset_and_metadata.offset is None or offset_and_metadata.offset < 0:
        return None
    return offset_and_metadata.offset
