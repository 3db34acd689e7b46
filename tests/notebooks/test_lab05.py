"""Lab 5 « Trino et Superset »: the solution queries and draws the lake, the untouched lab fails its checks kindly.

The lab builds its own data: its setup cell writes the learner's Iceberg namespace and raw
PostgreSQL schema from the bundled DPE (:func:`dpe_pipeline.lake_sample.build_sample_lake`,
replacing what is there), so these tests need the services, not the main job's
``lake.dpe.*``. What the learners create — tables, the view, the Superset dataset, chart
and dashboard — is removed afterwards.
"""

from __future__ import annotations

import re

import pytest
from notebook_cells import (
    assert_every_self_check_fails_kindly,
    assert_every_self_check_passes,
    assert_only_self_checks_fail,
    displayed_text,
    outputs_text,
)

from dpe_pipeline import checks as lab_checks
from dpe_pipeline import lakehouse, postgres, superset, trino_queries
from dpe_pipeline.settings import get_settings, project_dir

pytestmark = pytest.mark.notebooks

SOLUTION = project_dir() / "solutions" / "05_trino_superset.ipynb"
LAB = project_dir() / "labs" / "05_trino_superset.ipynb"
SELF_CHECKS = 7  # one per exercise
DEPARTMENT = "48"  # Lozère: the bundled records with costs and consumption (construction year often missing)
SOLUTION_LEARNER = "nbtest5"
LAB_LEARNER = "nbtest5_unfinished"
SERVICES = ("postgres", "minio", "trino", "trino-worker", "superset")
VIEW_NAME = "dpe_bi"


def chart_title(learner_id: str) -> str:
    return f"DPE par étiquette ({DEPARTMENT}) — {learner_id}"


def dashboard_title(learner_id: str) -> str:
    return f"Lab 5 — {learner_id}"


def superset_objects(client: superset.SupersetClient, resource: str, **equal: str) -> list[dict]:
    """Every object of ``/api/v1/<resource>/`` whose columns equal the given values."""
    filters = ",".join(
        f"(col:{column},opr:eq,value:{superset.rison_string(value)})" for column, value in equal.items()
    )
    found = client.request("GET", f"/api/v1/{resource}/", params={"q": f"(filters:!({filters}),page_size:100)"})
    return [item for item in found["result"] if all(item.get(column) == value for column, value in equal.items())]


def remove_learner_objects(learner_id: str) -> None:
    """Whatever lab 5 creates for a learner, in Superset, Trino (the view), Iceberg and PostgreSQL."""
    namespace = f"lab_{learner_id}"
    client = superset.SupersetClient.from_settings()
    chart = client.find("chart", "slice_name", chart_title(learner_id))
    if chart:
        client.request("DELETE", f"/api/v1/chart/{chart['id']}")
    dashboard = client.find("dashboard", "dashboard_title", dashboard_title(learner_id))
    if dashboard:
        client.request("DELETE", f"/api/v1/dashboard/{dashboard['id']}")
    for dataset in superset_objects(client, "dataset", schema=namespace, table_name=VIEW_NAME):
        client.request("DELETE", f"/api/v1/dataset/{dataset['id']}")
    if trino_queries.table_exists(f"{namespace}.{VIEW_NAME}"):
        trino_queries.query(f"DROP VIEW iceberg.{namespace}.{VIEW_NAME}")
    lakehouse.drop_namespace(namespace)
    connection = postgres.connect()
    try:
        postgres.drop_schema(connection, namespace)
    finally:
        connection.close()


@pytest.fixture(scope="module")
def solution_run(run_notebook, ensure_services):
    ensure_services(*SERVICES)
    run = run_notebook(SOLUTION, SOLUTION_LEARNER, parameters={"department": DEPARTMENT})
    print(f"{SOLUTION.name}: {run.seconds:.1f} s under papermill")
    yield run
    remove_learner_objects(SOLUTION_LEARNER)


@pytest.fixture(scope="module")
def lab_run(run_notebook, ensure_services):
    ensure_services(*SERVICES)
    run = run_notebook(LAB, LAB_LEARNER, allow_errors=True)
    yield run
    remove_learner_objects(LAB_LEARNER)


def count(sql: str) -> int:
    return int(trino_queries.query(sql)["n"].iloc[0])


# --- the solution -------------------------------------------------------------------


def test_solution_passes_every_self_check(solution_run):
    assert_every_self_check_passes(solution_run, SELF_CHECKS)


def test_solution_sees_the_coordinator_and_a_worker(solution_run):
    nodes = displayed_text(solution_run.cell("ex1"))
    assert "dpe-coordinator" in nodes and "dpe-worker" in nodes
    assert f"{get_settings().trino_url}/ui/" in outputs_text(solution_run.cell("web-ui"))


def test_solution_joins_every_raw_row_of_the_department_to_the_lake(solution_run):
    # One displayed row per label: index, label, nb_bruts, nb_dans_le_lac, cout_moyen_m2
    rows = re.findall(r"^\d+\s+([A-G])\s+(\d+)\s+(\d+)\s+[\d.]+$", displayed_text(solution_run.cell("ex2")), re.M)
    assert [label for label, _, _ in rows] == list("ABCDEFG")
    raw_rows = count(
        f"SELECT count(*) AS n FROM postgresql.lab_{SOLUTION_LEARNER}.dpe WHERE code_departement_ban = '{DEPARTMENT}'"
    )
    assert raw_rows > 1000
    assert sum(int(raw) for _, raw, _ in rows) == raw_rows
    assert all(raw == in_lake for _, raw, in_lake in rows)  # both tables come from the same records
    assert any(output.get("data", {}).get("image/png") for output in solution_run.cell("federated-plot")["outputs"])


def test_solution_reads_a_distributed_plan(solution_run):
    plan = outputs_text(solution_run.cell("ex3"))
    assert "Fragment" in plan and "postgresql:" in plan and "iceberg:" in plan and "Join[" in plan
    assert "CPU:" in outputs_text(solution_run.cell("explain-analyze"))


def test_solution_view_is_in_the_learner_namespace(solution_run):
    namespace = f"lab_{SOLUTION_LEARNER}"
    kind = trino_queries.query(
        "SELECT table_type FROM iceberg.information_schema.tables "
        f"WHERE table_schema = '{namespace}' AND table_name = '{VIEW_NAME}'"
    )
    assert list(kind["table_type"]) == ["VIEW"]
    in_view = count(f"SELECT count(*) AS n FROM iceberg.{namespace}.{VIEW_NAME}")
    in_table = count(f"SELECT count(*) AS n FROM iceberg.{namespace}.logements WHERE departement = '{DEPARTMENT}'")
    assert in_view == in_table > 0


def test_bi_view_check_refuses_wrong_views_with_a_french_hint(solution_run):
    # A newcomer's view passed once: 2 of the 9 columns and no department filter
    namespace = f"lab_{SOLUTION_LEARNER}"
    wrong = f"iceberg.{namespace}.dpe_bi_wrong"
    every_column = (
        "numero_dpe, commune, mois, etiquette_dpe, etiquette_dpe IN ('F', 'G') AS passoire, periode_construction, "
        "surface_habitable_logement, conso_5_usages_par_m2_ep, cout_par_m2"
    )
    mistakes = [
        ("numero_dpe, commune", "", "il manque"),
        (every_column, "", "filtrez"),
        (every_column.replace("etiquette_dpe IN ('F', 'G') AS passoire", "etiquette_dpe AS passoire"), "", "boolean"),
    ]
    try:
        for columns, where, hint in mistakes:
            trino_queries.query(
                f"CREATE OR REPLACE VIEW {wrong} AS SELECT {columns} FROM iceberg.{namespace}.logements {where}"
            )
            with pytest.raises(lab_checks.CheckFailed, match=hint):
                lab_checks.check_bi_view(wrong, namespace, DEPARTMENT)
    finally:
        trino_queries.query(f"DROP VIEW IF EXISTS {wrong}")


def test_solution_chart_is_in_superset_and_returns_its_rows(solution_run):
    client = superset.SupersetClient.from_settings()
    chart = client.find("chart", "slice_name", chart_title(SOLUTION_LEARNER))
    assert chart, "the learner's chart is missing in Superset"
    details = client.request("GET", f"/api/v1/chart/{chart['id']}")["result"]
    assert details["datasource_name_text"] == f"lab_{SOLUTION_LEARNER}.{VIEW_NAME}"
    assert [item["dashboard_title"] for item in details["dashboards"]] == [dashboard_title(SOLUTION_LEARNER)]
    rows = client.chart_data(chart["id"])
    assert sorted(row["etiquette_dpe"] for row in rows) == list("ABCDEFG")
    in_view = count(f"SELECT count(*) AS n FROM iceberg.lab_{SOLUTION_LEARNER}.{VIEW_NAME}")
    assert sum(row["nb_dpe"] for row in rows) == in_view


def test_solution_runs_again_without_duplicates(solution_run, run_notebook):
    # Find-or-create everywhere: a second run updates the same Superset objects
    client = superset.SupersetClient.from_settings()
    before = client.find("chart", "slice_name", chart_title(SOLUTION_LEARNER))["id"]
    rerun = run_notebook(SOLUTION, SOLUTION_LEARNER, parameters={"department": DEPARTMENT})
    assert f"Graphique n° {before} " in outputs_text(rerun.cell("ex7"))
    assert len(superset_objects(client, "chart", slice_name=chart_title(SOLUTION_LEARNER))) == 1
    assert len(superset_objects(client, "dashboard", dashboard_title=dashboard_title(SOLUTION_LEARNER))) == 1
    assert len(superset_objects(client, "dataset", schema=f"lab_{SOLUTION_LEARNER}", table_name=VIEW_NAME)) == 1


# --- the lab, as a student receives it ------------------------------------------------


def test_unfinished_lab_fails_each_self_check_with_a_french_hint(lab_run):
    assert_every_self_check_fails_kindly(lab_run, SELF_CHECKS, "À FAIRE", "api.headers")


def test_unfinished_lab_raises_only_in_its_self_checks(lab_run):
    # The plot, the EXPLAIN ANALYZE, the view's preview and the chart's rows wait for their exercise (⏳)
    waiting = assert_only_self_checks_fail(lab_run)
    assert {"federated-plot", "explain-analyze", "view-preview", "chart-data"} <= waiting


def test_unfinished_lab_creates_nothing_in_superset_nor_a_view(lab_run):
    client = superset.SupersetClient.from_settings()
    assert client.find("chart", "slice_name", chart_title(LAB_LEARNER)) is None
    assert client.find("dashboard", "dashboard_title", dashboard_title(LAB_LEARNER)) is None
    assert not trino_queries.table_exists(f"lab_{LAB_LEARNER}.{VIEW_NAME}")
