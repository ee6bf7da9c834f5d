#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs a bounded campaign on each:
# fuzz_parser (policy text -> parser + type checker), fuzz_bundle (bundle bytes -> loader,
# verifier, evaluator; request JSON -> evaluator) and fuzz_jsonrpc (the gateway's JSON-RPC
# framing: chunked bytes -> lines -> messages, with a round-trip invariant), fuzz_sse (the SSE
# parser of HTTP upstreams: chunking invariance, writer round trip) and fuzz_http (the HTTP
# entry point: Beast's request parser, Host/Origin checks, the JSON-RPC body) and
# fuzz_http_dispatch (request sequences through the HTTP server's session dispatch, without
# sockets: HttpServer::DispatchForTesting). Fails on any crash, sanitizer report, leak
# or timeout.
#
# Usage: scripts/fuzz.sh [SECONDS]      (default 60, per target)
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
ninja -C "$BUILD" -j"$JOBS" fuzz_parser fuzz_bundle fuzz_jsonrpc fuzz_governance fuzz_sse fuzz_http \
  fuzz_http_dispatch writ

# Seeds for fuzz_bundle, made fresh from the golden policies: "\0" + bundle bytes, and
# "\1" + a request.
SEEDS="$BUILD/fuzz-seeds/bundle"
mkdir -p "$SEEDS"
for f in tests/backend/golden/*.writ; do
  name=$(basename "$f" .writ)
  "$BUILD/cli/writ" build -o "$BUILD/fuzz-seeds/$name.wbundle" "$f" 2>/dev/null
  { printf '\0'; cat "$BUILD/fuzz-seeds/$name.wbundle"; } > "$SEEDS/$name"
done
printf '\1{"principal":{"uid":"User::\\"a\\""},"action":"tools/call","resource":{"uid":"Tool::\\"t\\""},"args":{"amount":1}}' > "$SEEDS/request"

run() {  # target corpus-dir extra-args...
  local target=$1 seeds=$2
  shift 2
  local work="$BUILD/fuzz-corpus/$target" artifacts="$BUILD/fuzz-artifacts"
  mkdir -p "$work" "$artifacts"
  echo "fuzz: running $target for ${SECONDS_TO_RUN}s"
  set +e
  "$BUILD/fuzz/$target" "$work" "$seeds" "$@" \
    -max_total_time="$SECONDS_TO_RUN" -timeout=5 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" 2>"$BUILD/fuzz-$target.log"
  local rc=$?
  set -e
  tail -n 8 "$BUILD/fuzz-$target.log"
  if [ $rc -ne 0 ]; then
    echo "fuzz: $target FAILED (exit $rc); see $BUILD/fuzz-$target.log and $artifacts/" >&2
    exit 1
  fi
  echo "fuzz: $target ok, no crash, leak or timeout in ${SECONDS_TO_RUN}s"
}

run fuzz_parser fuzz/corpus/parser -dict=fuzz/parser.dict -max_len=4096
run fuzz_bundle "$SEEDS" -max_len=16384
run fuzz_jsonrpc fuzz/corpus/jsonrpc -max_len=65536
run fuzz_governance fuzz/corpus/governance -max_len=8192
run fuzz_sse fuzz/corpus/sse -max_len=16384
run fuzz_http fuzz/corpus/http -max_len=65536
run fuzz_http_dispatch fuzz/corpus/http_dispatch -dict=fuzz/http_dispatch.dict -max_len=16384
