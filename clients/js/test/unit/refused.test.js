// Refusals and tokens: on 4401/4403 exactly one more try with a fresh getToken(), then
// a stop the app can show (never a hot loop); getToken() failures are retried with
// backoff; UnauthorizedError from getToken() stops at once.
import assert from "node:assert/strict";
import { test } from "node:test";

import { RefusedError, UnauthorizedError } from "../../src/index.js";
import { client, fakeServer, record, sleep, waitFor } from "./fake_server.js";

for (const code of [4401, 4403]) {
  test(`${code}: one fresh token, then stop with a RefusedError`, async (t) => {
    const server = await fakeServer({ onConnection: (c) => c.close(code, "token expired") });
    let tokens = 0;
    const courier = client(server, { getToken: async () => `t${++tokens}` });
    t.after(async () => {
      courier.disconnect();
      await server.close();
    });
    const log = record(courier, ["disconnected", "error", "state"]);
    courier.connect();
    const failure = await courier.ready(5000).then(
      () => null,
      (e) => e,
    );
    assert.ok(failure instanceof RefusedError, String(failure));
    assert.equal(failure.code, code);
    assert.equal(failure.reason, "token expired");
    assert.match(failure.message, new RegExp(`refused by the server: ${code} token expired`));
    await sleep(300); // and nothing more happens
    assert.equal(tokens, 2);
    assert.deepEqual(server.connections.map((c) => c.token), ["t1", "t2"]);
    assert.equal(courier.state, "disconnected");
    assert.equal(courier.error, failure);
    assert.deepEqual(log.of("disconnected").map((d) => [d.code, d.reason, d.error]), [
      [code, "token expired", failure],
    ]);
    assert.deepEqual(log.of("error").map((e) => [e.type, e.code]), [["refused", code]]);
    await assert.rejects(courier.ready(), RefusedError, "ready() after the stop says why");
  });
}

test("refused after a session that worked: one fresh try; refused again, it stops; connect() starts over", async (t) => {
  const server = await fakeServer({
    onConnection: (c) => {
      if (c.index === 1) return c.close(4401, "token_expired");
      c.hello();
      if (c.index === 0) setTimeout(() => c.close(4401, "token_expired"), 30);
    },
  });
  let tokens = 0;
  const courier = client(server, { getToken: async () => `t${++tokens}` });
  t.after(async () => {
    courier.disconnect();
    await server.close();
  });
  courier.connect();
  // 0: connected, then 4401; 1: 4401 again -> stop (two refusals in a row)
  await waitFor(() => courier.state === "disconnected");
  assert.equal(server.connections.length, 2);
  courier.connect(); // the app asks again (e.g. after signing in)
  await courier.ready(2000);
  assert.deepEqual(server.connections.map((c) => c.token), ["t1", "t2", "t3"]);
});

test("a refusal between good sessions is only a reconnect with a fresh token", async (t) => {
  const server = await fakeServer();
  let tokens = 0;
  const courier = client(server, { getToken: async () => `t${++tokens}` });
  t.after(async () => {
    courier.disconnect();
    await server.close();
  });
  courier.connect();
  await courier.ready(2000);
  for (let i = 0; i < 3; i++) {
    server.last.close(4401, "token_expired"); // e.g. it expired: the fresh one works
    await waitFor(() => server.connections.length === i + 2 && courier.state === "connected");
  }
  assert.deepEqual(server.connections.map((c) => c.token), ["t1", "t2", "t3", "t4"]);
});

test("getToken() failures are retried with growing delays until one works", async (t) => {
  const server = await fakeServer();
  let calls = 0;
  const courier = client(server, {
    random: () => 1,
    minReconnectDelay: 20,
    getToken: async () => {
      calls += 1;
      if (calls <= 3) throw new Error(`auth service down (${calls})`);
      return "good";
    },
  });
  t.after(async () => {
    courier.disconnect();
    await server.close();
  });
  const log = record(courier, ["error", "connecting"]);
  courier.connect();
  await courier.ready(3000);
  assert.equal(calls, 4);
  assert.deepEqual(log.of("error").map((e) => [e.type, e.detail]), [
    ["token", "auth service down (1)"],
    ["token", "auth service down (2)"],
    ["token", "auth service down (3)"],
  ]);
  assert.deepEqual(log.of("connecting").slice(1).map((c) => c.delay), [20, 40, 80]);
  assert.deepEqual(server.connections.map((c) => c.token), ["good"]);
});

test("getToken() throwing UnauthorizedError (signed out) stops at once", async (t) => {
  const server = await fakeServer();
  let calls = 0;
  const courier = client(server, {
    getToken: async () => {
      calls += 1;
      throw new UnauthorizedError("signed out");
    },
  });
  t.after(async () => {
    courier.disconnect();
    await server.close();
  });
  courier.connect();
  await assert.rejects(courier.ready(2000), UnauthorizedError);
  await sleep(100);
  assert.equal(calls, 1);
  assert.equal(server.connections.length, 0);
  assert.equal(courier.state, "disconnected");
});

test("the token goes as the `bearer` subprotocol, never in the URL", async (t) => {
  const server = await fakeServer();
  const courier = client(server, { getToken: () => "eyJ.secret.token", device: "phone-1" });
  t.after(async () => {
    courier.disconnect();
    await server.close();
  });
  courier.connect();
  await courier.ready(2000);
  const conn = server.connections[0];
  assert.deepEqual(conn.protocols, ["bearer", "eyJ.secret.token"]);
  assert.equal(conn.ws.protocol, "bearer");
  assert.equal(conn.url, "/v1/ws?device=phone-1");
});
