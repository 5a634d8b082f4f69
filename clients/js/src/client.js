// The Courier client: one logical connection that keeps itself up (see docs/clients.md).
//
// States, as in centrifuge-js: `disconnected` (not started, or stopped for good),
// `connecting` (opening a socket or waiting to retry), `connected` (the server's
// `connected` frame arrived). Every socket lives in a Session; a socket's events are
// ignored once its Session is no longer the current one.

import { Backoff } from "./backoff.js";
import { Deliveries, describe } from "./deliveries.js";
import { Emitter } from "./emitter.js";
import {
  CloseCodes,
  DisconnectedError,
  REFUSALS,
  RefusedError,
  UnauthorizedError,
} from "./errors.js";
import { attachEnvironment } from "./environment.js";
import { resolveOptions, websocketUrl } from "./options.js";
import { Refresher } from "./refresh.js";
import { Session } from "./session.js";
import { TaskTracker, taskIdOf } from "./tasks.js";
import { Waiters } from "./waiters.js";

/** @typedef {import("./index.js").CourierOptions} CourierOptions */
/** @typedef {import("./index.js").State} State */

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
  #waiters = new Waiters();
  #topics = new Set();
  /** @type {Record<string, unknown>[]} */
  #outbox = [];
  #tasks = new TaskTracker();
  /** @type {Deliveries} */
  #deliveries;
  /** @type {Refresher} */
  #refresher;
  /** @type {(() => void) | null} */
  #detach = null;

  /**
   * @param {string} url the server (`https://courier.example.com`) or its WebSocket URL
   * @param {CourierOptions} [options]
   */
  constructor(url, options = {}) {
    super();
    const { options: o, WebSocketImpl } = resolveOptions(options);
    this.options = o;
    this.WebSocket = WebSocketImpl;
    this.url = websocketUrl(url, o);
    this.backoff = new Backoff({
      min: o.minReconnectDelay,
      max: o.maxReconnectDelay,
      stableAfter: o.stableAfter,
      random: o.random,
    });
    this.#deliveries = new Deliveries({
      mode: o.ack,
      size: o.dedupeSize,
      store: o.seenStore,
      acks: () => this.#session?.acks ?? null,
      dispatch: (message) => this.emitCollect("message", message),
      reply: (id, data) => this.reply(id, data),
      emit: (event, ctx) => this.#emit(event, ctx),
    });
    this.#refresher = new Refresher({
      getToken: o.getToken,
      margin: o.refreshMargin,
      timeout: o.refreshTimeout,
      current: () => this.#session,
      skew: () => this.#skew,
      emit: (event, ctx) => this.#emit(event, ctx),
      signedOut: (error) => this.#stop(CloseCodes.UNAUTHORIZED, error.message || "unauthorized", error),
    });
    /** @type {string | null} */
    this.connectionId = null;
    /** @type {string | null} */
    this.userId = null;
  }

  /** Handled ids remembered in memory (the dedupe set). */
  get seen() {
    return this.#deliveries.seen;
  }

  /** true once the server answered a refresh, false if it does not know the frame. */
  get refreshSupported() {
    return this.#refresher.supported;
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
    return this.#waiters.wait(timeout);
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
    // the server marks a replied message delivered: no ack frame on top of the reply
    if (this.#deliveries.isInflight(id)) this.#deliveries.settle(id, { ack: false });
  }

  /**
   * Ack messages by hand (with `ack: "manual"`); duplicates are acked for you.
   * @param {string | string[]} ids
   */
  ack(ids) {
    for (const id of Array.isArray(ids) ? ids : [ids]) this.#deliveries.settle(id);
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
      await this.#deliveries.load();
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
      beforeAck: () => this.#deliveries.flushStore(),
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
    this.#waiters.reject(error || new DisconnectedError(reason, { code, reason }));
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
        if (taskIdOf(frame.topic) !== null) this.#taskUpdate(frame.payload);
        return this.#deliveries.receive(frame);
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
        return this.#refresher.refreshed(session, frame);
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
    this.#refresher.schedule(session);
    this.#emit("connected", {
      connectionId: this.connectionId,
      userId: this.userId,
      heartbeatInterval: interval / 1000,
      serverTime: frame.server_time,
    });
    this.#waiters.resolve();
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
    if (this.#refresher.errorFrame(session, frame)) return;
    this.#emitError({ type: "server", code: String(frame.code ?? ""), detail: frame.detail, frame });
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
