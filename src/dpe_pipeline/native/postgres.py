"""PostgreSQL for the native stack: a private cluster, initialised once, run in the foreground.

The cluster belongs to the course, not to the system's ``postgresql`` service: its own data
directory, password logins only (SCRAM), the ``.env`` user as superuser (as the ``postgres``
image does in compose), and the databases ``dpe`` (raw store) and ``iceberg`` (catalog).
initdb and postgres refuse to run as root, so as root both run as the ``postgres`` user.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from dpe_pipeline.native.registry import StackContext, StackError
from dpe_pipeline.settings import Settings

logger = logging.getLogger(__name__)

ICEBERG_DATABASE = "iceberg"
SYSTEM_USER = "postgres"
FALLBACK_PARENT = Path("/var/tmp")
COURSE_CONFIG = "dpe-course.conf"
INCLUDE_LINE = f"include_if_exists = '{COURSE_CONFIG}'  # added by the course's native stack"


@dataclass(frozen=True)
class PostgresLayout:
    """Where the cluster lives and who runs it."""

    bin_dir: Path | None
    root: Path
    run_as: str | None
    preferred_root: Path

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def binary(self, name: str) -> str:
        return str(self.bin_dir / name) if self.bin_dir else name


def find_bin_dir() -> Path | None:
    """The server binaries: ``postgres`` on PATH, else the newest Debian install."""
    on_path = shutil.which("postgres")
    if on_path:
        return Path(on_path).resolve().parent
    installs = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda binary: int(binary.parent.parent.name) if binary.parent.parent.name.isdigit() else 0,
    )
    return installs[-1].parent if installs else None


def find_layout(ctx: StackContext) -> PostgresLayout:
    """Choose the data location without touching anything (safe for ``status``)."""
    run_as = SYSTEM_USER if ctx.running_as_root else None
    preferred = ctx.paths.state_dir / "postgres"
    fallback = FALLBACK_PARENT / f"dpe-course-{ctx.paths.state_id}" / "postgres"
    root = preferred
    if run_as and not (preferred / "data" / "PG_VERSION").exists():
        # Keep a cluster where it already is; else go where the server's user can reach it
        unreachable = not _traversable_by(run_as, ctx.paths.state_dir)
        root = fallback if unreachable or (fallback / "data" / "PG_VERSION").exists() else preferred
    return PostgresLayout(find_bin_dir(), root, run_as, preferred)


def _traversable_by(user: str, folder: Path) -> bool:
    """Can ``user`` reach ``folder``? (Folders still to be created count as reachable.)"""
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        return True  # prepare() reports the missing user
    groups = {account.pw_gid} | {group.gr_gid for group in grp.getgrall() if user in group.gr_mem}
    for path in (folder, *folder.parents):
        try:
            info = path.stat()
        except FileNotFoundError:
            continue
        if info.st_uid == account.pw_uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid in groups:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            return False
    return True


def server_command(layout: PostgresLayout, settings: Settings) -> tuple[str, ...]:
    """``postgres -D …`` in the foreground; address and port from ``.env``, no unix socket."""
    return (
        layout.binary("postgres"),
        "-D", str(layout.data_dir),
        "-c", f"listen_addresses={settings.postgres_host}",
        "-c", f"port={settings.postgres_port}",
        "-c", "unix_socket_directories=",
    )


def prepare(ctx: StackContext, layout: PostgresLayout) -> None:
    """Create the cluster on first use, then install the course's configuration files."""
    check_installation(layout)
    if layout.root != layout.preferred_root:
        logger.info(
            "PostgreSQL data in %s: user %s cannot traverse %s", layout.root, layout.run_as, ctx.paths.state_dir
        )
    create_owned_folder(layout)
    if not (layout.data_dir / "PG_VERSION").exists():
        initialise_cluster(ctx.settings, layout)
    install_configuration(ctx, layout)


def check_installation(layout: PostgresLayout) -> None:
    if layout.bin_dir is None:
        raise StackError(
            "PostgreSQL est introuvable sur cette machine : installez-le (sudo apt-get install postgresql) "
            "puis relancez ./dpe up."
        )
    if layout.run_as:
        try:
            pwd.getpwnam(layout.run_as)
        except KeyError:
            raise StackError(
                f"PostgreSQL refuse de tourner en root et l'utilisateur système « {layout.run_as} » n'existe pas : "
                "installez le paquet postgresql (il le crée) ou lancez ./dpe sans être root."
            ) from None


def create_owned_folder(layout: PostgresLayout) -> None:
    layout.root.parent.mkdir(parents=True, exist_ok=True)
    layout.root.mkdir(mode=0o700, exist_ok=True)
    if layout.run_as:
        account = pwd.getpwnam(layout.run_as)
        os.chown(layout.root, account.pw_uid, account.pw_gid)
    layout.root.chmod(0o700)


def initialise_cluster(settings: Settings, layout: PostgresLayout) -> None:
    """initdb with the ``.env`` user as superuser and SCRAM password logins."""
    print(f"Initialisation de PostgreSQL dans {layout.data_dir} (une seule fois)…", flush=True)
    password_file = layout.root / "initdb.password"
    password_file.write_text(settings.postgres_password + "\n", encoding="utf-8")
    password_file.chmod(0o600)
    _give_to_server_user(layout, password_file)
    command = [
        layout.binary("initdb"),
        "--pgdata", str(layout.data_dir),
        "--username", settings.postgres_user,
        "--pwfile", str(password_file),
        "--auth", "scram-sha-256",
        "--encoding", "UTF8",
        "--no-locale",
        "--no-instructions",
    ]
    if layout.run_as:
        command = ["runuser", "-u", layout.run_as, "--", *command]
    try:
        result = subprocess.run(command, cwd=layout.root, capture_output=True, text=True)
    finally:
        password_file.unlink(missing_ok=True)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        logger.error("initdb failed (%s): %s", result.returncode, output)
        raise StackError(f"L'initialisation de PostgreSQL (initdb) a échoué :\n{output}")


def install_configuration(ctx: StackContext, layout: PostgresLayout) -> None:
    """Copy ``stack/postgres`` into the data directory; include the course's settings once."""
    source = ctx.paths.project_dir / "stack" / "postgres"
    for name, target in (("postgresql.conf", COURSE_CONFIG), ("pg_hba.conf", "pg_hba.conf")):
        destination = layout.data_dir / target
        destination.write_text((source / name).read_text(encoding="utf-8"), encoding="utf-8")
        destination.chmod(0o600)
        _give_to_server_user(layout, destination)
    main_config = layout.data_dir / "postgresql.conf"
    text = main_config.read_text(encoding="utf-8")
    if INCLUDE_LINE not in text:
        main_config.write_text(text.rstrip("\n") + "\n\n" + INCLUDE_LINE + "\n", encoding="utf-8")


def _give_to_server_user(layout: PostgresLayout, path: Path) -> None:
    if layout.run_as:
        account = pwd.getpwnam(layout.run_as)
        os.chown(path, account.pw_uid, account.pw_gid)


def create_databases(settings: Settings, databases: tuple[str, ...] | None = None, purpose: str = "les bases") -> None:
    """Databases owned by the ``.env`` user, created through PostgreSQL's admin database if missing.

    By default the raw store (``POSTGRES_DB``) and the Iceberg catalog database; Superset and
    Airflow name their metadata database (``purpose`` says whose, in the French error).
    """
    import psycopg2
    from psycopg2 import sql

    try:
        connection = psycopg2.connect(
            host=settings.postgres_host,
            port=settings.postgres_port,
            dbname="postgres",
            user=settings.postgres_user,
            password=settings.postgres_password,
            connect_timeout=5,
        )
    except psycopg2.Error as error:
        raise StackError(f"Connexion à PostgreSQL impossible pour créer {purpose} : {error}".strip()) from error
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            for database in databases or (settings.postgres_db, ICEBERG_DATABASE):
                cursor.execute("select 1 from pg_database where datname = %s", (database,))
                if cursor.fetchone():
                    continue
                logger.info("creating database %s", database)
                cursor.execute(
                    sql.SQL("create database {} owner {}").format(
                        sql.Identifier(database), sql.Identifier(settings.postgres_user)
                    )
                )
    except psycopg2.Error as error:
        raise StackError(f"Création de {purpose} impossible : {error}".strip()) from error
    finally:
        connection.close()


def failure_hint(layout: PostgresLayout, reason: str) -> str | None:
    """A French hint for the failures a learner can fix."""
    if "password authentication failed" in reason:
        return (
            f"Le mot de passe ou l'utilisateur de .env ne correspond pas à la base déjà initialisée dans "
            f"{layout.data_dir} : remettez l'ancien POSTGRES_PASSWORD/POSTGRES_USER, ou arrêtez la pile "
            "et supprimez ce dossier pour repartir d'une base vide."
        )
    return None
