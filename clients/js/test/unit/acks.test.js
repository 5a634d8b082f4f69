// Acks: automatic once the handler returned or resolved, gathered over a few ms into
// one `ids` frame; a handler that fails leaves its message unacked; manual mode.
import assert from "node:assert/strict";
import { test } from "node:test";

import { client, fakeServer, messageFrame, record, sleep, waitFor } from "./fake_server.js";

/** @param {number} n */
const burst = (n) => (/** @type {import("./fake_server.js").Conn} */ c) => {
  c.hello();
  for (let i = 1; i <= n; i++) c.send(messageFrame(`m${i}`));
};

test("a burst of messages is acked in one `ids` frame after the handlers return", async (t) => {
  const server = await fakeServer({ onConnection: burst(5) });
  const courier = client(server, { ackDelay: 30 });
  t.after(async () => {
    courier.disconnect();
    await server.close();
  });
  /** @type {string[]} */
  const handled = [];
  courier.on("message", (m) => void handled.push(m.id));
  courier.connect();
  await waitFor(() => server.framesOf("ack").length === 1);
  await sleep(60);
  assert.deepEqual(handled, ["m1", "m2", "m3", "m4", "m5"]);
  assert.deepEqual(server.framesOf("ack"), [
    { conn: 0, type: "ack", ids: ["m1", "m2", "m3", "m4", "m5"] },
  ]);
});

test("an async handler's message is acked only once its promise resolves", async (t) => {
  const server = await fakeServer({ onConnection: burst(2) });
  const courier = client(server, { ackDelay: 5 });
  t.after(async () => {
    courier.disconnect();
    await server.close();
  });
  /** @type {Record<string, () => void>} */
  const release = {};
  courier.on("message", (m) => new Promise((resolve) => (release[m.id] = () => resolve(undefined))));
  courier.connect();
  await waitFor(() => release.m1 && release.m2);
  await sleep(50);
  assert.equal(server.framesOf("ack").length, 0, "nothing acked while the handlers run");
  release.m2();
  await waitFor(() => server.framesOf("ack").length === 1);
  assert.deepEqual(server.framesOf("ack")[0].ids, ["m2"]);
  release.m1();
  await waitFor(() => server.framesOf("ack").length === 2);
  assert.deepEqual(server.framesOf("ack")[1].ids, ["m1"]);
});

test("a handler that throws or rejects leaves its message unacked, and says so", async (t) => {
  const server = await fakeServer({ onConnection: burst(3) });
  const courier = client(server, { ackDelay: 5 });
  t.after(async () => {
    courier.disconnect();
    await server.close();
  });
  const log = record(courier, ["error"]);
  courier.on("message", async (m) => {
    if (m.id === "m1") throw new Error("could not show it");
    if (m.id === "m2") await Promise.reject(new Error("render failed"));
  });
  courier.connect();
  await waitFor(() => server.framesOf("ack").length === 1);
  await sleep(30);
  assert.deepEqual(server.framesOf("ack").map((f) => f.ids), [["m3"]]);
  assert.deepEqual(
    log.of("error").map((e) => [e.type, e.id, e.detail]),
    [
      ["handler", "m1", "could not show it"],
      ["handler", "m2", "render failed"],
    ],
  );
});

test("the handler runs again on the redelivery of a message it failed on", async (t) => {
  const server = await fakeServer({
    onConnection: (c) => {
      c.hello();
      c.send(messageFrame("m1"));
      setTimeout(() => c.send(messageFrame("m1", { attempt: 2 })), 50);
    },
  });
  const courier = client(server, { ackDelay: 5 });
  t.after(async () => {
    courier.disconnect();
    await server.close();
  });
  let calls = 0;
  courier.on("message", () => {
    calls += 1;
    if (calls === 1) throw new Error("first try fails");
  });
  courier.connect();
  await waitFor(() => server.framesOf("ack").length === 1);
  assert.equal(calls, 2);
  assert.deepEqual(server.framesOf("ack")[0].ids, ["m1"]);
});

test("manual mode: nothing is acked until the app says so; duplicates of acked ids are", async (t) => {
  const server = await fakeServer({ onConnection: burst(3) });
  const courier = client(server, { ack: "manual", ackDelay: 5 });
  t.after(async () => {
    courier.disconnect();
    await server.close();
  });
  /** @type {import("../../src/index.js").Message[]} */
  const got = [];
  courier.on("message", (m) => void got.push(m));
  courier.connect();
  await waitFor(() => got.length === 3);
  await sleep(40);
  assert.equal(server.framesOf("ack").length, 0);
  got[1].ack();
  courier.ack(["m3"]);
  await waitFor(() => server.framesOf("ack").length === 1);
  assert.deepEqual(server.framesOf("ack")[0].ids, ["m2", "m3"]);
  server.last.send(messageFrame("m2", { attempt: 2 })); // acked before: acked again
  server.last.send(messageFrame("m1", { attempt: 2 })); // not acked yet: left to the app
  await waitFor(() => server.framesOf("ack").length === 2);
  await sleep(30);
  assert.deepEqual(server.framesOf("ack").map((f) => f.ids), [["m2", "m3"], ["m2"]]);
  assert.equal(got.length, 3, "no message shown twice");
});

test("more than 1000 pending acks go as several frames of at most 1000 ids", async (t) => {
  const server = await fakeServer({ onConnection: burst(2500) });
  const courier = client(server, { ackDelay: 50 });
  t.after(async () => {
    courier.disconnect();
    await server.close();
  });
  courier.connect();
  await waitFor(() => server.framesOf("ack").flatMap((f) => f.ids).length === 2500, 5000);
  const sizes = server.framesOf("ack").map((f) => f.ids.length);
  assert.ok(sizes.every((n) => n <= 1000), `${sizes}`);
  assert.ok(sizes.length <= 4, `few frames: ${sizes}`);
});
