"""The labs' self-checks: placeholders never pass, mistakes get a precise French hint."""

import json

import matplotlib
import pandas as pd
import pytest

from dpe_pipeline import checks
from dpe_pipeline.checks import CheckFailed

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the headless backend

DEPARTMENT, YEAR = "69", 2023
ALL_LINES, DEPARTMENT_LINES, FILTER_LINES = 500, 40, 30
PLACEHOLDERS = [None, ..., [], {}, "", pd.DataFrame()]


@pytest.fixture(autouse=True)
def fake_api_total(monkeypatch):
    """The API's truth, without the API: totals for no filter, the department, the department + year."""

    def api_total(department=None, year=None):
        if department is None:
            return ALL_LINES
        return FILTER_LINES if year is not None else DEPARTMENT_LINES

    monkeypatch.setattr(checks, "api_total", api_total)


def make_records(count=FILTER_LINES, **extra):
    return [
        {
            "numero_dpe": f"2369E{index:07d}X",
            "date_reception_dpe": "2023-07-19",
            "code_departement_ban": DEPARTMENT,
            "code_postal_ban": "69001" if index % 2 else "69003",
            "etiquette_dpe": "ABCDEFG"[index % 7],
            **extra,
        }
        for index in range(count)
    ]


def make_frame(records=None):
    frame = pd.DataFrame(records if records is not None else make_records())
    frame["date_reception_dpe"] = pd.to_datetime(frame["date_reception_dpe"])
    return frame


class FakeResponse:
    def __init__(self, status_code, text):
        self.status_code, self.text = status_code, text

    def json(self):
        return json.loads(self.text)


def hint_of(check, *args, **kwargs) -> str:
    with pytest.raises(CheckFailed) as failure:
        check(*args, **kwargs)
    return failure.value.hint


# --- placeholders -------------------------------------------------------------------

CHECKS_WITH_PLACEHOLDER_FIRST = [
    lambda value: checks.check_first_page(value),
    lambda value: checks.check_window_error(value),
    lambda value: checks.check_filtered_page(value, DEPARTMENT, YEAR, ["numero_dpe"]),
    lambda value: checks.check_all_records(value, DEPARTMENT, YEAR),
    lambda value: checks.check_dataframe(value, DEPARTMENT, YEAR),
    lambda value: checks.check_label_plot(value),
    lambda value: checks.check_quality_report(value, 0, make_frame(), ["numero_dpe"]),
    lambda value: checks.check_quality_report(pd.DataFrame({"missing": [0]}), value, make_frame(), ["numero_dpe"]),
    lambda value: checks.check_client_records(value, make_records()),
    lambda value: checks.check_raw_saved(value, DEPARTMENT, YEAR),
]


@pytest.mark.parametrize("check", CHECKS_WITH_PLACEHOLDER_FIRST)
@pytest.mark.parametrize("placeholder", PLACEHOLDERS, ids=repr)
def test_no_check_passes_on_a_placeholder(check, placeholder):
    with pytest.raises(CheckFailed, match="complétez|vaut encore|devrait|doit"):
        check(placeholder)


def test_failure_renders_only_the_hint_in_jupyter():
    failure = CheckFailed("faites ceci.")
    assert isinstance(failure, AssertionError)
    (line,) = failure._render_traceback_()
    assert "Vérification échouée" in line and "faites ceci." in line


@pytest.mark.parametrize("placeholder", [*PLACEHOLDERS, False], ids=repr)
def test_a_display_cell_waits_for_its_exercise_without_an_error(placeholder, capsys):
    assert checks.ready({"total": 1}, placeholder, exercise=2) is False
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("⏳") and "l'exercice 2 : complétez-le" in line


@pytest.mark.parametrize("values", [(), ({"total": 1},), (0, True, "48", make_frame(), lambda: None)], ids=repr)
def test_a_display_cell_runs_once_its_exercise_is_done(values, capsys):
    assert checks.ready(*values, exercise="3") is True
    assert capsys.readouterr().out == ""


# --- lab 1 --------------------------------------------------------------------------


def test_first_page(capsys):
    page = {"total": ALL_LINES, "results": make_records(5)}
    checks.check_first_page(page)
    assert capsys.readouterr().out.startswith("✅")
    assert "size=5" in hint_of(checks.check_first_page, {"total": ALL_LINES, "results": make_records(12)})
    assert "aucun filtre" in hint_of(checks.check_first_page, {"total": 7, "results": make_records(5)})
    assert "response.json()" in hint_of(checks.check_first_page, FakeResponse(200, "{}"))


def test_window_error(capsys):
    checks.check_window_error(FakeResponse(400, '"size * page" cannot be more than 10000'))
    assert "10000" in capsys.readouterr().out
    assert "page × size" in hint_of(checks.check_window_error, FakeResponse(200, "{}"))
    assert "autre raison" in hint_of(checks.check_window_error, FakeResponse(400, "Impossible de trier"))
    assert "objet renvoyé" in hint_of(checks.check_window_error, {"total": 1})


def test_filtered_page_names_the_missing_filter(capsys):
    select = ["numero_dpe", "date_reception_dpe", "code_departement_ban", "code_postal_ban", "etiquette_dpe"]
    page = {"total": FILTER_LINES, "results": make_records(3, _i=1, _score=None)}
    checks.check_filtered_page(page, DEPARTMENT, YEAR, select)
    assert capsys.readouterr().out.startswith("✅")
    unfiltered = {"total": ALL_LINES, "results": make_records(3)}
    assert "Aucun filtre" in hint_of(checks.check_filtered_page, unfiltered, DEPARTMENT, YEAR, select)
    no_year = {"total": DEPARTMENT_LINES, "results": make_records(3)}
    assert "pas l'année" in hint_of(checks.check_filtered_page, no_year, DEPARTMENT, YEAR, select)
    assert "select" in hint_of(checks.check_filtered_page, page, DEPARTMENT, YEAR, ["numero_dpe"])
    outside = {"total": FILTER_LINES, "results": make_records(3, date_reception_dpe="2022-12-31")}
    assert "hors du filtre" in hint_of(checks.check_filtered_page, outside, DEPARTMENT, YEAR, select)


GOOD_QS = f"code_departement_ban:{DEPARTMENT} AND date_reception_dpe:[{YEAR}-01-01 TO {YEAR}-12-31]"


@pytest.mark.parametrize(
    "qs, hint",
    [
        (None, "`qs` vaut encore None"),
        # Same result in the replay (every Rhône DPE is from 2023), still a wrong filter
        (f"code_departement_ban:{DEPARTMENT}", "l'année de réception"),
        (f"date_reception_dpe:[{YEAR}-01-01 TO {YEAR}-12-31]", "département"),
        (f"code_departement_ban:{DEPARTMENT} AND date_reception_dpe:[2022-01-01 TO 2022-12-31]", "l'année 2023"),
    ],
)
def test_filtered_page_reads_the_filter_itself(qs, hint):
    select = ["numero_dpe", "date_reception_dpe", "code_departement_ban", "code_postal_ban", "etiquette_dpe"]
    page = {"total": FILTER_LINES, "results": make_records(3)}
    assert hint in hint_of(checks.check_filtered_page, page, DEPARTMENT, YEAR, select, qs=qs)


def test_filtered_page_accepts_the_filter_with_both_conditions(capsys):
    select = ["numero_dpe", "date_reception_dpe", "code_departement_ban", "code_postal_ban", "etiquette_dpe"]
    page = {"total": FILTER_LINES, "results": make_records(3)}
    for qs in (GOOD_QS, f"date_reception_dpe:[{YEAR}-01-01 TO {YEAR}-12-31]  AND  code_departement_ban:{DEPARTMENT}"):
        checks.check_filtered_page(page, DEPARTMENT, YEAR, select, qs=qs)
    assert capsys.readouterr().out.count("✅") == 2


def test_all_records_explains_short_and_repeated_reads(capsys):
    checks.check_all_records(make_records(), DEPARTMENT, YEAR)
    assert "30" in capsys.readouterr().out
    assert "next" in hint_of(checks.check_all_records, make_records(10), DEPARTMENT, YEAR)
    repeated = make_records(20) + make_records(20)
    assert "params" in hint_of(checks.check_all_records, repeated, DEPARTMENT, YEAR)
    pages = [{"results": make_records(2)}]
    assert "extend" in hint_of(checks.check_all_records, pages * FILTER_LINES, DEPARTMENT, YEAR)


def test_dataframe():
    checks.check_dataframe(make_frame(), DEPARTMENT, YEAR)
    raw_dates = pd.DataFrame(make_records())
    assert "pd.to_datetime" in hint_of(checks.check_dataframe, raw_dates, DEPARTMENT, YEAR)
    technical = make_frame(make_records(_score=None))
    assert "_score" in hint_of(checks.check_dataframe, technical, DEPARTMENT, YEAR)
    assert "lignes au lieu" in hint_of(checks.check_dataframe, make_frame(make_records(3)), DEPARTMENT, YEAR)


def label_axes(colors=checks.DPE_LABEL_COLORS, order="ABCDEFG", title="Étiquettes"):
    table = pd.crosstab(make_frame()["code_postal_ban"], make_frame()["etiquette_dpe"]).reindex(columns=list(order))
    ax = table.plot(kind="barh", stacked=True, color=colors)
    ax.set_title(title)
    ax.set_xlabel("DPE")
    return ax


def test_label_plot():
    checks.check_label_plot(label_axes())
    checks.check_label_plot(label_axes().figure)
    assert "couleurs" in hint_of(checks.check_label_plot, label_axes(colors=None))
    assert "réordonnez" in hint_of(checks.check_label_plot, label_axes(order="GFEDCBA"))
    assert "titre" in hint_of(checks.check_label_plot, label_axes(title=""))
    _, empty_ax = plt.subplots()
    assert "A…G" in hint_of(checks.check_label_plot, empty_ax)
    plt.close("all")


def test_quality_report():
    fields = ["numero_dpe", "etiquette_dpe", "nom_commune_ban"]
    frame = make_frame()
    missing = frame.reindex(columns=fields).isna().sum()
    report = pd.DataFrame({"missing": missing, "missing_pct": missing / len(frame) * 100})
    checks.check_quality_report(report, 0, frame, fields)
    assert "reindex" in hint_of(checks.check_quality_report, report.drop(index="nom_commune_ban"), 0, frame, fields)
    as_share = report.assign(missing_pct=report["missing_pct"] / 100)
    assert "pourcentage" in hint_of(checks.check_quality_report, as_share, 0, frame, fields)
    twice = make_frame(make_records() + make_records(2))
    missing_twice = twice.reindex(columns=fields).isna().sum()
    report_twice = pd.DataFrame({"missing": missing_twice, "missing_pct": missing_twice / len(twice) * 100})
    checks.check_quality_report(report_twice, 2, twice, fields)
    assert "keep=False" in hint_of(checks.check_quality_report, report_twice, 4, twice, fields)


def test_client_records():
    checks.check_client_records(make_records(), make_records())
    checks.check_client_records(make_frame(), make_records())
    assert "diffèrent" in hint_of(checks.check_client_records, make_records(3), make_records())


def test_raw_saved(tmp_path, monkeypatch):
    monkeypatch.setattr(checks, "raw_dir", lambda: tmp_path / "lab_demo")
    good = tmp_path / "lab_demo" / "dpe_69_2023.jsonl"
    assert "espace de lab" in hint_of(checks.check_raw_saved, tmp_path / "dpe_69_2023.jsonl", DEPARTMENT, YEAR)
    assert "nommez" in hint_of(checks.check_raw_saved, good.with_name("data.jsonl"), DEPARTMENT, YEAR)
    assert "n'existe pas" in hint_of(checks.check_raw_saved, good, DEPARTMENT, YEAR)

    good.parent.mkdir()
    good.write_text("".join(json.dumps(r) + "\n" for r in make_records(10)), encoding="utf-8")
    assert "enregistrez `records` en entier" in hint_of(checks.check_raw_saved, good, DEPARTMENT, YEAR)
    good.write_text(json.dumps(make_records()), encoding="utf-8")  # one JSON array, not JSON Lines
    assert "un seul objet" in hint_of(checks.check_raw_saved, good, DEPARTMENT, YEAR)
    good.write_text("{not json\n", encoding="utf-8")
    assert "JSON valide" in hint_of(checks.check_raw_saved, good, DEPARTMENT, YEAR)
    good.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in make_records()), encoding="utf-8")
    checks.check_raw_saved(good, DEPARTMENT, YEAR)

    as_parquet = good.with_suffix(".parquet")
    pd.DataFrame(make_records()).to_parquet(as_parquet)
    checks.check_raw_saved(str(as_parquet), DEPARTMENT, YEAR)


def test_too_many_distinct_records_point_at_the_filter():
    wider = make_records(FILTER_LINES + 5)
    assert "filtre `qs`" in hint_of(checks.check_all_records, wider, DEPARTMENT, YEAR)


@pytest.mark.parametrize(("mode", "matches"), [("replay", False), ("live", True)])
def test_totals_may_drift_slightly_only_on_the_live_api(monkeypatch, mode, matches):
    from types import SimpleNamespace

    from dpe_pipeline import settings

    monkeypatch.setattr(settings, "get_settings", lambda: SimpleNamespace(ademe_mode=mode))
    assert checks.same_total(19_940, 19_940)
    assert checks.same_total(19_945, 19_940) is matches
    assert not checks.same_total(10_000, 19_940)


def test_an_empty_scope_is_reported_as_such(monkeypatch):
    monkeypatch.setattr(checks, "api_total", lambda department=None, year=None: 0 if year else ALL_LINES)
    page = {"total": 0, "results": []}
    assert "aucun DPE ne correspond" in hint_of(checks.check_filtered_page, page, "48", 2023, ["numero_dpe"])


# --- lab 5: the BI view -----------------------------------------------------------------

BI_NAMESPACE, BI_VIEW = "lab_me", "iceberg.lab_me.dpe_bi"


def fake_trino(monkeypatch, columns, view_rows, department_rows=5_076, wrong_passoire=0):
    """Trino's answers about the learner's view, without Trino."""

    def rows(sql):
        if "information_schema.tables" in sql:
            return pd.DataFrame({"table_type": ["VIEW"]})
        if "information_schema.columns" in sql:
            return pd.DataFrame({"column_name": list(columns), "data_type": list(columns.values())})
        if "IS DISTINCT FROM" in sql:
            return pd.DataFrame({"n": [wrong_passoire]})
        if "logements WHERE departement" in sql:
            return pd.DataFrame({"n": [department_rows]})
        return pd.DataFrame({"n": [view_rows]})

    monkeypatch.setattr(checks, "_trino_rows", rows)


GOOD_BI_COLUMNS = {column: (kind or "varchar") for column, kind in checks.BI_VIEW_COLUMNS.items()}


def test_bi_view_with_every_column_and_the_department_passes(monkeypatch, capsys):
    fake_trino(monkeypatch, GOOD_BI_COLUMNS, view_rows=5_076)
    checks.check_bi_view(BI_VIEW, BI_NAMESPACE, "48")
    assert "✅" in capsys.readouterr().out


def test_bi_view_with_two_columns_is_refused(monkeypatch):
    # The newcomer's view: SELECT numero_dpe, commune FROM logements (no filter)
    fake_trino(monkeypatch, {"numero_dpe": "varchar", "commune": "varchar"}, view_rows=25_023)
    hint = hint_of(checks.check_bi_view, BI_VIEW, BI_NAMESPACE, "48")
    assert "il manque" in hint and "passoire" in hint and "cout_par_m2" in hint


def test_bi_view_without_the_department_filter_is_refused(monkeypatch):
    fake_trino(monkeypatch, GOOD_BI_COLUMNS, view_rows=25_023)
    hint = hint_of(checks.check_bi_view, BI_VIEW, BI_NAMESPACE, "48")
    assert "25" in hint and "5" in hint and "département 48" in hint and "filtrez" in hint


def test_bi_view_with_a_text_passoire_is_refused(monkeypatch):
    fake_trino(monkeypatch, {**GOOD_BI_COLUMNS, "passoire": "varchar(1)"}, view_rows=5_076)
    hint = hint_of(checks.check_bi_view, BI_VIEW, BI_NAMESPACE, "48")
    assert "passoire" in hint and "boolean" in hint


def test_bi_view_with_a_wrong_passoire_is_refused(monkeypatch):
    fake_trino(monkeypatch, {**GOOD_BI_COLUMNS, "passoire": "boolean"}, view_rows=5_076, wrong_passoire=12)
    hint = hint_of(checks.check_bi_view, BI_VIEW, BI_NAMESPACE, "48")
    assert "F et G" in hint


# --- the services a lab needs -------------------------------------------------------------


def closed_port() -> int:
    """A local TCP port nobody listens on (bound then released)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_require_services_names_the_unreachable_service_in_french(monkeypatch):
    import time
    from types import SimpleNamespace

    port = closed_port()
    settings = SimpleNamespace(
        postgres_host="127.0.0.1", postgres_port=port, kafka_bootstrap_servers=f"127.0.0.1:{port}"
    )
    started = time.perf_counter()
    hint = hint_of(checks.require_services, "kafka", "postgres", settings=settings)
    assert time.perf_counter() - started < 5
    assert f"Kafka (127.0.0.1:{port})" in hint and f"PostgreSQL (127.0.0.1:{port})" in hint
    assert "./dpe up" in hint and "docker compose up -d" in hint


def test_require_services_passes_when_the_port_listens_and_skips_the_live_api():
    import socket
    from types import SimpleNamespace

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        settings = SimpleNamespace(postgres_host="127.0.0.1", postgres_port=server.getsockname()[1], ademe_mode="live")
        checks.require_services("postgres", "ademe", settings=settings)


def test_require_services_rejects_an_unknown_name():
    with pytest.raises(ValueError):
        checks.require_services("mongodb")
