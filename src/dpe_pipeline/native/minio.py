"""MinIO for the native stack: the server built from the Go module proxy, its data under ``var/``.

No MinIO binary is published any more for the release the compose file pins, so
``scripts/build-minio.sh`` builds it once into the cache (``go install`` of the release's
pseudo-version, ~8 min cold on 2 cores, a cache hit afterwards). The server then runs in
the foreground with the ``.env`` credentials as root user, and the bucket of the Iceberg
warehouse is created as soon as it answers.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

from dpe_pipeline.native.registry import StackContext, StackError
from dpe_pipeline.settings import Settings

logger = logging.getLogger(__name__)

# The release compose runs (quay.io/minio/minio:<release>); scripts/build-minio.sh maps it to its pseudo-version
MINIO_RELEASE = "RELEASE.2025-09-07T16-13-09Z"
BUILD_SCRIPT = Path("scripts") / "build-minio.sh"


def endpoint_address(settings: Settings) -> tuple[str, int]:
    """Host and port of ``S3_ENDPOINT``, where the native MinIO listens."""
    parts = urlsplit(settings.s3_endpoint)
    if not parts.hostname:
        raise StackError(f"S3_ENDPOINT={settings.s3_endpoint!r} n'est pas une URL : écrivez par ex. http://127.0.0.1:9000.")
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def binary_path(ctx: StackContext) -> Path:
    """Where the build script leaves the server (``$DPE_CACHE/minio-<release>/minio``)."""
    return ctx.paths.cache_dir / f"minio-{MINIO_RELEASE}" / "minio"


def data_dir(ctx: StackContext) -> Path:
    return ctx.paths.state_dir / "minio"


def server_command(ctx: StackContext) -> tuple[str, ...]:
    settings = ctx.settings
    host, port = endpoint_address(settings)
    return (
        str(binary_path(ctx)), "server",
        "--address", f"{host}:{port}",
        "--console-address", f"{host}:{settings.minio_console_port}",
        "--quiet",
        str(data_dir(ctx)),
    )


def server_environment(settings: Settings) -> dict[str, str]:
    return {
        "MINIO_ROOT_USER": settings.s3_access_key,
        "MINIO_ROOT_PASSWORD": settings.s3_secret_key,
        "MINIO_REGION": settings.s3_region,
        # No phoning home in class or CI
        "MINIO_UPDATE": "off",
        "MINIO_CALLHOME_ENABLE": "off",
    }


def prepare(ctx: StackContext) -> None:
    """Build the server once (a cache hit afterwards) and create its data folder."""
    expected = binary_path(ctx)
    script = ctx.paths.project_dir / BUILD_SCRIPT
    environment = {**os.environ, "DPE_CACHE": str(ctx.paths.cache_dir), "MINIO_RELEASE": MINIO_RELEASE}
    if not expected.exists():
        print(f"Compilation de MinIO {MINIO_RELEASE} depuis le proxy de modules Go (une seule fois, ~8 min)…",
              flush=True)
    result = subprocess.run([str(script)], env=environment, capture_output=True, text=True)
    if result.returncode != 0:
        logger.error("build-minio.sh failed (%s): %s", result.returncode, result.stderr)
        raise StackError(
            "La compilation de MinIO a échoué (scripts/build-minio.sh) : "
            f"{result.stderr.strip()[-1500:]}\nIl faut Go ≥ 1.24 et l'accès au proxy de modules Go."
        )
    built = Path(result.stdout.strip().splitlines()[-1])
    if built.resolve() != expected.resolve():
        raise StackError(f"scripts/build-minio.sh a produit {built} au lieu de {expected}.")
    data_dir(ctx).mkdir(parents=True, exist_ok=True)


def create_bucket(settings: Settings) -> None:
    """The warehouse bucket of the Iceberg tables (idempotent)."""
    from dpe_pipeline import lakehouse

    try:
        created = lakehouse.ensure_bucket(settings)
    except Exception as error:  # botocore raises many unrelated classes; all mean "not created"
        raise StackError(f"Création du bucket {settings.s3_bucket} impossible : {error}") from error
    if created:
        logger.info("created bucket %s", settings.s3_bucket)


def failure_hint(reason: str) -> str | None:
    if "Access Denied" in reason or "InvalidAccessKeyId" in reason or "SignatureDoesNotMatch" in reason:
        return (
            "MinIO refuse les identifiants de .env : ses données (var/minio) ont été créées avec un autre "
            "S3_ACCESS_KEY/S3_SECRET_KEY. Remettez les anciens, ou arrêtez la pile et supprimez var/minio."
        )
    return None
