"""The ADEME replay: the data-fair ``/lines`` protocol served from the bundled snapshot.

No machine of the course's CI reaches data.ademe.fr, and a classroom's network may be slow,
so this small Flask app answers ``GET /data-fair/api/v1/datasets/<id>/lines`` like the real
API (ADEME-API.md §2-§4): ``size`` (default 12, at most 10 000), ``page`` inside the
10 000-row window, cursor paging with ``after`` and the ``next`` URL, ``select``, ``sort``,
``qs`` in Lucene syntax (fields, ranges, wildcards, AND/OR/NOT, ``_exists_``),
``<field>_eq``/``_in``/… filters, ``q`` full text, ``total``, the ``_i`` and ``_score``
keys, null fields left out, and the same 400 messages. It serves real records only.

For tests, faults can be injected: every Nth ``/lines`` request answers with the next code
of a cycle (429 with ``Retry-After``, 500…), set at start (``REPLAY_FAULT_EVERY``,
``REPLAY_FAULT_CODES``) or live through ``POST /_replay/faults``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import pandas as pd
from flask import Flask, Response, jsonify, request
from luqum import tree
from luqum.exceptions import ParseError
from luqum.parser import parser as lucene_parser

from dpe_pipeline.snapshot import DATASETS, load_dataset

logger = logging.getLogger(__name__)

API_PREFIX = "/data-fair/api/v1"
MAX_PAGE_SIZE = 10_000
DEFAULT_PAGE_SIZE = 12
FILTER_SUFFIXES = ("_neq", "_nin", "_gte", "_lte", "_eq", "_in", "_gt", "_lt", "_starts", "_contains")
SPECIAL_SORT_KEYS = {"_i", "_score"}
QS_SYNTAX_ERROR = "Impossible d'effectuer cette recherche, la syntaxe du paramètre \"qs\" n'est pas respectée"


class BadQueryError(Exception):
    """A query the real API refuses with a 400 and this message."""


# --------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------
@dataclass
class Dataset:
    """One dataset held in memory, with ``_i`` as the original line index."""

    id: str
    frame: pd.DataFrame
    numeric: set[str] = field(init=False)

    def __post_init__(self) -> None:
        self.frame = self.frame.reset_index(drop=True)
        self.frame.insert(0, "_i", np.arange(len(self.frame), dtype="int64"))
        self.numeric = {c for c in self.frame.columns if pd.api.types.is_numeric_dtype(self.frame[c])}

    @property
    def fields(self) -> list[str]:
        return [c for c in self.frame.columns if c != "_i"]

    def column(self, name: str, action: str = "filter") -> pd.Series:
        if name not in self.frame.columns:
            verb = {"filter": "d'appliquer un filtre sur", "sort": "de trier sur", "select": "de sélectionner"}[action]
            raise BadQueryError(f"Impossible {verb} le champ {name}, il n'existe pas dans le jeu de données")
        return self.frame[name]

    def coerce(self, name: str, value: str) -> object:
        """A query value in the column's type (numbers for numeric columns)."""
        if name in self.numeric:
            try:
                return float(value)
            except ValueError as error:
                raise BadQueryError(f"La valeur {value!r} n'est pas un nombre valide pour le champ {name}") from error
        return value


# --------------------------------------------------------------------------------------
# qs (Lucene query_string) evaluation
# --------------------------------------------------------------------------------------
def _unquote(term: str) -> str:
    return term[1:-1] if len(term) >= 2 and term[0] == term[-1] == '"' else term.replace("\\", "")


def _match_term(dataset: Dataset, name: str, term: str) -> pd.Series:
    column = dataset.column(name)
    if any(ch in term for ch in "*?") and not term.startswith('"'):
        pattern = "^" + "".join(".*" if c == "*" else "." if c == "?" else _regex_escape(c) for c in term) + "$"
        return column.astype("string").str.match(pattern).fillna(False).astype(bool)
    value = dataset.coerce(name, _unquote(term))
    return (column == value).fillna(False).astype(bool)


def _regex_escape(char: str) -> str:
    return re.escape(char)


def _match_range(dataset: Dataset, name: str, node: tree.Range) -> pd.Series:
    column = dataset.column(name)
    mask = column.notna()
    low, high = _unquote(str(node.low)), _unquote(str(node.high))
    if low != "*":
        bound = dataset.coerce(name, low)
        mask &= (column >= bound) if node.include_low else (column > bound)
    if high != "*":
        bound = dataset.coerce(name, high)
        mask &= (column <= bound) if node.include_high else (column < bound)
    return mask.fillna(False).astype(bool)


def _full_text(dataset: Dataset, text: str, fields: list[str] | None = None) -> pd.Series:
    text = _unquote(text).lower()
    columns = fields or [c for c in dataset.fields if c not in dataset.numeric]
    mask = pd.Series(False, index=dataset.frame.index)
    for name in columns:
        mask |= dataset.column(name).astype("string").str.lower().str.contains(text, regex=False).fillna(False)
    return mask


def evaluate_qs(dataset: Dataset, node: tree.Item, field_name: str | None = None) -> pd.Series:
    """Boolean mask of the rows matching a parsed ``qs`` tree."""
    all_rows = pd.Series(True, index=dataset.frame.index)
    if isinstance(node, tree.SearchField):
        if node.name == "_exists_":
            return dataset.column(_unquote(str(node.expr))).notna()
        return evaluate_qs(dataset, node.expr, node.name)
    if isinstance(node, (tree.Group, tree.FieldGroup)):
        return evaluate_qs(dataset, node.expr, field_name)
    if isinstance(node, (tree.Word, tree.Phrase)):
        if field_name is None:
            return _full_text(dataset, node.value)
        return _match_term(dataset, field_name, node.value)
    if isinstance(node, tree.Range):
        if field_name is None:
            raise BadQueryError(QS_SYNTAX_ERROR)
        return _match_range(dataset, field_name, node)
    if isinstance(node, (tree.Not, tree.Prohibit)):
        return ~evaluate_qs(dataset, node.a, field_name)
    if isinstance(node, tree.Plus):
        return evaluate_qs(dataset, node.a, field_name)
    if isinstance(node, tree.AndOperation):
        masks = [evaluate_qs(dataset, child, field_name) for child in node.children]
        return np.logical_and.reduce(masks) if masks else all_rows
    if isinstance(node, (tree.OrOperation, tree.UnknownOperation)):
        # Elasticsearch's default operator is OR; +term is required and -term excluded.
        required = [c for c in node.children if isinstance(c, (tree.Plus, tree.Prohibit))]
        optional = [c for c in node.children if c not in required]
        mask = all_rows.copy()
        for child in required:
            mask &= evaluate_qs(dataset, child, field_name)
        if optional:
            mask &= np.logical_or.reduce([evaluate_qs(dataset, child, field_name) for child in optional])
        return mask
    raise BadQueryError(QS_SYNTAX_ERROR)


def parse_qs(text: str) -> tree.Item:
    try:
        return lucene_parser.parse(text)
    except (ParseError, TypeError, ValueError) as error:
        raise BadQueryError(QS_SYNTAX_ERROR) from error


# --------------------------------------------------------------------------------------
# /lines
# --------------------------------------------------------------------------------------
def _int_param(args, name: str, default: int) -> int:
    raw = args.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError as error:
        raise BadQueryError(f'"{name}" must be a number') from error
    if value < 0:
        raise BadQueryError(f'"{name}" must be greater than or equal to 0')
    return value


def _field_condition(dataset: Dataset, name: str, suffix: str, raw: str) -> pd.Series:
    """One ``<field>_<op>=value`` filter as a boolean mask (absent values never match, but for ≠)."""
    column = dataset.column(name)
    if suffix in ("_in", "_nin"):
        condition = column.isin([dataset.coerce(name, v) for v in raw.split(",")])
        condition = ~condition if suffix == "_nin" else condition
    elif suffix == "_starts":
        condition = column.astype("string").str.startswith(raw)
    elif suffix == "_contains":
        condition = column.astype("string").str.contains(raw, regex=False)
    else:
        value = dataset.coerce(name, raw)
        operator = {"_eq": "eq", "_neq": "ne", "_gt": "gt", "_gte": "ge", "_lt": "lt", "_lte": "le"}[suffix]
        condition = getattr(column, operator)(value)
    return condition.fillna(suffix in ("_neq", "_nin")).astype(bool)


def _field_filters(dataset: Dataset, args) -> pd.Series:
    mask = pd.Series(True, index=dataset.frame.index)
    for key, raw in args.items():
        suffix = next((s for s in FILTER_SUFFIXES if key.endswith(s)), None)
        if suffix is None or key in {"q_fields", "q_mode"}:
            continue
        mask &= _field_condition(dataset, key[: -len(suffix)], suffix, raw)
    return mask


def _sort_keys(dataset: Dataset, sort: str | None) -> list[tuple[str, bool]]:
    keys: list[tuple[str, bool]] = []
    for item in filter(None, (s.strip() for s in (sort or "").split(","))):
        descending = item.startswith("-")
        name = item.lstrip("-+")
        if name not in SPECIAL_SORT_KEYS:
            dataset.column(name, action="sort")
        keys.append((name, descending))
    if not any(name == "_i" for name, _ in keys):
        keys.append(("_i", False))  # data-fair's tie-breaker: the original line index
    return keys


def _rows_after(frame: pd.DataFrame, keys: list[tuple[str, bool]], after: list) -> pd.Series:
    """Rows strictly after the cursor in sort order (Elasticsearch ``search_after``); nulls sort last."""
    greater = pd.Series(False, index=frame.index)
    equal = pd.Series(True, index=frame.index)
    for (name, descending), value in zip(keys, after, strict=True):
        column = frame[name]
        if value is None:
            key_greater = pd.Series(False, index=frame.index)
            key_equal = column.isna()
        else:
            key_greater = ((column < value) if descending else (column > value)).fillna(False).astype(bool)
            key_greater |= column.isna()
            key_equal = (column == value).fillna(False).astype(bool)
        greater |= equal & key_greater
        equal &= key_equal
    return greater


def _parse_after(raw: str, keys: list[tuple[str, bool]]) -> list:
    try:
        values = json.loads(f"[{raw}]")
    except json.JSONDecodeError:
        values = raw.split(",")
    if len(values) != len(keys):
        raise BadQueryError('"after" parameter is malformed')
    return values


def _selected_fields(dataset: Dataset, select: str | None) -> list[str]:
    if not select or select.strip() == "*":
        return dataset.fields
    names = [s.strip() for s in select.split(",") if s.strip()]
    for name in names:
        if name not in SPECIAL_SORT_KEYS:
            dataset.column(name, action="select")
    return [n for n in names if n not in SPECIAL_SORT_KEYS]


def _to_json_value(value: object) -> object:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return int(value) if float(value).is_integer() and abs(value) < 2**53 else float(value)
    return value


def _hits(page: pd.DataFrame, fields: list[str]) -> list[dict]:
    hits = []
    for row in page[[*fields, "_i"]].itertuples(index=False, name=None):
        hit = {
            name: _to_json_value(value)
            for name, value in zip(fields, row[:-1], strict=True)
            if value is not None and value is not pd.NA and not (isinstance(value, float) and math.isnan(value))
        }
        hit["_i"] = int(row[-1])
        hit["_score"] = None
        hits.append(hit)
    return hits


def query_lines(dataset: Dataset, args, base_url: str) -> dict:
    """The JSON body of ``/lines`` for these query arguments."""
    size = _int_param(args, "size", DEFAULT_PAGE_SIZE)
    page = _int_param(args, "page", 1) or 1
    if size > MAX_PAGE_SIZE:
        raise BadQueryError(f'"size" cannot be more than {MAX_PAGE_SIZE}')
    if "after" not in args and (page - 1) * size + size > MAX_PAGE_SIZE:
        raise BadQueryError(f'"size * page" cannot be more than {MAX_PAGE_SIZE}')
    fields = _selected_fields(dataset, args.get("select"))
    keys = _sort_keys(dataset, args.get("sort"))

    # Filter: qs, q, then the per-field filters
    mask = _field_filters(dataset, args)
    if args.get("qs"):
        mask &= evaluate_qs(dataset, parse_qs(args["qs"]))
    if args.get("q"):
        q_fields = [f.strip() for f in args.get("q_fields", "").split(",") if f.strip()] or None
        mask &= _full_text(dataset, args["q"], q_fields)
    matching = dataset.frame[mask.to_numpy()]

    # Order, then cut the page (cursor or page number)
    ordered = matching.sort_values(
        [name for name, _ in keys], ascending=[not desc for _, desc in keys], na_position="last", kind="stable"
    )
    if "after" in args:
        ordered = ordered[_rows_after(ordered, keys, _parse_after(args["after"], keys)).to_numpy()]
        window = ordered.iloc[:size]
    else:
        window = ordered.iloc[(page - 1) * size : page * size]

    body: dict = {"total": int(len(matching))}
    if size and len(window) == size and len(ordered) > len(window) + (0 if "after" in args else (page - 1) * size):
        last = window.iloc[-1]
        cursor = ",".join(json.dumps(_to_json_value(last[name])) for name, _ in keys)
        params = {k: v for k, v in args.items(multi=False) if k not in ("after", "page")}
        body["next"] = f"{base_url}?{urlencode({**params, 'after': cursor})}"
    body["results"] = _hits(window, fields)
    return body


# --------------------------------------------------------------------------------------
# Fault injection
# --------------------------------------------------------------------------------------
@dataclass
class FaultInjector:
    """Answers every ``every``-th request with the next code of ``codes`` (0 = never)."""

    every: int = 0
    codes: tuple[int, ...] = (429, 500)
    requests: int = 0
    injected: int = 0
    _cycle: itertools.cycle = field(init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.configure(self.every, self.codes)

    def configure(self, every: int, codes: tuple[int, ...]) -> None:
        with self._lock:
            self.every, self.codes = max(0, int(every)), tuple(int(c) for c in codes) or (500,)
            self._cycle = itertools.cycle(self.codes)
            self.requests = self.injected = 0

    def next_fault(self) -> int | None:
        with self._lock:
            self.requests += 1
            if self.every and self.requests % self.every == 0:
                self.injected += 1
                return next(self._cycle)
            return None

    def state(self) -> dict:
        return {"every": self.every, "codes": list(self.codes), "requests": self.requests, "injected": self.injected}


# --------------------------------------------------------------------------------------
# The app
# --------------------------------------------------------------------------------------
def create_app(data_dir: Path | None = None, fault_every: int = 0, fault_codes: tuple[int, ...] = (429, 500)) -> Flask:
    """The replay WSGI app over the snapshot in ``data_dir`` (default: the bundled one)."""
    app = Flask(__name__)
    app.json.sort_keys = False  # keep data-fair's key order: total, next, results
    datasets = {name: Dataset(name, load_dataset(name, data_dir)) for name in DATASETS}
    faults = FaultInjector(fault_every, fault_codes)
    app.extensions["replay_faults"] = faults

    def error(status: int, message: str) -> Response:
        return Response(message, status=status, mimetype="text/plain")

    def get_dataset(dataset_id: str) -> Dataset | Response:
        if dataset_id not in datasets:
            return error(404, f"Le jeu de données {dataset_id} n'existe pas")
        return datasets[dataset_id]

    @app.get("/health")
    def health():
        return {"status": "ok", "datasets": {k: len(v.frame) for k, v in datasets.items()}}

    @app.get(f"{API_PREFIX}/datasets/<dataset_id>")
    def dataset_metadata(dataset_id: str):
        dataset = get_dataset(dataset_id)
        if isinstance(dataset, Response):
            return dataset
        return {
            "id": dataset.id,
            "slug": dataset.id,
            "title": f"{dataset.id} (rejeu local de l'instantané embarqué)",
            "count": len(dataset.frame),
            "license": {"title": "Licence Ouverte / Etalab 2.0", "href": "https://www.etalab.gouv.fr/licence-ouverte"},
        }

    @app.get(f"{API_PREFIX}/datasets/<dataset_id>/schema")
    def dataset_schema(dataset_id: str):
        dataset = get_dataset(dataset_id)
        if isinstance(dataset, Response):
            return dataset
        return jsonify([
            {"key": name, "type": "number" if name in dataset.numeric else "string",
             **({"format": "date"} if name.startswith("date_") else {})}
            for name in dataset.fields
        ])

    @app.get(f"{API_PREFIX}/datasets/<dataset_id>/lines")
    def lines(dataset_id: str):
        dataset = get_dataset(dataset_id)
        if isinstance(dataset, Response):
            return dataset
        fault = faults.next_fault()
        if fault is not None:
            logger.info("injecting HTTP %d on %s", fault, request.full_path)
            headers = {"Retry-After": "1"} if fault == 429 else {}
            return Response(f"Erreur simulée par le rejeu ({fault})", status=fault, headers=headers)
        if request.args.get("format", "json") != "json":
            return error(400, "Le rejeu ne sert que le format json")
        try:
            return query_lines(dataset, request.args, request.base_url)
        except BadQueryError as bad:
            return error(400, str(bad))

    @app.route("/_replay/faults", methods=["GET", "POST"])
    def replay_faults():
        if request.method == "POST":
            body = request.get_json(silent=True) or {}
            faults.configure(body.get("every", 0), tuple(body.get("codes", (429, 500))))
        return faults.state()

    return app


def main(argv: list[str] | None = None) -> None:
    """Serve the replay with waitress (``python -m dpe_pipeline.replay``)."""
    from waitress import serve

    from dpe_pipeline.settings import get_settings

    settings = get_settings()
    parser = argparse.ArgumentParser(description="Rejeu local de l'API ADEME (données réelles embarquées).")
    parser.add_argument("--host", default=settings.replay_host)
    parser.add_argument("--port", type=int, default=settings.replay_port)
    parser.add_argument("--fault-every", type=int, default=settings.replay_fault_every)
    parser.add_argument("--fault-codes", default=settings.replay_fault_codes)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    codes = tuple(int(code) for code in args.fault_codes.split(",") if code.strip())
    app = create_app(fault_every=args.fault_every, fault_codes=codes)
    logger.info("ADEME replay on http://%s:%d%s/datasets/<id>/lines", args.host, args.port, API_PREFIX)
    serve(app, host=args.host, port=args.port, threads=8, ident="dpe-replay")


if __name__ == "__main__":
    main()
