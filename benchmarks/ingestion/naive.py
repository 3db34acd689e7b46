"""The naive pipeline the course starts from, kept as the benchmark's baseline.

One record at a time everywhere: ADEME pages of 5 records with a new HTTP connection each,
one Kafka send followed by a flush per record, one ``INSERT`` and one commit per message.
It is correct, only slow; ``bench_ingestion.py`` measures how much slower.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import requests
from kafka import KafkaConsumer, KafkaProducer

from dpe_pipeline import postgres
from dpe_pipeline.ademe import build_qs
from dpe_pipeline.settings import Settings

NAIVE_PAGE_SIZE = 5


def fetch_and_publish(settings: Settings, topic: str, query: dict[str, Any], limit: int) -> int:
    """Page through ADEME 5 records at a time and send each record with its own flush."""
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    url = f"{settings.ademe_base_url}/datasets/{settings.ademe_dataset}/lines"
    params: dict[str, Any] | None = {"size": NAIVE_PAGE_SIZE, "qs": build_qs(**query)}
    sent = 0
    while url and sent < limit:
        response = requests.get(url, params=params, timeout=30)
        response.raise_for_status()
        body = response.json()
        for record in body["results"][: limit - sent]:
            producer.send(topic, json.dumps(record).encode("utf-8"))
            producer.flush()
            sent += 1
        url, params = body.get("next"), None
    producer.close()
    return sent


def consume_one_by_one(settings: Settings, topic: str, group: str, schema: str, expected: int,
                       stop: threading.Event) -> int:
    """Read messages one by one; each becomes one INSERT and one COMMIT."""
    consumer = KafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap_servers, group_id=group,
                             auto_offset_reset="earliest", consumer_timeout_ms=1000)
    conn = postgres.connect(settings)
    postgres.ensure_raw_table(conn, schema)
    names = [name for name, _ in postgres.RECORD_COLUMNS]
    statement = (
        f"INSERT INTO {postgres.qualified_table(schema)} ({', '.join(names)}, payload) "
        f"VALUES ({', '.join(['%s'] * (len(names) + 1))}) ON CONFLICT (numero_dpe) DO NOTHING"
    )
    stored = 0
    while stored < expected and not stop.is_set():
        for message in consumer:
            record = json.loads(message.value)
            with conn.cursor() as cursor:
                cursor.execute(statement, [record.get(name) for name in names] + [message.value.decode("utf-8")])
            conn.commit()
            stored += 1
            if stored >= expected:
                break
    consumer.close()
    conn.close()
    return stored
