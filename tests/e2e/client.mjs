#!/usr/bin/env node
// A scripted MCP client on the official SDK (Client + StdioClientTransport). It launches a
// command that speaks MCP over stdio (a server, or `writ serve --stdio --config X`), then
// runs: initialize, tools/list, and the tools/call steps of a JSON scenario file, printing
// one JSON line per step on stdout:
//
//   {"step":"initialize","ok":true,"result":{"serverInfo":...,"capabilities":...,"instructions":...}}
//   {"step":"tools/list","ok":true,"result":{"tools":[...]}}
//   {"step":"<name>","ok":true,"result":{<CallToolResult>}}          tool ran
//   {"step":"<name>","ok":false,"result":{..."isError":true}}          tool ran, reported an error
//   {"step":"<name>","ok":false,"error":{"code":..,"message":..,"data":..}}   JSON-RPC error answer
//   {"step":"done","ok":true|false,"result":{"expectation_failures":N}}
//
// Usage:
//   node tests/e2e/client.mjs [options] -- COMMAND [ARGS...]
// Options:
//   --scenario FILE        JSON scenario (below); without it only initialize + tools/list run
//   --request-timeout MS   per-request timeout (default 10000)
//   --total-timeout MS     whole-run watchdog; the child is killed after it (default 60000)
//   --cwd DIR              working directory of the child (default: this process's)
//
// Scenario file:
//   {"steps": [{"name": "echo", "tool": "echo", "arguments": {"message": "hi"},
//               "expect": "ok" | "tool_error" | "rpc_error"}]}     ("expect" optional)
//
// The child inherits this process's environment (so FINANCE_CALL_LOG etc. pass through),
// plus "env" from the scenario if given. Its stderr goes to this process's stderr.
//
// Exit status: 0 all steps ran and every "expect" held; 1 an expectation failed;
// 2 protocol or transport error (launch failure, initialize failed, timeout, the child
// died, malformed response); 64 usage error. A JSON-RPC error answer to a tools/call
// (e.g. a gateway denial) is a normal outcome, not a protocol error.

import { readFileSync } from "node:fs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { ErrorCode, McpError } from "@modelcontextprotocol/sdk/types.js";

function usage(msg) {
  process.stderr.write(`client.mjs: ${msg}\n`);
  process.stderr.write(
    "usage: node tests/e2e/client.mjs [--scenario FILE] [--request-timeout MS] " +
      "[--total-timeout MS] [--cwd DIR] -- COMMAND [ARGS...]\n",
  );
  process.exit(64);
}

function parseArgs(argv) {
  const opts = { scenario: null, requestTimeout: 10000, totalTimeout: 60000, cwd: undefined, command: [] };
  let i = 0;
  const value = (flag) => {
    if (i + 1 >= argv.length) usage(`${flag} needs a value`);
    return argv[++i];
  };
  const ms = (flag) => {
    const v = Number(value(flag));
    if (!Number.isInteger(v) || v <= 0) usage(`${flag} must be a positive integer (milliseconds)`);
    return v;
  };
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") {
      opts.command = argv.slice(i + 1);
      break;
    } else if (a === "--scenario") opts.scenario = value(a);
    else if (a === "--request-timeout") opts.requestTimeout = ms(a);
    else if (a === "--total-timeout") opts.totalTimeout = ms(a);
    else if (a === "--cwd") opts.cwd = value(a);
    else usage(`unknown option ${a}`);
  }
  if (opts.command.length === 0) usage("no command given after --");
  return opts;
}

function loadScenario(path) {
  if (!path) return { steps: [], env: {} };
  let s;
  try {
    s = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    usage(`cannot read scenario ${path}: ${e.message}`);
  }
  if (!s || typeof s !== "object" || !Array.isArray(s.steps)) usage(`scenario ${path}: needs {"steps": [...]}`);
  s.steps.forEach((st, k) => {
    if (!st || typeof st.tool !== "string" || !st.tool) usage(`scenario ${path}: steps[${k}].tool must be a non-empty string`);
    if (st.arguments !== undefined && (typeof st.arguments !== "object" || st.arguments === null || Array.isArray(st.arguments)))
      usage(`scenario ${path}: steps[${k}].arguments must be an object`);
    if (st.expect !== undefined && !["ok", "tool_error", "rpc_error"].includes(st.expect))
      usage(`scenario ${path}: steps[${k}].expect must be ok, tool_error or rpc_error`);
  });
  if (s.env !== undefined && (typeof s.env !== "object" || s.env === null)) usage(`scenario ${path}: env must be an object`);
  return { steps: s.steps, env: s.env ?? {} };
}

const emit = (line) => process.stdout.write(JSON.stringify(line) + "\n");

function errorJson(e) {
  if (e instanceof McpError) return { code: e.code, message: e.message, data: e.data };
  return { code: null, message: String(e?.message ?? e) };
}

// Errors the SDK raises itself (no answer came from the peer) are protocol failures. The
// codes alone cannot tell: a peer may answer with -32001 or -32000 too (the server-defined
// range), so a timeout is recognised by the SDK's own message and data, and a lost
// connection by the transport having closed.
let connectionClosed = false;
function isLocalFailure(e) {
  if (!(e instanceof McpError)) return true;
  if (connectionClosed) return true;
  if (e.code === ErrorCode.RequestTimeout && typeof e.data?.timeout === "number" && /Request timed out$/.test(e.message)) return true;
  return e.code === ErrorCode.ConnectionClosed && /Connection closed$/.test(e.message) && e.data === undefined;
}

const opts = parseArgs(process.argv.slice(2));
const scenario = loadScenario(opts.scenario);

const transport = new StdioClientTransport({
  command: opts.command[0],
  args: opts.command.slice(1),
  env: { ...process.env, ...scenario.env },
  cwd: opts.cwd,
  stderr: "inherit",
});
const client = new Client({ name: "writ-e2e-client", version: "0.1.0" }, { capabilities: {} });

let finished = false;
async function finish(code) {
  if (finished) return;
  finished = true;
  clearTimeout(watchdog);
  // close() ends the child's stdin, then SIGTERM after 2 s, then SIGKILL after 2 s more.
  const pid = transport.pid;
  await Promise.race([client.close().catch(() => {}), new Promise((r) => setTimeout(r, 5000).unref())]);
  if (pid) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* already gone */
    }
  }
  process.exit(code);
}

const watchdog = setTimeout(() => {
  emit({ step: "watchdog", ok: false, error: { code: null, message: `total timeout of ${opts.totalTimeout} ms exceeded` } });
  const pid = transport.pid;
  if (pid) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* already gone */
    }
  }
  process.exit(2);
}, opts.totalTimeout);

client.onclose = () => {
  connectionClosed = true;
};
transport.onerror = (e) => process.stderr.write(`client.mjs: transport error: ${e?.message ?? e}\n`);

const reqOpts = { timeout: opts.requestTimeout, maxTotalTimeout: opts.requestTimeout };

// initialize
try {
  await client.connect(transport, reqOpts);
} catch (e) {
  emit({ step: "initialize", ok: false, error: errorJson(e) });
  await finish(2);
}
emit({
  step: "initialize",
  ok: true,
  result: {
    serverInfo: client.getServerVersion(),
    capabilities: client.getServerCapabilities(),
    instructions: client.getInstructions() ?? null,
  },
});

// tools/list (all pages)
try {
  const tools = [];
  let cursor;
  for (let page = 0; page < 100; page++) {
    const r = await client.listTools(cursor ? { cursor } : {}, reqOpts);
    tools.push(...r.tools);
    cursor = r.nextCursor;
    if (!cursor) break;
  }
  emit({ step: "tools/list", ok: true, result: { tools } });
} catch (e) {
  emit({ step: "tools/list", ok: false, error: errorJson(e) });
  await finish(2);
}

// tools/call steps
let expectationFailures = 0;
for (const [k, st] of scenario.steps.entries()) {
  const name = st.name ?? `call#${k}:${st.tool}`;
  let outcome;
  let line;
  try {
    const result = await client.callTool({ name: st.tool, arguments: st.arguments ?? {} }, undefined, reqOpts);
    outcome = result.isError ? "tool_error" : "ok";
    line = { step: name, ok: !result.isError, result };
  } catch (e) {
    if (isLocalFailure(e)) {
      emit({ step: name, ok: false, fatal: true, error: errorJson(e) });
      await finish(2);
    }
    outcome = "rpc_error";
    line = { step: name, ok: false, error: errorJson(e) };
  }
  if (st.expect && st.expect !== outcome) {
    expectationFailures++;
    line.expected = st.expect;
  }
  emit(line);
}

emit({ step: "done", ok: expectationFailures === 0, result: { expectation_failures: expectationFailures } });
await finish(expectationFailures === 0 ? 0 : 1);
