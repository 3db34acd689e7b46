"""A small lake built from the bundled real DPE, without Spark: for tests and benchmarks of module 5.

The demo tables ``lake.dpe.logements`` and ``lake.dpe.stats_commune_mois`` are written by the
Spark job (:func:`dpe_pipeline.spark_jobs.run_lakehouse_job`). Tests of Trino and Superset
must not depend on that job having run, nor write into the demo's namespace: this module
writes tables with the same names and the columns the dashboard reads into another Iceberg
namespace through PyIceberg (pandas → Arrow), and the matching raw rows into a PostgreSQL
schema, from ``data/ademe/dpe03existant.parquet``. It is a stand-in, not the pipeline: the
values are computed with pandas the way :mod:`dpe_pipeline.spark_jobs` computes them.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from dpe_pipeline.settings import Settings, get_settings, project_dir
from dpe_pipeline.trino_queries import lake_catalog

logger = logging.getLogger(__name__)

LABELS = "ABCDEFG"
PERIODS = (
    (1947, "avant 1948"), (1974, "1948-1974"), (1977, "1975-1977"), (1982, "1978-1982"),
    (1988, "1983-1988"), (2000, "1989-2000"), (2005, "2001-2005"), (2012, "2006-2012"),
    (2021, "2013-2021"), (9999, "après 2021"),
)
RAW_COLUMNS = ("numero_dpe", "etiquette_dpe", "code_departement_ban", "nom_commune_ban", "date_reception_dpe")


def read_bundled(limit: int | None = None) -> pd.DataFrame:
    frame = pd.read_parquet(project_dir() / "data" / "ademe" / "dpe03existant.parquet")
    dated = frame["date_reception_dpe"].notna() | frame["date_etablissement_dpe"].notna()
    usable = frame["etiquette_dpe"].isin(list(LABELS)) & dated
    frame = frame[usable].drop_duplicates("numero_dpe")
    return frame.head(limit) if limit else frame


def period_of(year: Any) -> str | None:
    if pd.isna(year):
        return None
    return next(label for last, label in PERIODS if int(year) <= last)


def logements_frame(raw: pd.DataFrame) -> pd.DataFrame:
    """The columns of ``lake.dpe.logements`` that the dashboard and the lab read."""
    # Same reference date and place as spark_jobs.enrich_dpe: reception, else establishment
    reference = pd.to_datetime(raw["date_reception_dpe"].fillna(raw["date_etablissement_dpe"]))
    frame = pd.DataFrame({
        "numero_dpe": raw["numero_dpe"].astype(str),
        "etiquette_dpe": raw["etiquette_dpe"].astype(str),
        "etiquette_ges": raw["etiquette_ges"].astype("string"),
        "date_reference": reference.dt.date,
        "annee": reference.dt.year.astype("int32"),
        "mois": reference.dt.to_period("M").dt.start_time.dt.date,
        "departement": raw["code_departement_ban"].astype(str),
        "commune": raw["nom_commune_ban"].fillna(raw["code_insee_ban"]).fillna(raw["code_postal_ban"]).astype(str),
        "annee_construction": pd.to_numeric(raw["annee_construction"], errors="coerce").astype("Int32"),
        "periode_construction": raw["annee_construction"].map(period_of).astype("string"),
        "surface_habitable_logement": pd.to_numeric(raw["surface_habitable_logement"], errors="coerce"),
        "conso_5_usages_par_m2_ep": pd.to_numeric(raw["conso_5_usages_par_m2_ep"], errors="coerce"),
        "cout_total_5_usages": pd.to_numeric(raw["cout_total_5_usages"], errors="coerce"),
    })
    frame["cout_par_m2"] = (frame["cout_total_5_usages"] / frame["surface_habitable_logement"]).round(2)
    return frame.reset_index(drop=True)


def stats_frame(logements: pd.DataFrame) -> pd.DataFrame:
    """``lake.dpe.stats_commune_mois``: counts per label, share of F-G, means, per commune and month."""
    grouped = logements.groupby(["departement", "commune", "mois"])
    stats = grouped.size().rename("nb_dpe").to_frame()
    for label in LABELS:
        stats[f"nb_{label.lower()}"] = grouped["etiquette_dpe"].apply(lambda s, lab=label: int((s == lab).sum()))
    stats["part_passoires"] = (stats["nb_f"] + stats["nb_g"]) / stats["nb_dpe"]
    stats["conso_moyenne_m2"] = grouped["conso_5_usages_par_m2_ep"].mean().round(1)
    stats["cout_moyen_m2"] = grouped["cout_par_m2"].mean().round(2)
    stats = stats.reset_index()
    for column in ["nb_dpe", *[f"nb_{label.lower()}" for label in LABELS]]:
        stats[column] = stats[column].astype("int64")
    return stats


def write_iceberg(settings: Settings, namespace: str, name: str, frame: pd.DataFrame) -> int:
    """Replace ``namespace.name`` with the frame's rows; returns the row count."""
    import pyarrow as pa

    catalog = lake_catalog(settings)
    catalog.create_namespace_if_not_exists(namespace)
    identifier = f"{namespace}.{name}"
    table_data = pa.Table.from_pandas(frame, preserve_index=False)
    if catalog.table_exists(identifier):
        catalog.drop_table(identifier)
    table = catalog.create_table(identifier, schema=table_data.schema)
    table.append(table_data)
    return len(frame)


def write_raw(settings: Settings, schema: str, raw: pd.DataFrame) -> int:
    """The raw rows' key columns in ``<schema>.dpe`` of the course database (replaced)."""
    from psycopg2.extras import execute_values

    from dpe_pipeline import postgres

    key_columns = raw[list(RAW_COLUMNS)].astype(object)
    rows = [tuple(None if pd.isna(value) else value for value in row) for row in key_columns.itertuples(index=False)]
    connection = postgres.connect(settings)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE SCHEMA IF NOT EXISTS "{postgres.check_identifier(schema)}"')
            cursor.execute(f'DROP TABLE IF EXISTS "{schema}".dpe')
            cursor.execute(
                f'CREATE TABLE "{schema}".dpe (numero_dpe text PRIMARY KEY, etiquette_dpe char(1), '
                "code_departement_ban text, nom_commune_ban text, date_reception_dpe date)"
            )
            execute_values(cursor, f'INSERT INTO "{schema}".dpe VALUES %s', rows, page_size=5000)
        connection.commit()
    finally:
        connection.close()
    return len(rows)


def build_sample_lake(
    namespace: str, raw_schema: str | None = None, limit: int | None = None, settings: Settings | None = None
) -> dict[str, int]:
    """Write ``namespace.logements``, ``namespace.stats_commune_mois`` (and raw rows); returns counts."""
    settings = settings or get_settings()
    raw = read_bundled(limit)
    logements = logements_frame(raw)
    counts = {
        "logements": write_iceberg(settings, namespace, "logements", logements),
        "stats_commune_mois": write_iceberg(settings, namespace, "stats_commune_mois", stats_frame(logements)),
    }
    if raw_schema:
        counts["raw"] = write_raw(settings, raw_schema, raw)
    logger.info("sample lake %s written: %s", namespace, counts)
    return counts
