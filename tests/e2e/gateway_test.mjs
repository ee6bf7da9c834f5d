// The direct_test.mjs scenarios THROUGH the gateway: `writ serve --stdio --config X` with the
// real servers as upstreams (finance-server as `stripe`, server-everything as `everything`,
// server-filesystem as `fs`) and the policies of examples/quickstart/ plus
// tests/e2e/policies/. One gateway run; the subtests assert on its transcript.
//
// Env:
//   WRIT_BIN                          the writ binary (default build/cli/writ; relative paths
//                                     are taken from the repository root)
//   WRIT_E2E_ALLOW_MISSING_GATEWAY=1  if `writ serve --stdio` is unavailable, SKIP with the
//                                     reason instead of failing (for branches without the
//                                     gateway). Without it, a missing gateway is a failure.

import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { test } from "node:test";
import { REPO, SERVERS, TEST_TIMEOUT_MS, run, runClient, tempDir, text, toolNames } from "./lib.mjs";

const REFUND_REASON = "refunds above 50,000 need the finance desk";
const ALLOW_MISSING = process.env.WRIT_E2E_ALLOW_MISSING_GATEWAY === "1";

function writBin() {
  const bin = process.env.WRIT_BIN || "build/cli/writ";
  return isAbsolute(bin) ? bin : resolve(REPO, bin);
}

// Is `writ serve --stdio` there? The exit code of `writ serve --help` alone is not enough:
// CLI11 prints the top-level help and exits 0 when `serve` is not a subcommand, so the help
// text must also document --stdio.
async function probeGateway() {
  const bin = writBin();
  if (!existsSync(bin)) return { available: false, reason: `${bin} does not exist (build writ, or set WRIT_BIN)` };
  const r = await run(bin, ["serve", "--help"], { timeoutMs: 10000 });
  if (r.spawnError) return { available: false, reason: `cannot run ${bin}: ${r.spawnError.message}` };
  if (r.code !== 0) {
    return { available: false, reason: `\`${bin} serve --help\` exited ${r.code ?? r.signal}: no \`writ serve\` in this build` };
  }
  if (!/--stdio\b/.test(r.stdout + r.stderr)) {
    return { available: false, reason: `\`${bin} serve --help\` does not document --stdio: no \`writ serve --stdio\` in this build` };
  }
  return { available: true, bin };
}

const q = (s) => JSON.stringify(s); // a JSON string is a valid YAML double-quoted scalar

// The gateway config (docs: tests/e2e/README.md). Adjust here if the config format moves.
function writeGatewayConfig(dir, { fsRoot, financeLog }) {
  const [everythingCmd, ...everythingArgs] = SERVERS.everything();
  const [fsCmd, ...fsArgs] = SERVERS.filesystem(fsRoot);
  const [financeCmd, ...financeArgs] = SERVERS.finance();
  const list = (xs) => `[${xs.map(q).join(", ")}]`;
  const yaml = `# written by tests/e2e/gateway_test.mjs
policies:
  - ${q(join(REPO, "examples/quickstart"))}
  - ${q(join(REPO, "tests/e2e/policies"))}
stdio_principal:
  uid: ${q('User::"sam"')}
  attrs: {"mfa": true}
  parents: [${q('Role::"support"')}]
upstreams:
  - name: stripe
    command: ${q(financeCmd)}
    args: ${list(financeArgs)}
    env: {"FINANCE_CALL_LOG": ${q(financeLog)}}
  - name: everything
    command: ${q(everythingCmd)}
    args: ${list(everythingArgs)}
    env: {}
  - name: fs
    command: ${q(fsCmd)}
    args: ${list(fsArgs)}
    env: {}
`;
  const path = join(dir, "writ.yaml");
  writeFileSync(path, yaml);
  return path;
}

const gateway = await probeGateway();

test("through the gateway (writ serve --stdio)", { timeout: TEST_TIMEOUT_MS }, async (t) => {
  if (!gateway.available) {
    if (ALLOW_MISSING) {
      t.skip(`writ serve --stdio unavailable: ${gateway.reason} (WRIT_E2E_ALLOW_MISSING_GATEWAY=1)`);
      return;
    }
    assert.fail(
      `writ serve --stdio unavailable: ${gateway.reason}. The gateway end-to-end tests need it; ` +
        "set WRIT_E2E_ALLOW_MISSING_GATEWAY=1 to skip them on a branch without the gateway.",
    );
  }

  const dir = tempDir(t);
  const fsRoot = join(dir, "files");
  mkdirSync(join(fsRoot, ".ssh"), { recursive: true });
  writeFileSync(join(fsRoot, "notes.txt"), "quarterly numbers: 42\n");
  writeFileSync(join(fsRoot, ".ssh/id_rsa"), "-----BEGIN FAKE KEY-----\n");
  const financeLog = join(dir, "finance-calls.jsonl");
  writeFileSync(financeLog, "");
  const config = writeGatewayConfig(dir, { fsRoot, financeLog });

  const r = await runClient(
    t,
    [gateway.bin, "serve", "--stdio", "--config", config],
    [
      { name: "invoice", tool: "stripe__invoice_get", arguments: { invoice_id: "in_1001" }, expect: "ok" },
      { name: "echo", tool: "everything__echo", arguments: { message: "hello writ" }, expect: "ok" },
      { name: "read", tool: "fs__read_text_file", arguments: { path: join(fsRoot, "notes.txt") }, expect: "ok" },
      { name: "read-credentials", tool: "fs__read_text_file", arguments: { path: join(fsRoot, ".ssh/id_rsa") }, expect: "rpc_error" },
      { name: "big-refund", tool: "stripe__refund_create", arguments: { amount: 70000, currency: "eur" }, expect: "rpc_error" },
      { name: "small-refund", tool: "stripe__refund_create", arguments: { amount: 1200, currency: "eur" }, expect: "rpc_error" },
      { name: "hidden-export", tool: "stripe__customer_export", arguments: { limit: 5 }, expect: "rpc_error" },
    ],
    { dir, env: { ...process.env, FINANCE_CALL_LOG: financeLog } },
  );
  const transcript = r.describe();
  const logged = () =>
    readFileSync(financeLog, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));

  await t.test("the session works and every expectation held", () => {
    assert.equal(r.code, 0, transcript);
    assert.equal(r.step("initialize").ok, true, transcript);
  });

  await t.test("tools/list shows namespaced tools and hides what the principal may not use", () => {
    const names = toolNames(r.step("tools/list"));
    for (const n of names) assert.match(n, /^(stripe|everything|fs)__/, `not namespaced: ${n}`);
    for (const n of ["stripe__invoice_get", "stripe__refund_create", "everything__echo", "fs__read_text_file"]) {
      assert.ok(names.includes(n), `${n} missing from tools/list: ${names}`);
    }
    for (const n of ["stripe__customer_export", "everything__get-sum", "fs__write_file"]) {
      assert.ok(!names.includes(n), `${n} listed although no policy permits it: ${names}`);
    }
  });

  await t.test("allowed calls return the upstream's result", () => {
    assert.deepEqual(JSON.parse(text(r.step("invoice"))), {
      invoice_id: "in_1001", customer: "cus_0001", amount: 12900, currency: "eur", status: "paid",
    }, transcript);
    assert.equal(text(r.step("echo")), "Echo: hello writ", transcript);
    assert.equal(text(r.step("read")), "quarterly numbers: 42\n", transcript);
  });

  await t.test("a refund of 70000 is denied with the policy's reason and a decision id", () => {
    const s = r.step("big-refund");
    assert.ok(s.error, `expected a JSON-RPC error: ${JSON.stringify(s)}`);
    const all = JSON.stringify(s.error);
    assert.ok(all.includes(REFUND_REASON), `reason "${REFUND_REASON}" not in the error: ${all}`);
    assert.match(all, /decision[_-]?id/i, `no decision id in the error: ${all}`);
  });

  await t.test("reading a credential file is denied (no-credential-files)", () => {
    assert.ok(r.step("read-credentials").error, JSON.stringify(r.step("read-credentials")));
  });

  await t.test("a destructive financial call is held for approval and not forwarded", () => {
    const s = r.step("small-refund");
    assert.ok(s.error, `expected a JSON-RPC error: ${JSON.stringify(s)}`);
    assert.match(JSON.stringify(s.error), /approv/i, `error does not mention approval: ${JSON.stringify(s.error)}`);
  });

  await t.test("the finance server saw the allowed call and nothing denied or held", () => {
    const calls = logged();
    assert.ok(calls.some((c) => c.tool === "invoice_get"), `allowed invoice_get did not reach the server: ${JSON.stringify(calls)}`);
    const leaked = calls.filter((c) => c.tool !== "invoice_get");
    assert.deepEqual(leaked, [], `denied or held calls reached the finance server`);
  });
});
