#!/usr/bin/env bash
# Proves the release binary stands alone: `file` says statically linked, and
# it runs init and status where no shared library exists: a chroot holding
# only the binary (and /proc, which the Swift runtime reads) when we may make
# one, else an empty environment in an empty directory.
set -euo pipefail
bin=$(realpath "${1:?usage: check-static.sh BINARY}")
file "$bin" | grep -q "statically linked" || { echo "not statically linked: $(file "$bin")"; exit 1; }
tmp=$(mktemp -d)
cleanup() { mountpoint -q "$tmp/proc" 2>/dev/null && umount "$tmp/proc"; rm -rf "$tmp"; }
trap cleanup EXIT
mkdir -p "$tmp/proc"
if [ "$(id -u)" = 0 ] && mount --bind /proc "$tmp/proc" 2>/dev/null; then
  cp "$bin" "$tmp/chipsite"
  run() { chroot "$tmp" /chipsite "$@"; }
  db=/site.db
  where="a chroot with no shared libraries"
else
  run() { env -i "$bin" "$@"; }
  db=$tmp/site.db
  where="an empty environment"
fi
run init --db "$db" --host static.example >/dev/null
run status --db "$db" --json | grep -q '"host" : "static.example"\|"host": "static.example"'
echo "static binary OK: $(du -h "$bin" | cut -f1), runs init and status in $where"
