"""Module 4 against the live stack: Spark on the standalone cluster writes Iceberg tables on MinIO.

Each test module works in its own PostgreSQL schema and Iceberg namespace (``test_lake_<hex>``),
dropped at the end: the demo pipeline's ``raw``/``dpe`` are never touched.
"""

from __future__ import annotations

import datetime as dt
import socket
import uuid

import pytest

from dpe_pipeline import lakehouse, postgres, spark_jobs
from dpe_pipeline.settings import get_settings
from dpe_pipeline.snapshot import load_dataset

pytestmark = pytest.mark.integration

SAMPLE_SIZE = 400
# Invalid rows raw.dpe accepts (its CHECK constraints keep the labels within A-G)
INVALID = {
    "48INVALID000A": {"surface_habitable_logement": -12.0},
    "48INVALID000B": {"conso_5_usages_par_m2_ep": 99_999.0},
    "48INVALID000C": {"date_etablissement_dpe": "2023-05-02", "date_reception_dpe": "2023-05-01"},
}


@pytest.fixture(scope="module")
def settings():
    return get_settings()


@pytest.fixture(scope="module")
def namespace(ensure_services, settings):
    ensure_services("postgres", "minio", "spark-master", "spark-worker")
    name = f"test_lake_{uuid.uuid4().hex[:8]}"
    yield name
    lakehouse.drop_namespace(name, settings)
    with postgres.connect(settings) as connection:
        postgres.drop_schema(connection, name)
    connection.close()


@pytest.fixture(scope="module")
def sample():
    """Real Lozère DPE (all fields present) and three invalid copies."""
    frame = load_dataset("dpe03existant")
    frame = frame[frame["code_departement_ban"] == "48"].head(SAMPLE_SIZE).reset_index(drop=True)
    invalid = frame.head(len(INVALID)).copy()
    for index, (numero, changes) in enumerate(INVALID.items()):
        invalid.loc[index, "numero_dpe"] = numero
        for field, value in changes.items():
            invalid.loc[index, field] = value
    return frame, invalid


@pytest.fixture(scope="module")
def spark():
    session = spark_jobs.lake_session(app_name="dpe-lakehouse-tests")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def first_run(spark, settings, namespace, sample):
    import pandas as pd

    frame, invalid = sample
    lakehouse.load_raw_frame(pd.concat([frame, invalid], ignore_index=True), namespace, settings)
    return spark_jobs.run_lakehouse_job(spark, settings, schema_raw=namespace, namespace=namespace)


def snapshot_ids(settings, namespace) -> dict[str, int | None]:
    catalog = lakehouse.load_lake_catalog(settings)
    ids = {}
    for table in ("logements", "quarantaine", "stats_commune_mois"):
        current = catalog.load_table((namespace, table)).current_snapshot()
        ids[table] = current.snapshot_id if current else None
    return ids


def test_first_run_writes_every_valid_dpe_and_pyiceberg_reads_the_same_rows(first_run, spark, settings, namespace,
                                                                               sample):
    frame, invalid = sample
    assert first_run.raw_rows == len(frame) + len(invalid)
    assert (first_run.inserted, first_run.updated) == (len(frame), 0)

    tables = spark_jobs.LakehouseTables(namespace)
    spark_rows = {(r.numero_dpe, r.etiquette_dpe, r.departement)
                  for r in spark.table(tables.logements).select("numero_dpe", "etiquette_dpe", "departement").collect()}
    table = lakehouse.load_lake_catalog(settings).load_table((namespace, "logements"))
    arrow = table.scan(selected_fields=("numero_dpe", "etiquette_dpe", "departement")).to_arrow()
    pyiceberg_rows = set(zip(*(arrow.column(name).to_pylist() for name in arrow.column_names), strict=True))
    assert pyiceberg_rows == spark_rows
    assert {row[0] for row in pyiceberg_rows} == set(frame["numero_dpe"])
    assert table.spec().fields and {field.name for field in table.spec().fields} == {
        "departement", "date_reception_dpe_month"}


def test_quarantine_holds_exactly_the_invalid_rows_with_their_reason(first_run, spark, namespace):
    assert first_run.rejected_rows == first_run.new_rejects == len(INVALID)
    rows = spark.table(spark_jobs.LakehouseTables(namespace).quarantine).collect()
    reasons = {row.numero_dpe: row.raisons for row in rows}
    assert reasons == {
        "48INVALID000A": ["surface_habitable_logement hors [1, 5000]"],
        "48INVALID000B": ["conso_5_usages_par_m2_ep hors [0, 5000]"],
        "48INVALID000C": ["établi après sa réception"],
    }


def test_second_run_changes_nothing(first_run, spark, settings, namespace):
    before = snapshot_ids(settings, namespace)
    again = spark_jobs.run_lakehouse_job(spark, settings, schema_raw=namespace, namespace=namespace)
    assert (again.inserted, again.updated, again.new_rejects, again.stats_rebuilt) == (0, 0, 0, False)
    assert snapshot_ids(settings, namespace) == before


def test_new_ingestion_adds_and_updates_only_what_changed(first_run, spark, settings, namespace, sample):
    frame, _ = sample
    tables = spark_jobs.LakehouseTables(namespace)
    stamps_before = {r.numero_dpe: r.mis_a_jour_le for r in spark.table(tables.logements).collect()}
    changed = frame.head(1).copy()
    changed.loc[0, "etiquette_dpe"] = "A" if changed.loc[0, "etiquette_dpe"] != "A" else "B"
    changed.loc[0, "date_derniere_modification_dpe"] = dt.date.today().isoformat()
    new = frame.tail(2).copy()
    new["numero_dpe"] = ["48NEWDPE0001X", "48NEWDPE0002Y"]
    import pandas as pd

    lakehouse.load_raw_frame(pd.concat([changed, new], ignore_index=True), namespace, settings)
    before = spark_jobs.snapshot_count(spark, tables.logements)

    report = spark_jobs.run_lakehouse_job(spark, settings, schema_raw=namespace, namespace=namespace)

    assert (report.inserted, report.updated, report.new_rejects) == (2, 1, 0)
    assert spark_jobs.snapshot_count(spark, tables.logements) == before + 1  # one MERGE commit
    rows = {r.numero_dpe: r for r in spark.table(tables.logements).collect()}
    touched = {numero for numero, row in rows.items() if stamps_before.get(numero) != row.mis_a_jour_le}
    assert touched == {changed.loc[0, "numero_dpe"], "48NEWDPE0001X", "48NEWDPE0002Y"}
    assert rows[changed.loc[0, "numero_dpe"]].etiquette_dpe == changed.loc[0, "etiquette_dpe"]


def test_every_client_uses_path_style_s3(first_run, spark, settings, namespace):
    # The store is addressed by IP: a virtual-host name (bucket.127.0.0.1) cannot even resolve,
    # so the commits above (Spark) and below (PyIceberg, boto3) prove path-style addressing.
    host = settings.s3_endpoint.split("//", 1)[1].split(":")[0]
    with pytest.raises(OSError):
        socket.getaddrinfo(f"{settings.s3_bucket}.{host}", None)

    conf = spark.sparkContext.getConf()
    assert conf.get("spark.sql.catalog.lake.s3.path-style-access") == "true"
    assert conf.get("spark.sql.catalog.lake.s3.endpoint") == settings.s3_endpoint
    properties = lakehouse.catalog_properties(settings)
    assert properties["s3.force-virtual-addressing"] == "false"
    client = lakehouse.s3_client(settings)
    assert client.meta.config.s3["addressing_style"] == "path"

    import pyarrow as pa

    catalog = lakehouse.load_lake_catalog(settings)
    table = catalog.create_table((namespace, "ecriture_pyiceberg"), schema=pa.schema([("n", pa.int64())]))
    table.append(pa.table({"n": [1, 2, 3]}))
    assert table.scan().to_arrow().num_rows == 3

    files = lakehouse.list_table_files(namespace, "logements", settings)
    kinds = lakehouse.summarize_files(files)
    assert kinds["data"]["files"] >= 1 and kinds["metadata"]["files"] >= 1
    assert all(item.key.endswith(".parquet") for item in files if item.kind == "data")
