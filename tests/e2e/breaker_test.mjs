// Circuit breaker end to end (docs/limits.md, "Circuit breakers"): the official SDK client
// talks to `writ serve --stdio` in front of fixtures/crashy-server.mjs, whose `sleep` tool
// outlasts `limits.call_timeout_ms`. Two timeouts in a row (failure_threshold: 2) open the
// breaker; the next call is refused at once with -32003 and data.retry_after_ms without
// reaching the server (the fixture logs every call it receives); after cool_down a probe
// passes and closes the breaker again.
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

import { NODE, REPO, TEST_TIMEOUT_MS, tempDir } from "./lib.mjs";

const WRIT = process.env.WRIT_BIN || join(REPO, "build/cli/writ");
const CRASHY = join(REPO, "tests/e2e/fixtures/crashy-server.mjs");
const COOL_DOWN_MS = 1500;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function call(client, name, args) {
  try {
    return { result: await client.callTool({ name, arguments: args }, undefined, { timeout: 15000 }) };
  } catch (e) {
    if (typeof e?.code === "number") return { error: { code: e.code, message: e.message, data: e.data } };
    throw e;
  }
}

test("a failing upstream opens its circuit breaker; a probe closes it after cool_down", { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const dir = tempDir(t, "writ-breaker-");
  const callLog = join(dir, "calls.log");
  writeFileSync(join(dir, "policies.writ"), `permit (principal, action, resource);\n`);
  writeFileSync(
    join(dir, "gateway.yaml"),
    `policies: [policies.writ]
stdio_principal: { uid: 'User::"alice"' }
limits: { call_timeout_ms: 300 }
breaker: { failure_threshold: 2, cool_down: ${COOL_DOWN_MS}ms }
upstreams:
  - name: crashy
    command: ${NODE}
    args: [${CRASHY}]
    env: { CRASHY_CALL_LOG: ${callLog} }
`,
  );
  let stderr = "";
  const transport = new StdioClientTransport({
    command: WRIT,
    args: ["serve", "--stdio", "--config", join(dir, "gateway.yaml")],
    cwd: dir,
    stderr: "pipe",
  });
  transport.stderr.on("data", (d) => (stderr += d));
  const client = new Client({ name: "breaker-e2e", version: "1.0.0" });
  const killer = setTimeout(() => transport.close(), TEST_TIMEOUT_MS - 5000);
  t.after(async () => {
    clearTimeout(killer);
    await transport.close().catch(() => {});
  });
  await client.connect(transport);
  const calls = () => (existsSync(callLog) ? readFileSync(callLog, "utf8").trim().split("\n").filter(Boolean) : []);

  // Closed: a call passes.
  let r = await call(client, "crashy__echo", { text: "one" });
  assert.ok(r.result, `echo failed: ${JSON.stringify(r.error)}`);

  // Two timeouts in a row (-32004) open the breaker.
  for (let i = 0; i < 2; ++i) {
    r = await call(client, "crashy__sleep", { ms: 5000 });
    assert.equal(r.error?.code, -32004, `timeout ${i}: ${JSON.stringify(r)}`);
  }
  const before = calls().length;
  assert.equal(before, 3, `calls that reached the server: ${calls()}`);

  // Open: refused at once with retry_after_ms, never forwarded.
  const t0 = Date.now();
  r = await call(client, "crashy__echo", { text: "refused" });
  assert.equal(r.error?.code, -32003, JSON.stringify(r));
  assert.match(r.error.message, /circuit open/);
  assert.equal(r.error.data?.upstream, "crashy");
  assert.ok(r.error.data?.retry_after_ms > 0 && r.error.data.retry_after_ms <= COOL_DOWN_MS,
    `retry_after_ms: ${r.error.data?.retry_after_ms}`);
  assert.ok(Date.now() - t0 < 1000, "the refusal was not immediate");
  await sleep(100);
  assert.equal(calls().length, before, `a refused call reached the server: ${calls()}`);

  // After cool_down a probe is let through; it succeeds and closes the breaker.
  await sleep(r.error.data.retry_after_ms + 100);
  r = await call(client, "crashy__echo", { text: "probe" });
  assert.ok(r.result, `probe refused: ${JSON.stringify(r.error)}`);
  assert.match(r.result.content[0].text, /^echo: probe/);
  r = await call(client, "crashy__echo", { text: "closed" });
  assert.ok(r.result, `closed breaker refused: ${JSON.stringify(r.error)}`);
  assert.equal(calls().filter((c) => c === "call echo").length, 3, `calls: ${calls()}`);
});
