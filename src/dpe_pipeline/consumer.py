"""Kafka → PostgreSQL consumer of the DPE pipeline (``python -m dpe_pipeline.consumer``).

Each batch goes through four steps, in this order, so that nothing is lost or doubled
whatever moment the process is killed at:

1. poll up to ``batch_size`` messages and validate each one;
2. send the invalid ones to ``dpe.dlq`` with their reason, and wait for the broker's ack;
3. upsert the valid ones into ``raw.dpe`` in one transaction, and commit it;
4. only then commit the Kafka offsets of the batch.

A crash before step 4 makes Kafka deliver the batch again; the upsert ignores what is
already stored, so the table ends up the same. Run one to three instances with the same
group: Kafka spreads the three partitions of ``dpe.raw`` among them. SIGTERM or SIGINT
finishes the current batch, commits, leaves the group and exits.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg2
import psycopg2.extensions
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata

from dpe_pipeline import kafka_io, postgres
from dpe_pipeline.settings import Settings, get_settings
from dpe_pipeline.validation import InvalidDpeMessage, validate_dpe_message

logger = logging.getLogger(__name__)

#: Database errors caused by the data of one row: that row goes to the dead-letter topic.
ROW_ERRORS = (psycopg2.DataError, psycopg2.IntegrityError)
#: Database errors caused by the connection or the server: retry the batch after a pause.
CONNECTION_ERRORS = (psycopg2.OperationalError, psycopg2.InterfaceError)
RECONNECT_DELAYS_SECONDS = (0.5, 1, 2, 5, 10)


@dataclass(frozen=True)
class ConsumerConfig:
    """Where a consumer reads and writes; defaults come from the settings."""

    topic: str
    group_id: str
    dlq_topic: str
    schema: str = postgres.RAW_SCHEMA
    table: str = postgres.RAW_TABLE
    batch_size: int = 1000
    poll_timeout_ms: int = 500
    #: Static group membership (KIP-345): a restarted instance gets its partitions back
    #: at once instead of after a rebalance. ``None``: a dynamic member.
    instance_id: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **overrides: Any) -> ConsumerConfig:
        settings = settings or get_settings()
        values = {
            "topic": settings.kafka_topic_raw,
            "group_id": settings.kafka_consumer_group,
            "dlq_topic": settings.kafka_topic_dlq,
        }
        values.update({name: value for name, value in overrides.items() if value is not None})
        return cls(**values)


@dataclass
class ConsumerStats:
    batches: int = 0
    messages: int = 0
    rows_written: int = 0
    dead_letters: int = 0
    started_at: float = field(default_factory=time.monotonic)

    def summary(self) -> str:
        elapsed = max(time.monotonic() - self.started_at, 1e-9)
        return (
            f"{self.messages} messages in {self.batches} batches ({self.messages / elapsed:.0f}/s), "
            f"{self.rows_written} rows written, {self.dead_letters} dead letters"
        )


class DpeConsumer:
    """One consumer process: Kafka ``dpe.raw`` → validation → PostgreSQL ``raw.dpe`` (+ ``dpe.dlq``)."""

    def __init__(self, config: ConsumerConfig, settings: Settings | None = None) -> None:
        self.config = config
        self.settings = settings or get_settings()
        self.stats = ConsumerStats()
        self._stop = threading.Event()
        self._consumer: KafkaConsumer | None = None
        self._producer: KafkaProducer | None = None
        self._conn: psycopg2.extensions.connection | None = None

    def request_stop(self) -> None:
        """Finish the current batch, commit, then return from :meth:`run`."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> ConsumerStats:
        """Consume until :meth:`request_stop` is called."""
        try:
            self._open()
            while not self._stop.is_set():
                batch = self._poll_batch()
                if batch:
                    self.process_batch(batch)
        finally:
            self._close()
        return self.stats

    def process_batch(self, batch: Sequence[Any]) -> None:
        """Validate, dead-letter, store, then commit the offsets of one polled batch."""
        # Validate: valid rows for PostgreSQL, the rest for the dead-letter topic.
        rows, letters = split_batch(batch)

        # Dead letters first, acknowledged by the broker before any offset is committed.
        self._send_dead_letters(letters)

        # Store the valid rows in one transaction (rows PostgreSQL refuses become dead letters).
        refused = self._store_rows(rows)
        self._send_dead_letters(refused)

        # The data is safe: move the group's offsets past the batch.
        self._commit_offsets(batch)

        self.stats.batches += 1
        self.stats.messages += len(batch)
        self.stats.dead_letters += len(letters) + len(refused)

    # --- lifecycle -----------------------------------------------------------------

    def _open(self) -> None:
        kafka_io.ensure_topics(
            {self.config.topic: kafka_io.RAW_TOPIC_PARTITIONS, self.config.dlq_topic: kafka_io.DLQ_TOPIC_PARTITIONS},
            self.settings,
        )
        self._conn = self._connect_database()
        postgres.ensure_raw_table(self._conn, self.config.schema, self.config.table)
        self._producer = kafka_io.create_producer(self.settings, client_id="dpe-consumer-dlq", linger_ms=5)
        self._consumer = kafka_io.create_consumer(
            self.config.topic, self.config.group_id, self.settings,
            max_poll_records=self.config.batch_size, group_instance_id=self.config.instance_id,
        )
        logger.info(
            "consuming %s as group %s%s into %s (dead letters: %s)",
            self.config.topic, self.config.group_id,
            f" (instance {self.config.instance_id})" if self.config.instance_id else "",
            postgres.qualified_table(self.config.schema, self.config.table), self.config.dlq_topic,
        )

    def _close(self) -> None:
        logger.info("stopping: %s", self.stats.summary())
        if self._consumer is not None:
            self._consumer.close(autocommit=False)
        if self._producer is not None:
            self._producer.close(timeout=10)
        if self._conn is not None:
            self._conn.close()

    def _poll_batch(self) -> list[Any]:
        polled = self._consumer.poll(timeout_ms=self.config.poll_timeout_ms, max_records=self.config.batch_size)
        return [message for messages in polled.values() for message in messages]

    # --- dead letters --------------------------------------------------------------

    def _send_dead_letters(self, letters: Sequence[kafka_io.DeadLetter]) -> None:
        if not letters:
            return
        futures = [kafka_io.send_dead_letter(self._producer, self.config.dlq_topic, letter, self.config.group_id)
                   for letter in letters]
        self._producer.flush()
        for letter, future in zip(letters, futures, strict=True):
            future.get(timeout=30)  # raises if the broker refused it: the batch is then not committed
            logger.warning(
                "dead letter %s[%d]@%d: %s", letter.topic, letter.partition, letter.offset, letter.reason
            )

    # --- PostgreSQL ----------------------------------------------------------------

    def _connect_database(self) -> psycopg2.extensions.connection:
        """Connect, retrying a while: PostgreSQL may still be starting, or restarting."""
        for attempt, delay in enumerate(RECONNECT_DELAYS_SECONDS, start=1):
            try:
                return postgres.connect(self.settings, application_name=f"dpe-consumer-{os.getpid()}")
            except CONNECTION_ERRORS as error:
                if self._stop.is_set():
                    raise
                logger.warning("PostgreSQL unreachable (attempt %d): %s; retrying in %ss", attempt, error, delay)
                time.sleep(delay)
        return postgres.connect(self.settings, application_name=f"dpe-consumer-{os.getpid()}")

    def _store_rows(self, rows: Sequence[postgres.RawDpeRow]) -> list[kafka_io.DeadLetter]:
        """Upsert ``rows`` and commit; retry on connection loss; return the rows refused as dead letters."""
        if not rows:
            return []
        delays = iter(RECONNECT_DELAYS_SECONDS)
        while True:
            try:
                return self._upsert_and_commit(rows)
            except CONNECTION_ERRORS as error:
                delay = next(delays, RECONNECT_DELAYS_SECONDS[-1])
                logger.warning("PostgreSQL connection lost (%s); retrying the batch in %ss", error, delay)
                if self._stop.wait(delay):
                    raise  # stopping: leave the offsets uncommitted, the batch will be read again
                self._reconnect_database()

    def _upsert_and_commit(self, rows: Sequence[postgres.RawDpeRow]) -> list[kafka_io.DeadLetter]:
        try:
            with self._conn.cursor() as cursor:
                self.stats.rows_written += postgres.upsert_raw_dpe(cursor, rows, self.config.schema, self.config.table)
            self._conn.commit()
            return []
        except ROW_ERRORS as error:
            self._conn.rollback()
            logger.warning("batch refused by PostgreSQL (%s); storing its %d rows one by one", error, len(rows))
            return self._upsert_one_by_one(rows)

    def _upsert_one_by_one(self, rows: Sequence[postgres.RawDpeRow]) -> list[kafka_io.DeadLetter]:
        """Find the rows PostgreSQL refuses, each in its own savepoint; store the others."""
        refused = []
        with self._conn.cursor() as cursor:
            for row in rows:
                cursor.execute("SAVEPOINT dpe_row")
                try:
                    self.stats.rows_written += postgres.upsert_raw_dpe(
                        cursor, [row], self.config.schema, self.config.table
                    )
                    cursor.execute("RELEASE SAVEPOINT dpe_row")
                except ROW_ERRORS as error:
                    cursor.execute("ROLLBACK TO SAVEPOINT dpe_row")
                    reason = f"rejected by PostgreSQL: {str(error).strip().splitlines()[0]}"
                    refused.append(row_to_dead_letter(row, self.config.topic, reason))
        self._conn.commit()
        return refused

    def _reconnect_database(self) -> None:
        try:
            self._conn.close()
        except psycopg2.Error:
            logger.debug("closing the broken connection failed", exc_info=True)
        self._conn = self._connect_database()

    # --- offsets -------------------------------------------------------------------

    def _commit_offsets(self, batch: Sequence[Any]) -> None:
        offsets = next_offsets(batch)
        try:
            self._consumer.commit(offsets)
        except CommitFailedError as error:
            # The group rebalanced meanwhile: the new owner reads the batch again, and the
            # upsert makes that second pass harmless.
            logger.warning("offset commit refused after a rebalance (%s); batch will be re-read", error)


# --- pure helpers (unit-tested) ----------------------------------------------------------


def split_batch(batch: Iterable[Any]) -> tuple[list[postgres.RawDpeRow], list[kafka_io.DeadLetter]]:
    """Valid messages as rows for ``raw.dpe``, invalid ones as dead letters with the reason."""
    rows: list[postgres.RawDpeRow] = []
    letters: list[kafka_io.DeadLetter] = []
    for message in batch:
        try:
            record = validate_dpe_message(message.value)
        except InvalidDpeMessage as error:
            letters.append(
                kafka_io.DeadLetter(message.key, message.value, error.reason,
                                    message.topic, message.partition, message.offset)
            )
            continue
        payload = message.value.decode("utf-8")
        rows.append(postgres.RawDpeRow(record, payload, message.partition, message.offset))
    return rows, letters


def row_to_dead_letter(row: postgres.RawDpeRow, topic: str, reason: str) -> kafka_io.DeadLetter:
    return kafka_io.DeadLetter(
        row.numero_dpe.encode("utf-8"), row.payload.encode("utf-8"), reason,
        topic, row.kafka_partition if row.kafka_partition is not None else -1,
        row.kafka_offset if row.kafka_offset is not None else -1,
    )


def next_offsets(batch: Iterable[Any]) -> dict[TopicPartition, OffsetAndMetadata]:
    """The offsets to commit after ``batch``: one past the last message of each partition."""
    last: dict[TopicPartition, int] = {}
    for message in batch:
        tp = TopicPartition(message.topic, message.partition)
        last[tp] = max(last.get(tp, -1), message.offset)
    return {tp: OffsetAndMetadata(offset + 1, "", -1) for tp, offset in last.items()}


# --- command line ----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dpe_pipeline.consumer",
        description="Kafka dpe.raw → PostgreSQL raw.dpe consumer (defaults from .env).",
    )
    parser.add_argument("--topic", help="topic to read (default KAFKA_TOPIC_RAW)")
    parser.add_argument("--group", dest="group_id", help="consumer group (default KAFKA_CONSUMER_GROUP)")
    parser.add_argument("--dlq-topic", help="dead-letter topic (default KAFKA_TOPIC_DLQ)")
    parser.add_argument("--schema", help=f"PostgreSQL schema (default {postgres.RAW_SCHEMA})")
    parser.add_argument("--table", help=f"PostgreSQL table (default {postgres.RAW_TABLE})")
    parser.add_argument("--batch-size", type=int, help="messages per poll and transaction (default 1000)")
    parser.add_argument(
        "--instance-id",
        # Under the native runner each instance gets DPE_INSTANCE=1..3: a stable id per instance
        default=os.environ.get("DPE_CONSUMER_INSTANCE_ID")
        or (f"consumer-{os.environ['DPE_INSTANCE']}" if os.environ.get("DPE_INSTANCE") else None),
        help="stable id of this instance for static group membership (default $DPE_CONSUMER_INSTANCE_ID)",
    )
    return parser


def install_signal_handlers(consumer: DpeConsumer) -> None:
    def handle(signum: int, _frame: Any) -> None:
        if consumer.stopping:
            raise KeyboardInterrupt  # second signal: stop now
        logger.info("received %s: finishing the current batch", signal.Signals(signum).name)
        consumer.request_stop()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("DPE_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s",
    )
    args = build_parser().parse_args(argv)
    config = ConsumerConfig.from_settings(
        topic=args.topic, group_id=args.group_id, dlq_topic=args.dlq_topic,
        schema=args.schema, table=args.table, batch_size=args.batch_size, instance_id=args.instance_id,
    )
    consumer = DpeConsumer(config)
    install_signal_handlers(consumer)
    try:
        consumer.run()
    except (KafkaError, *CONNECTION_ERRORS):
        logger.exception("giving up; the supervisor restarts the consumer, which re-reads the uncommitted batch")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
