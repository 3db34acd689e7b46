"""Airflow's REST API (v2) from the course's Python: token, DAGs, runs, task instances, XCom.

Airflow 3 answers on ``settings.airflow_url``; every call carries a JWT obtained from
``POST /auth/token`` with the ``.env`` admin. The tests, the lab's self-checks and the
lecture use this client; the lab has the learner write the same calls with ``requests``.

    client = AirflowClient.from_settings()
    run_id = client.trigger("dpe_pipeline", conf={"department": "48"})
    run = client.wait_for_run("dpe_pipeline", run_id)
    client.task_states("dpe_pipeline", run_id)   # {"ingest": "success", …}
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import requests

from dpe_pipeline.settings import Settings, get_settings

logger = logging.getLogger(__name__)

#: States after which a DAG run no longer changes
FINISHED_RUN_STATES = {"success", "failed"}
REQUEST_TIMEOUT_SECONDS = 30


class AirflowError(RuntimeError):
    """Airflow refused a request or a run did not finish; the message says what to do (in French)."""


@dataclass
class AirflowClient:
    """A session on Airflow's REST API, authenticated once with a JWT."""

    base_url: str
    username: str
    password: str
    session: requests.Session = field(default_factory=requests.Session)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> AirflowClient:
        settings = settings or get_settings()
        return cls(settings.airflow_url, settings.airflow_admin_user, settings.airflow_admin_password)

    def __post_init__(self) -> None:
        # A local service: never through an HTTP proxy from the environment
        self.session.trust_env = False

    # --- low level -----------------------------------------------------------------------

    def token(self) -> str:
        """A JWT for the admin (``POST /auth/token``)."""
        response = self.session.post(
            f"{self.base_url}/auth/token",
            json={"username": self.username, "password": self.password},
            timeout=REQUEST_TIMEOUT_SECONDS,
        )
        if response.status_code >= 400:
            raise AirflowError(
                f"Airflow refuse l'authentification de {self.username} ({response.status_code}) : "
                "vérifiez AIRFLOW_ADMIN_USER et AIRFLOW_ADMIN_PASSWORD dans .env"
            )
        return response.json()["access_token"]

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """``/api/v2<path>`` with the token (fetched on first use); returns the decoded JSON."""
        if "Authorization" not in self.session.headers:
            self.session.headers["Authorization"] = f"Bearer {self.token()}"
        response = self.session.request(
            method, f"{self.base_url}/api/v2{path}", timeout=REQUEST_TIMEOUT_SECONDS, **kwargs
        )
        if response.status_code >= 400:
            logger.info("airflow %s %s → %s: %s", method, path, response.status_code, response.text[:500])
            raise AirflowError(f"Airflow a répondu {response.status_code} à {method} {path} : {response.text[:500]}")
        return response.json() if response.content else None

    # --- DAGs ---------------------------------------------------------------------------

    def import_errors(self) -> list[dict]:
        """The DAG files the DAG processor could not import, with their tracebacks."""
        return self.request("GET", "/importErrors")["import_errors"]

    def dag(self, dag_id: str) -> dict:
        return self.request("GET", f"/dags/{dag_id}")

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> dict:
        """The DAG once the DAG processor has parsed and stored it."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.dag(dag_id)
            except AirflowError:
                if time.monotonic() > deadline:
                    raise AirflowError(
                        f"Le DAG {dag_id} n'apparaît pas dans Airflow après {timeout:.0f} s : "
                        "regardez les erreurs d'import (GET /api/v2/importErrors) et les journaux "
                        "de airflow-dag-processor"
                    ) from None
                time.sleep(2)

    def set_paused(self, dag_id: str, paused: bool) -> dict:
        return self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": paused})

    def tasks(self, dag_id: str) -> list[dict]:
        return self.request("GET", f"/dags/{dag_id}/tasks")["tasks"]

    # --- runs ---------------------------------------------------------------------------

    def trigger(self, dag_id: str, conf: dict | None = None, run_id: str | None = None) -> str:
        """A manual run (no logical date: it does not compete with scheduled intervals); returns its id."""
        body: dict[str, Any] = {"logical_date": None, "conf": conf or {}}
        if run_id:
            body["dag_run_id"] = run_id
        run = self.request("POST", f"/dags/{dag_id}/dagRuns", json=body)
        logger.info("triggered %s run %s with conf %s", dag_id, run["dag_run_id"], conf)
        return run["dag_run_id"]

    def run(self, dag_id: str, run_id: str) -> dict:
        return self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}")

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 1800, poll: float = 3) -> dict:
        """The run once it has finished (success or failed)."""
        deadline = time.monotonic() + timeout
        while (run := self.run(dag_id, run_id))["state"] not in FINISHED_RUN_STATES:
            if time.monotonic() > deadline:
                raise AirflowError(
                    f"L'exécution {run_id} de {dag_id} est encore « {run['state']} » après {timeout:.0f} s : "
                    "le DAG est-il en pause, l'ordonnanceur (airflow-scheduler) tourne-t-il ?"
                )
            time.sleep(poll)
        return run

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """``{task_id: state}`` of one run."""
        return {ti["task_id"]: ti["state"] for ti in self.task_instances(dag_id, run_id)}

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        """The value a task pushed (by default, what it returned)."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        return self.request("GET", path, params={"deserialize": "true"})["value"]
