// What every page shares: Preact with htm (no build step), formatting of times and
// numbers, a status badge, a confirmation dialog, and a polling hook.

import { h, render } from "../vendor/preact.mjs";
import { useEffect, useRef, useState } from "../vendor/hooks.mjs";
import htm from "../vendor/htm.mjs";

export const html = htm.bind(h);
export { render, useEffect, useRef, useState };

/** @param {string | null | undefined} iso */
export function time(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  const pad = (/** @type {number} */ n, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** @param {string | null | undefined} iso */
export function ago(iso) {
  if (!iso) return "–";
  const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 60) return `${s.toFixed(0)} s ago`;
  if (s < 3600) return `${(s / 60).toFixed(0)} min ago`;
  if (s < 86400) return `${(s / 3600).toFixed(1)} h ago`;
  return `${(s / 86400).toFixed(1)} d ago`;
}

/** A span of seconds in words: `42 s`, `7 min`, `3 h 5 min`, `2 d 4 h`.
 * @param {number | null | undefined} seconds */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(Number(seconds))) return "–";
  const s = Math.max(0, Math.floor(Number(seconds)));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

/** When a time ahead comes, as an operator reads it: `21:05 (in 7 h 59 min)`.
 * @param {string | null | undefined} iso */
export function until(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  const hm = `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
  return `${hm} (in ${duration((d.getTime() - Date.now()) / 1000)})`;
}

/** @param {number | null | undefined} n */
export const num = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));

/** @param {{status: string}} props */
export const Badge = ({ status }) => html`<span class=${`badge ${status}`} data-status=${status}>${status}</span>`;

/** A link to a page of the console. */
export const Link = (/** @type {{to: string, children?: any}} */ { to, children }) =>
  html`<a href=${`#/${to}`}>${children}</a>`;

/** @param {{error: any}} props */
export function Problem({ error }) {
  if (!error) return null;
  const code = error.code ? html` <code>${error.code}</code>` : null;
  return html`<div class="notice error" role="alert" data-testid="error">${error.detail || String(error)}${code}</div>`;
}

/**
 * Run `load` now and every `ms` (while the page shows); the latest result or error.
 * @template T
 * @param {() => Promise<T>} load
 * @param {number} ms
 * @param {any[]} deps
 */
export function usePoll(load, ms, deps) {
  const [state, setState] = useState(/** @type {{data: T | null, error: any}} */ ({ data: null, error: null }));
  useEffect(() => {
    let stop = false;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    let timer;
    const tick = async () => {
      try {
        const data = await load();
        if (!stop) setState({ data, error: null });
      } catch (error) {
        if (!stop) setState((s) => ({ data: s.data, error }));
      }
      if (!stop && ms > 0) timer = setTimeout(tick, ms);
    };
    tick();
    return () => {
      stop = true;
      clearTimeout(timer);
    };
  }, deps);
  return state;
}

/**
 * Ask before a destructive action: resolves true when the operator confirms.
 * One <dialog> element, made on first use.
 * @param {string} question
 * @param {string} verb the confirm button's label
 * @returns {Promise<boolean>}
 */
export function confirmAction(question, verb) {
  let dialog = /** @type {HTMLDialogElement | null} */ (document.getElementById("confirm"));
  if (!dialog) {
    dialog = document.createElement("dialog");
    dialog.id = "confirm";
    dialog.innerHTML =
      '<p class="question"></p><form method="dialog" class="actions">' +
      '<button value="cancel" class="cancel">Cancel</button>' +
      '<button value="ok" class="danger ok"></button></form>';
    document.body.appendChild(dialog);
  }
  const d = dialog;
  /** @type {HTMLElement} */ (d.querySelector(".question")).textContent = question;
  /** @type {HTMLElement} */ (d.querySelector(".ok")).textContent = verb;
  d.returnValue = "";
  d.showModal();
  return new Promise((resolve) => d.addEventListener("close", () => resolve(d.returnValue === "ok"), { once: true }));
}
