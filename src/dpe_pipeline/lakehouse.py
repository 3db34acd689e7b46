"""Iceberg catalog helpers: the shared JDBC catalog ``lake`` and the S3 store behind it.

Spark, Trino and PyIceberg read and write the same tables through one catalog: the table
pointers live in PostgreSQL (database ``iceberg``, JDBC catalog schema V1), the data and
metadata files in the S3 bucket ``warehouse``. Every client uses **path-style** S3
addressing (``http://host:9000/warehouse/key``): a local store has no DNS name for
``warehouse.127.0.0.1``, so a virtual-host request could never reach it.

- :func:`catalog_properties` / :func:`load_lake_catalog`: PyIceberg's view of the catalog;
- :func:`s3_client`, :func:`ensure_bucket`: boto3 on the store;
- :func:`list_table_files`: the objects an Iceberg table is made of, by kind.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from dpe_pipeline.settings import Settings, get_settings

logger = logging.getLogger(__name__)

CATALOG_NAME = "lake"  # the same name in Spark (spark.sql.catalog.lake), Trino and PyIceberg


def catalog_properties(settings: Settings | None = None) -> dict[str, str]:
    """PyIceberg properties of the shared SQL (JDBC) catalog, path-style S3 through PyArrow."""
    s = settings or get_settings()
    user, password = quote(s.postgres_user, safe=""), quote(s.postgres_password, safe="")
    return {
        "type": "sql",
        "uri": f"postgresql+psycopg2://{user}:{password}@{s.postgres_host}:{s.postgres_port}/{s.iceberg_db}",
        "warehouse": s.warehouse,
        "py-io-impl": "pyiceberg.io.pyarrow.PyArrowFileIO",
        "s3.endpoint": s.s3_endpoint,
        "s3.access-key-id": s.s3_access_key,
        "s3.secret-access-key": s.s3_secret_key,
        "s3.region": s.s3_region,
        # PyArrow's S3 filesystem defaults to virtual-host addressing for custom endpoints
        "s3.force-virtual-addressing": "false",
    }


def load_lake_catalog(settings: Settings | None = None):
    """The catalog ``lake`` as PyIceberg sees it (a :class:`pyiceberg.catalog.sql.SqlCatalog`)."""
    from pyiceberg.catalog import load_catalog

    return load_catalog(CATALOG_NAME, **catalog_properties(settings))


def s3_client(settings: Settings | None = None):
    """A boto3 S3 client on the course's store: path-style addressing, SigV4."""
    import boto3
    from botocore.config import Config

    s = settings or get_settings()
    return boto3.client(
        "s3",
        endpoint_url=s.s3_endpoint,
        aws_access_key_id=s.s3_access_key,
        aws_secret_access_key=s.s3_secret_key,
        region_name=s.s3_region,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                      retries={"max_attempts": 3, "mode": "standard"}),
    )


def ensure_bucket(settings: Settings | None = None, bucket: str | None = None) -> bool:
    """Create the bucket if it is missing; True when it was created."""
    from botocore.exceptions import ClientError

    s = settings or get_settings()
    bucket = bucket or s.s3_bucket
    client = s3_client(s)
    try:
        client.head_bucket(Bucket=bucket)
        return False
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
    client.create_bucket(Bucket=bucket)
    return True


def split_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` → ``("bucket", "some/prefix")``."""
    parts = urlsplit(url)
    if parts.scheme not in ("s3", "s3a", "s3n"):
        raise ValueError(f"not an S3 location: {url!r}")
    return parts.netloc, parts.path.lstrip("/")


@dataclass(frozen=True)
class TableFile:
    """One object of an Iceberg table in the store."""

    key: str
    size: int
    kind: str  # "data", "metadata" (JSON), "manifest list", "manifest", "other"


def file_kind(key: str) -> str:
    name = key.rsplit("/", 1)[-1]
    if "/data/" in f"/{key}":
        return "data"
    if name.endswith(".metadata.json"):
        return "metadata"
    if name.startswith("snap-") and name.endswith(".avro"):
        return "manifest list"
    if name.endswith(".avro"):
        return "manifest"
    return "other"


def list_prefix(location: str, settings: Settings | None = None) -> list[TableFile]:
    """Every object under an ``s3://`` location, with its kind."""
    bucket, prefix = split_s3_url(location.rstrip("/") + "/")
    paginator = s3_client(settings).get_paginator("list_objects_v2")
    files = []
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            files.append(TableFile(item["Key"], item["Size"], file_kind(item["Key"][len(prefix):])))
    return files


def table_location(namespace: str, table: str, settings: Settings | None = None) -> str:
    """The table's root in the store, read from the catalog (``s3://warehouse/<ns>/<table>``)."""
    return load_lake_catalog(settings).load_table((namespace, table)).location()


def list_table_files(namespace: str, table: str, settings: Settings | None = None) -> list[TableFile]:
    """The objects an Iceberg table is made of: data files (Parquet) and metadata (JSON, Avro)."""
    return list_prefix(table_location(namespace, table, settings), settings)


def summarize_files(files: list[TableFile]) -> dict[str, dict[str, Any]]:
    """Count and total size per kind of file."""
    summary: dict[str, dict[str, Any]] = {}
    for item in files:
        entry = summary.setdefault(item.kind, {"files": 0, "bytes": 0})
        entry["files"] += 1
        entry["bytes"] += item.size
    return summary


def drop_namespace(namespace: str, settings: Settings | None = None) -> None:
    """Drop every table of a namespace with its files, then the namespace (tests and lab resets)."""
    from pyiceberg.exceptions import NoSuchNamespaceError

    catalog = load_lake_catalog(settings)
    try:
        tables = catalog.list_tables(namespace)
    except NoSuchNamespaceError:
        return
    for identifier in tables:
        location = catalog.load_table(identifier).location()
        catalog.drop_table(identifier)
        delete_prefix(location, settings)
    catalog.drop_namespace(namespace)


def delete_prefix(location: str, settings: Settings | None = None) -> int:
    """Delete every object under an ``s3://`` location; returns how many."""
    bucket, _ = split_s3_url(location)
    files = list_prefix(location, settings)
    client = s3_client(settings)
    for start in range(0, len(files), 1000):
        batch = [{"Key": item.key} for item in files[start:start + 1000]]
        client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
    return len(files)


# --- a raw table to start from (labs, tests, benchmarks) ------------------------------------


def frame_to_raw_rows(frame) -> list:
    """pandas rows (snapshot field names) → :class:`~dpe_pipeline.postgres.RawDpeRow` for the upsert."""
    import json
    import math

    from dpe_pipeline.postgres import RECORD_COLUMNS, RawDpeRow

    rows = []
    for record in frame.to_dict("records"):
        present = {key: _plain(value) for key, value in record.items()
                   if value is not None and not (isinstance(value, float) and math.isnan(value))
                   and str(value) != "<NA>"}
        typed = {name: present.get(name) for name, _ in RECORD_COLUMNS}
        rows.append(RawDpeRow(typed, json.dumps(present, ensure_ascii=False, default=str)))
    return rows


def _plain(value: Any) -> Any:
    """numpy / pandas scalars → Python ones (psycopg2 and json want those)."""
    return value.item() if hasattr(value, "item") else value


def load_raw_frame(frame, schema: str, settings: Settings | None = None, batch_size: int = 5000) -> int:
    """Create ``<schema>.dpe`` (the raw table's DDL) and upsert the frame's rows; returns rows written."""
    from dpe_pipeline import postgres

    rows = frame_to_raw_rows(frame)
    written = 0
    with postgres.connect(settings) as connection:
        postgres.ensure_raw_table(connection, schema)
        with connection.cursor() as cursor:
            for start in range(0, len(rows), batch_size):
                written += postgres.upsert_raw_dpe(cursor, rows[start:start + batch_size], schema)
        connection.commit()
    connection.close()
    logger.info("loaded %d raw rows into %s.dpe", written, schema)
    return written
