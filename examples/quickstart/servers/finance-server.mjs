#!/usr/bin/env node
// A small, deterministic "finance" MCP server over stdio, built with the official SDK
// (McpServer). It stands in for a payments API in the quickstart, the demo and the
// end-to-end tests; behind the gateway it is the upstream `stripe`, so its tools appear as
// `stripe__refund_create`, `stripe__invoice_get`, `stripe__customer_export`.
//
// No network, no clock, no randomness: the same calls give the same answers.
//
// Env:
//   FINANCE_CALL_LOG  if set, every tools/call that reaches this server is appended to this
//                     file as one JSON line {"tool", "arguments", "pid"} BEFORE it is
//                     handled. Tests use it to prove that a denied or held call was never
//                     forwarded by the gateway.
//
// Usage: node examples/quickstart/servers/finance-server.mjs   (speaks MCP on stdin/stdout)

import { appendFileSync } from "node:fs";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { z } from "zod";

const CALL_LOG = process.env.FINANCE_CALL_LOG || "";

function logCall(tool, args) {
  if (!CALL_LOG) return;
  // Synchronous on purpose: the line is on disk before the answer leaves the process.
  appendFileSync(CALL_LOG, JSON.stringify({ tool, arguments: args, pid: process.pid }) + "\n");
}

function json(value) {
  return { content: [{ type: "text", text: JSON.stringify(value) }] };
}

function toolError(message) {
  return { isError: true, content: [{ type: "text", text: message }] };
}

// ---- fake data ---------------------------------------------------------------------------

const INVOICES = new Map(
  [
    { invoice_id: "in_1001", customer: "cus_0001", amount: 12900, currency: "eur", status: "paid" },
    { invoice_id: "in_1002", customer: "cus_0002", amount: 4500, currency: "usd", status: "open" },
    { invoice_id: "in_1003", customer: "cus_0003", amount: 250000, currency: "eur", status: "paid" },
    { invoice_id: "in_1004", customer: "cus_0001", amount: 990, currency: "gbp", status: "void" },
  ].map((inv) => [inv.invoice_id, inv]),
);

const FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Frances", "Donald"];
const LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Allen", "Knuth"];

function customer(i) {
  const first = FIRST[i % FIRST.length];
  const last = LAST[(i * 3) % LAST.length];
  const n = String(i + 1).padStart(4, "0");
  return {
    id: `cus_${n}`,
    name: `${first} ${last}`,
    email: `${first}.${last}${i + 1}@example.com`.toLowerCase(),
    country: ["DE", "FR", "US", "GB"][i % 4],
    lifetime_value: ((i * 7919) % 100000) + 100,
  };
}

const MAX_EXPORT = 1000;
let refundSeq = 0;

// ---- server --------------------------------------------------------------------------------

const server = new McpServer(
  { name: "writ-finance-demo", version: "0.1.0" },
  { instructions: "Fake payments API for Writ demos and tests. Amounts are in minor units (cents)." },
);

server.registerTool(
  "refund_create",
  {
    title: "Create a refund",
    description: "Refund an amount (in minor units, e.g. cents) to a customer's card.",
    inputSchema: {
      amount: z.number().int().describe("Amount in minor units (cents)"),
      currency: z.string().describe("ISO 4217 currency code, e.g. eur"),
      reason: z.string().optional().describe("Why the refund is issued"),
    },
    annotations: {
      destructiveHint: true,
      readOnlyHint: false,
      idempotentHint: false,
      openWorldHint: false,
    },
  },
  async (args) => {
    logCall("refund_create", args);
    if (args.amount <= 0) return toolError("amount must be a positive integer (minor units)");
    refundSeq += 1;
    return json({
      refund_id: `re_${String(refundSeq).padStart(6, "0")}`,
      amount: args.amount,
      currency: args.currency.toLowerCase(),
      reason: args.reason ?? null,
      status: "succeeded",
    });
  },
);

server.registerTool(
  "invoice_get",
  {
    title: "Get an invoice",
    description: "Look up one invoice by id (e.g. in_1001).",
    inputSchema: {
      invoice_id: z.string().describe("Invoice id, e.g. in_1001"),
    },
    annotations: {
      readOnlyHint: true,
      destructiveHint: false,
      idempotentHint: true,
      openWorldHint: false,
    },
  },
  async (args) => {
    logCall("invoice_get", args);
    const inv = INVOICES.get(args.invoice_id);
    if (!inv) return toolError(`no invoice ${JSON.stringify(args.invoice_id)}`);
    return json(inv);
  },
);

server.registerTool(
  "customer_export",
  {
    title: "Export customers",
    description: `Export up to \`limit\` customers (1..${MAX_EXPORT}) with names and emails.`,
    inputSchema: {
      limit: z.number().int().describe(`How many customers, 1..${MAX_EXPORT}`),
    },
    annotations: {
      readOnlyHint: true,
      destructiveHint: false,
      idempotentHint: true,
      openWorldHint: false,
    },
  },
  async (args) => {
    logCall("customer_export", args);
    if (args.limit < 1 || args.limit > MAX_EXPORT) {
      return toolError(`limit must be between 1 and ${MAX_EXPORT}`);
    }
    const customers = Array.from({ length: args.limit }, (_, i) => customer(i));
    return json({ count: customers.length, customers });
  },
);

const transport = new StdioServerTransport();
// Exit when the client (or the gateway) goes away, so no orphan is left behind.
process.stdin.on("end", () => process.exit(0));
process.stdin.on("close", () => process.exit(0));
await server.connect(transport);
