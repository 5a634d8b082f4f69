// Reconnect delays: exponential backoff with full jitter, and the rule that resets it.

/**
 * The delay before reconnect attempt `attempt` (0 for the first retry): uniform in
 * [0, min(max, min * 2 ** attempt)] ("full jitter"), so that many clients that lost
 * the same server do not come back in step.
 *
 * @param {number} attempt failures in a row before this one (0, 1, 2, ...)
 * @param {number} min the cap of the first delay, in ms (doubles per failure)
 * @param {number} max the largest cap, in ms
 * @param {() => number} [random] uniform in [0, 1)
 * @returns {number} milliseconds
 */
export function backoffDelay(attempt, min, max, random = Math.random) {
  const cap = Math.min(max, min * 2 ** Math.min(Math.max(attempt, 0), 31));
  return random() * cap;
}

/**
 * Counts failures in a row and gives the next delay. The count resets only when a
 * connection stayed up for `stableAfter` ms: a server that accepts and then drops the
 * socket at once (a refused token, a crash loop) keeps the delays growing.
 */
export class Backoff {
  /**
   * @param {{min: number, max: number, stableAfter: number, random?: () => number}} options
   */
  constructor({ min, max, stableAfter, random = Math.random }) {
    this.min = min;
    this.max = max;
    this.stableAfter = stableAfter;
    this.random = random;
    /** failures in a row */
    this.attempts = 0;
    /** @type {number | null} when the current connection came up (ms) */
    this.upSince = null;
  }

  /** @returns {number} the delay before the next attempt (ms); counts one failure */
  next() {
    const delay = backoffDelay(this.attempts, this.min, this.max, this.random);
    this.attempts += 1;
    return delay;
  }

  /**
   * A connection came up (its `connected` frame arrived) at `now` (ms).
   * @param {number} now
   */
  up(now) {
    this.upSince = now;
  }

  /**
   * The connection went down at `now` (ms): reset if it stayed up long enough.
   * @param {number} now
   */
  down(now) {
    if (this.upSince !== null && now - this.upSince >= this.stableAfter) {
      this.attempts = 0;
    }
    this.upSince = null;
  }

  reset() {
    this.attempts = 0;
    this.upSince = null;
  }
}
