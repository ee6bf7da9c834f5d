// Credential rotation end to end (docs/credentials.md, "Rotation"): the official SDK client
// talks to `writ serve --stdio` (and, in a second test, `writ serve` over Streamable HTTP) in
// front of the malicious server (fixtures/malicious-server.mjs,
// whose `debug_env` tool echoes its environment and which prints its credential on stderr at
// start). The test rotates the secrets file and sends SIGHUP, then checks that:
//   - a broken secrets file is refused: the old credential stays, the upstream is not restarted;
//   - a good file restarts the upstream with the new value: the new process's real environment
//     (/proc/PID/environ) holds it, while the agent sees only [REDACTED:secret:NAME];
//   - neither the old nor the new raw value reaches the agent, the gateway's log or the audit;
//   - the same client session keeps working across the restart.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

import { NODE, REPO, TEST_TIMEOUT_MS, sleep, tempDir, waitFor } from "./lib.mjs";

const WRIT = process.env.WRIT_BIN || join(REPO, "build/cli/writ");
const EVIL = join(REPO, "tests/e2e/fixtures/malicious-server.mjs");
const OLD = "rotation-old-credential-1a2b3c4d5e";
const NEW = "rotation-new-credential-9f8e7d6c5b";


function setup(t, extra = "") {
  const dir = tempDir(t, "writ-rot-");
  const secrets = join(dir, "secrets.yaml");
  writeFileSync(join(dir, "policies.writ"), `permit (principal, action, resource);\n`);
  writeFileSync(secrets, `EVIL_API_TOKEN: ${OLD}\n`);
  chmodSync(secrets, 0o600);
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
secrets: { file: secrets.yaml }
audit: { path: audit.jsonl }
${extra}`,
  );
  return { dir, secrets };
}

// The rotation scenario against a connected `client`; `sighup()` signals the gateway and
// `stderr()` is its log so far.
async function rotate({ client, sighup, stderr, secrets }) {
  const env = async () => {
    const r = await client.callTool({ name: "evil__debug_env", arguments: {} }, undefined, { timeout: 15000 });
    return r.content.map((c) => c.text ?? "").join("\n");
  };
  const pidOf = () => Number(/started upstream [^\n]*pid=(\d+)/.exec(stderr())?.[1]);
  const upstreamEnv = (pid) => readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");

  // Before: the upstream runs with the old value; the agent sees it redacted.
  let out = await env();
  assert.match(out, /EVIL_API_TOKEN=\[REDACTED:secret:EVIL_API_TOKEN\]/);
  assert.ok(!out.includes(OLD), "old credential visible to the agent");
  const pid0 = await waitFor(pidOf, "the upstream's pid in the log");
  assert.ok(upstreamEnv(pid0).includes(`EVIL_API_TOKEN=${OLD}`), "upstream lacks the old credential");

  // A broken file (readable by others) is refused: nothing changes, the session works.
  writeFileSync(secrets, `EVIL_API_TOKEN: ${NEW}\n`);
  chmodSync(secrets, 0o644);
  sighup();
  await waitFor(() => /credential rotation failed/.test(stderr()), "the failed rotation in the log");
  assert.match(stderr(), /credential rotation failed[^\n]*mode 0644/);
  out = await env();
  assert.match(out, /EVIL_API_TOKEN=\[REDACTED:secret:EVIL_API_TOKEN\]/);
  assert.ok(upstreamEnv(pid0).includes(`EVIL_API_TOKEN=${OLD}`), "upstream changed on a failed rotation");
  assert.ok(!/restarted[^\n]*credential rotation/.test(stderr()), "restarted on a failed rotation");

  // A good file: the upstream is restarted with the new value, the session stays.
  chmodSync(secrets, 0o600);
  sighup();
  const m = await waitFor(
    () => /upstream restarted [^\n]*pid=(\d+)[^\n]*credential rotation/.exec(stderr()),
    "the rotation restart in the log",
  );
  const pid1 = Number(m[1]);
  assert.notEqual(pid1, pid0, "a new upstream process");
  assert.match(stderr(), /credential rotation: secrets changed[^\n]*EVIL_API_TOKEN/);
  assert.ok(upstreamEnv(pid1).includes(`EVIL_API_TOKEN=${NEW}`), "the new process lacks the new credential");
  // The restarted upstream is re-initialized behind the same session; retry until it answers.
  for (let i = 0; ; ++i) {
    try {
      out = await env();
      if (out.includes("EVIL_API_TOKEN=")) break;
    } catch (e) {
      if (i > 50) throw e;
    }
    await sleep(100);
  }
  assert.match(out, /EVIL_API_TOKEN=\[REDACTED:secret:EVIL_API_TOKEN\]/);
  assert.ok(!out.includes(NEW) && !out.includes(OLD), `raw credential visible to the agent:\n${out}`);
  // The same session still lists tools and calls them.
  const names = (await client.listTools()).tools.map((x) => x.name);
  assert.ok(names.includes("evil__debug_env"), `tools after rotation: ${names}`);
}

// After the gateway stopped: no raw value in its log (the new process printed its credential
// on stderr, so the log scrubber covers the new value) nor in the audit.
function checkTrail(dir, stderr) {
  assert.ok(!stderr.includes(NEW) && !stderr.includes(OLD), `raw credential in the gateway's log:\n${stderr}`);
  const audit = readFileSync(join(dir, "audit.jsonl"), "utf8");
  assert.ok(!audit.includes(NEW) && !audit.includes(OLD), "raw credential in the audit");
  assert.match(audit, /"trigger":"secrets"/);
}

test("SIGHUP rotates an upstream credential without dropping the session (--stdio)", { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const { dir, secrets } = setup(t);
  let stderr = "";
  const transport = new StdioClientTransport({
    command: WRIT,
    args: ["serve", "--stdio", "--config", join(dir, "gateway.yaml")],
    cwd: dir,
    stderr: "pipe",
  });
  transport.stderr.on("data", (d) => (stderr += d));
  const client = new Client({ name: "rotation-e2e", version: "1.0.0" });
  const killer = setTimeout(() => transport.close(), TEST_TIMEOUT_MS - 5000);
  t.after(async () => {
    clearTimeout(killer);
    await transport.close().catch(() => {});
  });
  await client.connect(transport);
  await rotate({ client, sighup: () => process.kill(transport.pid, "SIGHUP"), stderr: () => stderr, secrets });
  await transport.close();
  await sleep(300);
  checkTrail(dir, stderr);
});

test("SIGHUP rotates an upstream credential inside an open HTTP session", { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const { dir, secrets } = setup(t, `http: { listen: "127.0.0.1:0", allow_anonymous: true }\n`);
  const gw = spawn(WRIT, ["serve", "--config", join(dir, "gateway.yaml")], { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  gw.stderr.setEncoding("utf8").on("data", (d) => (stderr += d));
  const exited = new Promise((r) => gw.on("exit", r));
  const killer = setTimeout(() => gw.kill("SIGKILL"), TEST_TIMEOUT_MS - 5000);
  t.after(() => {
    clearTimeout(killer);
    if (gw.exitCode === null) gw.kill("SIGKILL");
  });
  const port = Number((await waitFor(() => /listening on 127\.0\.0\.1:(\d+)/.exec(stderr), "the gateway to listen"))[1]);
  const transport = new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${port}/mcp`));
  const client = new Client({ name: "rotation-e2e-http", version: "1.0.0" });
  await client.connect(transport);
  await rotate({ client, sighup: () => gw.kill("SIGHUP"), stderr: () => stderr, secrets });
  assert.match(stderr, /restarting upstream in open sessions[^\n]*sessions=1/);
  await transport.close().catch(() => {});
  gw.kill("SIGTERM");
  await exited;
  checkTrail(dir, stderr);
});
