"""Client for the ADEME DPE ``/lines`` API (data-fair), live or replayed.

It pages with the cursor the API gives in ``next`` (never ``page`` past the 10 000-row
window), asks for at most 10 000 lines a page, retries 429/5xx answers and timeouts with
exponential backoff (urllib3's ``Retry``, which also honours ``Retry-After``), sends an
explicit User-Agent, and turns the API's 400 messages into :class:`AdemeQueryError`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from dpe_pipeline import __version__

logger = logging.getLogger(__name__)

MAX_PAGE_SIZE = 10_000
RETRY_STATUSES = (429, 500, 502, 503, 504)
USER_AGENT = f"dpe-pipeline-course/{__version__} (+cours Cloud Computing, pipeline de données DPE)"
DATE_FIELD = "date_reception_dpe"
DEPARTMENT_FIELD = "code_departement_ban"


class AdemeError(RuntimeError):
    """The ADEME API could not answer."""


class AdemeQueryError(AdemeError):
    """The API refused the query (HTTP 400); the message is the API's own."""

    def __init__(self, message: str, url: str) -> None:
        super().__init__(f"L'API ADEME a refusé la requête : {message}")
        self.api_message = message
        self.url = url


class AdemeUnavailableError(AdemeError):
    """The API kept failing (429/5xx/timeouts) after every retry."""


def build_qs(
    department: str | None = None,
    date_from: str | None = None,
    date_to: str | None = None,
    date_field: str = DATE_FIELD,
    extra: str | None = None,
) -> str | None:
    """A Lucene ``qs`` for a department and a date range, e.g.
    ``code_departement_ban:69 AND date_reception_dpe:[2023-01-01 TO 2023-12-31]``."""
    clauses = []
    if department:
        clauses.append(f'{DEPARTMENT_FIELD}:"{department}"')
    if date_from or date_to:
        clauses.append(f"{date_field}:[{date_from or '*'} TO {date_to or '*'}]")
    if extra:
        clauses.append(f"({extra})")
    return " AND ".join(clauses) or None


def _retry_policy(max_retries: int, backoff_factor: float) -> Retry:
    return Retry(
        total=max_retries,
        connect=max_retries,
        read=max_retries,
        status=max_retries,
        backoff_factor=backoff_factor,
        backoff_max=30,
        backoff_jitter=0.2,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )


class AdemeClient:
    """Reads one ADEME dataset through its ``/lines`` endpoint."""

    def __init__(
        self,
        base_url: str,
        dataset: str = "dpe03existant",
        *,
        timeout: float = 30.0,
        max_retries: int = 6,
        backoff_factor: float = 0.5,
        user_agent: str = USER_AGENT,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.dataset = dataset
        self.timeout = timeout
        self.session = session or requests.Session()
        adapter = HTTPAdapter(max_retries=_retry_policy(max_retries, backoff_factor))
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"User-Agent": user_agent, "Accept": "application/json"})

    @classmethod
    def from_settings(cls, dataset: str | None = None, settings=None) -> AdemeClient:
        """A client on the live API or the replay, as ``ADEME_MODE`` in ``.env`` says."""
        from dpe_pipeline.settings import get_settings

        settings = settings or get_settings()
        return cls(
            settings.ademe_base_url,
            dataset or settings.ademe_dataset,
            timeout=settings.ademe_timeout_seconds,
            max_retries=settings.ademe_max_retries,
        )

    @property
    def lines_url(self) -> str:
        return f"{self.base_url}/datasets/{self.dataset}/lines"

    def __repr__(self) -> str:
        return f"AdemeClient({self.lines_url!r})"

    # --- one request -----------------------------------------------------------------
    def _get(self, url: str, params: dict[str, Any] | None = None) -> dict:
        try:
            response = self.session.get(url, params=params, timeout=self.timeout)
        except requests.exceptions.RetryError as error:
            raise AdemeUnavailableError(
                f"L'API ADEME ne répond pas correctement après plusieurs essais ({url}) : réessayez plus tard "
                "ou passez ADEME_MODE=replay dans .env."
            ) from error
        except requests.exceptions.ConnectionError as error:
            raise AdemeUnavailableError(
                f"Impossible de joindre l'API ADEME à {self.base_url} : vérifiez le réseau, ou que le rejeu "
                "est démarré (./dpe up) si ADEME_MODE=replay."
            ) from error
        except requests.exceptions.Timeout as error:
            raise AdemeUnavailableError(f"L'API ADEME n'a pas répondu en {self.timeout} s ({url}).") from error
        if response.status_code == 400:
            logger.warning("ADEME refused %s: %s", response.url, response.text)
            raise AdemeQueryError(response.text.strip(), response.url)
        if response.status_code in RETRY_STATUSES:
            raise AdemeUnavailableError(
                f"L'API ADEME répond encore {response.status_code} après plusieurs essais ({response.url}) : "
                "réessayez plus tard, ou passez ADEME_MODE=replay dans .env."
            )
        if response.status_code >= 400:
            raise AdemeUnavailableError(
                f"L'API ADEME a répondu {response.status_code} à {response.url} : {response.text[:200]}"
            )
        return response.json()

    def get_page(
        self,
        size: int = 100,
        select: Iterable[str] | str | None = None,
        qs: str | None = None,
        sort: str | None = None,
        after: str | None = None,
        **field_filters: Any,
    ) -> dict:
        """One page of ``/lines``: a dict with ``total``, ``results`` and ``next`` when more lines follow."""
        if not 0 <= size <= MAX_PAGE_SIZE:
            raise ValueError(f"size doit être entre 0 et {MAX_PAGE_SIZE} (reçu : {size})")
        params: dict[str, Any] = {"size": size}
        if select:
            params["select"] = select if isinstance(select, str) else ",".join(select)
        for key, value in (("qs", qs), ("sort", sort), ("after", after)):
            if value:
                params[key] = value
        params.update({k: ",".join(map(str, v)) if isinstance(v, (list, tuple)) else v
                       for k, v in field_filters.items()})
        return self._get(self.lines_url, params)

    def count(self, department: str | None = None, date_from: str | None = None, date_to: str | None = None,
              qs: str | None = None) -> int:
        """How many lines match, without downloading them."""
        return self.get_page(size=0, qs=build_qs(department, date_from, date_to, extra=qs))["total"]

    # --- every page ------------------------------------------------------------------
    def iter_pages(
        self,
        department: str | None = None,
        date_from: str | None = None,
        date_to: str | None = None,
        select: Iterable[str] | str | None = None,
        qs: str | None = None,
        sort: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
        limit: int | None = None,
        progress: bool = False,
    ) -> Iterator[list[dict]]:
        """Yield the matching records page by page, following the ``next`` cursor."""
        query = build_qs(department, date_from, date_to, extra=qs)
        remaining = limit
        first_size = min(page_size, limit) if limit is not None else page_size
        page = self.get_page(size=first_size, select=select, qs=query, sort=sort)
        total = page["total"] if limit is None else min(page["total"], limit)
        bar = _progress_bar(total, self.dataset) if progress else None
        try:
            while True:
                records = page.get("results", [])
                if remaining is not None:
                    records = records[:remaining]
                    remaining -= len(records)
                if records:
                    if bar is not None:
                        bar.update(len(records))
                    yield records
                if not page.get("next") or not records or remaining == 0:
                    return
                page = self._get(page["next"])
        finally:
            if bar is not None:
                bar.close()

    def fetch(self, **query: Any) -> list[dict]:
        """Every matching record as a list of dicts (same arguments as :meth:`iter_pages`)."""
        return [record for records in self.iter_pages(**query) for record in records]

    def fetch_dataframe(self, **query: Any):
        """Every matching record as a pandas DataFrame, without the ``_i``/``_score`` technical keys."""
        import pandas as pd

        frame = pd.DataFrame.from_records(self.fetch(**query))
        return frame.drop(columns=[c for c in ("_i", "_score") if c in frame.columns])


def _progress_bar(total: int, dataset: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"Téléchargement {dataset}", unit=" enr.", unit_scale=True)
