"""Trino for the native stack: a coordinator and one worker from the Maven Central tarball.

- ``scripts/fetch-trino.sh`` puts the server (pruned to the course's plugins) and the CLI in
  ``$DPE_CACHE/trino-<version>/`` once;
- each node gets ``var/trino/<node>/etc`` rendered from ``stack/trino/*.template`` (the same
  templates compose renders) and ``var/trino/<node>/data`` (logs, spill);
- passwords are checked only over HTTPS, so the coordinator gets a self-signed certificate
  (key + certificate in one PEM, SAN IP:127.0.0.1) made once with ``openssl``, and a
  PBKDF2 password file written from ``TRINO_USER``/``TRINO_PASSWORD`` at every start;
- Trino 476 needs Java >= 24: it runs on Temurin 25 (``TRINO_JAVA_HOME`` overrides).

The health checks speak SQL: the coordinator answers an authenticated ``SELECT 1`` over
HTTPS; the worker is ready once the coordinator lists it, active, in ``system.runtime.nodes``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

from dpe_pipeline.native.health import probe_tcp
from dpe_pipeline.native.registry import StackContext, StackError
from dpe_pipeline.settings import Settings

logger = logging.getLogger(__name__)

COORDINATOR = "coordinator"
WORKER = "worker"
JAVA_CANDIDATES = ("/usr/lib/jvm/temurin-25-jdk-amd64", "/usr/lib/jvm/temurin-25-jdk-arm64")
# Trino's file authenticator accepts bcrypt or PBKDF2 (HmacSHA1, >= 1000 iterations) hashes
PBKDF2_ITERATIONS = 100_000
TLS_SUBJECT_NAMES = "DNS:localhost,IP:127.0.0.1"
CERTIFICATE_DAYS = 3650
FETCH_TIMEOUT_SECONDS = 900


def install_dir(ctx: StackContext) -> Path:
    version = ctx.settings.trino_version
    return ctx.paths.cache_dir / f"trino-{version}" / f"trino-server-{version}"


def cli_jar(ctx: StackContext) -> Path:
    version = ctx.settings.trino_version
    return ctx.paths.cache_dir / f"trino-{version}" / f"trino-cli-{version}-executable.jar"


def node_dir(ctx: StackContext, role: str) -> Path:
    return ctx.paths.state_dir / "trino" / role


def certificate_path(ctx: StackContext) -> Path:
    """The coordinator's PEM (private key + certificate); clients verify against it."""
    return node_dir(ctx, COORDINATOR) / "etc" / "tls.pem"


def java_home() -> str:
    """A JDK >= 24 for Trino 476: ``TRINO_JAVA_HOME``, else Temurin 25 where Debian's package puts it."""
    explicit = os.environ.get("TRINO_JAVA_HOME")
    for candidate in ([explicit] if explicit else []) + list(JAVA_CANDIDATES):
        if (Path(candidate) / "bin" / "java").exists():
            return candidate
    return explicit or JAVA_CANDIDATES[0]


def server_command(ctx: StackContext, role: str) -> tuple[str, ...]:
    """The airlift launcher in the foreground; it runs from the data dir (hence absolute paths)."""
    folder = node_dir(ctx, role)
    return (
        str(install_dir(ctx) / "bin" / "launcher"),
        "run",
        "-etc-dir", str(folder / "etc"),
        "-data-dir", str(folder / "data"),
        "-jvm-dir", java_home(),
    )


# --- preparation -------------------------------------------------------------------------


def prepare(ctx: StackContext, role: str) -> None:
    """Server in the cache, then this node's ``etc/`` rendered from ``.env``."""
    check_java()
    fetch_server(ctx)
    render_node(ctx, role)


def check_java() -> None:
    if not (Path(java_home()) / "bin" / "java").exists():
        raise StackError(
            "Trino 476 a besoin de Java 24 ou plus, introuvable ici : installez Temurin 25 "
            "(scripts/install-system-deps.sh) ou indiquez son dossier dans TRINO_JAVA_HOME."
        )


def fetch_server(ctx: StackContext) -> None:
    """Run ``scripts/fetch-trino.sh`` (instant when cached; ~820 MB from Maven Central otherwise)."""
    if (install_dir(ctx) / ".dpe-complete").exists() and cli_jar(ctx).exists():
        return
    print("Téléchargement de Trino depuis Maven Central (une seule fois, ~1 min)…", flush=True)
    environment = {**os.environ, "DPE_CACHE": str(ctx.paths.cache_dir), "TRINO_VERSION": ctx.settings.trino_version}
    script = ctx.paths.project_dir / "scripts" / "fetch-trino.sh"
    result = subprocess.run(
        [str(script)], env=environment, capture_output=True, text=True, timeout=FETCH_TIMEOUT_SECONDS
    )
    if result.returncode != 0:
        logger.error("fetch-trino.sh failed (%s): %s", result.returncode, result.stderr)
        raise StackError(f"Le téléchargement de Trino a échoué :\n{result.stderr.strip()[-2000:]}")


def template_values(ctx: StackContext, role: str) -> dict[str, object]:
    """Every placeholder of ``stack/trino`` for one node (same names as the compose renderer)."""
    s = ctx.settings
    etc = node_dir(ctx, role) / "etc"
    return {
        "postgres_host": s.postgres_host,
        "postgres_port": s.postgres_port,
        "postgres_db": s.postgres_db,
        "postgres_user": s.postgres_user,
        "postgres_password": s.postgres_password,
        "iceberg_db": s.iceberg_db,
        "iceberg_db_user": s.postgres_user,
        "iceberg_db_password": s.postgres_password,
        "s3_endpoint": s.s3_endpoint,
        "s3_region": s.s3_region,
        "s3_bucket": s.s3_bucket,
        "s3_access_key": s.s3_access_key,
        "s3_secret_key": s.s3_secret_key,
        "http_port": s.trino_http_port if role == COORDINATOR else s.trino_worker_port,
        "coordinator_port": s.trino_http_port,
        "https_port": s.trino_port,
        "etc_dir": etc,
        "trino_home": install_dir(ctx),
        "data_dir": node_dir(ctx, role) / "data",
        "environment": "dpe",
        "node_id": f"dpe-{role}",
        "shared_secret": s.trino_shared_secret,
        "password_file": etc / "password.db",
        "tls_pem": etc / "tls.pem",
        # Plain HTTP serves node-to-node traffic only: users come with a password over HTTPS
        "allow_insecure_over_http": "false",
    }


def render_node(ctx: StackContext, role: str) -> None:
    """Write ``etc/`` of one node (private: it holds passwords); keep an existing certificate."""
    source = ctx.paths.project_dir / "stack" / "trino"
    etc = node_dir(ctx, role) / "etc"
    (etc / "catalog").mkdir(parents=True, exist_ok=True)
    (node_dir(ctx, role) / "data").mkdir(parents=True, exist_ok=True)
    etc.chmod(0o700)
    values = template_values(ctx, role)
    config = "config.properties.template" if role == COORDINATOR else "config-worker.properties.template"
    files = {
        "node.properties": render(source / "node.properties.template", values),
        "config.properties": render(source / config, values),
        "jvm.config": (source / "jvm.config").read_text(encoding="utf-8"),
        "log.properties": (source / "log.properties").read_text(encoding="utf-8"),
    }
    for template in sorted((source / "catalog").glob("*.properties.template")):
        files[f"catalog/{template.name.removesuffix('.template')}"] = render(template, values)
    if role == COORDINATOR:
        s = ctx.settings
        files["password-authenticator.properties"] = render(
            source / "password-authenticator.properties.template", values
        )
        files["password.db"] = password_line(s.trino_user, s.trino_password, existing=etc / "password.db")
    for name, text in files.items():
        write_private(etc / name, text)
    if role == COORDINATOR and not certificate_path(ctx).exists():
        write_private(certificate_path(ctx), self_signed_pem())


def render(path: Path, values: dict[str, object]) -> str:
    try:
        return Template(path.read_text(encoding="utf-8")).substitute(values)
    except KeyError as error:
        raise StackError(f"{path} : aucune valeur pour ${{{error.args[0]}}}") from None


def write_private(path: Path, text: str) -> None:
    """Write only when the content changed (supervisord and Trino keep their file handles)."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.chmod(0o600)
    temporary.replace(path)


def password_line(user: str, password: str, existing: Path | None = None) -> str:
    """``user:iterations:salt:hash`` (PBKDF2-HmacSHA1, hex); reuses the salt of a still-valid line."""
    salt = secrets.token_bytes(16)
    if existing and existing.exists():
        parts = existing.read_text(encoding="utf-8").strip().split(":")
        if len(parts) == 4 and parts[0] == user and parts[1] == str(PBKDF2_ITERATIONS):
            salt = bytes.fromhex(parts[2])
    digest = hashlib.pbkdf2_hmac("sha1", password.encode("utf-8"), salt, PBKDF2_ITERATIONS, dklen=32)
    return f"{user}:{PBKDF2_ITERATIONS}:{salt.hex()}:{digest.hex()}\n"


def self_signed_pem() -> str:
    """A private key and its self-signed certificate (SAN 127.0.0.1, localhost) in one PEM text."""
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"dpe-trino-tls-{secrets.token_hex(4)}"
    folder.mkdir(mode=0o700)
    key, certificate = folder / "key.pem", folder / "cert.pem"
    try:
        result = subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
                "-days", str(CERTIFICATE_DAYS), "-subj", "/CN=localhost",
                "-addext", f"subjectAltName={TLS_SUBJECT_NAMES}",
                "-keyout", str(key), "-out", str(certificate),
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise StackError(f"openssl n'a pas pu créer le certificat de Trino : {result.stderr.strip()}")
        return key.read_text(encoding="ascii") + certificate.read_text(encoding="ascii")
    except FileNotFoundError:
        raise StackError("openssl est introuvable : installez-le (apt-get install openssl).") from None
    finally:
        for path in (key, certificate):
            path.unlink(missing_ok=True)
        folder.rmdir()


# --- health ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrinoCheck:
    """An authenticated query over HTTPS; with ``node_id``, that node must be listed as active."""

    settings: Settings = field(repr=False)
    certificate: Path
    node_id: str | None = None

    def probe(self, timeout: float) -> str | None:
        s = self.settings
        closed = probe_tcp(s.trino_host, s.trino_port, timeout)
        if closed:
            return closed
        if not self.certificate.exists():
            return f"no certificate yet at {self.certificate}"
        from dpe_pipeline.trino_queries import connect

        sql = "SELECT 1"
        if self.node_id:
            sql = f"SELECT count(*) FROM system.runtime.nodes WHERE node_id = '{self.node_id}' AND state = 'active'"
        try:
            connection = connect(s, certificate=self.certificate, request_timeout=max(timeout, 5.0))
            cursor = connection.cursor()
            cursor.execute(sql)
            (value,) = cursor.fetchone()
            connection.close()
        except Exception as error:  # noqa: BLE001 - any failure means "not ready yet", with its reason
            return f"Trino {s.trino_url}: {type(error).__name__}: {str(error)[:200]}"
        if value != 1:
            return f"node {self.node_id} not active yet in system.runtime.nodes"
        return None


# --- initialisation -------------------------------------------------------------------------


def create_catalog_tables(settings: Settings) -> None:
    """Create the JDBC catalog's tables (V1) if no engine did yet: Trino expects them to exist.

    PyIceberg's SqlCatalog creates ``iceberg_tables`` and ``iceberg_namespace_properties``
    when they are missing, the layout Spark and Trino share (``jdbc.schema-version=V1``).
    """
    from dpe_pipeline.trino_queries import lake_catalog

    try:
        lake_catalog(settings)
    except Exception as error:  # noqa: BLE001 - reported in French to the learner
        raise StackError(f"Création des tables du catalogue Iceberg impossible : {error}") from error


def failure_hint(reason: str) -> str | None:
    if "401" in reason or "Unauthorized" in reason:
        return (
            "Trino refuse le mot de passe : TRINO_PASSWORD a changé depuis le démarrage ; "
            "relancez ./dpe up trino (le fichier des mots de passe est réécrit à chaque démarrage)."
        )
    if "SSL" in reason or "certificate" in reason:
        return (
            "Le certificat TLS de Trino (var/trino/coordinator/etc/tls.pem) est refusé : arrêtez la pile, "
            "supprimez ce fichier (il est recréé) et relancez ./dpe up trino."
        )
    return None
