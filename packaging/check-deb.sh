#!/usr/bin/env bash
# Unpacks a chipsite .deb into a temporary folder and checks what a host gets:
# the binary runs (--version, init, status), man pages and completions are
# there, the copyright file names the license, the Maintainer is a real
# address, and systemd-analyze accepts the unit (where that tool exists).
set -euo pipefail
deb=$(realpath "${1:?usage: check-deb.sh DEB}")
cd "$(dirname "$0")/.."
version=$(tr -d ' \n' < packaging/VERSION)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -x "$deb" "$tmp/root"
bin=$tmp/root/usr/bin/chipsite
[ "$("$bin" --version)" = "$version" ] || { echo "chipsite --version is not $version"; exit 1; }
file "$bin" | grep -q "statically linked" || { echo "the packaged binary is not static"; exit 1; }
"$bin" init --db "$tmp/site.db" --host deb.example >/dev/null
"$bin" status --db "$tmp/site.db" --json | grep -q '"host" : "deb.example"\|"host": "deb.example"'
for page in man/*.1; do
  [ -s "$tmp/root/usr/share/man/man1/$(basename "$page").gz" ] || { echo "missing man page $(basename "$page")"; exit 1; }
done
for f in usr/share/bash-completion/completions/chipsite usr/share/zsh/vendor-completions/_chipsite \
         usr/share/fish/vendor_completions.d/chipsite.fish lib/systemd/system/chipsite.service; do
  [ -s "$tmp/root/$f" ] || { echo "missing /$f"; exit 1; }
done
# The copyright file (Debian's machine-readable format) names the license
# and where Debian keeps its text.
copyright=$tmp/root/usr/share/doc/chipsite/copyright
[ -s "$copyright" ] || { echo "missing /usr/share/doc/chipsite/copyright"; exit 1; }
head -1 "$copyright" | grep -qx 'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/' \
  || { echo "copyright is not in the machine-readable format"; exit 1; }
grep -qx 'License: Apache-2.0' "$copyright" && grep -q '/usr/share/common-licenses/Apache-2.0' "$copyright" \
  || { echo "copyright does not name Apache-2.0 and /usr/share/common-licenses/Apache-2.0"; exit 1; }
maintainer=$(dpkg-deb -f "$deb" Maintainer)
[[ $maintainer == *@*.* && $maintainer != *localhost* ]] || { echo "Maintainer is not a project address: $maintainer"; exit 1; }
if command -v systemd-analyze >/dev/null; then
  sed "s#/usr/bin/chipsite#$bin#" "$tmp/root/lib/systemd/system/chipsite.service" > "$tmp/chipsite.service"
  systemd-analyze verify --man=no "$tmp/chipsite.service"
  verified=", systemd-analyze verify ok"
fi
echo "deb OK: $(basename "$deb") runs init and status, $(ls "$tmp/root/usr/share/man/man1" | wc -l) man pages, completions, copyright${verified:-}"
