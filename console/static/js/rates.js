// Deployment-wide rates from GET /v1/stats/totals: every Courier process publishes
// what it counted since it started; two readings give, per process, what it did in
// between (a process seen once, or restarted under a new name, adds nothing), and the
// sum over processes divided by the time between the readings is the rate. `enqueued`
// is the exception: a backend's own producer is no Courier process, so its rate comes
// from the deployment's own count in Redis (the reading's `enqueued`, every partition).

export const NAMES = ["enqueued", "delivered", "retried", "parked", "expired", "dead"];
export const WINDOW = 150; // points kept: 5 minutes at one reading every 2 s

export class Rates {
  constructor() {
    /** @type {Map<string, Record<string, number>> | null} */
    this.last = null;
    /** @type {number | null} the deployment's enqueued count at the last reading */
    this.lastEnqueued = null;
    this.lastAt = 0;
    /** x: epoch seconds; one array per name of per-second rates, one of counts */
    this.x = /** @type {number[]} */ ([]);
    this.rate = Object.fromEntries(NAMES.map((n) => [n, /** @type {number[]} */ ([])]));
    this.count = Object.fromEntries(NAMES.map((n) => [n, /** @type {number[]} */ ([])]));
    this.since = Date.now();
  }

  /**
   * Take one reading (the body of /v1/stats/totals) made at `now` (ms, this clock).
   * @param {{processes: Array<Record<string, any>>, enqueued?: number}} totals
   * @param {number} now
   */
  add(totals, now) {
    const current = new Map(totals.processes.map((p) => [String(p.process), p]));
    if (this.last) {
      const dt = Math.max((now - this.lastAt) / 1000, 0.001);
      this.x.push(now / 1000);
      for (const name of NAMES) {
        let delta = 0;
        if (name === "enqueued" && typeof totals.enqueued === "number" && this.lastEnqueued !== null) {
          delta = Math.max(0, totals.enqueued - this.lastEnqueued);
        } else {
          for (const [proc, row] of current) {
            const before = this.last.get(proc);
            if (before) delta += Math.max(0, Number(row[name] || 0) - Number(before[name] || 0));
          }
        }
        this.rate[name].push(delta / dt);
        this.count[name].push(delta);
      }
      if (this.x.length > WINDOW) {
        this.x.shift();
        for (const name of NAMES) {
          this.rate[name].shift();
          this.count[name].shift();
        }
      }
    } else {
      this.since = now;
    }
    this.last = current;
    this.lastEnqueued = typeof totals.enqueued === "number" ? totals.enqueued : null;
    this.lastAt = now;
  }

  /** @param {string} name */
  total(name) {
    return this.count[name].reduce((a, b) => a + b, 0);
  }

  /** @param {string} name */
  now(name) {
    const r = this.rate[name];
    return r.length ? r[r.length - 1] : null;
  }

  /** seconds the window covers */
  span() {
    return this.x.length ? Math.round((this.lastAt - (this.x.length === WINDOW ? this.x[0] * 1000 : this.since)) / 1000) : 0;
  }
}
