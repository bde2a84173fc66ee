#!/usr/bin/env bash
# Quick start on a fresh Debian 12 machine with the Swift toolchain: installs
# the Debian packages that are missing, builds the static binary, creates a
# demo site in the default place if there is none, and shows it.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v make >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq make
fi
make demo
