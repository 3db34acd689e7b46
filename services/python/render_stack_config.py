"""Render the native stack's configuration templates (``stack/``) for Docker Compose.

The native runner fills the dollar-brace placeholders of ``stack/spark/*.template`` and
``stack/trino/**/*.template`` from ``.env`` with addresses on 127.0.0.1. In compose the very
same files are rendered here, inside the containers, from the environment compose gives
them (service names instead of 127.0.0.1). A few keys that hold a literal loopback address
in the templates are then replaced, and nothing else changes:

- Spark: ``spark.driver.host`` is the container's own name (executors call the driver back)
  and ``spark.driver.bindAddress`` is every interface;
- Trino: ``node.internal-address`` is the node's service name and the worker's
  ``discovery.uri`` points at the coordinator service.

Trino checks passwords only over HTTPS, so the coordinator gets a self-signed certificate
made here (names ``trino``, ``localhost``, 127.0.0.1) and listens for clients on port 443
of the compose network: trino-python-client (and so Superset) picks HTTPS by itself for
port 443, where any other port would need ``http_scheme`` in code.

Usage (the Python image runs the first one at every start, a one-shot job the second)::

    python render_stack_config.py spark  --target /tmp/spark-conf
    python render_stack_config.py trino  --target /trino-etc --role coordinator

A placeholder without a value stops the rendering with its name: the compose tests render
every template with the environment the compose file resolves to.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import socket
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from string import Template

STACK_DIR = Path(os.environ.get("DPE_PROJECT_DIR", Path(__file__).resolve().parents[2])) / "stack"
SPARK_JARS_DIR = Path(os.environ.get("SPARK_JARS_DIR", "/opt/spark-jars"))

# Where things are inside the trinodb/trino image
TRINO_ETC = "/etc/trino"
TRINO_HOME = "/usr/lib/trino"
TRINO_DATA = "/data/trino"
TRINO_COORDINATOR = "trino"
TRINO_HTTP_PORT = 8080  # node-to-node traffic, signed with the shared secret
TRINO_HTTPS_PORT = 443  # clients (password); unprivileged in a container network
TLS_SUBJECT_NAMES = "DNS:trino,DNS:localhost,IP:127.0.0.1"
# Trino checks PBKDF2 hashes with HmacSHA1 and at least 1000 iterations (password file format)
PBKDF2_ITERATIONS = 100_000


def render_template(path: Path, values: Mapping[str, object]) -> str:
    """``path`` with its ``${name}`` placeholders filled; a missing value names the file and the key."""
    try:
        return Template(path.read_text(encoding="utf-8")).substitute(values)
    except KeyError as error:
        raise SystemExit(f"{path}: no value for the placeholder ${{{error.args[0]}}}") from None


def override_keys(text: str, overrides: Mapping[str, object], separator: str = "=") -> str:
    """Replace the value of each key in a properties (``key=value``) or spark-defaults (``key value``) text."""
    lines = []
    pending = dict(overrides)
    for line in text.splitlines():
        key = line.split(separator, 1)[0].strip() if separator != " " else (line.split(None, 1) or [""])[0]
        if key in pending and not line.lstrip().startswith("#"):
            line = f"{key}{separator}{pending.pop(key)}" if separator != " " else f"{key:<44}{pending.pop(key)}"
        lines.append(line)
    lines.extend(f"{key}{separator}{value}" for key, value in pending.items())
    return "\n".join(lines) + "\n"


def common_values(env: Mapping[str, str]) -> dict[str, object]:
    """The placeholders shared by Spark's and Trino's catalogs: PostgreSQL and the S3 store."""
    return {
        "postgres_host": env["POSTGRES_HOST"],
        "postgres_port": env["POSTGRES_PORT"],
        "postgres_db": env["POSTGRES_DB"],
        "postgres_user": env["POSTGRES_USER"],
        "postgres_password": env["POSTGRES_PASSWORD"],
        "iceberg_db": env.get("ICEBERG_DB", "iceberg"),
        "iceberg_db_user": env["POSTGRES_USER"],
        "iceberg_db_password": env["POSTGRES_PASSWORD"],
        "s3_endpoint": env["S3_ENDPOINT"],
        "s3_region": env["S3_REGION"],
        "s3_bucket": env["S3_BUCKET"],
        "s3_access_key": env["S3_ACCESS_KEY"],
        "s3_secret_key": env["S3_SECRET_KEY"],
    }


# --- Spark ------------------------------------------------------------------------------------


def render_spark(target: Path, env: Mapping[str, str], hostname: str) -> Path:
    """``spark-defaults.conf`` for a container whose name is ``hostname``."""
    jars = sorted(str(jar) for jar in SPARK_JARS_DIR.glob("*.jar"))
    values = {**common_values(env), "spark_jars": ",".join(jars)}
    text = render_template(STACK_DIR / "spark" / "spark-defaults.conf.template", values)
    text = override_keys(text, {"spark.driver.host": hostname, "spark.driver.bindAddress": "0.0.0.0"}, " ")
    target.mkdir(parents=True, exist_ok=True)
    output = target / "spark-defaults.conf"
    output.write_text(text, encoding="utf-8")
    return output


# --- Trino ------------------------------------------------------------------------------------


def trino_password_line(user: str, password: str, salt: bytes | None = None) -> str:
    """One line of Trino's password file: ``user:iterations:salt:hash`` (PBKDF2, hex)."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha1", password.encode("utf-8"), salt, PBKDF2_ITERATIONS, dklen=32)
    return f"{user}:{PBKDF2_ITERATIONS}:{salt.hex()}:{digest.hex()}\n"


def self_signed_pem(days: int = 3650) -> str:
    """A private key and its self-signed certificate for the coordinator, in one PEM text."""
    with tempfile.TemporaryDirectory() as folder:
        key, certificate = Path(folder) / "key.pem", Path(folder) / "cert.pem"
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", str(days),
                "-subj", "/CN=trino", "-addext", f"subjectAltName={TLS_SUBJECT_NAMES}",
                "-keyout", str(key), "-out", str(certificate),
            ],
            check=True,
            capture_output=True,
        )
        return key.read_text(encoding="ascii") + certificate.read_text(encoding="ascii")


def render_trino(target: Path, env: Mapping[str, str], role: str) -> list[Path]:
    """The ``/etc/trino`` folder of one node: ``role`` is ``coordinator`` or ``worker``."""
    source = STACK_DIR / "trino"
    node_name = TRINO_COORDINATOR if role == "coordinator" else f"{TRINO_COORDINATOR}-worker"
    values = {
        **common_values(env),
        "http_port": TRINO_HTTP_PORT,
        "coordinator_port": TRINO_HTTP_PORT,
        "etc_dir": TRINO_ETC,
        "trino_home": TRINO_HOME,
        "data_dir": TRINO_DATA,
        "environment": "dpe",
        "node_id": node_name,
        "shared_secret": env["TRINO_SHARED_SECRET"],
        "password_file": f"{TRINO_ETC}/password.db",
        "https_port": TRINO_HTTPS_PORT,
        "tls_pem": f"{TRINO_ETC}/tls.pem",
        # Plain HTTP serves only node-to-node traffic: a client must come with a password over HTTPS
        "allow_insecure_over_http": "false",
    }
    config_template = "config.properties.template" if role == "coordinator" else "config-worker.properties.template"
    files = {
        "node.properties": override_keys(
            render_template(source / "node.properties.template", values), {"node.internal-address": node_name}
        ),
        "config.properties": render_template(source / config_template, values),
        "jvm.config": (source / "jvm.config").read_text(encoding="utf-8"),
        "log.properties": (source / "log.properties").read_text(encoding="utf-8"),
    }
    if role == "worker":
        files["config.properties"] = override_keys(
            files["config.properties"], {"discovery.uri": f"http://{TRINO_COORDINATOR}:{TRINO_HTTP_PORT}"}
        )
    else:
        files["password-authenticator.properties"] = render_template(
            source / "password-authenticator.properties.template", values
        )
        files["password.db"] = trino_password_line(env["TRINO_USER"], env["TRINO_PASSWORD"])
        files["tls.pem"] = self_signed_pem()
    for template in sorted((source / "catalog").glob("*.properties.template")):
        files[f"catalog/{template.name.removesuffix('.template')}"] = render_template(template, values)

    written = []
    for name, text in files.items():
        output = target / name
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        written.append(output)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("service", choices=("spark", "trino"))
    parser.add_argument("--target", type=Path, required=True, help="folder to write")
    parser.add_argument("--role", choices=("coordinator", "worker"), default="coordinator", help="Trino node role")
    args = parser.parse_args(argv)
    if args.service == "spark":
        written = [render_spark(args.target, os.environ, socket.gethostname())]
    else:
        written = render_trino(args.target, os.environ, args.role)
    print(f"{args.service}: wrote {', '.join(str(path) for path in written)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
