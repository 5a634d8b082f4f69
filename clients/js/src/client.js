// The Courier client: one logical connection that keeps itself up (see docs/clients.md).
//
// States, as in centrifuge-js: `disconnected` (not started, or stopped for good),
// `connecting` (opening a socket or waiting to retry), `connected` (the server's
// `connected` frame arrived). Every socket lives in a Session; a socket's events are
// ignored once its Session is no longer the current one.

import { Backoff } from "./backoff.js";
import { SeenIds } from "./dedupe.js";
import { Emitter } from "./emitter.js";
import {
  CloseCodes,
  DisconnectedError,
  REFUSALS,
  RefusedError,
  TimeoutError,
  UnauthorizedError,
} from "./errors.js";
import { attachEnvironment } from "./environment.js";
import { Session } from "./session.js";
import { TaskTracker, taskIdOf } from "./tasks.js";
import { refreshDelay, tokenExp } from "./token.js";

/** @typedef {import("./index.js").CourierOptions} CourierOptions */
/** @typedef {import("./index.js").Message} Message */
/** @typedef {import("./index.js").State} State */

const DEFAULTS = {
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

export class Courier extends Emitter {
  /** @type {State} */
  #state = "disconnected";
  /** @type {Session | null} */
  #session = null;
  /** @type {ReturnType<typeof setTimeout> | null} */
  #retryTimer = null;
  /** what a `connecting` client waits for: a timer, the browser to be online, or none */
  /** @type {"timer" | "offline" | null} */
  #waiting = null;
  #offline = false;
  #attempt = 0; // bumped to cancel an open() under way
  #refusals = 0;
  #skew = 0;
  /** @type {Error | null} */
  #error = null;
  /** @type {{resolve: () => void, reject: (e: Error) => void, timer: any}[]} */
  #waiters = [];
  #topics = new Set();
  /** @type {Record<string, unknown>[]} */
  #outbox = [];
  #inflight = new Set();
  #tasks = new TaskTracker();
  /** @type {Promise<void> | null} */
  #seenLoaded = null;
  /** @type {string[]} */
  #toStore = [];
  /** @type {(() => void) | null} */
  #detach = null;

  /**
   * @param {string} url the server (`https://courier.example.com`) or its WebSocket URL
   * @param {CourierOptions} [options]
   */
  constructor(url, options = {}) {
    super();
    this.options = { ...DEFAULTS, ...options };
    const o = this.options;
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
    this.WebSocket = /** @type {any} */ (impl);
    this.url = websocketUrl(url, o);
    this.backoff = new Backoff({
      min: o.minReconnectDelay,
      max: o.maxReconnectDelay,
      stableAfter: o.stableAfter,
      random: o.random,
    });
    this.seen = new SeenIds(o.dedupeSize);
    /** @type {string | null} */
    this.connectionId = null;
    /** @type {string | null} */
    this.userId = null;
    /** true once the server answered a refresh, false if it does not know the frame */
    /** @type {boolean | null} */
    this.refreshSupported = null;
  }

  get state() {
    return this.#state;
  }

  /** The error that stopped the client (a RefusedError after 4401/4403), if any. */
  get error() {
    return this.#error;
  }

  /** Topics the client keeps subscribed (again after every reconnect). */
  get topics() {
    return [...this.#topics];
  }

  /** Start connecting (again, after a stop). */
  connect() {
    if (this.#state !== "disconnected") return this;
    this.#error = null;
    this.#refusals = 0;
    this.#offline = false;
    this.backoff.reset();
    this.#detach = attachEnvironment(this, this.options);
    this.#setState("connecting");
    this.#emit("connecting", { code: 0, reason: "connect called", attempt: 0, delay: 0 });
    void this.#open();
    return this;
  }

  /** Close for good (code 1000); pending acks are sent first. */
  disconnect() {
    this.#session?.acks.flush();
    this.#stop(CloseCodes.NORMAL, "disconnect called", null);
    return this;
  }

  /**
   * Resolves once connected; rejects if the client stops (or after `timeout` ms).
   * @param {number} [timeout]
   * @returns {Promise<void>}
   */
  ready(timeout) {
    if (this.#state === "connected") return Promise.resolve();
    if (this.#state === "disconnected") {
      return Promise.reject(this.#error || new DisconnectedError("not connecting: call connect()"));
    }
    return new Promise((resolve, reject) => {
      const waiter = { resolve, reject, timer: /** @type {any} */ (null) };
      if (timeout !== undefined) {
        waiter.timer = setTimeout(() => {
          this.#waiters = this.#waiters.filter((w) => w !== waiter);
          reject(new TimeoutError(`not connected within ${timeout} ms`));
        }, timeout);
      }
      this.#waiters.push(waiter);
    });
  }

  /** @param {string} topic e.g. `task:123`; kept across reconnects */
  subscribe(topic) {
    if (typeof topic !== "string" || !topic) throw new TypeError("subscribe: a topic string");
    if (this.#topics.has(topic)) return this;
    this.#topics.add(topic);
    if (this.#session?.connected) this.#session.send({ type: "subscribe", topic });
    return this;
  }

  /** @param {string} topic */
  unsubscribe(topic) {
    if (this.#topics.delete(topic) && this.#session?.connected) {
      this.#session.send({ type: "unsubscribe", topic });
    }
    return this;
  }

  /** Live status of one of the user's tasks: its current state first, then each update. */
  /** @param {string} taskId */
  subscribeTask(taskId) {
    return this.subscribe(`task:${taskId}`);
  }

  /** @param {string} taskId */
  unsubscribeTask(taskId) {
    return this.unsubscribe(`task:${taskId}`);
  }

  /**
   * The latest known status of a task (from `tasks`, topic frames or task messages).
   * @param {string} taskId
   */
  task(taskId) {
    return this.#tasks.get(taskId);
  }

  /** Ask the producer of one of the user's tasks to cancel it. */
  /** @param {string} taskId */
  cancel(taskId) {
    this.#sendSoon({ type: "cancel", task_id: taskId });
  }

  /**
   * Answer a message that had `reply_requested` (the reply counts as its ack).
   * @param {string} id
   * @param {unknown} data any JSON value
   */
  reply(id, data) {
    this.#sendSoon({ type: "reply", id, data: data === undefined ? null : data });
    if (this.#inflight.has(id)) this.#settle(id);
  }

  /**
   * Ack messages by hand (with `ack: "manual"`); duplicates are acked for you.
   * @param {string | string[]} ids
   */
  ack(ids) {
    for (const id of Array.isArray(ids) ? ids : [ids]) this.#settle(id);
  }

  // -- environment hooks (environment.js) ------------------------------------------

  /** The browser went offline: drop the socket, wait for `online`. @internal */
  _offline() {
    this.#offline = true;
    if (this.#state === "disconnected") return;
    this.#cancelRetry();
    if (this.#session) this.#lost(this.#session, 0, "offline");
    else this.#retry(0, "offline");
  }

  /** Back online, or the page became visible: retry now instead of waiting. @internal */
  _online() {
    this.#offline = false;
    this._retryNow();
  }

  /** @internal */
  _retryNow() {
    if (this.#state !== "connecting" || this.#waiting === null || this.#offline) return;
    this.#cancelRetry();
    void this.#open();
  }

  /** The page became visible: check a connection at once. @internal */
  _visible() {
    if (this.#state === "connected") this.#session?.heartbeat?.pingNow();
    else this._retryNow();
  }

  /** The page is going away: send pending acks now. @internal */
  _pagehide() {
    void this.#session?.acks.flush();
  }

  // -- connecting ------------------------------------------------------------------

  async #open() {
    const attempt = ++this.#attempt;
    this.#waiting = null;
    let token;
    try {
      await this.#loadSeen();
      token = this.options.getToken ? await this.options.getToken() : this.options.token;
    } catch (error) {
      if (attempt !== this.#attempt || this.#state !== "connecting") return;
      if (error instanceof UnauthorizedError) {
        this.#stop(CloseCodes.UNAUTHORIZED, error.message || "unauthorized", error);
        return;
      }
      this.#emitError({ type: "token", detail: describe(error), error });
      this.#retry(0, "getToken failed");
      return;
    }
    if (attempt !== this.#attempt || this.#state !== "connecting") return;
    if (!token) {
      const error = new UnauthorizedError("getToken gave no token", { code: 4401 });
      this.#stop(CloseCodes.UNAUTHORIZED, error.message, error);
      return;
    }
    let ws;
    try {
      ws = new this.WebSocket(this.url, ["bearer", token]);
    } catch (error) {
      this.#emitError({ type: "transport", detail: describe(error), error });
      this.#retry(0, "could not open a WebSocket");
      return;
    }
    const session = new Session(ws, token, {
      ackDelay: this.options.ackDelay,
      beforeAck: () => this.#flushStore(),
      onStoreError: (error) => this.#emitError({ type: "store", detail: describe(error), error }),
    });
    this.#session = session;
    ws.onmessage = (event) => {
      if (session === this.#session) this.#frame(session, event.data);
    };
    ws.onclose = (event) => {
      if (session === this.#session) this.#lost(session, event.code, event.reason || "");
    };
    ws.onerror = () => {}; // a close event follows
    session.connectTimer = setTimeout(() => {
      this.#lost(session, CloseCodes.CLIENT_TIMEOUT, "no connected frame in time");
    }, this.options.connectTimeout);
  }

  /**
   * A socket is gone (closed by the server, the network, a timeout or `offline`).
   * @param {Session} session
   * @param {number} code
   * @param {string} reason
   */
  #lost(session, code, reason) {
    if (session !== this.#session) return;
    this.#session = null;
    this.connectionId = null;
    session.dispose(code >= 3000 && code < 5000 ? code : CloseCodes.NORMAL, reason);
    this.backoff.down(Date.now());
    if (this.#state === "disconnected") return;
    if (REFUSALS.has(code)) {
      this.#refusals += 1;
      if (this.#refusals >= 2) {
        const error = new RefusedError(`refused by the server: ${code} ${reason}`.trim(), {
          code,
          reason,
        });
        this.#stop(code, reason, error);
        return;
      }
    }
    this.#retry(code, reason);
  }

  /**
   * Wait (backoff with full jitter) and open again; or wait for `online`.
   * @param {number} code
   * @param {string} reason
   */
  #retry(code, reason) {
    this.#setState("connecting");
    if (this.#offline) {
      this.#waiting = "offline";
      this.#emit("connecting", { code, reason, attempt: this.backoff.attempts, delay: null });
      return;
    }
    const delay = Math.round(this.backoff.next());
    this.#waiting = "timer";
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      void this.#open();
    }, delay);
    this.#emit("connecting", { code, reason, attempt: this.backoff.attempts, delay });
  }

  #cancelRetry() {
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    this.#waiting = null;
    this.#attempt += 1; // an open() awaiting getToken gives up
  }

  /**
   * @param {number} code
   * @param {string} reason
   * @param {Error | null} error
   */
  #stop(code, reason, error) {
    if (this.#state === "disconnected") return;
    this.#cancelRetry();
    const session = this.#session;
    this.#session = null;
    this.connectionId = null;
    session?.dispose(CloseCodes.NORMAL, reason);
    this.#detach?.();
    this.#detach = null;
    this.#error = error;
    this.#setState("disconnected");
    if (error) {
      this.#emitError({
        type: error instanceof RefusedError ? "refused" : "unauthorized",
        code,
        detail: reason,
        error,
      });
    }
    this.#emit("disconnected", { code, reason, error });
    const waiters = this.#waiters.splice(0);
    for (const w of waiters) {
      clearTimeout(w.timer);
      w.reject(error || new DisconnectedError(reason, { code, reason }));
    }
  }

  /** @param {State} state */
  #setState(state) {
    if (state === this.#state) return;
    const oldState = this.#state;
    this.#state = state;
    this.#emit("state", { newState: state, oldState });
  }

  // -- frames ------------------------------------------------------------------------

  /**
   * @param {Session} session
   * @param {unknown} data
   */
  #frame(session, data) {
    let frame;
    try {
      frame = JSON.parse(String(data));
    } catch {
      this.#emitError({ type: "protocol", detail: "a frame that is not JSON" });
      return;
    }
    if (!frame || typeof frame.type !== "string") return;
    session.heartbeat?.pong(); // any frame shows the connection is alive
    this.#emit("frame", frame);
    switch (frame.type) {
      case "connected":
        return this.#connected(session, frame);
      case "message":
        return this.#message(session, frame);
      case "topic":
        this.#emit("topic", { topic: frame.topic, data: frame.data });
        if (taskIdOf(frame.topic) !== null) this.#taskUpdate(frame.data);
        return;
      case "subscribed":
      case "unsubscribed":
        return this.#emit(frame.type, { topic: frame.topic });
      case "tasks": {
        const tasks = Array.isArray(frame.tasks) ? frame.tasks : [];
        this.#emit("tasks", { tasks });
        for (const t of tasks) this.#taskUpdate(t);
        return;
      }
      case "broadcast":
        return this.#emit("broadcast", {
          id: frame.id,
          payload: frame.payload,
          system: !!frame.system,
        });
      case "refreshed":
        return this.#refreshed(session, frame);
      case "error":
        return this.#serverError(session, frame);
    }
  }

  /**
   * @param {Session} session
   * @param {any} frame
   */
  #connected(session, frame) {
    if (session.connected) return;
    session.connected = true;
    if (session.connectTimer !== null) clearTimeout(session.connectTimer);
    session.connectTimer = null;
    this.#refusals = 0;
    this.backoff.up(Date.now());
    this.connectionId = frame.connection_id ?? null;
    this.userId = frame.user_id ?? null;
    const serverTime = Date.parse(frame.server_time);
    this.#skew = Number.isFinite(serverTime) ? serverTime - Date.now() : 0;
    const interval = Math.max(0.05, Number(frame.heartbeat_interval) || 30) * 1000;
    session.startHeartbeat(interval, Math.min(this.options.pongTimeout, interval), () =>
      this.#lost(session, CloseCodes.CLIENT_TIMEOUT, "no pong in time"),
    );
    this.#setState("connected");
    for (const topic of this.#topics) session.send({ type: "subscribe", topic });
    for (const f of this.#outbox.splice(0)) session.send(f);
    this.#scheduleRefresh(session);
    this.#emit("connected", {
      connectionId: this.connectionId,
      userId: this.userId,
      heartbeatInterval: interval / 1000,
      serverTime: frame.server_time,
    });
    const waiters = this.#waiters.splice(0);
    for (const w of waiters) {
      clearTimeout(w.timer);
      w.resolve();
    }
  }

  /**
   * @param {Session} session
   * @param {any} frame
   */
  #message(session, frame) {
    const id = frame.id;
    if (typeof id !== "string") return;
    if (this.seen.has(id) || this.#inflight.has(id)) {
      if (this.seen.has(id)) session.acks.add(id); // handled before: ack again
      this.#emit("duplicate", { id, attempt: frame.attempt });
      return;
    }
    this.#inflight.add(id);
    /** @type {Message} */
    const message = {
      id,
      priority: frame.priority,
      payload: frame.payload,
      createdAt: frame.created_at,
      attempt: frame.attempt,
      topic: frame.topic,
      collapseKey: frame.collapse_key,
      replyRequested: frame.reply_requested === true,
      frame,
      ack: () => this.ack(id),
      reply: (data) => this.reply(id, data),
    };
    if (taskIdOf(frame.topic) !== null) this.#taskUpdate(frame.payload);
    const results = this.emitCollect("message", message);
    if (this.options.ack === "manual") {
      for (const r of results) r.catch((error) => this.#handlerError(error, id));
      return;
    }
    Promise.all(results).then(
      () => this.#settle(id),
      (error) => {
        this.#inflight.delete(id); // not acked: the server sends it again
        this.#handlerError(error, id);
      },
    );
  }

  /**
   * Handled (or acked by hand): remember the id and ack it.
   * @param {string} id
   */
  #settle(id) {
    if (!this.seen.has(id)) {
      this.#inflight.delete(id);
      this.seen.add(id);
      if (this.options.seenStore) {
        this.#toStore.push(id);
        if (this.#toStore.length === 1) setTimeout(() => void this.#flushStore(), 0);
      }
    }
    this.#session?.acks.add(id); // none: the redelivery after reconnecting is acked
  }

  async #loadSeen() {
    const store = this.options.seenStore;
    if (!store) return;
    this.#seenLoaded ||= (async () => {
      try {
        for (const id of await store.load()) this.seen.add(id);
      } catch (error) {
        this.#emitError({ type: "store", detail: describe(error), error });
      }
    })();
    await this.#seenLoaded;
  }

  /**
   * Write the ids handled since the last write (before their ack goes out). Stays
   * synchronous for a synchronous store (sessionStorage), so a pagehide flush is too.
   * @returns {void | Promise<void>}
   */
  #flushStore() {
    const store = this.options.seenStore;
    if (!store || !this.#toStore.length) return;
    const ids = this.#toStore.splice(0);
    /** @param {unknown} error */
    const failed = (error) => this.#emitError({ type: "store", detail: describe(error), error });
    try {
      const written = store.add(ids);
      if (written && typeof written.then === "function") return written.then(undefined, failed);
    } catch (error) {
      failed(error);
    }
  }

  /** @param {any} data */
  #taskUpdate(data) {
    const state = this.#tasks.update(data);
    if (state) this.#emit("task", state);
  }

  /**
   * @param {Session} session
   * @param {any} frame
   */
  #serverError(session, frame) {
    const pending = session.pendingRefresh;
    const code = String(frame.code ?? "");
    if (pending && (code === "unknown_type" || /token|refresh|auth/i.test(code))) {
      this.#refreshFailed(session, code, String(frame.detail ?? ""));
      return;
    }
    this.#emitError({ type: "server", code, detail: frame.detail, frame });
  }

  // -- token refresh on an open connection ------------------------------------------

  /** @param {Session} session */
  #scheduleRefresh(session, retry = false) {
    const exp = tokenExp(session.token);
    if (exp === null || !this.options.getToken || this.refreshSupported === false) return;
    const remaining = exp * 1000 - (Date.now() + this.#skew);
    if (remaining <= 0) return; // the server closes it (4401), and we reconnect
    const delay = retry
      ? Math.min(remaining / 3, 5000)
      : refreshDelay(remaining, this.options.refreshMargin);
    if (session.refreshTimer !== null) clearTimeout(session.refreshTimer);
    session.refreshTimer = setTimeout(() => void this.#refresh(session), delay);
  }

  /** @param {Session} session */
  async #refresh(session) {
    session.refreshTimer = null;
    if (session !== this.#session || !session.connected || !this.options.getToken) return;
    let token;
    try {
      token = await this.options.getToken();
    } catch (error) {
      if (session !== this.#session) return;
      if (error instanceof UnauthorizedError) {
        this.#stop(CloseCodes.UNAUTHORIZED, error.message || "unauthorized", error);
        return;
      }
      this.#emitError({ type: "refresh", detail: describe(error), error });
      this.#scheduleRefresh(session, true);
      return;
    }
    if (session !== this.#session || !session.connected || !token) return;
    const timer = setTimeout(
      () => this.#refreshFailed(session, "timeout", "no refreshed frame in time"),
      this.options.refreshTimeout,
    );
    session.pendingRefresh = { token, timer };
    session.send({ type: "refresh", token });
  }

  /**
   * @param {Session} session
   * @param {any} frame
   */
  #refreshed(session, frame) {
    const pending = session.pendingRefresh;
    if (!pending) return;
    clearTimeout(pending.timer);
    session.pendingRefresh = null;
    session.token = pending.token;
    this.refreshSupported = true;
    this.#emit("refreshed", { exp: frame.exp ?? tokenExp(pending.token) });
    this.#scheduleRefresh(session);
  }

  /**
   * @param {Session} session
   * @param {string} code
   * @param {string} detail
   */
  #refreshFailed(session, code, detail) {
    if (session.pendingRefresh) clearTimeout(session.pendingRefresh.timer);
    session.pendingRefresh = null;
    if (session !== this.#session) return;
    if (code === "unknown_type") {
      this.refreshSupported = false;
      this.#emitError({
        type: "refresh",
        code: "unsupported",
        detail: "the server does not know the refresh frame; this connection keeps its token",
      });
      return;
    }
    this.#emitError({ type: "refresh", code, detail });
    this.#scheduleRefresh(session, true);
  }

  // -- sending and events ------------------------------------------------------------

  /**
   * Send now if connected, else after the next `connected` frame.
   * @param {Record<string, unknown>} frame
   */
  #sendSoon(frame) {
    if (this.#session?.connected && this.#session.send(frame)) return;
    this.#outbox.push(frame);
    if (this.#outbox.length > this.options.outboxSize) {
      const dropped = this.#outbox.shift();
      this.#emitError({ type: "outbox", detail: "outbox full: dropped the oldest frame", frame: dropped });
    }
  }

  /**
   * @param {unknown} error
   * @param {string} id
   */
  #handlerError(error, id) {
    this.#emitError({ type: "handler", detail: describe(error), error, id });
  }

  /** @param {Record<string, unknown> & {type: string}} ctx */
  #emitError(ctx) {
    this.#emit("error", ctx);
  }

  /**
   * Call listeners; one that throws becomes an `error` event (never our exception).
   * @param {string} event
   * @param {unknown} ctx
   */
  #emit(event, ctx) {
    for (const result of this.emitCollect(event, ctx)) {
      result.catch((error) => {
        if (event !== "error") this.#emitError({ type: "handler", detail: describe(error), error, event });
      });
    }
  }
}

/** @param {unknown} error */
function describe(error) {
  return error instanceof Error ? error.message : String(error);
}
