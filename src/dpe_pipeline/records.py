"""The DPE record: field names, types and normalisation.

ADEME renamed its DPE datasets in 2024-25: ``dpe-v2-logements-existants`` (French headers
such as ``N°DPE`` or ``Code_postal_(BAN)``) became ``dpe03existant`` with snake_case keys
(``numero_dpe``, ``code_postal_ban``). This module converts the old names to the current
ones, types the values (ISO dates, numbers, codes kept as strings) and derives the
department when a source left it out.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable

import pandas as pd

logger = logging.getLogger(__name__)

#: Old v2 names whose current key is not what the generic rule gives (ADEME-API.md §5).
V2_NAME_OVERRIDES = {
    "N°DPE": "numero_dpe",
    "N°_département_(BAN)": "code_departement_ban",
    "N°_région_(BAN)": "code_region_ban",
    "Adresse_brute": "adresse_brut",
}

#: Current keys that look numeric but are identifiers: always kept as strings.
STRING_FIELDS = re.compile(r"^(numero_|code_|identifiant_|invariant_|_geopoint$|adresse|nom_|complement|cage)")
#: Whole-number fields stored as nullable integers.
INTEGER_FIELDS = {"annee_construction", "nombre_appartement", "nombre_niveau_immeuble", "nombre_niveau_logement"}
DATE_FIELD_PREFIX = "date_"
LABELS = ("A", "B", "C", "D", "E", "F", "G")


def current_field_name(v2_name: str) -> str:
    """The ``dpe03existant`` key of a v2 column name.

    Example: ``Conso_5_usages/m²_é_finale`` → ``conso_5_usages_par_m2_ef``.
    """
    name = v2_name.lstrip("\ufeff")
    if name in V2_NAME_OVERRIDES:
        return V2_NAME_OVERRIDES[name]
    if name == name.lower() and re.fullmatch(r"[a-z0-9_]+", name):
        return name  # already a current key
    name = name.replace("/m²", "_par_m2").replace("m²", "m2").replace("(0/1)", "")
    name = re.sub(r"é_primaire", "ep", name)
    name = re.sub(r"é_finale", "ef", name)
    name = re.sub(r"^N°_?", "numero_", name)
    name = name.replace("n°", "n").replace("N°", "n")
    name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii").lower()
    name = re.sub(r"[^a-z0-9]+", "_", name).strip("_")
    return name


def department_from_commune(code_insee: str | None) -> str | None:
    """Department of an INSEE commune code: ``69123`` → ``69``, ``2A004`` → ``2A``, ``97411`` → ``974``."""
    if not isinstance(code_insee, str) or len(code_insee) != 5:
        return None
    return code_insee[:3] if code_insee.startswith("97") else code_insee[:2]


def department_from_postal_code(code_postal: str | None) -> str | None:
    """Department of a postal code when it is unambiguous (not Corsica's ``20xxx``)."""
    if not isinstance(code_postal, str) or not re.fullmatch(r"\d{5}", code_postal):
        return None
    if code_postal.startswith("20"):
        return None
    return code_postal[:3] if code_postal.startswith("97") else code_postal[:2]


def _parse_dates(values: pd.Series) -> pd.Series:
    """ISO ``YYYY-MM-DD`` strings from ISO or ``DD/MM/YYYY`` inputs; unparsable values raise."""
    text = values.astype("string").str.strip()
    iso = pd.to_datetime(text.where(text.str.match(r"^\d{4}-\d{2}-\d{2}")), format="%Y-%m-%d", errors="coerce")
    french = pd.to_datetime(text.where(text.str.match(r"^\d{2}/\d{2}/\d{4}$")), format="%d/%m/%Y", errors="coerce")
    parsed = iso.fillna(french)
    bad = text.notna() & parsed.isna()
    if bad.any():
        raise ValueError(f"unparsable dates in {values.name!r}: {text[bad].head(3).tolist()}")
    return parsed.dt.strftime("%Y-%m-%d").astype("string")


def _type_column(values: pd.Series) -> pd.Series:
    name = str(values.name)
    if name.startswith(DATE_FIELD_PREFIX):
        return _parse_dates(values)
    text = values.astype("string").str.strip().replace({"": pd.NA, "NA": pd.NA})
    if STRING_FIELDS.match(name):
        return text
    numbers = pd.to_numeric(text, errors="coerce")
    if (text.notna() & numbers.isna()).any():
        return text  # a genuinely textual column
    if name in INTEGER_FIELDS:
        return numbers.round().astype("Int64")
    return numbers.astype("float64")


def normalise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Rename to current keys, type every column, derive the department, drop empty and technical columns."""
    frame = frame.rename(columns={column: current_field_name(column) for column in frame.columns})
    frame = frame.drop(columns=[c for c in frame.columns if c in {"", "_score"} or c.startswith("unnamed")])
    frame = frame.dropna(axis="columns", how="all")
    frame = frame.apply(_type_column)
    return fill_department(frame)


def fill_department(frame: pd.DataFrame) -> pd.DataFrame:
    """Fill ``code_departement_ban`` from the INSEE code, else the postal code, where the source lacks it."""
    department = frame.get("code_departement_ban", pd.Series(pd.NA, index=frame.index, dtype="string"))
    if "code_insee_ban" in frame:
        department = department.fillna(frame["code_insee_ban"].map(department_from_commune))
    if "code_postal_ban" in frame:
        department = department.fillna(frame["code_postal_ban"].map(department_from_postal_code))
    frame["code_departement_ban"] = department.astype("string")
    return frame


def drop_duplicate_dpe(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per ``numero_dpe``: the most recently received copy wins."""
    order = [c for c in ("date_derniere_modification_dpe", "date_reception_dpe") if c in frame]
    if order:
        frame = frame.sort_values(order, na_position="first", kind="stable")
    unique = frame.drop_duplicates("numero_dpe", keep="last")
    if len(unique) < len(frame):
        logger.info("dropped %d duplicated numero_dpe", len(frame) - len(unique))
    return unique.sort_index()


def missing_fields(records: Iterable[dict], fields: Iterable[str]) -> dict[str, int]:
    """How many records lack each field (absent or null), for data-quality reports."""
    fields = list(fields)
    counts = dict.fromkeys(fields, 0)
    for record in records:
        for field in fields:
            if record.get(field) is None:
                counts[field] += 1
    return counts
