"""One settings object for the whole course, read from the project's ``.env``.

The first time anything asks for the settings and no ``.env`` exists, it is created from
``.env.example`` with every ``__random__`` placeholder replaced by a fresh secret. Values
from the process environment win over the file, so compose can inject its own hosts.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

logger = logging.getLogger(__name__)

RANDOM_PLACEHOLDER = "__random__"
LEARNER_ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]{1,30}$")


def project_dir() -> Path:
    """The checkout holding ``.env.example``: $DPE_PROJECT_DIR, else the nearest parent of cwd, else the package's."""
    explicit = os.environ.get("DPE_PROJECT_DIR")
    if explicit:
        return Path(explicit).resolve()
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for folder in (start, *start.parents):
            if (folder / ".env.example").is_file() and (folder / "src" / "dpe_pipeline").is_dir():
                return folder
    raise FileNotFoundError(
        "Impossible de trouver le dossier du cours (.env.example). "
        "Lancez la commande depuis le dépôt ou définissez DPE_PROJECT_DIR."
    )


def _random_value(key: str) -> str:
    if key == "LEARNER_ID":
        return "apprenant_" + secrets.token_hex(3)
    return secrets.token_urlsafe(18)


def ensure_env_file(root: Path | None = None) -> Path:
    """Create ``.env`` from ``.env.example`` with random secrets if it does not exist yet."""
    root = root or project_dir()
    env_file = root / ".env"
    if env_file.exists():
        return env_file
    lines = []
    for line in (root / ".env.example").read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#") and value.strip() == RANDOM_PLACEHOLDER:
            line = f"{key}={_random_value(key.strip())}"
        lines.append(line)
    tmp = env_file.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(env_file)
    logger.info("created %s with fresh secrets", env_file)
    return env_file


class Settings(BaseSettings):
    """Every host, port, credential and data scope of the course."""

    model_config = SettingsConfigDict(extra="ignore", env_file_encoding="utf-8")

    learner_id: str = Field(alias="LEARNER_ID")

    ademe_mode: Literal["live", "replay"] = Field("replay", alias="ADEME_MODE")
    ademe_live_url: str = Field("https://data.ademe.fr/data-fair/api/v1", alias="ADEME_LIVE_URL")
    ademe_dataset: str = Field("dpe03existant", alias="ADEME_DATASET")
    ademe_timeout_seconds: float = Field(30.0, alias="ADEME_TIMEOUT_SECONDS")
    ademe_max_retries: int = Field(6, alias="ADEME_MAX_RETRIES")
    dpe_department: str = Field("48", alias="DPE_DEPARTMENT")
    dpe_date_from: str = Field("", alias="DPE_DATE_FROM")
    dpe_date_to: str = Field("", alias="DPE_DATE_TO")

    replay_host: str = Field("127.0.0.1", alias="REPLAY_HOST")
    replay_port: int = Field(8765, alias="REPLAY_PORT")
    replay_fault_every: int = Field(0, alias="REPLAY_FAULT_EVERY")
    replay_fault_codes: str = Field("429,500", alias="REPLAY_FAULT_CODES")

    jupyter_host: str = Field("127.0.0.1", alias="JUPYTER_HOST")
    jupyter_port: int = Field(8888, alias="JUPYTER_PORT")
    jupyter_token: str = Field(alias="JUPYTER_TOKEN")

    postgres_host: str = Field("127.0.0.1", alias="POSTGRES_HOST")
    postgres_port: int = Field(5432, alias="POSTGRES_PORT")
    postgres_db: str = Field("dpe", alias="POSTGRES_DB")
    postgres_user: str = Field("dpe", alias="POSTGRES_USER")
    postgres_password: str = Field(alias="POSTGRES_PASSWORD")

    kafka_version: str = Field("4.3.1", alias="KAFKA_VERSION")
    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", alias="KAFKA_BOOTSTRAP_SERVERS")
    kafka_controller_port: int = Field(9093, alias="KAFKA_CONTROLLER_PORT")
    kafka_topic_raw: str = Field("dpe.raw", alias="KAFKA_TOPIC_RAW")
    kafka_topic_dlq: str = Field("dpe.dlq", alias="KAFKA_TOPIC_DLQ")
    kafka_consumer_group: str = Field("dpe-to-postgres", alias="KAFKA_CONSUMER_GROUP")

    api_host: str = Field("127.0.0.1", alias="API_HOST")
    api_port: int = Field(5000, alias="API_PORT")
    api_key: str = Field(alias="API_KEY")
    consumer_instances: int = Field(1, alias="CONSUMER_INSTANCES", ge=1, le=3)

    # --- module 4: S3 object store (MinIO), Spark cluster, Iceberg catalog ---------
    # MinIO's root user is S3_ACCESS_KEY / S3_SECRET_KEY (as in compose); the native MinIO
    # listens on S3_ENDPOINT's host and port, its console on MINIO_CONSOLE_PORT.
    s3_endpoint: str = Field("http://127.0.0.1:9000", alias="S3_ENDPOINT")
    s3_region: str = Field("us-east-1", alias="S3_REGION")
    s3_bucket: str = Field("warehouse", alias="S3_BUCKET")
    s3_access_key: str = Field("dpe-lake", alias="S3_ACCESS_KEY")
    s3_secret_key: str = Field(alias="S3_SECRET_KEY")
    minio_console_port: int = Field(9001, alias="MINIO_CONSOLE_PORT")
    # Empty: the native master spark://127.0.0.1:SPARK_MASTER_PORT; "local[2]" runs without the cluster
    spark_master_url: str = Field("", alias="SPARK_MASTER_URL")
    spark_master_port: int = Field(7077, alias="SPARK_MASTER_PORT")
    spark_master_ui_port: int = Field(18080, alias="SPARK_MASTER_UI_PORT")
    spark_worker_ui_port: int = Field(18081, alias="SPARK_WORKER_UI_PORT")
    spark_worker_cores: int = Field(2, alias="SPARK_WORKER_CORES", ge=1)
    spark_worker_memory: str = Field("2g", alias="SPARK_WORKER_MEMORY")
    iceberg_db: str = Field("iceberg", alias="ICEBERG_DB")
    # --- end of module 4 -------------------------------------------------------------

    # --- module 5: Trino (coordinator + 1 worker) and Superset ----------------------
    # Users reach the coordinator over HTTPS on TRINO_PORT (passwords are checked on HTTPS
    # only; self-signed certificate made by the runner); plain HTTP on TRINO_HTTP_PORT and
    # TRINO_WORKER_PORT carries node-to-node traffic signed with TRINO_SHARED_SECRET.
    trino_version: str = Field("476", alias="TRINO_VERSION")
    trino_host: str = Field("127.0.0.1", alias="TRINO_HOST")
    trino_port: int = Field(8443, alias="TRINO_PORT")
    trino_http_port: int = Field(8080, alias="TRINO_HTTP_PORT")
    trino_worker_port: int = Field(8081, alias="TRINO_WORKER_PORT")
    trino_user: str = Field("dpe", alias="TRINO_USER")
    trino_password: str = Field(alias="TRINO_PASSWORD")
    trino_shared_secret: str = Field(alias="TRINO_SHARED_SECRET")
    superset_host: str = Field("127.0.0.1", alias="SUPERSET_HOST")
    superset_port: int = Field(8088, alias="SUPERSET_PORT")
    superset_admin_user: str = Field("admin", alias="SUPERSET_ADMIN_USER")
    superset_admin_password: str = Field(alias="SUPERSET_ADMIN_PASSWORD")
    superset_secret_key: str = Field(alias="SUPERSET_SECRET_KEY")

    # --- bonus module 6: Airflow ---------------------------------------------------------
    airflow_host: str = Field("127.0.0.1", alias="AIRFLOW_HOST")
    airflow_port: int = Field(8090, alias="AIRFLOW_PORT")
    airflow_admin_user: str = Field("admin", alias="AIRFLOW_ADMIN_USER")
    airflow_admin_password: str = Field(alias="AIRFLOW_ADMIN_PASSWORD")
    airflow_secret_key: str = Field(alias="AIRFLOW_SECRET_KEY")
    # --- end of module 5 -------------------------------------------------------------

    @field_validator("learner_id")
    @classmethod
    def _check_learner_id(cls, value: str) -> str:
        if not LEARNER_ID_PATTERN.match(value):
            raise ValueError(
                f"LEARNER_ID={value!r} est invalide : utilisez 2 à 31 caractères, minuscules, chiffres "
                "ou _, en commençant par une lettre (ex. : marie_dupont)."
            )
        return value

    # --- derived values -------------------------------------------------------------
    @property
    def replay_url(self) -> str:
        """Base URL of the local ADEME replay, same shape as the live ``…/data-fair/api/v1``."""
        return f"http://{self.replay_host}:{self.replay_port}/data-fair/api/v1"

    @property
    def ademe_base_url(self) -> str:
        """The API base URL the client uses: the live API or the replay, as ``ADEME_MODE`` says."""
        return self.ademe_live_url if self.ademe_mode == "live" else self.replay_url

    @property
    def lab_namespace(self) -> str:
        """Prefix for everything a lab writes (PostgreSQL schema, Iceberg namespace…)."""
        return f"lab_{self.learner_id}"

    def lab_topic(self, name: str) -> str:
        """A Kafka topic name inside the learner's namespace, e.g. ``lab.marie.dpe.raw``."""
        return f"lab.{self.learner_id}.{name}"

    # --- module 4 (derived) -----------------------------------------------------------
    @property
    def spark_master(self) -> str:
        """Where Spark drivers connect: ``SPARK_MASTER_URL``, else the native standalone master."""
        return self.spark_master_url or f"spark://127.0.0.1:{self.spark_master_port}"

    @property
    def iceberg_jdbc_url(self) -> str:
        """The Iceberg JDBC catalog database, as Spark and Trino reach it."""
        return f"jdbc:postgresql://{self.postgres_host}:{self.postgres_port}/{self.iceberg_db}"

    @property
    def warehouse(self) -> str:
        """Root of the Iceberg tables in the object store."""
        return f"s3://{self.s3_bucket}/"

    # --- module 5 (derived) -----------------------------------------------------------
    @property
    def trino_url(self) -> str:
        """The coordinator's HTTPS address: clients, Superset and the web UI (``/ui/``)."""
        return f"https://{self.trino_host}:{self.trino_port}"

    @property
    def superset_url(self) -> str:
        return f"http://{self.superset_host}:{self.superset_port}"

    @property
    def airflow_url(self) -> str:
        """The Airflow API server: UI, REST API (``/api/v2``) and the tasks' execution API."""
        return f"http://{self.airflow_host}:{self.airflow_port}"

    @property
    def postgres_dsn(self) -> str:
        return (
            f"host={self.postgres_host} port={self.postgres_port} dbname={self.postgres_db} "
            f"user={self.postgres_user} password={self.postgres_password}"
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The course settings (``.env`` created on first use; the process environment wins)."""
    env_file = ensure_env_file()
    return Settings(_env_file=env_file)  # type: ignore[call-arg]
