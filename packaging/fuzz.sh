#!/usr/bin/env bash
# Coverage-guided fuzzing of every entry point that takes bytes from outside
# (doc/testing.md). libFuzzer + AddressSanitizer, optimised build; targets
# are built and run FUZZ_JOBS at a time (default: one per core).
#
#   bash packaging/fuzz.sh [SECONDS] [TARGET...]   build, then run each target SECONDS (default 20)
#   bash packaging/fuzz.sh --build                 build the targets only
#   bash packaging/fuzz.sh --seeds                 rewrite Fuzz/corpus/ from real objects (seedgen)
#   bash packaging/fuzz.sh --list                  the target names
#
# Everything is built with swiftc (not SwiftPM) into Fuzz/.build: the modules
# Noise, ChipModel, ChipProtocol and ChipChannel from Sources/ as static libraries, then one
# executable per target from Fuzz/Targets/NAME.swift, whose `main` is
# libFuzzer's.
#
# Prints, per target, the executions run and the outcome; exits non-zero if
# any target found a crash, leak, timeout or out-of-memory. Crashing inputs
# are kept in Fuzz/.build/artifacts/NAME/; reproduce with
#   SWIFT_BACKTRACE=enable=no Fuzz/.build/fuzz-NAME Fuzz/.build/artifacts/NAME/crash-…
set -euo pipefail
cd "$(dirname "$0")/.."
SELF=packaging/fuzz.sh   # a change to this script rebuilds everything

SWIFTC=${SWIFTC:-swiftc}
B=Fuzz/.build
TARGETS=(frame handshake channel transport envelope json canonical ticket ticket_message tally chit certificate chad tally_dialog chain_dialog user_channel user_command user_session route_message lift_message pay_link)
# The largest input libFuzzer makes, per target (default 4096): the frame and
# transport targets need room for frames near their 64 KiB limit.
declare -A MAX_LEN=([frame]=140000 [transport]=70000 [channel]=16384 [tally_dialog]=16384 [chain_dialog]=16384 [user_channel]=16384 [user_command]=8192 [user_session]=16384 [route_message]=16384 [lift_message]=16384)

# Flags shared by every compile: optimised, Swift 6, libFuzzer coverage + ASan,
# line tables so that crash reports name files and lines.
FLAGS=(-O -wmo -use-ld=lld -swift-version 6 -sanitize=fuzzer,address -gline-tables-only -I Sources/CSodium -I "$B/modules")

usage() { sed -n '2,18p' "$SELF" | sed 's/^# \{0,1\}//'; }

# Builds a module from Sources/NAME as a static library (if a source changed).
build_module() {
  local name=$1; shift
  local lib="$B/lib$name.a"
  if [ -f "$lib" ] && [ -z "$(find "Sources/$name" "$SELF" -newer "$lib" -print -quit)" ]; then return; fi
  echo "fuzz: building module $name"
  mkdir -p "$B/modules" "$B/obj/$name"
  "$SWIFTC" "${FLAGS[@]}" "$@" -parse-as-library -module-name "$name" -emit-module -emit-module-path "$B/modules/$name.swiftmodule" \
    -c Sources/"$name"/*.swift -o "$B/obj/$name/$name.o"
  rm -f "$lib"
  ar rcs "$lib" "$B/obj/$name/$name.o"
}

build_modules() {
  mkdir -p "$B"
  build_module Noise
  build_module ChipModel
  build_module ChipProtocol
  # Internal API (ChannelMachine.ticketPresentation) is fuzzed directly too.
  build_module ChipChannel -enable-testing
}

LIBS=(-L "$B" -lChipChannel -lChipProtocol -lChipModel -lNoise)

# Links Fuzz/Targets/NAME.swift (+ support code) into Fuzz/.build/fuzz-NAME.
build_target() {
  local t=$1 exe="$B/fuzz-$1"
  if [ -f "$exe" ] && [ -z "$(find "Fuzz/Targets/$t.swift" Fuzz/Support "$B"/lib*.a -newer "$exe" -print -quit)" ]; then return; fi
  echo "fuzz: building target $t"
  "$SWIFTC" "${FLAGS[@]}" -parse-as-library -module-name "Fuzz_$t" "Fuzz/Targets/$t.swift" Fuzz/Support/*.swift "${LIBS[@]}" -o "$exe"
}

# Builds the targets named, FUZZ_JOBS at a time; fails if any build failed.
build_targets() {
  local jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)} running=0 t ok=0
  for t in "$@"; do
    build_target "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then wait -n || ok=1; running=$((running - 1)); fi
  done
  while [ "$running" -gt 0 ]; do wait -n || ok=1; running=$((running - 1)); done
  return $ok
}

# The seed generator is an ordinary program (its own main), linked against the
# same instrumented libraries with ASan only (whose runtime supplies the
# coverage callbacks the libraries call).
build_seedgen() {
  echo "fuzz: building seedgen"
  "$SWIFTC" -O -swift-version 6 -sanitize=address -I Sources/CSodium -I "$B/modules" -module-name seedgen \
    Fuzz/SeedGen/main.swift Fuzz/Support/*.swift "${LIBS[@]}" -use-ld=lld -o "$B/seedgen"
}

case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  --list) printf '%s\n' "${TARGETS[@]}"; exit 0 ;;
  --build) build_modules; build_targets "${TARGETS[@]}"; exit 0 ;;
  --seeds)
    build_modules; build_seedgen
    ASAN_OPTIONS=detect_leaks=0 "$B/seedgen" Fuzz/corpus
    exit 0 ;;
esac

SECONDS_PER_TARGET=${1:-20}
[[ "$SECONDS_PER_TARGET" =~ ^[0-9]+$ ]] && [ "$SECONDS_PER_TARGET" -gt 0 ] || { usage; exit 2; }
shift || true
[ $# -gt 0 ] && TARGETS=("$@")

for t in "${TARGETS[@]}"; do
  [ -f "Fuzz/Targets/$t.swift" ] || { echo "fuzz: no target $t (see --list)"; exit 2; }
done
build_modules
build_targets "${TARGETS[@]}"

# libFuzzer reports crashes itself; the Swift runtime's backtracer would
# only slow a crash down (and can hold the output open for its timeout).
export SWIFT_BACKTRACE=${SWIFT_BACKTRACE:-enable=no}

# Targets run FUZZ_JOBS at a time (default: one per core), each one process;
# the table comes out in the targets' order.
JOBS=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
run_target() {
  local t=$1 work="$B/corpus/$1" art="$B/artifacts/$1" log="$B/logs/$1.log" rc
  mkdir -p "$work" "$art" "$B/logs" "Fuzz/corpus/$t"
  # New inputs go to the first corpus folder (a scratch one); the committed
  # seeds in Fuzz/corpus/NAME are only read.
  set +e
  "$B/fuzz-$t" "$work" "Fuzz/corpus/$t" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
    -max_len="${MAX_LEN[$t]:-4096}" -print_final_stats=1 -artifact_prefix="$art/" >"$log" 2>&1
  rc=$?
  set -e
  echo "$rc" >"$B/logs/$t.rc"
}
running=0
for t in "${TARGETS[@]}"; do
  run_target "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$JOBS" ]; then wait -n || true; running=$((running - 1)); fi
done
wait

failed=()
printf '%-16s %12s %10s  %s\n' target executions exec/s result
for t in "${TARGETS[@]}"; do
  art="$B/artifacts/$t" log="$B/logs/$t.log"
  rc=$(cat "$B/logs/$t.rc" 2>/dev/null || echo 1)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  if [ "$rc" -eq 0 ]; then
    result=ok
  else
    result="FAILED (exit $rc): $(grep -m1 -E 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)|Fatal error|fuzz property' "$log" || echo "see $log")"
    failed+=("$t")
  fi
  printf '%-16s %12s %10s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "$result"
  if [ "$rc" -ne 0 ]; then
    input=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    echo "    log: $log"
    echo "    reproduce: SWIFT_BACKTRACE=enable=no $B/fuzz-$t ${input:-$art/<crash-file>}"
  fi
done

if [ ${#failed[@]} -gt 0 ]; then echo "fuzz: FAILED: ${failed[*]}"; exit 1; fi
echo "fuzz: ${#TARGETS[@]} targets, ${SECONDS_PER_TARGET}s each, no crash"
