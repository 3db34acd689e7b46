"""The replay speaks the data-fair /lines protocol, 400s included."""

import pytest

from dpe_pipeline.replay import create_app
from dpe_pipeline.snapshot import load_dataset

LINES = "/data-fair/api/v1/datasets/dpe03existant/lines"


@pytest.fixture(scope="module")
def client():
    return create_app().test_client()


@pytest.fixture(scope="module")
def existing():
    return load_dataset("dpe03existant")


def get_json(client, url=LINES, **params):
    response = client.get(url, query_string=params)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def test_default_page_has_twelve_lines_and_technical_keys(client, existing):
    body = get_json(client)
    assert list(body) == ["total", "next", "results"]
    assert body["total"] == len(existing)
    assert len(body["results"]) == 12
    assert [hit["_i"] for hit in body["results"]] == list(range(12))
    assert all("_score" in hit for hit in body["results"])


def test_null_fields_are_left_out(client):
    hit = get_json(client, size=1)["results"][0]
    assert all(value is not None for value in hit.values() if value != hit["_score"])
    assert "annee_construction" not in hit  # null in the 69 extract


def test_select_restricts_fields(client):
    hits = get_json(client, size=5, select="numero_dpe,etiquette_dpe")["results"]
    assert {key for hit in hits for key in hit} == {"numero_dpe", "etiquette_dpe", "_i", "_score"}


def test_qs_department_and_date_range(client, existing):
    qs = 'code_departement_ban:"48" AND date_etablissement_dpe:[2022-01-01 TO 2022-12-31]'
    body = get_json(client, size=0, qs=qs)
    dates = existing["date_etablissement_dpe"]
    expected = ((existing["code_departement_ban"] == "48") & (dates >= "2022-01-01") & (dates <= "2022-12-31")).sum()
    assert body["total"] == expected > 0


@pytest.mark.parametrize(
    ("qs", "expected"),
    [
        ("code_departement_ban:(48 OR 07)", lambda f: f["code_departement_ban"].isin(["48", "07"])),
        ("code_postal_ban:6900*", lambda f: f["code_postal_ban"].str.startswith("6900")),
        ("_exists_:annee_construction", lambda f: f["annee_construction"].notna()),
        # NOT keeps the lines where the field is absent, as in Elasticsearch
        ("etiquette_dpe:G AND NOT type_batiment:maison", lambda f: (f["etiquette_dpe"] == "G")
         & ~(f["type_batiment"] == "maison").fillna(False)),
        ("conso_5_usages_par_m2_ep:{400 TO *]", lambda f: f["conso_5_usages_par_m2_ep"] > 400),
        ('nom_commune_ban:"Peyre en Aubrac"', lambda f: f["nom_commune_ban"] == "Peyre en Aubrac"),
    ],
)
def test_qs_syntax_subset(client, existing, qs, expected):
    assert get_json(client, size=0, qs=qs)["total"] == int(expected(existing).fillna(False).sum()) > 0


def test_field_filters_eq_and_in(client, existing):
    assert get_json(client, size=0, etiquette_dpe_eq="A")["total"] == (existing["etiquette_dpe"] == "A").sum()
    both = get_json(client, size=0, etiquette_dpe_in="F,G")["total"]
    assert both == existing["etiquette_dpe"].isin(["F", "G"]).sum()


def test_sort_descending_with_cursor_covers_every_line_once(client):
    params = {"size": 700, "sort": "-date_reception_dpe", "qs": 'code_departement_ban:"69"', "select": "numero_dpe"}
    body = get_json(client, **params)
    seen = [hit["numero_dpe"] for hit in body["results"]]
    while "next" in body:
        body = client.get(body["next"]).get_json()
        seen += [hit["numero_dpe"] for hit in body["results"]]
    assert len(seen) == len(set(seen)) == body["total"] == 19940
    full = get_json(client, size=50, sort="-date_reception_dpe", select="date_reception_dpe")["results"]
    dates = [hit["date_reception_dpe"] for hit in full]
    assert dates == sorted(dates, reverse=True)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"size": 10001}, '"size" cannot be more than 10000'),
        ({"size": 100, "page": 101}, '"size * page" cannot be more than 10000'),
        ({"select": "numero_dpe,Etiquette_DPE"}, "Impossible de sélectionner le champ Etiquette_DPE"),
        ({"sort": "inconnu"}, "Impossible de trier sur le champ inconnu"),
        ({"qs": "N°DPE:123"}, "Impossible d'appliquer un filtre sur le champ"),
        ({"qs": "code_departement_ban:[69 TO"}, 'la syntaxe du paramètre "qs" n\'est pas respectée'),
        ({"qs": 'nom_commune_ban:"Lyon'}, 'la syntaxe du paramètre "qs" n\'est pas respectée'),
        ({"champ_inconnu_eq": "1"}, "Impossible d'appliquer un filtre sur le champ champ_inconnu"),
        ({"after": "1,2,3"}, '"after" parameter is malformed'),
    ],
)
def test_bad_queries_get_the_api_400(client, params, message):
    response = client.get(LINES, query_string=params)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)


def test_the_window_edge_is_allowed(client):
    assert len(get_json(client, size=100, page=100)["results"]) == 100


def test_unknown_dataset_is_404(client):
    assert client.get("/data-fair/api/v1/datasets/dpe-v2-logements-existants/lines").status_code == 404


def test_each_dataset_under_its_own_id(client):
    url = "/data-fair/api/v1/datasets/dpe02neuf/lines"
    new_builds = get_json(client, url=url, size=0, qs="code_departement_ban:74")
    assert new_builds["total"] == len(load_dataset("dpe02neuf").query("code_departement_ban == '74'"))
    metadata = client.get("/data-fair/api/v1/datasets/dpe02neuf").get_json()
    assert metadata["count"] == len(load_dataset("dpe02neuf"))


def test_fault_injection_cycles_codes():
    app = create_app(fault_every=2, fault_codes=(429, 500))
    client = app.test_client()
    codes = [client.get(LINES, query_string={"size": 1}).status_code for _ in range(6)]
    assert codes == [200, 429, 200, 500, 200, 429]
    client.post("/_replay/faults", json={"every": 0})
    assert client.get(LINES).status_code == 200
