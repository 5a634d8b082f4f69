// Tasks: a user's tasks, those running and those of their recent messages, with the
// latest status, progress (a percentage, 0 to 100, as the API takes it) and message of each.

import { enc, get } from "./api.js";
import { Badge, Link, Problem, html, time, usePoll, useState } from "./ui.js";

/** @param {{user: string}} props */
function List({ user }) {
  const { data, error } = usePoll(() => get(`v1/users/${enc(user)}/tasks`), 3000, [user]);
  if (error) return html`<${Problem} error=${error} />`;
  if (!data) return html`<p class="muted">Loading…</p>`;
  if (!data.tasks.length) return html`<p class="muted" data-testid="no-tasks">No recent task of ${user}.</p>`;
  return html`<div class="panel"><table data-testid="tasks">
    <thead><tr><th>task</th><th>status</th><th>progress</th><th>message</th><th>updated</th><th>last report</th></tr></thead>
    <tbody>
      ${data.tasks.map(
        (/** @type {any} */ t) => html`<tr data-task=${t.task_id}>
          <td class="mono">${t.task_id}${t.cancel_requested ? html` <span class="badge">cancel asked</span>` : null}</td>
          <td><${Badge} status=${t.status} /></td>
          <td class="num">${t.progress === undefined || t.progress === null ? "–" : `${Math.round(t.progress)} %`}</td>
          <td>${t.message || (t.error ? html`<span class="small">${JSON.stringify(t.error)}</span>` : "")}</td>
          <td>${time(t.updated_at)}</td>
          <td class="mono small">${t.message_id ? html`<${Link} to=${`message/${enc(t.message_id)}`}>${t.message_id}</${Link}>` : "–"}</td>
        </tr>`,
      )}
    </tbody>
  </table></div>`;
}

/** @param {{user: string}} props */
export function Tasks({ user }) {
  const [value, setValue] = useState(user || "");
  const go = (/** @type {Event} */ ev) => {
    ev.preventDefault();
    if (value.trim()) location.hash = `#/tasks/${enc(value.trim())}`;
  };
  return html`<div>
    <h1>Tasks ${user && html`of <code>${user}</code>`}</h1>
    <form class="inline panel" onSubmit=${go}>
      <input type="search" id="tasks-user" placeholder="user id" value=${value} onInput=${(/** @type {any} */ e) => setValue(e.target.value)} />
      <button class="primary">Show</button>
    </form>
    ${user ? html`<${List} user=${user} key=${user} />` : html`<p class="muted">Task statuses are kept per owner: name the user.</p>`}
  </div>`;
}
