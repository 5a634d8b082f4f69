// Messages from arrival to ack: dedupe by id, the app's handlers, the ack once they
// are done (auto) or when the app says so (manual), the persistent store of handled
// ids. Courier delivers at least once, so a message can come twice (same id,
// attempt + 1): it is acked again but handed to the app once.

import { SeenIds } from "./dedupe.js";

/** @typedef {import("./index.js").Message} Message */
/** @typedef {import("./index.js").SeenStore} SeenStore */
/** @typedef {import("./acks.js").AckBatcher} AckBatcher */

export class Deliveries {
  /** @type {Set<string>} handed to the app, not settled yet */
  #inflight = new Set();
  /** @type {string[]} settled, not written to the store yet */
  #toStore = [];
  /** @type {Promise<void> | null} */
  #loaded = null;

  /**
   * @param {object} o
   * @param {"auto" | "manual"} o.mode
   * @param {number} o.size ids remembered in memory
   * @param {SeenStore | null | undefined} o.store
   * @param {() => AckBatcher | null} o.acks the open socket's ack batch, if any
   * @param {(message: Message) => Promise<unknown>[]} o.dispatch the `message` listeners
   * @param {(id: string, data: unknown) => void} o.reply
   * @param {(event: string, ctx: Record<string, unknown>) => void} o.emit
   */
  constructor({ mode, size, store, acks, dispatch, reply, emit }) {
    this.mode = mode;
    this.seen = new SeenIds(size);
    this.store = store || null;
    this.acks = acks;
    this.dispatch = dispatch;
    this.reply = reply;
    this.emit = emit;
  }

  /** Read the store's ids once (before the first connection). */
  load() {
    const store = this.store;
    if (!store) return Promise.resolve();
    this.#loaded ||= (async () => {
      try {
        for (const id of await store.load()) this.seen.add(id);
      } catch (error) {
        this.#storeError(error);
      }
    })();
    return this.#loaded;
  }

  /**
   * A `message` frame arrived on the open socket.
   * @param {any} frame
   */
  receive(frame) {
    const id = frame.id;
    if (typeof id !== "string") return;
    if (this.seen.has(id) || this.#inflight.has(id)) {
      if (this.seen.has(id)) this.acks()?.add(id); // handled before: ack again
      this.emit("duplicate", { id, attempt: frame.attempt });
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
      ack: () => this.settle(id),
      reply: (data) => this.reply(id, data),
    };
    const results = this.dispatch(message);
    if (this.mode === "manual") {
      for (const r of results) r.catch((error) => this.#handlerError(error, id));
      return;
    }
    Promise.all(results).then(
      () => this.settle(id),
      (error) => {
        this.#inflight.delete(id); // not acked: the server sends it again
        this.#handlerError(error, id);
      },
    );
  }

  /** @param {string} id */
  isInflight(id) {
    return this.#inflight.has(id);
  }

  /**
   * Handled (or acked by hand): remember the id, store it, ack it. Without an open
   * socket the ack waits for the redelivery, which is acked as a duplicate.
   * `ack: false` when the server settles it itself (a reply counts as the ack).
   * @param {string} id
   * @param {{ack?: boolean}} [options]
   */
  settle(id, { ack = true } = {}) {
    if (!this.seen.has(id)) {
      this.#inflight.delete(id);
      this.seen.add(id);
      if (this.store) {
        this.#toStore.push(id);
        if (this.#toStore.length === 1) setTimeout(() => void this.flushStore(), 0);
      }
    }
    if (ack) this.acks()?.add(id);
  }

  /**
   * Write the ids settled since the last write; runs before each ack frame. Stays
   * synchronous for a synchronous store (sessionStorage), so a pagehide flush is too.
   * @returns {void | Promise<void>}
   */
  flushStore() {
    const store = this.store;
    if (!store || !this.#toStore.length) return;
    const ids = this.#toStore.splice(0);
    try {
      const written = store.add(ids);
      if (written && typeof written.then === "function") {
        return written.then(undefined, (error) => this.#storeError(error));
      }
    } catch (error) {
      this.#storeError(error);
    }
  }

  /** @param {unknown} error */
  #storeError(error) {
    this.emit("error", { type: "store", detail: describe(error), error });
  }

  /**
   * @param {unknown} error
   * @param {string} id
   */
  #handlerError(error, id) {
    this.emit("error", { type: "handler", detail: describe(error), error, id });
  }
}

/** @param {unknown} error */
export function describe(error) {
  return error instanceof Error ? error.message : String(error);
}
