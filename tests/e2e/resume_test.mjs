// GET stream resumption (docs/gateway.md, "Resuming the GET stream") with the official SDK
// client over Streamable HTTP through `writ serve`: the client's GET stream is cut (a fetch
// wrapper aborts it and holds the client's reconnect), the gateway then sends server
// notifications (tools/list_changed when the crashy upstream dies and comes back), and the
// client reconnects with Last-Event-ID: the gateway replays the notifications it missed.
//
// Env: WRIT_BIN, WRIT_E2E_ALLOW_MISSING_GATEWAY=1 (skip when the binary is not built).
import assert from "node:assert/strict";
import { existsSync, writeFileSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ToolListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { NODE, REPO, TEST_TIMEOUT_MS, sleep, startHttpGateway, tempDir, waitFor } from "./lib.mjs";

const ALLOW_MISSING = process.env.WRIT_E2E_ALLOW_MISSING_GATEWAY === "1";
const q = (s) => JSON.stringify(s);

test("a cut GET stream is resumed with Last-Event-ID and the missed notifications arrive", { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const binPath = process.env.WRIT_BIN || "build/cli/writ";
  const bin = isAbsolute(binPath) ? binPath : resolve(REPO, binPath);
  if (!existsSync(bin)) {
    if (ALLOW_MISSING) return t.skip(`${bin} does not exist`);
    assert.fail(`${bin} does not exist (build writ, or set WRIT_BIN)`);
  }
  const dir = tempDir(t, "writ-e2e-resume-");
  writeFileSync(join(dir, "p.writ"), `@id("all")\npermit (principal, action, resource);\n`);
  const config = join(dir, "gateway.yaml");
  writeFileSync(
    config,
    `policies: ${q(join(dir, "p.writ"))}
stdio_principal: { uid: 'User::"ann"' }
upstreams:
  - name: crashy
    command: ${q(NODE)}
    args: [${q(join(REPO, "tests/e2e/fixtures/crashy-server.mjs"))}]
    restart: { initial_backoff: 100ms, max_restarts: 3 }
http:
  listen: "127.0.0.1:0"
  allow_anonymous: true
  resume_buffer_events: 64
`,
  );
  const gw = await startHttpGateway(bin, config);
  t.after(() => gw.child.kill("SIGKILL"));

  // Every GET the client makes: its Last-Event-ID, the gateway's Writ-Replay answer, and the
  // raw SSE text it received. `gate` (when set) holds a GET until the test releases it.
  const gets = [];
  let gate = null;
  let cut = null;  // aborts the current GET stream
  const fetchFn = async (url, init = {}) => {
    if ((init.method ?? "GET") !== "GET") return fetch(url, init);
    if (gate) await gate.promise;
    const ac = new AbortController();
    const signal = init.signal ? AbortSignal.any([init.signal, ac.signal]) : ac.signal;
    const res = await fetch(url, { ...init, signal });
    const rec = {
      lastEventId: new Headers(init.headers).get("last-event-id"),
      replay: res.headers.get("writ-replay"),
      status: res.status,
      text: "",
    };
    gets.push(rec);
    cut = () => ac.abort();
    if (!res.body) return res;
    const decoder = new TextDecoder();
    const tap = new TransformStream({
      transform(chunk, controller) {
        rec.text += decoder.decode(chunk, { stream: true });
        controller.enqueue(chunk);
      },
    });
    return new Response(res.body.pipeThrough(tap), { status: res.status, statusText: res.statusText, headers: res.headers });
  };

  const transport = new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${gw.port}/mcp`), {
    fetch: fetchFn,
    reconnectionOptions: { initialReconnectionDelay: 50, maxReconnectionDelay: 200, reconnectionDelayGrowFactor: 1, maxRetries: 5 },
  });
  const client = new Client({ name: "writ-e2e-resume", version: "1.0.0" });
  const changed = [];
  client.setNotificationHandler(ToolListChangedNotificationSchema, (n) => changed.push(n));
  t.after(async () => {
    await Promise.race([client.close().catch(() => {}), sleep(3000)]);
  });
  await client.connect(transport);
  const { tools } = await client.listTools();
  assert.ok(tools.some((x) => x.name === "crashy__echo"), tools.map((x) => x.name).join(","));

  // The GET stream opens and is primed with an event id (MCP 2025-11-25).
  const first = await waitFor(() => gets[0]?.text.match(/^id: (g\d+)$/m), `the priming event (gets: ${q(gets)})`);
  const primedId = first[1];
  assert.equal(gets[0].status, 200);
  assert.equal(gets[0].lastEventId, null);

  // Cut the stream; the client's reconnect waits at the gate.
  let release;
  gate = { promise: new Promise((r) => (release = r)) };
  cut();
  await sleep(300);  // the gateway notices the client left

  // While the client is away: the upstream dies mid-call and is restarted; the gateway sends
  // tools/list_changed (tools gone, tools back) for the GET stream.
  await assert.rejects(client.callTool({ name: "crashy__crash", arguments: {} }, undefined, { timeout: 15000 }));
  await waitFor(() => /tools are back/.test(gw.stderr()), `the restart (log:\n${gw.stderr()})`);
  assert.equal(changed.length, 0, "nothing can have arrived while the stream was cut");

  // Reconnect: Last-Event-ID is the priming id; the missed notifications are replayed.
  gate = null;
  release();
  await waitFor(() => changed.length >= 2, `the replayed tools/list_changed (gets: ${q(gets)}, log:\n${gw.stderr()})`);
  assert.equal(gets.length, 2, q(gets));
  assert.equal(gets[1].lastEventId, primedId);
  assert.equal(gets[1].replay, "replayed");
  const ids = [...gets[1].text.matchAll(/^id: (g\d+)$/gm)].map((m) => m[1]);
  assert.ok(ids.length >= 2, gets[1].text);
  const n = Number(primedId.slice(1));
  assert.deepEqual(ids.slice(0, 2), [`g${n + 1}`, `g${n + 2}`], gets[1].text);

  // The session still works after the resumption.
  const r = await client.callTool({ name: "crashy__echo", arguments: { text: "after" } }, undefined, { timeout: 15000 });
  assert.match(r.content[0].text, /^echo: after/);
  await transport.terminateSession();
});
