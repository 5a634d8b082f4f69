// Dead letters: reason and last error of each, newest first across partitions; replay
// one, the selected ones or all; purge one, the selected ones or all. Destructive and
// bulk actions are confirmed; what a replay did is followed live (queued, sent, ...
// delivered) under the list, since a replayed message leaves the dead-letter stream.

import { del, enc, get, post } from "./api.js";
import { Badge, Link, Problem, confirmAction, html, num, time, usePoll, useState } from "./ui.js";

const FINAL = new Set(["delivered", "expired", "cancelled", "dead"]);
const PAGE = 50;

/** One replayed message, read again every second until it is final. */
function Followed(/** @type {{id: string}} */ { id }) {
  const { data, error } = usePoll(async () => {
    const m = await get(`v1/messages/${enc(id)}`);
    return m;
  }, 1000, [id]);
  const status = data?.status;
  return html`<tr data-replayed=${id}>
    <td class="mono"><${Link} to=${`message/${enc(id)}`}>${id}</${Link}></td>
    <td>${status ? html`<${Badge} status=${status} />` : error ? error.detail : "…"}</td>
    <td class="small muted">${status && FINAL.has(status) ? "final" : "following…"}</td>
  </tr>`;
}

export function DeadLetters() {
  const [cursors, setCursors] = useState(/** @type {(string | null)[]} */ ([null]));
  const [tick, setTick] = useState(0);
  const [selected, setSelected] = useState(/** @type {Set<string>} */ (new Set()));
  const [notice, setNotice] = useState(/** @type {string | null} */ (null));
  const [problem, setProblem] = useState(/** @type {any} */ (null));
  const [followed, setFollowed] = useState(/** @type {string[]} */ ([]));
  const cursor = cursors[cursors.length - 1];
  const q = new URLSearchParams({ limit: String(PAGE) });
  if (cursor) q.set("cursor", cursor);
  const { data, error } = usePoll(() => get(`v1/dead-letters?${q}`), 5000, [cursor, tick]);
  const rows = data?.dead_letters || [];
  const refresh = () => setTick((t) => t + 1);

  /** @param {string[]} ids */
  const replay = async (ids) => {
    const done = [];
    /** @type {any[]} */
    const failed = [];
    for (const id of ids) {
      try {
        await post(`v1/dead-letters/${enc(id)}/replay`);
        done.push(id);
      } catch (e) {
        failed.push(e);
      }
    }
    setFollowed((f) => [...done, ...f.filter((x) => !done.includes(x))]);
    setNotice(`Replayed ${done.length} of ${ids.length}.`);
    setProblem(failed[0] || null);
    setSelected(new Set());
    refresh();
  };
  /** @param {string[]} ids */
  const purge = async (ids) => {
    const what = ids.length === 1 ? `the dead letter of ${ids[0]}` : `${ids.length} dead letters`;
    if (!(await confirmAction(`Purge ${what}? The messages stay dead and can no longer be replayed from here.`, "Purge"))) return;
    let n = 0;
    /** @type {any[]} */
    const failed = [];
    for (const id of ids) {
      try {
        n += (await del(`v1/dead-letters/${enc(id)}`)).purged;
      } catch (e) {
        failed.push(e);
      }
    }
    setNotice(`Purged ${n} entr${n === 1 ? "y" : "ies"}.`);
    setProblem(failed[0] || null);
    setSelected(new Set());
    refresh();
  };
  const replayAll = async () => {
    if (!(await confirmAction("Replay every dead message of every partition? Each gets a fresh cycle of attempts.", "Replay all"))) return;
    try {
      const visible = rows.filter((/** @type {any} */ r) => r.status === "dead").map((/** @type {any} */ r) => r.id);
      const r = await post("v1/dead-letters/replay");
      setFollowed((f) => [...visible, ...f.filter((x) => !visible.includes(x))]);
      setNotice(`Replayed ${r.replayed}.`);
      setProblem(null);
    } catch (e) {
      setProblem(e);
    }
    refresh();
  };
  const purgeAll = async () => {
    if (!(await confirmAction("Purge every dead letter of every partition? This cannot be undone.", "Purge all"))) return;
    try {
      const r = await del("v1/dead-letters");
      setNotice(`Purged ${r.purged} entr${r.purged === 1 ? "y" : "ies"}.`);
      setProblem(null);
    } catch (e) {
      setProblem(e);
    }
    refresh();
  };
  const toggle = (/** @type {string} */ id) => {
    const next = new Set(selected);
    next.has(id) ? next.delete(id) : next.add(id);
    setSelected(next);
  };
  const ids = [...selected];
  const none = !data || (rows.length === 0 && cursors.length < 2); // nothing to replay or purge
  return html`<div data-testid="dead-letters">
    <h1>Dead letters</h1>
    ${notice && html`<div class="notice ok" data-testid="dlq-result">${notice}</div>`}
    <${Problem} error=${problem || error} />
    <div class="panel">
      <div class="inline">
        <button id="replay-selected" disabled=${!ids.length} onClick=${async () => (await confirmAction(`Replay ${ids.length} selected message${ids.length === 1 ? "" : "s"}?`, "Replay")) && replay(ids)}>Replay selected (${ids.length})</button>
        <button class="danger" id="purge-selected" disabled=${!ids.length} onClick=${() => purge(ids)}>Purge selected</button>
        <span style=${{ flex: 1 }}></span>
        <button id="replay-all" disabled=${none} title=${none ? "No dead letters" : ""} onClick=${replayAll}>Replay all</button>
        <button class="danger" id="purge-all" disabled=${none} title=${none ? "No dead letters" : ""} onClick=${purgeAll}>Purge all</button>
      </div>
      <table>
        <thead><tr><th></th><th>message</th><th>user</th><th>reason</th><th>last error</th><th class="num">attempts</th><th>dead since</th><th>status</th><th></th></tr></thead>
        <tbody>
          ${rows.map(
            (/** @type {any} */ d) => html`<tr data-dead=${d.id}>
              <td><input type="checkbox" checked=${selected.has(d.id)} onChange=${() => toggle(d.id)} aria-label=${`select ${d.id}`} /></td>
              <td class="mono"><${Link} to=${`message/${enc(d.id)}`}>${d.id}</${Link}></td>
              <td><${Link} to=${`user/${enc(d.user_id)}`}>${d.user_id}</${Link}></td>
              <td>${d.reason}</td><td class="small">${d.last_error || ""}</td>
              <td class="num">${d.attempts}${d.max_attempts ? `/${d.max_attempts}` : ""}</td>
              <td>${time(d.dead_at)}</td><td><${Badge} status=${d.status} /></td>
              <td class="inline">
                ${d.status === "dead" && html`<button class="replay" onClick=${() => replay([d.id])}>Replay</button>`}
                <button class="danger purge" onClick=${() => purge([d.id])}>Purge</button>
              </td>
            </tr>`,
          )}
        </tbody>
      </table>
      ${data && rows.length === 0 ? html`<p class="muted" data-testid="dlq-empty">No dead letters.</p>` : null}
      <p class="inline small">
        <button disabled=${cursors.length < 2} onClick=${() => setCursors(cursors.slice(0, -1))}>Previous</button>
        <button disabled=${!data?.next_cursor} onClick=${() => setCursors([...cursors, data.next_cursor])}>Next</button>
        <span class="muted">page ${cursors.length} · ${num(rows.length)} shown</span>
      </p>
    </div>
    ${followed.length > 0 &&
    html`<div class="panel" data-testid="followed">
      <h2>Replayed from this page</h2>
      <table><tbody>${followed.map((id) => html`<${Followed} id=${id} key=${id} />`)}</tbody></table>
    </div>`}
  </div>`;
}
