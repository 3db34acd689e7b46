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

from dpe_pipeline.native import airflow as airflow_native
from dpe_pipeline.native import kafka as kafka_native
from dpe_pipeline.native import minio as minio_native
from dpe_pipeline.native import postgres as postgres_native
from dpe_pipeline.native import spark as spark_native
from dpe_pipeline.native import superset as superset_native
from dpe_pipeline.native import trino as trino_native
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


# --- module 3: the ingestion API and the consumers ----------------------------------------


@register("api")
def api(ctx: StackContext) -> Service:
    """The Flask ingestion API: ADEME (live or replay) → Kafka ``dpe.raw``."""
    s = ctx.settings
    base = f"http://{s.api_host}:{s.api_port}"
    return Service(
        name="api",
        title="API d'ingestion",
        command=ctx.python_command("dpe_pipeline.api", "--host", s.api_host, "--port", str(s.api_port)),
        environment=ctx.python_environment(),
        ports=(Port(s.api_host, s.api_port, "API_PORT"),),
        depends_on=("kafka",),
        health=HttpCheck(f"{base}/health"),
        url=base,
        banner=(f"API d'ingestion : {base} (en-tête X-API-KEY: {s.api_key}) · description : {base}/openapi.json",),
    )


@register("consumer")
def consumer(ctx: StackContext) -> Service:
    """Kafka ``dpe.raw`` → PostgreSQL ``raw.dpe``, 1 to 3 instances in one consumer group."""
    return Service(
        name="consumer",
        title="Consommateurs Kafka → PostgreSQL",
        command=ctx.python_command("dpe_pipeline.consumer"),
        environment=ctx.python_environment(),
        depends_on=("kafka", "postgres"),
        instances=ctx.settings.consumer_instances,
        stop_timeout=30,
    )


# --- module 4: object store and Spark cluster ------------------------------------------


@register("minio")
def minio(ctx: StackContext) -> Service:
    """MinIO (S3), built once from the Go module proxy; bucket of the Iceberg warehouse created at start."""
    s = ctx.settings
    host, port = minio_native.endpoint_address(s)
    return Service(
        name="minio",
        title="MinIO (S3)",
        command=minio_native.server_command(ctx),
        environment=minio_native.server_environment(s),
        ports=(Port(host, port, "S3_ENDPOINT"), Port(host, s.minio_console_port, "MINIO_CONSOLE_PORT")),
        health=HttpCheck(f"{s.s3_endpoint.rstrip('/')}/minio/health/live"),
        prepare=partial(minio_native.prepare, ctx),
        initialize=partial(minio_native.create_bucket, s),
        failure_hint=minio_native.failure_hint,
        url=s.s3_endpoint,
        banner=(
            f"MinIO (S3) : {s.s3_endpoint} (path-style), bucket {s.s3_bucket} ; "
            f"console http://{host}:{s.minio_console_port}",
            f"             clé d'accès {s.s3_access_key}, clé secrète {s.s3_secret_key}",
        ),
        start_timeout=60,
    )


@register("spark-master")
def spark_master(ctx: StackContext) -> Service:
    """Spark standalone master (cluster manager), in the foreground; Iceberg jars fetched before."""
    s = ctx.settings
    ui = f"http://127.0.0.1:{s.spark_master_ui_port}"
    return Service(
        name="spark-master",
        title="Spark (maître)",
        command=spark_native.master_command(s),
        environment=spark_native.daemon_environment(ctx),
        ports=(Port("127.0.0.1", s.spark_master_port, "SPARK_MASTER_PORT"),
               Port("127.0.0.1", s.spark_master_ui_port, "SPARK_MASTER_UI_PORT")),
        health=spark_native.MasterCheck(s),
        prepare=partial(spark_native.prepare, ctx),
        url=ui,
        banner=(f"Spark : maître spark://127.0.0.1:{s.spark_master_port}, interface {ui}",),
        start_timeout=60,
    )


@register("spark-worker")
def spark_worker(ctx: StackContext) -> Service:
    """One Spark worker offering SPARK_WORKER_CORES cores and SPARK_WORKER_MEMORY to executors."""
    s = ctx.settings
    ui = f"http://127.0.0.1:{s.spark_worker_ui_port}"
    return Service(
        name="spark-worker",
        title="Spark (worker)",
        command=spark_native.worker_command(s),
        environment=spark_native.daemon_environment(ctx),
        ports=(Port("127.0.0.1", s.spark_worker_ui_port, "SPARK_WORKER_UI_PORT"),),
        depends_on=("spark-master",),
        health=spark_native.WorkerCheck(s),
        prepare=partial(spark_native.prepare, ctx),
        url=ui,
        banner=(f"Spark : worker {s.spark_worker_cores} cœurs / {s.spark_worker_memory}, interface {ui}",),
        start_timeout=60,
    )


@register("trino")
def trino(ctx: StackContext) -> Service:
    """Trino coordinator: catalogs iceberg (JDBC catalog lake, S3) and postgresql; password over HTTPS."""
    s = ctx.settings
    return Service(
        name="trino",
        title="Trino (coordinateur)",
        command=trino_native.server_command(ctx, trino_native.COORDINATOR),
        directory=trino_native.node_dir(ctx, trino_native.COORDINATOR),
        ports=(
            Port(s.trino_host, s.trino_port, "TRINO_PORT"),
            Port(s.trino_host, s.trino_http_port, "TRINO_HTTP_PORT"),
        ),
        depends_on=("postgres", "minio"),
        health=trino_native.TrinoCheck(s, trino_native.certificate_path(ctx)),
        prepare=partial(trino_native.prepare, ctx, trino_native.COORDINATOR),
        initialize=partial(trino_native.create_catalog_tables, s),
        failure_hint=trino_native.failure_hint,
        url=f"{s.trino_url}/ui/",
        banner=(
            f"Trino : {s.trino_url}/ui/ (utilisateur {s.trino_user}, mot de passe {s.trino_password} ; "
            f"certificat auto-signé {trino_native.certificate_path(ctx)})",
        ),
        start_timeout=120,
        stop_timeout=30,
    )


@register("trino-worker")
def trino_worker(ctx: StackContext) -> Service:
    """A Trino worker: joins the coordinator over HTTP (requests signed with the shared secret)."""
    s = ctx.settings
    return Service(
        name="trino-worker",
        title="Trino (worker)",
        command=trino_native.server_command(ctx, trino_native.WORKER),
        directory=trino_native.node_dir(ctx, trino_native.WORKER),
        ports=(Port(s.trino_host, s.trino_worker_port, "TRINO_WORKER_PORT"),),
        depends_on=("trino",),
        health=trino_native.TrinoCheck(s, trino_native.certificate_path(ctx), node_id="dpe-worker"),
        prepare=partial(trino_native.prepare, ctx, trino_native.WORKER),
        url=f"http://{s.trino_host}:{s.trino_worker_port}/v1/info",
        start_timeout=120,
        stop_timeout=30,
    )


@register("superset")
def superset(ctx: StackContext) -> Service:
    """Superset (gunicorn), metadata in PostgreSQL; provisions the dashboard when the lake has its tables."""
    s = ctx.settings
    return Service(
        name="superset",
        title="Superset",
        command=superset_native.server_command(ctx),
        environment=superset_native.environment(ctx),
        directory=ctx.paths.state_dir,
        ports=(Port(s.superset_host, s.superset_port, "SUPERSET_PORT"),),
        depends_on=("postgres", "trino"),
        health=HttpCheck(f"{s.superset_url}/health"),
        prepare=partial(superset_native.prepare, ctx),
        initialize=partial(superset_native.provision_if_ready, s),
        url=s.superset_url,
        banner=(
            f"Superset : {s.superset_url} (utilisateur {s.superset_admin_user}, "
            f"mot de passe {s.superset_admin_password})",
        ),
        start_timeout=120,
    )


# --- bonus module 6: Airflow (three programs, one venv of its own) ----------------------


@register("airflow-scheduler")
def airflow_scheduler(ctx: StackContext) -> Service:
    """Airflow's scheduler (LocalExecutor, 4 task processes at most); prepares venv, database, schema."""
    return Service(
        name="airflow-scheduler",
        title="Airflow (ordonnanceur)",
        command=airflow_native.program_command(ctx, "scheduler"),
        environment=airflow_native.environment(ctx),
        directory=ctx.paths.state_dir,
        depends_on=("postgres",),
        prepare=partial(airflow_native.prepare, ctx),
        start_timeout=120,
        stop_timeout=30,
    )


@register("airflow-dag-processor")
def airflow_dag_processor(ctx: StackContext) -> Service:
    """Airflow's DAG processor: parses dags/ and stores the serialized DAGs."""
    return Service(
        name="airflow-dag-processor",
        title="Airflow (lecture des DAG)",
        command=airflow_native.program_command(ctx, "dag-processor"),
        environment=airflow_native.environment(ctx),
        directory=ctx.paths.state_dir,
        depends_on=("airflow-scheduler",),
        prepare=partial(airflow_native.prepare, ctx),
        start_timeout=120,
    )


@register("airflow")
def airflow(ctx: StackContext) -> Service:
    """Airflow's API server (UI, REST API, tasks' execution API); healthy once scheduler and parser are."""
    s = ctx.settings
    return Service(
        name="airflow",
        title="Airflow",
        command=airflow_native.program_command(ctx, "api-server"),
        environment=airflow_native.environment(ctx),
        directory=ctx.paths.state_dir,
        ports=(Port(s.airflow_host, s.airflow_port, "AIRFLOW_PORT"),),
        depends_on=("postgres", "airflow-scheduler", "airflow-dag-processor"),
        health=airflow_native.AirflowCheck(s.airflow_url),
        prepare=partial(airflow_native.prepare, ctx),
        url=s.airflow_url,
        banner=(
            f"Airflow : {s.airflow_url} (utilisateur {s.airflow_admin_user}, "
            f"mot de passe {s.airflow_admin_password}) ; DAG lus dans {airflow_native.dags_dir(ctx)}",
        ),
        start_timeout=180,
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
