#!/usr/bin/env bash
# Fetches the jars Spark needs for Iceberg (runtime, S3FileIO bundle, PostgreSQL driver) from
# Maven Central into $DPE_CACHE/jars/spark-iceberg-<iceberg>/, once. Idempotent: when every
# expected jar is already there, Maven is not run. Prints the comma-separated list for
# spark.jars on stdout; progress goes to stderr.
#
#   scripts/fetch-jars.sh
#   ICEBERG_VERSION=1.10.1 POSTGRESQL_JDBC_VERSION=42.7.8 scripts/fetch-jars.sh
#
# The coordinates live in stack/spark/pom.xml; the variables here override its properties.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${DPE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dpe-course}"
ICEBERG_VERSION="${ICEBERG_VERSION:-1.10.1}"
POSTGRESQL_JDBC_VERSION="${POSTGRESQL_JDBC_VERSION:-42.7.8}"
SPARK_LINE="${SPARK_LINE:-4.0}"
SCALA_BINARY="${SCALA_BINARY:-2.13}"
DEST="$CACHE/jars/spark-iceberg-$ICEBERG_VERSION"

log() { echo "[jars] $*" >&2; }

jars=(
  "iceberg-spark-runtime-${SPARK_LINE}_${SCALA_BINARY}-$ICEBERG_VERSION.jar"
  "iceberg-aws-bundle-$ICEBERG_VERSION.jar"
  "postgresql-$POSTGRESQL_JDBC_VERSION.jar"
)

# A jar is a zip whose index sits at its end: a truncated copy fails this check
jar_is_whole() { [ -s "$1" ] && unzip -qql "$1" >/dev/null 2>&1; }

all_present() {
  local jar
  for jar in "${jars[@]}"; do
    jar_is_whole "$DEST/$jar" || return 1
  done
}

# copy-dependencies never overwrites a release jar that is already there, broken or not
remove_broken_jars() {
  local jar
  for jar in "${jars[@]}"; do
    jar_is_whole "$DEST/$jar" || rm -f "$DEST/$jar"
  done
}

print_spark_jars() {
  local IFS=,
  local paths=("${jars[@]/#/$DEST/}")
  echo "${paths[*]}"
}

if all_present; then
  log "cached: $DEST"
  print_spark_jars
  exit 0
fi

command -v mvn >/dev/null 2>&1 || { log "mvn is not installed (scripts/install-system-deps.sh)"; exit 1; }
mkdir -p "$DEST"
remove_broken_jars
log "fetching Iceberg $ICEBERG_VERSION (Spark $SPARK_LINE, Scala $SCALA_BINARY) + PostgreSQL JDBC $POSTGRESQL_JDBC_VERSION"
mvn -q -B -f "$ROOT/stack/spark/pom.xml" dependency:copy-dependencies \
  -DincludeScope=runtime -DoutputDirectory="$DEST" -Dstyle.color=never \
  -Diceberg.version="$ICEBERG_VERSION" -Dpostgresql.version="$POSTGRESQL_JDBC_VERSION" \
  -Dspark.line="$SPARK_LINE" -Dscala.binary="$SCALA_BINARY" >&2
all_present || { log "missing jars in $DEST after the copy"; exit 1; }
print_spark_jars
