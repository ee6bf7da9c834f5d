// Governance end to end (docs/governance.md): the official SDK client talks to
// `writ serve --stdio` in front of a deliberately malicious MCP server
// (fixtures/malicious-server.mjs), and every protection is checked from the agent's side and
// in the audit trail:
//   - a poisoned tool (hidden instructions in its description) is hidden by policy;
//   - the upstream credential (${secret:NAME}) reaches the server but never the agent;
//   - PII and secrets in results are redacted by the policy's redact(...) obligation;
//   - an SSN in the arguments is blocked before it reaches the server (context.dlp.args);
//   - a tool that lies about being read-only is classified destructive and held for approval;
//     an approver approves with `writ approvals approve`; only the identical retry passes, once;
//   - rate_limit(...) denies past the limit with retry_after_ms;
//   - the kill switch (`writ kill`) denies everything for a server at once, then releases;
//   - a tool whose definition changes mid-session (rug pull) is hidden and denied (writ.lock);
//   - `writ audit verify` accepts the trail.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

import { NODE, REPO, TEST_TIMEOUT_MS, run, tempDir } from "./lib.mjs";

const WRIT = process.env.WRIT_BIN || join(REPO, "build/cli/writ");
const EVIL = join(REPO, "tests/e2e/fixtures/malicious-server.mjs");
const TOKEN = "evil-upstream-credential-7f3a91c2";
const ADMIN_TOKEN = "admin-token-for-the-e2e-test-0123456789";

const POLICY = `
@id("evil-tools")
permit (principal, action == Action::"tools/call", resource in Server::"evil")
unless { resource.poisoning.contains("instruction_tag") };

@id("no-ssn-in-args")
forbid (principal, action, resource)
when { context.dlp.args.contains("ssn") }
then reason("SSNs must not be sent to tools");

@id("mask-customer-data")
rule if resource == Tool::"evil__customer_lookup"
then redact("email", "ssn", "credit_card", "iban", "phone", "aws_access_key", "github_token");

@id("destructive-needs-approval")
rule if call.intent == "destructive"
then require_approval(approvers: "dba", timeout: 10m);

@id("search-budget")
rule if resource == Tool::"evil__search"
then rate_limit(key: principal, limit: 2, per: 1h);
`;

function setup(t) {
  const dir = tempDir(t, "writ-gov-");
  writeFileSync(join(dir, "policies.writ"), POLICY);
  writeFileSync(join(dir, "secrets.yaml"), `EVIL_API_TOKEN: ${TOKEN}\n`);
  chmodSync(join(dir, "secrets.yaml"), 0o600);
  writeFileSync(join(dir, "admin.token"), ADMIN_TOKEN + "\n");
  chmodSync(join(dir, "admin.token"), 0o600);
  writeFileSync(
    join(dir, "gateway.yaml"),
    `policies: [policies.writ]
stdio_principal: { uid: 'User::"alice"' }
upstreams:
  - name: evil
    command: ${NODE}
    args: [${EVIL}]
    env:
      EVIL_API_TOKEN: \${secret:EVIL_API_TOKEN}
      EVIL_CALL_LOG: ${join(dir, "calls.jsonl")}
secrets: { file: secrets.yaml }
audit: { path: audit.jsonl }
approvals: { db: state.db, wait: 1500ms }
admin: { listen: 127.0.0.1:0, token_file: admin.token }
lock: { file: writ.lock, on_drift: hide, on_new: hide }
`,
  );
  return dir;
}

const calls = (dir) =>
  existsSync(join(dir, "calls.jsonl"))
    ? readFileSync(join(dir, "calls.jsonl"), "utf8").trim().split("\n").filter(Boolean).map(JSON.parse)
    : [];

// Calls a tool; resolves {result} or {error: {code, message, data}} (never throws for a
// JSON-RPC error answer).
async function call(client, name, args = {}) {
  try {
    return { result: await client.callTool({ name, arguments: args }, undefined, { timeout: 15000 }) };
  } catch (e) {
    if (typeof e?.code === "number") return { error: { code: e.code, message: e.message, data: e.data } };
    throw e;
  }
}

const textOf = (r) => (r.result?.content ?? []).map((c) => c.text ?? c.resource?.text ?? "").join("\n");

test("governance through the gateway against a malicious server", { timeout: TEST_TIMEOUT_MS * 2 }, async (t) => {
  const dir = setup(t);
  const cfg = join(dir, "gateway.yaml");

  // Pin the tool definitions before the session (the server has not pulled the rug yet).
  const lock = await run(WRIT, ["lock", "--config", cfg, "-o", join(dir, "writ.lock")], { timeoutMs: 30000 });
  assert.equal(lock.code, 0, `writ lock failed:\n${lock.stderr}`);

  let stderr = "";
  const transport = new StdioClientTransport({ command: WRIT, args: ["serve", "--stdio", "--config", cfg], stderr: "pipe" });
  transport.stderr.on("data", (d) => (stderr += d));
  const client = new Client({ name: "governance-e2e", version: "1.0.0" });
  const killer = setTimeout(() => transport.close(), TEST_TIMEOUT_MS * 2 - 5000);
  t.after(async () => {
    clearTimeout(killer);
    await transport.close().catch(() => {});
  });
  await client.connect(transport);
  const admin = () => {
    const m = stderr.match(/admin API on (127\.0\.0\.1:\d+)/);
    assert.ok(m, `no admin address in the gateway's log:\n${stderr}`);
    return `http://${m[1]}`;
  };
  const cli = (...args) =>
    run(WRIT, [...args, "--admin", admin(), "--token-file", join(dir, "admin.token")], { timeoutMs: 20000 });

  // 1. The poisoned tool is hidden; the lying destructive tool is listed (approval allows).
  const names = (await client.listTools()).tools.map((x) => x.name);
  assert.ok(!names.includes("evil__weather"), `poisoned tool listed: ${names}`);
  for (const n of ["evil__notes_read", "evil__debug_env", "evil__customer_lookup", "evil__drop_table"])
    assert.ok(names.includes(n), `${n} missing from ${names}`);
  const poisoned = await call(client, "evil__weather", { city: "Paris" });
  assert.equal(poisoned.error?.code, -32001, JSON.stringify(poisoned));

  // 2. The server sees its credential; the agent never does.
  const env = await call(client, "evil__debug_env");
  assert.ok(env.result, JSON.stringify(env));
  assert.ok(!textOf(env).includes(TOKEN), "the upstream credential reached the agent");
  assert.match(textOf(env), /EVIL_API_TOKEN=\[REDACTED:secret:EVIL_API_TOKEN\]/);
  // ... nor the gateway's log, where the server's stderr goes.
  assert.ok(!stderr.includes(TOKEN), "the upstream credential reached the gateway's log");
  assert.match(stderr, /EVIL_API_TOKEN=\[REDACTED:secret:EVIL_API_TOKEN\]/);

  // 3. PII and secrets in results are masked per the redact obligation.
  const pii = await call(client, "evil__customer_lookup", { id: "c-42" });
  const shown = textOf(pii) + JSON.stringify(pii.result?.structuredContent ?? {});
  for (const leak of ["jane.roe@example.com", "123-45-6789", "4111 1111 1111 1111", "DE89370400440532013000",
                      "AKIAIOSFODNN7EXAMPLE", "ghp_abcdefghijklmnopqrstuvwxyz0123456789"])
    assert.ok(!shown.includes(leak), `${leak} leaked: ${shown}`);
  assert.match(shown, /\[REDACTED:email\]/);
  assert.match(shown, /\[REDACTED:ssn\]/);

  // 4. An SSN in the arguments is blocked before the server sees it.
  const ssn = await call(client, "evil__customer_lookup", { id: "123-45-6789" });
  assert.equal(ssn.error?.code, -32001, JSON.stringify(ssn));
  assert.match(ssn.error.message, /SSNs must not be sent/);
  assert.ok(!calls(dir).some((c) => JSON.stringify(c).includes("123-45-6789")), "the SSN reached the server");

  // 5. drop_table claims readOnlyHint (untrusted): destructive -> held; approve; retry passes once.
  const held = await call(client, "evil__drop_table", { table: "users" });
  assert.equal(held.error?.code, -32002, JSON.stringify(held));
  const id = held.error.data?.approval_id;
  assert.match(id ?? "", /^ap_/, JSON.stringify(held.error));
  assert.ok(!calls(dir).some((c) => c.tool === "drop_table"), "a held call was forwarded");
  const list = await cli("approvals", "list", "--format", "json");
  assert.equal(list.code, 0, list.stderr);
  assert.ok(list.stdout.includes(id), list.stdout);
  const ok = await cli("approvals", "approve", id, "--note", "e2e");
  assert.equal(ok.code, 0, ok.stderr + ok.stdout);
  const other = await call(client, "evil__drop_table", { table: "payments" });
  assert.equal(other.error?.code, -32002, "an approval of one call approved another");
  const retry = await call(client, "evil__drop_table", { table: "users" });
  assert.ok(retry.result, JSON.stringify(retry));
  assert.match(textOf(retry), /dropped users/);
  const again = await call(client, "evil__drop_table", { table: "users" });
  assert.equal(again.error?.code, -32002, "an approval was used twice");

  // 6. Rate limit: two searches per hour.
  assert.ok((await call(client, "evil__search", { q: "a" })).result);
  assert.ok((await call(client, "evil__search", { q: "b" })).result);
  const limited = await call(client, "evil__search", { q: "c" });
  assert.equal(limited.error?.code, -32001, JSON.stringify(limited));
  assert.match(limited.error.message, /rate limit/);
  assert.ok(limited.error.data?.retry_after_ms > 0, JSON.stringify(limited.error));

  // 7. Kill switch for the server, then release.
  const kill = await cli("kill", "engage", "server:evil", "--reason", "incident 42");
  assert.equal(kill.code, 0, kill.stderr + kill.stdout);
  const killed = await call(client, "evil__notes_read", { id: "n1" });
  assert.equal(killed.error?.code, -32001, JSON.stringify(killed));
  assert.match(killed.error.message, /incident 42/);
  const release = await cli("kill", "release", "server:evil");
  assert.equal(release.code, 0, release.stderr + release.stdout);
  assert.ok((await call(client, "evil__notes_read", { id: "n1" })).result);

  // 8. Rug pull: the definition changes mid-session; the tool is hidden and its calls denied.
  assert.ok((await call(client, "evil__arm_rug_pull")).result);
  const after = (await client.listTools()).tools.map((x) => x.name);
  assert.ok(!after.includes("evil__notes_read"), `drifted tool still listed: ${after}`);
  const pulled = await call(client, "evil__notes_read", { id: "n1", context: "x" });
  assert.equal(pulled.error?.code, -32001, JSON.stringify(pulled));
  assert.match(pulled.error.message, /lockfile/);

  await transport.close();

  // 9. The audit trail verifies and says why.
  const verify = await run(WRIT, ["audit", "verify", join(dir, "audit.jsonl")], { timeoutMs: 20000 });
  assert.equal(verify.code, 0, verify.stdout + verify.stderr);
  const audit = readFileSync(join(dir, "audit.jsonl"), "utf8");
  assert.ok(!audit.includes(TOKEN), "the credential reached the audit trail");
  assert.match(audit, /"intent":\{"call":"destructive"/);
  assert.match(audit, /"dlp_args":\["ssn"\]/);
});
