// Dedupe by message id: the bounded set, the sessionStorage store, and a client that
// shows a redelivered message once, acks it again, and (with a store) remembers it
// across a "reload" (a new client on the same storage).
import assert from "node:assert/strict";
import { test } from "node:test";

import { SeenIds, sessionStore } from "../../src/index.js";
import { client, fakeServer, messageFrame, record, waitFor } from "./fake_server.js";

/** The Web Storage interface over a Map (Node has no sessionStorage). */
class MemoryStorage {
  map = new Map();
  get length() {
    return this.map.size;
  }
  /** @param {string} k */
  getItem(k) {
    return this.map.has(k) ? this.map.get(k) : null;
  }
  /** @param {string} k @param {string} v */
  setItem(k, v) {
    this.map.set(k, String(v));
  }
  /** @param {string} k */
  removeItem(k) {
    this.map.delete(k);
  }
  clear() {
    this.map.clear();
  }
  /** @param {number} i */
  key(i) {
    return [...this.map.keys()][i] ?? null;
  }
}

test("the in-memory set is bounded and forgets the oldest ids first", () => {
  const seen = new SeenIds(3);
  for (const id of ["a", "b", "c", "d"]) seen.add(id);
  assert.equal(seen.size, 3);
  assert.deepEqual(["a", "b", "c", "d"].map((id) => seen.has(id)), [false, true, true, true]);
  seen.add("b"); // seen again: now the newest
  seen.add("e");
  assert.deepEqual(["b", "c", "d", "e"].map((id) => seen.has(id)), [true, false, true, true]);
});

test("sessionStore keeps the newest `limit` ids as JSON under its key", () => {
  const storage = new MemoryStorage();
  const store = sessionStore({ key: "k", limit: 3, storage });
  assert.deepEqual([...store.load()], []);
  store.add(["1", "2"]);
  store.add(["3", "4"]);
  store.add(["2"]);
  assert.deepEqual(JSON.parse(storage.getItem("k")), ["3", "4", "2"]);
  assert.deepEqual([...sessionStore({ key: "k", storage }).load()], ["3", "4", "2"]);
  storage.setItem("k", "not json");
  assert.deepEqual([...store.load()], [], "a broken value reads as empty");
});

test("a redelivered message is shown once and acked both times", async (t) => {
  const server = await fakeServer({
    onConnection: (c) => {
      c.hello();
      c.send(messageFrame("m1"));
      c.send(messageFrame("m2"));
      setTimeout(() => c.send(messageFrame("m1", { attempt: 2 })), 80);
    },
  });
  const courier = client(server);
  t.after(async () => {
    courier.disconnect();
    await server.close();
  });
  const log = record(courier, ["duplicate"]);
  /** @type {string[]} */
  const shown = [];
  courier.on("message", (m) => void shown.push(`${m.id}#${m.attempt}`));
  courier.connect();
  await waitFor(() => log.of("duplicate").length === 1);
  await waitFor(() => server.framesOf("ack").flatMap((f) => f.ids).length === 3);
  assert.deepEqual(shown, ["m1#1", "m2#1"]);
  assert.deepEqual(log.of("duplicate"), [{ id: "m1", attempt: 2 }]);
  assert.deepEqual(server.framesOf("ack").map((f) => f.ids), [["m1", "m2"], ["m1"]]);
});

test("with a store, a new client (a reload) does not show what the last one handled", async (t) => {
  const storage = new MemoryStorage();
  const server = await fakeServer({
    onConnection: (c) => {
      c.hello();
      c.send(messageFrame("m1", { attempt: c.index + 1 }));
      if (c.index === 1) c.send(messageFrame("m2"));
    },
  });
  t.after(() => server.close());
  /** @type {string[]} */
  const shown = [];
  const first = client(server, { seenStore: sessionStore({ storage }), ackDelay: 10000 });
  t.after(() => first.disconnect());
  first.on("message", (m) => void shown.push(m.id)).connect();
  // handled, stored, but the ack is still waiting (ackDelay): the page reloads now
  await waitFor(() => JSON.parse(storage.getItem("courier:seen") || "[]").includes("m1"), 3000, "m1 stored");
  assert.equal(server.framesOf("ack").length, 0);
  server.connections[0].ws.terminate();
  first.disconnect();

  const second = client(server, { seenStore: sessionStore({ storage }) });
  const log = record(second, ["duplicate"]);
  second.on("message", (m) => void shown.push(m.id)).connect();
  t.after(() => second.disconnect());
  await waitFor(() => server.framesOf("ack").some((f) => f.ids.includes("m2")));
  assert.deepEqual(shown, ["m1", "m2"], "m1 once, before the reload");
  assert.deepEqual(log.of("duplicate"), [{ id: "m1", attempt: 2 }]);
  assert.deepEqual(server.framesOf("ack").map((f) => f.ids.sort()), [["m1", "m2"]]);
});

test("without a store the same reload shows the message again (what the store prevents)", async (t) => {
  const server = await fakeServer({
    onConnection: (c) => {
      c.hello();
      c.send(messageFrame("m1", { attempt: c.index + 1 }));
    },
  });
  t.after(() => server.close());
  /** @type {string[]} */
  const shown = [];
  const first = client(server, { ackDelay: 10000 });
  t.after(() => first.disconnect());
  first.on("message", (m) => void shown.push(m.id)).connect();
  await waitFor(() => shown.length === 1);
  server.connections[0].ws.terminate();
  first.disconnect();
  const second = client(server);
  second.on("message", (m) => void shown.push(m.id)).connect();
  t.after(() => second.disconnect());
  await waitFor(() => shown.length === 2);
  assert.deepEqual(shown, ["m1", "m1"]);
});
