// Options: the defaults (times in ms, as centrifuge-js) and the WebSocket URL.

/** @typedef {import("./index.js").CourierOptions} CourierOptions */

export const DEFAULTS = {
  minReconnectDelay: 500,
  maxReconnectDelay: 20000,
  stableAfter: 5000,
  connectTimeout: 10000,
  pongTimeout: 10000,
  ackDelay: 20,
  ack: /** @type {"auto" | "manual"} */ ("auto"),
  dedupeSize: 10000,
  refreshMargin: 30000,
  refreshTimeout: 10000,
  outboxSize: 1000,
};

/**
 * The WebSocket URL: http(s) becomes ws(s); a bare origin gets `/v1/ws` (or
 * `/v1/ws/{user}`); `device` goes in the query.
 *
 * @param {string} url
 * @param {{user?: string, device?: string}} options
 */
export function websocketUrl(url, { user, device } = {}) {
  const u = new URL(url, globalThis.location?.href);
  if (u.protocol === "http:") u.protocol = "ws:";
  else if (u.protocol === "https:") u.protocol = "wss:";
  if (u.protocol !== "ws:" && u.protocol !== "wss:") {
    throw new TypeError(`Courier: a ws://, wss://, http:// or https:// URL, not ${url}`);
  }
  if (u.pathname === "/" || u.pathname === "") {
    u.pathname = user ? `/v1/ws/${encodeURIComponent(user)}` : "/v1/ws";
  }
  if (device) u.searchParams.set("device", device);
  return u.toString();
}

/**
 * The options with their defaults, and the WebSocket constructor to use.
 * @param {CourierOptions} options
 */
export function resolveOptions(options) {
  const o = { ...DEFAULTS, ...options };
  if (!o.getToken && !o.token) {
    throw new TypeError("Courier: pass getToken (a function) or token (a string)");
  }
  const impl = o.websocket || globalThis.WebSocket;
  if (typeof impl !== "function") {
    throw new TypeError(
      "Courier: no WebSocket here; pass { websocket: WebSocket } (e.g. from the 'ws' package on Node 20)",
    );
  }
  /** @type {new (url: string, protocols: string[]) => WebSocket} */
  const WebSocketImpl = /** @type {any} */ (impl);
  return { options: o, WebSocketImpl };
}
