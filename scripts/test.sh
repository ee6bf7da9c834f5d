#!/usr/bin/env bash
# The full test run (what CI runs): dependencies, build, unit + golden + docs tests, the same
# tests under AddressSanitizer + UndefinedBehaviorSanitizer, then a bounded fuzz campaign.
# Usage: scripts/test.sh          Env: WRIT_JOBS (default 2), WRIT_FUZZ_SECONDS (default 25, per fuzz target)
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${WRIT_JOBS:-2}"
FUZZ_SECONDS="${WRIT_FUZZ_SECONDS:-25}"
start=$SECONDS

step() { printf '\n== [%4ds] %s\n' "$((SECONDS - start))" "$*"; }

step "dependencies"
scripts/install-deps.sh

step "build (build/)"
cmake -S . -B build -G Ninja >/dev/null
ninja -C build -j"$JOBS"

step "tests (build/)"
ctest --test-dir build --output-on-failure -j"$JOBS"

step "policy CI on policies/ (fmt --check, check, test --min-coverage, replay --baseline HEAD)"
scripts/policy-ci.sh policies

step "end-to-end tests with real MCP clients and servers through writ serve (Node)"
scripts/e2e.sh

step "MCP conformance suite: directly vs through writ serve (Node 22; docs/gateway.md)"
scripts/conformance.sh

step "sanitizer build of the tests (build-asan/: ASan + UBSan)"
cmake -S . -B build-asan -G Ninja -DWRIT_SANITIZE=ON -DWRIT_BENCH=OFF >/dev/null
mapfile -t test_targets < <(ninja -C build-asan -t targets all | sed -n 's/^\(writ_[a-z0-9_]*_tests\): phony$/\1/p')
if [ ${#test_targets[@]} -eq 0 ]; then
  echo "test.sh: no test targets found in build-asan" >&2
  exit 1
fi
# The tests also run the `writ` binary (CLI exit codes, `writ serve`), so build it too.
ninja -C build-asan -j"$JOBS" writ "${test_targets[@]}"

step "tests under ASan + UBSan (build-asan/)"
ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
  WRIT_DIFF_CASES=20000 ctest --test-dir build-asan --output-on-failure -j"$JOBS"

step "fuzzing every target for ${FUZZ_SECONDS}s each (build-fuzz/, clang)"
scripts/fuzz.sh "$FUZZ_SECONDS"

step "all passed in $((SECONDS - start))s"
