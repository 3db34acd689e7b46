"""Validation of the DPE messages read from Kafka, before they reach PostgreSQL.

A message is accepted when it is a JSON object whose main fields are well formed: a
13-character ``numero_dpe``, ISO ``YYYY-MM-DD`` dates that exist, labels A–G, surfaces
above zero, finite numbers, bounded strings. Every other field is kept as it came, only
bounded in size. A rejected message raises :class:`InvalidDpeMessage` whose ``reason``
says what is wrong; the consumer sends it to the dead-letter topic with that reason.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

logger = logging.getLogger(__name__)

#: A whole message above this size is refused before it is even parsed.
MAX_MESSAGE_BYTES = 256 * 1024
#: Longest string accepted in any field (real DPE fields stay under a few hundred characters).
MAX_STRING_CHARS = 4096
#: Longest field name, and most fields, accepted in one record.
MAX_FIELD_NAME_CHARS = 128
MAX_FIELDS = 1000

NUMERO_DPE_PATTERN = re.compile(r"^[0-9A-Z]{13}$")
ISO_DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")

#: The dates of a DPE, as ADEME names them.
DATE_FIELDS = (
    "date_etablissement_dpe",
    "date_reception_dpe",
    "date_visite_diagnostiqueur",
    "date_fin_validite_dpe",
    "date_derniere_modification_dpe",
)


class InvalidDpeMessage(ValueError):  # noqa: N818 - the name the issue and the labs use
    """A Kafka message that cannot be stored as a DPE; ``reason`` says why, in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _parse_iso_date(value: Any) -> Any:
    """Accept only ``YYYY-MM-DD`` strings naming a real day (no timestamps, no ``DD/MM/YYYY``)."""
    if value is None or isinstance(value, dt.date):
        return value
    if not isinstance(value, str) or not ISO_DATE_PATTERN.match(value):
        raise ValueError(f"expected an ISO date YYYY-MM-DD, got {_preview(value)}")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a valid calendar date") from None


IsoDate = Annotated[dt.date | None, BeforeValidator(_parse_iso_date)]
Label = Literal["A", "B", "C", "D", "E", "F", "G"]
Measure = Annotated[float | None, Field(allow_inf_nan=False)]
PositiveSurface = Annotated[float | None, Field(gt=0, allow_inf_nan=False)]
ShortCode = Annotated[str | None, Field(max_length=16)]
Text = Annotated[str | None, Field(max_length=MAX_STRING_CHARS)]


class DpeMessage(BaseModel):
    """The fields the pipeline types and relies on; any other ADEME field is kept as extra."""

    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True, allow_inf_nan=False)

    numero_dpe: str = Field(pattern=NUMERO_DPE_PATTERN.pattern)
    date_etablissement_dpe: IsoDate = None
    date_reception_dpe: IsoDate = None
    date_visite_diagnostiqueur: IsoDate = None
    date_fin_validite_dpe: IsoDate = None
    date_derniere_modification_dpe: IsoDate = None
    etiquette_dpe: Label | None = None
    etiquette_ges: Label | None = None
    type_batiment: Text = None
    surface_habitable_logement: PositiveSurface = None
    surface_habitable_immeuble: PositiveSurface = None
    conso_5_usages_par_m2_ep: Measure = None
    conso_5_usages_ep: Measure = None
    emission_ges_5_usages: Measure = None
    emission_ges_5_usages_par_m2: Measure = None
    cout_total_5_usages: Measure = None
    code_departement_ban: ShortCode = None
    code_insee_ban: ShortCode = None
    code_postal_ban: ShortCode = None
    nom_commune_ban: Text = None

    @field_validator("numero_dpe", mode="before")
    @classmethod
    def _strip_numero(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value


def validate_dpe_message(payload: bytes) -> dict[str, Any]:
    """Parse and check one Kafka message value; return the record with its main fields typed.

    Dates come back as :class:`datetime.date`, measures as ``float``; every other field is
    returned as it was in the JSON. Raises :class:`InvalidDpeMessage` with the reason.
    """
    document = _parse_json_object(payload)
    _check_every_value_bounded(document, payload)
    try:
        message = DpeMessage.model_validate(document)
    except ValidationError as error:
        raise InvalidDpeMessage(_describe_validation_error(error)) from None
    return message.model_dump()


def _parse_json_object(payload: bytes) -> dict[str, Any]:
    if payload is None:
        raise InvalidDpeMessage("empty message (no value)")
    if len(payload) > MAX_MESSAGE_BYTES:
        raise InvalidDpeMessage(f"message too large: {len(payload)} bytes > {MAX_MESSAGE_BYTES}")
    try:
        document = json.loads(payload, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError) as error:
        raise InvalidDpeMessage(f"not valid UTF-8 JSON: {error}") from None
    if not isinstance(document, dict):
        raise InvalidDpeMessage(f"expected a JSON object, got {type(document).__name__}")
    return document


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _check_every_value_bounded(document: dict[str, Any], payload: bytes) -> None:
    """Bound every field, typed or not: field count, names, string length, no NUL, no nesting."""
    if len(document) > MAX_FIELDS:
        raise InvalidDpeMessage(f"too many fields: {len(document)} > {MAX_FIELDS}")
    # No string is longer than the whole message, and JSON can only carry a NUL as the escape
    # \u0000: most messages need no look inside their strings at all.
    look_inside_strings = len(payload) > MAX_STRING_CHARS or b"\\u0000" in payload
    for name, value in document.items():
        if len(name) > MAX_FIELD_NAME_CHARS:
            raise InvalidDpeMessage(f"field name too long: {_preview(name)}")
        if isinstance(value, str):
            if look_inside_strings:
                _check_string(name, value)
        elif isinstance(value, dict | list):
            raise InvalidDpeMessage(f"field {name}: nested {type(value).__name__} not accepted (DPE records are flat)")
        elif isinstance(value, float) and not math.isfinite(value):
            raise InvalidDpeMessage(f"field {name}: number is not finite")
        if look_inside_strings and "\x00" in name:
            raise InvalidDpeMessage(f"field name {_preview(name)} contains a NUL character")


def _check_string(name: str, value: str) -> None:
    if len(value) > MAX_STRING_CHARS:
        raise InvalidDpeMessage(f"field {name}: string too long ({len(value)} > {MAX_STRING_CHARS} chars)")
    if "\x00" in value:
        raise InvalidDpeMessage(f"field {name}: string contains a NUL character")


def _describe_validation_error(error: ValidationError) -> str:
    """One line per wrong field, e.g. ``etiquette_dpe: Input should be 'A', 'B', … (got 'Z')``."""
    parts = []
    for item in error.errors(include_url=False):
        field = ".".join(str(part) for part in item["loc"]) or "record"
        message = item["msg"].removeprefix("Value error, ")
        got = "" if item["type"] == "missing" else f" (got {_preview(item.get('input'))})"
        parts.append(f"{field}: {message}{got}")
    return "; ".join(parts)


def _preview(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
