#!/usr/bin/env bash
# A first look at Writ: installs dependencies, builds `writ`, checks and compiles the example
# policy library in examples/quickstart/, then runs the gateway on it: a real MCP client
# (official SDK) talks to `writ serve --stdio` in front of two MCP servers, and the
# hash-chained audit trail is verified and shown to catch a one-byte edit.
# Usage: scripts/demo.sh        (Debian 12; installs packages with apt-get and npm ci)
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${WRIT_JOBS:-2}"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "installing dependencies (Debian 12, then the pinned npm packages)"
scripts/install-deps.sh >/dev/null
# Node.js and the MCP SDK/servers, the same way as scripts/e2e.sh: npm ci only when
# node_modules is missing or package-lock.json changed; no install scripts run.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm
fi
stamp=node_modules/.writ-lock.sha256
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null
  echo "$want" >"$stamp"
fi
echo "ok"

step "building writ"
cmake -S . -B build -G Ninja >/dev/null
ninja -C build -j"$JOBS" writ | tail -n 1
WRIT=build/cli/writ

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

step "writ check examples/quickstart/  (parse + type check)"
"$WRIT" check examples/quickstart/

step "a policy with mistakes gets targeted errors"
cat >"$tmp/typo.writ" <<'POLICY'
allow (principal == "alice", action, resource)
when { args.amount = 100 and args.currency == "EUR" };
POLICY
cat "$tmp/typo.writ"
"$WRIT" check "$tmp/typo.writ" 2>&1 | head -n 12 || true

step "compile to a verified bundle and decide a request offline (writ build, eval, explain)"
"$WRIT" build -o "$tmp/quickstart.wbundle" examples/quickstart/
"$WRIT" eval --bundle "$tmp/quickstart.wbundle" --request examples/quickstart/requests/big-refund.json
echo "-- writ explain, a string amount (\"70000\"): an error in a forbid still denies (abridged)"
"$WRIT" explain --bundle "$tmp/quickstart.wbundle" \
  --request examples/quickstart/requests/string-amount.json | grep -E '^(decision|why)|(forbid no-big-refunds|permit support-refunds) '

step "the gateway: examples/quickstart/gateway.yaml"
grep -vE '^\s*#' examples/quickstart/gateway.yaml
rm -rf /tmp/writ-demo
mkdir -p /tmp/writ-demo/files
printf 'quarterly numbers: 42\n' >/tmp/writ-demo/files/notes.txt

step "an agent's session through writ serve --stdio (MCP SDK client)"
node scripts/demo-session.mjs "$WRIT"

log=/tmp/writ-demo/audit.jsonl
step "the audit trail: one record per decision, one per outcome ($log)"
node -e '
  for (const l of require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n")) {
    const r = JSON.parse(l);
    const what = r.kind === "outcome" ? `outcome ${r.upstream.outcome} ${(r.upstream.latency_us / 1000).toFixed(1)} ms`
                                      : `decision ${r.decision} ${JSON.stringify(r.determining)}`;
    console.log(`  #${r.seq} ${r.server}__${r.tool}: ${what}  (${r.decision_id.slice(0, 8)}…, hash ${r.hash.slice(0, 12)}…)`);
  }' "$log"
"$WRIT" audit verify "$log"

step "edit one byte of a copy (record 5: deny -> Deny): writ audit verify names the record"
cp "$log" "$tmp/audit-tampered.jsonl"
sed -i '5s/"decision":"deny"/"decision":"Deny"/' "$tmp/audit-tampered.jsonl"
if "$WRIT" audit verify "$tmp/audit-tampered.jsonl"; then
  echo "demo.sh: tampering was not detected" >&2
  exit 1
fi

step "done: see README.md, docs/gateway.md and docs/language.md"
