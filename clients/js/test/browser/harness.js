// What the browser suite runs against: a private redis-server, a real `courier serve`
// (from the repository's .venv), a tiny static server for the example pages and the
// package (plus a token endpoint standing in for the app's backend), and Debian's
// Chromium driven by playwright-core (no browser download).

import { spawn, spawnSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { connect as tcpConnect, createServer as tcpServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, extname, join, normalize, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../../..");
export const VENV = process.env.COURIER_VENV || join(ROOT, ".venv");
export const CHROMIUM = process.env.COURIER_CHROMIUM || "/usr/bin/chromium";
export const SECRET = "browser-suite-secret-0123456789abcdef"; // >= 32 bytes for HS256

/** @param {number} ms */
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A free TCP port on 127.0.0.1. */
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

/** A HS256 JWT signed with SECRET (what the app's backend would hand out). */
export function sign(sub, { role = "user", ttl = 3600, secret = SECRET } = {}) {
  const b64 = (/** @type {object} */ o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const head = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub, role, iat: now, exp: now + ttl })}`;
  return `${head}.${createHmac("sha256", secret).update(head).digest("base64url")}`;
}

/** A private redis-server: no persistence, its own folder, a free port. */
export async function startRedis() {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "courier-js-redis-"));
  const proc = spawn(
    "/usr/bin/redis-server",
    ["--bind", "127.0.0.1", "--port", String(port), "--save", "", "--appendonly", "no", "--dir", dir],
    { stdio: "ignore" },
  );
  await until(() => redisPing(port), 5000, "redis-server answers PING");
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

/** `courier serve` on a fixed port (kept across restarts), with its log lines. */
export class CourierServer {
  /** @param {{redisUrl: string, port: number, env?: Record<string, string>}} options */
  constructor({ redisUrl, port, env = {} }) {
    this.port = port;
    this.base = `http://127.0.0.1:${port}`;
    // The outer COURIER_* settings (a test run's) are not this server's.
    const outer = Object.entries(process.env).filter(([k]) => !k.startsWith("COURIER_") && k !== "REDIS_URL");
    this.env = {
      ...Object.fromEntries(outer),
      COURIER_REDIS_URL: redisUrl,
      COURIER_JWT_SECRET: SECRET,
      COURIER_PORT: String(port),
      COURIER_HOST: "127.0.0.1",
      COURIER_LOG_LEVEL: "INFO",
      ...env,
    };
    /** every line the server printed, across restarts */
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
        const r = await fetch(`${this.base}/readyz`);
        return r.ok;
      },
      15000,
      "courier serve is ready",
    );
  }

  /** @param {NodeJS.Signals} [signal] */
  async stop(signal = "SIGTERM") {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((r) => proc.once("exit", r));
    proc.kill(signal);
    const killer = setTimeout(() => proc.kill("SIGKILL"), 10000);
    await exited;
    clearTimeout(killer);
    this.proc = null;
  }

  async restart() {
    await this.stop();
    await this.start();
  }

  /** @param {string} text */
  count(text) {
    return this.lines.filter((l) => l.includes(text)).length;
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

  /** @param {string} user @param {unknown} payload @param {object} [options] */
  async send(user, payload, options = {}) {
    return (await this.api("POST", "/v1/messages", { body: { user_id: user, payload, ...options } })).id;
  }

  /** @param {string} id */
  async status(id) {
    return this.api("GET", `/v1/messages/${id}`, { token: sign("ops", { role: "admin" }) });
  }

  /**
   * Run Python with the repository's venv and the server's settings (the producer side).
   * @param {string} code
   * @param {number} [timeout] ms
   */
  python(code, timeout = 30000) {
    return new Promise((resolveRun, reject) => {
      const proc = spawn(join(VENV, "bin", "python"), ["-c", code], { env: this.env, cwd: ROOT });
      let out = "";
      let err = "";
      proc.stdout.on("data", (d) => (out += d));
      proc.stderr.on("data", (d) => (err += d));
      const timer = setTimeout(() => proc.kill("SIGKILL"), timeout);
      proc.on("exit", (code) => {
        clearTimeout(timer);
        if (code === 0) resolveRun(out.trim());
        else reject(new Error(`python exited ${code}: ${err.trim().split("\n").slice(-5).join("\n")}`));
      });
    });
  }
}

const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css" };
const SERVED = ["examples/", "clients/js/src/"];

/**
 * The pages' host: /examples/* and /clients/js/src/* from the repository, and
 * /token?sub=alice[&ttl=s][&bad=1] (a token as the app's backend would give, counted).
 */
export async function startStatic() {
  const tokens = /** @type {Record<string, number>} */ ({});
  const server = createServer((req, res) => {
    const url = new URL(req.url || "/", "http://x");
    if (url.pathname === "/token") {
      const sub = url.searchParams.get("sub") || "alice";
      tokens[sub] = (tokens[sub] || 0) + 1;
      const ttl = Number(url.searchParams.get("ttl") || 3600);
      const secret = url.searchParams.get("bad") ? "not-the-server-secret-0123456789ab" : SECRET;
      res.writeHead(200, { "Content-Type": "text/plain", "Cache-Control": "no-store" });
      res.end(sign(sub, { ttl, secret }));
      return;
    }
    const rel = normalize(decodeURIComponent(url.pathname)).replace(/^\/+/, "");
    if (!SERVED.some((p) => rel.startsWith(p)) || rel.includes("..")) {
      res.writeHead(404).end("not found");
      return;
    }
    try {
      const body = readFileSync(join(ROOT, rel));
      res.writeHead(200, { "Content-Type": TYPES[extname(rel)] || "application/octet-stream" });
      res.end(body);
    } catch {
      res.writeHead(404).end("not found");
    }
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", () => r(undefined)));
  const { port } = /** @type {import("node:net").AddressInfo} */ (server.address());
  return {
    base: `http://127.0.0.1:${port}`,
    tokens,
    close: () => new Promise((r) => server.close(() => r(undefined))),
  };
}

/** Chromium from Debian, headless, a new empty profile. */
export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
  const { chromium } = await import("playwright-core");
  const profile = mkdtempSync(join(tmpdir(), "courier-js-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 900, height: 560 },
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Is `name` installed? (for skipping with a clear reason) */
export function have(name) {
  return spawnSync("sh", ["-c", `command -v ${name}`]).status === 0;
}
