// The MCP conformance comparison (issue 4, "Proof"): runs the official server conformance
// suite (@modelcontextprotocol/conformance, server mode) (a) directly against
// server-everything in Streamable HTTP mode and (b) against `writ serve` (Streamable HTTP,
// anonymous, permit-all policy) with the same server-everything as its stdio upstream, prints
// both result tables and exits 1 iff a check that passes directly does not pass through the
// gateway (minus the commented ALLOWED_DIFFERENCES below). Entry point: scripts/conformance.sh,
// which runs this file with Node 22 (the suite needs it).
//
// Everything listens on 127.0.0.1 only; every child is bounded by a timeout and killed by pid.
// Env: WRIT_BIN (default build/cli/writ), WRIT_CONFORMANCE_KEEP=1 keeps the work directory.

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const NODE = process.execPath;
const MCP = join(REPO, "node_modules/@modelcontextprotocol");
const SUITE = join(MCP, "conformance/dist/index.js");
const EVERYTHING = join(MCP, "server-everything/dist/index.js");
const LOOPBACK = join(REPO, "scripts/conformance/loopback.mjs");
const START_TIMEOUT_MS = 20000;
const SUITE_TIMEOUT_MS = 120000;

// Checks (scenario/check id) that may pass directly and fail through the gateway, each with
// the reason. Keep this list empty unless the difference is inherent to a gateway and
// documented in docs/gateway.md ("Conformance").
// The conformance suite is written against its own reference server (tools named
// `test_simple_text`, resource `test://watched-resource`, ...), which server-everything does
// not have; a few checks pass directly only because server-everything is lenient with names
// it does not know, while the gateway, which routes by its merged and namespaced catalog,
// refuses them. Any other difference fails the test.
const UNKNOWN_TOOL =
  "the suite calls a tool server-everything does not have (unnamespaced); directly, " +
  "server-everything answers with an isError tool result whose text the check accepts; the " +
  "gateway routes only names in its catalog (everything__...) and answers an unknown tool " +
  "with JSON-RPC -32602, the protocol error the MCP spec prescribes for unknown tools";
const UNKNOWN_RESOURCE =
  "test://watched-resource is not a resource of server-everything, which accepts a " +
  "subscription to any URI; the gateway routes resources/(un)subscribe to the upstream that " +
  "lists the URI (or a matching template) and answers an unknown URI with JSON-RPC -32602";
const ALLOWED_DIFFERENCES = new Map([
  ["tools-call-simple-text/tools-call-simple-text", UNKNOWN_TOOL],
  ["tools-call-error/tools-call-error", UNKNOWN_TOOL],
  ["resources-subscribe/resources-subscribe", UNKNOWN_RESOURCE],
  ["resources-unsubscribe/resources-unsubscribe", UNKNOWN_RESOURCE],
]);

// SUCCESS passes; so does INFO, which the suite uses for "optional behaviour not used, nothing
// wrong" (e.g. server-sse-streams-functional when a server answers POSTs with JSON, not SSE).
// WARNING and FAILURE do not.
const passed = (r) => r?.status === "SUCCESS" || r?.status === "INFO";

const bin = (() => {
  const b = process.env.WRIT_BIN || "build/cli/writ";
  return isAbsolute(b) ? b : resolve(REPO, b);
})();

function freePort() {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.on("error", rej);
    s.listen({ port: 0, host: "127.0.0.1" }, () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

// Spawns a long-running child, resolves once `ready` matches its stdout+stderr.
function startChild(name, cmd, args, env, ready) {
  return new Promise((res, rej) => {
    const child = spawn(cmd, args, { cwd: REPO, env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      rej(new Error(`${name} did not start within ${START_TIMEOUT_MS} ms:\n${out}`));
    }, START_TIMEOUT_MS);
    const onData = (d) => {
      out += d;
      const m = ready.exec(out);
      if (m) {
        clearTimeout(timer);
        res({ child, match: m, log: () => out });
      }
    };
    child.stdout.setEncoding("utf8").on("data", onData);
    child.stderr.setEncoding("utf8").on("data", onData);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      rej(new Error(`${name} exited (${code ?? signal}) before it was ready:\n${out}`));
    });
  });
}

function stop(child) {
  if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
}

// Runs the suite against `url`, results into `outDir`; returns Map "scenario/check" -> status.
function runSuite(url, outDir) {
  return new Promise((res, rej) => {
    const child = spawn(NODE, [SUITE, "server", "--url", url, "-o", outDir], {
      cwd: REPO,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (d) => (out += d));
    child.stderr.setEncoding("utf8").on("data", (d) => (out += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), SUITE_TIMEOUT_MS);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (signal) return rej(new Error(`conformance suite killed (${signal}) for ${url}:\n${out}`));
      // Exit code 1 just means "some check failed"; the checks.json files are the result.
      const results = new Map();
      for (const dir of readdirSync(outDir)) {
        const m = /^server-(.+)-\d{4}-\d\d-\d\dT[\d-]+Z$/.exec(dir);
        const scenario = m ? m[1] : dir;
        const file = join(outDir, dir, "checks.json");
        if (!existsSync(file)) continue;
        for (const c of JSON.parse(readFileSync(file, "utf8"))) {
          results.set(`${scenario}/${c.id}`, { status: c.status, error: c.errorMessage ?? "" });
        }
      }
      if (results.size === 0) return rej(new Error(`no results from the suite for ${url}:\n${out}`));
      res(results);
    });
  });
}

function table(title, results) {
  const rows = [...results.entries()].sort(([a], [b]) => a.localeCompare(b));
  const w = Math.max(...rows.map(([k]) => k.length));
  const pass = rows.filter(([, v]) => passed(v)).length;
  console.log(`\n${title}: ${pass} of ${rows.length} checks pass`);
  for (const [k, v] of rows) {
    console.log(`  ${k.padEnd(w)}  ${v.status.padEnd(8)} ${v.error.slice(0, 70)}`);
  }
}

async function main() {
  if (!existsSync(bin)) throw new Error(`${bin} does not exist (build it: ninja -C build writ)`);
  const work = mkdtempSync(join(tmpdir(), "writ-conformance-"));
  const children = [];
  const cleanup = () => {
    children.forEach(stop);
    if (process.env.WRIT_CONFORMANCE_KEEP !== "1") rmSync(work, { recursive: true, force: true });
  };
  process.on("exit", cleanup);
  try {
    // (a) direct.
    const port = await freePort();
    const se = await startChild(
      "server-everything",
      NODE,
      ["--import", LOOPBACK, EVERYTHING, "streamableHttp"],
      { ...process.env, PORT: String(port) },
      /listening on port (\d+)/,
    );
    children.push(se.child);
    const direct = await runSuite(`http://127.0.0.1:${port}/mcp`, join(work, "direct"));
    stop(se.child);

    // (b) through the gateway: permit-all policy, server-everything over stdio.
    writeFileSync(join(work, "all.writ"), "@id(\"conformance-permit-all\")\npermit (principal, action, resource);\n");
    const q = JSON.stringify;
    writeFileSync(
      join(work, "gateway.yaml"),
      `policies: [${q(join(work, "all.writ"))}]
upstreams:
  - name: everything
    command: ${q(NODE)}
    args: [${q(EVERYTHING)}, "stdio"]
http:
  listen: "127.0.0.1:0"
  allow_anonymous: true
`,
    );
    const gw = await startChild(
      "writ serve",
      bin,
      ["serve", "--config", join(work, "gateway.yaml")],
      process.env,
      /listening on 127\.0\.0\.1:(\d+)/,
    );
    children.push(gw.child);
    const gateway = await runSuite(`http://127.0.0.1:${gw.match[1]}/mcp`, join(work, "gateway"));
    gw.child.kill("SIGTERM");

    table("directly against server-everything", direct);
    table("through writ serve (Streamable HTTP, permit-all, server-everything on stdio)", gateway);

    const regressions = [];
    const allowed = [];
    for (const [k, v] of direct) {
      if (!passed(v)) continue;
      const g = gateway.get(k);
      if (passed(g)) continue;
      const line = `${k}: ${g ? `${g.status} ${g.error}` : "missing"}`;
      (ALLOWED_DIFFERENCES.has(k) ? allowed : regressions).push(line);
    }
    const extra = [...gateway].filter(([k, v]) => passed(v) && !passed(direct.get(k)));
    if (extra.length) console.log(`\npass only through the gateway: ${extra.map(([k]) => k).join(", ")}`);
    for (const a of allowed) console.log(`\nallowed difference: ${a}\n  because ${ALLOWED_DIFFERENCES.get(a.split(":")[0])}`);
    if (regressions.length) {
      console.log(`\nFAIL: ${regressions.length} check(s) pass directly but not through the gateway:`);
      for (const r of regressions) console.log(`  ${r}`);
      process.exitCode = 1;
    } else {
      console.log("\nOK: every check that passes directly also passes through the gateway");
    }
  } finally {
    cleanup();
  }
}

main().catch((e) => {
  console.error(`conformance: ${e.stack || e}`);
  process.exitCode = 1;
});
