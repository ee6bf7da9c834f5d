#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs a bounded campaign on the
# policy parser. Fails on any crash, sanitizer report, leak or timeout.
#
# Usage: scripts/fuzz.sh [SECONDS]      (default 60)
#   Env: WRIT_FUZZ_BUILD_DIR (default build-fuzz), WRIT_FUZZ_JOBS (ninja -j, default 2)
# Seeds: fuzz/corpus/parser/ (committed, read-only here); new inputs go to a scratch corpus
# in the build dir. A failing input is saved as $BUILD/fuzz-artifacts/crash-* (or leak-,
# timeout-, oom-); reproduce with: $BUILD/fuzz/fuzz_parser <file>
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN="${1:-60}"
BUILD="${WRIT_FUZZ_BUILD_DIR:-build-fuzz}"
JOBS="${WRIT_FUZZ_JOBS:-2}"

if [ ! -f "$BUILD/build.ninja" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$BUILD" -G Ninja -DWRIT_FUZZ=ON -DWRIT_BENCH=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
ninja -C "$BUILD" -j"$JOBS" fuzz_parser

WORK="$BUILD/fuzz-corpus/parser"
ARTIFACTS="$BUILD/fuzz-artifacts"
mkdir -p "$WORK" "$ARTIFACTS"
echo "fuzz: running fuzz_parser for ${SECONDS_TO_RUN}s"
set +e
"$BUILD/fuzz/fuzz_parser" "$WORK" fuzz/corpus/parser \
  -dict=fuzz/parser.dict \
  -max_total_time="$SECONDS_TO_RUN" -max_len=4096 -timeout=5 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$ARTIFACTS/" 2>"$BUILD/fuzz.log"
rc=$?
set -e
tail -n 20 "$BUILD/fuzz.log"
if [ $rc -ne 0 ]; then
  echo "fuzz: FAILED (exit $rc); see $BUILD/fuzz.log and $ARTIFACTS/" >&2
  exit 1
fi
echo "fuzz: ok, no crash, leak or timeout in ${SECONDS_TO_RUN}s"
