"""The native stack runner: the course's services as local processes, no Docker engine.

``./dpe up [service…]`` writes ``var/supervisord.conf`` from the service registry
(``dpe_pipeline.native.services``), starts supervisord if needed, then each requested
service and its dependencies: ports checked, one-time preparation, start, wait for a real
health check, initialisation (databases, topics). ``down`` stops everything, ``status``
prints a table, ``logs`` shows a service's log (``var/log/<service>.log``).

Tests and notebooks call :func:`ensure` (start what is missing, reuse what runs) and
:func:`is_healthy`. The state directory is ``<repo>/var`` unless ``DPE_STATE_DIR`` is set.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpe_pipeline.native.registry import (
    Port,
    Service,
    StackContext,
    StackError,
    StackPaths,
    build_services,
    resolve_order,
)
from dpe_pipeline.native.supervisor import (
    RUNNING_STATES,
    Supervisor,
    daemon_environment,
    find_stack_processes,
    render_config,
)
from dpe_pipeline.settings import get_settings

logger = logging.getLogger(__name__)

__all__ = ["StackError", "down", "ensure", "is_healthy", "logs", "status", "up"]

PROBE_TIMEOUT = 2.0
POLL_INTERVAL = 0.25
LOG_TAIL_LINES = 25
STOPPED_STATES = {"STOPPED", "EXITED", "FATAL", "UNKNOWN"}
STATE_LABELS = {
    "RUNNING": "démarré",
    "STARTING": "démarrage",
    "BACKOFF": "redémarrage",
    "STOPPING": "arrêt",
    "STOPPED": "arrêté",
    "EXITED": "terminé",
    "FATAL": "en échec",
    "UNKNOWN": "inconnu",
}


# --- public interface (./dpe, tests, notebooks) -------------------------------------------


def up(services: list[str] | None = None, after_start: Callable[[], int] | None = None) -> int:
    """Start the named services (all if None) and their dependencies; print URLs and credentials.

    ``after_start`` (the course's main job, for ``./dpe up``) runs once every service is
    healthy, before the banner; its non-zero return code is returned.
    """
    try:
        report = bring_up(services, announce=True)
    except StackError as error:
        print_error(str(error))
        return 1
    job_code = after_start() if after_start is not None and not report.failures else 0
    print_banner(report)
    if job_code:
        print_error("Le pipeline principal a échoué : voir les messages ci-dessus, puis ./dpe pipeline pour relancer.")
        return job_code
    for message in report.failures.values():
        print_error(message)
    if report.failures:
        print_error(f"Non démarré(s) : {', '.join(report.failures)}.")
        return 1
    return 0


def ensure(*services: str) -> None:
    """Make the services (all if none named) healthy: reuse running ones, start the others.

    A service already answering its health check on its port but not started by this stack
    (Docker Compose, a process a developer started) is reused as it is. Blocks until each is
    healthy; raises :class:`StackError` with the log's last lines if not.
    """
    report = bring_up(list(services) or None, announce=False, reuse_foreign=True)
    if report.failures:
        raise StackError("\n\n".join(report.failures.values()))


def is_healthy(service: str) -> bool:
    """Does the service pass its health check now (for services without one: is it running)?"""
    ctx = load_context()
    services = build_services(ctx)
    resolve_order(services, [service])  # French error for an unknown name
    target = services[service]
    if target.health is not None:
        return target.health.probe(PROBE_TIMEOUT) is None
    supervisor = Supervisor(ctx.paths)
    infos = supervisor.processes().get(service, []) if supervisor.is_running() else []
    return bool(infos) and all(info["statename"] == "RUNNING" for info in infos)


def status() -> int:
    """Print one line per service: state under supervisord, health, URL. 1 if a started one is unhealthy."""
    ctx = load_context()
    services = build_services(ctx)
    supervisor = Supervisor(ctx.paths)
    running = supervisor.is_running()
    infos = supervisor.processes() if running else {}
    health = probe_all([services[name] for name, group in infos.items() if name in services and _is_up(group)])
    rows = [("service", "état", "santé", "URL")]
    unhealthy = False
    for name, service in services.items():
        group = infos.get(name, [])
        state = describe_state(group)
        if not _is_up(group):
            verdict = "—"
        elif health.get(name) is None:
            verdict = "ok"
        else:
            verdict = "en attente"
            unhealthy = True
        rows.append((name, state, verdict, service.url))
    print_table(rows)
    if not running:
        print("\nLa pile n'est pas démarrée : ./dpe up pour la lancer.")
    for name, reason in health.items():
        if reason:
            print(f"\n{services[name].title} ne répond pas encore : {reason}")
    return 1 if unhealthy else 0


def logs(service: str | None, follow: bool = False) -> int:
    """Print the end of a service's log (``supervisord`` for the supervisor's own), or follow it."""
    ctx = load_context()
    services = build_services(ctx)
    if not service:
        print("Services : " + ", ".join([*services, "supervisord"]))
        print("Exemple : ./dpe logs kafka   (ajoutez -f pour suivre le journal)")
        return 2
    if service == "supervisord":
        files = [ctx.paths.log_file("supervisord")]
    else:
        try:
            resolve_order(services, [service])
        except StackError as error:
            print_error(str(error))
            return 2
        files = log_files(ctx.paths, services[service])
    existing = [path for path in files if path.exists()]
    if not existing:
        print_error(f"Pas encore de journal pour {service} ({files[0]}) : le service n'a jamais démarré.")
        return 1
    if follow:
        command = ["tail", "-n", "50", "-F", *map(str, existing)]
        try:
            return subprocess.call(command)
        except KeyboardInterrupt:
            return 0
    for path in existing:
        if len(existing) > 1:
            print(f"==> {path} <==")
        print(read_tail(path, 200))
    return 0


def down() -> int:
    """Stop every service of this state directory, then supervisord itself."""
    paths = StackPaths.from_environment()
    paths.state_dir.mkdir(parents=True, exist_ok=True)
    with stack_lock(paths):
        supervisor = Supervisor(paths)
        was_running = supervisor.is_running()
        if was_running:
            print("Arrêt des services…", flush=True)
            supervisor.stop_all()
            supervisor.shutdown()
        strays = wait_for_strays(paths, timeout=5.0 if was_running else 0.0)
    if strays:
        print_error(
            f"Des processus démarrés par la pile tournent encore (pid {', '.join(map(str, strays))}) : "
            "arrêtez-les (kill <pid>) avant de relancer ./dpe up."
        )
        return 1
    print("Pile arrêtée." if was_running else "La pile n'est pas démarrée : rien à arrêter.")
    return 0


def reset(new_env: bool = False) -> int:
    """Stop everything, then delete the stack's state (databases, topics, lake, logs) and what the labs
    wrote in the project (``data/raw/lab_*``, ``dags/lab_*.py``); caches stay.

    With ``new_env``, ``.env`` is recreated from ``.env.example`` with new secrets.
    """
    from dpe_pipeline.native import postgres as postgres_native
    from dpe_pipeline.settings import ensure_env_file, project_dir

    code = down()
    if code:
        return code
    ctx = load_context()
    layout = postgres_native.find_layout(ctx)
    targets = [ctx.paths.state_dir]
    if not layout.root.is_relative_to(ctx.paths.state_dir):
        targets.append(layout.root.parent)
    # What the labs wrote outside the state folder: each learner's raw files and Airflow DAG
    project = project_dir()
    targets += sorted((project / "data" / "raw").glob("lab_*")) + sorted((project / "dags").glob("lab_*.py"))
    for target in targets:
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        else:
            continue
        print(f"Supprimé : {target}")
    if new_env:
        env_file = project_dir() / ".env"
        env_file.unlink(missing_ok=True)
        ensure_env_file()
        print(f"Nouveau {env_file} : nouveaux mots de passe et jetons.")
    print("Pile remise à zéro : ./dpe up repart des données embarquées (les téléchargements restent en cache).")
    return 0


# --- bringing services up -----------------------------------------------------------------


@dataclass
class UpReport:
    """What ``bring_up`` did: services ready (in order) and French failure messages."""

    services: dict[str, Service]
    ready: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)


def load_context() -> StackContext:
    from dpe_pipeline.native import services  # noqa: F401  (registers the course's services)

    return StackContext(get_settings(), StackPaths.from_environment())


def bring_up(names: Iterable[str] | None, announce: bool, reuse_foreign: bool = False) -> UpReport:
    """Start services wave by wave: a wave is every pending service whose dependencies are ready.

    With ``reuse_foreign``, a healthy service on the port that this stack did not start
    counts as ready (left alone: no initialisation); otherwise the port is a conflict.
    """
    ctx = load_context()
    services = build_services(ctx)
    order = resolve_order(services, names)
    report = UpReport(services)
    prepare_state_dir(ctx.paths)
    with stack_lock(ctx.paths):
        # Configuration: supervisord knows every service, starts none by itself
        supervisor = Supervisor(ctx.paths)
        for name in load_configuration(ctx, supervisor, services, scope=set(order)):
            say(announce, f"Configuration de {services[name].title} modifiée : redémarrage.")

        # Waves: independent services start together, dependents once their dependencies are ready
        pending = list(order)
        while pending:
            skip_blocked(services, pending, report)
            wave = [name for name in pending if all(dep in report.ready for dep in services[name].depends_on)]
            for name in wave:
                pending.remove(name)
            started = start_wave(supervisor, [services[name] for name in wave], report, reuse_foreign)
            wait_until_ready(ctx, supervisor, started, report, announce)
    return report


def prepare_state_dir(paths: StackPaths) -> None:
    paths.state_dir.mkdir(parents=True, exist_ok=True)
    paths.log_dir.mkdir(exist_ok=True)


@contextmanager
def stack_lock(paths: StackPaths) -> Iterator[None]:
    """One ``up``/``down`` at a time per state directory (tests and a terminal may race)."""
    with open(paths.lock_file, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load_configuration(
    ctx: StackContext, supervisor: Supervisor, services: dict[str, Service], scope: set[str]
) -> list[str]:
    """Write supervisord.conf; start supervisord, or make it reload. Returns services restarted."""
    supervisor.write_config(render_config(ctx.paths, services))
    if not supervisor.is_running():
        supervisor.launch(daemon_environment(ctx.paths))
        return []
    return supervisor.apply_config(scope)


def skip_blocked(services: dict[str, Service], pending: list[str], report: UpReport) -> None:
    for name in list(pending):
        failed = [dep for dep in services[name].depends_on if dep in report.failures]
        if failed:
            pending.remove(name)
            titles = ", ".join(services[dep].title for dep in failed)
            report.failures[name] = f"{services[name].title} n'a pas été démarré : il a besoin de {titles}."


def start_wave(
    supervisor: Supervisor, wave: list[Service], report: UpReport, reuse_foreign: bool
) -> dict[str, tuple[float, bool]]:
    """Prepare, then start, what is not running; returns {service: (start time, was already running)}."""
    infos = supervisor.processes()
    started: dict[str, tuple[float, bool]] = {}
    to_start = []
    for service in wave:
        if _is_up(infos.get(service.name, [])):
            started[service.name] = (time.monotonic(), True)
            continue
        try:
            if reuse_foreign and answers_elsewhere(service):
                logger.info("%s already answers on its port, not started by this stack: reusing it", service.name)
                report.ready.append(service.name)
                continue
            check_ports(service)
            if service.prepare:
                service.prepare()
        except StackError as error:
            report.failures[service.name] = str(error)
            continue
        to_start.append(service)
    # Started together once every preparation is done, so "prêt en N s" measures the start alone
    for service in to_start:
        logger.debug("starting %s", service.name)
        supervisor.start(service.name)
        started[service.name] = (time.monotonic(), False)
    return started


def answers_elsewhere(service: Service) -> bool:
    """Is the service served on its port by a program this stack did not start?"""
    if service.health is None or not any(port_in_use(port) for port in service.ports):
        return False
    return service.health.probe(PROBE_TIMEOUT) is None


def check_ports(service: Service) -> None:
    for port in service.ports:
        if port_in_use(port):
            raise StackError(
                f"Le port {port.number} ({service.title}) est déjà utilisé par un autre programme : "
                f"arrêtez-le ou changez {port.setting} dans .env."
            )


def port_in_use(port: Port) -> bool:
    """Would binding host:port fail? (SO_REUSEADDR: a port in TIME_WAIT is not "in use".)"""
    family = socket.AF_INET6 if ":" in port.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((port.host, port.number))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return True
            raise StackError(
                f"Impossible d'écouter sur {port.host}:{port.number} ({error.strerror}) : "
                f"vérifiez {port.setting} dans .env."
            ) from error
    return False


def wait_until_ready(
    ctx: StackContext,
    supervisor: Supervisor,
    started: dict[str, tuple[float, bool]],
    report: UpReport,
    announce: bool,
) -> None:
    """Poll supervisord and the health checks until each started service is ready or failed."""
    waiting = dict(started)
    while waiting:
        infos = supervisor.processes()
        for name, (since, already) in list(waiting.items()):
            service = report.services[name]
            group = infos.get(name, [])
            elapsed = time.monotonic() - since
            if not group or any(info["statename"] in STOPPED_STATES for info in group):
                state = describe_state(group)
                report.failures[name] = failure_message(ctx, service, f"le processus s'est arrêté (état : {state})")
                del waiting[name]
                continue
            reason = probe_service(service, group)
            if reason is None:
                del waiting[name]
                finish_start(ctx, service, report, announce, elapsed, already)
            elif elapsed > service.start_timeout:
                detail = f"pas prêt après {service.start_timeout:.0f} s (dernier contrôle : {reason})"
                report.failures[name] = failure_message(ctx, service, detail)
                del waiting[name]
        if waiting:
            time.sleep(POLL_INTERVAL)


def probe_service(service: Service, group: list[dict[str, Any]]) -> str | None:
    if any(info["statename"] != "RUNNING" for info in group):
        return "process not running yet"
    if service.health is None:
        return None
    return service.health.probe(PROBE_TIMEOUT)


def finish_start(
    ctx: StackContext, service: Service, report: UpReport, announce: bool, elapsed: float, already: bool
) -> None:
    """Run the service's initialisation, then count it ready."""
    try:
        if service.initialize:
            service.initialize()
    except StackError as error:
        report.failures[service.name] = failure_message(ctx, service, str(error))
        return
    report.ready.append(service.name)
    if already:
        say(announce, f"  ✓ {service.title} : déjà démarré")
    else:
        say(announce, f"  ✓ {service.title} : prêt en {elapsed:.1f} s")


def failure_message(ctx: StackContext, service: Service, detail: str) -> str:
    lines = [f"{service.title} ({service.name}) n'a pas démarré : {detail}."]
    hint = service.failure_hint(detail) if service.failure_hint else None
    if hint:
        lines.append(hint)
    for path in log_files(ctx.paths, service):
        if path.exists():
            lines.append(f"Dernières lignes de {path} :")
            lines.append(read_tail(path, LOG_TAIL_LINES))
    return "\n".join(lines)


# --- reporting ----------------------------------------------------------------------------


def print_banner(report: UpReport) -> None:
    if not report.ready:
        return
    print("\nLa pile est prête :")
    # In the order of the course's modules (the registry's), not the order they became healthy
    ready = [name for name in report.services if name in report.ready]
    headless = []
    for name in ready:
        service = report.services[name]
        if not service.banner and not service.url:
            headless.append(service.title)
            continue
        for line in service.banner or (f"{service.title} : {service.url}",):
            print(f"  {line}")
    if headless:
        print(f"  Aussi démarrés (sans interface) : {', '.join(headless)}")
    print("\nÉtat : ./dpe status · journaux : ./dpe logs <service> · arrêt : ./dpe down")


def print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def print_error(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def say(announce: bool, message: str) -> None:
    if announce:
        print(message, flush=True)


def describe_state(group: list[dict[str, Any]]) -> str:
    if not group:
        return STATE_LABELS["STOPPED"]
    states = [info["statename"] for info in group]
    label = STATE_LABELS.get(states[0], states[0].lower())
    if len(group) > 1:
        running = sum(state == "RUNNING" for state in states)
        label = f"{STATE_LABELS['RUNNING']} ({running}/{len(group)})" if running else label
    return label


def probe_all(services: list[Service]) -> dict[str, str | None]:
    """Health of several services at once (each probe may wait up to PROBE_TIMEOUT)."""
    checked = [service for service in services if service.health is not None]
    results: dict[str, str | None] = {service.name: None for service in services}
    if not checked:
        return results
    with ThreadPoolExecutor(max_workers=len(checked)) as pool:
        for service, reason in zip(
            checked, pool.map(lambda s: s.health.probe(PROBE_TIMEOUT), checked), strict=True
        ):
            results[service.name] = reason
    return results


def log_files(paths: StackPaths, service: Service) -> list[Path]:
    if service.instances > 1:
        return [paths.log_dir / f"{service.name}-{number}.log" for number in range(1, service.instances + 1)]
    return [paths.log_file(service.name)]


def read_tail(path: Path, lines: int) -> str:
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - 256 * 1024))
        text = handle.read().decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def wait_for_strays(paths: StackPaths, timeout: float) -> list[int]:
    """Processes of this stack still alive after the stop (none expected: stopasgroup)."""
    deadline = time.monotonic() + timeout
    while True:
        strays = find_stack_processes(paths)
        if not strays or time.monotonic() > deadline:
            return strays
        time.sleep(0.2)


def _is_up(group: list[dict[str, Any]]) -> bool:
    return bool(group) and all(info["statename"] in RUNNING_STATES for info in group)
