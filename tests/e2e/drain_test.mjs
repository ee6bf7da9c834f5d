// Graceful shutdown over Streamable HTTP: `writ serve --config X` gets SIGTERM while a call is
// in flight. New requests get 503 with JSON-RPC error -32006, the in-flight call still
// completes with its result, then the gateway exits 0. Raw fetch (one JSON-RPC message per
// POST), so the test sees the HTTP status codes. Fixture: tests/e2e/fixtures/crashy-server.mjs.
//
// Env: WRIT_BIN, WRIT_E2E_ALLOW_MISSING_GATEWAY (as gateway_test.mjs).

import assert from "node:assert/strict";
import { existsSync, writeFileSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { test } from "node:test";
import { NODE, REPO, TEST_TIMEOUT_MS, startHttpGateway, tempDir } from "./lib.mjs";

const ALLOW_MISSING = process.env.WRIT_E2E_ALLOW_MISSING_GATEWAY === "1";
const bin = (() => {
  const b = process.env.WRIT_BIN || "build/cli/writ";
  return isAbsolute(b) ? b : resolve(REPO, b);
})();
const q = (s) => JSON.stringify(s);

test("SIGTERM over HTTP: 503 for new requests, the in-flight call finishes, exit 0", { timeout: TEST_TIMEOUT_MS }, async (t) => {
  if (!existsSync(bin)) {
    if (ALLOW_MISSING) return t.skip(`${bin} does not exist`);
    assert.fail(`${bin} does not exist (build writ, or set WRIT_BIN)`);
  }
  const dir = tempDir(t);
  writeFileSync(join(dir, "p.writ"), `@id("crashy-all")\npermit (principal, action, resource in Server::"crashy");\n`);
  writeFileSync(
    join(dir, "writ.yaml"),
    `policies: ${q(join(dir, "p.writ"))}
upstreams:
  - name: crashy
    command: ${q(NODE)}
    args: [${q(join(REPO, "tests/e2e/fixtures/crashy-server.mjs"))}]
http: { listen: "127.0.0.1:0", allow_anonymous: true }
shutdown: { drain_timeout: 20s }
`,
  );
  const gw = await startHttpGateway(bin, join(dir, "writ.yaml"));
  const exited = new Promise((r) => gw.child.on("exit", (code, signal) => r({ code, signal })));
  t.after(() => gw.child.kill("SIGKILL"));
  const url = `http://127.0.0.1:${gw.port}/mcp`;
  let session;
  const post = async (msg) => {
    const headers = { "content-type": "application/json", accept: "application/json, text/event-stream" };
    if (session) headers["mcp-session-id"] = session;
    const r = await fetch(url, { method: "POST", headers, body: JSON.stringify(msg), signal: AbortSignal.timeout(30000) });
    const text = await r.text();
    return { status: r.status, headers: r.headers, body: text ? JSON.parse(text) : null };
  };

  const init = await post({
    jsonrpc: "2.0", id: 1, method: "initialize",
    params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "drain-test", version: "1" } },
  });
  assert.equal(init.status, 200, JSON.stringify(init.body));
  session = init.headers.get("mcp-session-id");
  assert.ok(session);
  assert.equal((await post({ jsonrpc: "2.0", method: "notifications/initialized" })).status, 202);
  const list = await post({ jsonrpc: "2.0", id: 2, method: "tools/list" });
  assert.ok(list.body.result.tools.some((x) => x.name === "crashy__sleep"), JSON.stringify(list.body));

  // A call that takes 1.5 s, then SIGTERM while it runs.
  const slow = post({ jsonrpc: "2.0", id: 3, method: "tools/call", params: { name: "crashy__sleep", arguments: { ms: 1500 } } });
  await new Promise((r) => setTimeout(r, 400));
  gw.child.kill("SIGTERM");
  await new Promise((r) => setTimeout(r, 200));
  const late = await post({ jsonrpc: "2.0", id: 4, method: "tools/call", params: { name: "crashy__echo", arguments: { text: "late" } } });
  assert.equal(late.status, 503, JSON.stringify(late.body));
  assert.equal(late.body.error.code, -32006);
  assert.match(late.body.error.message, /shutting down/);

  const done = await slow;
  assert.equal(done.status, 200, JSON.stringify(done.body));
  assert.equal(done.body.id, 3);
  assert.equal(done.body.result.content[0].text, "slept 1500");
  const { code } = await exited;
  assert.equal(code, 0, gw.stderr());
  assert.match(gw.stderr(), /draining/);
});
