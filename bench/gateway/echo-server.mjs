// The fast upstream for bench/gateway-latency.mjs: a minimal MCP server on stdio
// (newline-delimited JSON-RPC 2.0) with one tool, `echo`, that returns its `message` argument
// as text. Hand-rolled on purpose (no SDK, no schema validation) so that the upstream's own
// cost is as small as possible and the benchmark sees the gateway's. Not for anything else.
import { createInterface } from "node:readline";

const TOOL = {
  name: "echo",
  description: "Returns its message argument.",
  inputSchema: { type: "object", properties: { message: { type: "string" } } },
};

function reply(id, result) {
  process.stdout.write(JSON.stringify({ jsonrpc: "2.0", id, result }) + "\n");
}

createInterface({ input: process.stdin }).on("line", (line) => {
  let msg;
  try {
    msg = JSON.parse(line);
  } catch {
    return;
  }
  if (msg.id === undefined || msg.id === null) return; // notifications
  switch (msg.method) {
    case "initialize":
      return reply(msg.id, {
        protocolVersion: msg.params?.protocolVersion ?? "2025-06-18",
        capabilities: { tools: {} },
        serverInfo: { name: "bench-echo", version: "1.0.0" },
      });
    case "ping":
      return reply(msg.id, {});
    case "tools/list":
      return reply(msg.id, { tools: [TOOL] });
    case "tools/call":
      return reply(msg.id, {
        content: [{ type: "text", text: String(msg.params?.arguments?.message ?? "") }],
      });
    default:
      process.stdout.write(
        JSON.stringify({ jsonrpc: "2.0", id: msg.id, error: { code: -32601, message: "method not found" } }) + "\n",
      );
  }
});
process.stdin.on("end", () => process.exit(0));
