// The official SDK client over Streamable HTTP (StreamableHTTPClientTransport) through
// `writ serve --config X` (no --stdio) to the demo finance server, with the quickstart
// policies. The gateway listens on 127.0.0.1:0 and prints the port on stderr.
//
// Env: WRIT_BIN, WRIT_E2E_ALLOW_MISSING_GATEWAY=1 (as gateway_test.mjs).

import assert from "node:assert/strict";
import { existsSync, writeFileSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { REPO, SERVERS, TEST_TIMEOUT_MS, run, startHttpGateway, tempDir } from "./lib.mjs";

const REFUND_REASON = "refunds above 50,000 need the finance desk";
const ALLOW_MISSING = process.env.WRIT_E2E_ALLOW_MISSING_GATEWAY === "1";
const q = (s) => JSON.stringify(s);

function writBin() {
  const bin = process.env.WRIT_BIN || "build/cli/writ";
  return isAbsolute(bin) ? bin : resolve(REPO, bin);
}

// Is the HTTP transport there? `writ serve --help` must mention it.
async function probe() {
  const bin = writBin();
  if (!existsSync(bin)) return { available: false, reason: `${bin} does not exist` };
  const r = await run(bin, ["serve", "--help"], { timeoutMs: 10000 });
  if (r.code !== 0 || !/Streamable HTTP/.test(r.stdout + r.stderr)) {
    return { available: false, reason: "`writ serve` has no HTTP transport in this build" };
  }
  return { available: true, bin };
}

// Starts the gateway; resolves {child, port, stderr()} once it prints its port.
test("SDK client over Streamable HTTP through writ serve", { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const p = await probe();
  if (!p.available) {
    if (ALLOW_MISSING) return t.skip(p.reason);
    assert.fail(p.reason);
  }
  const dir = tempDir(t, "writ-e2e-http-");
  const [financeCmd, ...financeArgs] = SERVERS.finance();
  const config = join(dir, "gateway.yaml");
  writeFileSync(
    config,
    `policies: [${q(join(REPO, "examples/quickstart"))}]
stdio_principal:
  uid: ${q('User::"sam"')}
  attrs: {"mfa": true}
  parents: [${q('Role::"support"')}]
upstreams:
  - name: stripe
    command: ${q(financeCmd)}
    args: [${financeArgs.map(q).join(", ")}]
http:
  listen: "127.0.0.1:0"
  allow_anonymous: true
`,
  );
  const gw = await startHttpGateway(p.bin, config);
  const exited = new Promise((r) => gw.child.on("exit", (code, signal) => r({ code, signal })));
  t.after(() => gw.child.kill("SIGKILL"));

  const transport = new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${gw.port}/mcp`));
  const client = new Client({ name: "writ-e2e-http", version: "1.0.0" });
  await client.connect(transport);
  assert.ok(transport.sessionId, "no session id");
  assert.equal(client.getServerVersion()?.name, "writ");

  const { tools } = await client.listTools();
  const names = tools.map((x) => x.name);
  assert.ok(names.includes("stripe__invoice_get"), names.join(","));
  assert.ok(names.includes("stripe__refund_create"), names.join(","));
  assert.ok(!names.includes("stripe__customer_export"), names.join(","));

  const ok = await client.callTool({ name: "stripe__invoice_get", arguments: { invoice_id: "in_1001" } });
  assert.ok(!ok.isError, JSON.stringify(ok));
  assert.match(JSON.stringify(ok.content), /in_1001/);

  await assert.rejects(
    client.callTool({ name: "stripe__refund_create", arguments: { amount: 70000, currency: "eur" } }),
    (e) => String(e.message).includes(REFUND_REASON),
  );

  await transport.terminateSession();
  await client.close();

  gw.child.kill("SIGTERM");
  const { code } = await exited;
  assert.equal(code, 0, gw.stderr());
});
