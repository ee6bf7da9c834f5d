#!/usr/bin/env node
// Records one scenario's trace (policies/record-traces.sh runs this for every scenario):
// for each session of SCENARIO/record.json it starts `writ serve --stdio` with a generated
// config -- the scenario's policies and schema, the session's principal as
// `stdio_principal`, one mock MCP server (mock-server.mjs) per server of the schema, and
// `record:` pointing at the trace -- and drives it with the official MCP SDK client:
// initialize, tools/list, then the session's calls in order. Every call's outcome (allowed
// and answered, denied, held) is printed; the gateway writes the trace.
//
// Usage: node scripts/policy-traces/record.mjs --scenario DIR --schema-json FILE --writ BIN
//                                        (--out TRACE | --no-record 1) [--work DIR]
//   --schema-json: the scenario's schema.yaml converted to JSON (the script has no YAML
//   parser). TRACE is replaced. Bounded: each request 15 s, the whole run 120 s; the SDK
//   transport stops the gateway by pid (stdin EOF, then SIGTERM), the gateway its upstreams.
//
// SCENARIO/record.json:
//   {"annotations": {"SERVER__tool": {"readOnlyHint": true}, ...},   // -> call.intent
//    "results": {"SERVER__tool": <canned JSON result>, ...},
//    "records_from": {"SERVER__tool": "ARG", ...},   // exports: return ARG records
//    "sessions": [{"client": "claude-code",
//                  "principal": {"uid": "User::\"a\"", "attrs": {...}, "parents": [...]},
//                  "calls": [{"tool": "SERVER__tool", "arguments": {...},
//                             "result": <optional: the answer to exactly these arguments>}]}]}

import {
  existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const REQUEST_TIMEOUT_MS = 15000;
const TOTAL_TIMEOUT_MS = 120000;

function usage(msg) {
  process.stderr.write(`record.mjs: ${msg}\n`);
  process.stderr.write(
    "usage: record.mjs --scenario DIR --schema-json FILE --writ BIN\n" +
    "                  (--out TRACE | --no-record 1) [--work DIR]\n");
  process.exit(2);
}

const opts = {};
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i];
  const v = process.argv[i + 1];
  if (!k.startsWith("--") || v === undefined) usage(`bad argument ${k}`);
  opts[k.slice(2)] = v;
}
for (const k of ["scenario", "schema-json", "writ"]) if (!opts[k]) usage(`--${k} is required`);
// --no-record 1: run the sessions without `record:` (a dry run that checks the sessions).
const record = !opts["no-record"];
if (record && !opts.out) usage("--out is required (or --no-record 1)");

const scenario = resolve(opts.scenario);
const work = resolve(opts.work ?? mkdtempSync(join(tmpdir(), "writ-record-")));
const schema = JSON.parse(readFileSync(opts["schema-json"], "utf8"));
const plan = JSON.parse(readFileSync(join(scenario, "record.json"), "utf8"));

let gatewayPid = null;  // the running `writ serve`, stopped by pid if the watchdog fires
const watchdog = setTimeout(() => {
  process.stderr.write(`record.mjs: ${scenario}: gave up after ${TOTAL_TIMEOUT_MS} ms\n`);
  if (gatewayPid) {
    try {
      process.kill(gatewayPid, "SIGTERM");
    } catch {}
  }
  process.exit(1);
}, TOTAL_TIMEOUT_MS);

// Writ schema types (docs/schema.md) -> JSON Schema, for the mock servers' tools/list.
function jsonSchema(type) {
  if (typeof type === "object" && type !== null) {
    const properties = {};
    const required = [];
    for (const [rawName, t] of Object.entries(type)) {
      const optional = rawName.endsWith("?");
      const name = optional ? rawName.slice(0, -1) : rawName;
      properties[name] = jsonSchema(t);
      if (!optional) required.push(name);
    }
    return { type: "object", properties, required };
  }
  const set = /^Set<(.+)>$/.exec(type);
  if (set) return { type: "array", items: jsonSchema(set[1]) };
  switch (type) {
    case "String": return { type: "string" };
    case "Long": return { type: "integer" };
    case "Bool": return { type: "boolean" };
    case "Record": return { type: "object" };
    default: return {};
  }
}

// One mock server spec per server that the schema's tools name.
const servers = new Map();
for (const [full, def] of Object.entries(schema.tools ?? {})) {
  const sep = full.indexOf("__");
  const server = def.server ?? full.slice(0, sep);
  const name = full.slice(sep + 2);
  if (!servers.has(server)) servers.set(server, { name: server, tools: [] });
  const tool = { name, inputSchema: jsonSchema(def.args ?? {}) };
  if (def.description) tool.description = def.description;
  if (plan.annotations?.[full]) tool.annotations = plan.annotations[full];
  if (plan.results?.[full] !== undefined) tool.result = plan.results[full];
  if (plan.records_from?.[full]) tool.records_from = plan.records_from[full];
  servers.get(server).tools.push(tool);
}
// Per-call answers: a call with `result` adds a case for its exact arguments.
for (const session of plan.sessions) {
  for (const call of session.calls) {
    if (call.result === undefined) continue;
    const sep = call.tool.indexOf("__");
    const name = call.tool.slice(sep + 2);
    const tool = servers.get(call.tool.slice(0, sep))?.tools.find((t) => t.name === name);
    if (!tool) usage(`record.json: call of ${call.tool}, which the schema does not declare`);
    (tool.cases ??= []).push({ arguments: call.arguments ?? {}, result: call.result });
  }
}

rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
const tmpTrace = join(work, "trace.jsonl");
const upstreams = [];
for (const [name, spec] of servers) {
  const specPath = join(work, `${name}.json`);
  writeFileSync(specPath, JSON.stringify(spec, null, 2));
  const args = [join(HERE, "mock-server.mjs"), specPath];
  upstreams.push({ name, command: process.execPath, args });
}

function describe(result) {
  const text = result?.content?.[0]?.text ?? "";
  return (result?.isError ? "tool error: " : "ok: ") + text.slice(0, 80);
}

let index = 0;
for (const session of plan.sessions) {
  index += 1;
  // JSON is YAML: the gateway reads this config as it reads a hand-written gateway.yaml.
  const config = {
    policies: scenario,
    schema: join(scenario, "schema.yaml"),
    stdio_principal: session.principal,
    upstreams,
  };
  if (record) config.record = { path: tmpTrace, messages: true };
  const configPath = join(work, `gateway-${index}.yaml`);
  writeFileSync(configPath, JSON.stringify(config, null, 2));

  const transport = new StdioClientTransport({
    command: resolve(opts.writ),
    args: ["serve", "--stdio", "--config", configPath],
    stderr: "pipe",
  });
  let stderr = "";
  transport.stderr?.on("data", (d) => (stderr += d));
  const client = new Client({ name: session.client ?? "writ-record", version: "0.1.0" });
  try {
    await client.connect(transport, { timeout: REQUEST_TIMEOUT_MS });
    gatewayPid = transport.pid;
    const listed = await client.listTools(undefined, { timeout: REQUEST_TIMEOUT_MS });
    console.log(`${session.principal.uid}: ${listed.tools.length} tools visible`);
    for (const call of session.calls) {
      let outcome;
      try {
        const r = await client.callTool({ name: call.tool, arguments: call.arguments ?? {} },
                                        undefined, { timeout: REQUEST_TIMEOUT_MS });
        outcome = describe(r);
      } catch (e) {
        outcome = `error ${e.code ?? ""}: ${String(e.message).slice(0, 100)}`;
      }
      console.log(`  ${call.tool} -> ${outcome}`);
    }
  } catch (e) {
    process.stderr.write(`record.mjs: session ${index} (${session.principal.uid}) failed: ${e}\n`);
    process.stderr.write(stderr);
    await client.close().catch(() => {});
    process.exit(1);
  }
  await client.close();
  gatewayPid = null;
}

if (!record) {
  rmSync(work, { recursive: true, force: true });
  clearTimeout(watchdog);
  process.exit(0);
}
if (!existsSync(tmpTrace)) {
  process.stderr.write(`record.mjs: the gateway wrote no trace (${tmpTrace})\n`);
  process.exit(1);
}
renameSync(tmpTrace, resolve(opts.out));
rmSync(work, { recursive: true, force: true });
clearTimeout(watchdog);
