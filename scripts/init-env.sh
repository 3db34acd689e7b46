#!/bin/sh
# Creates .env from .env.example for the Docker path (./dpe does the same for the native
# path): every "__random__" value becomes a fresh random secret. Never overwrites .env.
#   sh scripts/init-env.sh
set -eu
cd "$(dirname "$0")/.."
if [ -f .env ]; then
  echo ".env existe déjà : rien à faire."
  exit 0
fi
random_secret() { head -c 18 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'; }
umask 077
while IFS= read -r line || [ -n "$line" ]; do
  case "$line" in
    \#*|'') printf '%s\n' "$line" ;;
    LEARNER_ID=__random__) printf 'LEARNER_ID=apprenant_%s\n' "$(head -c 3 /dev/urandom | od -An -tx1 | tr -d ' \n')" ;;
    *=__random__) printf '%s=%s\n' "${line%%=*}" "$(random_secret)" ;;
    *) printf '%s\n' "$line" ;;
  esac
done < .env.example > .env.tmp
mv .env.tmp .env
echo ".env créé avec des secrets aléatoires (changez LEARNER_ID si vous le souhaitez)."
