#!/usr/bin/env bash
# Added latency and throughput of `writ serve --stdio` versus a direct stdio connection to a
# fast echo MCP server (bench/gateway-latency.mjs; results in docs/performance.md, "Gateway
# added latency"). Builds `writ` first. Loopback/stdio only; bounded by a watchdog.
# Usage: scripts/bench-gateway.sh [--count 5000 --rate 1000 --sessions 2 --window 32
#                                  --tcount 20000 --fsync interval|always|never]
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja >/dev/null
ninja -C build -j"${WRIT_JOBS:-2}" writ >/dev/null
exec timeout 320 node bench/gateway-latency.mjs --writ build/cli/writ "$@"
