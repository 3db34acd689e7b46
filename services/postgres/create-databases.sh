#!/bin/sh
# One-shot job of Docker Compose: the databases of the stack, created if missing (idempotent,
# runs at every `docker compose up`, so an existing volume gets databases added later too).
#   POSTGRES_DB  raw store (created by the image on first start)   iceberg  Iceberg JDBC catalog
#   superset     Superset metadata                                airflow  Airflow metadata
set -eu
export PGHOST=postgres PGUSER="$POSTGRES_USER" PGPASSWORD="$POSTGRES_PASSWORD" PGDATABASE=postgres
for database in "$POSTGRES_DB" iceberg superset airflow; do
  psql -v ON_ERROR_STOP=1 -qtA -v db="$database" -v owner="$POSTGRES_USER" <<'SQL'
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'owner')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec
SQL
done
echo "databases ready: $POSTGRES_DB iceberg superset airflow"
