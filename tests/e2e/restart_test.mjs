// An upstream that crashes mid-call, through `writ serve --stdio`, with the official SDK
// client: the call gets a clean JSON-RPC error (-32003), the gateway restarts the upstream
// with backoff (upstreams[].restart), and a later call on the same session succeeds against
// the new process. Fixture: tests/e2e/fixtures/crashy-server.mjs.
//
// Env: WRIT_BIN, WRIT_E2E_ALLOW_MISSING_GATEWAY (as gateway_test.mjs).

import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { McpError } from "@modelcontextprotocol/sdk/types.js";
import { NODE, REPO, REQUEST_TIMEOUT_MS, TEST_TIMEOUT_MS, tempDir } from "./lib.mjs";

const ALLOW_MISSING = process.env.WRIT_E2E_ALLOW_MISSING_GATEWAY === "1";
const bin = (() => {
  const b = process.env.WRIT_BIN || "build/cli/writ";
  return isAbsolute(b) ? b : resolve(REPO, b);
})();
const q = (s) => JSON.stringify(s);

test("an upstream crash mid-call: clean error, restart, later calls work", { timeout: TEST_TIMEOUT_MS }, async (t) => {
  if (!existsSync(bin)) {
    if (ALLOW_MISSING) return t.skip(`${bin} does not exist`);
    assert.fail(`${bin} does not exist (build writ, or set WRIT_BIN)`);
  }
  const dir = tempDir(t);
  const crashyLog = join(dir, "crashy.log");
  writeFileSync(join(dir, "p.writ"), `@id("crashy-all")\npermit (principal, action, resource in Server::"crashy");\n`);
  writeFileSync(
    join(dir, "writ.yaml"),
    `policies: ${q(join(dir, "p.writ"))}
upstreams:
  - name: crashy
    command: ${q(NODE)}
    args: [${q(join(REPO, "tests/e2e/fixtures/crashy-server.mjs"))}]
    env: { CRASHY_LOG: ${q(crashyLog)} }
    restart: { initial_backoff: 100ms, max_restarts: 3 }
`,
  );
  const transport = new StdioClientTransport({
    command: bin,
    args: ["serve", "--stdio", "--config", join(dir, "writ.yaml")],
    cwd: REPO,
    stderr: "pipe",
  });
  let stderr = "";
  transport.stderr?.on("data", (d) => (stderr += d));
  const client = new Client({ name: "writ-e2e-restart", version: "0.1.0" }, { capabilities: {} });
  const opts = { timeout: REQUEST_TIMEOUT_MS, maxTotalTimeout: REQUEST_TIMEOUT_MS };
  t.after(async () => {
    const pid = transport.pid;
    await Promise.race([client.close().catch(() => {}), new Promise((r) => setTimeout(r, 5000).unref())]);
    if (pid) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        /* gone */
      }
    }
  });
  await client.connect(transport, opts);
  const names = (await client.listTools({}, opts)).tools.map((x) => x.name).sort();
  assert.deepEqual(names, ["crashy__crash", "crashy__echo", "crashy__sleep"]);
  const first = await client.callTool({ name: "crashy__echo", arguments: { text: "before" } }, undefined, opts);
  const firstPid = /pid (\d+)/.exec(first.content[0].text)[1];

  // The crash: a JSON-RPC error from the gateway, not a hang or a dropped session.
  await assert.rejects(
    client.callTool({ name: "crashy__crash", arguments: {} }, undefined, opts),
    (e) => {
      assert.ok(e instanceof McpError, String(e));
      assert.equal(e.code, -32003, e.message);
      assert.match(e.message, /crashy.*exited with status 3/);
      assert.equal(e.data?.upstream, "crashy");
      return true;
    },
  );

  // After the backoff the upstream is back (meanwhile calls get -32003 "restarting").
  let after;
  const deadline = Date.now() + 15000;
  while (!after && Date.now() < deadline) {
    try {
      after = await client.callTool({ name: "crashy__echo", arguments: { text: "after" } }, undefined, opts);
    } catch (e) {
      assert.ok(e instanceof McpError && e.code === -32003, `unexpected error: ${e}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  assert.ok(after, `the upstream never came back; gateway stderr:\n${stderr}`);
  const text = after.content[0].text;
  assert.match(text, /^echo: after \(pid \d+\)$/);
  assert.notEqual(/pid (\d+)/.exec(text)[1], firstPid, "answered by a new process");
  const starts = readFileSync(crashyLog, "utf8").trim().split("\n");
  assert.equal(starts.length, 2, `one restart: ${starts}`);
  assert.match(stderr, /upstream restarted/);
  // The restarted upstream's tools are listed again.
  const again = (await client.listTools({}, opts)).tools.map((x) => x.name).sort();
  assert.deepEqual(again, ["crashy__crash", "crashy__echo", "crashy__sleep"]);
});
