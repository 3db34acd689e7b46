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


def iceberg_jars() -> list[str]:
    """Local paths of the Iceberg runtime, AWS bundle and PostgreSQL driver (fetched by scripts/fetch-jars.sh)."""
    folder = Path(os.environ.get("DPE_SPARK_JARS") or
                  Path(os.environ.get("DPE_CACHE", Path.home() / ".cache" / "dpe-course")) / "jars" / "spark")
    jars = sorted(str(path) for path in folder.glob("*.jar"))
    if not jars:
        raise FileNotFoundError(f"Aucun jar Iceberg dans {folder} : lancez ./dpe up spark (ou scripts/fetch-jars.sh).")
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
        f"{prefix}.client.region": "us-east-1",
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
