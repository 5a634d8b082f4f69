// What the console's browser suite runs against: a private redis-server, a real
// `courier serve` from the repository's .venv (settings tuned so a message that is
// never acked dies in about a second), WebSocket clients (`ws`), and Debian's
// Chromium driven by playwright-core (no browser download). The same approach as
// clients/js/test/browser/harness.js, trimmed to what the console needs.

import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { connect as tcpConnect, createServer as tcpServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { WebSocket } from "ws";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const VENV = process.env.COURIER_VENV || join(ROOT, ".venv");
export const CHROMIUM = process.env.COURIER_CHROMIUM || "/usr/bin/chromium";
export const SECRET = "console-suite-secret-0123456789abcdef"; // >= 32 bytes for HS256

/** @param {number} ms */
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function freePort() {
  return new Promise((resolvePort, reject) => {
    const s = tcpServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = /** @type {import("node:net").AddressInfo} */ (s.address());
      s.close(() => resolvePort(port));
    });
  });
}

/**
 * Poll `check` every 50 ms until truthy; throws after `timeout` ms.
 * @template T
 * @param {() => T | Promise<T>} check
 * @param {number} timeout
 * @param {string} what
 * @returns {Promise<T>}
 */
export async function until(check, timeout, what) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms: ${what}${last ? ` (${last})` : ""}`);
    await sleep(50);
  }
}

/** A HS256 JWT signed with SECRET. */
export function sign(sub, { role = "user", ttl = 3600 } = {}) {
  const b64 = (/** @type {object} */ o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const head = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub, role, iat: now, exp: now + ttl })}`;
  return `${head}.${createHmac("sha256", SECRET).update(head).digest("base64url")}`;
}

/** A private redis-server: no persistence, its own folder, a free port. */
export async function startRedis() {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "courier-console-redis-"));
  const proc = spawn(
    "/usr/bin/redis-server",
    ["--bind", "127.0.0.1", "--port", String(port), "--save", "", "--appendonly", "no", "--dir", dir],
    { stdio: "ignore" },
  );
  await until(() => proc.exitCode === null && redisPing(port), 5000, "redis-server answers PING");
  return {
    url: `redis://127.0.0.1:${port}/0`,
    async stop() {
      proc.kill("SIGTERM");
      await new Promise((r) => (proc.exitCode !== null ? r(undefined) : proc.once("exit", r)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** @param {number} port */
function redisPing(port) {
  return new Promise((resolvePing) => {
    const s = tcpConnect(port, "127.0.0.1", () => s.write("PING\r\n"));
    s.setTimeout(500, () => s.destroy());
    s.on("data", (d) => {
      resolvePing(String(d).startsWith("+PONG"));
      s.destroy();
    });
    s.on("error", () => resolvePing(false));
  });
}

/** `courier serve` with its log lines. */
export class CourierServer {
  /** @param {{redisUrl: string, port: number, env?: Record<string, string>}} options */
  constructor({ redisUrl, port, env = {} }) {
    this.port = port;
    this.base = `http://127.0.0.1:${port}`;
    const outer = Object.entries(process.env).filter(([k]) => !k.startsWith("COURIER_") && k !== "REDIS_URL");
    this.env = {
      ...Object.fromEntries(outer),
      COURIER_REDIS_URL: redisUrl,
      COURIER_JWT_SECRET: SECRET,
      COURIER_PORT: String(port),
      COURIER_HOST: "127.0.0.1",
      COURIER_LOG_LEVEL: "INFO",
      COURIER_ACK_TIMEOUT_SECONDS: "1",
      COURIER_RETRY_BASE_SECONDS: "0.1",
      COURIER_RETRY_MAX_SECONDS: "0.2",
      COURIER_SCHEDULER_INTERVAL_SECONDS: "0.05",
      ...env,
    };
    this.lines = /** @type {string[]} */ ([]);
    /** @type {import("node:child_process").ChildProcess | null} */
    this.proc = null;
  }

  async start() {
    const bin = join(VENV, "bin", "courier");
    if (!existsSync(bin)) throw new Error(`${bin} is missing: run ./scripts/bootstrap at the repository root`);
    const proc = spawn(bin, ["serve"], { env: this.env, cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    this.proc = proc;
    for (const stream of [proc.stdout, proc.stderr]) {
      let rest = "";
      stream?.on("data", (chunk) => {
        const parts = (rest + chunk).split("\n");
        rest = parts.pop() || "";
        this.lines.push(...parts);
      });
    }
    await until(
      async () => {
        if (proc.exitCode !== null) throw new Error(`courier serve exited ${proc.exitCode}:\n${this.lines.slice(-20).join("\n")}`);
        return (await fetch(`${this.base}/readyz`)).ok;
      },
      15000,
      "courier serve is ready",
    );
  }

  async stop() {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((r) => proc.once("exit", r));
    proc.kill("SIGTERM");
    const killer = setTimeout(() => proc.kill("SIGKILL"), 10000);
    await exited;
    clearTimeout(killer);
    this.proc = null;
  }

  /** @param {string} text */
  logged(text) {
    return this.lines.filter((l) => l.includes(text));
  }

  /**
   * @param {string} method
   * @param {string} path
   * @param {{token?: string, body?: unknown}} [options]
   */
  async api(method, path, { token = sign("backend", { role: "service" }), body } = {}) {
    const r = await fetch(`${this.base}${path}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await r.json();
    if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(json)}`);
    return json;
  }

  /** @param {string} path */
  admin(path) {
    return this.api("GET", path, { token: sign("ops", { role: "admin" }) });
  }

  /** @param {string} user @param {unknown} payload @param {object} [options] */
  async send(user, payload, options = {}) {
    return (await this.api("POST", "/v1/messages", { body: { user_id: user, payload, ...options } })).id;
  }

  /** @param {string} id @param {string} status */
  async reaches(id, status, timeout = 10000) {
    return until(async () => {
      const m = await this.admin(`/v1/messages/${id}`);
      return m.status === status && m;
    }, timeout, `message ${id} is ${status}`);
  }

  /**
   * Run `courier ...` with the server's settings; its stdout.
   * @param {string[]} args
   */
  cli(args) {
    return new Promise((resolveRun, reject) => {
      const proc = spawn(join(VENV, "bin", "courier"), args, { env: this.env, cwd: ROOT });
      let out = "";
      let err = "";
      proc.stdout.on("data", (d) => (out += d));
      proc.stderr.on("data", (d) => (err += d));
      const timer = setTimeout(() => proc.kill("SIGKILL"), 30000);
      proc.on("exit", (code) => {
        clearTimeout(timer);
        if (code === 0) resolveRun(out.trim());
        else reject(new Error(`courier ${args.join(" ")} exited ${code}: ${err.trim()}`));
      });
    });
  }

  /**
   * A WebSocket client of `user`: its frames, its close code, and acks on request.
   * @param {string} user
   * @param {{ack?: boolean, device?: string}} [options] ack: ack every message at once
   */
  async client(user, { ack = true, device = "" } = {}) {
    const q = new URLSearchParams({ token: sign(user) });
    if (device) q.set("device", device);
    const ws = new WebSocket(`ws://127.0.0.1:${this.port}/v1/ws?${q}`);
    const c = {
      ws,
      frames: /** @type {any[]} */ ([]),
      /** @type {number | null} */
      closeCode: null,
      closeReason: "",
      connectionId: "",
    };
    ws.on("message", (data) => {
      const f = JSON.parse(String(data));
      c.frames.push(f);
      if (f.type === "connected") c.connectionId = f.connection_id;
      if (f.type === "message" && ack) ws.send(JSON.stringify({ type: "ack", id: f.id }));
    });
    ws.on("close", (code, reason) => {
      c.closeCode = code;
      c.closeReason = String(reason);
    });
    await until(() => c.connectionId, 5000, `${user} connected`);
    return c;
  }
}

/** Chromium from Debian, headless, a new empty profile, clipboard allowed. */
export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
  const { chromium } = await import("playwright-core");
  const profile = mkdtempSync(join(tmpdir(), "courier-console-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 1280, height: 820 },
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
