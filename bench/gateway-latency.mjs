// Added latency and throughput of the gateway (issue 4, "Proof"; docs/performance.md,
// "Gateway added latency"). Entry point: scripts/bench-gateway.sh.
//
// A client written against raw newline-delimited JSON-RPC (so that client-side cost is small
// and identical in both modes) calls the `echo` tool of bench/gateway/echo-server.mjs
// (a) directly over stdio and (b) through `writ serve --stdio` (permit-all policy, audit trail
// on). It measures
//   - paced: COUNT tools/call at RATE calls/s, open loop (each call is sent at its scheduled
//     time whatever the previous ones do), round-trip p50/p90/p99/max. The paced client is
//     bench/gateway/loadgen.cc (writ_gateway_loadgen), which sleeps until each send time and
//     blocks on replies; `--client js` uses the JavaScript client of earlier measurements,
//     which waits with a setImmediate loop and so keeps one of the machine's cores busy
//     (docs/performance.md, "Gateway added latency", says what that changed);
//   - throughput: SESSIONS sessions (one child process each), WINDOW calls in flight per
//     session, TCOUNT calls in all; calls/s.
// and prints a markdown table with the added p50/p99 (gateway minus direct).
// The gateway's limits.max_in_flight is raised so that a stall of the (shared) machine queues
// calls instead of failing the run with -32005.
//
// Flags: --writ PATH (build/cli/writ) --loadgen PATH (build/bench/writ_gateway_loadgen)
//        --client native|js (native) --count N (5000) --rate R (1000) --sessions S (2)
//        --window W (32) --tcount N (20000) --fsync always|interval|never (interval)
// Every child is killed by pid at the end and the whole run is bounded by a watchdog.

import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir, cpus, loadavg } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const ECHO = join(REPO, "bench/gateway/echo-server.mjs");

const opt = {
  writ: join(REPO, "build/cli/writ"),
  loadgen: join(REPO, "build/bench/writ_gateway_loadgen"),
  client: "native",
  count: 5000,
  rate: 1000,
  sessions: 2,
  window: 32,
  tcount: 20000,
  fsync: "interval",
};
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i].replace(/^--/, "");
  if (!(k in opt)) throw new Error(`unknown flag --${k}`);
  opt[k] = typeof opt[k] === "number" ? Number(process.argv[i + 1]) : process.argv[i + 1];
}

const children = new Set();
const work = mkdtempSync(join(tmpdir(), "writ-bench-gw-"));
const watchdog = setTimeout(() => {
  console.error("bench: watchdog (300 s) fired");
  process.exit(2);
}, 300000);
process.on("exit", () => {
  for (const c of children) c.kill("SIGKILL");
  rmSync(work, { recursive: true, force: true });
});

// One stdio MCP session with a child process.
class Session {
  constructor(cmd, args) {
    this.child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
    children.add(this.child);
    this.pending = new Map();
    this.nextId = 1;
    this.buf = "";
    this.stderr = "";
    this.child.stderr.setEncoding("utf8").on("data", (d) => {
      if (this.stderr.length < 65536) this.stderr += d;
    });
    this.child.stdout.setEncoding("utf8").on("data", (d) => {
      this.buf += d;
      let nl;
      while ((nl = this.buf.indexOf("\n")) >= 0) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        if (!line) continue;
        const msg = JSON.parse(line);
        const p = msg.id !== undefined && this.pending.get(msg.id);
        if (!p) continue; // notifications, server requests: none expected here
        this.pending.delete(msg.id);
        const end = process.hrtime.bigint();
        if (msg.error) p.reject(new Error(`${JSON.stringify(msg.error)}\n${this.stderr}`));
        else p.resolve({ result: msg.result, ns: Number(end - p.start) });
      }
    });
    this.child.on("exit", (code, signal) => {
      for (const p of this.pending.values()) p.reject(new Error(`child exited ${code ?? signal}: ${this.stderr}`));
      this.pending.clear();
    });
  }
  request(method, params) {
    const id = this.nextId++;
    return new Promise((res, rej) => {
      this.pending.set(id, { resolve: res, reject: rej, start: process.hrtime.bigint() });
      this.child.stdin.write(JSON.stringify({ jsonrpc: "2.0", id, method, params }) + "\n");
    });
  }
  notify(method, params) {
    this.child.stdin.write(JSON.stringify({ jsonrpc: "2.0", method, params }) + "\n");
  }
  async open() {
    await this.request("initialize", {
      protocolVersion: "2025-06-18",
      capabilities: {},
      clientInfo: { name: "writ-bench", version: "1.0.0" },
    });
    this.notify("notifications/initialized", {});
    const { result } = await this.request("tools/list", {});
    return result.tools.map((t) => t.name);
  }
  close() {
    this.child.stdin.end();
    const c = this.child;
    setTimeout(() => c.kill("SIGKILL"), 2000).unref();
  }
}

let gwIndex = 0;
// The command line of a session: the echo server itself, or the gateway in front of it.
function sessionCommand(mode) {
  if (mode === "direct") return [process.execPath, ECHO];
  const dir = join(work, `gw${gwIndex++}`);
  const policies = join(dir, "policies");
  mkdirSync(policies, { recursive: true });
  writeFileSync(join(policies, "all.writ"), '@id("bench-permit-all")\npermit (principal, action, resource);\n');
  writeFileSync(
    join(dir, "gateway.yaml"),
    `policies: ./policies
upstreams:
  - name: fast
    command: ${JSON.stringify(process.execPath)}
    args: [${JSON.stringify(ECHO)}]
audit:
  path: ./audit.jsonl
  fsync: ${opt.fsync}
limits:
  max_in_flight: 100000
`,
  );
  return [opt.writ, "serve", "--stdio", "--config", join(dir, "gateway.yaml")];
}

function makeSession(mode) {
  const [cmd, ...args] = sessionCommand(mode);
  return new Session(cmd, args);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

// Open-loop paced run with the native client (bench/gateway/loadgen.cc): call i is sent at
// t0 + i/rate; the server's stderr goes to a file, shown if the run fails.
function pacedNative(mode) {
  const tool = mode === "direct" ? "echo" : "fast__echo";
  const errFile = join(work, `paced-${mode}.stderr`);
  const args = ["--tool", tool, "--rate", String(opt.rate), "--count", String(opt.count),
                "--warmup", "500", "--stderr", errFile, "--", ...sessionCommand(mode)];
  return new Promise((res, rej) => {
    const child = spawn(opt.loadgen, args, { stdio: ["ignore", "pipe", "pipe"] });
    children.add(child);
    let out = "", err = "";
    child.stdout.setEncoding("utf8").on("data", (d) => (out += d));
    child.stderr.setEncoding("utf8").on("data", (d) => (err += d));
    child.on("error", rej);
    child.on("exit", (code) => {
      children.delete(child);
      if (code !== 0) {
        let log = "";
        try {
          log = readFileSync(errFile, "utf8").slice(-4000);
        } catch {}
        return rej(new Error(`${mode}: loadgen exited ${code}: ${err}\n${log}`));
      }
      res(JSON.parse(out));
    });
  });
}

// Open-loop paced run with the JavaScript client: call i is sent at t0 + i/rate.
async function paced(mode) {
  if (opt.client === "native") return pacedNative(mode);
  if (opt.client !== "js") throw new Error(`--client must be native or js, not ${opt.client}`);
  const s = makeSession(mode);
  const tools = await s.open();
  const tool = mode === "direct" ? "echo" : "fast__echo";
  if (!tools.includes(tool)) throw new Error(`${mode}: tool ${tool} not listed (${tools})`);
  // Warm up (JIT, allocator, upstream).
  for (let i = 0; i < 500; i++) await s.request("tools/call", { name: tool, arguments: { message: "w" } });
  const lat = [];
  const calls = [];
  const periodNs = 1e9 / opt.rate;
  const t0 = process.hrtime.bigint();
  let sent = 0;
  while (sent < opt.count) {
    const now = Number(process.hrtime.bigint() - t0);
    while (sent < opt.count && sent * periodNs <= now) {
      calls.push(
        s.request("tools/call", { name: tool, arguments: { message: `m${sent}` } }).then((r) => {
          if (r.result?.content?.[0]?.text === undefined) throw new Error(`bad result ${JSON.stringify(r.result)}`);
          lat.push(r.ns / 1000);
        }),
      );
      sent++;
    }
    // setImmediate lets responses in between sends; it also keeps this process busy (a core).
    await new Promise((r) => setImmediate(r));
  }
  await Promise.all(calls);
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  s.close();
  lat.sort((a, b) => a - b);
  return {
    achieved: opt.count / elapsed,
    p50: pct(lat, 50),
    p90: pct(lat, 90),
    p99: pct(lat, 99),
    max: lat[lat.length - 1],
  };
}

// CPU time (user + system, microseconds) a child has used so far, from /proc (Linux; clock
// ticks of 10 ms, so only meaningful over a run of seconds); NaN elsewhere.
function cpuUs(child) {
  try {
    const f = readFileSync(`/proc/${child.pid}/stat`, "utf8").split(") ")[1].split(" ");
    return (Number(f[11]) + Number(f[12])) * 10000; // fields 14, 15 (utime, stime) at 100 Hz
  } catch {
    return NaN;
  }
}

// Closed-loop throughput: `sessions` sessions, `window` calls in flight each.
async function throughput(mode) {
  const sessions = [];
  for (let i = 0; i < opt.sessions; i++) sessions.push(makeSession(mode));
  await Promise.all(sessions.map((s) => s.open()));
  const tool = mode === "direct" ? "echo" : "fast__echo";
  let remaining = opt.tcount;
  const cpu0 = sessions.reduce((a, s) => a + cpuUs(s.child), 0);
  const t0 = process.hrtime.bigint();
  async function lane(s) {
    while (remaining > 0) {
      remaining--;
      await s.request("tools/call", { name: tool, arguments: { message: "t" } });
    }
  }
  const lanes = [];
  for (const s of sessions) for (let w = 0; w < opt.window; w++) lanes.push(lane(s));
  await Promise.all(lanes);
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = sessions.reduce((a, s) => a + cpuUs(s.child), 0) - cpu0;
  sessions.forEach((s) => s.close());
  return { rate: opt.tcount / elapsed, cpuPerCall: cpu / opt.tcount };
}

const f = (x) => x.toFixed(0);
const load = loadavg().map((x) => x.toFixed(1)).join(" ");
console.log(`# gateway added latency: ${cpus().length} CPUs, load average ${load} at start`);
console.log(`# paced ${opt.count} calls at ${opt.rate}/s (${opt.client} client); throughput ${opt.tcount} calls, ${opt.sessions} sessions x ${opt.window} in flight; audit fsync=${opt.fsync}`);
const d = await paced("direct");
const g = await paced("gateway");
await sleep(200);
const dt = await throughput("direct");
const gt = await throughput("gateway");
console.log("");
console.log("| | achieved rate | p50 (us) | p90 (us) | p99 (us) | max (us) | max throughput (calls/s) | CPU of the server process per call (us) |");
console.log("|---|---|---|---|---|---|---|---|");
console.log(`| direct (stdio) | ${f(d.achieved)}/s | ${f(d.p50)} | ${f(d.p90)} | ${f(d.p99)} | ${f(d.max)} | ${f(dt.rate)} | ${f(dt.cpuPerCall)} (echo server) |`);
console.log(`| through writ serve --stdio | ${f(g.achieved)}/s | ${f(g.p50)} | ${f(g.p90)} | ${f(g.p99)} | ${f(g.max)} | ${f(gt.rate)} | ${f(gt.cpuPerCall)} (writ, without its upstream) |`);
console.log(`| **added** | | **${f(g.p50 - d.p50)}** | ${f(g.p90 - d.p90)} | **${f(g.p99 - d.p99)}** | | | |`);
console.log(`\n# load average at end: ${loadavg().map((x) => x.toFixed(1)).join(" ")}`);
clearTimeout(watchdog);
process.exit(0);
