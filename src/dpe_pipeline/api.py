"""Flask ingestion API: fetch DPE pages from ADEME and publish every record to Kafka.

``POST /ingestions`` validates the request and starts a background job; the job pages
through ADEME (live API or local replay, as ``.env`` says) with
:class:`dpe_pipeline.ademe.AdemeClient` and sends each record to ``dpe.raw``, keyed by
``numero_dpe``. ``GET /ingestions/<id>`` tells how the job is doing. Every route but
``/health`` needs the header ``X-API-KEY``. Errors are JSON with English keys and a French
message for the learner. The OpenAPI description is generated from the same pydantic
models that validate the requests, and served at ``/openapi.json``.

Run it with ``python -m dpe_pipeline.api`` (waitress on ``API_HOST:API_PORT``).
"""

from __future__ import annotations

import argparse
import atexit
import collections
import datetime as dt
import hmac
import json
import logging
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from flask import Flask, jsonify, request
from kafka.errors import KafkaError
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic.json_schema import models_json_schema
from werkzeug.exceptions import HTTPException

from dpe_pipeline import __version__, kafka_io
from dpe_pipeline.settings import Settings, get_settings

logger = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-KEY"
DEPARTMENT_PATTERN = re.compile(r"^(0[1-9]|[1-8][0-9]|9[0-5]|2[AB]|97[1-6])$")
#: Records asked from ADEME per HTTP request (the API allows up to 10 000).
DEFAULT_PAGE_SIZE = 1000
MAX_RECORDS_LIMIT = 2_000_000
#: Ingestion jobs run at once; more wait as ``pending``.
MAX_RUNNING_JOBS = 2
#: Finished jobs kept in memory for ``GET /ingestions/<id>``.
KEPT_JOBS = 200
#: Delivery errors kept per job (the count is exact, the list is a sample).
KEPT_ERRORS = 20
MAX_BODY_BYTES = 64 * 1024


# --- request and response models ---------------------------------------------------------


def _iso_date(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"la date {value} n'existe pas") from None
    raise ValueError("date attendue au format AAAA-MM-JJ (ex. : 2024-01-31)")


def _department_code(value: Any) -> Any:
    code = str(value).strip().upper() if isinstance(value, str | int) and not isinstance(value, bool) else value
    if not isinstance(code, str) or not DEPARTMENT_PATTERN.match(code):
        raise ValueError("code de département inconnu (ex. : 69, 01, 2A, 974)")
    return code


class IngestionRequest(BaseModel):
    """What to fetch from ADEME: one department, optionally a range of reception dates and a maximum."""

    model_config = ConfigDict(extra="forbid")

    department: Annotated[str, BeforeValidator(_department_code)] = Field(
        description="Code du département (BAN) : 69, 01, 2A, 974…",
        examples=["69"],
        json_schema_extra={"pattern": DEPARTMENT_PATTERN.pattern},
    )
    date_from: Annotated[dt.date | None, BeforeValidator(_iso_date)] = Field(
        None, description="Première date de réception du DPE (incluse), AAAA-MM-JJ (absent : sans borne)",
        examples=["2023-07-01"],
    )
    date_to: Annotated[dt.date | None, BeforeValidator(_iso_date)] = Field(
        None, description="Dernière date de réception du DPE (incluse), AAAA-MM-JJ (absent : sans borne)",
        examples=["2023-08-31"],
    )
    max_records: int | None = Field(
        None, ge=1, le=MAX_RECORDS_LIMIT, strict=True,
        description="Nombre maximal d'enregistrements à récupérer (absent : tous)", examples=[5000],
    )

    @model_validator(mode="after")
    def _check_date_range(self) -> IngestionRequest:
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValueError(f"date_from ({self.date_from}) doit précéder ou égaler date_to ({self.date_to})")
        return self


JobState = Literal["pending", "running", "succeeded", "failed"]


class IngestionCounts(BaseModel):
    fetched: int = Field(description="Enregistrements reçus d'ADEME")
    published: int = Field(description="Enregistrements acquittés par Kafka")
    failed: int = Field(description="Enregistrements que Kafka a refusés")


class IngestionStatus(BaseModel):
    """Where an ingestion job stands."""

    id: str
    status: JobState
    request: IngestionRequest
    topic: str
    counts: IngestionCounts
    errors: list[str] = Field(description="Erreurs rencontrées (échantillon)")
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    duration_seconds: float | None
    records_per_second: float | None


class ErrorDetail(BaseModel):
    field: str
    message: str


class ErrorResponse(BaseModel):
    error: str = Field(description="Message en français")
    details: list[ErrorDetail] = Field(default_factory=list)


class HealthResponse(BaseModel):
    status: Literal["ok"]
    version: str


# --- jobs --------------------------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class IngestionJob:
    """Mutable state of one ingestion; counters are updated from the producer's thread too."""

    request: IngestionRequest
    topic: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    status: JobState = "pending"
    fetched: int = 0
    published: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    created_at: dt.datetime = field(default_factory=_now)
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record_delivery(self, _metadata: Any) -> None:
        with self.lock:
            self.published += 1

    def record_delivery_error(self, error: BaseException) -> None:
        with self.lock:
            self.failed += 1
            if len(self.errors) < KEPT_ERRORS:
                self.errors.append(f"envoi Kafka refusé : {error!r}")

    def add_error(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)

    def to_status(self) -> IngestionStatus:
        with self.lock:
            end = self.finished_at or (_now() if self.started_at else None)
            duration = (end - self.started_at).total_seconds() if self.started_at and end else None
            rate = round(self.published / duration, 1) if duration else None
            return IngestionStatus(
                id=self.id, status=self.status, request=self.request, topic=self.topic,
                counts=IngestionCounts(fetched=self.fetched, published=self.published, failed=self.failed),
                errors=list(self.errors), created_at=self.created_at, started_at=self.started_at,
                finished_at=self.finished_at, duration_seconds=round(duration, 3) if duration is not None else None,
                records_per_second=rate,
            )


PageSource = Callable[[IngestionRequest, int], Iterable[list[dict[str, Any]]]]


def ademe_page_source(settings: Settings) -> PageSource:
    """Pages of DPE records from ADEME (or the replay) through the course's client."""
    from dpe_pipeline.ademe import AdemeClient  # imported late: the API starts without network

    def iter_pages(ingestion: IngestionRequest, page_size: int) -> Iterable[list[dict[str, Any]]]:
        client = AdemeClient.from_settings(settings=settings)
        return client.iter_pages(
            department=ingestion.department,
            date_from=ingestion.date_from.isoformat() if ingestion.date_from else None,
            date_to=ingestion.date_to.isoformat() if ingestion.date_to else None,
            page_size=page_size,
            limit=ingestion.max_records,
        )

    return iter_pages


class IngestionService:
    """Runs ingestion jobs in background threads and keeps their state in memory."""

    def __init__(
        self,
        settings: Settings,
        page_source: PageSource,
        producer_factory: Callable[[], Any],
        topic: str,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> None:
        self.settings = settings
        self.page_source = page_source
        self.producer_factory = producer_factory
        self.topic = topic
        self.page_size = page_size
        self._jobs: collections.OrderedDict[str, IngestionJob] = collections.OrderedDict()
        self._jobs_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=MAX_RUNNING_JOBS, thread_name_prefix="ingestion")
        self._producer: Any = None
        self._producer_lock = threading.Lock()
        self._closing = threading.Event()

    def submit(self, ingestion: IngestionRequest) -> IngestionJob:
        job = IngestionJob(request=ingestion, topic=self.topic)
        with self._jobs_lock:
            self._jobs[job.id] = job
            self._forget_old_jobs()
        self._executor.submit(self.run_job, job)
        logger.info("ingestion %s queued: %s", job.id, ingestion.model_dump_json())
        return job

    def get(self, job_id: str) -> IngestionJob | None:
        with self._jobs_lock:
            return self._jobs.get(job_id)

    def jobs(self) -> list[IngestionJob]:
        with self._jobs_lock:
            return list(self._jobs.values())

    def run_job(self, job: IngestionJob) -> None:
        """Fetch every page, send every record, wait for Kafka's acks, then set the final status."""
        job.status, job.started_at = "running", _now()
        try:
            producer = self._shared_producer()
            for page in self.page_source(job.request, self.page_size):
                if self._closing.is_set():
                    raise InterruptedError("le service s'arrête")
                self._publish_page(producer, job, page)
            producer.flush()
        except Exception as error:  # the job reports any failure instead of dying silently
            logger.exception("ingestion %s failed", job.id)
            job.add_error(f"échec de l'ingestion : {type(error).__name__}: {error}")
        finally:
            self._finish(job)

    def close(self) -> None:
        """Stop the running jobs after their current page, drop the pending ones, close Kafka."""
        self._closing.set()
        self._executor.shutdown(wait=True, cancel_futures=True)
        if self._producer is not None:
            self._producer.close(timeout=10)

    def _publish_page(self, producer: Any, job: IngestionJob, page: list[dict[str, Any]]) -> None:
        with job.lock:
            job.fetched += len(page)
        for record in page:
            key, value = kafka_io.encode_dpe_record(record)
            try:
                future = producer.send(self.topic, key=key, value=value)
            except KafkaError as error:  # e.g. a record above the broker's size limit: skip it, go on
                job.record_delivery_error(error)
                continue
            future.add_callback(job.record_delivery)
            future.add_errback(job.record_delivery_error)

    def _finish(self, job: IngestionJob) -> None:
        with job.lock:
            undelivered = job.fetched - job.published - job.failed
            if undelivered and not job.errors:
                job.errors.append(f"{undelivered} enregistrements sans accusé de réception de Kafka")
            job.status = "succeeded" if not job.errors and not job.failed else "failed"
            job.finished_at = _now()
        logger.info("ingestion %s %s: %s", job.id, job.status, job.to_status().counts.model_dump())

    def _shared_producer(self) -> Any:
        with self._producer_lock:
            if self._producer is None:
                self._producer = self.producer_factory()
            return self._producer

    def _forget_old_jobs(self) -> None:
        finished = [job_id for job_id, job in self._jobs.items() if job.status in ("succeeded", "failed")]
        for job_id in finished[: max(len(self._jobs) - KEPT_JOBS, 0)]:
            del self._jobs[job_id]


# --- Flask app -----------------------------------------------------------------------------

FRENCH_MESSAGES = {
    "missing": "champ obligatoire",
    "extra_forbidden": "champ inconnu",
    "int_type": "nombre entier attendu",
    "int_parsing": "nombre entier attendu",
    "string_type": "texte attendu",
    "greater_than_equal": "doit être supérieur ou égal à {ge}",
    "less_than_equal": "doit être inférieur ou égal à {le}",
}


def describe_errors(error: ValidationError) -> list[ErrorDetail]:
    """Pydantic errors as French ``(field, message)`` pairs."""
    details = []
    for item in error.errors(include_url=False):
        location = ".".join(str(part) for part in item["loc"]) or "body"
        template = FRENCH_MESSAGES.get(item["type"])
        message = template.format(**item.get("ctx", {})) if template else item["msg"].removeprefix("Value error, ")
        details.append(ErrorDetail(field=location, message=message))
    return details


def error_response(status: int, message: str, details: list[ErrorDetail] | None = None):
    body = ErrorResponse(error=message, details=details or [])
    return jsonify(body.model_dump()), status


def create_app(
    settings: Settings | None = None,
    *,
    page_source: PageSource | None = None,
    producer_factory: Callable[[], Any] | None = None,
    topic: str | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> Flask:
    """The ingestion API. Tests and benchmarks may swap the page source, producer or topic."""
    settings = settings or get_settings()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False
    service = IngestionService(
        settings,
        page_source or ademe_page_source(settings),
        producer_factory or (lambda: kafka_io.create_producer(settings, client_id="dpe-ingestion-api")),
        topic or settings.kafka_topic_raw,
        page_size,
    )
    app.extensions["dpe_ingestion"] = service
    spec = build_openapi_spec()

    @app.before_request
    def require_api_key():
        if request.endpoint == "health":
            return None
        supplied = request.headers.get(API_KEY_HEADER, "")
        if not hmac.compare_digest(supplied.encode(), settings.api_key.encode()):
            logger.info("refused %s %s: missing or wrong %s", request.method, request.path, API_KEY_HEADER)
            return error_response(401, f"clé API absente ou invalide : envoyez l'en-tête {API_KEY_HEADER}")
        return None

    @app.get("/health")
    def health():
        return jsonify(HealthResponse(status="ok", version=__version__).model_dump())

    @app.get("/openapi.json")
    def openapi():
        return jsonify(spec)

    @app.post("/ingestions")
    def start_ingestion():
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return error_response(400, "le corps doit être un objet JSON (en-tête Content-Type: application/json)")
        try:
            ingestion = IngestionRequest.model_validate(body)
        except ValidationError as error:
            return error_response(400, "requête invalide", describe_errors(error))
        job = service.submit(ingestion)
        response = jsonify(job.to_status().model_dump(mode="json"))
        response.status_code = 202
        response.headers["Location"] = f"/ingestions/{job.id}"
        return response

    @app.get("/ingestions")
    def list_ingestions():
        return jsonify([job.to_status().model_dump(mode="json") for job in service.jobs()])

    @app.get("/ingestions/<job_id>")
    def ingestion_status(job_id: str):
        job = service.get(job_id)
        if job is None:
            return error_response(404, f"aucune ingestion n'a l'identifiant {job_id}")
        return jsonify(job.to_status().model_dump(mode="json"))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        messages = {
            404: "ressource introuvable",
            405: "méthode non autorisée sur cette ressource",
            413: f"corps de requête trop volumineux (maximum {MAX_BODY_BYTES} octets)",
        }
        return error_response(error.code or 500, messages.get(error.code, error.description or error.name))

    return app


# --- OpenAPI ------------------------------------------------------------------------------


def build_openapi_spec() -> dict[str, Any]:
    """OpenAPI 3.1 description of the API, its schemas generated from the pydantic models."""
    ref = "#/components/schemas/{model}"
    _, definitions = models_json_schema(
        [(IngestionRequest, "validation"), (IngestionStatus, "serialization"), (ErrorResponse, "serialization"),
         (HealthResponse, "serialization")],
        ref_template=ref,
    )

    def schema(name: str) -> dict[str, str]:
        return {"$ref": ref.format(model=name)}

    def json_content(name: str) -> dict[str, Any]:
        return {"content": {"application/json": {"schema": schema(name)}}}

    unauthorized = {"description": "Clé API absente ou invalide", **json_content("ErrorResponse")}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "API d'ingestion DPE",
            "version": __version__,
            "description": "Récupère des DPE depuis l'API ADEME et les publie dans Kafka (topic dpe.raw).",
        },
        "components": {
            "schemas": definitions["$defs"],
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER}},
        },
        "security": [{"apiKey": []}],
        "paths": {
            "/health": {"get": {
                "summary": "État du service (sans authentification)", "security": [],
                "responses": {"200": {"description": "Service disponible", **json_content("HealthResponse")}},
            }},
            "/ingestions": {
                "post": {
                    "summary": "Lance une ingestion ADEME → Kafka en arrière-plan",
                    "requestBody": {"required": True, **json_content("IngestionRequest")},
                    "responses": {
                        "202": {"description": "Ingestion acceptée (voir l'en-tête Location)",
                                **json_content("IngestionStatus")},
                        "400": {"description": "Requête invalide, champ par champ", **json_content("ErrorResponse")},
                        "401": unauthorized,
                    },
                },
                "get": {
                    "summary": "Liste les ingestions récentes",
                    "responses": {
                        "200": {"description": "Ingestions connues", "content": {"application/json": {
                            "schema": {"type": "array", "items": schema("IngestionStatus")}}}},
                        "401": unauthorized,
                    },
                },
            },
            "/ingestions/{job_id}": {"get": {
                "summary": "État d'une ingestion : statut, compteurs, erreurs, durées",
                "parameters": [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "État de l'ingestion", **json_content("IngestionStatus")},
                    "401": unauthorized,
                    "404": {"description": "Identifiant inconnu", **json_content("ErrorResponse")},
                },
            }},
            "/openapi.json": {"get": {
                "summary": "Cette description OpenAPI",
                "responses": {"200": {"description": "Document OpenAPI 3.1"}, "401": unauthorized},
            }},
        },
    }


def write_openapi_spec(path: Path) -> None:
    path.write_text(json.dumps(build_openapi_spec(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


# --- command line -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dpe_pipeline.api", description="DPE ingestion API (waitress).")
    parser.add_argument("--host", help="listen address (default API_HOST)")
    parser.add_argument("--port", type=int, help="listen port (default API_PORT)")
    parser.add_argument("--threads", type=int, default=8, help="waitress worker threads")
    parser.add_argument("--page-size", type=int, default=DEFAULT_PAGE_SIZE, help="records per ADEME request")
    parser.add_argument("--write-openapi", type=Path, metavar="PATH", help="write the OpenAPI document and exit")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("DPE_LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.write_openapi:
        write_openapi_spec(args.write_openapi)
        return 0

    from waitress import serve

    settings = get_settings()
    ensure_topics_at_start(settings)
    app = create_app(settings, page_size=args.page_size)
    atexit.register(app.extensions["dpe_ingestion"].close)
    host, port = args.host or settings.api_host, args.port or settings.api_port
    logger.info("ingestion API on http://%s:%d (ADEME mode: %s)", host, port, settings.ademe_mode)
    serve(app, host=host, port=port, threads=args.threads, ident="dpe-ingestion-api")
    return 0


def ensure_topics_at_start(settings: Settings, attempts: int = 10) -> None:
    """Create ``dpe.raw``/``dpe.dlq`` if missing; Kafka may still be starting, so retry a while."""
    for attempt in range(1, attempts + 1):
        try:
            kafka_io.ensure_topics(settings=settings)
            return
        except Exception as error:  # kafka-python raises several unrelated types here
            logger.warning("Kafka not ready (attempt %d/%d): %s", attempt, attempts, error)
            time.sleep(min(2 * attempt, 10))
    logger.error("could not create the Kafka topics; ingestions will fail until Kafka is up")


if __name__ == "__main__":
    sys.exit(main())
