// Proves the harness (client.mjs on the official SDK) against the real MCP servers directly,
// with no gateway in between: if these fail, gateway_test.mjs failures mean nothing.
// Run: node --test tests/e2e/   (or scripts/e2e.sh)

import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { SERVERS, TEST_TIMEOUT_MS, runClient, tempDir, text, toolNames } from "./lib.mjs";

const opts = { timeout: TEST_TIMEOUT_MS };

test("server-everything: initialize, tools/list, echo", opts, async (t) => {
  const r = await runClient(t, SERVERS.everything(), [
    { name: "echo", tool: "echo", arguments: { message: "hello writ" }, expect: "ok" },
    { name: "echo-bad-args", tool: "echo", arguments: { message: 42 }, expect: "tool_error" },
  ]);
  assert.equal(r.code, 0, r.describe());
  assert.equal(r.step("initialize").ok, true);
  assert.equal(r.step("initialize").result.serverInfo.name, "mcp-servers/everything");
  const names = toolNames(r.step("tools/list"));
  assert.ok(names.includes("echo"), `echo not listed: ${names}`);
  assert.ok(names.includes("get-sum"), `get-sum not listed: ${names}`);
  assert.equal(r.step("echo").ok, true, r.describe());
  assert.equal(text(r.step("echo")), "Echo: hello writ");
  assert.equal(r.step("echo-bad-args").ok, false);
  assert.deepEqual(r.step("done"), { step: "done", ok: true, result: { expectation_failures: 0 } });
});

test("server-filesystem: reads a file in its root, refuses one outside", opts, async (t) => {
  const dir = tempDir(t);
  const root = join(dir, "files");
  mkdirSync(root);
  writeFileSync(join(root, "notes.txt"), "quarterly numbers: 42\n");
  const r = await runClient(t, SERVERS.filesystem(root), [
    { name: "read", tool: "read_text_file", arguments: { path: join(root, "notes.txt") }, expect: "ok" },
    { name: "outside", tool: "read_text_file", arguments: { path: join(dir, "elsewhere.txt") }, expect: "tool_error" },
  ], { dir });
  assert.equal(r.code, 0, r.describe());
  const names = toolNames(r.step("tools/list"));
  for (const n of ["read_text_file", "write_file", "list_directory"]) assert.ok(names.includes(n), `${n} not listed: ${names}`);
  assert.equal(text(r.step("read")), "quarterly numbers: 42\n");
  assert.match(text(r.step("outside")), /outside allowed directories/);
});

test("server-memory: create an entity, read it back from the graph", opts, async (t) => {
  const dir = tempDir(t);
  const file = join(dir, "memory.jsonl");
  const r = await runClient(
    t,
    SERVERS.memory(),
    [
      {
        name: "create",
        tool: "create_entities",
        arguments: { entities: [{ name: "writ", entityType: "project", observations: ["an MCP gateway"] }] },
        expect: "ok",
      },
      { name: "read", tool: "read_graph", arguments: {}, expect: "ok" },
    ],
    { dir, env: { ...process.env, MEMORY_FILE_PATH: file } },
  );
  assert.equal(r.code, 0, r.describe());
  assert.match(text(r.step("read")), /an MCP gateway/);
  assert.ok(existsSync(file), "memory server did not write MEMORY_FILE_PATH");
});

test("finance-server: every tool, annotations, call log", opts, async (t) => {
  const dir = tempDir(t);
  const log = join(dir, "finance-calls.jsonl");
  const r = await runClient(
    t,
    SERVERS.finance(),
    [
      { name: "refund", tool: "refund_create", arguments: { amount: 1200, currency: "EUR", reason: "duplicate" }, expect: "ok" },
      { name: "refund-string-amount", tool: "refund_create", arguments: { amount: "70000", currency: "eur" }, expect: "tool_error" },
      { name: "invoice", tool: "invoice_get", arguments: { invoice_id: "in_1001" }, expect: "ok" },
      { name: "invoice-missing", tool: "invoice_get", arguments: { invoice_id: "in_9999" }, expect: "tool_error" },
      { name: "export", tool: "customer_export", arguments: { limit: 3 }, expect: "ok" },
    ],
    { dir, env: { ...process.env, FINANCE_CALL_LOG: log } },
  );
  assert.equal(r.code, 0, r.describe());

  const tools = Object.fromEntries(r.step("tools/list").result.tools.map((tool) => [tool.name, tool]));
  assert.deepEqual(Object.keys(tools).sort(), ["customer_export", "invoice_get", "refund_create"]);
  assert.equal(tools.refund_create.annotations.destructiveHint, true);
  assert.equal(tools.invoice_get.annotations.readOnlyHint, true);
  assert.equal(tools.refund_create.inputSchema.properties.amount.type, "integer");
  assert.deepEqual(tools.refund_create.inputSchema.required, ["amount", "currency"]);
  assert.equal(tools.customer_export.inputSchema.properties.limit.type, "integer");

  assert.deepEqual(JSON.parse(text(r.step("refund"))), {
    refund_id: "re_000001", amount: 1200, currency: "eur", reason: "duplicate", status: "succeeded",
  });
  assert.deepEqual(JSON.parse(text(r.step("invoice"))), {
    invoice_id: "in_1001", customer: "cus_0001", amount: 12900, currency: "eur", status: "paid",
  });
  const exported = JSON.parse(text(r.step("export")));
  assert.equal(exported.count, 3);
  assert.equal(exported.customers[0].email, "ada.lovelace1@example.com");

  // Calls rejected by the SDK's schema validation never reach the handler; the rest are logged.
  const logged = readFileSync(log, "utf8").trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(logged.map((l) => l.tool), ["refund_create", "invoice_get", "invoice_get", "customer_export"]);
  assert.deepEqual(logged[0].arguments, { amount: 1200, currency: "EUR", reason: "duplicate" });
});

test("client.mjs: exits 2 when the command does not speak MCP, 1 on a failed expectation", opts, async (t) => {
  const notMcp = await runClient(t, [process.execPath, "-e", "process.stdout.write('hello\\n'); setTimeout(() => {}, 1000)"], []);
  assert.equal(notMcp.code, 2, notMcp.describe());
  assert.equal(notMcp.step("initialize").ok, false);

  const missing = await runClient(t, ["/nonexistent/writ-e2e-no-such-binary"], []);
  assert.equal(missing.code, 2, missing.describe());

  const wrong = await runClient(t, SERVERS.finance(), [
    { name: "invoice", tool: "invoice_get", arguments: { invoice_id: "in_1001" }, expect: "rpc_error" },
  ]);
  assert.equal(wrong.code, 1, wrong.describe());
  assert.equal(wrong.step("invoice").expected, "rpc_error");
  assert.equal(wrong.step("done").ok, false);
});
