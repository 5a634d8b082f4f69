// Token refresh on an open connection: before `exp`, a fresh getToken() goes as
// {"type": "refresh", "token"} and `refreshed` {exp} answers it; no reconnect. A server
// that does not know the frame (unknown_type) is told apart from a refused refresh.
// (A fake server here; the browser suite runs the same against `courier serve` once
// the server has refresh.)
import assert from "node:assert/strict";
import { test } from "node:test";

import { tokenExp } from "../../src/index.js";
import { client, fakeServer, record, sleep, tokenWithExp, waitFor } from "./fake_server.js";

const now = () => Date.now() / 1000;

/** @param {(conn: any, frame: any) => void} answer */
async function setup(t, answer, lifetime = 1) {
  const server = await fakeServer({ onFrame: (c, f) => f.type === "refresh" && answer(c, f) });
  /** @type {string[]} */
  const issued = [];
  const courier = client(server, {
    getToken: async () => {
      const token = tokenWithExp(now() + lifetime + issued.length * 0.001);
      issued.push(token);
      return token;
    },
  });
  t.after(async () => {
    courier.disconnect();
    await server.close();
  });
  return { server, courier, issued, log: record(courier, ["refreshed", "error", "connecting"]) };
}

test("refreshes before exp on the same socket, then again before the new exp", async (t) => {
  const { server, courier, issued, log } = await setup(t, (c, f) =>
    c.send({ type: "refreshed", exp: tokenExp(f.token) }),
  );
  courier.connect();
  await courier.ready(2000);
  const start = Date.now();
  await waitFor(() => log.of("refreshed").length >= 2, 4000);
  const refreshes = server.framesOf("refresh");
  assert.equal(server.connections.length, 1, "no reconnect");
  assert.deepEqual(refreshes.map((f) => f.token), issued.slice(1, 3), "each a fresh getToken()");
  assert.ok(Date.now() - start < 2000, "each before the previous token's exp");
  assert.deepEqual(log.of("refreshed")[0], { exp: tokenExp(issued[1]) });
  assert.equal(courier.refreshSupported, true);
  assert.deepEqual(log.of("error"), []);
});

test("a server without refresh (unknown_type): one try, an error that says so, the socket stays", async (t) => {
  const { server, courier, log } = await setup(t, (c) =>
    c.send({ type: "error", code: "unknown_type", detail: "unknown frame type 'refresh'" }),
  );
  courier.connect();
  await courier.ready(2000);
  await waitFor(() => log.of("error").length === 1, 3000);
  await sleep(700);
  assert.deepEqual(log.of("error").map((e) => [e.type, e.code]), [["refresh", "unsupported"]]);
  assert.equal(courier.refreshSupported, false);
  assert.equal(server.framesOf("refresh").length, 1);
  assert.equal(courier.state, "connected");
  assert.equal(server.connections.length, 1);
});

test("a refused refresh (another sub) is reported and tried again before exp", async (t) => {
  const { server, courier, log } = await setup(
    t,
    (c, f) => {
      if (server.framesOf("refresh").length === 1) {
        c.send({ type: "error", code: "invalid_token", detail: "token is for another user" });
      } else {
        c.send({ type: "refreshed", exp: tokenExp(f.token) });
      }
    },
    2,
  );
  courier.connect();
  await courier.ready(2000);
  await waitFor(() => log.of("refreshed").length === 1, 4000);
  assert.deepEqual(log.of("error").map((e) => [e.type, e.code]), [["refresh", "invalid_token"]]);
  assert.equal(server.framesOf("refresh").length, 2);
  assert.equal(server.connections.length, 1);
});

test("a static token is never refreshed (nothing to ask for a new one)", async (t) => {
  const server = await fakeServer();
  const courier = client(server, { getToken: undefined, token: tokenWithExp(now() + 0.4) });
  t.after(async () => {
    courier.disconnect();
    await server.close();
  });
  courier.connect();
  await courier.ready(2000);
  await sleep(500);
  assert.equal(server.framesOf("refresh").length, 0);
});
