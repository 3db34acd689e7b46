#!/bin/sh
# Kafka in Docker Compose (apache/kafka image), configured from the native stack's own
# stack/kafka/server.properties: the placeholders get the compose values, then the listener
# lines are replaced by two listeners:
#   INTERNAL  kafka:19092       for the containers (API, consumers, JupyterLab, topic init)
#   HOST      localhost:9092    for tools on the host, reachable only if the port is published
#                               (docker-compose.kafka-host.yml; not published by default)
# The storage is formatted on first start (KRaft, --standalone), then the broker runs.
set -eu
TEMPLATE="${KAFKA_CONFIG_TEMPLATE:-/etc/dpe/kafka/server.properties}"
CONFIG="${TMPDIR:-/tmp}/server.properties"
DATA=/var/lib/kafka/data

sed -e "s|\${broker_host}|kafka|g" -e "s|\${broker_port}|19092|g" \
    -e "s|\${controller_host}|kafka|g" -e "s|\${controller_port}|9093|g" \
    -e "s|\${log_dir}|$DATA|g" \
    -e '/^listeners=/d' -e '/^advertised\.listeners=/d' \
    -e '/^listener\.security\.protocol\.map=/d' -e '/^inter\.broker\.listener\.name=/d' \
    "$TEMPLATE" > "$CONFIG"
cat >> "$CONFIG" <<PROPERTIES

# Docker Compose listeners (services/kafka/start.sh)
listeners=INTERNAL://:19092,HOST://:9092,CONTROLLER://kafka:9093
advertised.listeners=INTERNAL://kafka:19092,HOST://localhost:9092,CONTROLLER://kafka:9093
listener.security.protocol.map=INTERNAL:PLAINTEXT,HOST:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=INTERNAL
PROPERTIES

if grep -q '\${' "$CONFIG"; then
  echo "unrendered placeholder in $CONFIG:" >&2; grep '\${' "$CONFIG" >&2; exit 1
fi
[ "${1:-}" = "--render-only" ] && { cat "$CONFIG"; exit 0; }

if [ ! -f "$DATA/meta.properties" ]; then
  /opt/kafka/bin/kafka-storage.sh format --standalone --ignore-formatted \
    --cluster-id "$(/opt/kafka/bin/kafka-storage.sh random-uuid)" --config "$CONFIG"
fi
exec /opt/kafka/bin/kafka-server-start.sh "$CONFIG"
