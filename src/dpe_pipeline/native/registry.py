"""What a service of the native stack is, and the registry that lists them.

A service is declared by a factory function, decorated with ``@register("name")``, that
receives the stack's context (settings and paths) and returns a :class:`Service`; building
one has no side effect. Examples, and how to add one: ``dpe_pipeline.native.services``.
Registration order is the order of ``./dpe status`` and of ``./dpe up`` without arguments.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dpe_pipeline.native.health import HealthCheck
from dpe_pipeline.settings import Settings, project_dir

# Unix socket paths are limited to 108 bytes (sun_path); keep a margin for the suffix.
MAX_SOCKET_PATH = 100


class StackError(RuntimeError):
    """A failure of the native stack, with a French message meant for the learner."""


@dataclass(frozen=True)
class Port:
    """A TCP port a service listens on, and the ``.env`` key that moves it."""

    host: str
    number: int
    setting: str


@dataclass(frozen=True)
class StackPaths:
    """Where the stack keeps its state (``var/``), its downloads and its logs."""

    project_dir: Path
    state_dir: Path
    cache_dir: Path

    @classmethod
    def from_environment(cls) -> StackPaths:
        root = project_dir()
        state = os.environ.get("DPE_STATE_DIR") or str(root / "var")
        # Same default as ./dpe, which exports DPE_CACHE anyway
        cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        cache = os.environ.get("DPE_CACHE") or str(Path(cache_home) / "dpe-course")
        return cls(root, Path(state).expanduser().resolve(), Path(cache).expanduser().resolve())

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "log"

    @property
    def supervisor_config(self) -> Path:
        return self.state_dir / "supervisord.conf"

    @property
    def supervisor_pidfile(self) -> Path:
        return self.state_dir / "supervisord.pid"

    @property
    def supervisor_socket(self) -> Path:
        socket = self.state_dir / "supervisor.sock"
        if len(str(socket)) <= MAX_SOCKET_PATH:
            return socket
        return Path(tempfile.gettempdir()) / f"dpe-supervisor-{self.state_id}.sock"

    @property
    def lock_file(self) -> Path:
        return self.state_dir / "stack.lock"

    @property
    def state_id(self) -> str:
        """A short, stable name for this state directory (for paths outside it)."""
        return hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:8]

    def log_file(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"


@dataclass(frozen=True)
class StackContext:
    """Everything a service factory needs: the settings and the stack's paths."""

    settings: Settings
    paths: StackPaths

    @property
    def running_as_root(self) -> bool:
        return os.geteuid() == 0

    def python_command(self, module: str, *args: str) -> tuple[str, ...]:
        """Run a module with the course's Python (the venv that runs this code)."""
        return (sys.executable, "-m", module, *args)

    def python_environment(self, **extra: str) -> dict[str, str]:
        """Environment of a Python service: every setting, so it sees what the runner saw."""
        environment = settings_environment(self.settings)
        environment.update(
            DPE_PROJECT_DIR=str(self.paths.project_dir),
            DPE_STATE_DIR=str(self.paths.state_dir),
            DPE_CACHE=str(self.paths.cache_dir),
            PYTHONUNBUFFERED="1",
        )
        environment.update(extra)
        return environment


@dataclass(frozen=True)
class Service:
    """One process (or ``instances`` identical processes) of the native stack.

    ``prepare`` runs before each start (idempotent, may download or initialise data);
    ``initialize`` runs once the health check passes, on every ``up`` (idempotent: create
    databases, topics…). ``url`` is shown by ``status`` and must hold no secret;
    ``banner`` lines (French, may hold credentials) end ``./dpe up``.
    """

    name: str
    title: str
    command: tuple[str, ...]
    health: HealthCheck | None = None
    ports: tuple[Port, ...] = ()
    depends_on: tuple[str, ...] = ()
    environment: Mapping[str, str] = field(default_factory=dict)
    directory: Path | None = None
    user: str | None = None
    instances: int = 1
    prepare: Callable[[], None] | None = None
    initialize: Callable[[], None] | None = None
    failure_hint: Callable[[str], str | None] | None = None
    url: str = ""
    banner: tuple[str, ...] = ()
    start_timeout: float = 60.0
    stop_signal: str = "TERM"
    stop_timeout: int = 20


ServiceFactory = Callable[[StackContext], Service]
_FACTORIES: dict[str, ServiceFactory] = {}


def register(name: str) -> Callable[[ServiceFactory], ServiceFactory]:
    """Add a service to the stack; the decorated function builds it from the context."""

    def decorator(factory: ServiceFactory) -> ServiceFactory:
        if name in _FACTORIES and _FACTORIES[name] is not factory:
            raise ValueError(f"service {name!r} is registered twice")
        _FACTORIES[name] = factory
        return factory

    return decorator


def build_services(ctx: StackContext) -> dict[str, Service]:
    """Every registered service, in registration order (building one has no side effect)."""
    services = {}
    for name, factory in _FACTORIES.items():
        service = factory(ctx)
        if service.name != name:
            raise ValueError(f"factory registered as {name!r} built a service named {service.name!r}")
        services[name] = service
    for service in services.values():
        for dependency in service.depends_on:
            if dependency not in services:
                raise ValueError(f"service {service.name!r} depends on unknown service {dependency!r}")
    return services


def resolve_order(services: Mapping[str, Service], names: Iterable[str] | None) -> list[str]:
    """The named services and their dependencies, dependencies first (all services if None)."""
    requested = list(services) if names is None else list(names)
    unknown = [name for name in requested if name not in services]
    if unknown:
        raise StackError(
            f"Service inconnu : {', '.join(unknown)}. Services disponibles : {', '.join(services)}."
        )
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise ValueError(f"dependency cycle through service {name!r}")
        visiting.add(name)
        for dependency in services[name].depends_on:
            visit(dependency)
        visiting.discard(name)
        order.append(name)

    for name in requested:
        visit(name)
    return order


def settings_environment(settings: Settings) -> dict[str, str]:
    """The settings as the environment variables that define them (``POSTGRES_PORT=5432``…)."""
    environment = {}
    for name, info in type(settings).model_fields.items():
        value = getattr(settings, name)
        environment[info.alias or name.upper()] = str(value)
    return environment
