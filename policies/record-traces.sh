#!/usr/bin/env bash
# Records the policy library's traces: for every scenario under policies/ (or the ones named),
# runs scripts/policy-traces/record.mjs, which puts `writ serve --stdio` with `record:` in
# front of mock MCP servers (scripts/policy-traces/mock-server.mjs) and drives one scripted
# MCP client session per principal listed in the scenario's record.json. The result replaces
# SCENARIO/trace.jsonl.
#
# Usage: policies/record-traces.sh [SCENARIO...]          (from anywhere; paths or names)
# Env:   WRIT_BIN (default build/cli/writ), RECORD_TIMEOUT (seconds per scenario, default 150)
#        RECORD_DRY_RUN=1: run the sessions without recording (writes no trace).
# Needs: a built `writ`, Node >= 20 with the repository's node_modules (`npm ci
#        --ignore-scripts`, as scripts/e2e.sh does), python3 with PyYAML (schema.yaml -> JSON).
# Loopback only: every process is a local child speaking stdio; nothing listens on a port.
set -euo pipefail
cd "$(dirname "$0")/.."
WRIT_BIN="${WRIT_BIN:-build/cli/writ}"
RECORD_TIMEOUT="${RECORD_TIMEOUT:-150}"

die() { echo "record-traces.sh: $*" >&2; exit 2; }
[ -x "$WRIT_BIN" ] || die "$WRIT_BIN not built (ninja -C build writ)"
[ -d node_modules/@modelcontextprotocol/sdk ] ||
  die "node_modules missing: run npm ci --ignore-scripts"
python3 -c 'import yaml' 2>/dev/null ||
  die "python3 with PyYAML is needed (apt-get install python3-yaml)"

if [ $# -eq 0 ]; then
  mapfile -t scenarios < <(find policies -mindepth 2 -maxdepth 2 -name record.json -printf '%h\n' |
    sort)
else
  scenarios=()
  for s in "$@"; do
    s="${s%/}"
    [ -d "$s" ] || s="policies/$s"
    [ -f "$s/record.json" ] || die "$s has no record.json"
    scenarios+=("$s")
  done
fi

work="$(mktemp -d /tmp/writ-record.XXXXXX)"
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

for s in "${scenarios[@]}"; do
  name="$(basename "$s")"
  echo "== $name"
  python3 -c 'import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)' \
    "$s/schema.yaml" >"$work/$name.schema.json"
  out=(--out "$s/trace.jsonl")
  [ "${RECORD_DRY_RUN:-}" = 1 ] && out=(--no-record 1)
  # `timeout` bounds the driver; the driver stops its gateway by pid, the gateway its upstreams.
  timeout --kill-after=5 "$RECORD_TIMEOUT" node scripts/policy-traces/record.mjs \
    --scenario "$s" --schema-json "$work/$name.schema.json" --writ "$WRIT_BIN" \
    --work "$work/$name" "${out[@]}" &
  pid=$!
  wait "$pid"
  pid=""
done
echo "record-traces.sh: ${#scenarios[@]} scenario(s)"
