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


def check_filtered_page(page: Any, department: str, year: int | str, select: list[str]) -> None:
    """Exercise 3: one page filtered with ``qs`` on a department and a reception year, with ``select``."""
    _require_dict_page(page, "page_filtered")
    require(select, "SELECT")
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
