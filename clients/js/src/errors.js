// Errors the client gives to the app (ready() rejections, `error` events).

/** Base class of every error of this package. */
export class CourierError extends Error {
  /**
   * @param {string} message
   * @param {{code?: number | string, reason?: string, cause?: unknown}} [details]
   */
  constructor(message, { code, reason, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = new.target.name;
    /** a close code (number) or an error frame's code (string) */
    this.code = code;
    this.reason = reason;
  }
}

/**
 * The server refused us (close 4401: bad, expired or missing token; 4403: user or
 * origin not allowed) and a fresh token did not help. The client stopped; show the
 * message to the user, then call connect() when there is something new to try.
 */
export class RefusedError extends CourierError {}

/** Throw this from getToken() to say "there is no token" (signed out): the client stops. */
export class UnauthorizedError extends CourierError {}

/** ready() timed out. */
export class TimeoutError extends CourierError {}

/** ready() was waiting and the client was stopped (disconnect()). */
export class DisconnectedError extends CourierError {}

/** Close codes of the protocol (docs/protocol.md), and the client's own. */
export const CloseCodes = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  ABNORMAL: 1006,
  SLOW_READER: 1008,
  TOO_BIG: 1009,
  INTERNAL: 1011,
  SERVER_FULL: 1013,
  UNAUTHORIZED: 4401,
  FORBIDDEN: 4403,
  HEARTBEAT_MISSED: 4408,
  RATE_LIMITED: 4429,
  /** the client's: no pong (or no `connected` frame) in time */
  CLIENT_TIMEOUT: 4000,
});

/** Close codes that a fresh token may fix once; after that the client stops. */
/** @type {Set<number>} */
export const REFUSALS = new Set([CloseCodes.UNAUTHORIZED, CloseCodes.FORBIDDEN]);
