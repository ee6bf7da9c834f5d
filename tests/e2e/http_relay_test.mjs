// Server-to-client traffic over Streamable HTTP through `writ serve` (SSE on POST and the GET
// stream): the official SDK client calls server-everything's tools that report progress,
// ask for sampling and for elicitation; the client's answers are POSTed back and routed to
// the upstream. Then the same with server-everything itself as a Streamable HTTP upstream
// (`url:`), bound to 127.0.0.1 on a free port through tests/e2e/loopback.cjs. Session DELETE
// is checked at the end of each. Last, JWT bearer tokens over HTTP (expired, forged,
// wrong audience).
//
// Env: WRIT_BIN, WRIT_E2E_ALLOW_MISSING_GATEWAY=1 (as gateway_test.mjs).

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CreateMessageRequestSchema, ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { NODE, REPO, SERVERS, TEST_TIMEOUT_MS, run, tempDir } from "./lib.mjs";

const ALLOW_MISSING = process.env.WRIT_E2E_ALLOW_MISSING_GATEWAY === "1";
const q = (s) => JSON.stringify(s);
const EVERYTHING = join(REPO, "node_modules/@modelcontextprotocol/server-everything/dist/index.js");

function writBin() {
  const bin = process.env.WRIT_BIN || "build/cli/writ";
  return isAbsolute(bin) ? bin : resolve(REPO, bin);
}

async function probe() {
  const bin = writBin();
  if (!existsSync(bin)) return { available: false, reason: `${bin} does not exist` };
  const r = await run(bin, ["serve", "--help"], { timeoutMs: 10000 });
  if (r.code !== 0 || !/Streamable HTTP/.test(r.stdout + r.stderr)) {
    return { available: false, reason: "`writ serve` has no HTTP transport in this build" };
  }
  return { available: true, bin };
}

// Spawns `cmd args`; resolves {child, port, stderr()} once `pattern` (with the port as its
// first group) shows up on stderr. Killed by pid when the test ends.
function startAndWaitForPort(t, cmd, args, pattern, env = process.env) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { cwd: REPO, env, stdio: ["ignore", "ignore", "pipe"] });
    t.after(() => child.kill("SIGKILL"));
    let stderr = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${cmd} did not start: ${stderr}`));
    }, 20000);
    child.stderr.setEncoding("utf8").on("data", (d) => {
      stderr += d;
      const m = pattern.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolvePromise({ child, port: Number(m[1]), stderr: () => stderr });
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${cmd} exited ${code}: ${stderr}`));
    });
  });
}

function writeConfig(dir, upstreamYaml) {
  mkdirSync(join(dir, "policies"), { recursive: true });
  writeFileSync(join(dir, "policies", "all.writ"), '@id("all")\npermit (principal, action, resource);\n');
  const config = join(dir, "gateway.yaml");
  writeFileSync(
    config,
    `policies: ./policies
upstreams:
${upstreamYaml}
http:
  listen: "127.0.0.1:0"
  allow_anonymous: true
`,
  );
  return config;
}

// A client that answers sampling and elicitation requests.
function makeClient() {
  const client = new Client(
    { name: "writ-e2e-relay", version: "1.0.0" },
    { capabilities: { sampling: {}, elicitation: {} } },
  );
  const seen = { sampling: 0, elicitation: 0 };
  client.setRequestHandler(CreateMessageRequestSchema, async () => {
    seen.sampling++;
    return { role: "assistant", model: "e2e-model", content: { type: "text", text: "sampled-by-e2e" } };
  });
  client.setRequestHandler(ElicitRequestSchema, async () => {
    seen.elicitation++;
    return { action: "accept", content: { name: "e2e-user", check: true, color: "blue" } };
  });
  return { client, seen };
}

// Lists tools until `name` shows up (server-everything registers its client-capability tools
// just after initialization and announces them with list_changed).
async function waitForTool(client, name) {
  for (let i = 0; i < 50; i++) {
    const { tools } = await client.listTools();
    if (tools.some((x) => x.name === name)) return tools;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`tool ${name} never listed`);
}

async function exercise(gwPort, prefix) {
  const url = new URL(`http://127.0.0.1:${gwPort}/mcp`);
  const transport = new StreamableHTTPClientTransport(url);
  const { client, seen } = makeClient();
  await client.connect(transport);
  const sid = transport.sessionId;
  assert.ok(sid, "no session id");
  await waitForTool(client, `${prefix}__trigger-sampling-request`);

  // Progress: notifications/progress on the POST's SSE stream, with the client's token.
  const progress = [];
  const long = await client.callTool(
    { name: `${prefix}__trigger-long-running-operation`, arguments: { duration: 1, steps: 3 } },
    undefined,
    { onprogress: (p) => progress.push(p) },
  );
  assert.ok(!long.isError, JSON.stringify(long));
  assert.ok(progress.length >= 2, `progress: ${JSON.stringify(progress)}`);
  assert.ok(progress.every((p, i) => i === 0 || p.progress >= progress[i - 1].progress));

  // Sampling round trip.
  const sampled = await client.callTool({
    name: `${prefix}__trigger-sampling-request`,
    arguments: { prompt: "hello", maxTokens: 10 },
  });
  assert.ok(!sampled.isError, JSON.stringify(sampled));
  assert.match(JSON.stringify(sampled.content), /sampled-by-e2e/);
  assert.equal(seen.sampling, 1);

  // Elicitation round trip.
  const elicited = await client.callTool({ name: `${prefix}__trigger-elicitation-request`, arguments: {} });
  assert.ok(!elicited.isError, JSON.stringify(elicited));
  assert.match(JSON.stringify(elicited.content), /e2e-user/);
  assert.equal(seen.elicitation, 1);

  // DELETE ends the session: the old id is 404 afterwards.
  await transport.terminateSession();
  await client.close();
  const after = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-session-id": sid },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
  });
  assert.equal(after.status, 404);
}

test("progress, sampling, elicitation and DELETE over HTTP through writ serve (stdio upstream)", { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const p = await probe();
  if (!p.available) {
    if (ALLOW_MISSING) return t.skip(p.reason);
    assert.fail(p.reason);
  }
  const dir = tempDir(t, "writ-e2e-relay-");
  const [cmd, ...args] = SERVERS.everything();
  const config = writeConfig(dir, `  - name: every\n    command: ${q(cmd)}\n    args: [${args.map(q).join(", ")}]`);
  const gw = await startAndWaitForPort(t, p.bin, ["serve", "--config", config], /listening on 127\.0\.0\.1:(\d+)/);
  await exercise(gw.port, "every");
});

test("server-everything as a Streamable HTTP upstream (url:)", { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const p = await probe();
  if (!p.available) {
    if (ALLOW_MISSING) return t.skip(p.reason);
    assert.fail(p.reason);
  }
  const dir = tempDir(t, "writ-e2e-remote-");
  const everything = await startAndWaitForPort(
    t, NODE, ["-r", join(REPO, "tests/e2e/loopback.cjs"), EVERYTHING, "streamableHttp"],
    /writ-e2e-port (\d+)/, { ...process.env, PORT: "0" },
  );
  const config = writeConfig(dir, `  - name: remote\n    url: http://127.0.0.1:${everything.port}/mcp`);
  const gw = await startAndWaitForPort(t, p.bin, ["serve", "--config", config], /listening on 127\.0\.0\.1:(\d+)/);
  await exercise(gw.port, "remote");
});

// HS256 JWTs made here (node:crypto): a valid token is served; expired, forged (signed with
// another key) and wrong-audience tokens are refused with 401 + WWW-Authenticate, before any
// session exists.
const b64url = (buf) => Buffer.from(buf).toString("base64url");
function jwt(key, claims) {
  const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT", kid: "k1" }));
  const body = b64url(JSON.stringify(claims));
  const sig = createHmac("sha256", key).update(`${head}.${body}`).digest();
  return `${head}.${body}.${b64url(sig)}`;
}

test("JWT bearer tokens over HTTP: valid accepted; expired, forged, wrong audience rejected", { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const p = await probe();
  if (!p.available) {
    if (ALLOW_MISSING) return t.skip(p.reason);
    assert.fail(p.reason);
  }
  const dir = tempDir(t, "writ-e2e-jwt-");
  const key = randomBytes(32);
  const [cmd, ...args] = SERVERS.everything();
  mkdirSync(join(dir, "policies"), { recursive: true });
  writeFileSync(join(dir, "policies", "all.writ"), '@id("all")\npermit (principal, action, resource);\n');
  const resource = "http://127.0.0.1/mcp";
  const config = join(dir, "gateway.yaml");
  writeFileSync(
    config,
    `policies: ./policies
upstreams:
  - name: every
    command: ${q(cmd)}
    args: [${args.map(q).join(", ")}]
http:
  listen: "127.0.0.1:0"
identity:
  resource: ${resource}
  jwt:
    issuer: https://issuer.test
    algorithms: [HS256]
    leeway_seconds: 5
    jwks: {keys: [{kty: oct, kid: k1, alg: HS256, k: ${q(b64url(key))}}]}
    claims:
      - sub -> uid as User::"{sub}"
`,
  );
  const gw = await startAndWaitForPort(t, p.bin, ["serve", "--config", config], /listening on 127\.0\.0\.1:(\d+)/);
  const url = new URL(`http://127.0.0.1:${gw.port}/mcp`);
  const now = Math.floor(Date.now() / 1000);
  const good = { iss: "https://issuer.test", aud: resource, sub: "alice", exp: now + 300, iat: now };

  // Valid: the SDK client connects with it and lists the upstream's tools.
  const transport = new StreamableHTTPClientTransport(url, {
    requestInit: { headers: { Authorization: `Bearer ${jwt(key, good)}` } },
  });
  const client = new Client({ name: "writ-e2e-jwt", version: "1.0.0" });
  await client.connect(transport);
  const { tools } = await client.listTools();
  assert.ok(tools.some((x) => x.name === "every__echo"), tools.map((x) => x.name).join(","));
  await transport.terminateSession();
  await client.close();

  const init = (token) =>
    fetch(url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        authorization: `Bearer ${token}`,
      },
      body: JSON.stringify({
        jsonrpc: "2.0", id: 1, method: "initialize",
        params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "x", version: "1" } },
      }),
    });
  const cases = [
    ["expired", jwt(key, { ...good, exp: now - 3600, iat: now - 7200 }), /expired/],
    ["forged", jwt(randomBytes(32), good), /signature does not verify/],
    ["wrong audience", jwt(key, { ...good, aud: "https://other.example/mcp" }), /audience/],
  ];
  for (const [what, token, reason] of cases) {
    const r = await init(token);
    assert.equal(r.status, 401, what);
    assert.match(r.headers.get("www-authenticate") ?? "", /Bearer .*resource_metadata=/, what);
    assert.equal(r.headers.get("mcp-session-id"), null, what);
    const body = await r.json();
    assert.equal(body.error, "invalid_token", what);
    assert.match(body.error_description, reason, what);
  }
});
