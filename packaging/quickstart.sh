#!/usr/bin/env bash
# Quick start on a fresh Debian 12 machine with the Swift toolchain: installs
# the Debian packages that building and running a site need and are missing
# (`make deps`; the tests' tools come with `make test`), builds the static
# binary, creates a demo site in the default place if there is none, and
# shows it. apt's output goes to a log file, shown only if apt fails.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v make >/dev/null || bash packaging/apt-install.sh make
make demo
