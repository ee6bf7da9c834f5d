#!/usr/bin/env bash
# End-to-end tests with real MCP peers (official SDK client, reference servers, the demo
# finance server): installs the pinned npm packages from package-lock.json when needed, then
# runs node's test runner on tests/e2e/. See tests/e2e/README.md.
# Usage: scripts/e2e.sh [extra node --test args]
# Env: WRIT_BIN (default build/cli/writ), WRIT_E2E_ALLOW_MISSING_GATEWAY=1 (skip, not fail,
#      the gateway tests when `writ serve --stdio` is not built).
set -euo pipefail
cd "$(dirname "$0")/.."

# The pinned packages need Node.js >= 18. A machine without Node gets Debian's (18.x).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "== installing Node.js and npm (Debian packages)"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 18 ]; then
  echo "e2e.sh: needs Node.js >= 18, found $(node --version)" >&2
  exit 1
fi

# npm ci only when node_modules is missing or package-lock.json changed since the last install
# (the lockfile's hash is kept in node_modules/.writ-lock.sha256). --ignore-scripts: no
# package gets to run install scripts.
stamp=node_modules/.writ-lock.sha256
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "== npm ci (package-lock.json)"
  npm ci --ignore-scripts --no-audit --no-fund
  echo "$want" >"$stamp"
fi

echo "== node --test tests/e2e/"
exec node --test "$@" tests/e2e/
