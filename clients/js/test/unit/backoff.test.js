// Reconnect delays: full jitter bounds, growth, cap, and the reset rule (only after a
// connection stayed up), on the pure functions and on a client against a fake server.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Backoff, backoffDelay } from "../../src/index.js";
import { client, fakeServer, record, sleep, waitFor } from "./fake_server.js";

test("full jitter: uniform between 0 and min(max, min * 2^attempt)", () => {
  assert.equal(backoffDelay(0, 500, 20000, () => 0), 0);
  assert.equal(backoffDelay(0, 500, 20000, () => 0.999999), 499.9995);
  assert.equal(backoffDelay(3, 500, 20000, () => 0.5), 2000); // cap 4000
  assert.equal(backoffDelay(6, 500, 20000, () => 0.5), 10000); // 32000 capped at 20000
  assert.equal(backoffDelay(1000, 500, 20000, () => 0.5), 10000); // no overflow
  for (let attempt = 0; attempt < 12; attempt++) {
    const cap = Math.min(20000, 500 * 2 ** attempt);
    const samples = Array.from({ length: 400 }, () => backoffDelay(attempt, 500, 20000));
    assert.ok(samples.every((d) => d >= 0 && d < cap), `attempt ${attempt} within [0, ${cap})`);
    // full jitter spreads over the whole range, not just its top half
    assert.ok(samples.some((d) => d < cap / 4) && samples.some((d) => d > (3 * cap) / 4));
  }
});

test("the count resets only after a connection stayed up for stableAfter", () => {
  const b = new Backoff({ min: 100, max: 10000, stableAfter: 5000, random: () => 1 });
  assert.deepEqual([b.next(), b.next(), b.next()], [100, 200, 400]);
  b.up(1000);
  b.down(1000 + 4999); // accepted, then dropped quickly: keeps growing
  assert.equal(b.next(), 800);
  b.up(10000);
  b.down(15000); // stayed up 5 s: back to the smallest
  assert.equal(b.attempts, 0);
  assert.equal(b.next(), 100);
  b.down(99999); // a failure without a connection resets nothing
  assert.equal(b.next(), 200);
});

test("a server that drops every connection right after `connected` gets growing delays", async (t) => {
  const server = await fakeServer({
    onConnection: (c) => {
      c.hello();
      setTimeout(() => c.close(1011, "boom"), 5);
    },
  });
  const courier = client(server, { minReconnectDelay: 10, maxReconnectDelay: 5000, stableAfter: 10000, random: () => 1 });
  t.after(async () => {
    courier.disconnect();
    await server.close();
  });
  const log = record(courier, ["connecting"]);
  courier.connect();
  await waitFor(() => log.of("connecting").length >= 6, 5000, "6 connecting events");
  const retries = log.of("connecting").slice(1, 6);
  assert.deepEqual(retries.map((c) => c.code), [1011, 1011, 1011, 1011, 1011]);
  assert.deepEqual(retries.map((c) => c.attempt), [1, 2, 3, 4, 5]);
  assert.deepEqual(retries.map((c) => c.delay), [10, 20, 40, 80, 160]);
  // the server saw the gaps grow too
  const opened = server.connections.map((c) => c.openedAt);
  const gaps = opened.slice(1, 5).map((at, i) => at - opened[i]);
  assert.ok(gaps[3] > gaps[0], `gaps grow: ${gaps}`);
});

test("a connection that stayed up resets the delay to the smallest", async (t) => {
  const server = await fakeServer({
    onConnection: (c) => {
      c.hello();
      setTimeout(() => c.close(1001, "restart"), 120);
    },
  });
  const courier = client(server, { minReconnectDelay: 10, stableAfter: 60, random: () => 1 });
  t.after(async () => {
    courier.disconnect();
    await server.close();
  });
  const log = record(courier, ["connecting"]);
  courier.connect();
  await waitFor(() => log.of("connecting").length >= 4, 5000);
  assert.deepEqual(log.of("connecting").slice(1, 4).map((c) => [c.attempt, c.delay]), [
    [1, 10],
    [1, 10],
    [1, 10],
  ]);
  await sleep(0);
});
