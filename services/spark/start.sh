#!/bin/sh
# Spark standalone master or worker in the course's Python image (pip's pyspark ships
# bin/spark-class but not sbin/start-master.sh). Runs in the foreground, as compose wants.
#   sh services/spark/start.sh master
#   sh services/spark/start.sh worker
set -eu
role="${1:?usage: start.sh master|worker}"
SPARK_HOME="$(python -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))' 2>/dev/null)" || {
  echo "pyspark is not installed in this image: add it to requirements/core.in, run ./dpe lock," >&2
  echo "then rebuild the image (docker compose build)." >&2
  exit 1
}
export SPARK_HOME
master_url="spark://spark-master:${SPARK_MASTER_PORT:-7077}"
case "$role" in
  master)
    exec "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.master.Master \
      --host spark-master --port "${SPARK_MASTER_PORT:-7077}" --webui-port 8080 ;;
  worker)
    exec "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.worker.Worker \
      --cores "${SPARK_WORKER_CORES:-2}" --memory "${SPARK_WORKER_MEMORY:-2g}" --webui-port 8081 "$master_url" ;;
  *)
    echo "unknown role: $role (master or worker)" >&2; exit 2 ;;
esac
