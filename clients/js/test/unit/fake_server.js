// An in-process Courier stand-in for unit tests: a real WebSocket server (the `ws`
// package) on 127.0.0.1, port 0, speaking the frames of docs/protocol.md. Each test
// scripts what it does on a connection; every frame a client sends is recorded.

import { EventEmitter, once } from "node:events";
import { WebSocket, WebSocketServer } from "ws";

import { Courier } from "../../src/index.js";

/**
 * @typedef {object} Conn
 * @property {number} index 0 for the first connection, 1 for the next ...
 * @property {import("ws").WebSocket} ws
 * @property {string | undefined} token the second subprotocol
 * @property {string[]} protocols
 * @property {string} url
 * @property {any[]} frames what the client sent, parsed
 * @property {number} openedAt
 * @property {(frame: object) => void} send
 * @property {(code?: number, reason?: string) => void} close
 * @property {(extra?: object) => void} hello sends `connected`
 */

/**
 * @param {object} [options]
 * @param {(conn: Conn) => void} [options.onConnection] default: hello()
 * @param {number} [options.heartbeatInterval] seconds, in the `connected` frame
 * @param {boolean} [options.answerPing] default true
 * @param {(conn: Conn, frame: any) => void} [options.onFrame] besides pings
 */
export async function fakeServer(options = {}) {
  const { heartbeatInterval = 30, answerPing = true } = options;
  const wss = new WebSocketServer({
    host: "127.0.0.1",
    port: 0,
    handleProtocols: (protocols) => (protocols.has("bearer") ? "bearer" : false),
  });
  await once(wss, "listening");
  const address = /** @type {import("node:net").AddressInfo} */ (wss.address());
  const events = new EventEmitter();
  /** @type {Conn[]} */
  const connections = [];
  const server = {
    url: `ws://127.0.0.1:${address.port}/v1/ws`,
    connections,
    events,
    options,
    /** every frame of every connection, in order: [conn index, frame] */
    frames: /** @type {[number, any][]} */ ([]),
    /** @param {string} type */
    framesOf(type) {
      return server.frames.filter(([, f]) => f.type === type).map(([i, f]) => ({ conn: i, ...f }));
    },
    get last() {
      return connections[connections.length - 1];
    },
    async close() {
      for (const c of connections) c.ws.terminate();
      await new Promise((resolve) => wss.close(() => resolve(undefined)));
    },
  };
  wss.on("connection", (ws, req) => {
    const protocols = String(req.headers["sec-websocket-protocol"] || "")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean);
    /** @type {Conn} */
    const conn = {
      index: connections.length,
      ws,
      token: protocols[1],
      protocols,
      url: req.url || "",
      frames: [],
      openedAt: Date.now(),
      send: (frame) => {
        if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(frame));
      },
      close: (code = 1000, reason = "") => ws.close(code, reason),
      hello: (extra = {}) =>
        conn.send({
          type: "connected",
          connection_id: `c${conn.index}`,
          user_id: "alice",
          heartbeat_interval: heartbeatInterval,
          server_time: new Date().toISOString(),
          ...extra,
        }),
    };
    connections.push(conn);
    ws.on("message", (data) => {
      const frame = JSON.parse(String(data));
      conn.frames.push(frame);
      server.frames.push([conn.index, frame]);
      if (frame.type === "ping" && answerPing) conn.send({ type: "pong", ts: frame.ts });
      options.onFrame?.(conn, frame);
      events.emit("frame", conn, frame);
    });
    ws.on("error", () => {});
    events.emit("connection", conn);
    (options.onConnection || ((c) => c.hello()))(conn);
  });
  return server;
}

/**
 * A client for the fake server: Node's `ws` as the WebSocket, short delays.
 * @param {{url: string}} server
 * @param {import("../../src/index.js").CourierOptions} [options]
 */
export function client(server, options = {}) {
  return new Courier(server.url, {
    websocket: WebSocket,
    getToken: async () => "token",
    minReconnectDelay: 20,
    maxReconnectDelay: 200,
    networkEvents: false,
    ...options,
  });
}

/**
 * Poll until `check()` is truthy (every 5 ms, at most `timeout` ms); its value.
 * @template T
 * @param {() => T} check
 * @param {number} [timeout]
 * @param {string} [what]
 * @returns {Promise<T>}
 */
export async function waitFor(check, timeout = 3000, what = "condition") {
  const end = Date.now() + timeout;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** @param {number} ms */
export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * A JWT-shaped token with this `exp` (unsigned: the fake server does not verify).
 * @param {number} exp seconds since the epoch
 * @param {string} [sub]
 */
export function tokenWithExp(exp, sub = "alice") {
  const b64 = (/** @type {object} */ o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub, exp })}.sig`;
}

/**
 * A `message` frame.
 * @param {string} id
 * @param {object} [extra]
 */
export function messageFrame(id, extra = {}) {
  return {
    type: "message",
    id,
    priority: "normal",
    payload: { text: `hello ${id}` },
    created_at: new Date().toISOString(),
    attempt: 1,
    ...extra,
  };
}

/**
 * Record a client's events: `log.of("connecting")` lists their contexts.
 * @param {import("../../src/index.js").Courier} courier
 * @param {string[]} names
 */
export function record(courier, names) {
  /** @type {[string, any, number][]} */
  const all = [];
  for (const name of names) {
    courier.on(/** @type {any} */ (name), (/** @type {any} */ ctx) => void all.push([name, ctx, Date.now()]));
  }
  return {
    all,
    /** @param {string} name */
    of: (name) => all.filter(([n]) => n === name).map(([, ctx]) => ctx),
  };
}
