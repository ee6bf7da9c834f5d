// Webhook notifications end to end (docs/approvals.md, "Notifications"): a tiny HTTP receiver
// on 127.0.0.1:0 in this test is the `hook` channel of `writ serve --stdio`. A policy's
// `notify("hook", "#sec")` obligation sends a `decision` event for the decided call, and a
// `require_approval` rule with `approvals.notify` sends `approval.requested` carrying the same
// approval id the held call's -32002 error names.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { join } from "node:path";
import { test } from "node:test";

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

import { NODE, REPO, TEST_TIMEOUT_MS, sleep, tempDir, waitFor } from "./lib.mjs";
import { writeFileSync } from "node:fs";

const WRIT = process.env.WRIT_BIN || join(REPO, "build/cli/writ");
const CRASHY = join(REPO, "tests/e2e/fixtures/crashy-server.mjs");

const POLICY = `
@id("everything")
permit (principal, action, resource);

@id("tell-security")
rule if resource == Tool::"crashy__echo"
then notify("hook", "#sec");

@id("sleep-needs-approval")
rule if resource == Tool::"crashy__sleep"
then require_approval(approvers: "ops", timeout: 10m);
`;


test("notify(...) obligations and approval requests reach the webhook", { timeout: TEST_TIMEOUT_MS }, async (t) => {
  // The receiver: records every POST (path, content type, parsed body) and answers 204.
  const got = [];
  const receiver = createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      let json = null;
      try {
        json = JSON.parse(body);
      } catch {
        /* recorded as null: the assertions below fail */
      }
      got.push({ method: req.method, url: req.url, type: req.headers["content-type"], json });
      res.writeHead(204).end();
    });
  });
  await new Promise((r) => receiver.listen(0, "127.0.0.1", r));
  t.after(() => receiver.close());
  const port = receiver.address().port;

  const dir = tempDir(t, "writ-notify-");
  writeFileSync(join(dir, "policies.writ"), POLICY);
  writeFileSync(
    join(dir, "gateway.yaml"),
    `policies: [policies.writ]
stdio_principal: { uid: 'User::"alice"' }
upstreams:
  - name: crashy
    command: ${NODE}
    args: [${CRASHY}]
approvals: { db: state.db, wait: 300ms, notify: { channel: hook, target: "#approvals" } }
notify:
  timeout: 2s
  retries: 0
  channels:
    hook: { url: "http://127.0.0.1:${port}/x" }
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
  const client = new Client({ name: "notify-e2e", version: "1.0.0" });
  const killer = setTimeout(() => transport.close(), TEST_TIMEOUT_MS - 5000);
  t.after(async () => {
    clearTimeout(killer);
    await transport.close().catch(() => {});
  });
  await client.connect(transport);

  // notify(...) obligation: the call passes and the channel hears about the decision.
  const r = await client.callTool({ name: "crashy__echo", arguments: { text: "hi" } }, undefined, { timeout: 15000 });
  assert.match(r.content[0].text, /^echo: hi/);
  const d = await waitFor(() => got.find((g) => g.json?.event === "decision"), `the decision event (log:\n${stderr})`);
  assert.equal(d.method, "POST");
  assert.equal(d.url, "/x");
  assert.match(d.type ?? "", /^application\/json/);
  assert.equal(d.json.channel, "hook");
  assert.equal(d.json.target, "#sec");
  assert.equal(d.json.tool, "crashy__echo");
  assert.equal(d.json.principal, 'User::"alice"');
  assert.equal(d.json.decision, "allow");
  assert.ok(d.json.decision_id, JSON.stringify(d.json));
  assert.match(d.json.text, /crashy__echo/);
  assert.ok(!Number.isNaN(Date.parse(d.json.time)), `time: ${d.json.time}`);

  // require_approval: the call is held (-32002 with the approval id) and the approvals
  // channel is told, with the same id.
  let held;
  try {
    await client.callTool({ name: "crashy__sleep", arguments: { ms: 1 } }, undefined, { timeout: 15000 });
    assert.fail("a call that needs approval passed");
  } catch (e) {
    held = e;
  }
  assert.equal(held.code, -32002, String(held));
  const id = held.data?.approval_id;
  assert.match(id ?? "", /^ap_/, JSON.stringify(held.data));
  const a = await waitFor(() => got.find((g) => g.json?.event === "approval.requested"), "the approval.requested event");
  assert.equal(a.json.channel, "hook");
  assert.equal(a.json.target, "#approvals");
  assert.equal(a.json.approval?.id, id);
  assert.equal(a.json.approval?.state, "pending");
  assert.match(a.json.text, new RegExp(id));
  // The sleep call was not a notify(...) call: exactly one decision event.
  assert.equal(got.filter((g) => g.json?.event === "decision").length, 1, JSON.stringify(got));
});
