#!/usr/bin/env node
// A generic, deterministic mock MCP server over stdio for recording the policy library's
// traces (policies/record-traces.sh). It serves the tools listed in a JSON spec file and
// answers every call with the tool's canned result; no network, no clock, no randomness.
//
// Usage: node scripts/policy-traces/mock-server.mjs SPEC.json
//   SPEC.json: {"name": "postgres_prod",
//               "tools": [{"name": "query", "description": "...", "inputSchema": {...},
//                          "annotations": {"readOnlyHint": true}, "result": <any JSON>,
//                          "cases": [{"arguments": {...}, "result": <any JSON>}],
//                          "records_from": "limit"}]}
// A call answers the result of the first case whose arguments equal the call's (compared as
// JSON with sorted keys: the gateway may reorder keys), else the tool's `result`, else
// {"ok": true, "tool": NAME, "arguments": ARGS}. A tool with `records_from: ARG` (an export)
// answers {"records": [...]} with as many records as the integer argument ARG asks for (at
// most 10,000), so the gateway's session record counter sees a realistic count.
// Arguments are not validated here: the gateway decides before anything is forwarded, and
// the traces deliberately include wrong-typed arguments to show that they fail closed.

import { readFileSync } from "node:fs";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import {
  CallToolRequestSchema,
  ListToolsRequestSchema,
} from "@modelcontextprotocol/sdk/types.js";

// JSON text with object keys sorted at every level.
function canonical(v) {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (v && typeof v === "object") {
    const fields = Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`);
    return `{${fields.join(",")}}`;
  }
  return JSON.stringify(v);
}

const specPath = process.argv[2];
if (!specPath) {
  process.stderr.write("usage: mock-server.mjs SPEC.json\n");
  process.exit(2);
}
const spec = JSON.parse(readFileSync(specPath, "utf8"));
const tools = new Map(spec.tools.map((t) => [t.name, t]));

const server = new Server(
  { name: `writ-mock-${spec.name}`, version: "0.1.0" },
  { capabilities: { tools: {} } },
);

server.setRequestHandler(ListToolsRequestSchema, async () => ({
  tools: spec.tools.map((t) => {
    const out = { name: t.name, inputSchema: t.inputSchema };
    if (t.description) out.description = t.description;
    if (t.annotations) out.annotations = t.annotations;
    return out;
  }),
}));

server.setRequestHandler(CallToolRequestSchema, async (request) => {
  const tool = tools.get(request.params.name);
  if (!tool) {
    const text = `unknown tool ${request.params.name}`;
    return { isError: true, content: [{ type: "text", text }] };
  }
  const args = request.params.arguments ?? {};
  const key = canonical(args);
  const hit = (tool.cases ?? []).find((c) => canonical(c.arguments) === key);
  let result = hit ? hit.result : (tool.result ?? { ok: true, tool: tool.name, arguments: args });
  const n = tool.records_from ? args[tool.records_from] : undefined;
  if (!hit && Number.isInteger(n) && n > 0) {
    result = { records: Array.from({ length: Math.min(n, 10000) }, (_, i) => ({ id: i + 1 })) };
  }
  return { content: [{ type: "text", text: JSON.stringify(result) }] };
});

await server.connect(new StdioServerTransport());
