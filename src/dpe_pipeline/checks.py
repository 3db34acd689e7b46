"""Self-checks of the labs: verify a learner's work and say in French what to fix.

Each ``check_*`` function takes what the learner produced, compares it with an
independent truth (mostly the ``total`` the ADEME API announces for the same filter,
fetched here with :class:`~dpe_pipeline.ademe.AdemeClient`) and either prints a line
starting with « ✅ » or raises :class:`CheckFailed` with a precise hint. Placeholders
left by the lab generator (``None``, ``...``, empty values) never pass.

In Jupyter a failed check shows only its hint, not a traceback (``_render_traceback_``).
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from dpe_pipeline.records import LABELS

logger = logging.getLogger(__name__)

#: Colours of the energy scale printed on the DPE label since July 2021, A (dark green) to G (red).
DPE_LABEL_COLORS = {
    "A": "#009c6d",
    "B": "#52b153",
    "C": "#a5cc74",
    "D": "#f4e70f",
    "E": "#f0b40f",
    "F": "#eb8235",
    "G": "#d7221f",
}
TECHNICAL_KEYS = frozenset({"_i", "_score"})
MAX_WINDOW = 10_000
RAW_FORMATS = (".jsonl", ".parquet")


class CheckFailed(AssertionError):  # noqa: N818 - the name learners see: « la vérification a échoué »
    """A self-check that did not pass; ``hint`` says in French what to change."""

    def __init__(self, hint: str) -> None:
        super().__init__(hint)
        self.hint = hint

    def _render_traceback_(self) -> list[str]:
        """What IPython shows instead of a traceback: the hint, nothing else."""
        return [f"\x1b[1;31m❌ Vérification échouée\x1b[0m : {self.hint}"]


# --- small helpers ------------------------------------------------------------------


def _passed(message: str) -> None:
    print(f"✅ {message}")


def _number(value: int) -> str:
    """French thousands separator: 19940 → « 19 940 »."""
    return f"{value:,}".replace(",", "\u202f")


def _describe(value: Any) -> str:
    if value is None:
        return "None"
    if value is Ellipsis:
        return "... (le marqueur à remplacer)"
    return f"vide ({type(value).__name__})"


def _is_placeholder(value: Any) -> bool:
    if value is None or value is Ellipsis:
        return True
    if isinstance(value, (str, bytes, list, tuple, dict, set)):
        return len(value) == 0
    empty = getattr(value, "empty", None)  # pandas objects
    return isinstance(empty, bool) and empty


def require(value: Any, name: str) -> None:
    """Fail with a hint when ``value`` is still a lab placeholder (``None``, ``...``, empty)."""
    if _is_placeholder(value):
        raise CheckFailed(
            f"`{name}` vaut encore {_describe(value)} : complétez la cellule « À FAIRE » qui le calcule, "
            "exécutez-la, puis relancez cette vérification."
        )


def ready(*values: Any, exercise: int | str) -> bool:
    """Whether a given cell can show the result of an exercise: no value is a lab placeholder.

    ``False`` counts as not ready too, so that a cell can also test a side effect of the
    exercise (``ready(topic_exists, exercise=1)``). When something is missing, print one
    French line (no error, no traceback) asking to finish the exercise, and return False::

        if checks.ready(delivered, exercise=2):
            ...  # the cell's body, which reads `delivered`
    """
    if all(value is not False and not _is_placeholder(value) for value in values):
        return True
    print(
        f"⏳ Cette cellule montre le résultat de l'exercice {exercise} : "
        "complétez-le, exécutez-le, puis relancez cette cellule."
    )
    return False


# --- are the services up? -------------------------------------------------------------

#: What each service is called in the labs' error messages, and the ``./dpe up`` argument that starts it.
SERVICE_LABELS = {
    "ademe": ("le rejeu de l'API ADEME", "replay"),
    "postgres": ("PostgreSQL", "postgres"),
    "kafka": ("Kafka", "kafka"),
    "api": ("l'API d'ingestion", "api"),
    "minio": ("MinIO", "minio"),
    "spark": ("le maître Spark", "spark-worker"),
    "trino": ("Trino", "trino-worker"),
    "superset": ("Superset", "superset"),
    "airflow": ("Airflow", "airflow"),
}


class ServiceUnreachable(CheckFailed):
    """A service a lab needs does not answer on its port: the stack (or that service) is down."""

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[1;31m❌ Service injoignable\x1b[0m : {self.hint}"]


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    from urllib.parse import urlsplit

    parts = urlsplit(url if "//" in url else f"//{url}")
    return parts.hostname or "127.0.0.1", parts.port or default_port


def service_address(name: str, settings: Any = None) -> tuple[str, int] | None:
    """The (host, port) where ``name`` listens, from the settings; None when nothing local is needed."""
    if settings is None:
        from dpe_pipeline.settings import get_settings

        settings = get_settings()
    if name == "ademe":
        return None if settings.ademe_mode == "live" else (settings.replay_host, settings.replay_port)
    if name == "kafka":
        return _host_port(settings.kafka_bootstrap_servers.split(",")[0].strip(), 9092)
    if name == "minio":
        return _host_port(settings.s3_endpoint, 9000)
    if name == "spark":
        return _host_port(settings.spark_master.replace("spark://", "//"), settings.spark_master_port) \
            if settings.spark_master.startswith("spark://") else None
    if name in SERVICE_LABELS:
        return getattr(settings, f"{name}_host"), int(getattr(settings, f"{name}_port"))
    raise ValueError(f"unknown service {name!r}; known: {sorted(SERVICE_LABELS)}")


def require_services(*names: str, settings: Any = None, timeout: float = 2.0) -> None:
    """Fail fast, in French, when a service a lab needs does not accept TCP connections.

    Call it at the top of a lab's setup cell (``checks.require_services("kafka", "postgres")``):
    without it a stopped stack shows up minutes later as a raw ConnectionError or timeout.
    """
    from dpe_pipeline.native.health import probe_tcp

    down = []
    for name in names:
        address = service_address(name, settings)
        if address is not None and probe_tcp(*address, timeout) is not None:
            down.append((name, address))
    if down:
        listed = ", ".join(f"{SERVICE_LABELS[name][0]} ({host}:{port})" for name, (host, port) in down)
        services = " ".join(SERVICE_LABELS[name][1] for name, _ in down)
        verb = "ne répond pas" if len(down) == 1 else "ne répondent pas"
        raise ServiceUnreachable(
            f"{listed} {verb}. Lancez ./dpe up (ou docker compose up -d), ou seulement "
            f"« ./dpe up {services} », attendez la fin du démarrage puis relancez cette cellule."
        )


def year_range(year: int | str) -> tuple[str, str]:
    """The first and last day of a year, as the API's date filter wants them."""
    year = int(year)
    return f"{year}-01-01", f"{year}-12-31"


@lru_cache(maxsize=1)
def _client():
    from dpe_pipeline.ademe import AdemeClient

    return AdemeClient.from_settings()


@lru_cache(maxsize=32)
def api_total(department: str | None = None, year: int | str | None = None) -> int:
    """The number of lines the API announces for a department and a reception year (the truth of the checks)."""
    from dpe_pipeline.ademe import AdemeError

    date_from, date_to = year_range(year) if year is not None else (None, None)
    try:
        total = _client().count(department=department, date_from=date_from, date_to=date_to)
    except AdemeError as error:
        raise CheckFailed(
            f"la vérification n'a pas pu interroger l'API ADEME elle-même ({error}). "
            "En mode rejeu, démarrez-le avec « ./dpe up replay » puis relancez la cellule."
        ) from error
    logger.debug("API total for department=%s year=%s: %d", department, year, total)
    return total


def same_total(observed: int, expected: int) -> bool:
    """Does a count match the API's? Exact on the replay; live, ADEME may publish new DPE between two requests."""
    if observed == expected:
        return True
    from dpe_pipeline.settings import get_settings

    live_drift = max(1, expected // 1000)  # 0.1 %
    return get_settings().ademe_mode == "live" and abs(observed - expected) <= live_drift


def _scope_total(department: str, year: int | str) -> int:
    """The API's total for the lab's filter; a filter that matches nothing cannot be checked."""
    total = api_total(department, year)
    if total == 0:
        raise CheckFailed(
            f"selon l'API, aucun DPE ne correspond à ce périmètre ({_scope(department, year)}) : "
            "changez `department` ou `year` dans la cellule des paramètres, puis relancez le notebook."
        )
    return total


def _scope(department: str, year: int | str) -> str:
    return f"département {department}, reçus en {int(year)}"


def _out_of_scope(records: Iterable[Mapping[str, Any]], department: str, year: int | str) -> list[str]:
    """Identifiers of the records whose department or reception date is outside the filter."""
    date_from, date_to = year_range(year)
    wrong = []
    for record in records:
        record_department = record.get("code_departement_ban")
        received = record.get("date_reception_dpe")
        other_department = record_department is not None and str(record_department) != str(department)
        other_date = received is not None and not date_from <= str(received)[:10] <= date_to
        if other_department or other_date:
            wrong.append(str(record.get("numero_dpe")))
    return wrong


def _require_dict_page(page: Any, name: str) -> None:
    require(page, name)
    if hasattr(page, "status_code") and hasattr(page, "json"):
        raise CheckFailed(
            f"`{name}` est un objet réponse HTTP : gardez son contenu décodé, `{name} = response.json()`."
        )
    if isinstance(page, (str, bytes)):
        raise CheckFailed(f"`{name}` est du texte : décodez le JSON avec `response.json()` plutôt que `response.text`.")
    if not isinstance(page, Mapping):
        raise CheckFailed(f"`{name}` devrait être un dict (le JSON décodé), pas un {type(page).__name__}.")
    missing = [key for key in ("total", "results") if key not in page]
    if missing:
        raise CheckFailed(
            f"il manque la clé {', '.join(missing)} dans `{name}` : une page de /lines contient « total » "
            f"et « results ». Clés reçues : {sorted(page)}."
        )
    if not isinstance(page["results"], list):
        raise CheckFailed(f"`{name}['results']` devrait être une liste d'enregistrements.")


# --- lab 1: API REST avec Python --------------------------------------------------------


def check_first_page(page: Any, size: int = 5) -> None:
    """Exercise 1: the decoded JSON of an unfiltered ``/lines`` request with ``size`` lines."""
    _require_dict_page(page, "page")
    results = page["results"]
    if len(results) != size:
        raise CheckFailed(
            f"la page contient {len(results)} enregistrement(s) au lieu de {size} : "
            f"passez le paramètre `size={size}` dans `params`."
        )
    if not all(isinstance(record, Mapping) and record.get("numero_dpe") for record in results):
        raise CheckFailed("chaque élément de `page['results']` devrait être un DPE (un dict avec « numero_dpe »).")
    expected = api_total()
    if not same_total(page["total"], expected):
        raise CheckFailed(
            f"`page['total']` vaut {page['total']} alors que le jeu complet compte {_number(expected)} lignes : "
            "cette première requête ne doit avoir aucun filtre (ni qs, ni q, ni _eq)."
        )
    _passed(f"première page correcte : {size} DPE reçus, sur {_number(expected)} lignes au total.")


def check_window_error(response: Any) -> None:
    """Exercise 2: a request past the 10 000-row ``page``/``size`` window, kept as a ``requests`` response."""
    require(response, "response_window")
    if not hasattr(response, "status_code"):
        raise CheckFailed(
            "`response_window` doit être l'objet renvoyé par `session.get(...)` (n'appelez ni .json() "
            "ni .raise_for_status() : on veut observer l'erreur)."
        )
    if response.status_code == 200:
        raise CheckFailed(
            "la requête a réussi (200) : choisissez `page` et `size` tels que page × size dépasse "
            f"{_number(MAX_WINDOW)}, avec size ≤ 10 000 (par exemple size=5000 et page=3)."
        )
    if response.status_code != 400:
        raise CheckFailed(
            f"l'API a répondu {response.status_code} ({response.text[:120]!r}) au lieu de 400 : "
            "vérifiez l'URL (`lines_url`) et les paramètres."
        )
    if "10000" not in response.text:
        raise CheckFailed(
            f"c'est bien une erreur 400, mais pour une autre raison : « {response.text.strip()} ». "
            "Seuls `page` et `size` doivent provoquer l'erreur."
        )
    _passed(f"erreur 400 obtenue, message de l'API : « {response.text.strip()} »")


_NOT_GIVEN = object()  # an argument left out, as opposed to a learner's None


def _check_qs(qs: Any, department: str, year: int | str) -> None:
    """The filter itself, not only its result: in the replay every Rhône DPE is from 2023."""
    require(qs, "qs")
    if not isinstance(qs, str):
        raise CheckFailed(f"`qs` doit être une chaîne de caractères (le filtre Lucene), pas un {type(qs).__name__}.")
    expected = f"code_departement_ban:{department} AND date_reception_dpe:[{year}-01-01 TO {year}-12-31]"
    compact = re.sub(r"\s+", " ", qs)
    if not re.search(rf"code_departement_ban\s*:\s*\(?\s*\"?{re.escape(str(department))}\b", compact):
        raise CheckFailed(f"`qs` ne filtre pas le département {department} : écrivez par exemple « {expected} ».")
    date_clause = re.search(r"date_reception_dpe\s*:\s*[\[{](.*?)[\]}]", compact)
    if not date_clause:
        raise CheckFailed(
            "`qs` ne filtre pas l'année de réception : ajoutez « AND date_reception_dpe:[… TO …] ». Dans le rejeu, "
            f"le résultat est le même sans elle, mais pas sur l'API en ligne. Exemple : « {expected} »."
        )
    bounds = re.split(r"\s+TO\s+", date_clause.group(1).strip())
    if len(bounds) != 2 or not all(bound.strip('"').startswith(str(year)) for bound in bounds):
        raise CheckFailed(
            f"la plage de dates de `qs` ([{date_clause.group(1)}]) ne couvre pas exactement l'année {year} : "
            f"écrivez date_reception_dpe:[{year}-01-01 TO {year}-12-31], avec la variable `year`."
        )
    if not re.search(r"\bAND\b", compact) and "&&" not in compact:
        raise CheckFailed(f"reliez les deux conditions de `qs` par AND : « {expected} ».")


def check_filtered_page(
    page: Any, department: str, year: int | str, select: list[str], qs: Any = _NOT_GIVEN
) -> None:
    """Exercise 3: one page filtered with ``qs`` on a department and a reception year, with ``select``.

    When ``qs`` is given, the filter string itself must hold both conditions.
    """
    _require_dict_page(page, "page_filtered")
    require(select, "SELECT")
    if qs is not _NOT_GIVEN:
        _check_qs(qs, department, year)
    expected = _scope_total(department, year)
    total = page["total"]
    if not same_total(total, expected):
        hint = (
            f"`total` vaut {_number(total)} mais l'API annonce {_number(expected)} DPE ({_scope(department, year)}). "
        )
        if total == api_total():
            hint += "Aucun filtre n'a été appliqué : passez la chaîne `qs` dans `params`."
        elif total == api_total(department):
            hint += "Le département est bien filtré, mais pas l'année : ajoutez la plage sur date_reception_dpe."
        else:
            hint += (
                "Vérifiez la syntaxe de `qs` : "
                f"code_departement_ban:{department} AND date_reception_dpe:[{year}-01-01 TO {year}-12-31]"
            )
        raise CheckFailed(hint)
    if not page["results"]:
        raise CheckFailed("`page_filtered['results']` est vide : demandez au moins une ligne (`size`).")
    extra = sorted({key for record in page["results"] for key in record} - set(select) - TECHNICAL_KEYS)
    if extra:
        raise CheckFailed(
            f"les résultats contiennent des champs non demandés ({', '.join(extra[:5])}) : passez "
            "`select` sous forme de chaîne, champs séparés par des virgules : `','.join(SELECT)`."
        )
    wrong = _out_of_scope(page["results"], department, year)
    if wrong:
        raise CheckFailed(f"{len(wrong)} résultat(s) hors du filtre, par exemple {wrong[0]} : revoyez `qs`.")
    _passed(f"filtre correct : {_number(total)} DPE ({_scope(department, year)}), champs limités à SELECT.")


def check_all_records(records: Any, department: str, year: int | str) -> None:
    """Exercise 4: every record of the filter, read by following the ``next`` cursor."""
    require(records, "records")
    if not isinstance(records, list):
        raise CheckFailed(
            f"`records` devrait être une liste de dicts (les `results` de toutes les pages mis bout à bout), "
            f"pas un {type(records).__name__}."
        )
    if not all(isinstance(record, Mapping) and "numero_dpe" in record for record in records):
        raise CheckFailed(
            "`records` doit contenir les DPE eux-mêmes (des dicts avec « numero_dpe ») : ajoutez les éléments "
            "de chaque `page['results']` avec `records.extend(...)`, pas les pages entières."
        )
    expected = _scope_total(department, year)
    count = len(records)
    distinct = len({record.get("numero_dpe") for record in records})
    if count < expected and not same_total(count, expected):
        hint = f"vous avez {_number(count)} DPE sur les {_number(expected)} annoncés par l'API. "
        if count % 1000 == 0 and count <= MAX_WINDOW:
            hint += "On dirait une seule page : la boucle doit suivre `page['next']` tant qu'il est présent."
        else:
            hint += "La boucle s'arrête trop tôt : continuez tant que la réponse contient « next »."
        raise CheckFailed(hint)
    if distinct < count:
        raise CheckFailed(
            f"{_number(count - distinct)} doublon(s) de numero_dpe ({_number(count)} lignes pour "
            f"{_number(expected)} DPE) : la même page est relue. Quand vous suivez l'URL `next`, n'envoyez "
            "pas `params` une deuxième fois : elle contient déjà tous les paramètres et le curseur `after`."
        )
    wrong = _out_of_scope(records, department, year)
    if wrong or not same_total(count, expected):
        raise CheckFailed(
            f"{_number(count)} DPE reçus pour {_number(expected)} attendus ({_scope(department, year)}) : "
            "revoyez le filtre `qs` de la première requête."
        )
    _passed(f"{_number(count)} DPE récupérés, tous distincts : exactement le total annoncé par l'API.")


def check_dataframe(df: Any, department: str, year: int | str) -> None:
    """Exercise 5: the records as a tidy pandas DataFrame."""
    import pandas as pd

    require(df, "df")
    if not isinstance(df, pd.DataFrame):
        raise CheckFailed(
            f"`df` devrait être un DataFrame pandas (`pd.DataFrame(records)`), pas un {type(df).__name__}."
        )
    expected = _scope_total(department, year)
    if not same_total(len(df), expected):
        raise CheckFailed(f"`df` a {_number(len(df))} lignes au lieu de {_number(expected)} : une ligne par DPE.")
    missing = [c for c in ("numero_dpe", "etiquette_dpe", "date_reception_dpe") if c not in df.columns]
    if missing:
        raise CheckFailed(f"colonne(s) absente(s) de `df` : {', '.join(missing)}.")
    technical = sorted(TECHNICAL_KEYS & set(df.columns))
    if technical:
        raise CheckFailed(
            f"supprimez les colonnes techniques de l'API ({', '.join(technical)}) : "
            "`df.drop(columns=[...])` — elles ne décrivent pas le logement."
        )
    if not pd.api.types.is_datetime64_any_dtype(df["date_reception_dpe"]):
        raise CheckFailed(
            f"`date_reception_dpe` est de type {df['date_reception_dpe'].dtype} : convertissez-la en date avec "
            "`pd.to_datetime(...)` pour pouvoir filtrer et grouper par mois."
        )
    unknown = sorted(set(df["etiquette_dpe"].dropna().astype(str)) - set(LABELS))
    if unknown:
        raise CheckFailed(f"étiquettes inattendues dans `etiquette_dpe` : {unknown} (seules A à G existent).")
    _passed(f"DataFrame correct : {_number(len(df))} lignes × {df.shape[1]} colonnes, dates au bon type.")


def check_label_plot(ax: Any) -> None:
    """Exercise 6: stacked bars of the labels A→G by postal code (or commune), in the official colours."""
    require(ax, "ax")
    from matplotlib.axes import Axes
    from matplotlib.colors import to_hex
    from matplotlib.figure import Figure

    if isinstance(ax, Figure):
        ax = ax.axes[0] if ax.axes else None
    if hasattr(ax, "flat"):  # an array of Axes from plt.subplots
        ax = next(iter(ax.flat), None)
    if not isinstance(ax, Axes):
        raise CheckFailed("`ax` doit être l'objet Axes du graphique (celui que renvoie `df.plot(...)`).")
    series = [(c.get_label(), c) for c in getattr(ax, "containers", []) if c.get_label() in LABELS]
    if len(series) < 2:
        raise CheckFailed(
            "aucune série de barres nommée A…G : tracez un tableau « code postal × étiquette » "
            "(`pd.crosstab`) en barres empilées, une colonne par étiquette."
        )
    names = [name for name, _ in series]
    if names != sorted(names):
        raise CheckFailed(f"les étiquettes sont dans l'ordre {names} : réordonnez les colonnes de A à G.")
    wrong = [
        f"{name} ({to_hex(container.patches[0].get_facecolor())} au lieu de {DPE_LABEL_COLORS[name]})"
        for name, container in series
        if container.patches and to_hex(container.patches[0].get_facecolor()) != DPE_LABEL_COLORS[name]
    ]
    if wrong:
        raise CheckFailed(f"couleurs non officielles : {', '.join(wrong)} — utilisez `DPE_COLORS`.")
    bars = max(len(container.patches) for _, container in series)
    if bars < 2:
        raise CheckFailed("une seule barre : comparez plusieurs codes postaux (ou communes).")
    if not ax.get_title() or not (ax.get_xlabel() or ax.get_ylabel()):
        raise CheckFailed("donnez un titre au graphique et un nom à au moins un axe (`ax.set_title`, `ax.set_xlabel`).")
    _passed(f"graphique correct : {bars} barres, étiquettes {names[0]}→{names[-1]} aux couleurs officielles.")


def check_quality_report(missing_report: Any, duplicate_count: Any, df: Any, fields: list[str]) -> None:
    """Exercise 7: missing values per requested field and duplicated ``numero_dpe``."""
    import pandas as pd

    require(missing_report, "missing_report")
    require(df, "df")
    if duplicate_count is None or duplicate_count is Ellipsis:
        require(duplicate_count, "duplicate_count")
    if isinstance(duplicate_count, bool) or not isinstance(duplicate_count, numbers.Integral):
        raise CheckFailed(
            f"`duplicate_count` devrait être un nombre entier, pas un {type(duplicate_count).__name__} : "
            "par exemple `int(df['numero_dpe'].duplicated().sum())`."
        )
    if not isinstance(missing_report, pd.DataFrame):
        raise CheckFailed("`missing_report` devrait être un DataFrame (une ligne par champ).")
    absent = [field for field in fields if field not in missing_report.index]
    if absent:
        raise CheckFailed(
            f"le rapport ne couvre pas {', '.join(absent)} : un champ absent de toutes les réponses n'est même "
            "pas une colonne de `df`. Partez de `df.reindex(columns=SELECT)` pour couvrir chaque champ demandé."
        )
    for column in ("missing", "missing_pct"):
        if column not in missing_report.columns:
            raise CheckFailed(f"il manque la colonne « {column} » dans `missing_report`.")
    truth = df.reindex(columns=fields).isna().sum()
    counts = missing_report.loc[fields, "missing"]
    wrong = [field for field in fields if int(counts[field]) != int(truth[field])]
    if wrong:
        field = wrong[0]
        raise CheckFailed(
            f"pour « {field} », `missing` vaut {counts[field]} alors que {_number(int(truth[field]))} lignes "
            "n'ont pas de valeur : comptez les valeurs manquantes avec `.isna().sum()`."
        )
    percent = missing_report.loc[fields, "missing_pct"].astype(float)
    expected_percent = truth / len(df) * 100
    if not all(math.isclose(percent[f], expected_percent[f], abs_tol=0.01) for f in fields):
        if all(math.isclose(percent[f] * 100, expected_percent[f], abs_tol=0.01) for f in fields):
            raise CheckFailed("`missing_pct` est une proportion (0–1) : exprimez-la en pourcentage (× 100).")
        raise CheckFailed("`missing_pct` ne correspond pas à `missing` / nombre de lignes × 100.")
    duplicated = df["numero_dpe"].duplicated()
    if int(duplicate_count) != int(duplicated.sum()):
        hint = (
            f"`duplicate_count` vaut {duplicate_count} mais {int(duplicated.sum())} ligne(s) répètent "
            "un numero_dpe déjà vu."
        )
        if int(duplicate_count) == int(df["numero_dpe"].duplicated(keep=False).sum()):
            hint += " Ne comptez que les copies en trop (`duplicated()` sans keep=False)."
        raise CheckFailed(hint)
    complete = [f for f in fields if truth[f] == 0]
    _passed(
        f"rapport qualité correct : {len(complete)}/{len(fields)} champs toujours renseignés, "
        f"{int(duplicate_count)} numero_dpe en double."
    )


def check_client_records(client_records: Any, records: Any) -> None:
    """Exercise 8: the library client fetched the same DPE as the hand-written loop."""
    require(client_records, "client_records")
    require(records, "records")
    if hasattr(client_records, "to_dict"):
        client_ids = Counter(client_records["numero_dpe"])
    else:
        client_ids = Counter(record.get("numero_dpe") for record in client_records)
    own_ids = Counter(record.get("numero_dpe") for record in records)
    if client_ids != own_ids:
        only_client = len(set(client_ids) - set(own_ids))
        only_own = len(set(own_ids) - set(client_ids))
        raise CheckFailed(
            f"les deux récupérations diffèrent ({only_client} DPE seulement côté client, {only_own} seulement "
            "dans `records`) : appelez `client.fetch` avec le même département et les mêmes dates."
        )
    _passed(f"AdemeClient et votre boucle renvoient les mêmes {_number(sum(own_ids.values()))} DPE.")


def raw_dir() -> Path:
    """Where lab 1 saves the raw records of this learner: ``data/raw/<lab namespace>/``."""
    from dpe_pipeline.settings import get_settings, project_dir

    return project_dir() / "data" / "raw" / get_settings().lab_namespace


def read_raw_records(path: Path) -> list[dict]:
    """The records of a raw file written by lab 1 (JSON Lines or Parquet)."""
    if path.suffix == ".parquet":
        import pandas as pd

        frame = pd.read_parquet(path)
        return [{k: v for k, v in row.items() if v is not None and v == v} for row in frame.to_dict("records")]
    records = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise CheckFailed(
                    f"la ligne {number} de {path.name} n'est pas du JSON valide ({error.msg}) : écrivez un objet "
                    "JSON par ligne avec `json.dumps(record, ensure_ascii=False)` suivi de « \\n »."
                ) from error
            if not isinstance(record, dict):
                raise CheckFailed(
                    f"la ligne {number} de {path.name} contient un {type(record).__name__} JSON : en JSON Lines, "
                    "chaque ligne est un seul objet (un DPE), pas la liste entière."
                )
            records.append(record)
    return records


def check_raw_saved(path: Any, department: str, year: int | str) -> None:
    """Exercise 9: the raw records saved under the learner's namespace, for the next modules."""
    require(path, "raw_path")
    path = Path(path)
    expected_dir = raw_dir()
    expected_names = [f"dpe_{department}_{int(year)}{suffix}" for suffix in RAW_FORMATS]
    if path.resolve().parent != expected_dir.resolve():
        raise CheckFailed(
            f"le fichier doit être dans votre espace de lab, {expected_dir} "
            "(`project_dir() / 'data' / 'raw' / settings.lab_namespace`), pas dans "
            f"{path.resolve().parent}."
        )
    if path.name not in expected_names:
        raise CheckFailed(f"nommez le fichier {expected_names[0]} (ou {expected_names[1]}), pas {path.name}.")
    if not path.is_file():
        raise CheckFailed(f"{path} n'existe pas : écrivez les enregistrements avant de vérifier.")
    records = read_raw_records(path)
    expected = _scope_total(department, year)
    identifiers = {record.get("numero_dpe") for record in records}
    if len(identifiers) != len(records) or not same_total(len(records), expected):
        raise CheckFailed(
            f"{path.name} contient {_number(len(records))} lignes et {_number(len(identifiers))} numero_dpe "
            f"distincts ; l'API en annonce {_number(expected)} : enregistrez `records` en entier, une ligne par DPE."
        )
    wrong = _out_of_scope(records, department, year)
    if wrong:
        raise CheckFailed(f"{len(wrong)} DPE hors du filtre dans {path.name} ({wrong[0]}…).")
    _passed(f"{_number(len(records))} DPE bruts enregistrés dans {_display_path(path)} : prêts pour la suite.")


def _display_path(path: Path) -> str:
    """A path relative to the course folder when it is inside it (shorter to read)."""
    from dpe_pipeline.settings import project_dir

    try:
        return str(path.resolve().relative_to(project_dir().resolve()))
    except ValueError:
        return str(path)


# --- lab 2: Docker ------------------------------------------------------------------------------
# The truth of these checks is the repository itself: docker-compose.yml read with PyYAML
# (anchors merged), .env.example and .env. No Docker engine is needed.

COMPOSE_VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-[^}]*)?\}")


def compose_services(include_profiles: bool = True) -> dict[str, dict]:
    """The services of the course's docker-compose.yml, as PyYAML reads it (anchors merged)."""
    import yaml

    from dpe_pipeline.settings import project_dir

    compose = yaml.safe_load((project_dir() / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    return {name: spec for name, spec in services.items() if include_profiles or not spec.get("profiles")}


def env_values(name: str = ".env") -> dict[str, str]:
    """``KEY=value`` pairs of ``.env`` (or ``.env.example``) of the course folder."""
    from dotenv import dotenv_values

    from dpe_pipeline.settings import project_dir

    return {key: value or "" for key, value in dotenv_values(project_dir() / name).items()}


def _expand(text: str, values: Mapping[str, str]) -> str:
    return COMPOSE_VARIABLE.sub(lambda match: values.get(match.group(1), match.group(0)), str(text))


def _require_mapping(value: Any, name: str, shape: str = "service → valeur") -> None:
    require(value, name)
    if not isinstance(value, Mapping):
        raise CheckFailed(f"`{name}` doit être un dictionnaire ({shape}), pas un {type(value).__name__}.")


def _compare_keys(observed: Mapping, expected: Mapping, name: str) -> None:
    missing, extra = sorted(set(expected) - set(observed)), sorted(set(observed) - set(expected))
    if missing:
        raise CheckFailed(f"il manque {len(missing)} service(s) dans `{name}` : {', '.join(missing)}.")
    if extra:
        raise CheckFailed(f"`{name}` contient des services absents de docker-compose.yml : {', '.join(extra)}.")


def check_image_tags(image_tags: Any) -> None:
    """``image_tags``: service → tag of its image, for every service of the compose file."""
    _require_mapping(image_tags, "image_tags")
    expected = {name: spec["image"].rpartition(":")[2] for name, spec in compose_services().items()}
    _compare_keys(image_tags, expected, "image_tags")
    wrong = [name for name in expected if str(image_tags[name]) != expected[name]]
    if wrong:
        name = wrong[0]
        raise CheckFailed(
            f"le tag de `{name}` vaut {image_tags[name]!r}, or l'image est {compose_services()[name]['image']} : "
            "le tag est ce qui suit le dernier « : » (l'hôte du registre, comme quay.io, fait partie du nom)."
        )
    pinned = sum(1 for tag in expected.values() if tag != "latest")
    _passed(f"{len(expected)} services, {pinned} images épinglées sur une version précise, aucune en « latest ».")


def _dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        current += " " + stripped.rstrip("\\").strip()
        if not stripped.endswith("\\"):
            logical.append(current.strip())
            current = ""
    if current:
        logical.append(current.strip())
    pairs = []
    for line in logical:
        instruction, _, arguments = line.partition(" ")
        pairs.append((instruction.upper(), arguments.strip()))
    return pairs


def _listens_everywhere(command: list, steps: list[tuple[str, str]]) -> bool:
    """Whether the API is told to listen on 0.0.0.0: ``--host 0.0.0.0``, ``--host=0.0.0.0`` or ``ENV API_HOST``."""
    words = [str(word) for word in command]
    for index, word in enumerate(words):
        if word == "--host" and index + 1 < len(words):
            return words[index + 1] == "0.0.0.0"
        if word.startswith("--host="):
            return word.partition("=")[2] == "0.0.0.0"
    host = None
    for instruction, arguments in steps:
        if instruction != "ENV":
            continue
        legacy = re.fullmatch(r"API_HOST\s+(\S+)", arguments)  # ENV KEY value
        pairs = re.findall(r"(\w+)=(\"[^\"]*\"|'[^']*'|\S+)", arguments)
        if legacy:
            host = legacy.group(1)
        for key, value in pairs:
            if key == "API_HOST":
                host = value
    return host is not None and host.strip("'\"") == "0.0.0.0"


def check_api_dockerfile(dockerfile: Any) -> None:
    """``dockerfile``: the text of a Dockerfile that runs the ingestion API."""
    require(dockerfile, "dockerfile")
    if not isinstance(dockerfile, str):
        raise CheckFailed(f"`dockerfile` doit être le texte du Dockerfile (str), pas un {type(dockerfile).__name__}.")
    steps = _dockerfile_instructions(dockerfile)
    names = [instruction for instruction, _ in steps]
    if "FROM" not in names:
        raise CheckFailed(
            "un Dockerfile commence par FROM : l'image de base (ici python:3.11.<correctif>-slim-bookworm)."
        )
    base = next(arguments for instruction, arguments in steps if instruction == "FROM").split()[0]
    if not re.fullmatch(r"python:3\.11\.\d+-slim(-bookworm)?", base):
        raise CheckFailed(
            f"l'image de base {base!r} n'est pas épinglée : précisez la version complète de Python et la "
            "distribution (par ex. python:3.11.14-slim-bookworm), jamais « latest » ni « 3 »."
        )
    copies = [
        (index, arguments) for index, (instruction, arguments) in enumerate(steps) if instruction in {"COPY", "ADD"}
    ]
    if any(re.search(r"(^|\s)\.env(\s|$)", arguments) for _, arguments in copies):
        raise CheckFailed("ne copiez jamais .env dans une image : ses secrets resteraient dans une couche de l'image.")
    requirements = [index for index, arguments in copies if "requirements/core.txt" in arguments]
    sources = [index for index, arguments in copies if re.search(r"(^|\s)(\./)?src/?(\s|$)", arguments)]
    if not requirements or not sources:
        raise CheckFailed("copiez requirements/core.txt (les dépendances) et src/ (le code) dans l'image.")
    if min(requirements) > min(sources):
        raise CheckFailed(
            "copiez requirements/core.txt et installez-le AVANT de copier src/ : la couche des dépendances "
            "reste alors en cache quand seul le code change (reconstruction en secondes, pas en minutes)."
        )
    if not any(instruction == "RUN" and re.search(r"pip install .*-r \S*core\.txt", arguments)
               for instruction, arguments in steps):
        raise CheckFailed("installez les versions épinglées : RUN pip install -r requirements/core.txt.")
    users = [arguments.split(":")[0] for instruction, arguments in steps if instruction == "USER"]
    if not users or users[-1] in {"root", "0"}:
        raise CheckFailed("ajoutez un utilisateur non root (RUN useradd …, puis USER …) : un conteneur n'a "
                          "aucune raison de tourner en root.")
    if not any(instruction == "EXPOSE" and "5000" in arguments.split() for instruction, arguments in steps):
        raise CheckFailed("documentez le port de l'API : EXPOSE 5000.")
    commands = [arguments for instruction, arguments in steps if instruction == "CMD"]
    try:
        command = json.loads(commands[-1]) if commands else None
    except json.JSONDecodeError:
        command = None
    if not isinstance(command, list):
        raise CheckFailed(
            'écrivez CMD sous forme JSON (forme « exec ») : CMD ["python", "-m", "dpe_pipeline.api", …] ; '
            "le processus reçoit alors directement les signaux d'arrêt de Docker."
        )
    if "dpe_pipeline.api" not in command or not _listens_everywhere(command, steps):
        raise CheckFailed(
            "la commande doit lancer `python -m dpe_pipeline.api` en écoutant sur 0.0.0.0 : ajoutez "
            '"--host", "0.0.0.0" (ou "--host=0.0.0.0") à CMD, ou ENV API_HOST=0.0.0.0 ; dans un conteneur, '
            "127.0.0.1 n'est joignable que depuis le conteneur lui-même."
        )
    _passed(f"Dockerfile valide : base {base}, dépendances en cache, utilisateur {users[-1]}, port 5000.")


def check_start_order(start_order: Any) -> None:
    """``start_order``: the services without profile, each after every service it depends on."""
    require(start_order, "start_order")
    order = list(start_order)
    services = compose_services(include_profiles=False)
    if len(order) != len(set(order)):
        twice = sorted({name for name in order if order.count(name) > 1})
        raise CheckFailed(f"chaque service doit apparaître une seule fois ; en double : {', '.join(twice)}.")
    _compare_keys(dict.fromkeys(order), services, "start_order")
    position = {name: index for index, name in enumerate(order)}
    for name in order:
        for dependency in services[name].get("depends_on", {}):
            if position[dependency] > position[name]:
                raise CheckFailed(
                    f"« {name} » démarre avant « {dependency} », dont il dépend (depends_on) : un tri "
                    "topologique (graphlib.TopologicalSorter) place chaque service après ses dépendances."
                )
    _passed(f"ordre de démarrage valide pour {len(order)} services : {order[0]} … {order[-1]}.")


def check_health_and_init(healthchecks: Any, init_jobs: Any) -> None:
    """``healthchecks``: long-running service → its test; ``init_jobs``: the one-shot services."""
    _require_mapping(healthchecks, "healthchecks")
    require(init_jobs, "init_jobs")
    services = compose_services(include_profiles=False)
    one_shot = {name for name, spec in services.items() if spec.get("restart", "no") == "no"}
    if set(init_jobs) != one_shot:
        raise CheckFailed(
            f"`init_jobs` doit contenir les {len(one_shot)} tâches ponctuelles (restart: \"no\"), pas "
            f"{sorted(init_jobs)} : ce sont celles que d'autres services attendent avec "
            "condition: service_completed_successfully."
        )
    expected = {name: spec["healthcheck"]["test"] for name, spec in services.items() if name not in one_shot}
    _compare_keys(healthchecks, expected, "healthchecks")
    wrong = [name for name in expected if healthchecks[name] != expected[name]]
    if wrong:
        raise CheckFailed(f"la vérification de santé de « {wrong[0]} » est {expected[wrong[0]]!r}, "
                          f"pas {healthchecks[wrong[0]]!r} : lisez la clé healthcheck.test du service.")
    _passed(
        f"{len(expected)} services surveillés par une vérification de santé, {len(one_shot)} tâches d'initialisation."
    )


def check_named_volumes(named_volumes: Any) -> None:
    """``named_volumes``: service → sorted list of the named volumes it mounts (not the bind mounts)."""
    _require_mapping(named_volumes, "named_volumes")
    expected = {}
    for name, spec in compose_services().items():
        sources = sorted({str(volume).split(":")[0] for volume in spec.get("volumes", [])
                          if not str(volume).startswith((".", "/", "~"))})
        if sources:
            expected[name] = sources
    _compare_keys(named_volumes, expected, "named_volumes")
    wrong = [name for name in expected if sorted(named_volumes[name]) != expected[name]]
    if wrong:
        raise CheckFailed(
            f"« {wrong[0]} » monte les volumes nommés {expected[wrong[0]]}, pas {named_volumes[wrong[0]]} : "
            "un volume nommé n'est pas un chemin (./stack/… est un montage du dossier de la machine)."
        )
    _passed(f"données persistantes : {', '.join(f'{name} → {volumes[0]}' for name, volumes in expected.items())}.")


def raw_topic_partitions() -> int:
    """Partitions of the raw topic, as the compose topic job creates it."""
    command = " ".join(map(str, compose_services()["kafka-init"]["command"]))
    return int(re.search(r'--topic "\$\$?KAFKA_TOPIC_RAW" --partitions (\d+)', command).group(1))


def check_consumer_scaling(assign_partitions: Any, max_consumers: Any) -> None:
    """``assign_partitions(consumers, partitions)`` → partitions per consumer; ``max_consumers``: useful maximum."""
    require(max_consumers, "max_consumers")
    if assign_partitions is None or assign_partitions is Ellipsis or not callable(assign_partitions):
        raise CheckFailed(
            "`assign_partitions` doit être une fonction : complétez la cellule « À FAIRE » qui la définit."
        )
    partitions = raw_topic_partitions()
    for consumers, total in ((1, partitions), (2, partitions), (partitions, partitions), (5, partitions), (2, 5)):
        result = assign_partitions(consumers, total)
        expected = [total // consumers + (1 if index < total % consumers else 0) for index in range(consumers)]
        if list(result or []) != expected:
            raise CheckFailed(
                f"assign_partitions({consumers}, {total}) renvoie {result!r} au lieu de {expected} : chaque "
                "consommateur reçoit total // consommateurs partitions, et les premiers une de plus pour le reste."
            )
    if max_consumers != partitions:
        raise CheckFailed(
            f"`max_consumers` vaut {max_consumers!r} : au-delà du nombre de partitions ({partitions}), un "
            "consommateur de plus du même groupe reste inactif."
        )
    _passed(
        f"{partitions} partitions : jusqu'à {partitions} consommateurs travaillent en parallèle, "
        "les suivants attendent."
    )


def published_ports(values: Mapping[str, str] | None = None) -> dict[str, list[tuple[str, int, int]]]:
    """Service → (host address, host port, container port) of each published port, variables resolved."""
    values = values if values is not None else {**env_values(".env.example"), **env_values(".env")}
    published = {}
    for name, spec in compose_services().items():
        entries = []
        for port in spec.get("ports", []):
            parts = _expand(port, values).split(":")
            host_ip = parts[0] if len(parts) == 3 else "0.0.0.0"
            entries.append((host_ip, int(parts[-2]), int(parts[-1])))
        if entries:
            published[name] = entries
    return published


def check_published_ports(published: Any) -> None:
    """``published``: service → list of (host address, host port, container port), from your .env."""
    _require_mapping(published, "published")
    expected = published_ports()
    _compare_keys(published, expected, "published")
    for name, entries in expected.items():
        observed = [tuple(entry) for entry in published[name]]
        if observed != entries:
            raise CheckFailed(
                f"pour « {name} », attendu {entries}, obtenu {observed} : remplacez chaque ${{VARIABLE}} par sa "
                "valeur de .env, et convertissez les ports en entiers."
            )
    exposed = [name for name, entries in expected.items() if any(ip != "127.0.0.1" for ip, _, _ in entries)]
    if exposed:
        raise CheckFailed(f"{', '.join(exposed)} publie un port au-delà de 127.0.0.1 : corrigez docker-compose.yml.")
    _passed(f"{len(expected)} interfaces publiées, toutes sur 127.0.0.1 ; PostgreSQL et Kafka : aucun port publié.")


def check_secret_variables(secret_variables: Any) -> None:
    """``secret_variables``: the ${VARIABLES} of docker-compose.yml whose .env.example value is random."""
    require(secret_variables, "secret_variables")
    from dpe_pipeline.settings import RANDOM_PLACEHOLDER, project_dir

    text = (project_dir() / "docker-compose.yml").read_text(encoding="utf-8")
    example = env_values(".env.example")
    expected = {name for name in COMPOSE_VARIABLE.findall(text) if example.get(name) == RANDOM_PLACEHOLDER}
    observed = set(secret_variables)
    if observed != expected:
        missing, extra = sorted(expected - observed), sorted(observed - expected)
        detail = f"il manque {', '.join(missing)}" if missing else f"{', '.join(extra)} n'en sont pas"
        raise CheckFailed(
            f"{detail} : gardez les variables ${{…}} de docker-compose.yml dont la valeur dans .env.example "
            f"est « {RANDOM_PLACEHOLDER} » (./dpe les remplace par des secrets aléatoires dans .env)."
        )
    _passed(f"{len(expected)} secrets, tous lus dans .env, aucun écrit dans docker-compose.yml ni dans une image.")


# --- lab 3: Kafka + PostgreSQL --------------------------------------------------------------
# The truth is read from the live stack, never from the learner's variables: the broker's topic
# descriptions and offsets, the group coordinator, the messages themselves, a count in PostgreSQL.

KAFKA_DOWN_HINT = "Kafka ne répond pas ({error}) : démarrez-le avec « ./dpe up kafka », puis relancez la cellule."


def _kafka_admin():
    from dpe_pipeline import kafka_io

    try:
        return kafka_io.create_admin()
    except Exception as error:  # noqa: BLE001 - NoBrokersAvailable and friends: the learner gets one sentence
        raise CheckFailed(KAFKA_DOWN_HINT.format(error=error)) from error


def _topic_partition_count(name: str) -> int | None:
    """Partitions of a topic, or None when it does not exist."""
    admin = _kafka_admin()
    try:
        if name not in set(admin.list_topics()):
            return None
        (description,) = admin.describe_topics([name])
    finally:
        admin.close()
    return len(description["partitions"]) if description["error_code"] == 0 else None


def _read_whole_topic(name: str, timeout: float = 30) -> list[Any]:
    """Every message of a small topic, from the first retained offset to the end, without a group."""
    import time

    from kafka import KafkaConsumer, TopicPartition

    from dpe_pipeline import kafka_io

    reader = KafkaConsumer(bootstrap_servers=kafka_io.bootstrap_servers(), group_id=None, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(name, p) for p in sorted(reader.partitions_for_topic(name) or [])]
        if not partitions:
            return []
        reader.assign(partitions)
        reader.seek_to_beginning(*partitions)
        end = reader.end_offsets(partitions)
        messages: list[Any] = []
        deadline = time.monotonic() + timeout
        while any(reader.position(tp) < end[tp] for tp in partitions) and time.monotonic() < deadline:
            for batch in reader.poll(timeout_ms=500).values():
                messages.extend(batch)
        return messages
    finally:
        reader.close(autocommit=False)


def _lab_settings():
    from dpe_pipeline.settings import get_settings

    return get_settings()


def _coordinator_assignment(group: str) -> dict[str, list[int]]:
    """Member → partitions of a consumer group, as its coordinator describes it now."""
    admin = _kafka_admin()
    try:
        description = admin.describe_groups([group])[group]
    finally:
        admin.close()
    assignment = {}
    for member in description.get("members") or []:
        owned = (member.get("member_assignment") or {}).get("assigned_partitions", [])
        assignment[member["member_id"]] = sorted(p for item in owned for p in item["partitions"])
    return assignment


def check_lab_topics(raw_topic: Any, dlq_topic: Any) -> None:
    """Exercise 1: the learner's two topics exist, with 3 and 1 partitions."""
    from dpe_pipeline.kafka_io import DLQ_TOPIC_PARTITIONS, RAW_TOPIC_PARTITIONS

    settings = _lab_settings()
    if raw_topic != settings.lab_topic("dpe.raw") or dlq_topic != settings.lab_topic("dpe.dlq"):
        raise CheckFailed(
            f"vos topics s'appellent {settings.lab_topic('dpe.raw')} et {settings.lab_topic('dpe.dlq')} "
            "(`settings.lab_topic(...)`) : n'écrivez jamais dans dpe.raw ni dans dpe.dlq, ceux du pipeline."
        )
    for name, expected in ((raw_topic, RAW_TOPIC_PARTITIONS), (dlq_topic, DLQ_TOPIC_PARTITIONS)):
        partitions = _topic_partition_count(name)
        if partitions is None:
            raise CheckFailed(
                f"le topic {name} n'existe pas : appelez `kafka_io.ensure_topics` avec un dict "
                "{nom du topic: nombre de partitions} et `settings`, puis relancez cette vérification."
            )
        if partitions != expected:
            raise CheckFailed(
                f"{name} a {partitions} partition(s) au lieu de {expected} : on ne peut pas réduire le nombre de "
                "partitions d'un topic ; relancez la cellule de mise en place (elle supprime vos topics), "
                "puis créez-les avec le bon nombre."
            )
    _passed(f"{raw_topic} ({RAW_TOPIC_PARTITIONS} partitions) et {dlq_topic} ({DLQ_TOPIC_PARTITIONS}) existent.")


def check_produced(delivered: Any, records: Any, raw_topic: str) -> None:
    """Exercise 2: every record sent once to the learner's topic, keyed by ``numero_dpe``."""
    require(delivered, "delivered")
    if not all(hasattr(item, "partition") and hasattr(item, "offset") for item in delivered):
        raise CheckFailed(
            "`delivered` doit contenir les métadonnées renvoyées par `future.get(timeout=30)` "
            "(objets avec `topic`, `partition`, `offset`), pas les futures eux-mêmes."
        )
    wrong_topics = sorted({item.topic for item in delivered} - {raw_topic})
    if wrong_topics:
        raise CheckFailed(f"des messages sont partis vers {', '.join(wrong_topics)} : envoyez-les dans `raw_topic`.")
    if len(delivered) != len(records):
        raise CheckFailed(
            f"{_number(len(delivered))} accusés de réception pour {_number(len(records))} DPE : envoyez chaque "
            "enregistrement de `records` et gardez le résultat de `future.get(...)` de chacun."
        )
    messages = _read_whole_topic(raw_topic)
    wanted = Counter(str(record.get("numero_dpe")) for record in records)
    keys = Counter(message.key.decode("utf-8", "replace") for message in messages if message.key is not None)
    if not messages:
        raise CheckFailed(f"{raw_topic} est vide : `producer.send(...)` n'écrit qu'un tampon, appelez `flush()`.")
    sent = sum(keys[numero] for numero in wanted)  # messages carrying the key of a sent DPE
    if sent == 0:
        raise CheckFailed(
            "aucun message du topic n'a pour clé un `numero_dpe` : passez `key=` à `producer.send`, avec la clé "
            "renvoyée par `kafka_io.encode_dpe_record(record)` (le numéro du DPE en UTF-8)."
        )
    if sent > len(records):
        raise CheckFailed(
            f"{raw_topic} contient {_number(sent)} DPE pour {_number(len(records))} envoyés : la cellule a tourné "
            "plusieurs fois. Relancez la cellule de mise en place (section 0), puis les exercices 1 et 2 une fois."
        )
    if sent < len(records):
        raise CheckFailed(
            f"seuls {_number(sent)} DPE sur {_number(len(records))} ont la bonne clé dans {raw_topic} : chaque "
            "message a pour clé le `numero_dpe` de son DPE (`kafka_io.encode_dpe_record`)."
        )
    per_partition = Counter(message.partition for message in messages if message.key is not None)
    shares = " / ".join(_number(per_partition[p]) for p in sorted(per_partition))
    _passed(f"{_number(len(records))} DPE dans {raw_topic}, clé numero_dpe, répartis {shares} entre les partitions.")


def check_postgres_rows(schema: Any, raw_topic: str, group_id: str) -> None:
    """Exercise 3: the learner's consumer stored every valid DPE, dead-lettered the rest, committed its offsets."""
    import psycopg2

    from dpe_pipeline import kafka_io, postgres
    from dpe_pipeline.validation import InvalidDpeMessage, validate_dpe_message

    settings = _lab_settings()
    if schema != settings.lab_namespace:
        raise CheckFailed(f"écrivez dans votre schéma {settings.lab_namespace}, pas dans {schema!r}.")
    valid, invalid = set(), 0
    for message in _read_whole_topic(raw_topic):
        try:
            valid.add(validate_dpe_message(message.value)["numero_dpe"])
        except InvalidDpeMessage:
            invalid += 1
    try:
        with postgres.connect(settings) as connection:
            stored = postgres.count_rows(connection, schema)
        connection.close()
    except psycopg2.errors.UndefinedTable as error:
        raise CheckFailed(f"la table {schema}.dpe n'existe pas : exécutez la cellule qui appelle "
                          "`postgres.ensure_raw_table(connection, lab_schema)`.") from error
    except psycopg2.OperationalError as error:
        raise CheckFailed(f"PostgreSQL ne répond pas ({error}) : « ./dpe up postgres ».") from error
    if stored == 0:
        raise CheckFailed(
            f"la table {schema}.dpe est vide : dans `process_batch`, écrivez les lignes valides avec "
            "`postgres.upsert_raw_dpe(cursor, rows, lab_schema)` puis validez la transaction (`connection.commit()`)."
        )
    if stored < len(valid):
        raise CheckFailed(
            f"{_number(stored)} DPE dans {schema}.dpe, mais {_number(len(valid))} DPE valides distincts dans "
            f"{raw_topic} : chaque lot doit être écrit puis validé (`connection.commit()`) avant le suivant."
        )
    lag = kafka_io.consumer_lag(group_id, raw_topic).total
    if lag:
        raise CheckFailed(
            f"les lignes sont dans PostgreSQL mais le groupe {group_id} a encore un lag de {_number(lag)} : après "
            "`connection.commit()`, validez les offsets du lot avec `kafka_consumer.commit(next_offsets(batch))`."
        )
    letters = [m for m in _read_whole_topic(settings.lab_topic("dpe.dlq"))
               if dict(m.headers or []).get("dlq.group", b"").decode("utf-8", "replace") == group_id]
    if len(letters) < invalid:
        raise CheckFailed(
            f"{raw_topic} contient {invalid} message(s) invalide(s), {len(letters)} seulement dans la DLQ : envoyez "
            "chaque lettre morte avec `kafka_io.send_dead_letter(...)`, puis `producer.flush()` avant d'écrire."
        )
    _passed(f"{_number(stored)} DPE dans {schema}.dpe (un par numero_dpe), {len(letters)} message(s) invalide(s) "
            f"dans la DLQ, lag du groupe {group_id} : 0.")


def check_consumer_lag(lag_by_partition: Any, group_id: str, raw_topic: str) -> None:
    """Exercise 4: the learner's lag per partition equals what the admin API reports."""
    require(lag_by_partition, "lag_by_partition")
    from dpe_pipeline import kafka_io

    _require_mapping(lag_by_partition, "lag_by_partition", "numéro de partition → lag")
    truth = kafka_io.consumer_lag(group_id, raw_topic)
    expected = {partition.partition: partition.lag for partition in truth.partitions}
    observed = {getattr(key, "partition", key): value for key, value in lag_by_partition.items()}
    if set(observed) != set(expected):
        raise CheckFailed(f"les clés de `lag_by_partition` sont les numéros de partition {sorted(expected)}, "
                          f"pas {sorted(observed, key=str)}.")
    if truth.total == 0:
        raise CheckFailed("le lag du groupe est nul : exécutez d'abord la cellule qui renvoie 500 messages, "
                          "puis recalculez le lag (sans relancer le consommateur entre les deux).")
    wrong = [p for p in expected if observed[p] != expected[p]]
    if wrong:
        p = wrong[0]
        raise CheckFailed(
            f"partition {p} : lag calculé {observed[p]!r}, le coordinateur dit {expected[p]} — fin du journal "
            "(`end_offsets`) moins offset validé par le groupe (`committed`), pas moins la position d'un autre lecteur."
        )
    _passed(f"lag de {group_id} : {expected}, soit {_number(truth.total)} messages à traiter.")


def _history_steps(assignment_history: Any) -> list[dict[str, list[int]]]:
    if not isinstance(assignment_history, (list, tuple)):
        raise CheckFailed("`assignment_history` doit être une liste de couples (moment, répartition).")
    steps = []
    for item in assignment_history:
        assignment = item[-1] if isinstance(item, (list, tuple)) else item
        if not isinstance(assignment, Mapping):
            raise CheckFailed("chaque élément de `assignment_history` est un couple (moment, répartition), la "
                              "répartition étant le dict {membre: partitions} renvoyé par `wait_for_members`.")
        steps.append({member: sorted(partitions) for member, partitions in assignment.items()})
    return steps


def check_rebalance(assignment_history: Any, group: str) -> None:
    """Exercise 5: one member, then two sharing the partitions, then the survivor alone after a crash."""
    require(assignment_history, "assignment_history")
    steps = _history_steps(assignment_history)
    if len(steps) < 3:
        raise CheckFailed(f"`assignment_history` a {len(steps)} répartition(s), il en faut trois : un "
                          "consommateur, deux consommateurs, puis après la panne du premier.")
    everything = list(range(_topic_partition_count(_lab_settings().lab_topic("dpe.raw")) or 3))
    one, two, after = steps[0], steps[1], steps[2]
    if len(one) != 1 or next(iter(one.values())) != everything:
        raise CheckFailed(f"au départ, un seul membre doit lire les partitions {everything} : {one}.")
    owned = sorted(p for partitions in two.values() for p in partitions)
    if len(two) != 2 or owned != everything:
        raise CheckFailed(f"avec deux consommateurs, chaque partition a exactement un propriétaire : {two}. "
                          "Attendez avec `wait_for_members(pool_group, 2)` avant de relever la répartition.")
    if len(after) != 1 or next(iter(after.values())) != everything or not set(after) <= set(two):
        raise CheckFailed(f"après la panne, le survivant doit avoir repris toutes les partitions : {after}. "
                          "Tuez `first` avec `first.kill()`, puis `wait_for_members(pool_group, 1)`.")
    now = _coordinator_assignment(group)
    if now != after:
        raise CheckFailed(f"le coordinateur décrit aujourd'hui {now or 'un groupe vide'}, pas {after} : "
                          "relancez la cellule qui démarre le premier consommateur, puis l'exercice.")
    _passed(f"deux rééquilibrages : 1 membre {everything} → 2 membres {sorted(two.values())} → "
            f"le survivant reprend {everything}.")


def check_dead_letters(dead_letters: Any, dlq_topic: str, my_bad_value: bytes) -> None:
    """Exercise 6: the whole dead-letter topic read back, with its headers, including the learner's message."""
    require(dead_letters, "dead_letters")
    if not all(isinstance(letter, Mapping) for letter in dead_letters):
        raise CheckFailed("chaque élément de `dead_letters` est le dict renvoyé par `kafka_io.read_dead_letter`.")
    if not all("dlq.reason" in letter for letter in dead_letters):
        raise CheckFailed("des lettres n'ont pas d'en-tête « dlq.reason » : lisez-vous bien `dlq_topic`, et "
                          "décodez-vous chaque message avec `kafka_io.read_dead_letter` ?")
    truth = _read_whole_topic(dlq_topic)
    if len(dead_letters) != len(truth):
        raise CheckFailed(
            f"{len(dead_letters)} lettre(s) lue(s), {dlq_topic} en contient {len(truth)} : lisez depuis le début "
            "(`auto_offset_reset=\"earliest\"`), sans groupe (`group_id=None`), avec `consumer_timeout_ms=5000`."
        )
    mine = [letter for letter in dead_letters if letter.get("value") == my_bad_value]
    if not mine:
        raise CheckFailed("votre message invalide n'est pas (encore) dans la DLQ : le consommateur survivant "
                          "tourne-t-il encore ? Attendez quelques secondes, puis relisez la DLQ.")
    reasons = {letter["dlq.reason"] for letter in dead_letters}
    _passed(f"{len(dead_letters)} lettres mortes lues, {len(reasons)} raison(s) distincte(s) ; la vôtre : "
            f"« {mine[0]['dlq.reason']} ».")


# --- lab 4: Spark, Iceberg, MinIO ----------------------------------------------------------
# The truth of these checks is read independently of the learner's code: the Spark master's
# /json/ endpoint, a count in PostgreSQL, the Iceberg catalog through PyIceberg, boto3.


def _spark_master_state() -> dict:
    from dpe_pipeline.native.spark import master_state
    from dpe_pipeline.settings import get_settings

    try:
        return master_state(get_settings(), timeout=5)
    except OSError as error:
        raise CheckFailed(
            f"le maître Spark ne répond pas ({error}) : démarrez le cluster avec « ./dpe up spark-worker »."
        ) from error


def _lab_table(table: str) -> str:
    from dpe_pipeline.settings import get_settings

    return f"lake.{get_settings().lab_namespace}.{table}"


def _raw_count(schema: str) -> int:
    from dpe_pipeline import postgres

    with postgres.connect() as connection:
        count = postgres.count_rows(connection, schema)
    connection.close()
    return count


def _require_spark_frame(df: Any, name: str) -> None:
    require(df, name)
    from pyspark.sql import DataFrame

    if not isinstance(df, DataFrame):
        raise CheckFailed(f"`{name}` devrait être un DataFrame Spark (pyspark.sql.DataFrame), pas un "
                          f"{type(df).__name__} : n'appelez ni .collect() ni .toPandas().")


def check_master_info(master_info: Any) -> None:
    """Exercise 1: the master's ``/json/`` document, read by the learner."""
    require(master_info, "master_info")
    if not isinstance(master_info, Mapping) or "workers" not in master_info:
        raise CheckFailed("`master_info` doit être le JSON décodé de http://127.0.0.1:<port UI>/json/ "
                          "(un dict avec les clés « workers », « cores », « activeapps »…) : `.json()` sur la réponse.")
    truth = _spark_master_state()
    alive = [worker for worker in master_info["workers"] if worker.get("state") == "ALIVE"]
    if not alive:
        raise CheckFailed("aucun worker ALIVE dans `master_info` : le cluster n'a pas de worker ; "
                          "lancez « ./dpe up spark-worker » puis relisez /json/.")
    if master_info.get("url") != truth.get("url"):
        raise CheckFailed(f"`master_info` décrit le maître {master_info.get('url')} alors que le cours utilise "
                          f"{truth.get('url')} : lisez l'URL donnée par `settings.spark_master_ui_port`.")
    cores = sum(worker.get("cores", 0) for worker in alive)
    _passed(f"cluster lu : {len(alive)} worker(s) ALIVE, {cores} cœurs, maître {truth.get('url')}.")


def check_partitioned_read(raw_df: Any, schema: str, partitions: int) -> None:
    """Exercise 2: ``raw_df``, the learner's raw table read over JDBC in ``partitions`` partitions."""
    _require_spark_frame(raw_df, "raw_df")
    actual = raw_df.rdd.getNumPartitions()
    if actual != partitions:
        hint = (f"`raw_df` a {actual} partition(s) au lieu de {partitions} : "
                "passez la liste `predicates` (une condition par partition) à `spark.read.jdbc`.")
        raise CheckFailed(hint)
    expected = _raw_count(schema)
    count = raw_df.count()
    if count != expected:
        more = count > expected
        raise CheckFailed(
            f"`raw_df` compte {_number(count)} lignes, la table {schema}.dpe en a {_number(expected)} : "
            + ("des lignes sont lues deux fois, vos prédicats se recouvrent." if more else
               "des lignes manquent : chaque ligne doit vérifier exactement un prédicat (modulo N, valeurs 0 à N-1).")
        )
    _passed(f"lecture JDBC en {partitions} partitions : {_number(count)} lignes, ni doublon ni oubli.")


def check_clean_split(valid_df: Any, rejected_df: Any, raw_df: Any) -> None:
    """Exercise 3: the raw rows split into valid and rejected rows, with reasons."""
    _require_spark_frame(valid_df, "valid_df")
    _require_spark_frame(rejected_df, "rejected_df")
    total, valid, rejected = raw_df.count(), valid_df.count(), rejected_df.count()
    if valid + rejected != total:
        raise CheckFailed(f"{_number(valid)} lignes valides + {_number(rejected)} rejetées ≠ {_number(total)} lignes "
                          "brutes : aucune ligne ne doit disparaître, gardez les deux résultats de `clean_dpe`.")
    if "raisons" not in rejected_df.columns:
        raise CheckFailed("`rejected_df` n'a pas de colonne « raisons » : inversez-vous `valid_df` et `rejected_df` ?")
    _passed(f"{_number(valid)} DPE valides, {_number(rejected)} mis en quarantaine avec leur raison.")


def check_lakehouse_tables(report: Any, spark: Any) -> None:
    """Exercise 4: the job ran into the learner's namespace (``lake.lab_<id>.*``)."""
    require(report, "report")
    from pyspark.sql import functions as F  # noqa: N812

    table = _lab_table("logements")
    if not spark.catalog.tableExists(table):
        raise CheckFailed(f"la table {table} n'existe pas : passez `namespace=settings.lab_namespace` à "
                          "`run_lakehouse_job` (jamais « dpe », réservé au pipeline de démonstration).")
    rows = spark.table(table)
    count, distinct = rows.count(), rows.select(F.countDistinct("numero_dpe")).first()[0]
    if count != distinct:
        raise CheckFailed(f"{table} contient {_number(count - distinct)} doublon(s) de numero_dpe : "
                          "gardez la version la plus récente de chaque DPE (`latest_per_dpe`) avant le MERGE.")
    quarantine = spark.table(_lab_table("quarantaine")).count()
    _passed(f"{table} : {_number(count)} logements, un par DPE ; {_number(quarantine)} ligne(s) en quarantaine.")


def check_time_travel(first_snapshot_id: Any, logements_v1: Any) -> None:
    """Exercise 5: the table as it was at its first snapshot (``VERSION AS OF``)."""
    require(first_snapshot_id, "first_snapshot_id")
    _require_spark_frame(logements_v1, "logements_v1")
    from dpe_pipeline import lakehouse
    from dpe_pipeline.settings import get_settings

    table = lakehouse.load_lake_catalog().load_table((get_settings().lab_namespace, "logements"))
    snapshots = [snapshot.snapshot_id for snapshot in table.snapshots()]
    if int(first_snapshot_id) not in snapshots:
        raise CheckFailed(f"{first_snapshot_id} n'est pas un snapshot de la table logements : prenez un "
                          "`snapshot_id` de la table de métadonnées `….logements.snapshots`.")
    if int(first_snapshot_id) != min(snapshots, key=lambda sid: table.snapshot_by_id(sid).timestamp_ms):
        raise CheckFailed("`first_snapshot_id` n'est pas le premier snapshot : triez `….snapshots` par "
                          "`committed_at` croissant.")
    expected = table.scan(snapshot_id=int(first_snapshot_id)).to_arrow().num_rows
    count = logements_v1.count()
    if count != expected:
        raise CheckFailed(f"`logements_v1` a {_number(count)} lignes ; au premier snapshot la table en avait "
                          f"{_number(expected)} : lisez-la avec « VERSION AS OF {first_snapshot_id} ».")
    _passed(f"voyage dans le temps : {_number(count)} lignes au snapshot {first_snapshot_id}.")


def check_schema_evolution(spark: Any, column: str = "passoire") -> None:
    """Exercise 6: a column added to ``logements`` (ALTER TABLE) and filled for every row."""
    from pyspark.sql import functions as F  # noqa: N812

    table = _lab_table("logements")
    if not spark.catalog.tableExists(table):
        raise CheckFailed(f"la table {table} n'existe pas encore : faites d'abord l'exercice 4 (le job), "
                          "puis complétez la cellule « À FAIRE » de cet exercice.")
    if column not in spark.table(table).columns:
        raise CheckFailed(f"{table} n'a pas de colonne « {column} » : ajoutez-la avec "
                          f"« ALTER TABLE {table} ADD COLUMN {column} boolean ».")
    rows = spark.table(table)
    wrong = rows.filter(F.col(column).isNull() | (F.col(column) != F.col("etiquette_dpe").isin("F", "G"))).count()
    if wrong:
        raise CheckFailed(f"{_number(wrong)} ligne(s) où « {column} » est vide ou faux : remplissez-la avec "
                          f"« UPDATE {table} SET {column} = etiquette_dpe IN ('F', 'G') ».")
    _passed(f"colonne « {column} » ajoutée sans réécrire la table, renseignée sur {_number(rows.count())} lignes.")


def check_table_files(table_files: Any) -> None:
    """Exercise 7: the keys of the table's objects in MinIO, listed with boto3."""
    require(table_files, "table_files")
    from dpe_pipeline import lakehouse
    from dpe_pipeline.settings import get_settings

    truth = {item.key for item in lakehouse.list_table_files(get_settings().lab_namespace, "logements")}
    keys = {str(getattr(item, "key", item.get("Key") if isinstance(item, Mapping) else item)) for item in table_files}
    if not keys & truth:
        raise CheckFailed("aucune clé de `table_files` n'appartient à la table logements : listez le bucket avec "
                          "`Prefix=` égal au chemin de la table (sans « s3://warehouse/ »).")
    if keys != truth:
        raise CheckFailed(f"{len(keys)} objet(s) listés, la table en compte {len(truth)} : un seul appel à "
                          "`list_objects_v2` renvoie au plus 1 000 clés, utilisez un paginator.")
    data = sum(1 for key in keys if "/data/" in key)
    _passed(f"{len(keys)} objets dans MinIO : {data} fichiers Parquet de données, le reste en métadonnées.")


def check_pyiceberg_read(pyiceberg_df: Any, spark: Any) -> None:
    """Exercise 8: the same table read without Spark, through PyIceberg."""
    require(pyiceberg_df, "pyiceberg_df")
    import pandas as pd

    if not isinstance(pyiceberg_df, pd.DataFrame):
        raise CheckFailed("`pyiceberg_df` doit être un DataFrame pandas : terminez par `.to_pandas()`.")
    expected = spark.table(_lab_table("logements")).count()
    if len(pyiceberg_df) != expected:
        raise CheckFailed(f"`pyiceberg_df` a {_number(len(pyiceberg_df))} lignes, Spark en lit {_number(expected)} : "
                          "chargez la table « logements » de votre namespace, sans filtre.")
    _passed(f"PyIceberg lit les mêmes {_number(expected)} lignes que Spark, sans cluster.")


# --- lab 5: Trino / Superset --------------------------------------------------------------------


def _trino_rows(sql: str) -> Any:
    from dpe_pipeline.trino_queries import query

    try:
        return query(sql)
    except Exception as error:  # noqa: BLE001 - the learner gets the reason in French
        raise CheckFailed(
            f"la vérification n'a pas pu interroger Trino ({type(error).__name__}: {str(error)[:200]}). "
            "Démarrez-le avec « ./dpe up trino-worker » puis relancez la cellule."
        ) from error


def check_trino_nodes(nodes: Any) -> None:
    """``nodes``: a DataFrame of ``system.runtime.nodes`` (node_id, coordinator, state)."""
    require(nodes, "nodes")
    missing = {"node_id", "coordinator", "state"} - set(getattr(nodes, "columns", []))
    if missing:
        raise CheckFailed(f"il manque les colonnes {sorted(missing)} : sélectionnez node_id, coordinator, state.")
    truth = _trino_rows("SELECT node_id, coordinator FROM system.runtime.nodes WHERE state = 'active'")
    if sorted(nodes["node_id"]) != sorted(truth["node_id"]):
        raise CheckFailed(
            f"vous avez {len(nodes)} nœud(s), Trino en compte {len(truth)} actifs : interrogez "
            "system.runtime.nodes sans filtre."
        )
    if int(nodes["coordinator"].sum()) != 1:
        raise CheckFailed("il doit y avoir exactement un coordinateur (coordinator = true).")
    _passed(f"{len(nodes)} nœuds actifs : 1 coordinateur et {len(nodes) - 1} worker(s).")


def check_federated_join(joined: Any, department: str, lake_schema: str, raw_schema: str = "raw") -> None:
    """``joined``: one row per label with ``nb_bruts`` (PostgreSQL) and ``nb_dans_le_lac`` (Iceberg).

    ``raw_schema`` is the PostgreSQL schema of the raw rows: ``raw`` for the demo pipeline,
    the learner's namespace in the lab.
    """
    require(joined, "joined")
    missing = {"etiquette_dpe", "nb_bruts", "nb_dans_le_lac"} - set(getattr(joined, "columns", []))
    if missing:
        raise CheckFailed(f"il manque les colonnes {sorted(missing)} dans le résultat de la jointure.")
    raw_table = f"postgresql.{raw_schema}.dpe"
    raw = _trino_rows(f"SELECT count(*) AS n FROM {raw_table} WHERE code_departement_ban = '{department}'")
    expected = int(raw["n"].iloc[0])
    if int(joined["nb_bruts"].sum()) != expected:
        raise CheckFailed(
            f"la jointure compte {int(joined['nb_bruts'].sum())} lignes brutes, PostgreSQL en a {expected} pour le "
            f"département {department} : partez de {raw_table}, filtrez sur le département et faites une "
            "jointure externe (LEFT JOIN) vers le lac."
        )
    if int(joined["nb_dans_le_lac"].sum()) == 0:
        raise CheckFailed(
            f"aucune ligne brute ne trouve sa ligne dans iceberg.{lake_schema}.logements : joignez sur numero_dpe."
        )
    # The truth per label, written as a semi-join rather than the learner's outer join
    truth = _trino_rows(
        f"SELECT etiquette_dpe, count(*) AS nb_bruts, count_if(numero_dpe IN "
        f"(SELECT numero_dpe FROM iceberg.{lake_schema}.logements)) AS nb_dans_le_lac "
        f"FROM {raw_table} WHERE code_departement_ban = '{department}' GROUP BY etiquette_dpe"
    )
    expected_by_label = {
        str(row.etiquette_dpe): (int(row.nb_bruts), int(row.nb_dans_le_lac)) for row in truth.itertuples()
    }
    observed_by_label = {
        str(row.etiquette_dpe): (int(row.nb_bruts), int(row.nb_dans_le_lac)) for row in joined.itertuples()
    }
    wrong = sorted(label for label in expected_by_label if observed_by_label.get(label) != expected_by_label[label])
    if wrong:
        label = wrong[0]
        raise CheckFailed(
            f"étiquette {label} : vous trouvez (nb_bruts, nb_dans_le_lac) = {observed_by_label.get(label)}, "
            f"la bonne réponse est {expected_by_label[label]} : groupez par l'étiquette de la ligne brute "
            "et comptez count(l.numero_dpe) pour les lignes du lac."
        )
    if list(joined["etiquette_dpe"]) != sorted(joined["etiquette_dpe"]):
        raise CheckFailed("triez le résultat par étiquette : ORDER BY r.etiquette_dpe.")
    _passed(
        f"{_number(expected)} lignes brutes (PostgreSQL) dont {_number(int(joined['nb_dans_le_lac'].sum()))} "
        "retrouvées dans le lac (Iceberg), en une seule requête Trino."
    )


def check_explain(plan: Any) -> None:
    """``plan``: the text of ``EXPLAIN`` of the federated query."""
    require(plan, "plan")
    text = str(plan)
    for catalog in ("postgresql", "iceberg"):
        if catalog not in text:
            raise CheckFailed(f"le plan ne lit pas le catalogue « {catalog} » : expliquez la requête fédérée entière.")
    if "Join" not in text:
        raise CheckFailed("le plan ne contient pas de jointure (Join) : utilisez EXPLAIN sur la requête fédérée.")
    _passed("plan distribué : deux lectures (PostgreSQL et Iceberg), une jointure, des échanges entre étapes.")


#: The columns of the BI view of lab 5 (exercise 4) and the Trino type each must have (None: any type).
BI_VIEW_COLUMNS: dict[str, str | None] = {
    "numero_dpe": None,
    "commune": None,
    "mois": None,
    "etiquette_dpe": None,
    "passoire": "boolean",
    "periode_construction": None,
    "surface_habitable_logement": None,
    "conso_5_usages_par_m2_ep": None,
    "cout_par_m2": None,
}


def _missing_bi_columns(columns: Iterable[str]) -> list[str]:
    present = {str(column).lower() for column in columns}
    return [column for column in BI_VIEW_COLUMNS if column not in present]


def check_bi_view(view: Any, learner_namespace: str, department: str | None = None) -> None:
    """``view``: the qualified name (catalog.schema.view) of the learner's view for BI.

    The view must expose every column of :data:`BI_VIEW_COLUMNS` (``passoire`` a boolean,
    true exactly for labels F and G) and, when ``department`` is given, return exactly the
    rows of ``logements`` of that department.
    """
    require(view, "view")
    parts = str(view).split(".")
    if len(parts) != 3 or parts[1] != learner_namespace:
        raise CheckFailed(
            f"« {view} » n'est pas dans votre espace : nommez la vue iceberg.{learner_namespace}.<nom>."
        )
    catalog, schema, name = parts
    kind = _trino_rows(
        f"SELECT table_type FROM {catalog}.information_schema.tables "
        f"WHERE table_schema = '{schema}' AND table_name = '{name}'"
    )
    if kind.empty or kind["table_type"].iloc[0] != "VIEW":
        raise CheckFailed(f"{view} n'existe pas ou n'est pas une vue : exécutez votre CREATE VIEW.")
    described = _trino_rows(
        f"SELECT column_name, data_type FROM {catalog}.information_schema.columns "
        f"WHERE table_schema = '{schema}' AND table_name = '{name}'"
    )
    types = {str(row.column_name).lower(): str(row.data_type).lower() for row in described.itertuples()}
    missing = _missing_bi_columns(types)
    if missing:
        raise CheckFailed(
            f"il manque à la vue {len(missing)} colonne(s) demandée(s) : {', '.join(missing)}. Reprenez la liste "
            "de l'énoncé dans le SELECT de votre CREATE OR REPLACE VIEW."
        )
    for column, expected_type in BI_VIEW_COLUMNS.items():
        if expected_type and types[column] != expected_type:
            raise CheckFailed(
                f"la colonne « {column} » est de type {types[column]}, il faut un {expected_type} : écrivez "
                "une condition, par exemple « etiquette_dpe IN ('F', 'G') AS passoire »."
            )
    rows = int(_trino_rows(f"SELECT count(*) AS n FROM {view}")["n"].iloc[0])
    if rows == 0:
        raise CheckFailed(f"la vue {view} ne renvoie aucune ligne : vérifiez son filtre.")
    if department is not None:
        expected = int(_trino_rows(
            f"SELECT count(*) AS n FROM {catalog}.{schema}.logements WHERE departement = '{department}'"
        )["n"].iloc[0])
        if rows != expected:
            raise CheckFailed(
                f"la vue renvoie {_number(rows)} lignes, la table logements en a {_number(expected)} pour le "
                f"département {department} : filtrez avec « WHERE departement = '{{department}}' » (f-string)."
            )
    wrong = int(_trino_rows(
        f"SELECT count(*) AS n FROM {view} "
        "WHERE passoire IS DISTINCT FROM (etiquette_dpe IN ('F', 'G'))"
    )["n"].iloc[0])
    if wrong:
        raise CheckFailed(
            f"« passoire » est fausse sur {_number(wrong)} ligne(s) : elle doit valoir true pour les étiquettes "
            "F et G, false pour les autres."
        )
    _passed(f"vue {view} : {_number(rows)} lignes, {len(types)} colonnes, prête pour Superset.")


def check_superset_session(api: Any) -> None:
    """``api``: a ``requests.Session`` logged in on Superset (JWT) with its CSRF token."""
    require(api, "api")
    import requests

    from dpe_pipeline.settings import get_settings

    if not isinstance(api, requests.Session):
        raise CheckFailed(f"`api` doit être une session `requests.Session()`, pas un {type(api).__name__}.")
    if not str(api.headers.get("Authorization", "")).startswith("Bearer "):
        raise CheckFailed("la session n'a pas d'en-tête « Authorization: Bearer <access_token> » : ajoutez le "
                          "jeton renvoyé par POST /api/v1/security/login à `api.headers`.")
    if not api.headers.get("X-CSRFToken"):
        raise CheckFailed("la session n'a pas d'en-tête « X-CSRFToken » : lisez le jeton sur "
                          "GET /api/v1/security/csrf_token/ (avec la même session) ; sans lui, tout POST est refusé.")
    url = f"{get_settings().superset_url}/api/v1/me/"
    try:
        answer = api.get(url, timeout=30)
    except requests.RequestException as error:
        raise CheckFailed(f"Superset ne répond pas ({error}) : démarrez-le avec « ./dpe up superset ».") from error
    if answer.status_code != 200:
        raise CheckFailed(f"GET /api/v1/me/ répond {answer.status_code} : le jeton est refusé ; reconnectez-vous "
                          "avec l'utilisateur et le mot de passe de Superset lus dans `settings`.")
    _passed(f"connecté à l'API de Superset en tant que « {answer.json()['result']['username']} ».")


def check_learner_dataset(dataset_id: Any, view: str) -> None:
    """``dataset_id``: the Superset dataset over the learner's view (``catalog.schema.view``)."""
    require(dataset_id, "dataset_id")
    from dpe_pipeline.superset import ProvisioningError, SupersetClient

    _, schema, name = str(view).split(".")
    try:
        dataset = SupersetClient.from_settings().request("GET", f"/api/v1/dataset/{int(dataset_id)}")["result"]
    except (ProvisioningError, TypeError, ValueError) as error:
        raise CheckFailed(f"aucun jeu de données n° {dataset_id!r} dans Superset ({str(error)[:150]}) : gardez "
                          "l'`id` renvoyé par POST /api/v1/dataset/.") from error
    if (dataset.get("schema"), dataset.get("table_name")) != (schema, name):
        raise CheckFailed(f"le jeu de données {dataset_id} lit {dataset.get('schema')}.{dataset.get('table_name')}, "
                          f"pas votre vue {schema}.{name} : donnez « schema » et « table_name » de la vue.")
    if dataset.get("sql"):
        raise CheckFailed("ce jeu de données est virtuel (SQL) : créez un jeu de données physique sur la vue, "
                          "sans champ « sql » ; la vue porte déjà la logique.")
    columns = [column["column_name"] for column in dataset.get("columns", [])]
    missing = _missing_bi_columns(columns)
    if missing:
        raise CheckFailed(
            f"le jeu de données {dataset_id} n'a pas les colonnes {', '.join(missing)} : complétez la vue "
            "(exercice 4), relancez sa vérification, puis rafraîchissez le jeu de données "
            "(PUT /api/v1/dataset/<id>/refresh) en relançant votre cellule."
        )
    passoire = next(column for column in dataset["columns"] if column["column_name"].lower() == "passoire")
    if passoire.get("type") and "BOOL" not in str(passoire["type"]).upper():
        raise CheckFailed(
            f"Superset voit « passoire » comme {passoire['type']}, pas comme un booléen : corrigez la vue "
            "(exercice 4), puis rafraîchissez le jeu de données en relançant votre cellule."
        )
    _passed(f"jeu de données {dataset_id} sur la vue {schema}.{name} : {len(columns)} colonnes ({', '.join(columns)}).")


def check_learner_chart(chart_id: Any, dashboard_id: Any, learner_id: str) -> None:
    """The learner's chart (name holds their id) is on their dashboard and returns rows."""
    require(chart_id, "chart_id")
    require(dashboard_id, "dashboard_id")
    from dpe_pipeline.superset import ProvisioningError, SupersetClient

    try:
        client = SupersetClient.from_settings()
        chart = client.request("GET", f"/api/v1/chart/{int(chart_id)}")["result"]
        dashboard = client.request("GET", f"/api/v1/dashboard/{int(dashboard_id)}")["result"]
        on_dashboard = client.request("GET", f"/api/v1/dashboard/{int(dashboard_id)}/charts")["result"]
        rows = client.chart_data(int(chart_id))
    except (ProvisioningError, TypeError, ValueError) as error:
        raise CheckFailed(
            f"Superset a refusé la demande ({str(error)[:200]}) : `chart_id` et `dashboard_id` doivent être les "
            "`id` renvoyés par vos POST (ou trouvés par `find_id`), et le query_context du graphique doit être valide."
        ) from error
    if learner_id not in chart["slice_name"] or learner_id not in dashboard["dashboard_title"]:
        raise CheckFailed(f"le graphique et le tableau de bord doivent contenir votre identifiant « {learner_id} ».")
    source = str(chart.get("datasource_name_text") or "")
    if not source.startswith(f"lab_{learner_id}."):
        raise CheckFailed(f"le graphique lit « {source} » : donnez-lui le jeu de données de votre vue "
                          f"(datasource_id), dans le schéma lab_{learner_id}.")
    if int(chart_id) not in {item["id"] for item in on_dashboard}:
        raise CheckFailed("le graphique n'est pas rattaché au tableau de bord : mettez à jour son champ dashboards.")
    if not rows:
        raise CheckFailed("le graphique ne renvoie aucune ligne : enregistrez un query_context qui lit votre vue.")
    if "etiquette_dpe" not in rows[0]:
        raise CheckFailed(f"les lignes du graphique ont les colonnes {sorted(rows[0])} : groupez par etiquette_dpe "
                          "(« columns » du query_context, « x_axis » des params).")
    _passed(f"graphique « {chart['slice_name']} » : {len(rows)} lignes, sur « {dashboard['dashboard_title']} ».")


# --- lab 6: Airflow (bonus) ----------------------------------------------------------------------

LAB6_TASKS = ("count_labels", "summarize", "publish")
LAB6_DAG_WAIT_SECONDS = 120


def _airflow():
    from dpe_pipeline.airflow_api import AirflowClient

    return AirflowClient.from_settings()


def _airflow_call(call, *args: Any, **kwargs: Any) -> Any:
    """An Airflow API call whose refusal becomes a French hint."""
    from dpe_pipeline.airflow_api import AirflowError

    try:
        return call(*args, **kwargs)
    except AirflowError as error:
        raise CheckFailed(str(error)) from error
    except OSError as error:
        raise CheckFailed(f"Airflow ne répond pas ({error}) : démarrez-le avec « ./dpe up airflow ».") from error


def lab_dag_id(learner_id: str) -> str:
    """The id of a learner's DAG in lab 6."""
    return f"lab_{learner_id}_dpe"


def check_airflow_token(token: Any) -> None:
    """The learner's JWT opens the REST API (``GET /api/v2/dags``)."""
    require(token, "token")
    import requests

    from dpe_pipeline.settings import get_settings

    session = requests.Session()
    session.trust_env = False
    reply = session.get(f"{get_settings().airflow_url}/api/v2/dags", params={"limit": 1},
                        headers={"Authorization": f"Bearer {token}"}, timeout=30)
    if reply.status_code == 401:
        raise CheckFailed("Airflow refuse ce jeton (401) : gardez le champ « access_token » de la réponse de "
                          "POST /auth/token, sans le préfixe « Bearer ».")
    if not reply.ok:
        raise CheckFailed(f"GET /api/v2/dags avec ce jeton répond {reply.status_code} : {reply.text[:200]}")
    _passed(f"jeton accepté : l'API voit {reply.json()['total_entries']} DAG.")


def _topological_order(tasks: list[dict]) -> list[str]:
    downstream = {task["task_id"]: sorted(task["downstream_task_ids"]) for task in tasks}
    upstream_count = Counter(child for children in downstream.values() for child in children)
    ready = sorted(task_id for task_id in downstream if not upstream_count[task_id])
    order = []
    while ready:
        task_id = ready.pop(0)
        order.append(task_id)
        for child in downstream[task_id]:
            upstream_count[child] -= 1
            if not upstream_count[child]:
                ready.append(child)
    return order


def check_main_dag_tasks(main_task_ids: Any, dag_id: str = "dpe_pipeline") -> None:
    """The main DAG's tasks, in the order their dependencies impose (it is a chain)."""
    require(main_task_ids, "main_task_ids")
    expected = _topological_order(_airflow_call(_airflow().tasks, dag_id))
    observed = list(main_task_ids)
    if sorted(observed) != sorted(expected):
        missing, extra = sorted(set(expected) - set(observed)), sorted(set(observed) - set(expected))
        raise CheckFailed(f"les tâches ne sont pas celles du DAG {dag_id} (manquantes : {missing}, en trop : "
                          f"{extra}) : lisez le champ « task_id » de chaque élément de « tasks ».")
    if observed != expected:
        raise CheckFailed("les tâches y sont, mais pas dans l'ordre d'exécution : partez de la tâche sans "
                          "amont et suivez « downstream_task_ids ».")
    _passed(f"{len(observed)} tâches, de {observed[0]} à {observed[-1]}.")


def check_interval_to_dates(interval_to_dates: Any) -> None:
    """The learner's function turns a data interval [start, end) into inclusive reception dates."""
    require(interval_to_dates, "interval_to_dates")
    import datetime as dt

    utc = dt.UTC
    cases = [
        ((dt.datetime(2024, 3, 1, tzinfo=utc), dt.datetime(2024, 3, 2, tzinfo=utc)), ("2024-03-01", "2024-03-01")),
        ((dt.datetime(2024, 2, 26, tzinfo=utc), dt.datetime(2024, 3, 4, tzinfo=utc)), ("2024-02-26", "2024-03-03")),
        ((dt.datetime(2023, 12, 1, tzinfo=utc), dt.datetime(2024, 1, 1, tzinfo=utc)), ("2023-12-01", "2023-12-31")),
    ]
    for (start, end), expected in cases:
        try:
            observed = tuple(interval_to_dates(start, end))
        except Exception as error:  # noqa: BLE001 - any error of the learner's function becomes a hint
            raise CheckFailed(f"interval_to_dates({start:%Y-%m-%d}, {end:%Y-%m-%d}) lève {error!r}.") from error
        if observed != expected:
            raise CheckFailed(
                f"pour l'intervalle [{start:%Y-%m-%d}, {end:%Y-%m-%d}), on attend {expected} et non {observed} : "
                "la fin d'un intervalle est exclue, alors que date_to est incluse (la veille de la fin), "
                "au format AAAA-MM-JJ."
            )
    _passed("intervalles quotidien, hebdomadaire et mensuel convertis en dates de réception incluses.")


def _lab_import_errors(dag_path: Path) -> list[dict]:
    return [error for error in _airflow_call(_airflow().import_errors)
            if Path(str(error.get("filename", ""))).name == dag_path.name]


def check_lab_dag(dag_path: Any, learner_id: str) -> None:
    """The learner's DAG file is parsed by Airflow: its id, its three tasks, daily, no catchup, retries."""
    require(dag_path, "dag_path")
    import time

    path = Path(dag_path)
    if not path.exists():
        raise CheckFailed(f"{_display_path(path)} n'existe pas : exécutez la cellule %%writefile qui l'écrit.")
    try:
        compile(path.read_text(encoding="utf-8"), str(path), "exec")
    except SyntaxError as error:
        raise CheckFailed(f"{path.name}, ligne {error.lineno} : erreur de syntaxe ({error.msg}).") from error
    client, dag_id = _airflow(), lab_dag_id(learner_id)
    deadline = time.monotonic() + LAB6_DAG_WAIT_SECONDS
    modified = path.stat().st_mtime
    while True:
        errors = _lab_import_errors(path)
        stale = [error for error in errors if _timestamp(error.get("timestamp")) < modified]
        if errors and not stale:
            last_line = str(errors[0].get("stack_trace", "")).strip().splitlines()[-1:]
            raise CheckFailed(f"Airflow n'a pas pu importer {path.name} : {' '.join(last_line)} — corrigez la "
                              "cellule À FAIRE du DAG, réécrivez le fichier et relancez cette vérification.")
        details = _try_dag_details(client, dag_id)
        if details and _timestamp(details.get("last_parsed_time")) >= modified and not errors:
            break
        if time.monotonic() > deadline:
            raise CheckFailed(f"le DAG {dag_id} n'apparaît pas dans Airflow après {LAB6_DAG_WAIT_SECONDS} s : "
                              f"vérifiez que dag_id vaut « {dag_id} » et que le service airflow-dag-processor "
                              "tourne (./dpe status).")
        time.sleep(3)
    tasks = _airflow_call(client.tasks, dag_id)
    task_ids = sorted(task["task_id"] for task in tasks)
    if task_ids != sorted(LAB6_TASKS):
        raise CheckFailed(f"le DAG a les tâches {task_ids}, on attend {sorted(LAB6_TASKS)}.")
    if _topological_order(tasks) != list(LAB6_TASKS):
        raise CheckFailed("les tâches ne sont pas enchaînées count_labels → summarize → publish : passez le "
                          "résultat de chaque tâche à la suivante.")
    if details.get("catchup"):
        raise CheckFailed("catchup est activé : à la réactivation, Airflow lancerait un run par jour depuis 2024 ; "
                          "mettez catchup=False.")
    interval = _timestamp(details.get("next_dagrun_data_interval_end")) - _timestamp(
        details.get("next_dagrun_data_interval_start"))
    if details.get("timetable_summary") != "0 0 * * *" or interval != 86400:
        raise CheckFailed(f"planning « {details.get('timetable_summary')} », intervalle de {interval / 3600:.0f} h : "
                          "on attend un run par jour sur un intervalle d'un jour, "
                          "CronDataIntervalTimetable(\"@daily\", timezone=\"UTC\").")
    if any((task.get("retries") or 0) < 2 for task in tasks):
        raise CheckFailed("chaque tâche doit avoir au moins deux nouvelles tentatives : "
                          "default_args={\"retries\": 2, …}.")
    _passed(f"DAG {dag_id} lu par Airflow : {' → '.join(LAB6_TASKS)}, quotidien, sans rattrapage, 2 reprises.")


def _timestamp(value: Any) -> float:
    import datetime as dt

    if not value:
        return 0.0
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _try_dag_details(client, dag_id: str) -> dict | None:
    from dpe_pipeline.airflow_api import AirflowError

    try:
        return client.request("GET", f"/dags/{dag_id}/details")
    except AirflowError:
        return None


def _label_counts(department: str) -> dict[str, int]:
    return {label: _client().count(department=department, qs=f'etiquette_dpe:"{label}"') for label in LABELS}


def check_lab_run(run_id: Any, learner_id: str, department: str) -> None:
    """The learner's manual run succeeded, ``publish`` needed its retry, its XCom matches ADEME."""
    require(run_id, "run_id")
    client, dag_id = _airflow(), lab_dag_id(learner_id)
    run = _airflow_call(client.run, dag_id, str(run_id))
    if run["state"] != "success":
        raise CheckFailed(f"le run {run_id} est « {run['state']} » : attendez qu'il se termine (boucle sur "
                          "GET …/dagRuns/<run_id>) ; en échec, lisez le journal de la tâche dans l'interface.")
    if run.get("run_type") != "manual" or (run.get("conf") or {}).get("department") != department:
        raise CheckFailed(f"déclenchez le run vous-même (POST …/dagRuns) avec conf={{\"department\": "
                          f"\"{department}\"}}.")
    instances = {ti["task_id"]: ti for ti in _airflow_call(client.task_instances, dag_id, str(run_id))}
    if instances["publish"].get("try_number") != 2:
        raise CheckFailed("publish devrait avoir réussi à son 2e essai (le 1er échoue exprès) : gardez "
                          "la panne simulée et les retries.")
    summary = _airflow_call(client.xcom, dag_id, str(run_id), "publish")
    counts = _label_counts(department)
    expected_total, expected_fg = sum(counts.values()), counts["F"] + counts["G"]
    if (summary.get("total"), summary.get("passoires")) != (expected_total, expected_fg):
        raise CheckFailed(f"le XCom de publish annonce {summary.get('total')} DPE dont {summary.get('passoires')} "
                          f"F ou G ; l'API en compte {expected_total} dont {expected_fg} : revoyez count_labels.")
    _passed(f"run {run_id} réussi ; publish réussi au 2e essai ; {_number(expected_total)} DPE dont "
            f"{_number(expected_fg)} passoires ({summary.get('part_passoires_pct')} %).")


def check_task_table(task_table: Any, run_id: Any, learner_id: str) -> None:
    """One row per task instance of the run: task_id, state, try_number, as the API says."""
    require(task_table, "task_table")
    require(run_id, "run_id")
    instances = _airflow_call(_airflow().task_instances, lab_dag_id(learner_id), str(run_id))
    expected = sorted((ti["task_id"], ti["state"], ti["try_number"]) for ti in instances)
    try:
        observed = sorted(zip(task_table["task_id"], task_table["state"], task_table["try_number"], strict=True))
    except (KeyError, TypeError) as error:
        raise CheckFailed("task_table doit être un DataFrame avec les colonnes task_id, state et "
                          "try_number.") from error
    observed = [(str(task), str(state), int(tries)) for task, state, tries in observed]
    if observed != expected:
        raise CheckFailed(f"task_table ne reflète pas les instances du run {run_id} : {observed} au lieu de "
                          f"{expected}.")
    _passed(f"{len(observed)} instances de tâches, toutes lues depuis l'API.")


def check_backfill(backfill_intervals: Any, learner_id: str, first_day: str, last_day: str) -> None:
    """A backfill ran one successful run per day, each with the one-day interval its XCom reports."""
    require(backfill_intervals, "backfill_intervals")
    import datetime as dt

    client, dag_id = _airflow(), lab_dag_id(learner_id)
    runs = _airflow_call(client.request, "GET", f"/dags/{dag_id}/dagRuns",
                         params={"run_type": "backfill", "limit": 100})["dag_runs"]
    start, end = dt.date.fromisoformat(first_day), dt.date.fromisoformat(last_day)
    days = [(start + dt.timedelta(days=offset)).isoformat() for offset in range((end - start).days + 1)]
    by_day = {str(run["logical_date"])[:10]: run for run in runs}
    missing = [day for day in days if by_day.get(day, {}).get("state") != "success"]
    if missing:
        raise CheckFailed(f"pas de run de backfill réussi pour {missing} : POST /api/v2/backfills avec "
                          f"from_date={first_day} et to_date={last_day}, puis attendez la fin.")
    expected = {day: [f"{day}T00:00:00+00:00", f"{dt.date.fromisoformat(day) + dt.timedelta(days=1)}T00:00:00+00:00"]
                for day in days}
    observed = {str(day)[:10]: list(interval) for day, interval in dict(backfill_intervals).items()}
    if observed != expected:
        raise CheckFailed(f"backfill_intervals vaut {observed} ; on attend, pour chaque jour, l'intervalle lu dans "
                          "le XCom de publish : [minuit du jour, minuit du lendemain).")
    _passed(f"backfill : {len(days)} runs réussis, un par jour, chacun sur son intervalle d'un jour.")
