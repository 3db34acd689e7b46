#!/bin/sh
# One-shot provisioning of Superset in Docker Compose (idempotent, runs at every `up`):
# metadata schema, admin account from .env, roles, then the Trino connection, reached by the
# compose service name `trino` (never localhost: inside a container, localhost is itself).
set -eu
superset db upgrade
superset fab create-admin --username="$SUPERSET_ADMIN_USER" --password="$SUPERSET_ADMIN_PASSWORD" \
  --firstname Admin --lastname DPE --email "$SUPERSET_ADMIN_USER@dpe.invalid"
superset init
# Trino checks passwords over HTTPS only: port 443 makes trino-python-client use HTTPS; the
# certificate is self-signed (services/python/render_stack_config.py), hence verify=false
superset set-database-uri -d "Trino (lakehouse)" \
  -u "trino://$TRINO_USER:$TRINO_PASSWORD@trino:443/iceberg?verify=false"
echo "Superset provisioned: admin $SUPERSET_ADMIN_USER, database « Trino (lakehouse) »"
