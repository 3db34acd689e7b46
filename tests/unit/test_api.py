"""The ingestion API without services: authentication, request validation, jobs, OpenAPI."""

import json
import time

import pytest

from dpe_pipeline.api import build_openapi_spec, create_app
from dpe_pipeline.settings import get_settings, project_dir

VALID = {"department": "69", "date_from": "2023-07-01", "date_to": "2023-07-31", "max_records": 50}


class FakeFuture:
    def __init__(self, error=None):
        self.error = error

    def add_callback(self, callback):
        if self.error is None:
            callback(object())

    def add_errback(self, errback):
        if self.error is not None:
            errback(self.error)


class FakeProducer:
    """Records what is sent; refuses the records whose numero_dpe is in ``refuse``."""

    def __init__(self, refuse=()):
        self.sent = []
        self.refuse = set(refuse)

    def send(self, topic, key=None, value=None):
        self.sent.append((topic, key, json.loads(value)))
        return FakeFuture(RuntimeError("broker down") if key and key.decode() in self.refuse else None)

    def flush(self, timeout=None):
        pass

    def close(self, timeout=None):
        pass


def pages(count, page_size):
    records = [{"numero_dpe": f"2369E{index:07d}M", "etiquette_dpe": "C"} for index in range(count)]
    return [records[start:start + page_size] for start in range(0, count, page_size)]


@pytest.fixture
def settings():
    return get_settings()


def make_app(settings, producer=None, source=None):
    producer = producer or FakeProducer()
    app = create_app(
        settings,
        page_source=source or (lambda request, page_size: iter(pages(request.max_records or 10, 20))),
        producer_factory=lambda: producer,
        topic="test.dpe.raw",
    )
    return app, producer


@pytest.fixture
def client(settings):
    app, _ = make_app(settings)
    return app.test_client()


@pytest.fixture
def headers(settings):
    return {"X-API-KEY": settings.api_key}


def wait_for_end(client, headers, job_id):
    for _ in range(200):
        body = client.get(f"/ingestions/{job_id}", headers=headers).get_json()
        if body["status"] in ("succeeded", "failed"):
            return body
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} did not finish: {body}")


# --- authentication -------------------------------------------------------------------


def test_health_needs_no_key(client):
    response = client.get("/health")
    assert response.status_code == 200 and response.get_json()["status"] == "ok"


@pytest.mark.parametrize("key", [None, "", "wrong-key"])
@pytest.mark.parametrize(("method", "path"), [("post", "/ingestions"), ("get", "/ingestions/abc"),
                                               ("get", "/ingestions"), ("get", "/openapi.json")])
def test_every_other_route_needs_the_api_key(client, method, path, key):
    headers = {} if key is None else {"X-API-KEY": key}
    response = getattr(client, method)(path, json=VALID, headers=headers)
    assert response.status_code == 401
    body = response.get_json()
    assert "X-API-KEY" in body["error"] and body["details"] == []


# --- request validation -----------------------------------------------------------------


def details_of(response):
    assert response.status_code == 400, response.get_data(as_text=True)
    return {detail["field"]: detail["message"] for detail in response.get_json()["details"]}


def test_a_body_that_is_not_a_json_object_is_refused(client, headers):
    response = client.post("/ingestions", data="department=69", headers=headers)
    assert response.status_code == 400
    assert "objet JSON" in response.get_json()["error"]


def test_every_wrong_field_is_listed_in_french(client, headers):
    body = {"department": "999", "date_from": "01/07/2023", "date_to": "2023-02-30", "max_records": 0, "size": 5}
    details = details_of(client.post("/ingestions", json=body, headers=headers))
    assert details == {
        "department": "code de département inconnu (ex. : 69, 01, 2A, 974)",
        "date_from": "date attendue au format AAAA-MM-JJ (ex. : 2024-01-31)",
        "date_to": "la date 2023-02-30 n'existe pas",
        "max_records": "doit être supérieur ou égal à 1",
        "size": "champ inconnu",
    }


def test_department_is_required_and_dates_must_be_ordered(client, headers):
    assert details_of(client.post("/ingestions", json={}, headers=headers)) == {"department": "champ obligatoire"}
    body = {"department": "69", "date_from": "2023-08-01", "date_to": "2023-07-01"}
    assert "date_from (2023-08-01) doit précéder" in details_of(client.post("/ingestions", json=body, headers=headers))[
        "body"
    ]


def test_max_records_must_be_a_json_integer(client, headers):
    details = details_of(client.post("/ingestions", json={**VALID, "max_records": "50"}, headers=headers))
    assert details == {"max_records": "nombre entier attendu"}


def test_unknown_job_and_route_are_json_404(client, headers):
    assert client.get("/ingestions/nope", headers=headers).status_code == 404
    response = client.get("/nowhere", headers=headers)
    assert response.status_code == 404 and response.get_json()["error"] == "ressource introuvable"


# --- jobs ---------------------------------------------------------------------------------


def test_an_ingestion_publishes_every_record_keyed_by_numero_dpe(settings, headers):
    app, producer = make_app(settings)
    client = app.test_client()
    response = client.post("/ingestions", json={**VALID, "department": "2a"}, headers=headers)
    assert response.status_code == 202
    job = response.get_json()
    assert response.headers["Location"] == f"/ingestions/{job['id']}"
    assert job["request"]["department"] == "2A"
    final = wait_for_end(client, headers, job["id"])
    assert final["status"] == "succeeded", final
    assert final["counts"] == {"fetched": 50, "published": 50, "failed": 0}
    assert final["started_at"] and final["finished_at"] and final["duration_seconds"] is not None
    assert len(producer.sent) == 50
    topic, key, value = producer.sent[0]
    assert topic == "test.dpe.raw" and key == value["numero_dpe"].encode()


def test_refused_deliveries_fail_the_job_and_are_reported(settings, headers):
    app, _ = make_app(settings, producer=FakeProducer(refuse={"2369E0000003M"}))
    client = app.test_client()
    job = client.post("/ingestions", json=VALID, headers=headers).get_json()
    final = wait_for_end(client, headers, job["id"])
    assert final["status"] == "failed"
    assert final["counts"] == {"fetched": 50, "published": 49, "failed": 1}
    assert "broker down" in final["errors"][0]


def test_a_failing_source_fails_the_job_with_its_message(settings, headers):
    def broken_source(request, page_size):
        yield pages(5, 5)[0]
        raise ConnectionError("ADEME injoignable")

    app, _ = make_app(settings, source=broken_source)
    client = app.test_client()
    job = client.post("/ingestions", json=VALID, headers=headers).get_json()
    final = wait_for_end(client, headers, job["id"])
    assert final["status"] == "failed" and final["counts"]["published"] == 5
    assert final["errors"] == ["échec de l'ingestion : ConnectionError: ADEME injoignable"]


# --- OpenAPI -------------------------------------------------------------------------------


def test_openapi_is_served_and_describes_every_route(client, headers):
    spec = client.get("/openapi.json", headers=headers).get_json()
    assert spec["openapi"].startswith("3.")
    assert set(spec["paths"]) == {"/health", "/ingestions", "/ingestions/{job_id}", "/openapi.json"}
    request_schema = spec["components"]["schemas"]["IngestionRequest"]
    assert request_schema["required"] == ["department"]
    assert set(request_schema["properties"]) == {"department", "date_from", "date_to", "max_records"}
    refs = json.dumps(spec).count('"$ref": "#/components/schemas/')
    assert refs > 5 and "$defs" not in json.dumps(spec)


def test_the_committed_openapi_file_is_up_to_date():
    committed = project_dir() / "services" / "api" / "openapi.json"
    assert json.loads(committed.read_text(encoding="utf-8")) == build_openapi_spec(), (
        "services/api/openapi.json is stale: python -m dpe_pipeline.api --write-openapi services/api/openapi.json"
    )


def test_a_record_kafka_refuses_at_once_is_counted_and_the_rest_goes_on(settings, headers):
    from kafka.errors import MessageSizeTooLargeError

    class PickyProducer(FakeProducer):
        def send(self, topic, key=None, value=None):
            if key == b"2369E0000007M":
                raise MessageSizeTooLargeError("record too large")
            return super().send(topic, key, value)

    app, producer = make_app(settings, producer=PickyProducer())
    client = app.test_client()
    job = client.post("/ingestions", json=VALID, headers=headers).get_json()
    final = wait_for_end(client, headers, job["id"])
    assert final["status"] == "failed"
    assert final["counts"] == {"fetched": 50, "published": 49, "failed": 1}
    assert len(producer.sent) == 49
