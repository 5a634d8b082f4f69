// Acks gathered over a few milliseconds and sent as one `{"type": "ack", "ids": [...]}`
// frame (at most MAX_ACK_IDS ids a frame, the server's limit).

export const MAX_ACK_IDS = 1000;

export class AckBatcher {
  /**
   * @param {object} options
   * @param {number} options.delay ms to wait after the first pending id
   * @param {(ids: string[]) => void} options.send writes one ack frame
   * @param {(ids: string[]) => void | Promise<void>} [options.beforeSend] e.g. the
   *   persistent dedupe store: runs (and is awaited) before the frame is sent
   * @param {(error: unknown) => void} [options.onError]
   */
  constructor({ delay, send, beforeSend, onError }) {
    this.delay = delay;
    this.send = send;
    this.beforeSend = beforeSend;
    this.onError = onError || (() => {});
    /** @type {string[]} */
    this.pending = [];
    /** the same ids, to ack each once a frame */
    this.pendingSet = new Set();
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.timer = null;
    this.closed = false;
  }

  /** @param {string} id */
  add(id) {
    if (this.closed || this.pendingSet.has(id)) return;
    this.pending.push(id);
    this.pendingSet.add(id);
    if (this.pending.length >= MAX_ACK_IDS) {
      void this.flush();
    } else if (this.timer === null) {
      this.timer = setTimeout(() => void this.flush(), this.delay);
    }
  }

  /**
   * Send what is pending now: synchronously unless `beforeSend` returns a promise (then
   * the frame goes once it settles).
   * @returns {void | Promise<void>}
   */
  flush() {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    /** @type {Promise<void>[]} */
    const waits = [];
    while (this.pending.length && !this.closed) {
      const ids = this.pending.splice(0, MAX_ACK_IDS);
      for (const id of ids) this.pendingSet.delete(id);
      let before;
      try {
        before = this.beforeSend?.(ids);
      } catch (error) {
        this.onError(error); // the ack still goes: delivery matters more than dedupe
      }
      if (before && typeof before.then === "function") {
        waits.push(
          before.then(
            () => this.#send(ids),
            (error) => {
              this.onError(error);
              this.#send(ids);
            },
          ),
        );
      } else {
        this.#send(ids);
      }
    }
    if (waits.length) return Promise.all(waits).then(() => {});
  }

  /** @param {string[]} ids */
  #send(ids) {
    if (!this.closed) this.send(ids);
  }

  /** Forget what is pending (the socket closed: the server sends those again). */
  close() {
    this.closed = true;
    this.pending = [];
    this.pendingSet.clear();
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }
}
