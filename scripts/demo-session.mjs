#!/usr/bin/env node
// The scripted MCP session of scripts/demo.sh: the official SDK client talks to
// `writ serve --stdio --config examples/quickstart/gateway.yaml` and prints what an agent
// would see, one readable line per step. Usage: node scripts/demo-session.mjs WRIT_BINARY
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const writ = process.argv[2] ?? "build/cli/writ";
const transport = new StdioClientTransport({
  command: writ,
  args: ["serve", "--stdio", "--config", "examples/quickstart/gateway.yaml"],
  stderr: "ignore", // the gateway's log; the demo shows the audit file instead
});
const client = new Client({ name: "writ-demo", version: "0.1.0" }, { capabilities: {} });
const opts = { timeout: 20000 };
const watchdog = setTimeout(() => {
  console.error("demo-session: timed out");
  process.exit(2);
}, 60000);

const bold = (s) => `\x1b[1m${s}\x1b[0m`;
const clip = (s, n = 110) => (s.length > n ? s.slice(0, n - 1) + "…" : s);

async function call(label, name, args) {
  console.log(`\n${bold(label)}\n  -> ${name} ${JSON.stringify(args)}`);
  try {
    const r = await client.callTool({ name, arguments: args }, undefined, opts);
    const text = r.content?.map((c) => c.text ?? "").join(" ") ?? "";
    console.log(`  <- ${r.isError ? "tool error" : "ok"}: ${clip(text.replace(/\s+/g, " "))}`);
  } catch (e) {
    const d = e.data ?? {};
    console.log(`  <- error ${e.code}: ${clip(String(e.message).replace(/^MCP error -?\d+: /, ""), 160)}`);
    if (d.decision_id) {
      const by = d.determining?.length ? `determined by ${d.determining.join(", ")}` : "no policy permits it (default deny)";
      console.log(`     ${d.decision}: ${by}`);
    }
  }
}

await client.connect(transport, opts);
const { tools } = await client.listTools({}, opts);
const names = tools.map((t) => t.name).sort();
console.log(bold("tools/list through the gateway (namespaced; filtered by policy)"));
let line = " ";
for (const n of names) {
  if (line.length + n.length > 92) (console.log(line), (line = " "));
  line += ` ${n}`;
}
console.log(line);
console.log(
  `  (hidden: stripe__customer_export and the fs write tools; no policy lets User::"sam" use them)`,
);

await call("allowed: read an invoice", "stripe__invoice_get", { invoice_id: "in_1001" });
await call("allowed: read a file", "fs__read_text_file", { path: "/tmp/writ-demo/files/notes.txt" });
await call("denied: a refund above 50,000", "stripe__refund_create", { amount: 70000, currency: "eur" });
await call("held: a small refund is destructive, so it needs approval", "stripe__refund_create", {
  amount: 1200,
  currency: "eur",
});
await call("denied: a hidden tool called anyway", "stripe__customer_export", { limit: 5 });

clearTimeout(watchdog);
await client.close();
