#!/usr/bin/env bash
# Quick start: a demo site in the default place (unless one exists), its
# status, then the site itself (`chipsite serve`) until Ctrl-C.
set -euo pipefail
bin=${1:?usage: demo.sh BINARY}
if "$bin" status >/dev/null 2>&1; then
  echo "A site already exists; leaving it as it is."
else
  "$bin" init
  "$bin" user add demo --name "Demo User"
fi
"$bin" status
echo "Running the site; stop it with Ctrl-C."
exec "$bin" serve
