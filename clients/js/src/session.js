// One WebSocket and everything that lives only as long as it does: the handshake
// deadline, heartbeats, the ack batch, the token refresh. dispose() clears all of it,
// so nothing ever writes to a socket that is closing or closed.

import { AckBatcher } from "./acks.js";
import { Heartbeat } from "./heartbeat.js";

const CONNECTING = 0;
const OPEN = 1;

/** @typedef {{token: string, timer: ReturnType<typeof setTimeout>}} PendingRefresh */

export class Session {
  /**
   * @param {WebSocket} ws
   * @param {string} token the token this socket was opened with
   * @param {object} options
   * @param {number} options.ackDelay
   * @param {(ids: string[]) => void | Promise<void>} options.beforeAck
   * @param {(error: unknown) => void} options.onStoreError
   */
  constructor(ws, token, { ackDelay, beforeAck, onStoreError }) {
    this.ws = ws;
    this.token = token;
    this.connected = false;
    this.disposed = false;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.connectTimer = null;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.refreshTimer = null;
    /** @type {PendingRefresh | null} */
    this.pendingRefresh = null;
    /** @type {Heartbeat | null} */
    this.heartbeat = null;
    this.acks = new AckBatcher({
      delay: ackDelay,
      send: (ids) => void this.send({ type: "ack", ids }),
      beforeSend: beforeAck,
      onError: onStoreError,
    });
  }

  /**
   * Write one frame if the socket is open; false (and nothing written) otherwise.
   * @param {Record<string, unknown>} frame
   */
  send(frame) {
    if (this.disposed || this.ws.readyState !== OPEN) return false;
    try {
      this.ws.send(JSON.stringify(frame));
      return true;
    } catch {
      return false;
    }
  }

  /**
   * @param {number} interval ms
   * @param {number} timeout ms
   * @param {() => void} onTimeout
   */
  startHeartbeat(interval, timeout, onTimeout) {
    this.heartbeat = new Heartbeat({
      interval,
      timeout,
      ping: (ts) => void this.send({ type: "ping", ts }),
      onTimeout,
    });
    this.heartbeat.start();
  }

  /**
   * Stop every timer, detach from the socket and close it if it is still open.
   * @param {number} code
   * @param {string} reason
   */
  dispose(code, reason) {
    if (this.disposed) return;
    this.disposed = true;
    for (const timer of [this.connectTimer, this.refreshTimer, this.pendingRefresh?.timer]) {
      if (timer != null) clearTimeout(timer);
    }
    this.connectTimer = this.refreshTimer = this.pendingRefresh = null;
    this.heartbeat?.stop();
    this.acks.close();
    const ws = this.ws;
    // No-op handlers rather than none: Node's `ws` throws on an unhandled 'error'.
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = () => {};
    if (ws.readyState === CONNECTING || ws.readyState === OPEN) {
      try {
        ws.close(code, reason.slice(0, 120));
      } catch {
        // already closing: nothing to do
      }
    }
  }
}
