// Message: look a message up by id; its facts, its timeline as a vertical list (each
// event with time, attempt, and where it went: connection and node), its payload
// pretty-printed, and a copy of the whole answer as JSON.

import { enc, get } from "./api.js";
import { Badge, Link, Problem, html, time, usePoll, useState } from "./ui.js";

const FINAL = new Set(["delivered", "expired", "cancelled"]);

/** @param {any} v */
const show = (v) => (typeof v === "string" ? v : JSON.stringify(v));

/** The parts of an event worth a line of their own, in words. */
function detail(/** @type {any} */ e) {
  const rest = Object.fromEntries(Object.entries(e).filter(([k]) => !["at", "event", "attempt"].includes(k)));
  /** @type {any[]} */
  const parts = [];
  if (e.event === "acked" || e.event === "replied") {
    if (rest.conn) parts.push(html`by connection <code data-k="conn">${rest.conn}</code>`);
    if (rest.node) parts.push(html` on node <code data-k="node">${rest.node}</code>`);
    delete rest.conn;
    delete rest.node;
  }
  if (e.event === "sent" && Array.isArray(rest.to)) {
    parts.push(html`to ${rest.to.map((/** @type {string} */ t, /** @type {number} */ i) => html`${i ? ", " : ""}<code>${t}</code>`)}`);
    delete rest.to;
  }
  for (const [k, v] of Object.entries(rest)) parts.push(html` ${parts.length ? "· " : ""}${k}: <code>${show(v)}</code>`);
  return parts;
}

/** @param {{msg: any}} props */
function Timeline({ msg }) {
  return html`<ol class="timeline" data-testid="timeline">
    ${msg.timeline.map(
      (/** @type {any} */ e) => html`<li data-event=${e.event}>
        <div><span class="ev">${e.event}</span> <span class="muted small">attempt ${e.attempt} · ${time(e.at)}</span></div>
        <div class="detail">${detail(e)}</div>
      </li>`,
    )}
  </ol>`;
}

function Copy(/** @type {{msg: any}} */ { msg }) {
  const [said, setSaid] = useState("");
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(JSON.stringify(msg, null, 2));
      setSaid("Copied");
    } catch (e) {
      setSaid(`Could not copy: ${e}`);
    }
  };
  return html`<button id="copy-json" onClick=${copy}>Copy as JSON</button> <span class="small muted" data-testid="copied">${said}</span>`;
}

/** @param {{id: string}} props */
function Found({ id }) {
  // a message that is still moving is read again every 2 s
  const { data: msg, error } = usePoll(() => get(`v1/messages/${enc(id)}`), 2000, [id]);
  if (error && !msg) return html`<${Problem} error=${error} />`;
  if (!msg) return html`<p class="muted">Loading…</p>`;
  return html`<div data-testid="message" data-status=${msg.status}>
    <div class="row">
      <div class="panel">
        <h2><code>${msg.id}</code> <${Badge} status=${msg.status} /></h2>
        <dl class="facts">
          <dt>user</dt><dd><${Link} to=${`user/${enc(msg.user_id)}`}>${msg.user_id}</${Link}></dd>
          <dt>priority</dt><dd>${msg.priority}</dd>
          <dt>attempts</dt><dd>${msg.attempts} of ${msg.max_attempts}</dd>
          <dt>created</dt><dd>${time(msg.created_at)}</dd>
          <dt>delivered</dt><dd>${time(msg.delivered_at)}</dd>
          <dt>expires</dt><dd>${time(msg.expires_at)} (ttl ${msg.ttl_seconds} s)</dd>
          ${msg.last_error && html`<dt>last error</dt><dd data-k="last_error">${msg.last_error}</dd>`}
          ${msg.topic && html`<dt>topic</dt><dd>${msg.topic}</dd>`}
          ${msg.collapse_key && html`<dt>collapse key</dt><dd>${msg.collapse_key}</dd>`}
          ${msg.dead_letter_entry && html`<dt>dead-letter entry</dt><dd><${Link} to="dead-letters">${msg.dead_letter_entry}</${Link}></dd>`}
        </dl>
        <p><${Copy} msg=${msg} /></p>
      </div>
      <div class="panel">
        <h2>Timeline</h2>
        <${Timeline} msg=${msg} />
      </div>
    </div>
    <div class="row">
      <div class="panel"><h2>Payload</h2><pre class="json" data-testid="payload">${JSON.stringify(msg.payload, null, 2)}</pre></div>
      ${msg.reply_requested && html`<div class="panel"><h2>Reply</h2><pre class="json">${msg.reply === undefined || msg.reply === null ? "no reply yet" : JSON.stringify(msg.reply, null, 2)}</pre></div>`}
    </div>
    ${FINAL.has(msg.status) ? null : html`<p class="small muted">Not final yet: read again every 2 s.</p>`}
  </div>`;
}

/** @param {{id: string}} props */
export function MessagePage({ id }) {
  const [value, setValue] = useState(id || "");
  const go = (/** @type {Event} */ ev) => {
    ev.preventDefault();
    if (value.trim()) location.hash = `#/message/${enc(value.trim())}`;
  };
  return html`<div>
    <h1>Message</h1>
    <form class="inline panel" onSubmit=${go}>
      <input type="search" id="message-id" size="40" placeholder="message id, e.g. 3-8f2c1d9e4b7a6c5d3e2f" value=${value}
        onInput=${(/** @type {any} */ e) => setValue(e.target.value)} />
      <button class="primary">Look up</button>
    </form>
    ${id ? html`<${Found} id=${id} key=${id} />` : html`<p class="muted">Did user 42 get message X? Paste its id.</p>`}
  </div>`;
}
