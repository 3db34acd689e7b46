"""The services of the native stack, one factory each, in start and display order.

To add a service, write a factory here (or in a module imported at the end of this one)::

    @register("api")
    def api(ctx: StackContext) -> Service:
        s = ctx.settings
        return Service(
            name="api",
            title="API d'ingestion",
            command=ctx.python_command("dpe_pipeline.api", "--host", s.api_host, "--port", str(s.api_port)),
            environment=ctx.python_environment(),
            ports=(Port(s.api_host, s.api_port, "API_PORT"),),
            depends_on=("kafka",),
            health=HttpCheck(f"http://{s.api_host}:{s.api_port}/health", headers=(("X-API-KEY", s.api_key),)),
            url=f"http://{s.api_host}:{s.api_port}",
            banner=(f"API d'ingestion : http://{s.api_host}:{s.api_port} (en-tête X-API-KEY: {s.api_key})",),
        )

    @register("consumer")
    def consumer(ctx: StackContext) -> Service:
        return Service(
            name="consumer",
            title="Consommateurs Kafka → PostgreSQL",
            command=ctx.python_command("dpe_pipeline.consumer"),
            environment=ctx.python_environment(),
            depends_on=("kafka", "postgres"),
            instances=ctx.settings.consumer_instances,
        )

``instances=N`` runs N copies (``consumer-1`` … ``consumer-N``, each with ``DPE_INSTANCE``,
logs in ``var/log/consumer-<n>.log``); ``health=None`` means "running for a second" (for
workers that serve no port). Registration order is the order of ``./dpe status``: insert a
new factory before ``jupyter`` so that JupyterLab stays last.
"""

from __future__ import annotations

from functools import partial
from urllib.parse import quote

from dpe_pipeline.native import kafka as kafka_native
from dpe_pipeline.native import postgres as postgres_native
from dpe_pipeline.native.health import HttpCheck, KafkaCheck, PostgresCheck, split_host_port
from dpe_pipeline.native.registry import Port, Service, StackContext, register


@register("postgres")
def postgres(ctx: StackContext) -> Service:
    """PostgreSQL: raw store, Iceberg catalog database, later Superset/Airflow metadata."""
    s = ctx.settings
    layout = postgres_native.find_layout(ctx)
    environment = {"LC_ALL": "C", "HOME": str(layout.root)}
    dsn = f"postgresql://{quote(s.postgres_user)}:{quote(s.postgres_password, safe='')}"
    address = f"{s.postgres_host}:{s.postgres_port}"
    return Service(
        name="postgres",
        title="PostgreSQL",
        command=postgres_native.server_command(layout, s),
        environment=environment,
        directory=layout.root,
        user=layout.run_as,
        ports=(Port(s.postgres_host, s.postgres_port, "POSTGRES_PORT"),),
        health=PostgresCheck(s.postgres_host, s.postgres_port, "postgres", s.postgres_user, s.postgres_password),
        prepare=partial(postgres_native.prepare, ctx, layout),
        initialize=partial(postgres_native.create_databases, s),
        failure_hint=partial(postgres_native.failure_hint, layout),
        url=f"postgresql://{s.postgres_user}@{address}/{s.postgres_db}",
        banner=(
            f"PostgreSQL : {dsn}@{address}/{s.postgres_db}",
            f"             utilisateur {s.postgres_user}, mot de passe {s.postgres_password} ; "
            f"base {postgres_native.ICEBERG_DATABASE} pour le catalogue Iceberg",
        ),
        # SIGINT is PostgreSQL's "fast" shutdown; SIGTERM would wait for every client to leave
        stop_signal="INT",
        stop_timeout=30,
    )


@register("kafka")
def kafka(ctx: StackContext) -> Service:
    """Kafka, one KRaft node (broker + controller), topics created once it answers."""
    s = ctx.settings
    host, port = split_host_port(s.kafka_bootstrap_servers.split(",")[0])
    topics = ", ".join(
        f"{name} ({count} partition{'s' if count > 1 else ''})" for name, count in kafka_native.course_topics(s).items()
    )
    return Service(
        name="kafka",
        title="Kafka",
        command=kafka_native.server_command(ctx),
        directory=kafka_native.state_dir(ctx),
        ports=(
            Port(host, port, "KAFKA_BOOTSTRAP_SERVERS"),
            Port(host, s.kafka_controller_port, "KAFKA_CONTROLLER_PORT"),
        ),
        health=KafkaCheck(s.kafka_bootstrap_servers),
        prepare=partial(kafka_native.prepare, ctx),
        initialize=partial(kafka_native.create_topics, s),
        url=s.kafka_bootstrap_servers,
        banner=(f"Kafka : bootstrap {s.kafka_bootstrap_servers} ; topics {topics}",),
        start_timeout=90,
        stop_timeout=30,
    )


@register("replay")
def replay(ctx: StackContext) -> Service:
    """The offline ADEME API: same protocol as data.ademe.fr, real bundled records."""
    s = ctx.settings
    return Service(
        name="replay",
        title="Rejeu ADEME",
        command=ctx.python_command("dpe_pipeline.replay", "--host", s.replay_host, "--port", str(s.replay_port)),
        environment=ctx.python_environment(),
        ports=(Port(s.replay_host, s.replay_port, "REPLAY_PORT"),),
        health=HttpCheck(f"http://{s.replay_host}:{s.replay_port}/health"),
        url=s.replay_url,
        banner=(f"Rejeu ADEME : {s.replay_url} (ADEME_MODE={s.ademe_mode})",),
        start_timeout=30,
    )


@register("jupyter")
def jupyter(ctx: StackContext) -> Service:
    """JupyterLab on the repository, kernel = the course's Python with dpe_pipeline."""
    s = ctx.settings
    base = f"http://{s.jupyter_host}:{s.jupyter_port}"
    options = [
        "--no-browser",
        f"--ServerApp.ip={s.jupyter_host}",
        f"--ServerApp.port={s.jupyter_port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={ctx.paths.project_dir}",
        # No Internet in class or CI: never ask pypi.org whether JupyterLab is up to date
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if ctx.running_as_root:
        options.append("--allow-root")
    return Service(
        name="jupyter",
        title="JupyterLab",
        command=ctx.python_command("jupyterlab", *options),
        # The token travels in the environment (JUPYTER_TOKEN, from the settings), not in `ps`
        environment=ctx.python_environment(),
        ports=(Port(s.jupyter_host, s.jupyter_port, "JUPYTER_PORT"),),
        health=HttpCheck(f"{base}/api/status", headers=(("Authorization", f"token {s.jupyter_token}"),)),
        url=f"{base}/lab",
        banner=(f"JupyterLab : {base}/lab?token={s.jupyter_token}",),
        start_timeout=90,
    )
