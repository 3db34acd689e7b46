"""The Spark transformations on small frames, in a local session (no cluster, no catalog)."""

import datetime as dt
import json

import pytest

pyspark = pytest.importorskip("pyspark")

from dpe_pipeline import spark_jobs  # noqa: E402

# The columns and types of raw.dpe that the job reads
RAW_SCHEMA = (
    "numero_dpe string, date_etablissement_dpe date, date_reception_dpe date, date_derniere_modification_dpe date, "
    "etiquette_dpe string, etiquette_ges string, type_batiment string, surface_habitable_logement double, "
    "conso_5_usages_par_m2_ep double, emission_ges_5_usages_par_m2 double, cout_total_5_usages double, "
    "code_departement_ban string, code_insee_ban string, code_postal_ban string, nom_commune_ban string, "
    "payload string"
)


def raw_row(numero, etiquette="D", surface=50.0, reception="2023-07-19", etablissement="2023-07-10",
            modification=None, insee="69123", commune="Lyon", cout=1000.0, annee=None, conso=200.0, department="69"):
    payload = {"numero_dpe": numero}
    if annee is not None:
        payload["annee_construction"] = annee
    return (
        numero, dt.date.fromisoformat(etablissement) if etablissement else None,
        dt.date.fromisoformat(reception) if reception else None,
        dt.date.fromisoformat(modification) if modification else None, etiquette, "C", "appartement", surface,
        conso, 30.0, cout, department, insee, "69001", commune, json.dumps(payload),
    )


@pytest.fixture(scope="module")
def spark():
    session = spark_jobs.local_session("dpe-unit-tests")
    yield session
    session.stop()


def frame(spark, rows):
    return spark.createDataFrame(rows, RAW_SCHEMA)


def test_clean_keeps_valid_rows_and_quarantines_the_rest_with_reasons(spark):
    rows = [
        raw_row("2369E0000001A"),
        raw_row("2369E0000002B", etiquette="H"),
        raw_row("2369E0000003C", surface=-12.0),
        raw_row("2369E0000004D", conso=99_999.0),
        raw_row("2369E0000005E", reception="2023-01-01", etablissement="2023-02-01"),
        raw_row("2369E0000006F", surface=None, etiquette=None),  # absent values are not errors
    ]
    valid, rejected = spark_jobs.clean_dpe(frame(spark, rows))
    assert sorted(r.numero_dpe for r in valid.collect()) == ["2369E0000001A", "2369E0000006F"]
    reasons = {r.numero_dpe: r.raisons for r in rejected.collect()}
    assert reasons == {
        "2369E0000002B": ["etiquette_dpe hors A-G"],
        "2369E0000003C": ["surface_habitable_logement hors [1, 5000]"],
        "2369E0000004D": ["conso_5_usages_par_m2_ep hors [0, 5000]"],
        "2369E0000005E": ["établi après sa réception"],
    }
    assert valid.count() + rejected.count() == len(rows)


def test_several_reasons_are_all_kept(spark):
    _, rejected = spark_jobs.clean_dpe(frame(spark, [raw_row("2369E0000007G", etiquette="Z", surface=0.0)]))
    assert sorted(rejected.first().raisons) == ["etiquette_dpe hors A-G", "surface_habitable_logement hors [1, 5000]"]


def test_enrich_adds_the_analysis_columns(spark):
    rows = [raw_row("2369E0000001A", etiquette="F", surface=40.0, cout=1200.0, annee=1965),
            raw_row("2369E0000002B", etiquette="B", insee="97411", department=None, commune=None, annee=2023)]
    valid, _ = spark_jobs.clean_dpe(frame(spark, rows))
    enriched = {r.numero_dpe: r for r in spark_jobs.enrich_dpe(valid).collect()}
    first, second = enriched["2369E0000001A"], enriched["2369E0000002B"]
    assert (first.annee, first.mois) == (2023, dt.date(2023, 7, 1))
    assert first.periode_construction == "1948-1974"
    assert first.cout_par_m2 == 30.0
    assert first.rang_etiquette == 6
    assert first.commune == "Lyon"
    assert second.departement == "974"  # derived from the INSEE code
    assert second.commune == "97411"
    assert second.periode_construction == "après 2021"
    assert second.rang_etiquette == 2


def test_construction_period_boundaries(spark):
    years = [1947, 1948, 1974, 1975, 2000, 2001, 2021, 2022, None]
    df = spark.createDataFrame([(y, None) for y in years], "annee int, periode string")
    labels = [r[0] for r in df.select(spark_jobs.construction_period(df.annee, df.periode)).collect()]
    assert labels == ["avant 1948", "1948-1974", "1948-1974", "1975-1977", "1989-2000", "2001-2005", "2013-2021",
                      "après 2021", None]


def test_latest_per_dpe_keeps_the_newest_version(spark):
    rows = [
        raw_row("2369E0000001A", etiquette="G", etablissement="2023-01-10", reception="2023-01-12"),
        raw_row("2369E0000001A", etiquette="C", etablissement="2023-06-10", reception="2023-06-12"),
        raw_row("2369E0000001A", etiquette="E", etablissement="2023-03-10", reception="2023-03-12",
                modification="2023-03-30"),
        raw_row("2369E0000002B"),
    ]
    valid, _ = spark_jobs.clean_dpe(frame(spark, rows))
    latest = {r.numero_dpe: r.etiquette_dpe for r in spark_jobs.latest_per_dpe(valid).collect()}
    # the last modification date wins over the establishment date, as in the raw upsert
    assert latest == {"2369E0000001A": "E", "2369E0000002B": "D"}


def test_commune_month_stats(spark):
    rows = [raw_row(f"2369E000000{i}A", etiquette=label) for i, label in enumerate("FGCD")]
    rows.append(raw_row("2369E0000009B", etiquette="A", reception="2023-08-02", etablissement="2023-08-01"))
    valid, _ = spark_jobs.clean_dpe(frame(spark, rows))
    stats = {(r.commune, r.mois): r for r in spark_jobs.commune_month_stats(spark_jobs.enrich_dpe(valid)).collect()}
    july = stats[("Lyon", dt.date(2023, 7, 1))]
    assert (july.nb_dpe, july.nb_f, july.nb_g, july.nb_a, july.part_passoires) == (4, 1, 1, 0, 0.5)
    assert stats[("Lyon", dt.date(2023, 8, 1))].nb_a == 1


def test_lake_conf_uses_path_style_and_the_shared_catalog():
    conf = spark_jobs.lake_conf(spark_jobs.LakeConfig(
        "jdbc:postgresql://127.0.0.1:5432/iceberg", "dpe", "secret", "http://127.0.0.1:9000", "key", "secret-key"))
    assert conf["spark.sql.catalog.lake.s3.path-style-access"] == "true"
    assert conf["spark.sql.catalog.lake.type"] == "jdbc"
    assert conf["spark.sql.catalog.lake.jdbc.schema-version"] == "V1"
    assert conf["spark.sql.catalog.lake.io-impl"] == "org.apache.iceberg.aws.s3.S3FileIO"


def test_content_hash_ignores_technical_columns_and_sees_every_value_change(spark):
    rows = [raw_row("2369E0000001A"), raw_row("2369E0000001A"), raw_row("2369E0000001A", surface=51.0)]
    df = frame(spark, rows).withColumn("ingested_at", spark_jobs.F.current_timestamp())
    hashes = [r.empreinte for r in spark_jobs.with_content_hash(df).collect()]
    assert hashes[0] == hashes[1] != hashes[2]


def test_logements_rows_have_the_table_columns_a_hash_and_a_timestamp(spark):
    valid, _ = spark_jobs.clean_dpe(frame(spark, [raw_row("2369E0000001A", annee=1990)]))
    rows = spark_jobs.logements_rows(spark_jobs.latest_per_dpe(spark_jobs.enrich_dpe(valid)))
    assert rows.columns[0] == "numero_dpe" and rows.columns[-2:] == ["empreinte", "mis_a_jour_le"]
    assert "payload" not in rows.columns and "periode_construction" in rows.columns


def test_quarantine_rows_keep_the_reasons_and_the_payload(spark):
    _, rejected = spark_jobs.clean_dpe(frame(spark, [raw_row("2369E0000002B", surface=0.0)]))
    row = spark_jobs.quarantine_rows(rejected).first()
    assert row.raisons == ["surface_habitable_logement hors [1, 5000]"]
    assert json.loads(row.payload)["numero_dpe"] == "2369E0000002B" and len(row.empreinte) == 64


def test_tables_of_a_namespace():
    tables = spark_jobs.LakehouseTables("lab_marie")
    assert (tables.logements, tables.stats, tables.quarantine) == (
        "lake.lab_marie.logements", "lake.lab_marie.stats_commune_mois", "lake.lab_marie.quarantaine")
