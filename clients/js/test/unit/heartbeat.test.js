// Heartbeats: a ping every heartbeat_interval from `connected`; a missing pong closes
// the socket and reconnects; every timer goes with its socket (no leak per reconnect,
// nothing left after disconnect()).
import assert from "node:assert/strict";
import { test } from "node:test";

import { client, fakeServer, record, sleep, waitFor } from "./fake_server.js";

const timers = () => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;

test("pings every heartbeat_interval of the `connected` frame; pongs keep it up", async (t) => {
  const server = await fakeServer({ heartbeatInterval: 0.1 });
  const courier = client(server);
  t.after(async () => {
    courier.disconnect();
    await server.close();
  });
  courier.connect();
  await courier.ready(2000);
  const start = Date.now();
  await waitFor(() => server.framesOf("ping").length >= 4, 2000);
  const pings = server.framesOf("ping");
  assert.ok(Date.now() - start >= 350, "not faster than the interval");
  assert.ok(pings.every((p) => typeof p.ts === "number" && p.conn === 0));
  assert.equal(server.connections.length, 1);
  assert.equal(courier.state, "connected");
});

test("a pong that does not come closes the socket (4000) and reconnects", async (t) => {
  const server = await fakeServer({ heartbeatInterval: 0.1, answerPing: false });
  const courier = client(server, { pongTimeout: 50 });
  t.after(async () => {
    courier.disconnect();
    await server.close();
  });
  const log = record(courier, ["connecting", "error"]);
  /** @type {number[]} */
  const closes = [];
  server.events.on("connection", (c) => c.ws.on("close", (code) => closes.push(code)));
  courier.connect();
  await waitFor(() => server.connections.length >= 2, 3000);
  assert.deepEqual(log.of("connecting")[1], {
    code: 4000,
    reason: "no pong in time",
    attempt: 1,
    delay: log.of("connecting")[1].delay,
  });
  await waitFor(() => closes.length >= 1);
  assert.equal(closes[0], 4000);
  assert.deepEqual(log.of("error"), []);
});

test("no timer survives its socket: many reconnects leave none behind, disconnect leaves none", async (t) => {
  const before = timers();
  const server = await fakeServer({
    heartbeatInterval: 0.05,
    onConnection: (c) => {
      c.hello();
      setTimeout(() => c.close(1011, "again"), 30);
    },
  });
  t.after(() => server.close());
  const courier = client(server, { minReconnectDelay: 5, maxReconnectDelay: 10 });
  const log = record(courier, ["error"]);
  courier.connect();
  await waitFor(() => server.connections.length >= 10, 5000);
  const during = timers();
  courier.disconnect();
  const after = server.frames.length;
  await sleep(200);
  assert.equal(server.frames.length, after, "nothing sent after disconnect()");
  assert.ok(during - before <= 4, `timers while reconnecting: ${during - before}`);
  await waitFor(() => timers() <= before, 1000, "timers back to the baseline");
  assert.deepEqual(log.of("error"), [], "no write to a closing or closed socket");
  assert.equal(courier.state, "disconnected");
});

test("no `connected` frame within connectTimeout: the socket is dropped and retried", async (t) => {
  const server = await fakeServer({
    onConnection: (c) => {
      if (c.index > 0) c.hello();
    },
  });
  const courier = client(server, { connectTimeout: 100 });
  t.after(async () => {
    courier.disconnect();
    await server.close();
  });
  const log = record(courier, ["connecting"]);
  courier.connect();
  await courier.ready(3000);
  assert.equal(server.connections.length, 2);
  assert.equal(log.of("connecting")[1].reason, "no connected frame in time");
});
