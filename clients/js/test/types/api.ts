// Compile-time checks (tsc, part of `npm test`): the JavaScript implementation has
// the surface src/index.d.ts declares, and that surface reads well from an app.
import type * as api from "../../src/index.js";
import * as backoff from "../../src/backoff.js";
import * as client from "../../src/client.js";
import * as dedupe from "../../src/dedupe.js";
import * as options from "../../src/options.js";
import * as errors from "../../src/errors.js";
import * as token from "../../src/token.js";

// The implementation matches the declarations (a missing or mistyped method fails here).
export const impl: {
  Courier: typeof api.Courier;
  websocketUrl: typeof api.websocketUrl;
  backoffDelay: typeof api.backoffDelay;
  Backoff: typeof api.Backoff;
  SeenIds: typeof api.SeenIds;
  sessionStore: typeof api.sessionStore;
  indexedDBStore: typeof api.indexedDBStore;
  tokenExp: typeof api.tokenExp;
  RefusedError: typeof api.RefusedError;
  UnauthorizedError: typeof api.UnauthorizedError;
  CloseCodes: typeof api.CloseCodes;
} = {
  Courier: client.Courier,
  websocketUrl: options.websocketUrl,
  backoffDelay: backoff.backoffDelay,
  Backoff: backoff.Backoff,
  SeenIds: dedupe.SeenIds,
  sessionStore: dedupe.sessionStore,
  indexedDBStore: dedupe.indexedDBStore,
  tokenExp: token.tokenExp,
  RefusedError: errors.RefusedError,
  UnauthorizedError: errors.UnauthorizedError,
  CloseCodes: errors.CloseCodes,
};

// An app's code, type-checked against the declarations.
export async function app(C: typeof api.Courier, store: api.SeenStore): Promise<string[]> {
  const shown: string[] = [];
  const courier = new C("https://courier.example.com", {
    getToken: async () => "jwt",
    seenStore: store,
    minReconnectDelay: 250,
    maxReconnectDelay: 10_000,
  });
  courier
    .on("message", async (m: api.Message) => {
      shown.push(String(m.payload));
      if (m.replyRequested) m.reply({ ok: true });
    })
    .on("task", (t: api.TaskState) => void shown.push(`${t.task_id} ${t.status} ${t.progress}`))
    .on("connecting", ({ code, delay }) => void shown.push(`${code} ${delay ?? "offline"}`))
    .on("disconnected", ({ error }) => void shown.push(error ? error.message : "bye"))
    .on("error", ({ type, detail }) => void shown.push(`${type}: ${detail}`));
  courier.connect().subscribeTask("t1");
  await courier.ready(5000);
  const state: api.State = courier.state;
  shown.push(state);
  courier.cancel("t1");
  courier.disconnect();
  return shown;
}
