// The console's shell: sign-in (a pasted admin token, or the one-time link of
// `courier admin`), the navigation, and the hash router (#/, #/message/ID, #/user/ID,
// #/dead-letters, #/tasks/USER, #/tail).

import { ApiError, call, session, whenRefused } from "./api.js";
import { DeadLetters } from "./deadletters.js";
import { MessagePage } from "./message.js";
import { Overview } from "./overview.js";
import { Tail } from "./tail.js";
import { Tasks } from "./tasks.js";
import { Problem, html, render, time, until, useEffect, useState } from "./ui.js";
import { UserPage } from "./user.js";

const WHO = "courier.console.who";

const PAGES = [
  ["", "Overview"],
  ["message", "Message"],
  ["user", "User"],
  ["dead-letters", "Dead letters"],
  ["tasks", "Tasks"],
  ["tail", "Live tail"],
];

/** @returns {{user_id: string, expires_at: string | null} | null} */
function who() {
  try {
    return JSON.parse(sessionStorage.getItem(WHO) || "null");
  } catch {
    return null;
  }
}

/** @param {string} token @param {{user_id: string, expires_at: string | null}} me */
function keep(token, me) {
  session.keep(token);
  sessionStorage.setItem(WHO, JSON.stringify({ user_id: me.user_id, expires_at: me.expires_at }));
}

function forget() {
  session.forget();
  sessionStorage.removeItem(WHO);
}

/** why a sign-in failed, in words an operator can act on */
function refusal(/** @type {any} */ e) {
  if (e instanceof ApiError && e.status === 403) {
    return {
      code: e.code,
      detail: `This token may not open the console: ${e.detail}. The console needs an admin token: run \`courier admin\` for a sign-in link, or \`courier token NAME --role admin\`.`,
    };
  }
  if (e instanceof ApiError && e.status === 401) {
    return { code: e.code, detail: `The server refused this token: ${e.detail}.` };
  }
  return e;
}

function route() {
  const path = location.hash.replace(/^#\/?/, "");
  const [page, ...rest] = path.split("/");
  return { page, arg: rest.map(decodeURIComponent).join("/") };
}

/** @param {{onSignedIn: (me: any) => void, notice: any}} props */
function SignIn({ onSignedIn, notice }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState(/** @type {any} */ (null));
  const [busy, setBusy] = useState(false);
  const submit = async (/** @type {Event} */ ev) => {
    ev.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const me = await call("POST", "session", { token: token.trim() });
      keep(token.trim(), me);
      onSignedIn(me);
    } catch (e) {
      forget();
      setError(refusal(e));
    } finally {
      setBusy(false);
    }
  };
  return html`<div class="signin">
    <h1>Courier console</h1>
    ${notice && html`<div class="notice" data-testid="signin-notice">${notice}</div>`}
    <${Problem} error=${error} />
    <form class="panel" onSubmit=${submit}>
      <h2>Sign in with an admin token</h2>
      <p class="muted small">
        On a machine with the deployment's settings, <code>courier admin</code> prints a one-time
        link that signs you in; or paste a token of <code>courier token NAME --role admin</code>.
        The token stays in this tab only.
      </p>
      <textarea id="token" rows="4" placeholder="eyJhbGciOi…" value=${token}
        onInput=${(/** @type {any} */ e) => setToken(e.target.value)}></textarea>
      <p><button class="primary" id="sign-in" disabled=${busy || !token.trim()}>Sign in</button></p>
    </form>
  </div>`;
}

function Shell(/** @type {{me: any, onSignOut: () => void}} */ { me, onSignOut }) {
  const [where, setWhere] = useState(route());
  useEffect(() => {
    const on = () => setWhere(route());
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  const { page, arg } = where;
  const body =
    page === "message" ? html`<${MessagePage} id=${arg} />`
    : page === "user" ? html`<${UserPage} user=${arg} />`
    : page === "dead-letters" ? html`<${DeadLetters} />`
    : page === "tasks" ? html`<${Tasks} user=${arg} />`
    : page === "tail" ? html`<${Tail} />`
    : html`<${Overview} />`;
  return html`<div class="shell">
    <nav class="side">
      <a class="brand" href="#/">Courier</a>
      ${PAGES.map(([p, name]) => html`<a href=${`#/${p}`} class=${page === p ? "on" : ""} data-page=${p || "overview"}>${name}</a>`)}
      <div class="who" data-testid="who">
        Signed in as <b>${me.user_id}</b>
        ${me.expires_at && html`<div class="small" data-k="until" title=${time(me.expires_at)}>until ${until(me.expires_at)}</div>`}
        <div><button id="sign-out" onClick=${onSignOut}>Sign out</button></div>
      </div>
    </nav>
    <main>${body}</main>
  </div>`;
}

function App() {
  const [me, setMe] = useState(session.token ? who() : null);
  const [notice, setNotice] = useState(/** @type {string | null} */ (null));
  const [linkError, setLinkError] = useState(/** @type {any} */ (null));
  useEffect(() => {
    // a one-time link of `courier admin`: on load, or pasted into this tab's address bar
    const redeem = () => {
      const m = location.hash.match(/^#code=([\w-]+)/);
      if (!m) return;
      history.replaceState(null, "", `${location.pathname}${location.search}#/`);
      setLinkError(null);
      call("POST", "session/link", { body: { code: m[1] }, token: null }).then(
        (answer) => {
          keep(answer.token, answer);
          setMe(answer);
        },
        (e) => setLinkError(refusal(e)),
      );
    };
    redeem();
    addEventListener("hashchange", redeem);
    return () => removeEventListener("hashchange", redeem);
  }, []);
  useEffect(
    () =>
      whenRefused((e) => {
        forget();
        setMe(null);
        setNotice(`Signed out: ${e.detail}`);
      }),
    [],
  );
  if (!me) {
    return html`<div>
      ${linkError && html`<div class="signin"><${Problem} error=${linkError} /></div>`}
      <${SignIn} notice=${notice} onSignedIn=${(/** @type {any} */ m) => (setNotice(null), setMe(m))} />
    </div>`;
  }
  return html`<${Shell} me=${me} onSignOut=${() => (forget(), setMe(null), setNotice("Signed out."))} />`;
}

const root = /** @type {HTMLElement} */ (document.getElementById("app"));
root.textContent = ""; // the "Loading" line
render(html`<${App} />`, root);
