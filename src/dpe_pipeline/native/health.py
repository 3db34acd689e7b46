"""Readiness checks of the native stack's services.

Each check answers ``probe(timeout)`` with ``None`` when the service is ready, else a short
English reason (``connection refused``, ``HTTP 503``…) shown in logs and error messages.
A check talks the service's own protocol: an open port alone proves little.
"""

from __future__ import annotations

import logging
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Protocol

logger = logging.getLogger(__name__)


class HealthCheck(Protocol):
    def probe(self, timeout: float) -> str | None:
        """``None`` when the service is ready, else why it is not."""
        ...


def probe_tcp(host: str, port: int, timeout: float) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as error:
        return f"{host}:{port}: {error.strerror or error}"


@dataclass(frozen=True)
class TcpCheck:
    """Something accepts TCP connections on host:port (for services with no protocol to ask)."""

    host: str
    port: int

    def probe(self, timeout: float) -> str | None:
        return probe_tcp(self.host, self.port, timeout)


# Local services only: never send these requests through an HTTP proxy from the environment.
_DIRECT_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class HttpCheck:
    """A GET on the URL answers the expected status."""

    url: str
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    expected_status: int = 200

    def probe(self, timeout: float) -> str | None:
        request = urllib.request.Request(self.url, headers=dict(self.headers))
        try:
            with _DIRECT_OPENER.open(request, timeout=timeout) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            return f"GET {self.url}: {reason}"
        if status != self.expected_status:
            return f"GET {self.url}: HTTP {status}"
        return None


@dataclass(frozen=True)
class PostgresCheck:
    """A password login and a ``select 1``."""

    host: str
    port: int
    dbname: str
    user: str
    password: str = field(repr=False)

    def probe(self, timeout: float) -> str | None:
        import psycopg2

        closed = probe_tcp(self.host, self.port, timeout)
        if closed:
            return closed
        try:
            connection = psycopg2.connect(
                host=self.host,
                port=self.port,
                dbname=self.dbname,
                user=self.user,
                password=self.password,
                connect_timeout=max(1, round(timeout)),
            )
        except psycopg2.Error as error:
            return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        try:
            with connection.cursor() as cursor:
                cursor.execute("select 1")
                cursor.fetchone()
        except psycopg2.Error as error:
            return f"select 1: {error}".strip()
        finally:
            connection.close()
        return None


@dataclass(frozen=True)
class KafkaCheck:
    """A metadata request (list of topics) answered by the broker."""

    bootstrap_servers: str

    def probe(self, timeout: float) -> str | None:
        host, port = split_host_port(self.bootstrap_servers.split(",")[0])
        closed = probe_tcp(host, port, timeout)
        if closed:
            return closed
        quiet_kafka_logging()
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        timeout_ms = int(timeout * 1000)
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=self.bootstrap_servers,
                client_id="dpe-stack-health",
                request_timeout_ms=timeout_ms,
            )
        except KafkaError as error:
            return f"Kafka {self.bootstrap_servers}: {error!r}"
        try:
            admin.list_topics()
        except KafkaError as error:
            return f"Kafka metadata: {error!r}"
        finally:
            admin.close()
        return None


def split_host_port(address: str) -> tuple[str, int]:
    """``"127.0.0.1:9092"`` → ``("127.0.0.1", 9092)`` (IPv6 in brackets accepted)."""
    host, _, port = address.strip().rpartition(":")
    return host.strip("[]"), int(port)


def quiet_kafka_logging() -> None:
    """kafka-python logs every connection at INFO (and slow polls at WARNING): keep the CLI readable."""
    kafka_logger = logging.getLogger("kafka")
    if kafka_logger.level == logging.NOTSET:
        kafka_logger.setLevel(logging.ERROR)
