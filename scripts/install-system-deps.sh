#!/usr/bin/env bash
# Installs the system packages the native stack needs, only when they are missing
# (idempotent; Debian/Ubuntu with apt). Needs root, or sudo.
#   Java 17 (Kafka, Spark), Maven (fetches the pinned jars from Maven Central),
#   PostgreSQL 15 server binaries, curl, Node.js/npm (slides) and Chromium (rendering tests).
set -euo pipefail

missing=()
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
command -v curl >/dev/null 2>&1 || missing+=(curl)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql-15)
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
# headless browser for the slide and dashboard rendering tests
command -v chromium >/dev/null 2>&1 || missing+=(chromium)

if [ ${#missing[@]} -eq 0 ]; then
  echo "[deps] system packages already present"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "[deps] installing: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
# The Debian package starts a cluster of its own on 5432: the course runs its own instance.
if printf '%s\n' "${missing[@]}" | grep -q '^postgresql'; then
  $SUDO systemctl disable --now postgresql >/dev/null 2>&1 || $SUDO service postgresql stop >/dev/null 2>&1 || true
fi
