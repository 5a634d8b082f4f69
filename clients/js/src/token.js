// Reading a JWT's `exp` (no verification: the server verifies; the client only needs
// to know when to refresh).

/**
 * @param {string} token
 * @returns {number | null} `exp` in seconds since the epoch, or null
 */
export function tokenExp(token) {
  const part = typeof token === "string" ? token.split(".")[1] : undefined;
  if (!part) return null;
  try {
    const b64 = part.replace(/-/g, "+").replace(/_/g, "/");
    const json = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
    const exp = JSON.parse(json).exp;
    return typeof exp === "number" && Number.isFinite(exp) ? exp : null;
  } catch {
    return null;
  }
}

/**
 * When to refresh a token that expires in `remaining` ms: `margin` ms before, but never
 * later than half-way for short tokens.
 *
 * @param {number} remaining
 * @param {number} margin
 */
export function refreshDelay(remaining, margin) {
  return Math.max(0, remaining - Math.min(margin, remaining / 2));
}
