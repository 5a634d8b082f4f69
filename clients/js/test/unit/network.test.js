// The browser's signals, fed through EventTargets: `offline` drops the socket and waits
// (no retry timer), `online` reconnects at once; a page that becomes visible pings a
// live connection and retries a waiting one now; pagehide sends pending acks.
import assert from "node:assert/strict";
import { test } from "node:test";

import { client, fakeServer, messageFrame, record, sleep, waitFor } from "./fake_server.js";

test("offline drops the socket and waits; online reconnects without the backoff", async (t) => {
  const server = await fakeServer();
  const net = new EventTarget();
  const courier = client(server, {
    networkEvents: true,
    networkEventTarget: net,
    visibilityTarget: null,
    minReconnectDelay: 5000,
  });
  t.after(async () => {
    courier.disconnect();
    await server.close();
  });
  const log = record(courier, ["connecting", "connected"]);
  courier.connect();
  await courier.ready(2000);
  net.dispatchEvent(new Event("offline"));
  assert.equal(courier.state, "connecting");
  assert.deepEqual(log.of("connecting").at(-1), { code: 0, reason: "offline", attempt: 0, delay: null });
  await sleep(200);
  assert.equal(server.connections.length, 1, "no attempt while offline");
  const back = Date.now();
  net.dispatchEvent(new Event("online"));
  await courier.ready(1000);
  assert.ok(Date.now() - back < 500, "at once, not after the 5 s backoff");
  assert.equal(server.connections.length, 2);
});

test("visible again: a waiting client retries now; a connected one pings now", async (t) => {
  const server = await fakeServer({
    onConnection: (c) => (c.index === 0 ? c.close(1011, "down") : c.hello()),
  });
  const doc = new EventTarget();
  const courier = client(server, {
    networkEvents: true,
    networkEventTarget: null,
    visibilityTarget: doc,
    minReconnectDelay: 60000,
    random: () => 1,
  });
  t.after(async () => {
    courier.disconnect();
    await server.close();
  });
  courier.connect();
  await waitFor(() => courier.state === "connecting" && server.connections.length === 1);
  await sleep(50);
  doc.dispatchEvent(new Event("visibilitychange"));
  await courier.ready(1000);
  assert.equal(server.framesOf("ping").length, 0);
  doc.dispatchEvent(new Event("visibilitychange"));
  await waitFor(() => server.framesOf("ping").length === 1);
});

test("pagehide sends the pending acks at once; disconnect() removes the listeners", async (t) => {
  const server = await fakeServer({
    onConnection: (c) => {
      c.hello();
      c.send(messageFrame("m1"));
    },
  });
  const net = new EventTarget();
  const courier = client(server, { networkEvents: true, networkEventTarget: net, ackDelay: 60000 });
  t.after(() => server.close());
  const log = record(courier, ["message", "state"]);
  courier.connect();
  await waitFor(() => log.of("message").length === 1);
  await sleep(10);
  net.dispatchEvent(new Event("pagehide"));
  await waitFor(() => server.framesOf("ack").length === 1);
  courier.disconnect();
  const states = log.of("state").length;
  net.dispatchEvent(new Event("online"));
  net.dispatchEvent(new Event("offline"));
  await sleep(50);
  assert.equal(log.of("state").length, states, "a stopped client ignores the network");
  assert.equal(server.connections.length, 1);
});
