// Token refresh on an open connection: before `exp`, a fresh getToken() goes as
// {"type": "refresh", "token"}; the server answers {"type": "refreshed", "exp"}. A
// refused refresh is tried again before `exp`; a server that does not know the frame
// (`unknown_type`) is remembered, and the connection keeps its first token.

import { UnauthorizedError } from "./errors.js";
import { describe } from "./deliveries.js";
import { refreshDelay, tokenExp } from "./token.js";

/** @typedef {import("./session.js").Session} Session */

export class Refresher {
  /** true once the server answered a refresh, false if it does not know the frame */
  /** @type {boolean | null} */
  supported = null;

  /**
   * @param {object} o
   * @param {(() => string | Promise<string>) | undefined} o.getToken
   * @param {number} o.margin ms before `exp`
   * @param {number} o.timeout ms to wait for `refreshed`
   * @param {() => Session | null} o.current the open socket's session
   * @param {() => number} o.skew server clock minus ours, ms
   * @param {(event: string, ctx: Record<string, unknown>) => void} o.emit
   * @param {(error: UnauthorizedError) => void} o.signedOut getToken() said so: stop
   */
  constructor({ getToken, margin, timeout, current, skew, emit, signedOut }) {
    this.getToken = getToken;
    this.margin = margin;
    this.timeout = timeout;
    this.current = current;
    this.skew = skew;
    this.emit = emit;
    this.signedOut = signedOut;
  }

  /**
   * Arm the session's refresh timer for its token's `exp` (a retry comes sooner).
   * @param {Session} session
   */
  schedule(session, retry = false) {
    const exp = tokenExp(session.token);
    if (exp === null || !this.getToken || this.supported === false) return;
    const remaining = exp * 1000 - (Date.now() + this.skew());
    if (remaining <= 0) return; // the server closes it (4401) and the reconnect gets a new one
    const delay = retry ? Math.min(remaining / 3, 5000) : refreshDelay(remaining, this.margin);
    if (session.refreshTimer !== null) clearTimeout(session.refreshTimer);
    session.refreshTimer = setTimeout(() => void this.#run(session), delay);
  }

  /** @param {Session} session */
  #live(session) {
    return session === this.current() && session.connected;
  }

  /** @param {Session} session */
  async #run(session) {
    session.refreshTimer = null;
    if (!this.#live(session) || !this.getToken) return;
    let token;
    try {
      token = await this.getToken();
    } catch (error) {
      if (!this.#live(session)) return;
      if (error instanceof UnauthorizedError) return this.signedOut(error);
      this.emit("error", { type: "refresh", detail: describe(error), error });
      this.schedule(session, true);
      return;
    }
    if (!this.#live(session) || !token) return;
    const timer = setTimeout(
      () => this.#failed(session, "timeout", "no refreshed frame in time"),
      this.timeout,
    );
    session.pendingRefresh = { token, timer };
    session.send({ type: "refresh", token });
  }

  /**
   * The `refreshed` frame.
   * @param {Session} session
   * @param {any} frame
   */
  refreshed(session, frame) {
    const pending = session.pendingRefresh;
    if (!pending) return;
    clearTimeout(pending.timer);
    session.pendingRefresh = null;
    session.token = pending.token;
    this.supported = true;
    this.emit("refreshed", { exp: frame.exp ?? tokenExp(pending.token) });
    this.schedule(session);
  }

  /**
   * An `error` frame: true if it answers the refresh under way.
   * @param {Session} session
   * @param {any} frame
   */
  errorFrame(session, frame) {
    const code = String(frame.code ?? "");
    if (!session.pendingRefresh) return false;
    if (code !== "unknown_type" && !/token|refresh|auth/i.test(code)) return false;
    this.#failed(session, code, String(frame.detail ?? ""));
    return true;
  }

  /**
   * @param {Session} session
   * @param {string} code
   * @param {string} detail
   */
  #failed(session, code, detail) {
    if (session.pendingRefresh) clearTimeout(session.pendingRefresh.timer);
    session.pendingRefresh = null;
    if (!this.#live(session)) return;
    if (code === "unknown_type") {
      this.supported = false;
      this.emit("error", {
        type: "refresh",
        code: "unsupported",
        detail: "the server does not know the refresh frame; this connection keeps its token",
      });
      return;
    }
    this.emit("error", { type: "refresh", code, detail });
    this.schedule(session, true);
  }
}
