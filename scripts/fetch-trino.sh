#!/usr/bin/env bash
# Fetches Trino (server, the plugins the course uses, CLI) from Maven Central into
# $DPE_CACHE/trino-<version>/, once. Idempotent: a finished install (marker file) is reused.
# Prints the server's home directory on stdout; progress goes to stderr.
#
#   scripts/fetch-trino.sh
#   TRINO_PLUGINS="iceberg postgresql geospatial password-authenticators tpch memory" scripts/fetch-trino.sh
#
# Layout:
#   $DPE_CACHE/trino-476/trino-server-476/{bin,lib,plugin/<name>}   (etc/ is NOT here: the runner
#                                                                    passes stack/trino/ files)
#   $DPE_CACHE/trino-476/trino-cli-476-executable.jar
#
# Why the full tarball and not trino-server-core + plugin zips: Central serves
# io.trino:trino-server-core:476:tar.gz and io.trino:trino-iceberg:476:zip, but NOT
# io.trino:trino-postgresql:476 (zip, jar and pom all "not found"). The full
# io.trino:trino-server:476:tar.gz (~820 MB) has every plugin; only the ones listed in
# TRINO_PLUGINS are unpacked (its lib/ is identical to the core tarball's).
# 476 is the last Trino published to Central (477+ ship on GitHub only); it needs Java >= 24.
set -euo pipefail

TRINO_VERSION="${TRINO_VERSION:-476}"
# Connectors of the course; geospatial provides the Geometry type the postgresql connector
# needs at startup ("TypeNotFoundException: Unknown type: Geometry" without it); the file
# password authenticator; tpch for smoke tests
TRINO_PLUGINS="${TRINO_PLUGINS:-iceberg postgresql geospatial password-authenticators tpch}"
CACHE="${DPE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dpe-course}"
BASE="$CACHE/trino-$TRINO_VERSION"
HOME_DIR="$BASE/trino-server-$TRINO_VERSION"
CLI_JAR="$BASE/trino-cli-$TRINO_VERSION-executable.jar"
MARKER="$HOME_DIR/.dpe-complete"

log() { echo "[trino] $*" >&2; }

# The marker records the plugin list, so asking for another plugin re-unpacks
if [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$TRINO_PLUGINS" ] && [ -s "$CLI_JAR" ]; then
  log "cached: $HOME_DIR"
  echo "$HOME_DIR"
  exit 0
fi

command -v mvn >/dev/null 2>&1 || { log "mvn is not installed (scripts/install-system-deps.sh)"; exit 1; }
mkdir -p "$BASE"
DL="$(mktemp -d "$BASE/.dl.XXXXXX")"
trap 'rm -rf "$DL"' EXIT

copy_artifact() {
  mvn -q -B org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
    -Dartifact="$1" -DoutputDirectory="$DL" >&2
}

# The server tarball (~820 MB; Maven keeps its own copy in ~/.m2, the temp copy is removed)
log "fetching io.trino:trino-server:$TRINO_VERSION:tar.gz (large, about a minute)"
copy_artifact "io.trino:trino-server:$TRINO_VERSION:tar.gz"

# Unpack whole, then drop the plugins not asked for: the tarball stores a jar shared by several
# plugins once and hard-links the others to it, so unpacking single plugins breaks those links
log "unpacking, keeping plugins: $TRINO_PLUGINS"
top="trino-server-$TRINO_VERSION"
tar -xzf "$DL/$top.tar.gz" -C "$DL"
rm -f "$DL/$top.tar.gz"
for plugin in $TRINO_PLUGINS; do
  [ -d "$DL/$top/plugin/$plugin" ] || { log "no plugin '$plugin' in Trino $TRINO_VERSION"; exit 1; }
done
for dir in "$DL/$top/plugin"/*/; do
  plugin="$(basename "$dir")"
  case " $TRINO_PLUGINS " in *" $plugin "*) ;; *) rm -rf "$dir" ;; esac
done
rm -rf "$HOME_DIR"
mv "$DL/$top" "$HOME_DIR"

# The CLI, an executable jar (java -jar … --server http://127.0.0.1:<port>)
log "fetching io.trino:trino-cli:$TRINO_VERSION:jar:executable"
copy_artifact "io.trino:trino-cli:$TRINO_VERSION:jar:executable"
mv -f "$DL/trino-cli-$TRINO_VERSION-executable.jar" "$CLI_JAR"
chmod +x "$CLI_JAR"

echo "$TRINO_PLUGINS" > "$MARKER"
log "ready: $HOME_DIR"
echo "$HOME_DIR"
