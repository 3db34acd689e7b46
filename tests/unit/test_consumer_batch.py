"""The consumer's pure steps: splitting a polled batch and the offsets to commit."""

import json
from dataclasses import dataclass

from kafka import TopicPartition

from dpe_pipeline.consumer import ConsumerConfig, next_offsets, split_batch


@dataclass
class Message:
    """The fields of kafka-python's ConsumerRecord the consumer reads."""

    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = None
    topic: str = "dpe.raw"


def dpe(numero: str, **fields) -> bytes:
    return json.dumps({"numero_dpe": numero, "date_reception_dpe": "2023-07-19", **fields}).encode()


def test_valid_messages_become_rows_and_the_others_dead_letters():
    batch = [
        Message(0, 10, dpe("2369E2430265M", etiquette_dpe="E"), b"2369E2430265M"),
        Message(1, 4, b"{oops", b"k"),
        Message(2, 7, dpe("2369E2624199M", etiquette_dpe="Q")),
    ]
    rows, letters = split_batch(batch)
    assert [row.numero_dpe for row in rows] == ["2369E2430265M"]
    assert rows[0].payload == batch[0].value.decode() and (rows[0].kafka_partition, rows[0].kafka_offset) == (0, 10)
    assert [(letter.partition, letter.offset) for letter in letters] == [(1, 4), (2, 7)]
    assert letters[0].value == b"{oops" and letters[0].key == b"k"
    assert "not valid UTF-8 JSON" in letters[0].reason
    assert "etiquette_dpe" in letters[1].reason


def test_offsets_to_commit_are_one_past_the_last_message_of_each_partition():
    batch = [Message(0, 5, b""), Message(0, 6, b""), Message(2, 40, b""), Message(0, 4, b"")]
    offsets = next_offsets(batch)
    assert {tp: meta.offset for tp, meta in offsets.items()} == {
        TopicPartition("dpe.raw", 0): 7,
        TopicPartition("dpe.raw", 2): 41,
    }


def test_configuration_defaults_come_from_the_settings_and_can_be_overridden(monkeypatch):
    from dpe_pipeline.settings import get_settings

    settings = get_settings()
    config = ConsumerConfig.from_settings(settings, schema="lab_x", topic=None)
    assert (config.topic, config.group_id, config.dlq_topic) == (
        settings.kafka_topic_raw, settings.kafka_consumer_group, settings.kafka_topic_dlq,
    )
    assert config.schema == "lab_x"
