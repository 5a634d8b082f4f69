// The console's calls to the edge it is served by: the admin API under /v1 and the
// page's own sign-in routes under /admin. Paths are relative to the page (/admin/),
// so a reverse proxy that serves Courier under a prefix works too.
//
// The token lives in sessionStorage only: it is gone when the tab closes, and no
// other tab or later visit sees it.

const KEY = "courier.console.token";

export class ApiError extends Error {
  /** @param {number} status @param {string} code @param {string} detail */
  constructor(status, code, detail) {
    super(detail);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

export const session = {
  get token() {
    return sessionStorage.getItem(KEY);
  },
  /** @param {string} token */
  keep(token) {
    sessionStorage.setItem(KEY, token);
  },
  forget() {
    sessionStorage.removeItem(KEY);
  },
};

/** listeners called when the server refuses the kept token (expired, wrong secret) */
const onRefused = /** @type {Set<(e: ApiError) => void>} */ (new Set());
/** @param {(e: ApiError) => void} fn */
export const whenRefused = (fn) => (onRefused.add(fn), () => onRefused.delete(fn));

/**
 * One call; the JSON answer, or an ApiError with the server's `{"error": {code, detail}}`.
 * @param {string} method
 * @param {string} path "v1/..." or "session..." (relative to /admin/)
 * @param {{body?: unknown, token?: string | null}} [options]
 */
export async function call(method, path, { body, token = session.token } = {}) {
  const url = path.startsWith("v1/") ? `../${path}` : path;
  /** @type {Record<string, string>} */
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let r;
  try {
    r = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, "unreachable", `the server did not answer (${e}); is it running?`);
  }
  let json = null;
  try {
    json = await r.json();
  } catch {
    json = null;
  }
  if (!r.ok) {
    const e = json && json.error;
    const err = new ApiError(r.status, e?.code || "error", e?.detail || `${r.status} ${r.statusText}`);
    if (r.status === 401 && token && token === session.token) onRefused.forEach((fn) => fn(err));
    throw err;
  }
  return json;
}

export const get = (/** @type {string} */ path) => call("GET", path);
/** @param {string} path @param {unknown} [body] */
export const post = (path, body) => call("POST", path, { body });
export const del = (/** @type {string} */ path) => call("DELETE", path);
/** @param {string} s */
export const enc = (s) => encodeURIComponent(s);
