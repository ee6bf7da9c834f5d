// Shared helpers for the end-to-end tests (not a test file itself: node --test only picks up
// *_test.mjs here). Every child process is bounded by a timeout and killed with SIGKILL.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const NODE = process.execPath;
export const CLIENT = join(REPO, "tests/e2e/client.mjs");

// The real servers, each as [command, ...args] speaking MCP on stdio.
const MCP = join(REPO, "node_modules/@modelcontextprotocol");
export const SERVERS = {
  everything: () => [NODE, join(MCP, "server-everything/dist/index.js"), "stdio"],
  filesystem: (root) => [NODE, join(MCP, "server-filesystem/dist/index.js"), root],
  memory: () => [NODE, join(MCP, "server-memory/dist/index.js")],
  finance: () => [NODE, join(REPO, "examples/quickstart/servers/finance-server.mjs")],
};

// Default bounds (milliseconds). The client's own watchdog fires first; the outer kill is
// the backstop in case the client itself hangs.
export const REQUEST_TIMEOUT_MS = 15000;
export const CLIENT_TOTAL_TIMEOUT_MS = 60000;
export const PROCESS_TIMEOUT_MS = 75000;
export const TEST_TIMEOUT_MS = 90000;

export function tempDir(t, prefix = "writ-e2e-") {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// Runs `cmd args...` with a hard timeout; resolves {code, signal, stdout, stderr, timedOut}.
export function run(cmd, args, { env = process.env, cwd = REPO, timeoutMs = PROCESS_TIMEOUT_MS, input } = {}) {
  return new Promise((resolvePromise) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout.setEncoding("utf8").on("data", (d) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.on("error", (e) => {
      clearTimeout(timer);
      resolvePromise({ code: null, signal: null, stdout, stderr: stderr + String(e), timedOut, spawnError: e });
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout, stderr, timedOut });
    });
    child.stdin.on("error", () => {});
    child.stdin.end(input ?? "");
  });
}

// Runs client.mjs against `command` (an array) with the given scenario steps. Returns the
// process outcome plus `lines` (parsed JSON lines) and `step(name)` to look one up.
export async function runClient(t, command, steps, { env = process.env, dir } = {}) {
  const work = dir ?? tempDir(t);
  const scenarioPath = join(work, `scenario-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(scenarioPath, JSON.stringify({ steps }, null, 2));
  const out = await run(
    NODE,
    [
      CLIENT,
      "--scenario", scenarioPath,
      "--request-timeout", String(REQUEST_TIMEOUT_MS),
      "--total-timeout", String(CLIENT_TOTAL_TIMEOUT_MS),
      "--",
      ...command,
    ],
    { env, timeoutMs: PROCESS_TIMEOUT_MS },
  );
  const lines = [];
  for (const raw of out.stdout.split("\n")) {
    if (!raw.trim()) continue;
    try {
      lines.push(JSON.parse(raw));
    } catch {
      throw new Error(`client.mjs printed a line that is not JSON: ${raw}\nstderr:\n${out.stderr}`);
    }
  }
  const step = (name) => {
    const found = lines.find((l) => l.step === name);
    if (!found) throw new Error(`no step "${name}" in client output:\n${out.stdout}\nstderr:\n${out.stderr}`);
    return found;
  };
  const describe = () =>
    `exit ${out.code}${out.signal ? ` (signal ${out.signal})` : ""}${out.timedOut ? " (killed: timeout)" : ""}\n` +
    `stdout:\n${out.stdout}\nstderr:\n${out.stderr}`;
  return { ...out, lines, step, describe };
}

export const toolNames = (listStep) => listStep.result.tools.map((tool) => tool.name);
export const text = (callStep) => (callStep.result?.content ?? []).filter((c) => c.type === "text").map((c) => c.text).join("");

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls `pred` every 25 ms until it returns something truthy (returned) or `ms` pass (throws,
// naming `what`).
export async function waitFor(pred, what, ms = 15000) {
  const until = Date.now() + ms;
  for (;;) {
    const v = pred();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

// Starts `bin serve --config config` (an HTTP gateway listening on 127.0.0.1:0) and resolves
// with { child, port, stderr() } once it prints its address; rejects (and kills it) after 20 s.
export function startHttpGateway(bin, config) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(bin, ["serve", "--config", config], { cwd: REPO, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`gateway did not start: ${stderr}`));
    }, 20000);
    child.stderr.setEncoding("utf8").on("data", (d) => {
      stderr += d;
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolvePromise({ child, port: Number(m[1]), stderr: () => stderr });
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited ${code}: ${stderr}`));
    });
  });
}
