"""Superset provisioned as code, through its REST API: connection, datasets, charts, dashboard.

Everything is find-or-create by name and updated in place, so running it again after a
change (or at every ``./dpe up``) converges to the same state without duplicates:

1. the database connection « Trino (lakehouse) »: ``trino://user:password@host:port/iceberg``
   with Trino's certificate as the connection's « root certificate » (``server_cert``): Superset
   then connects over HTTPS and verifies it (``TrinoEngineSpec.get_extra_params``);
2. datasets: the physical tables ``dpe.logements`` and ``dpe.stats_commune_mois`` (for
   exploring) and one virtual (SQL) dataset per query of :mod:`dpe_pipeline.trino_queries`;
3. five charts on those virtual datasets, each with a saved query context (what the
   ``/api/v1/chart/<id>/data/`` endpoint replays);
4. the dashboard « DPE — <département> » with the charts laid out (``position_json``).

Entry points: :func:`provision_dashboard` (the main job and the runner call it),
``python -m dpe_pipeline.superset provision``, and :class:`SupersetClient` for the lab.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from dpe_pipeline.settings import Settings, get_settings
from dpe_pipeline.trino_queries import LAKE_SCHEMA, certificate_path, dashboard_sql, query

logger = logging.getLogger(__name__)

DATABASE_NAME = "Trino (lakehouse)"
LAKE_TABLES = ("logements", "stats_commune_mois")
DEPARTMENT_NAMES = {"69": "Rhône", "48": "Lozère", "74": "Haute-Savoie"}
REQUEST_TIMEOUT = 120
PAGE_SIZE = 100


class ProvisioningError(RuntimeError):
    """A Superset API call that failed: the message holds the method, the path and the answer."""


# --- REST client ------------------------------------------------------------------------------


class SupersetClient:
    """A logged-in session on Superset's REST API (JWT + CSRF token + session cookie)."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        import requests

        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.session.trust_env = False  # local service: no proxy from the environment
        response = self.session.post(
            f"{self.base_url}/api/v1/security/login",
            json={"username": username, "password": password, "provider": "db", "refresh": True},
            timeout=REQUEST_TIMEOUT,
        )
        if response.status_code != 200:
            raise ProvisioningError(f"login as {username!r} refused: HTTP {response.status_code} {response.text[:200]}")
        self.access_token = response.json()["access_token"]
        self.session.headers["Authorization"] = f"Bearer {self.access_token}"
        csrf = self.request("GET", "/api/v1/security/csrf_token/")["result"]
        self.session.headers.update({"X-CSRFToken": csrf, "Referer": self.base_url})

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> SupersetClient:
        settings = settings or get_settings()
        return cls(settings.superset_url, settings.superset_admin_user, settings.superset_admin_password)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.session.request(method, f"{self.base_url}{path}", timeout=REQUEST_TIMEOUT, **kwargs)
        if response.status_code >= 400:
            raise ProvisioningError(f"{method} {path}: HTTP {response.status_code} {response.text[:500]}")
        return response.json() if response.content else {}

    def find(self, resource: str, column: str, value: str) -> dict[str, Any] | None:
        """The first object of ``/api/v1/<resource>/`` whose ``column`` equals ``value``."""
        rison = f"(filters:!((col:{column},opr:eq,value:{rison_string(value)})),page_size:{PAGE_SIZE})"
        result = self.request("GET", f"/api/v1/{resource}/?q={quote(rison)}")["result"]
        matches = [item for item in result if item.get(column) == value]
        return matches[0] if matches else None

    def upsert(self, resource: str, column: str, value: str, payload: dict[str, Any]) -> int:
        """Create the object, or update the one with the same name; returns its id."""
        existing = self.find(resource, column, value)
        if existing:
            self.request("PUT", f"/api/v1/{resource}/{existing['id']}", json=payload)
            return int(existing["id"])
        return int(self.request("POST", f"/api/v1/{resource}/", json=payload)["id"])

    def chart_data(self, chart_id: int) -> list[dict[str, Any]]:
        """Rows of a saved chart, computed from its saved query context (one list per query)."""
        answer = self.request("GET", f"/api/v1/chart/{chart_id}/data/?format=json&type=full")
        return [row for result in answer["result"] for row in result.get("data", [])]


def rison_string(value: str) -> str:
    """A string in Rison, the URL notation of Superset's ``q`` parameter."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-/~]*", value):
        return value
    return "'" + value.replace("!", "!!").replace("'", "!'") + "'"


# --- what the dashboard is made of ---------------------------------------------------------------


@dataclass(frozen=True)
class ChartSpec:
    """A chart on one virtual dataset (a query of :data:`trino_queries.DASHBOARD_QUERIES`)."""

    query_name: str
    title: str
    viz_type: str
    x_axis: str | None = None
    metrics: tuple[str, ...] = ()  # SQL aggregate expressions, labelled as written
    groupby: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()  # raw columns (table charts)
    extra: dict[str, Any] = field(default_factory=dict)
    width: int = 6
    height: int = 50


CHARTS = (
    ChartSpec(
        "labels_by_commune", "Étiquettes DPE par commune", "echarts_timeseries_bar",
        x_axis="commune", metrics=("SUM(nb_dpe)",), groupby=("etiquette_dpe",),
        extra={"stack": "Stack", "x_axis_sort_asc": True}, width=8,
    ),
    ChartSpec(
        "fg_share_by_department", "Part des logements F et G par département (%)", "echarts_timeseries_bar",
        x_axis="departement", metrics=("MAX(part_f_g_pct)",), width=4,
    ),
    ChartSpec(
        "labels_by_month", "Étiquettes DPE au fil des mois", "echarts_timeseries_bar",
        x_axis="mois", metrics=tuple(f"SUM({label})" for label in "abcdefg"),
        extra={"stack": "Stack", "time_grain_sqla": "P1M"}, width=12,
    ),
    ChartSpec(
        "consumption_by_period", "Consommation moyenne (kWh EP/m²) par période de construction",
        "echarts_timeseries_bar", x_axis="periode_construction", metrics=("MAX(conso_moyenne_m2)",), width=6,
    ),
    ChartSpec(
        "communes_table", "Communes : volume, part F-G, consommation et coût", "table",
        columns=("commune", "nb_dpe", "part_f_g_pct", "conso_moyenne_m2", "cout_moyen_m2"), width=6,
    ),
)
LAYOUT_ROWS = (
    ("labels_by_commune", "fg_share_by_department"),
    ("labels_by_month",),
    ("consumption_by_period", "communes_table"),
)


def sql_metric(expression: str) -> dict[str, Any]:
    return {"expressionType": "SQL", "sqlExpression": expression, "label": expression}


def chart_params(spec: ChartSpec, dataset_id: int) -> dict[str, Any]:
    """The chart's ``form_data``, what the Explore view and the dashboard render from."""
    params: dict[str, Any] = {
        "datasource": f"{dataset_id}__table",
        "viz_type": spec.viz_type,
        "adhoc_filters": [],
        "row_limit": 10_000,
    }
    if spec.viz_type == "table":
        params.update(query_mode="raw", all_columns=list(spec.columns), order_by_cols=[], server_pagination=False)
    else:
        params.update(
            x_axis=spec.x_axis,
            metrics=[sql_metric(metric) for metric in spec.metrics],
            groupby=list(spec.groupby),
            show_legend=True,
            rich_tooltip=True,
            y_axis_format="SMART_NUMBER",
        )
    params.update(spec.extra)
    return params


def chart_query_context(spec: ChartSpec, dataset_id: int, params: dict[str, Any]) -> dict[str, Any]:
    """The saved query context: the query ``/api/v1/chart/<id>/data/`` runs."""
    if spec.viz_type == "table":
        columns: list[Any] = list(spec.columns)
        metrics: list[Any] = []
    else:
        axis: dict[str, Any] = {
            "columnType": "BASE_AXIS", "sqlExpression": spec.x_axis, "label": spec.x_axis, "expressionType": "SQL",
        }
        if "time_grain_sqla" in spec.extra:
            axis["timeGrain"] = spec.extra["time_grain_sqla"]
        columns = [axis, *spec.groupby]
        metrics = [sql_metric(metric) for metric in spec.metrics]
    return {
        "datasource": {"id": dataset_id, "type": "table"},
        "force": False,
        "queries": [{
            "columns": columns,
            "metrics": metrics,
            "filters": [],
            "orderby": [],
            "row_limit": 10_000,
            "extras": {"having": "", "where": ""},
        }],
        "form_data": params,
        "result_format": "json",
        "result_type": "full",
    }


def dashboard_title(settings: Settings, schema: str = LAKE_SCHEMA) -> str:
    department = settings.dpe_department
    name = DEPARTMENT_NAMES.get(department)
    title = f"DPE — {name} ({department})" if name else f"DPE — {department}"
    return title if schema == LAKE_SCHEMA else f"{title} [{schema}]"


def position_json(chart_ids: dict[str, int], titles: dict[str, str], title: str) -> dict[str, Any]:
    """A grid of rows (:data:`LAYOUT_ROWS`), each chart with its width (out of 12) and height."""
    specs = {spec.query_name: spec for spec in CHARTS}
    layout: dict[str, Any] = {
        "DASHBOARD_VERSION_KEY": "v2",
        "ROOT_ID": {"type": "ROOT", "id": "ROOT_ID", "children": ["GRID_ID"]},
        "HEADER_ID": {"type": "HEADER", "id": "HEADER_ID", "meta": {"text": title}},
        "GRID_ID": {"type": "GRID", "id": "GRID_ID", "children": [], "parents": ["ROOT_ID"]},
    }
    for row_number, row in enumerate(LAYOUT_ROWS, start=1):
        row_id = f"ROW-{row_number}"
        layout["GRID_ID"]["children"].append(row_id)
        layout[row_id] = {
            "type": "ROW", "id": row_id, "children": [], "parents": ["ROOT_ID", "GRID_ID"],
            "meta": {"background": "BACKGROUND_TRANSPARENT"},
        }
        for name in row:
            chart_key = f"CHART-{name}"
            layout[row_id]["children"].append(chart_key)
            layout[chart_key] = {
                "type": "CHART", "id": chart_key, "children": [], "parents": ["ROOT_ID", "GRID_ID", row_id],
                "meta": {
                    "chartId": chart_ids[name], "sliceName": titles[name],
                    "width": specs[name].width, "height": specs[name].height,
                },
            }
    return layout


# --- provisioning ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProvisionResult:
    """What exists after provisioning (ids in Superset) and where to look."""

    title: str
    url: str
    database_id: int
    dashboard_id: int
    dataset_ids: dict[str, int]
    chart_ids: dict[str, int]


def lake_tables_exist(settings: Settings | None = None, schema: str = LAKE_SCHEMA) -> bool:
    """Do the Iceberg tables the dashboard reads exist (asked to Trino)?"""
    names = ", ".join(f"'{table}'" for table in LAKE_TABLES)
    rows = query(
        f"SELECT count(*) AS n FROM iceberg.information_schema.tables "
        f"WHERE table_schema = '{schema}' AND table_name IN ({names})",
        settings,
    )
    return int(rows["n"].iloc[0]) == len(LAKE_TABLES)


def provision_dashboard(
    settings: Settings | None = None, schema: str = LAKE_SCHEMA, client: SupersetClient | None = None
) -> ProvisionResult:
    """Make Superset show the lake's dashboard: connection, datasets, charts, dashboard (idempotent)."""
    settings = settings or get_settings()
    client = client or SupersetClient.from_settings(settings)
    suffix = "" if schema == LAKE_SCHEMA else f" [{schema}]"

    # The connection to Trino, over HTTPS with its certificate
    database_id = upsert_trino_database(client, settings)

    # Physical datasets (exploration) and one virtual dataset per dashboard query
    dataset_ids = {table: upsert_physical_dataset(client, database_id, schema, table) for table in LAKE_TABLES}
    for spec in CHARTS:
        sql = dashboard_sql(spec.query_name, settings, schema=schema)
        name = f"dpe_{spec.query_name}"
        dataset_ids[spec.query_name] = upsert_virtual_dataset(client, database_id, schema, name, sql)

    # Charts, each with its saved query context
    titles = {spec.query_name: spec.title + suffix for spec in CHARTS}
    chart_ids = {
        spec.query_name: upsert_chart(client, spec, titles[spec.query_name], dataset_ids[spec.query_name])
        for spec in CHARTS
    }

    # The dashboard, then each chart attached to it
    title = dashboard_title(settings, schema)
    dashboard_id = upsert_dashboard(client, title, position_json(chart_ids, titles, title), settings, schema)
    for chart_id in chart_ids.values():
        client.request("PUT", f"/api/v1/chart/{chart_id}", json={"dashboards": [dashboard_id]})

    url = f"{settings.superset_url}/superset/dashboard/{dashboard_id}/"
    logger.info("dashboard %r provisioned: %s (%d charts)", title, url, len(chart_ids))
    return ProvisionResult(title, url, database_id, dashboard_id, dataset_ids, chart_ids)


def trino_certificate_text(settings: Settings) -> str:
    """Only the certificate part of Trino's PEM (never its private key)."""
    pem = certificate_path(settings).read_text(encoding="ascii")
    match = re.search(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", pem, re.DOTALL)
    if not match:
        raise ProvisioningError(f"no certificate in {certificate_path(settings)}")
    return match.group(0) + "\n"


def trino_sqlalchemy_uri(settings: Settings, password: str | None = None) -> str:
    user = quote(settings.trino_user, safe="")
    secret = quote(password if password is not None else settings.trino_password, safe="")
    return f"trino://{user}:{secret}@{settings.trino_host}:{settings.trino_port}/iceberg"


def upsert_trino_database(client: SupersetClient, settings: Settings) -> int:
    payload = {
        "database_name": DATABASE_NAME,
        "sqlalchemy_uri": trino_sqlalchemy_uri(settings),
        # Superset writes it to a file and passes http_scheme=https, verify=<file> to the driver
        "server_cert": trino_certificate_text(settings),
        "expose_in_sqllab": True,
        "allow_run_async": False,
        "allow_ctas": False,
        "allow_cvas": False,
        "allow_dml": False,
        "extra": json.dumps({"allows_virtual_table_explore": True, "engine_params": {"connect_args": {}}}),
    }
    return client.upsert("database", "database_name", DATABASE_NAME, payload)


def _find_dataset(client: SupersetClient, database_id: int, schema: str, table: str) -> dict[str, Any] | None:
    rison = (
        f"(filters:!((col:table_name,opr:eq,value:{rison_string(table)}),"
        f"(col:schema,opr:eq,value:{rison_string(schema)})),page_size:{PAGE_SIZE})"
    )
    result = client.request("GET", f"/api/v1/dataset/?q={quote(rison)}")["result"]
    matches = [item for item in result if item["table_name"] == table and item["database"]["id"] == database_id]
    return matches[0] if matches else None


def upsert_physical_dataset(client: SupersetClient, database_id: int, schema: str, table: str) -> int:
    existing = _find_dataset(client, database_id, schema, table)
    if existing:
        # Columns may have changed since (Spark job): read them again from Trino
        client.request("PUT", f"/api/v1/dataset/{existing['id']}/refresh")
        return int(existing["id"])
    payload = {"database": database_id, "schema": schema, "table_name": table}
    return int(client.request("POST", "/api/v1/dataset/", json=payload)["id"])


def upsert_virtual_dataset(client: SupersetClient, database_id: int, schema: str, name: str, sql: str) -> int:
    existing = _find_dataset(client, database_id, schema, name)
    if existing:
        client.request("PUT", f"/api/v1/dataset/{existing['id']}", json={"sql": sql})
        client.request("PUT", f"/api/v1/dataset/{existing['id']}/refresh")
        return int(existing["id"])
    payload = {"database": database_id, "schema": schema, "table_name": name, "sql": sql}
    return int(client.request("POST", "/api/v1/dataset/", json=payload)["id"])


def upsert_chart(client: SupersetClient, spec: ChartSpec, title: str, dataset_id: int) -> int:
    params = chart_params(spec, dataset_id)
    payload = {
        "slice_name": title,
        "viz_type": spec.viz_type,
        "datasource_id": dataset_id,
        "datasource_type": "table",
        "params": json.dumps(params),
        "query_context": json.dumps(chart_query_context(spec, dataset_id, params)),
        "query_context_generation": True,
    }
    return client.upsert("chart", "slice_name", title, payload)


def upsert_dashboard(
    client: SupersetClient, title: str, layout: dict[str, Any], settings: Settings, schema: str
) -> int:
    slug = f"dpe-{settings.dpe_department}" + ("" if schema == LAKE_SCHEMA else f"-{schema}")
    payload = {
        "dashboard_title": title,
        "slug": slug.replace("_", "-"),
        "published": True,
        "position_json": json.dumps(layout),
        "json_metadata": json.dumps({"refresh_frequency": 0, "color_scheme": "supersetColors"}),
    }
    return client.upsert("dashboard", "dashboard_title", title, payload)


# --- command line -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dpe_pipeline.superset", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    provision = sub.add_parser("provision", help="crée ou met à jour la connexion, les jeux de données et le tableau")
    provision.add_argument("--schema", default=LAKE_SCHEMA, help="namespace Iceberg lu (défaut : dpe)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    if not lake_tables_exist(settings, args.schema):
        print(f"Les tables iceberg.{args.schema}.logements et stats_commune_mois n'existent pas encore : "
              "lancez d'abord le job Spark.", file=sys.stderr)
        return 1
    result = provision_dashboard(settings, schema=args.schema)
    print(f"Tableau de bord « {result.title} » : {result.url} ({len(result.chart_ids)} graphiques)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
