"""Kafka for the native stack: one KRaft node from Maven Central jars, no tarball.

- the classpath is ``stack/kafka/pom.xml``'s runtime dependencies, copied once into
  ``$DPE_CACHE/kafka-<version>/libs`` (a marker file records a complete copy);
- ``stack/kafka/server.properties`` is rendered into the state directory from ``.env``;
- the storage is formatted once (``kafka.tools.StorageTool format --standalone``);
- once the broker answers, the course's topics are created if missing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from string import Template

from dpe_pipeline.native.health import quiet_kafka_logging, split_host_port
from dpe_pipeline.native.registry import StackContext, StackError
from dpe_pipeline.settings import Settings

logger = logging.getLogger(__name__)

HEAP_OPTIONS = ("-Xms256m", "-Xmx512m")
JVM_OPTIONS = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)
RAW_TOPIC_PARTITIONS = 3  # one per consumer, up to CONSUMER_INSTANCES=3
DLQ_TOPIC_PARTITIONS = 1  # low volume, read in order when investigating rejects
MARKER = ".complete"


def java_executable() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    return shutil.which("java") or "java"


def install_dir(ctx: StackContext) -> Path:
    return ctx.paths.cache_dir / f"kafka-{ctx.settings.kafka_version}"


def state_dir(ctx: StackContext) -> Path:
    return ctx.paths.state_dir / "kafka"


def log4j_config(ctx: StackContext) -> Path:
    return ctx.paths.project_dir / "stack" / "kafka" / "log4j2.properties"


def classpath(ctx: StackContext) -> str:
    # The JVM expands "libs/*" itself; supervisord runs the command without a shell.
    return str(install_dir(ctx) / "libs" / "*")


def server_command(ctx: StackContext) -> tuple[str, ...]:
    return (
        java_executable(),
        *HEAP_OPTIONS,
        *JVM_OPTIONS,
        f"-Dlog4j2.configurationFile={log4j_config(ctx)}",
        f"-Dkafka.logs.dir={state_dir(ctx) / 'logs'}",
        "-cp", classpath(ctx),
        "kafka.Kafka",
        str(state_dir(ctx) / "server.properties"),
    )


def prepare(ctx: StackContext) -> None:
    """Jars, configuration and storage: each step is skipped when already done."""
    fetch_jars(ctx)
    write_server_properties(ctx)
    format_storage(ctx)


def fetch_jars(ctx: StackContext) -> None:
    """Copy the broker's classpath from Maven Central into the cache (once per version)."""
    target = install_dir(ctx)
    pom = ctx.paths.project_dir / "stack" / "kafka" / "pom.xml"
    wanted = {"version": ctx.settings.kafka_version, "pom_sha256": hashlib.sha256(pom.read_bytes()).hexdigest()}
    marker = target / MARKER
    if marker.exists() and (target / "libs").is_dir() and json.loads(marker.read_text(encoding="utf-8")) == wanted:
        return
    maven = shutil.which("mvn")
    if not maven:
        raise StackError(
            "Maven (mvn) est introuvable : il télécharge Kafka depuis Maven Central. "
            "Installez-le (sudo apt-get install maven) puis relancez ./dpe up."
        )
    version = ctx.settings.kafka_version
    print(f"Téléchargement de Kafka {version} depuis Maven Central (une seule fois)…", flush=True)
    started = time.monotonic()
    target.mkdir(parents=True, exist_ok=True)
    staging = target / f"libs.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    command = [
        maven, "-q", "-B", "-Dstyle.color=never",
        "-f", str(pom),
        f"-Dkafka.version={version}",
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={staging}",
    ]
    logger.debug("fetching Kafka jars: %s", " ".join(command))
    result = subprocess.run(command, cwd=target, capture_output=True, text=True)
    if result.returncode != 0 or not (staging / f"kafka_2.13-{version}.jar").exists():
        shutil.rmtree(staging, ignore_errors=True)
        output = _tail(result.stdout + result.stderr)
        raise StackError(
            f"Le téléchargement de Kafka {version} depuis Maven Central a échoué (code {result.returncode}). "
            f"Vérifiez KAFKA_VERSION dans .env et l'accès au réseau.\n{output}"
        )
    libs = target / "libs"
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    marker.write_text(json.dumps(wanted), encoding="utf-8")
    count = len(list(libs.glob("*.jar")))
    print(f"Kafka {version} : {count} jars dans {libs} ({time.monotonic() - started:.0f} s).", flush=True)


def write_server_properties(ctx: StackContext) -> None:
    settings = ctx.settings
    broker_host, broker_port = split_host_port(settings.kafka_bootstrap_servers.split(",")[0])
    template = Template((ctx.paths.project_dir / "stack" / "kafka" / "server.properties").read_text(encoding="utf-8"))
    text = template.substitute(
        broker_host=broker_host,
        broker_port=broker_port,
        controller_host=broker_host,
        controller_port=settings.kafka_controller_port,
        log_dir=state_dir(ctx) / "data",
    )
    folder = state_dir(ctx)
    (folder / "logs").mkdir(parents=True, exist_ok=True)
    (folder / "server.properties").write_text(text, encoding="utf-8")


def format_storage(ctx: StackContext) -> None:
    """Format the KRaft log directory once, with a cluster id kept in the state directory."""
    folder = state_dir(ctx)
    if (folder / "data" / "meta.properties").exists():
        return
    cluster_id = read_cluster_id(folder / "cluster.id")
    command = [
        java_executable(),
        f"-Dlog4j2.configurationFile={log4j_config(ctx)}",
        "-cp", classpath(ctx),
        "kafka.tools.StorageTool", "format",
        "--cluster-id", cluster_id,
        "--config", str(folder / "server.properties"),
        "--standalone",
        "--ignore-formatted",
    ]
    logger.debug("formatting Kafka storage in %s (cluster %s)", folder / "data", cluster_id)
    try:
        result = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    except FileNotFoundError:
        raise StackError(
            "Java est introuvable : Kafka a besoin de Java 17 ou plus (sudo apt-get install openjdk-17-jre-headless)."
        ) from None
    if result.returncode != 0:
        raise StackError(f"Le formatage du stockage Kafka a échoué :\n{_tail(result.stdout + result.stderr)}")


def read_cluster_id(path: Path) -> str:
    """The cluster id, created once: 16 random bytes in URL-safe base64, as Kafka's Uuid prints them."""
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):  # Kafka avoids ids that look like a CLI option
            break
    path.write_text(cluster_id + "\n", encoding="utf-8")
    return cluster_id


def course_topics(settings: Settings) -> dict[str, int]:
    """The pipeline's topics and their partition counts."""
    return {settings.kafka_topic_raw: RAW_TOPIC_PARTITIONS, settings.kafka_topic_dlq: DLQ_TOPIC_PARTITIONS}


def create_topics(settings: Settings, timeout: float = 30.0) -> None:
    """Create the course's topics if missing (right after start the controller may still be busy)."""
    quiet_kafka_logging()
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    wanted = course_topics(settings)
    deadline = time.monotonic() + timeout
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers, client_id="dpe-stack-init")
    try:
        while True:
            missing = {name: count for name, count in wanted.items() if name not in set(admin.list_topics())}
            if not missing:
                return
            try:
                admin.create_topics(
                    {name: {"num_partitions": count, "replication_factor": 1} for name, count in missing.items()},
                    wait_for_metadata=True,
                )
                logger.info("created Kafka topics %s", ", ".join(f"{n} (partitions: {c})" for n, c in missing.items()))
            except TopicAlreadyExistsError:
                continue
            except KafkaError as error:
                if time.monotonic() > deadline:
                    raise StackError(
                        f"Impossible de créer les topics Kafka {', '.join(missing)} : {error!r}"
                    ) from error
                logger.debug("topic creation not possible yet: %r", error)
                time.sleep(0.5)
    finally:
        admin.close()


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
