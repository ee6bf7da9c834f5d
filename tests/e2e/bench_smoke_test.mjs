// The gateway latency benchmark still works (docs/performance.md, "Gateway added latency"):
// its paced client (bench/gateway/loadgen.cc, writ_gateway_loadgen) measures calls and fails
// loudly, and bench/gateway-latency.mjs prints its table. A few hundred calls only: this checks
// the tools, not the figures (speed is never asserted by a test).
//
// Env: WRIT_BIN (build/cli/writ), WRIT_LOADGEN (build/bench/writ_gateway_loadgen),
//      WRIT_E2E_ALLOW_MISSING_GATEWAY (skip when a binary is not built).

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { test } from "node:test";
import { NODE, REPO, TEST_TIMEOUT_MS, run } from "./lib.mjs";

const ALLOW_MISSING = process.env.WRIT_E2E_ALLOW_MISSING_GATEWAY === "1";
const abs = (p) => (isAbsolute(p) ? p : resolve(REPO, p));
const bin = abs(process.env.WRIT_BIN || "build/cli/writ");
const loadgen = abs(process.env.WRIT_LOADGEN || "build/bench/writ_gateway_loadgen");
const ECHO = join(REPO, "bench/gateway/echo-server.mjs");

function need(t, ...paths) {
  for (const p of paths) {
    if (existsSync(p)) continue;
    if (ALLOW_MISSING) {
      t.skip(`${p} does not exist`);
      return false;
    }
    assert.fail(`${p} does not exist (build it: ninja -C build writ writ_gateway_loadgen)`);
  }
  return true;
}

test("loadgen: paced calls to the echo server, ordered percentiles", { timeout: TEST_TIMEOUT_MS }, async (t) => {
  if (!need(t, loadgen)) return;
  const r = await run(loadgen, ["--tool", "echo", "--count", "300", "--warmup", "20", "--rate", "1000", "--", NODE, ECHO]);
  assert.equal(r.code, 0, r.stderr);
  const m = JSON.parse(r.stdout);
  assert.equal(m.count, 300);
  assert.ok(m.achieved > 100, `achieved ${m.achieved}/s`);
  assert.ok(m.p50 > 0 && m.p50 <= m.p90 && m.p90 <= m.p99 && m.p99 <= m.p999 && m.p999 <= m.max, r.stdout);
});

test("loadgen: a tool the server does not list, or a server that exits, fails with the reason", { timeout: TEST_TIMEOUT_MS }, async (t) => {
  if (!need(t, loadgen)) return;
  const missing = await run(loadgen, ["--tool", "nosuch", "--count", "10", "--", NODE, ECHO]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /tool nosuch is not listed/);
  const gone = await run(loadgen, ["--tool", "echo", "--count", "10", "--", NODE, "-e", "process.exit(0)"]);
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /closed its stdout|write to the server failed/);
  const usage = await run(loadgen, ["--count", "10"]);
  assert.equal(usage.code, 1);
  assert.match(usage.stderr, /usage: writ_gateway_loadgen/);
});

test("bench/gateway-latency.mjs: direct and through writ, the added row", { timeout: TEST_TIMEOUT_MS }, async (t) => {
  if (!need(t, bin, loadgen)) return;
  const r = await run(NODE, [join(REPO, "bench/gateway-latency.mjs"), "--writ", bin, "--loadgen", loadgen,
    "--count", "300", "--tcount", "600", "--sessions", "1", "--window", "4"]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /paced 300 calls at 1000\/s \(native client\)/);
  for (const row of [/^\| direct \(stdio\) \| \d+\/s \| \d+ \|/m, /^\| through writ serve --stdio \| \d+\/s \| \d+ \|/m, /^\| \*\*added\*\* \|/m])
    assert.match(r.stdout, row);
});
