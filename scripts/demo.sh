#!/usr/bin/env bash
# A first look at Writ: installs dependencies, builds `writ`, checks the example policy
# library in examples/quickstart/, shows a targeted error, and prints the AST of one policy.
# Usage: scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${WRIT_JOBS:-2}"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "installing dependencies (Debian 12)"
scripts/install-deps.sh

step "building writ"
cmake -S . -B build -G Ninja >/dev/null
ninja -C build -j"$JOBS" writ
WRIT=build/cli/writ

step "writ check examples/quickstart/"
ls examples/quickstart/
"$WRIT" check examples/quickstart/

step "a policy with mistakes gets targeted errors (writ check exits 1)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/typo.writ" <<'POLICY'
allow (principal == "alice", action, resource)
when { args.amount = 100 and args.currency == "EUR" }
then notfy("slack", "#alerts");
POLICY
cat "$tmp/typo.writ"
echo
"$WRIT" check "$tmp/typo.writ" && exit 1 || true

step "the AST of examples/quickstart/payments.writ (writ check --dump ast)"
"$WRIT" check --dump ast examples/quickstart/payments.writ

step "compile to a verified bytecode bundle (writ build)"
"$WRIT" build -o "$tmp/quickstart.wbundle" examples/quickstart/

for r in small-refund big-refund string-amount destructive-refund; do
  step "decide examples/quickstart/requests/$r.json (writ eval)"
  grep -E '"amount"|"intent"' "examples/quickstart/requests/$r.json" | sed 's/^ */  /'
  "$WRIT" eval --bundle "$tmp/quickstart.wbundle" --request "examples/quickstart/requests/$r.json"
done

step "why: a string amount cannot slip past a numeric forbid (writ explain)"
"$WRIT" explain --bundle "$tmp/quickstart.wbundle" --request examples/quickstart/requests/string-amount.json

step "list-time visibility of the refund tool for this principal (args unknown)"
"$WRIT" eval --bundle "$tmp/quickstart.wbundle" --request examples/quickstart/requests/big-refund.json --list

step "done: see README.md and docs/language.md to write your own policies"
