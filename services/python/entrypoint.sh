#!/bin/sh
# Entry point of the course's Python image. Services that drive or run Spark
# (DPE_SPARK_CONF=1) first get stack/spark/spark-defaults.conf.template rendered for this
# container into $SPARK_CONF_DIR; then the service's own command runs as PID 1's child.
set -eu
if [ "${DPE_SPARK_CONF:-0}" = "1" ]; then
  python /opt/dpe/services/python/render_stack_config.py spark --target "$SPARK_CONF_DIR"
fi
exec "$@"
