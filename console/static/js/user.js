// User: the devices online now, the user's statistics, recent messages (status filter,
// paging), and two actions: send a test message, disconnect (all or one device).

import { enc, get, post } from "./api.js";
import { Badge, Link, Problem, ago, confirmAction, html, num, time, usePoll, useState } from "./ui.js";

const STATUSES = ["", "queued", "scheduled", "sent", "delivered", "parked", "expired", "dead", "cancelled"];
const PAGE = 20;

function Stats(/** @type {{user: string, tick: number}} */ { user, tick }) {
  const { data: s, error } = usePoll(() => get(`v1/users/${enc(user)}/stats`), 5000, [user, tick]);
  if (error) return html`<div class="panel"><${Problem} error=${error} /></div>`;
  if (!s) return null;
  const lat = s.ack_latency_ms;
  return html`<div class="panel" data-testid="user-stats">
    <h2>Statistics</h2>
    <dl class="facts">
      <dt>messages</dt><dd data-k="total">${num(s.total)}</dd>
      <dt>delivery rate</dt><dd data-k="delivery_rate">${s.delivery_rate === null ? "–" : `${(s.delivery_rate * 100).toFixed(1)} %`}</dd>
      <dt>time to ack, mean</dt><dd data-k="mean">${lat.mean === null ? "–" : `${lat.mean} ms`}</dd>
      <dt>time to ack, p95</dt><dd data-k="p95">${lat.p95 === null ? "–" : `${lat.p95} ms`} <span class="muted small">(last ${lat.samples} acks)</span></dd>
    </dl>
    <p class="small">${Object.entries(s.counts).filter(([, n]) => n).map(([k, n]) => html`<${Badge} status=${k} /> ${n} `)}</p>
  </div>`;
}

function Devices(/** @type {{user: string, onChange: () => void}} */ { user, onChange }) {
  const { data, error } = usePoll(() => get(`v1/users/${enc(user)}/connections`), 2000, [user]);
  const [result, setResult] = useState(/** @type {any} */ (null));
  const disconnect = async (/** @type {string | null} */ conn) => {
    const what = conn ? `connection ${conn} of ${user}` : `every connection of ${user}`;
    if (!(await confirmAction(`Close ${what}? The client sees close code 4409 and may reconnect with a fresh token.`, "Disconnect"))) return;
    try {
      const r = await post(`v1/users/${enc(user)}/disconnect`, conn ? { conn_id: conn } : undefined);
      setResult({ ok: r.connections ? `Asked ${r.connections} connection${r.connections === 1 ? "" : "s"} to close.` : "No connection was open." });
      onChange();
    } catch (e) {
      setResult({ error: e });
    }
  };
  const conns = data?.connections || [];
  return html`<div class="panel" data-testid="devices">
    <h2>Devices online <span class="muted small">${data ? conns.length : ""}</span></h2>
    <${Problem} error=${error || result?.error} />
    ${result?.ok && html`<div class="notice ok" data-testid="disconnect-result">${result.ok}</div>`}
    ${conns.length === 0
      ? html`<p class="muted">No device is connected.</p>`
      : html`<table>
          <thead><tr><th>device</th><th>address</th><th>node</th><th>connected since</th><th>last heartbeat</th><th></th></tr></thead>
          <tbody>
            ${conns.map(
              (/** @type {any} */ c) => html`<tr data-conn=${c.conn_id}>
                <td data-k="device">${c.device || html`<span class="muted" title="connected without ?device=">default</span>`}<div class="small muted mono">${c.conn_id}</div></td>
                <td class="mono">${c.address || "–"}</td><td class="mono">${c.node_id}</td>
                <td>${time(c.connected_at)}</td><td>${ago(c.last_seen)}</td>
                <td><button class="danger" onClick=${() => disconnect(c.conn_id)}>Disconnect</button></td>
              </tr>`,
            )}
          </tbody>
        </table>`}
    <p><button class="danger" id="disconnect-all" onClick=${() => disconnect(null)}>Disconnect all</button></p>
  </div>`;
}

function TestMessage(/** @type {{user: string, onSent: () => void}} */ { user, onSent }) {
  const [text, setText] = useState("Test message from the Courier console");
  const [priority, setPriority] = useState("normal");
  const [result, setResult] = useState(/** @type {any} */ (null));
  const send = async (/** @type {Event} */ ev) => {
    ev.preventDefault();
    try {
      const r = await post(`v1/users/${enc(user)}/test-message`, { text, priority });
      setResult({ id: r.id, status: r.status });
      onSent();
    } catch (e) {
      setResult({ error: e });
    }
  };
  return html`<form class="panel" onSubmit=${send} data-testid="test-message">
    <h2>Send a test message</h2>
    <div class="inline">
      <input type="text" id="test-text" size="34" value=${text} onInput=${(/** @type {any} */ e) => setText(e.target.value)} />
      <select id="test-priority" value=${priority} onChange=${(/** @type {any} */ e) => setPriority(e.target.value)}>
        <option>high</option><option>normal</option><option>low</option>
      </select>
      <button class="primary" id="send-test">Send</button>
    </div>
    <${Problem} error=${result?.error} />
    ${result?.id && html`<p data-testid="test-result">Sent <${Link} to=${`message/${enc(result.id)}`}>${result.id}</${Link}> (${result.status})</p>`}
  </form>`;
}

function Messages(/** @type {{user: string, tick: number}} */ { user, tick }) {
  const [status, setStatus] = useState("");
  const [cursors, setCursors] = useState(/** @type {(string | null)[]} */ ([null]));
  const cursor = cursors[cursors.length - 1];
  const q = new URLSearchParams({ limit: String(PAGE) });
  if (status) q.set("status", status);
  if (cursor) q.set("cursor", cursor);
  const { data, error } = usePoll(() => get(`v1/users/${enc(user)}/messages?${q}`), 5000, [user, status, cursor, tick]);
  const rows = data?.messages || [];
  return html`<div class="panel" data-testid="user-messages">
    <h2>Recent messages</h2>
    <div class="inline small">
      status <select id="status-filter" value=${status} onChange=${(/** @type {any} */ e) => (setStatus(e.target.value), setCursors([null]))}>
        ${STATUSES.map((s) => html`<option value=${s}>${s || "any"}</option>`)}
      </select>
      <span class="muted">page ${cursors.length}</span>
    </div>
    <${Problem} error=${error} />
    <table>
      <thead><tr><th>id</th><th>status</th><th>priority</th><th>created</th><th class="num">attempts</th><th>last error</th></tr></thead>
      <tbody>
        ${rows.map(
          (/** @type {any} */ m) => html`<tr data-id=${m.id}><td class="mono"><${Link} to=${`message/${enc(m.id)}`}>${m.id}</${Link}></td><td><${Badge} status=${m.status} /></td><td>${m.priority}</td><td>${time(m.created_at)}</td><td class="num">${m.attempts}/${m.max_attempts}</td><td class="small">${m.last_error || ""}</td></tr>`,
        )}
      </tbody>
    </table>
    ${data && rows.length === 0 ? html`<p class="muted">No message${status ? ` in status ${status}` : ""}.</p>` : null}
    <p class="inline">
      <button id="prev-page" disabled=${cursors.length < 2} onClick=${() => setCursors(cursors.slice(0, -1))}>Previous</button>
      <button id="next-page" disabled=${!data?.next_cursor} onClick=${() => setCursors([...cursors, data.next_cursor])}>Next</button>
    </p>
  </div>`;
}

/** @param {{user: string}} props */
export function UserPage({ user }) {
  const [value, setValue] = useState(user || "");
  const [tick, setTick] = useState(0);
  const bump = () => setTick((t) => t + 1);
  const go = (/** @type {Event} */ ev) => {
    ev.preventDefault();
    if (value.trim()) location.hash = `#/user/${enc(value.trim())}`;
  };
  return html`<div>
    <h1>User ${user && html`<code>${user}</code>`}</h1>
    <form class="inline panel" onSubmit=${go}>
      <input type="search" id="user-id" placeholder="user id" value=${value} onInput=${(/** @type {any} */ e) => setValue(e.target.value)} />
      <button class="primary">Show</button>
      ${user && html`<${Link} to=${`tasks/${enc(user)}`}>tasks of ${user}</${Link}>`}
    </form>
    ${user
      ? html`<div key=${user}>
          <div class="row"><${Devices} user=${user} onChange=${bump} /><${Stats} user=${user} tick=${tick} /></div>
          <div class="row"><${TestMessage} user=${user} onSent=${bump} /></div>
          <${Messages} user=${user} tick=${tick} />
        </div>`
      : html`<p class="muted">Which devices of a user are online, what they got, and how fast they ack.</p>`}
  </div>`;
}
