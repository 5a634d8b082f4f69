// The browser's signals: `offline` drops the socket at once and `online` reconnects
// without waiting for the backoff; a page that becomes visible checks its connection
// (a ping) or retries now; `pagehide` sends pending acks. In Node nothing is attached
// unless `networkEventTarget` / `visibilityTarget` are given.

/**
 * @typedef {object} EnvironmentHooks
 * @property {() => void} _offline
 * @property {() => void} _online
 * @property {() => void} _visible
 * @property {() => void} _pagehide
 */

/**
 * @param {EnvironmentHooks} client
 * @param {{networkEvents?: boolean, networkEventTarget?: EventTarget | null,
 *   visibilityTarget?: EventTarget | null}} options
 * @returns {() => void} removes the listeners
 */
export function attachEnvironment(client, options) {
  if (options.networkEvents === false) return () => {};
  const net =
    options.networkEventTarget !== undefined
      ? options.networkEventTarget
      : typeof window !== "undefined"
        ? window
        : null;
  const doc =
    options.visibilityTarget !== undefined
      ? options.visibilityTarget
      : typeof document !== "undefined"
        ? document
        : null;
  /** @type {[EventTarget, string, () => void][]} */
  const attached = [];
  /**
   * @param {EventTarget | null} target
   * @param {string} type
   * @param {() => void} fn
   */
  const on = (target, type, fn) => {
    if (!target || typeof target.addEventListener !== "function") return;
    target.addEventListener(type, fn);
    attached.push([target, type, fn]);
  };
  on(net, "offline", () => client._offline());
  on(net, "online", () => client._online());
  on(net, "pagehide", () => client._pagehide());
  on(doc, "visibilitychange", () => {
    const state = /** @type {{visibilityState?: string}} */ (doc).visibilityState;
    if (state === undefined || state === "visible") client._visible();
  });
  return () => {
    for (const [target, type, fn] of attached.splice(0)) target.removeEventListener(type, fn);
  };
}
