// POST stream resumption (docs/gateway.md, "Resuming a POST stream") with the official SDK
// client over Streamable HTTP through `writ serve`: a tools/call of server-everything's
// trigger-long-running-operation streams progress on its POST's SSE stream (event ids
// p<k>-<n>, primed for 2025-11-25); a fetch wrapper cuts that POST's connection after two
// progress events; the SDK (StreamableHTTPClientTransport, which reconnects a POST stream
// that had an event id and no response yet) sends a GET with Last-Event-ID naming the last
// event it got, and the gateway replays the rest of that call's stream, delivers it live and
// ends it with the result. Every progress step arrives exactly once, the result too, and the
// session's own GET stream stays open (a resume does not replace it). A second test calls the
// same tool without a progress token: nothing is sent before the reply, the gateway primes
// the stream after 1 s, and the SDK resumes from the priming event alone. A third cancels a
// call through the SDK (notifications/cancelled): the gateway ends its POST stream without
// the result, and the session goes on.
//
// Env: WRIT_BIN, WRIT_E2E_ALLOW_MISSING_GATEWAY=1 (skip when the binary is not built).
import assert from "node:assert/strict";
import { existsSync, writeFileSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { REPO, SERVERS, TEST_TIMEOUT_MS, sleep, startHttpGateway, tempDir, waitFor } from "./lib.mjs";

const ALLOW_MISSING = process.env.WRIT_E2E_ALLOW_MISSING_GATEWAY === "1";
const q = (s) => JSON.stringify(s);
const TOOL = "everything__trigger-long-running-operation";
const STEPS = 6;

// The records of one HTTP exchange: request headers of note, the answer's status and
// Writ-Replay, the SSE text received, whether the body ended, and a function that cuts it.
function tap(res, rec) {
  rec.status = res.status;
  rec.replay = res.headers.get("writ-replay");
  rec.contentType = res.headers.get("content-type");
  if (!res.body) return res;
  const decoder = new TextDecoder();
  const body = res.body.pipeThrough(
    new TransformStream({
      transform(chunk, controller) {
        rec.text += decoder.decode(chunk, { stream: true });
        controller.enqueue(chunk);
      },
      flush() {
        rec.ended = true;
      },
    }),
  );
  return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
}

const ids = (text) => [...text.matchAll(/^id: (\S+)$/gm)].map((m) => m[1]);
// The ids of the events that carry a message (not priming events: an id and empty data).
const messageIds = (text) => [...text.matchAll(/^id: (\S+)\ndata: .+$/gm)].map((m) => m[1]);
// The progress values in an SSE text, in order.
const progressIn = (text) =>
  [...text.matchAll(/^data: (.+)$/gm)]
    .map((m) => JSON.parse(m[1]))
    .filter((m) => m.method === "notifications/progress")
    .map((m) => m.params.progress);

// A gateway in front of server-everything and an SDK client connected through it, with a
// fetch wrapper that records every GET (its Last-Event-ID, the answer) and the POST of the
// long call (rec.call, with cut() to break its connection). Null: skipped (no binary).
async function setup(t) {
  const binPath = process.env.WRIT_BIN || "build/cli/writ";
  const bin = isAbsolute(binPath) ? binPath : resolve(REPO, binPath);
  if (!existsSync(bin)) {
    if (ALLOW_MISSING) return null;
    assert.fail(`${bin} does not exist (build writ, or set WRIT_BIN)`);
  }
  const dir = tempDir(t, "writ-e2e-post-resume-");
  writeFileSync(join(dir, "p.writ"), `@id("all")\npermit (principal, action, resource);\n`);
  const [cmd, ...args] = SERVERS.everything();
  const config = join(dir, "gateway.yaml");
  writeFileSync(
    config,
    `policies: ${q(join(dir, "p.writ"))}
stdio_principal: { uid: 'User::"ann"' }
upstreams:
  - name: everything
    command: ${q(cmd)}
    args: [${args.map(q).join(", ")}]
http:
  listen: "127.0.0.1:0"
  allow_anonymous: true
  resume_buffer_events: 64
`,
  );
  const gw = await startHttpGateway(bin, config);
  t.after(() => gw.child.kill("SIGKILL"));

  // Every GET (its Last-Event-ID) and the POST of the long call, with a way to cut the latter.
  const gets = [];
  const rec = { call: null };
  const fetchFn = async (url, init = {}) => {
    const method = init.method ?? "GET";
    const headers = new Headers(init.headers);
    if (method === "GET") {
      const get = { lastEventId: headers.get("last-event-id"), text: "", ended: false };
      gets.push(get);
      return tap(await fetch(url, init), get);
    }
    if (typeof init.body === "string" && init.body.includes(TOOL)) {
      const ac = new AbortController();
      const signal = init.signal ? AbortSignal.any([init.signal, ac.signal]) : ac.signal;
      rec.call = { text: "", ended: false, version: headers.get("mcp-protocol-version"), cut: () => ac.abort() };
      return tap(await fetch(url, { ...init, signal }), rec.call);
    }
    return fetch(url, init);
  };

  const transport = new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${gw.port}/mcp`), {
    fetch: fetchFn,
    reconnectionOptions: { initialReconnectionDelay: 50, maxReconnectionDelay: 200, reconnectionDelayGrowFactor: 1, maxRetries: 5 },
  });
  const client = new Client({ name: "writ-e2e-post-resume", version: "1.0.0" });
  t.after(async () => {
    await Promise.race([client.close().catch(() => {}), sleep(3000)]);
  });
  await client.connect(transport);
  const { tools } = await client.listTools();
  assert.ok(tools.some((x) => x.name === TOOL), tools.map((x) => x.name).join(","));
  // The session's GET stream is open (primed with a g-id).
  await waitFor(() => gets[0]?.text.match(/^id: g\d+$/m), `the GET stream (gets: ${q(gets)})`);

  return { client, transport, gets, rec };
}

test("a cut POST stream is resumed by the SDK with Last-Event-ID and the call's result arrives", { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const env = await setup(t);
  if (!env) return t.skip("the writ binary does not exist");
  const { client, transport, gets, rec } = env;
  const progress = [];
  const result = client.callTool({ name: TOOL, arguments: { duration: 3, steps: STEPS } }, undefined, {
    timeout: 30000,
    onprogress: (p) => progress.push(p.progress),
  });

  // The POST's stream: primed (2025-11-25), its events carry ids of one POST stream.
  await waitFor(() => rec.call && progressIn(rec.call.text).length >= 2, `two progress events on the POST (call: ${q(rec.call)})`);
  const call = rec.call;
  assert.equal(call.status, 200);
  assert.equal(call.contentType, "text/event-stream");
  assert.equal(call.version, "2025-11-25");
  const postIds = ids(call.text);
  assert.match(postIds[0], /^p\d+-0$/, call.text);  // the priming event
  const stream = postIds[0].split("-")[0];
  for (const id of postIds) assert.ok(id.startsWith(`${stream}-`), call.text);
  const lastSeen = postIds.at(-1);

  // Cut the POST's connection mid-call; the SDK resumes with a GET.
  call.cut();
  const r = await result;
  assert.match(r.content[0].text, /^Long running operation completed/);

  const resumes = gets.filter((g) => g.lastEventId !== null);
  assert.equal(resumes.length, 1, q(gets));
  const resume = resumes[0];
  assert.equal(resume.lastEventId, lastSeen);
  assert.equal(resume.status, 200);
  assert.equal(resume.replay, "replayed");
  // The resumed stream is the POST's: ids of that stream only; its messages come after the
  // one the client had (a priming event, when nothing was there to replay yet, has an id of
  // its own, pK-N.M, unique in the session); it carries the rest of the progress and the
  // result, then ends.
  const n = (id) => Number(id.split("-")[1].split(".")[0]);
  for (const id of ids(resume.text)) {
    assert.ok(id.startsWith(`${stream}-`), resume.text);
    assert.ok(n(id) >= n(lastSeen), resume.text);
  }
  const resumedIds = messageIds(resume.text);
  for (const id of ids(resume.text).filter((x) => !resumedIds.includes(x)))
    assert.match(id, new RegExp(`^${lastSeen}\\.\\d+$`), resume.text);
  assert.equal(new Set(ids(resume.text)).size, ids(resume.text).length, resume.text);
  for (const id of ids(resume.text)) assert.ok(!postIds.includes(id), resume.text);
  assert.ok(resumedIds.length >= 1, resume.text);
  for (const id of resumedIds) assert.ok(n(id) > n(lastSeen), resume.text);
  assert.deepEqual(resumedIds.map(n), resumedIds.map((_, i) => n(lastSeen) + 1 + i), resume.text);
  await waitFor(() => resume.ended, `the resumed stream's end (${q(resume)})`);
  assert.match(resume.text, /Long running operation completed/);

  // Every step exactly once, in order (the part before the cut and the part after it).
  assert.deepEqual(progress, Array.from({ length: STEPS }, (_, i) => i + 1));
  assert.deepEqual([...progressIn(call.text), ...progressIn(resume.text)], progress);
  // The session's GET stream was not replaced by the resume.
  assert.equal(gets[0].ended, false, q(gets[0]));

  // The session goes on.
  const again = await client.callTool({ name: "everything__echo", arguments: { message: "after" } }, undefined, { timeout: 15000 });
  assert.match(again.content[0].text, /after/);
  await transport.terminateSession();
});

test("a long call without progress is primed after 1 s; the SDK resumes it from the priming event", { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const env = await setup(t);
  if (!env) return t.skip("the writ binary does not exist");
  const { client, transport, gets, rec } = env;
  // No onprogress: no progress token, so nothing is sent on the POST's stream before the
  // reply. The gateway primes the stream once the reply is 1 s late.
  const result = client.callTool({ name: TOOL, arguments: { duration: 3, steps: 1 } }, undefined, { timeout: 30000 });
  await waitFor(() => rec.call && ids(rec.call.text).length > 0, `the priming event (call: ${q(rec.call)})`);
  const call = rec.call;
  assert.equal(call.contentType, "text/event-stream");
  const primed = ids(call.text);
  assert.equal(primed.length, 1, call.text);
  assert.match(primed[0], /^p\d+-0$/);
  assert.equal(messageIds(call.text).length, 0, call.text);
  call.cut();
  const r = await result;
  assert.match(r.content[0].text, /^Long running operation completed/);
  const resumes = gets.filter((g) => g.lastEventId !== null);
  assert.equal(resumes.length, 1, q(gets));
  assert.equal(resumes[0].lastEventId, primed[0]);
  assert.equal(resumes[0].replay, "replayed");
  const stream = primed[0].split("-")[0];
  assert.deepEqual(messageIds(resumes[0].text), [`${stream}-1`], resumes[0].text);
  await transport.terminateSession();
});

test("a call the client cancels: its POST stream ends without the result and a resume has nothing to add", { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const env = await setup(t);
  if (!env) return t.skip("the writ binary does not exist");
  const { client, transport, gets, rec } = env;
  const progress = [];
  const ac = new AbortController();
  const result = client.callTool({ name: TOOL, arguments: { duration: 3, steps: STEPS } }, undefined, {
    timeout: 30000,
    signal: ac.signal,
    onprogress: (p) => progress.push(p.progress),
  });
  await waitFor(() => rec.call && progressIn(rec.call.text).length >= 2, `two progress events on the POST (call: ${q(rec.call)})`);
  // The SDK sends notifications/cancelled; the gateway ends the POST's stream (no result).
  ac.abort("user");
  await assert.rejects(result);
  await waitFor(() => rec.call.ended, `the POST stream's end (${q(rec.call)})`);
  assert.doesNotMatch(rec.call.text, /Long running operation completed/);
  // If the SDK resumes the ended stream, nothing more comes: 204, or what was kept and the end.
  await sleep(500);
  for (const g of gets.filter((x) => x.lastEventId !== null)) {
    assert.ok(g.status === 204 || g.status === 200, q(g));
    assert.doesNotMatch(g.text, /Long running operation completed/);
  }
  // The session goes on.
  const again = await client.callTool({ name: "everything__echo", arguments: { message: "after" } }, undefined, { timeout: 15000 });
  assert.match(again.content[0].text, /after/);
  await transport.terminateSession();
});
