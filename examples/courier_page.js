// What the example pages share: reading the page's query, making the client, and
// saying the connection's state in words.
//
//   ?server=http://127.0.0.1:8000   the Courier server (default: this page's origin)
//   ?token=eyJ...                   a user token (courier token alice), used for every connect
//   ?token_url=/api/courier-token   or: fetch a fresh token there for every (re)connect
//   ?store=session|indexeddb|none   where handled ids are kept across reloads (default session)
//   ?ack_delay=20                   ms to gather acks into one frame
import { Courier, indexedDBStore, sessionStore } from "../clients/js/src/index.js";

const WHY = {
  0: "",
  1000: "closed normally",
  1001: "the server is restarting",
  1006: "the connection dropped",
  1008: "the page read too slowly",
  1011: "the server had an internal error",
  1012: "the server is restarting",
  1013: "the server is full",
  4000: "the server did not answer in time",
  4401: "the server refused the token (missing, expired or wrongly signed)",
  4403: "this user or this page's origin is not allowed",
  4408: "the server missed our heartbeats",
  4429: "too many frames: rate limited",
};

/** @param {number} code @param {string} reason */
export function why(code, reason) {
  const words = WHY[code] ?? `closed with ${code}`;
  return [words, reason && reason !== words ? `(${reason})` : ""].filter(Boolean).join(" ");
}

/** The page's settings from its query string. */
export function pageConfig(search = location.search) {
  const q = new URLSearchParams(search);
  const server = q.get("server") || location.origin;
  const tokenUrl = q.get("token_url");
  const token = q.get("token");
  const store = q.get("store") || "session";
  return {
    q,
    server,
    tokenUrl,
    token,
    store,
    ackDelay: Number(q.get("ack_delay") || 20),
    hasToken: Boolean(tokenUrl || token),
  };
}

/** A client for the page (not connected yet). */
export function makeClient(config, extra = {}) {
  const getToken = config.tokenUrl
    ? async () => {
        const r = await fetch(config.tokenUrl, { cache: "no-store" });
        if (!r.ok) throw new Error(`the token service answered ${r.status}`);
        return (await r.text()).trim();
      }
    : () => config.token || "";
  const seenStore =
    config.store === "indexeddb"
      ? indexedDBStore()
      : config.store === "none"
        ? null
        : sessionStore();
  return new Courier(config.server, { getToken, seenStore, ackDelay: config.ackDelay, ...extra });
}

/**
 * Keep `el` saying what the connection is doing, in words.
 * @param {Courier} courier
 * @param {HTMLElement} el
 */
export function showState(courier, el) {
  /** @type {ReturnType<typeof setInterval> | null} */
  let ticker = null;
  const say = (text, kind) => {
    el.textContent = text;
    el.dataset.state = kind;
  };
  const stopTicker = () => {
    if (ticker) clearInterval(ticker);
    ticker = null;
  };
  courier.on("connecting", ({ code, reason, delay }) => {
    stopTicker();
    const cause = code || reason !== "connect called" ? why(code, reason) : "";
    if (delay === null) {
      say("Offline: waiting for the network to come back.", "offline");
      return;
    }
    if (!cause) {
      say("Connecting…", "connecting");
      return;
    }
    const at = Date.now() + delay;
    const tick = () => {
      const left = Math.max(0, (at - Date.now()) / 1000);
      say(
        left > 0.05
          ? `Reconnecting in ${left.toFixed(1)} s: ${cause}.`
          : `Reconnecting: ${cause}.`,
        "connecting",
      );
      if (left <= 0.05) stopTicker();
    };
    tick();
    ticker = setInterval(tick, 100);
  });
  courier.on("connected", ({ userId, connectionId }) => {
    stopTicker();
    say(`Connected as ${userId} (connection ${connectionId}).`, "connected");
  });
  courier.on("disconnected", ({ code, reason, error }) => {
    stopTicker();
    if (error) say(`Stopped: ${why(code, reason)}. Sign in again, then reload.`, "refused");
    else say("Disconnected.", "disconnected");
  });
  courier.on("error", ({ type, detail }) => {
    if (type === "token" && courier.state === "connecting") {
      el.title = `could not get a token: ${detail}`;
    }
  });
}
