#!/usr/bin/env bash
# Added latency and throughput of `writ serve --stdio` versus a direct stdio connection to a
# fast echo MCP server (bench/gateway-latency.mjs; results in docs/performance.md, "Gateway
# added latency"). Builds `writ` and the paced client (bench/gateway/loadgen.cc) first.
# Loopback/stdio only; bounded by a watchdog.
# Usage: scripts/bench-gateway.sh [--count 5000 --rate 1000 --sessions 2 --window 32
#                                  --tcount 20000 --fsync interval|always|never
#                                  --client native|js]
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja >/dev/null
ninja -C build -j"${WRIT_JOBS:-2}" writ writ_gateway_loadgen >/dev/null
exec timeout 320 node bench/gateway-latency.mjs --writ build/cli/writ "$@"
