"""Spark jobs of module 4: raw DPE rows (PostgreSQL) → clean, enriched Iceberg tables.

The transformations are plain functions from DataFrame to DataFrame so that the tests
and the labs can run them on a local session with a handful of rows:

- :func:`clean_dpe` types the columns and splits valid rows from rejected ones, each
  rejected row carrying the reasons (it goes to a quarantine table, never silently away);
- :func:`enrich_dpe` adds year, month, department, commune, construction period, cost
  per m² and label rank;
- :func:`latest_per_dpe` keeps the newest version of each ``numero_dpe``;
- :func:`commune_month_stats` builds the aggregate the dashboard reads.

:func:`run_lakehouse_job` chains them: read ``raw.dpe`` over JDBC (a partitioned read),
MERGE into ``lake.dpe.logements`` (partitioned by department and month of reception),
rebuild ``lake.dpe.stats_commune_mois`` and append the rejects to ``lake.dpe.quarantaine``.
A second run with no new raw rows changes nothing.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F  # noqa: N812 - the usual alias in Spark code

logger = logging.getLogger(__name__)

LABELS = ["A", "B", "C", "D", "E", "F", "G"]
#: Plausibility ranges of the numeric fields (inclusive); outside → quarantine.
NUMERIC_RANGES = {
    "surface_habitable_logement": (1.0, 5_000.0),
    "conso_5_usages_par_m2_ep": (0.0, 5_000.0),
    "emission_ges_5_usages_par_m2": (0.0, 1_000.0),
    "cout_total_5_usages": (0.0, 100_000.0),
}
#: Construction periods as ADEME labels them, by last year of each period.
CONSTRUCTION_PERIODS = [
    (1947, "avant 1948"), (1974, "1948-1974"), (1977, "1975-1977"), (1982, "1978-1982"),
    (1988, "1983-1988"), (2000, "1989-2000"), (2005, "2001-2005"), (2012, "2006-2012"),
    (2021, "2013-2021"), (9999, "après 2021"),
]
#: Fields read from the raw JSON payload when the raw table has no typed column for them.
PAYLOAD_FIELDS = {"annee_construction": "int", "periode_construction": "string", "type_energie_n1": "string"}
DATE_FIELDS = ["date_etablissement_dpe", "date_reception_dpe"]
LOGEMENTS_TABLE = "lake.dpe.logements"
STATS_TABLE = "lake.dpe.stats_commune_mois"
QUARANTINE_TABLE = "lake.dpe.quarantaine"
ICEBERG_VERSION = "1.10.1"  # stack/spark/pom.xml


# --------------------------------------------------------------------------------------
# Transformations
# --------------------------------------------------------------------------------------
def with_payload_fields(raw: DataFrame) -> DataFrame:
    """Typed columns for the fields that only the JSON payload carries."""
    for name, sql_type in PAYLOAD_FIELDS.items():
        if name not in raw.columns:
            value = F.get_json_object(F.col("payload"), f"$.{name}") if "payload" in raw.columns else F.lit(None)
            raw = raw.withColumn(name, value.cast(sql_type))
    return raw


def _reasons(df: DataFrame) -> Column:
    """An array of French reasons why a row is rejected (empty when it is valid)."""
    checks = [
        (F.col("numero_dpe").isNull() | ~F.col("numero_dpe").rlike(r"^\w{13}$"), "numero_dpe absent ou invalide"),
        (F.col("date_reception_dpe").isNull() & F.col("date_etablissement_dpe").isNull(), "aucune date"),
        (F.col("etiquette_dpe").isNotNull() & ~F.col("etiquette_dpe").isin(LABELS), "etiquette_dpe hors A-G"),
        (F.col("etiquette_ges").isNotNull() & ~F.col("etiquette_ges").isin(LABELS), "etiquette_ges hors A-G"),
        (F.col("date_etablissement_dpe") > F.col("date_reception_dpe"), "établi après sa réception"),
    ]
    for name, (low, high) in NUMERIC_RANGES.items():
        if name in df.columns:
            column = F.col(name)
            checks.append((column.isNotNull() & ~column.between(low, high), f"{name} hors [{low:g}, {high:g}]"))
    return F.filter(F.array(*[F.when(condition, F.lit(reason)) for condition, reason in checks]),
                    lambda reason: reason.isNotNull())


def clean_dpe(raw: DataFrame) -> tuple[DataFrame, DataFrame]:
    """Typed valid rows, and rejected rows with their ``raisons`` (array) and ``rejete_le``."""
    typed = with_payload_fields(raw)
    for name in DATE_FIELDS:
        typed = typed.withColumn(name, F.to_date(F.col(name).cast("string")))
    for name in NUMERIC_RANGES:
        if name in typed.columns:
            typed = typed.withColumn(name, F.col(name).cast("double"))
    typed = typed.withColumn("etiquette_dpe", F.upper(F.trim("etiquette_dpe")))
    typed = typed.withColumn("etiquette_ges", F.upper(F.trim("etiquette_ges")))
    checked = typed.withColumn("raisons", _reasons(typed))
    valid = checked.filter(F.size("raisons") == 0).drop("raisons")
    rejected = checked.filter(F.size("raisons") > 0).withColumn("rejete_le", F.current_timestamp())
    return valid, rejected


def construction_period(year: Column, period: Column) -> Column:
    """ADEME's construction period label: the record's own, else derived from the year."""
    derived = F.lit(None).cast("string")
    for last_year, label in reversed(CONSTRUCTION_PERIODS):
        derived = F.when(year <= last_year, F.lit(label)).otherwise(derived)
    return F.coalesce(period, F.when(year.isNotNull(), derived))


def enrich_dpe(valid: DataFrame) -> DataFrame:
    """Add the analysis columns: dates, place, construction period, cost per m², label rank."""
    reference_date = F.coalesce("date_reception_dpe", "date_etablissement_dpe")
    department = F.coalesce(
        F.col("code_departement_ban"),
        F.when(F.col("code_insee_ban").startswith("97"), F.substring("code_insee_ban", 1, 3))
        .otherwise(F.substring("code_insee_ban", 1, 2)),
    )
    return (
        valid.withColumn("date_reference", reference_date)
        .withColumn("annee", F.year("date_reference"))
        .withColumn("mois", F.date_trunc("month", F.col("date_reference")).cast("date"))
        .withColumn("departement", department)
        .withColumn("commune", F.coalesce("nom_commune_ban", "code_insee_ban", "code_postal_ban"))
        .withColumn("periode_construction", construction_period(F.col("annee_construction"),
                                                                 F.col("periode_construction")))
        .withColumn("cout_par_m2", F.round(F.col("cout_total_5_usages") / F.col("surface_habitable_logement"), 2))
        .withColumn("rang_etiquette", F.array_position(F.array(*map(F.lit, LABELS)), F.col("etiquette_dpe")))
        .withColumn("rang_etiquette", F.when(F.col("rang_etiquette") > 0, F.col("rang_etiquette").cast("int")))
    )


def latest_per_dpe(enriched: DataFrame) -> DataFrame:
    """One row per ``numero_dpe``: the newest version (same order as the raw upsert)."""
    order = [F.col(c).desc_nulls_last() for c in ("date_derniere_modification_dpe", "date_etablissement_dpe",
                                                   "date_reception_dpe") if c in enriched.columns]
    if "ingested_at" in enriched.columns:
        order.append(F.col("ingested_at").desc_nulls_last())
    window = Window.partitionBy("numero_dpe").orderBy(*order)
    return enriched.withColumn("_rang", F.row_number().over(window)).filter("_rang = 1").drop("_rang")


def commune_month_stats(logements: DataFrame) -> DataFrame:
    """Per department, commune and month: counts per label, share of F-G, averages."""
    label_counts = [F.sum(F.when(F.col("etiquette_dpe") == label, 1).otherwise(0)).alias(f"nb_{label.lower()}")
                    for label in LABELS]
    return (
        logements.groupBy("departement", "commune", "mois")
        .agg(
            F.count("*").alias("nb_dpe"),
            *label_counts,
            F.round(F.avg(F.col("etiquette_dpe").isin("F", "G").cast("double")), 4).alias("part_passoires"),
            F.round(F.avg("conso_5_usages_par_m2_ep"), 1).alias("conso_moyenne_m2"),
            F.round(F.avg("cout_par_m2"), 2).alias("cout_moyen_m2"),
        )
    )


# --------------------------------------------------------------------------------------
# Session, catalog and I/O
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LakeConfig:
    """Where the Iceberg catalog and the S3 warehouse live."""

    jdbc_url: str
    jdbc_user: str
    jdbc_password: str
    s3_endpoint: str
    s3_access_key: str
    s3_secret_key: str
    warehouse: str = "s3://warehouse/"
    catalog: str = "lake"
    region: str = "us-east-1"


def iceberg_jars() -> list[str]:
    """Local paths of the Iceberg runtime, AWS bundle and PostgreSQL driver.

    ``DPE_SPARK_JARS`` or ``SPARK_JARS_DIR`` (the compose image) name the folder; natively it is
    where scripts/fetch-jars.sh puts them, ``$DPE_CACHE/jars/spark-iceberg-<version>``.
    """
    cache = Path(os.environ.get("DPE_CACHE") or Path.home() / ".cache" / "dpe-course")
    folder = Path(os.environ.get("DPE_SPARK_JARS") or os.environ.get("SPARK_JARS_DIR")
                  or cache / "jars" / f"spark-iceberg-{ICEBERG_VERSION}")
    jars = sorted(str(path) for path in folder.glob("*.jar"))
    if not jars:
        raise FileNotFoundError(
            f"Aucun jar Iceberg dans {folder} : lancez ./dpe up spark-master (ou scripts/fetch-jars.sh)."
        )
    return jars


def lake_conf(config: LakeConfig) -> dict[str, str]:
    """Spark settings of the shared Iceberg JDBC catalog with S3FileIO (path-style)."""
    prefix = f"spark.sql.catalog.{config.catalog}"
    return {
        "spark.sql.extensions": "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
        prefix: "org.apache.iceberg.spark.SparkCatalog",
        f"{prefix}.type": "jdbc",
        f"{prefix}.uri": config.jdbc_url,
        f"{prefix}.jdbc.user": config.jdbc_user,
        f"{prefix}.jdbc.password": config.jdbc_password,
        f"{prefix}.jdbc.schema-version": "V1",
        f"{prefix}.warehouse": config.warehouse,
        f"{prefix}.io-impl": "org.apache.iceberg.aws.s3.S3FileIO",
        f"{prefix}.s3.endpoint": config.s3_endpoint,
        f"{prefix}.s3.path-style-access": "true",
        f"{prefix}.s3.access-key-id": config.s3_access_key,
        f"{prefix}.s3.secret-access-key": config.s3_secret_key,
        f"{prefix}.client.region": config.region,
    }


def local_session(app_name: str = "dpe-tests", conf: dict[str, str] | None = None) -> SparkSession:
    """A small local[2] session (tests, labs without the cluster)."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = (
        SparkSession.builder.master("local[2]").appName(app_name)
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
    )
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


# --------------------------------------------------------------------------------------
# The lakehouse job: raw.dpe (PostgreSQL) → lake.<namespace>.* (Iceberg on S3)
# --------------------------------------------------------------------------------------
#: The AWS SDK v2 sends CRC checksums by default, which non-AWS stores may reject (apache/iceberg#14439)
AWS_CHECKSUM_ENVIRONMENT = {
    "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
    "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
}
#: Columns of ``logements``, in table order (those the input lacks are left out).
LOGEMENTS_COLUMNS = [
    "numero_dpe", "date_etablissement_dpe", "date_reception_dpe", "date_visite_diagnostiqueur",
    "date_fin_validite_dpe", "date_derniere_modification_dpe", "etiquette_dpe", "etiquette_ges", "type_batiment",
    "surface_habitable_logement", "conso_5_usages_par_m2_ep", "conso_5_usages_ep", "emission_ges_5_usages",
    "emission_ges_5_usages_par_m2", "cout_total_5_usages", "code_departement_ban", "code_insee_ban",
    "code_postal_ban", "nom_commune_ban", "annee_construction", "periode_construction", "type_energie_n1",
    "date_reference", "annee", "mois", "departement", "commune", "cout_par_m2", "rang_etiquette",
]
#: Columns that say where or when a row travelled, not what it holds: outside the content hash.
TECHNICAL_COLUMNS = {"ingested_at", "kafka_partition", "kafka_offset", "rejete_le", "mis_a_jour_le", "empreinte"}


def lake_config(settings) -> LakeConfig:
    """The catalog and store of the settings (``.env``)."""
    return LakeConfig(
        jdbc_url=settings.iceberg_jdbc_url,
        jdbc_user=settings.postgres_user,
        jdbc_password=settings.postgres_password,
        s3_endpoint=settings.s3_endpoint,
        s3_access_key=settings.s3_access_key,
        s3_secret_key=settings.s3_secret_key,
        warehouse=settings.warehouse,
        region=settings.s3_region,
    )


def lake_session(
    settings=None,
    app_name: str = "dpe-lakehouse",
    master: str | None = None,
    conf: dict[str, str] | None = None,
) -> SparkSession:
    """A session on the Spark cluster (``settings.spark_master``) or ``local[N]``, with the catalog ``lake``.

    The driver runs in this Python process; the executors run on the worker. Jars are local
    files (no Ivy), S3 is path-style, and the AWS checksum setting reaches the driver JVM
    (environment, before it starts) and the executors (``spark.executorEnv``).
    """
    from dpe_pipeline.settings import get_settings

    settings = settings or get_settings()
    master = master or settings.spark_master
    in_compose = os.environ.get("DPE_SPARK_CONF") == "1"  # compose renders driver host and jars itself
    for key, value in AWS_CHECKSUM_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    settings_conf = {
        "spark.jars": ",".join(iceberg_jars()),
        "spark.sql.shuffle.partitions": "8",
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.showConsoleProgress": "false",
        "spark.cores.max": str(settings.spark_worker_cores),
        "spark.executor.memory": "1g",
        **{f"spark.executorEnv.{key}": value for key, value in AWS_CHECKSUM_ENVIRONMENT.items()},
        **lake_conf(lake_config(settings)),
    }
    if not in_compose:
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        settings_conf.update({"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"})
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in {**settings_conf, **(conf or {})}.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def postgres_jdbc_url(settings) -> str:
    return f"jdbc:postgresql://{settings.postgres_host}:{settings.postgres_port}/{settings.postgres_db}"


def read_raw_dpe(spark: SparkSession, settings, schema: str = "raw", table: str = "dpe",
                 partitions: int = 4) -> DataFrame:
    """``<schema>.<table>`` over JDBC, in ``partitions`` parallel reads (a hash of ``numero_dpe`` modulo N).

    Each predicate becomes one Spark partition and one SQL query: the executors read their
    share of the table at the same time, and every row lands in exactly one share.
    """
    from dpe_pipeline.postgres import RECORD_COLUMNS, qualified_table

    columns = [name for name, _ in RECORD_COLUMNS] + ["payload::text AS payload", "ingested_at"]
    query = f"(SELECT {', '.join(columns)} FROM {qualified_table(schema, table)}) AS raw_dpe"
    predicates = [f"mod(abs(hashtext(numero_dpe)::bigint), {partitions}) = {share}" for share in range(partitions)]
    properties = {
        "user": settings.postgres_user,
        "password": settings.postgres_password,
        "driver": "org.postgresql.Driver",
        "fetchsize": "5000",
    }
    return spark.read.jdbc(postgres_jdbc_url(settings), query, predicates=predicates, properties=properties)


def with_content_hash(df: DataFrame, name: str = "empreinte") -> DataFrame:
    """Add a SHA-256 of the row's content (technical columns excluded): equal hash, same row."""
    content = [column for column in df.columns if column not in TECHNICAL_COLUMNS]
    return df.withColumn(name, F.sha2(F.to_json(F.struct(*content)), 256))


def logements_rows(latest: DataFrame) -> DataFrame:
    """The rows of ``logements``: the table's columns, their content hash and the time of this run."""
    columns = [column for column in LOGEMENTS_COLUMNS if column in latest.columns]
    return with_content_hash(latest.select(*columns)).withColumn("mis_a_jour_le", F.current_timestamp())


def quarantine_rows(rejected: DataFrame) -> DataFrame:
    """The rows of ``quarantaine``: identifier, reasons, the typed fields, the raw payload, a content hash."""
    fields = [column for column in LOGEMENTS_COLUMNS if column in rejected.columns and column != "numero_dpe"]
    extra = ["payload"] if "payload" in rejected.columns else []
    return with_content_hash(rejected.select("numero_dpe", "raisons", *fields, *extra, "rejete_le"))


@dataclass(frozen=True)
class LakehouseTables:
    """The three Iceberg tables of one namespace (``dpe`` for the pipeline, ``lab_<id>`` for a learner)."""

    namespace: str
    catalog: str = "lake"

    @property
    def logements(self) -> str:
        return f"{self.catalog}.{self.namespace}.logements"

    @property
    def stats(self) -> str:
        return f"{self.catalog}.{self.namespace}.stats_commune_mois"

    @property
    def quarantine(self) -> str:
        return f"{self.catalog}.{self.namespace}.quarantaine"


@dataclass(frozen=True)
class LakehouseReport:
    """What one run did; a second run on the same raw rows reports 0 inserted, updated and new rejects."""

    raw_rows: int
    valid_rows: int
    rejected_rows: int
    new_rejects: int
    inserted: int
    updated: int
    stats_rebuilt: bool

    @property
    def changed(self) -> int:
        return self.inserted + self.updated


def create_table_if_missing(spark: SparkSession, table: str, template: DataFrame, partitioned_by: str = "") -> bool:
    """``CREATE TABLE IF NOT EXISTS`` with the template's columns (no snapshot); True when created."""
    if spark.catalog.tableExists(table):
        return False
    columns = ", ".join(f"{field.name} {field.dataType.simpleString()}" for field in template.schema.fields)
    partitioning = f" PARTITIONED BY ({partitioned_by})" if partitioned_by else ""
    spark.sql(f"CREATE TABLE IF NOT EXISTS {table} ({columns}) USING iceberg{partitioning}")
    return True


def append_new_rejects(spark: SparkSession, table: str, rejects: DataFrame) -> int:
    """Append the rejects the quarantine does not hold yet (same DPE, same content); returns how many."""
    known = spark.table(table).select("numero_dpe", "empreinte")
    new = rejects.join(known, ["numero_dpe", "empreinte"], "left_anti").persist()
    try:
        count = new.count()
        if count:
            new.writeTo(table).append()
        return count
    finally:
        new.unpersist()


def merge_changed_rows(spark: SparkSession, table: str, rows: DataFrame) -> tuple[int, int]:
    """MERGE the rows that are new or whose content changed; returns (inserted, updated).

    Unchanged rows are filtered out before the MERGE: when nothing changed, no MERGE runs and
    the table gets no new snapshot. Columns are listed, so a column added to the table later
    (schema evolution) is left as it is.
    """
    stored = spark.table(table).select("numero_dpe", "empreinte")
    changes = rows.join(stored, ["numero_dpe", "empreinte"], "left_anti").persist()
    try:
        changed = changes.count()
        if not changed:
            return 0, 0
        inserted = changes.join(stored.select("numero_dpe"), "numero_dpe", "left_anti").count()
        view = f"changes_{abs(hash(table))}"
        changes.createOrReplaceTempView(view)
        columns = changes.columns
        updates = ", ".join(f"cible.{column} = source.{column}" for column in columns if column != "numero_dpe")
        spark.sql(
            f"MERGE INTO {table} AS cible USING {view} AS source ON cible.numero_dpe = source.numero_dpe "
            f"WHEN MATCHED THEN UPDATE SET {updates} "
            f"WHEN NOT MATCHED THEN INSERT ({', '.join(columns)}) "
            f"VALUES ({', '.join(f'source.{column}' for column in columns)})"
        )
        spark.catalog.dropTempView(view)
        return inserted, changed - inserted
    finally:
        changes.unpersist()


def rebuild_stats(spark: SparkSession, tables: LakehouseTables) -> None:
    """Recompute the commune × month aggregate from the whole ``logements`` table."""
    stats = commune_month_stats(spark.table(tables.logements))
    create_table_if_missing(spark, tables.stats, stats)
    stats.writeTo(tables.stats).overwrite(F.lit(True))


def run_lakehouse_job(spark: SparkSession, settings=None, schema_raw: str = "raw", namespace: str = "dpe",
                      partitions: int = 4) -> LakehouseReport:
    """raw.dpe → clean → quarantine → enrich → newest per DPE → MERGE → stats. Idempotent.

    A second run over the same raw rows appends no reject, merges no row and leaves the
    stats alone: no table gets a new snapshot. After a new ingestion, only the new or
    changed DPE are merged, and the stats are rebuilt.
    """
    from dpe_pipeline.settings import get_settings

    settings = settings or get_settings()
    tables = LakehouseTables(namespace)

    # Read the raw rows once (partitioned JDBC read), kept in memory for the phases below
    raw = read_raw_dpe(spark, settings, schema_raw, partitions=partitions).persist()
    try:
        raw_rows = raw.count()

        # Clean and type; rejected rows keep their reasons
        valid, rejected = clean_dpe(raw)
        rejects = quarantine_rows(rejected)
        rows = logements_rows(latest_per_dpe(enrich_dpe(valid)))

        # Tables (created empty on the first run), partitioned by department and month of reception
        spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {tables.catalog}.{namespace}")
        create_table_if_missing(spark, tables.quarantine, rejects)
        created = create_table_if_missing(spark, tables.logements, rows,
                                          partitioned_by="departement, months(date_reception_dpe)")

        # Quarantine: append only the rejects not seen before
        new_rejects = append_new_rejects(spark, tables.quarantine, rejects)

        # Logements: MERGE only the new or changed DPE
        inserted, updated = merge_changed_rows(spark, tables.logements, rows)

        # Stats: rebuilt when logements changed (or on the first run)
        stats_rebuilt = bool(inserted or updated or created or not spark.catalog.tableExists(tables.stats))
        if stats_rebuilt:
            rebuild_stats(spark, tables)

        report = LakehouseReport(raw_rows, valid.count(), rejected.count(), new_rejects, inserted, updated,
                                 stats_rebuilt)
    finally:
        raw.unpersist()
    logger.info("lakehouse job %s ← %s.dpe: %s", namespace, schema_raw, report)
    return report


def snapshot_count(spark: SparkSession, table: str) -> int:
    """How many snapshots (commits) an Iceberg table has."""
    return spark.sql(f"SELECT count(*) AS n FROM {table}.snapshots").first().n


def main(argv: list[str] | None = None) -> int:
    """``python -m dpe_pipeline.spark_jobs`` (or ``spark-submit src/dpe_pipeline/spark_jobs.py``)."""
    import argparse
    import json

    from dpe_pipeline.settings import get_settings

    parser = argparse.ArgumentParser(description="raw.dpe (PostgreSQL) → Iceberg tables lake.<namespace>.*")
    parser.add_argument("--namespace", default="dpe", help="Iceberg namespace to write (default: dpe)")
    parser.add_argument("--raw-schema", default="raw", help="PostgreSQL schema of the raw table (default: raw)")
    parser.add_argument("--master", default=None, help="Spark master (default: SPARK_MASTER_URL / the native one)")
    parser.add_argument("--partitions", type=int, default=4, help="parallel JDBC reads (default: 4)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)  # one line per Java call at INFO

    settings = get_settings()
    spark = lake_session(settings, app_name=f"dpe-lakehouse-{args.namespace}", master=args.master)
    try:
        report = run_lakehouse_job(spark, settings, schema_raw=args.raw_schema, namespace=args.namespace,
                                   partitions=args.partitions)
    finally:
        spark.stop()
    print(json.dumps({**report.__dict__, "changed": report.changed}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
