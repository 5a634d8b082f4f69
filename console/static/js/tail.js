// Live tail: lifecycle events as they happen (GET /v1/events/tail, Server-Sent
// Events read with fetch so the token goes in a header, never in a URL), filtered by
// user and event. With lifecycle events off (COURIER_EVENTS=false) the server answers
// 409 events_disabled, and the page says so.

import { ApiError, session } from "./api.js";
import { Badge, Link, Problem, html, time, useEffect, useState } from "./ui.js";

const EVENTS = ["delivered", "parked", "expired", "dead", "replied", "cancelled", "undelivered"];
const KEEP = 500;

/**
 * Read an SSE body; calls `onEvent` with each event's id, name and parsed data.
 * @param {ReadableStream<Uint8Array>} body
 * @param {(id: string, name: string, data: any) => void} onEvent
 * @param {AbortSignal} signal
 */
export async function readEvents(body, onEvent, signal) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  while (!signal.aborted) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let id = "";
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue; // a comment: keep-alive
        const [field, ...rest] = line.split(":");
        const v = rest.join(":").replace(/^ /, "");
        if (field === "id") id = v;
        else if (field === "event") name = v;
        else if (field === "data") data.push(v);
      }
      if (data.length) onEvent(id, name, JSON.parse(data.join("\n")));
    }
  }
}

export function Tail() {
  const [user, setUser] = useState("");
  const [chosen, setChosen] = useState(/** @type {Set<string>} */ (new Set(EVENTS)));
  const [filter, setFilter] = useState({ user: "", events: EVENTS });
  const [state, setState] = useState(/** @type {{kind: string, error?: any}} */ ({ kind: "connecting" }));
  const [events, setEvents] = useState(/** @type {any[]} */ ([]));
  useEffect(() => {
    const abort = new AbortController();
    const q = new URLSearchParams();
    if (filter.user) q.set("user_id", filter.user);
    if (filter.events.length < EVENTS.length) for (const e of filter.events) q.append("event", e);
    setState({ kind: "connecting" });
    (async () => {
      try {
        const r = await fetch(`../v1/events/tail?${q}`, {
          headers: { Authorization: `Bearer ${session.token}`, Accept: "text/event-stream" },
          signal: abort.signal,
        });
        if (!r.ok) {
          const e = (await r.json().catch(() => null))?.error;
          throw new ApiError(r.status, e?.code || "error", e?.detail || `${r.status}`);
        }
        setState({ kind: "live" });
        await readEvents(/** @type {ReadableStream<Uint8Array>} */ (r.body), (id, name, data) => {
          setEvents((list) => [{ id, name, ...data }, ...list].slice(0, KEEP));
        }, abort.signal);
        if (!abort.signal.aborted) setState({ kind: "ended" });
      } catch (error) {
        if (abort.signal.aborted) return;
        const disabled = error instanceof ApiError && error.code === "events_disabled";
        setState({ kind: disabled ? "disabled" : "failed", error });
      }
    })();
    return () => abort.abort();
  }, [filter]);
  const apply = (/** @type {Event} */ ev) => {
    ev.preventDefault();
    setEvents([]);
    setFilter({ user: user.trim(), events: EVENTS.filter((e) => chosen.has(e)) });
  };
  const toggle = (/** @type {string} */ e) => {
    const next = new Set(chosen);
    next.has(e) ? next.delete(e) : next.add(e);
    setChosen(next);
  };
  return html`<div data-testid="tail" data-state=${state.kind}>
    <h1>Live tail</h1>
    <form class="inline panel" onSubmit=${apply}>
      <input type="search" id="tail-user" placeholder="any user" value=${user} onInput=${(/** @type {any} */ e) => setUser(e.target.value)} />
      ${EVENTS.map((e) => html`<label class="small"><input type="checkbox" checked=${chosen.has(e)} onChange=${() => toggle(e)} /> ${e}</label>`)}
      <button class="primary">Apply</button>
    </form>
    ${state.kind === "disabled" &&
    html`<div class="notice" data-testid="tail-disabled">
      Live tail available once events are enabled. <span class="muted small">The server says: ${state.error.detail}</span>
    </div>`}
    ${state.kind === "failed" && html`<${Problem} error=${state.error} />`}
    ${state.kind === "live" && html`<p class="small muted">Live${filter.user ? ` for ${filter.user}` : ""}: newest first, the last ${KEEP} kept.</p>`}
    ${events.length > 0 &&
    html`<div class="panel"><table data-testid="tail-events">
      <thead><tr><th>at</th><th>event</th><th>message</th><th>user</th></tr></thead>
      <tbody>
        ${events.map(
          (e) => html`<tr data-event=${e.name}><td>${time(e.at)}</td><td><${Badge} status=${e.name} /></td>
            <td class="mono"><${Link} to=${`message/${encodeURIComponent(e.id)}`}>${e.id}</${Link}></td><td>${e.user_id}</td></tr>`,
        )}
      </tbody>
    </table></div>`}
  </div>`;
}
