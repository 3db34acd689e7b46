"""PostgreSQL raw store of the pipeline: the ``raw.dpe`` table and its idempotent upsert.

One row per DPE (primary key ``numero_dpe``): the main fields as typed columns for SQL,
the whole ADEME record in ``payload`` (jsonb), and where it came from in Kafka. The upsert
is written so that replaying Kafka is harmless: a message replaces the stored row only
when its DPE is strictly newer (last modification, then establishment, then reception
date), so an identical replayed message changes nothing and an old version never
overwrites a newer one.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg2
import psycopg2.extensions
import psycopg2.extras

from dpe_pipeline.settings import Settings, get_settings

logger = logging.getLogger(__name__)

RAW_SCHEMA = "raw"
RAW_TABLE = "dpe"
IDENTIFIER_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

#: Typed columns taken from the record, in table order, with their SQL type.
RECORD_COLUMNS: tuple[tuple[str, str], ...] = (
    ("numero_dpe", "text"),
    ("date_etablissement_dpe", "date"),
    ("date_reception_dpe", "date"),
    ("date_visite_diagnostiqueur", "date"),
    ("date_fin_validite_dpe", "date"),
    ("date_derniere_modification_dpe", "date"),
    ("etiquette_dpe", "char(1)"),
    ("etiquette_ges", "char(1)"),
    ("type_batiment", "text"),
    ("surface_habitable_logement", "double precision"),
    ("conso_5_usages_par_m2_ep", "double precision"),
    ("conso_5_usages_ep", "double precision"),
    ("emission_ges_5_usages", "double precision"),
    ("emission_ges_5_usages_par_m2", "double precision"),
    ("cout_total_5_usages", "double precision"),
    ("code_departement_ban", "text"),
    ("code_insee_ban", "text"),
    ("code_postal_ban", "text"),
    ("nom_commune_ban", "text"),
)
#: Columns filled from the message itself rather than the record.
MESSAGE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("payload", "jsonb"),
    ("kafka_partition", "integer"),
    ("kafka_offset", "bigint"),
)
#: The order in which two versions of one DPE are compared: the first date that differs wins.
VERSION_DATE_COLUMNS = ("date_derniere_modification_dpe", "date_etablissement_dpe", "date_reception_dpe")


def connect(settings: Settings | None = None, **overrides: Any) -> psycopg2.extensions.connection:
    """A connection to the course database (``autocommit`` off: the caller commits)."""
    settings = settings or get_settings()
    options = {
        "host": settings.postgres_host,
        "port": settings.postgres_port,
        "dbname": settings.postgres_db,
        "user": settings.postgres_user,
        "password": settings.postgres_password,
        "application_name": "dpe-pipeline",
        "connect_timeout": 10,
        **overrides,
    }
    return psycopg2.connect(**options)


def check_identifier(name: str) -> str:
    """A schema or table name, checked so that it can be written into SQL unquoted-safe."""
    if not IDENTIFIER_PATTERN.match(name):
        raise ValueError(f"invalid SQL identifier {name!r}: use lowercase letters, digits and _ (max 63)")
    return name


def qualified_table(schema: str = RAW_SCHEMA, table: str = RAW_TABLE) -> str:
    return f'"{check_identifier(schema)}"."{check_identifier(table)}"'


# --- schema ----------------------------------------------------------------------------


def build_create_table_sql(schema: str = RAW_SCHEMA, table: str = RAW_TABLE) -> str:
    """DDL of the raw table (idempotent: ``IF NOT EXISTS`` everywhere)."""
    target = qualified_table(schema, table)
    labels = "('A', 'B', 'C', 'D', 'E', 'F', 'G')"
    not_null = {"numero_dpe": " PRIMARY KEY", "payload": " NOT NULL"}
    definitions = [f"{name} {sql_type}{not_null.get(name, '')}" for name, sql_type in RECORD_COLUMNS + MESSAGE_COLUMNS]
    definitions += [
        "ingested_at timestamptz NOT NULL DEFAULT now()",
        f"CONSTRAINT {table}_etiquette_dpe_check CHECK (etiquette_dpe IN {labels})",
        f"CONSTRAINT {table}_etiquette_ges_check CHECK (etiquette_ges IN {labels})",
    ]
    return (
        f'CREATE SCHEMA IF NOT EXISTS "{schema}";\n'
        f"CREATE TABLE IF NOT EXISTS {target} (\n    " + ",\n    ".join(definitions) + "\n);\n"
        f"CREATE INDEX IF NOT EXISTS {table}_departement_reception_idx\n"
        f"    ON {target} (code_departement_ban, date_reception_dpe);"
    )


def ensure_raw_table(conn: psycopg2.extensions.connection, schema: str = RAW_SCHEMA, table: str = RAW_TABLE) -> None:
    """Create the schema, the table and its index if missing, and commit."""
    with conn.cursor() as cursor:
        # Several consumers may start at once: serialise the DDL on an advisory lock.
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"dpe-ddl:{schema}.{table}",))
        cursor.execute(build_create_table_sql(schema, table))
    conn.commit()


def drop_schema(conn: psycopg2.extensions.connection, schema: str) -> None:
    """Drop a whole schema and what it holds (tests and lab resets)."""
    with conn.cursor() as cursor:
        cursor.execute(f'DROP SCHEMA IF EXISTS "{check_identifier(schema)}" CASCADE')
    conn.commit()


# --- upsert ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RawDpeRow:
    """One validated DPE ready for ``raw.dpe``: its typed record, raw JSON text and Kafka position."""

    record: dict[str, Any]
    payload: str
    kafka_partition: int | None = None
    kafka_offset: int | None = None

    @property
    def numero_dpe(self) -> str:
        return self.record["numero_dpe"]

    def version(self) -> tuple[dt.date, ...]:
        """Sort key of this DPE's version, the same order as the SQL ``WHERE`` of the upsert."""
        return tuple(_as_date(self.record.get(column)) for column in VERSION_DATE_COLUMNS)

    def values(self) -> tuple[Any, ...]:
        typed = tuple(self.record.get(name) for name, _ in RECORD_COLUMNS)
        return (*typed, self.payload, self.kafka_partition, self.kafka_offset)


def _as_date(value: Any) -> dt.date:
    """A version date as a ``date`` (rows built from pandas may carry ISO strings); missing → min."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and value:
        return dt.date.fromisoformat(value[:10])
    return dt.date.min


def build_upsert_sql(schema: str = RAW_SCHEMA, table: str = RAW_TABLE) -> str:
    """The ``INSERT … ON CONFLICT DO UPDATE … WHERE newer`` statement for ``execute_values``.

    The ``VALUES %s`` placeholder is expanded by :func:`psycopg2.extras.execute_values`.
    Missing dates compare as ``-infinity``: any dated version beats an undated one.
    """
    target = qualified_table(schema, table)
    names = [name for name, _ in RECORD_COLUMNS + MESSAGE_COLUMNS]
    updates = [f"{name} = EXCLUDED.{name}" for name in names if name != "numero_dpe"]
    updates.append("ingested_at = now()")

    def version_of(alias: str) -> str:
        return "(" + ", ".join(f"COALESCE({alias}.{name}, '-infinity'::date)" for name in VERSION_DATE_COLUMNS) + ")"

    return (
        f"INSERT INTO {target} AS stored ({', '.join(names)})\n"
        "VALUES %s\n"
        "ON CONFLICT (numero_dpe) DO UPDATE SET\n    "
        + ",\n    ".join(updates)
        + f"\nWHERE {version_of('EXCLUDED')} > {version_of('stored')}"
    )


def build_values_template() -> str:
    """Row template for ``execute_values``: casts make the placeholders' types explicit."""
    casts = [f"%s::{sql_type}" for _, sql_type in RECORD_COLUMNS + MESSAGE_COLUMNS]
    return "(" + ", ".join(casts) + ")"


def keep_newest_per_dpe(rows: Iterable[RawDpeRow]) -> list[RawDpeRow]:
    """One row per ``numero_dpe``: the newest version, the earlier message on a tie.

    PostgreSQL refuses an ``ON CONFLICT DO UPDATE`` statement that touches the same key
    twice, so a batch holding two versions of one DPE is reduced first, with the rule the
    upsert applies across batches: only a strictly newer version replaces a kept one.
    Rows come back sorted by ``numero_dpe``: two transactions that lock overlapping keys
    (two consumers during a rebalance) then lock them in the same order and cannot deadlock.
    """
    newest: dict[str, RawDpeRow] = {}
    for row in rows:
        kept = newest.get(row.numero_dpe)
        if kept is None or row.version() > kept.version():
            newest[row.numero_dpe] = row
    return [newest[numero_dpe] for numero_dpe in sorted(newest)]


def upsert_raw_dpe(
    cursor: psycopg2.extensions.cursor,
    rows: Sequence[RawDpeRow],
    schema: str = RAW_SCHEMA,
    table: str = RAW_TABLE,
) -> int:
    """Upsert ``rows`` in one statement, inside the caller's transaction; return rows written.

    Rows written = inserted + replaced by a newer version; a replayed message counts 0.
    """
    unique_rows = keep_newest_per_dpe(rows)
    if not unique_rows:
        return 0
    psycopg2.extras.execute_values(
        cursor,
        build_upsert_sql(schema, table),
        [row.values() for row in unique_rows],
        template=build_values_template(),
        page_size=len(unique_rows),
    )
    return cursor.rowcount


def count_rows(conn: psycopg2.extensions.connection, schema: str = RAW_SCHEMA, table: str = RAW_TABLE) -> int:
    with conn.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {qualified_table(schema, table)}")
        return cursor.fetchone()[0]
