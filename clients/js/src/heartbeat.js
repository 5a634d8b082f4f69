// Heartbeats: a `ping` every `heartbeat_interval` (from the `connected` frame); a
// `pong` that does not come back within the timeout means the connection is dead.

export class Heartbeat {
  /**
   * @param {object} options
   * @param {number} options.interval ms between pings
   * @param {number} options.timeout ms to wait for the pong
   * @param {(ts: number) => void} options.ping sends `{"type": "ping", "ts"}`
   * @param {() => void} options.onTimeout the pong is late: close and reconnect
   */
  constructor({ interval, timeout, ping, onTimeout }) {
    this.interval = interval;
    this.timeout = timeout;
    this.ping = ping;
    this.onTimeout = onTimeout;
    /** @type {ReturnType<typeof setInterval> | null} */
    this.ticker = null;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.deadline = null;
    this.stopped = false;
    /** round trip of the last pong, ms */
    this.rtt = /** @type {number | null} */ (null);
    this.sentAt = 0;
  }

  start() {
    if (this.stopped || this.ticker !== null) return;
    this.ticker = setInterval(() => this.pingNow(), this.interval);
  }

  /** Ping now (e.g. the page became visible again) unless a ping is unanswered. */
  pingNow() {
    if (this.stopped || this.deadline !== null) return;
    this.sentAt = Date.now();
    this.deadline = setTimeout(() => {
      this.deadline = null;
      if (!this.stopped) this.onTimeout();
    }, this.timeout);
    this.ping(this.sentAt);
  }

  pong() {
    if (this.deadline !== null) {
      clearTimeout(this.deadline);
      this.deadline = null;
      this.rtt = Date.now() - this.sentAt;
    }
  }

  stop() {
    this.stopped = true;
    if (this.ticker !== null) clearInterval(this.ticker);
    if (this.deadline !== null) clearTimeout(this.deadline);
    this.ticker = this.deadline = null;
  }
}
