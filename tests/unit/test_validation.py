"""Validation of the DPE messages the consumer reads from Kafka."""

import datetime as dt
import json

import pytest

from dpe_pipeline.validation import MAX_STRING_CHARS, InvalidDpeMessage, validate_dpe_message


def message(**fields) -> bytes:
    record = {"numero_dpe": "2369E2430265M", "date_reception_dpe": "2023-07-19", "etiquette_dpe": "E"}
    record.update(fields)
    return json.dumps({key: value for key, value in record.items() if value is not ...}).encode()


def reason_of(payload: bytes) -> str:
    with pytest.raises(InvalidDpeMessage) as caught:
        validate_dpe_message(payload)
    return caught.value.reason


def test_a_real_record_is_typed_and_keeps_its_other_fields():
    record = validate_dpe_message(
        message(surface_habitable_logement=43.9, code_departement_ban="69", code_postal_ban=69001,
                type_energie_n1="Électricité", _score=None)
    )
    assert record["date_reception_dpe"] == dt.date(2023, 7, 19)
    assert record["surface_habitable_logement"] == 43.9
    assert record["code_postal_ban"] == "69001"
    assert record["type_energie_n1"] == "Électricité"
    assert record["etiquette_ges"] is None


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"not json at all", "not valid UTF-8 JSON"),
        (b"\xff\xfe", "not valid UTF-8 JSON"),
        (b"[1, 2]", "expected a JSON object, got list"),
        (b'{"numero_dpe": "2369E2430265M", "surface_habitable_logement": NaN}', "NaN is not a JSON number"),
        (message(numero_dpe=...), "numero_dpe: Field required"),
        (message(numero_dpe="2369E24"), "numero_dpe: String should match pattern"),
        (message(date_reception_dpe="19/07/2023"), "date_reception_dpe: expected an ISO date YYYY-MM-DD"),
        (message(date_reception_dpe="2023-02-30"), "'2023-02-30' is not a valid calendar date"),
        (message(date_etablissement_dpe=20230719), "expected an ISO date YYYY-MM-DD, got 20230719"),
        (message(etiquette_dpe="H"), "etiquette_dpe: Input should be 'A', 'B'"),
        (message(etiquette_ges="a"), "etiquette_ges: Input should be"),
        (message(surface_habitable_logement=-12.5), "surface_habitable_logement: Input should be greater than 0"),
        (message(surface_habitable_logement=0), "greater than 0"),
        (message(adresse_ban="x" * (MAX_STRING_CHARS + 1)), "field adresse_ban: string too long"),
        (message(nom_commune_ban="Lyon\u0000"), "string contains a NUL character"),
        (message(extra={"nested": 1}), "nested dict not accepted"),
        (message(payload="x" * 1_000_000), "message too large"),
    ],
)
def test_malformed_messages_are_refused_with_a_reason(payload, expected):
    assert expected in reason_of(payload)


def test_every_wrong_field_is_listed_in_the_reason():
    reason = reason_of(message(etiquette_dpe="Z", date_reception_dpe="hier"))
    assert "etiquette_dpe" in reason and "date_reception_dpe" in reason


def test_missing_optional_fields_are_fine():
    assert validate_dpe_message(b'{"numero_dpe": "2174N0407083G"}')["numero_dpe"] == "2174N0407083G"


def test_no_value_is_refused():
    assert reason_of(None) == "empty message (no value)"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'{"numero_dpe": "2369E2430265M", "' + b"n" * 200 + b'": 1}', "field name too long"),
        (b'{"numero_dpe": "2369E2430265M", "a\\u0000b": 1}', "contains a NUL character"),
        (b'{"numero_dpe": "2369E2430265M", "x": 1e400}', "field x: number is not finite"),
    ],
)
def test_field_names_and_numbers_are_bounded_in_small_messages_too(payload, expected):
    assert expected in reason_of(payload)


def test_an_escaped_backslash_before_u0000_is_not_a_nul():
    assert validate_dpe_message(b'{"numero_dpe": "2369E2430265M", "note": "\\\\u0000"}')["note"] == "\\u0000"
