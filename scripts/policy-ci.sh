#!/usr/bin/env bash
# Policy CI (docs/ci.md): for every scenario directory ROOT/*/ -- `writ fmt --check`,
# `writ check`, `writ test --min-coverage`, and `writ replay --baseline` of the scenario's
# recorded traces (*.jsonl under it) against the same directory at git HEAD (the policies
# before this change). Run by scripts/test.sh on policies/; docs/ci.md runs the same in
# GitHub Actions with --format github.
#
# Usage: scripts/policy-ci.sh [ROOT]        (default: policies)
# Env:   WRIT (default build/cli/writ), WRIT_MIN_COVERAGE (default 80),
#        WRIT_FORMAT (text | github; default text), WRIT_BASELINE_REF (default HEAD)
set -euo pipefail
ROOT="${1:-policies}"
WRIT="${WRIT:-build/cli/writ}"
MIN_COVERAGE="${WRIT_MIN_COVERAGE:-80}"
FORMAT="${WRIT_FORMAT:-text}"
REF="${WRIT_BASELINE_REF:-HEAD}"

shopt -s nullglob
dirs=("$ROOT"/*/)
if [ ${#dirs[@]} -eq 0 ]; then
  echo "policy-ci: no scenario directories under $ROOT/; nothing to check"
  exit 0
fi

# The baseline: ROOT as committed at REF, extracted into a temporary directory.
baseline=""
if git rev-parse --verify -q "$REF^{commit}" >/dev/null 2>&1; then
  baseline="$(mktemp -d)"
  trap 'rm -rf "$baseline"' EXIT
  if ! git archive "$REF" "$ROOT" 2>/dev/null | tar -x -C "$baseline" 2>/dev/null; then
    echo "policy-ci: $ROOT/ is not in $REF; replays compare with the recorded decisions"
  fi
else
  echo "policy-ci: not a git checkout (or no $REF); skipping the baseline, replays compare" \
       "with the recorded decisions"
fi

for d in "${dirs[@]}"; do
  d="${d%/}"
  echo "== policy-ci: $d"
  schema=()
  [ -f "$d/schema.yaml" ] && schema=(--schema "$d/schema.yaml")
  "$WRIT" fmt --check "$d"
  "$WRIT" check --format "$FORMAT" "${schema[@]}" "$d"
  if [ -z "$(find "$d" \( -name '*.test.yaml' -o -name '*.test.yml' \) -print -quit)" ]; then
    echo "policy-ci: $d has no *.test.yaml; every scenario needs tests (docs/testing.md)" >&2
    exit 1
  fi
  "$WRIT" test --format "$FORMAT" --min-coverage "$MIN_COVERAGE" "$d"
  mapfile -t traces < <(find "$d" -name '*.jsonl' | sort)
  if [ ${#traces[@]} -eq 0 ]; then
    echo "policy-ci: $d has no recorded trace (*.jsonl); nothing to replay"
    continue
  fi
  base=()
  if [ -n "$baseline" ] && [ -d "$baseline/$d" ]; then
    base=(--baseline "$baseline/$d")
    [ -f "$baseline/$d/schema.yaml" ] && base+=(--baseline-schema "$baseline/$d/schema.yaml")
  fi
  "$WRIT" replay --format "$FORMAT" --policies "$d" "${schema[@]}" "${base[@]}" "${traces[@]}"
done
echo "policy-ci: ok (${#dirs[@]} scenario(s))"
