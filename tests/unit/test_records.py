"""The v2 → current field names, typing and the bundled snapshot."""

import json

import pandas as pd
import pytest

from dpe_pipeline import records, snapshot


@pytest.mark.parametrize(
    ("v2_name", "current"),
    [
        ("N°DPE", "numero_dpe"),
        ("\ufeffN°DPE", "numero_dpe"),
        ("Date_réception_DPE", "date_reception_dpe"),
        ("Date_établissement_DPE", "date_etablissement_dpe"),
        ("Etiquette_DPE", "etiquette_dpe"),
        ("Code_postal_(BAN)", "code_postal_ban"),
        ("Code_INSEE_(BAN)", "code_insee_ban"),
        ("N°_département_(BAN)", "code_departement_ban"),
        ("N°_région_(BAN)", "code_region_ban"),
        ("Nom__commune_(BAN)", "nom_commune_ban"),
        ("Identifiant__BAN", "identifiant_ban"),
        ("Conso_5_usages_par_m²_é_primaire", "conso_5_usages_par_m2_ep"),
        ("Conso_5_usages/m²_é_finale", "conso_5_usages_par_m2_ef"),
        ("Conso_5_usages_é_finale", "conso_5_usages_ef"),
        ("Emission_GES_5_usages_par_m²", "emission_ges_5_usages_par_m2"),
        ("Coût_total_5_usages", "cout_total_5_usages"),
        ("Type_bâtiment", "type_batiment"),
        ("Année_construction", "annee_construction"),
        ("Type_énergie_n°1", "type_energie_n1"),
        ("N°_DPE_remplacé", "numero_dpe_remplace"),
        ("Ubat_W/m²_K", "ubat_w_par_m2_k"),
        ("Hauteur_sous-plafond", "hauteur_sous_plafond"),
        ("Adresse_brute", "adresse_brut"),
        ("Coordonnée_cartographique_X_(BAN)", "coordonnee_cartographique_x_ban"),
        ("numero_dpe", "numero_dpe"),
    ],
)
def test_current_field_name(v2_name, current):
    assert records.current_field_name(v2_name) == current


@pytest.mark.parametrize(
    ("insee", "department"),
    [("69123", "69"), ("01004", "01"), ("2A004", "2A"), ("2B033", "2B"), ("97411", "974"), (None, None), ("123", None)],
)
def test_department_from_commune(insee, department):
    assert records.department_from_commune(insee) == department


def test_department_from_postal_code_refuses_corsica():
    assert records.department_from_postal_code("69001") == "69"
    assert records.department_from_postal_code("20000") is None
    assert records.department_from_postal_code("97400") == "974"


def test_normalise_frame_types_dates_numbers_and_codes():
    raw = pd.DataFrame({
        "N°DPE": ["2174N0407083G", "2369E2430265M"],
        "date_reception_dpe": ["28/09/2021", "2023-07-19"],
        "Code_postal_(BAN)": ["01000", "69001"],
        "Surface_habitable_logement": ["67.3", None],
        "Année_construction": ["1945", None],
        "Etiquette_DPE": ["C", "E"],
        "vide": [None, None],
    })
    frame = records.normalise_frame(raw)
    assert frame["date_reception_dpe"].tolist() == ["2021-09-28", "2023-07-19"]
    assert frame["code_postal_ban"].tolist() == ["01000", "69001"]  # leading zero kept
    assert frame["surface_habitable_logement"].dtype == "float64"
    assert frame["annee_construction"].dtype == "Int64"
    assert frame["code_departement_ban"].tolist() == ["01", "69"]
    assert "vide" not in frame.columns


def test_unparsable_date_is_an_error():
    with pytest.raises(ValueError, match="date_reception_dpe"):
        records.normalise_frame(pd.DataFrame({"N°DPE": ["x"], "date_reception_dpe": ["31/02/20"]}))


def test_drop_duplicate_dpe_keeps_the_most_recent():
    frame = pd.DataFrame({
        "numero_dpe": ["A", "A", "B"],
        "date_reception_dpe": ["2023-01-02", "2023-05-01", "2023-01-01"],
        "etiquette_dpe": ["G", "C", "D"],
    })
    unique = records.drop_duplicate_dpe(frame)
    assert sorted(unique["numero_dpe"]) == ["A", "B"]
    assert unique.set_index("numero_dpe").loc["A", "etiquette_dpe"] == "C"


@pytest.mark.parametrize("dataset", snapshot.DATASETS)
def test_bundled_snapshot_is_typed_and_unique(dataset):
    frame = snapshot.load_dataset(dataset)
    assert frame["numero_dpe"].is_unique
    assert frame["numero_dpe"].str.fullmatch(r"\d{2}\d{2}[EN]\d{7}[A-Z]").all()
    assert set(frame["etiquette_dpe"].dropna()) <= set(records.LABELS)
    dates = frame["date_reception_dpe"].dropna()
    assert dates.str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    assert frame["code_departement_ban"].notna().all()
    assert all(column == records.current_field_name(column) for column in frame.columns)


def test_snapshot_manifest_matches_the_files():
    manifest = json.loads((snapshot.snapshot_dir() / "manifest.json").read_text())
    total = 0
    for dataset, entry in manifest["datasets"].items():
        assert len(snapshot.load_dataset(dataset)) == entry["records"]
        total += entry["records"]
    assert 30_000 < total < 32_000
    assert set(manifest["datasets"]["dpe03existant"]["departments"]) >= {"69", "48"}
    assert set(manifest["datasets"]["dpe02neuf"]["departments"]) == {"69", "74"}


def test_snapshot_rebuild_is_reproducible(tmp_path):
    source = snapshot.default_source_dir()
    if not source.is_dir():
        pytest.skip(f"sources CSV absentes ({source})")
    snapshot.write_snapshot(source, tmp_path)
    for dataset in snapshot.DATASETS:
        rebuilt = pd.read_parquet(tmp_path / f"{dataset}.parquet")
        pd.testing.assert_frame_equal(rebuilt, snapshot.load_dataset(dataset))
