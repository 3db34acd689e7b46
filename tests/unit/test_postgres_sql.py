"""The SQL that creates and upserts raw.dpe, built without a database."""

import datetime as dt

import pytest

from dpe_pipeline.postgres import (
    RECORD_COLUMNS,
    RawDpeRow,
    build_create_table_sql,
    build_upsert_sql,
    build_values_template,
    keep_newest_per_dpe,
    qualified_table,
)


def row(numero="2369E2430265M", offset=0, **dates) -> RawDpeRow:
    record = {"numero_dpe": numero, **dates}
    return RawDpeRow(record=record, payload="{}", kafka_partition=0, kafka_offset=offset)


def test_upsert_updates_only_when_the_incoming_dpe_is_newer():
    sql = build_upsert_sql("raw", "dpe")
    assert sql.startswith('INSERT INTO "raw"."dpe" AS stored (numero_dpe, ')
    assert "VALUES %s" in sql
    assert "ON CONFLICT (numero_dpe) DO UPDATE SET" in sql
    assert "numero_dpe = EXCLUDED" not in sql
    assert "payload = EXCLUDED.payload" in sql and "ingested_at = now()" in sql
    where = sql.split("WHERE", 1)[1]
    incoming, stored = where.split(" > ")
    order = ["date_derniere_modification_dpe", "date_etablissement_dpe", "date_reception_dpe"]
    positions = [incoming.index(f"EXCLUDED.{name}") for name in order]
    assert positions == sorted(positions)
    assert all(f"COALESCE(stored.{name}, '-infinity'::date)" in stored for name in order)


def test_values_template_has_one_cast_placeholder_per_column():
    template = build_values_template()
    assert template.count("%s") == len(RECORD_COLUMNS) + 3
    assert "%s::jsonb" in template and "%s::date" in template


def test_row_values_follow_the_column_order():
    values = RawDpeRow({"numero_dpe": "X", "etiquette_dpe": "C"}, '{"a": 1}', 2, 41).values()
    assert values[0] == "X"
    assert values[[name for name, _ in RECORD_COLUMNS].index("etiquette_dpe")] == "C"
    assert values[-3:] == ('{"a": 1}', 2, 41)


def test_table_has_typed_columns_payload_and_kafka_position():
    ddl = build_create_table_sql("lab_marie", "dpe")
    assert 'CREATE SCHEMA IF NOT EXISTS "lab_marie"' in ddl
    for column in ("numero_dpe text PRIMARY KEY", "date_reception_dpe date", "etiquette_dpe char(1)",
                   "surface_habitable_logement double precision", "payload jsonb NOT NULL",
                   "kafka_partition integer", "kafka_offset bigint", "ingested_at timestamptz"):
        assert column in ddl


@pytest.mark.parametrize("name", ["Raw", "raw; DROP TABLE x", "1raw", "", "a" * 64, 'raw"'])
def test_unsafe_identifiers_are_refused(name):
    with pytest.raises(ValueError, match="invalid SQL identifier"):
        qualified_table(name, "dpe")


def test_a_batch_keeps_the_newest_version_of_each_dpe():
    old = row(offset=1, date_etablissement_dpe=dt.date(2023, 1, 1))
    new = row(offset=2, date_etablissement_dpe=dt.date(2024, 1, 1))
    modified = row(offset=0, date_derniere_modification_dpe=dt.date(2023, 6, 1),
                   date_etablissement_dpe=dt.date(2022, 1, 1))
    other = row("2174N0407083G", offset=3)
    kept = keep_newest_per_dpe([old, modified, new, other])
    assert kept == [other, modified]  # sorted by numero_dpe


def test_on_a_tie_the_first_message_stays_as_a_replay_would_change_nothing():
    first, second = row(offset=1), row(offset=2)
    assert keep_newest_per_dpe([first, second]) == [first]


def test_versions_compare_whether_dates_are_dates_or_iso_strings():
    as_text = row(offset=1, date_etablissement_dpe="2024-01-01")
    as_date = row(offset=2, date_etablissement_dpe=dt.date(2023, 1, 1))
    undated = row(offset=3)
    assert keep_newest_per_dpe([undated, as_date, as_text]) == [as_text]
