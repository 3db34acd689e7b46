"""Trino from Python: the course's connection and the SQL behind the dashboard.

:func:`connect` opens a DB-API connection to the coordinator with the ``.env`` password over
HTTPS (Trino checks passwords on HTTPS only), verifying its self-signed certificate.
:func:`query` returns a pandas DataFrame. The SQL of the dashboard's charts is here as named
constants, so the tests, the benchmarks and the lab run exactly what Superset shows.

Catalogs (``stack/trino/catalog``): ``iceberg`` — the JDBC catalog ``lake`` whose tables
Spark writes (``iceberg.dpe.logements`` is Spark's ``lake.dpe.logements``) — and
``postgresql``, the raw store (``postgresql.raw.dpe``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from dpe_pipeline.settings import Settings, get_settings

logger = logging.getLogger(__name__)

ICEBERG_CATALOG = "iceberg"
POSTGRES_CATALOG = "postgresql"
LAKE_SCHEMA = "dpe"
LAKE_CATALOG_NAME = "lake"  # the JDBC catalog name shared by Spark, Trino and PyIceberg
RAW_TABLE = f"{POSTGRES_CATALOG}.raw.dpe"

# --- the dashboard's queries ({schema}: the Iceberg namespace; {department}: quoted code) -------

#: Number of DPE per label in the 15 communes with the most DPE.
LABELS_BY_COMMUNE = """
SELECT commune, etiquette_dpe, count(*) AS nb_dpe
FROM iceberg.{schema}.logements
WHERE departement = {department}
  AND commune IN (
    SELECT commune FROM iceberg.{schema}.logements
    WHERE departement = {department}
    GROUP BY commune ORDER BY count(*) DESC LIMIT 15)
GROUP BY commune, etiquette_dpe
ORDER BY commune, etiquette_dpe
"""

#: Number of DPE per label and month of reception (from the pre-aggregated table).
LABELS_BY_MONTH = """
SELECT mois,
       sum(nb_a) AS a, sum(nb_b) AS b, sum(nb_c) AS c, sum(nb_d) AS d,
       sum(nb_e) AS e, sum(nb_f) AS f, sum(nb_g) AS g
FROM iceberg.{schema}.stats_commune_mois
WHERE departement = {department}
GROUP BY mois
ORDER BY mois
"""

#: Mean primary energy use per m² by construction period.
CONSUMPTION_BY_PERIOD = """
SELECT periode_construction,
       count(*) AS nb_dpe,
       round(avg(conso_5_usages_par_m2_ep), 1) AS conso_moyenne_m2
FROM iceberg.{schema}.logements
WHERE departement = {department} AND periode_construction IS NOT NULL
GROUP BY periode_construction
ORDER BY min(annee_construction)
"""

#: Share of F and G homes (« passoires thermiques ») in every department of the lake.
FG_SHARE_BY_DEPARTMENT = """
SELECT departement,
       count(*) AS nb_dpe,
       round(100.0 * count_if(etiquette_dpe IN ('F', 'G')) / count(*), 1) AS part_f_g_pct
FROM iceberg.{schema}.logements
GROUP BY departement
ORDER BY departement
"""

#: One line per commune: volume, share of F-G, mean use and cost per m².
COMMUNES_TABLE = """
SELECT commune,
       sum(nb_dpe) AS nb_dpe,
       round(100.0 * sum(nb_f + nb_g) / sum(nb_dpe), 1) AS part_f_g_pct,
       round(sum(conso_moyenne_m2 * nb_dpe) / sum(nb_dpe), 1) AS conso_moyenne_m2,
       round(sum(cout_moyen_m2 * nb_dpe) / sum(nb_dpe), 2) AS cout_moyen_m2
FROM iceberg.{schema}.stats_commune_mois
WHERE departement = {department}
GROUP BY commune
ORDER BY nb_dpe DESC
LIMIT 50
"""

DASHBOARD_QUERIES = {
    "labels_by_commune": LABELS_BY_COMMUNE,
    "labels_by_month": LABELS_BY_MONTH,
    "consumption_by_period": CONSUMPTION_BY_PERIOD,
    "fg_share_by_department": FG_SHARE_BY_DEPARTMENT,
    "communes_table": COMMUNES_TABLE,
}

#: A federated query: raw rows in PostgreSQL joined with the clean Iceberg table, per label.
FEDERATED_RAW_VS_LAKE = """
SELECT r.etiquette_dpe,
       count(*) AS nb_bruts,
       count(l.numero_dpe) AS nb_dans_le_lac,
       round(avg(l.cout_par_m2), 2) AS cout_moyen_m2
FROM postgresql.raw.dpe AS r
LEFT JOIN iceberg.{schema}.logements AS l ON l.numero_dpe = r.numero_dpe
WHERE r.code_departement_ban = {department}
GROUP BY r.etiquette_dpe
ORDER BY r.etiquette_dpe
"""


def sql_literal(value: str) -> str:
    """A SQL string literal (single quotes doubled)."""
    return "'" + str(value).replace("'", "''") + "'"


def dashboard_sql(name: str, settings: Settings | None = None, schema: str = LAKE_SCHEMA) -> str:
    """One of :data:`DASHBOARD_QUERIES` for the ``.env`` department and an Iceberg namespace."""
    settings = settings or get_settings()
    return DASHBOARD_QUERIES[name].format(schema=schema, department=sql_literal(settings.dpe_department)).strip()


# --- connection -------------------------------------------------------------------------------


def certificate_path(settings: Settings | None = None) -> Path:
    """The coordinator's certificate: ``TRINO_CERTIFICATE``, else the native runner's."""
    explicit = os.environ.get("TRINO_CERTIFICATE")
    if explicit:
        return Path(explicit)
    from dpe_pipeline.native.registry import StackPaths

    return StackPaths.from_environment().state_dir / "trino" / "coordinator" / "etc" / "tls.pem"


def http_session(certificate: Path) -> Any:
    """A requests session that verifies Trino's certificate and ignores the environment.

    ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` would otherwise replace ``verify`` (requests
    merges the environment over the session's settings), and a proxy from the environment
    must never see a local password.
    """
    import requests

    session = requests.Session()
    session.trust_env = False
    session.verify = str(certificate)
    return session


def connect(
    settings: Settings | None = None,
    *,
    user: str | None = None,
    password: str | None = None,
    catalog: str = ICEBERG_CATALOG,
    schema: str = LAKE_SCHEMA,
    certificate: Path | None = None,
    request_timeout: float = 60.0,
) -> Any:
    """A DB-API connection to Trino over HTTPS with a password (``.env`` by default)."""
    import trino

    settings = settings or get_settings()
    certificate = certificate or certificate_path(settings)
    if not certificate.exists():
        raise FileNotFoundError(
            f"Certificat de Trino introuvable ({certificate}) : démarrez Trino avec « ./dpe up trino »."
        )
    user = user or settings.trino_user
    return trino.dbapi.connect(
        host=settings.trino_host,
        port=settings.trino_port,
        user=user,
        catalog=catalog,
        schema=schema,
        http_scheme="https",
        auth=trino.auth.BasicAuthentication(user, password if password is not None else settings.trino_password),
        http_session=http_session(certificate),
        request_timeout=request_timeout,
        source="dpe-course",
    )


def query(sql: str, settings: Settings | None = None, **options: Any) -> Any:
    """Run one statement and return its rows as a pandas DataFrame (column names from Trino)."""
    import pandas as pd

    connection = connect(settings, **options)
    try:
        cursor = connection.cursor()
        cursor.execute(sql)
        rows = cursor.fetchall()
        columns = [column[0] for column in cursor.description or []]
    finally:
        connection.close()
    return pd.DataFrame(rows, columns=columns)


def table_exists(table: str, settings: Settings | None = None, catalog: str = ICEBERG_CATALOG) -> bool:
    """Does ``schema.table`` exist in a Trino catalog (``information_schema``, no error if not)?"""
    schema, _, name = table.rpartition(".")
    rows = query(
        f"SELECT count(*) AS n FROM {catalog}.information_schema.tables "
        f"WHERE table_schema = {sql_literal(schema)} AND table_name = {sql_literal(name)}",
        settings,
    )
    return int(rows["n"].iloc[0]) == 1


# --- the same tables without Trino (PyIceberg), for comparisons and benchmarks -----------------


def lake_catalog(settings: Settings | None = None) -> Any:
    """The Iceberg JDBC catalog ``lake`` through PyIceberg (creates its tables if missing)."""
    from pyiceberg.catalog.sql import SqlCatalog

    settings = settings or get_settings()
    from urllib.parse import quote

    uri = (
        f"postgresql+psycopg2://{quote(settings.postgres_user, safe='')}:{quote(settings.postgres_password, safe='')}"
        f"@{settings.postgres_host}:{settings.postgres_port}/{settings.iceberg_db}"
    )
    return SqlCatalog(
        LAKE_CATALOG_NAME,
        uri=uri,
        warehouse=settings.warehouse,
        **{
            "s3.endpoint": settings.s3_endpoint,
            "s3.access-key-id": settings.s3_access_key,
            "s3.secret-access-key": settings.s3_secret_key,
            "s3.region": settings.s3_region,
            "s3.path-style-access": "true",
        },
    )
