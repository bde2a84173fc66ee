#!/usr/bin/env bash
# Installs the Debian packages named on the command line that are missing,
# quietly: apt's output goes to a log file, shown only when apt fails.
# Uses sudo when not root. packaging/apt-install.sh PACKAGE...
set -euo pipefail
missing=()
for p in "$@"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -gt 0 ] || exit 0
sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
log=$(mktemp "${TMPDIR:-/tmp}/chipsite-apt.XXXXXX.log")
echo "installing ${missing[*]} (apt's output: $log)"
# `env`: sudo's env_reset would drop an exported DEBIAN_FRONTEND.
if $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$log" 2>&1 &&
   $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$log" 2>&1; then
  rm -f "$log"
else
  status=$?
  echo "apt-get failed (exit $status); its output:" >&2
  cat "$log" >&2
  exit "$status"
fi
