#!/usr/bin/env bash
# Regenerate a fully pinned lock from its .in file in a scratch venv:
#   scripts/lock-requirements.sh core        # requirements/core.in → requirements/core.txt
#   scripts/lock-requirements.sh superset    # … superset, airflow
set -euo pipefail
name="${1:?usage: $0 core|superset|airflow}"
root="$(cd "$(dirname "$0")/.." && pwd)"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
python3 -m venv "$scratch/venv"
"$scratch/venv/bin/pip" install -q "pip==26.3"
"$scratch/venv/bin/pip" install -q -r "$root/requirements/$name.in"
"$scratch/venv/bin/pip" check
{
  echo "# Generated from requirements/$name.in by scripts/lock-requirements.sh — do not edit by hand."
  "$scratch/venv/bin/pip" freeze --all | grep -v '^pip==' | sort -f
} > "$root/requirements/$name.txt"
echo "requirements/$name.txt: $(grep -vc '^#' "$root/requirements/$name.txt") pins"
