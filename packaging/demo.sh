#!/usr/bin/env bash
# Quick start: a demo site in the default place (unless one exists), its
# status, then the site itself (`chipsite serve`) until Ctrl-C.
set -euo pipefail
bin=${1:?usage: demo.sh BINARY}
# As root the default place is the packaged service's site file
# (/var/lib/chipsite/site.db): the demo stays out of it, in root's home.
if [ "$(id -u)" = 0 ] && [ -z "${CHIPSITE_DB:-}" ]; then
  export CHIPSITE_DB="${HOME:-/root}/.local/share/chipsite/site.db"
  mkdir -p "$(dirname "$CHIPSITE_DB")"
  echo "Demo site: $CHIPSITE_DB (as root the default place is kept for the packaged service)."
fi
if "$bin" status >/dev/null 2>&1; then
  echo "A site already exists; leaving it as it is."
else
  "$bin" init
  "$bin" user add demo --name "Demo User"
fi
"$bin" status
echo "Running the site; stop it with Ctrl-C."
exec "$bin" serve
