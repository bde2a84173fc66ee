#!/usr/bin/env bash
# Regenerates the man pages of chipsite and every subcommand from the
# ArgumentParser definitions (its generate-manual plugin) into DIR.
set -euo pipefail
out=${1:?usage: gen-man.sh DIR DATE}
date=${2:?usage: gen-man.sh DIR DATE}
cd "$(dirname "$0")/.."
# SCRATCH: the build folder to use (default .build), so a second checkout
# or build folder can regenerate without disturbing the first.
scratch=${SCRATCH:-.build}
swift package --scratch-path "$scratch" plugin generate-manual --configuration debug --multi-page --date "$date" \
  --authors "chipsite developers" >/dev/null
src=$scratch/plugins/GenerateManual/outputs/chipsite
mkdir -p "$out"
rm -f "$out"/*.1
cp "$src"/*.1 "$out"/
echo "man pages written to $out: $(ls "$out" | wc -l) pages"
