// Topics and tasks: subscriptions are sent after `connected` and again after every
// reconnect; topic, tasks, task and broadcast frames become events; a task's status
// from its topic frame and from its message is one `task` event.
import assert from "node:assert/strict";
import { test } from "node:test";

import { client, fakeServer, messageFrame, record, waitFor } from "./fake_server.js";

/** @param {import("./fake_server.js").Conn} c @param {any} f */
function answerSubscribe(c, f) {
  if (f.type === "subscribe" || f.type === "unsubscribe") {
    c.send({ type: `${f.type}d`, topic: f.topic });
  }
}

test("topics are subscribed after `connected` and again after each reconnect", async (t) => {
  const server = await fakeServer({ onFrame: answerSubscribe });
  const courier = client(server);
  t.after(async () => {
    courier.disconnect();
    await server.close();
  });
  const log = record(courier, ["subscribed", "unsubscribed"]);
  courier.subscribe("news").subscribeTask("t1"); // before connecting: sent once connected
  courier.connect();
  await waitFor(() => log.of("subscribed").length === 2);
  assert.deepEqual(server.framesOf("subscribe").map((f) => [f.conn, f.topic]), [
    [0, "news"],
    [0, "task:t1"],
  ]);
  courier.unsubscribe("news");
  await waitFor(() => log.of("unsubscribed").length === 1);
  server.last.close(1011, "node died");
  await waitFor(() => log.of("subscribed").length === 3);
  assert.deepEqual(server.connections[1].frames.filter((f) => f.type === "subscribe"), [
    { type: "subscribe", topic: "task:t1" },
  ]);
  assert.deepEqual(courier.topics, ["task:t1"]);
  courier.subscribe("task:t1"); // already: no second frame
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(server.connections[1].frames.filter((f) => f.type === "subscribe").length, 1);
});

test("topic, tasks and broadcast frames are events; task states merge and do not repeat", async (t) => {
  const running = { task_id: "t1", user_id: "alice", status: "running", progress: 0, message: null };
  const server = await fakeServer({
    onConnection: (c) => {
      c.hello();
      c.send({ type: "tasks", tasks: [running] });
    },
    onFrame: (c, f) => {
      if (f.type !== "subscribe") return;
      c.send({ type: "subscribed", topic: f.topic });
      c.send({ type: "topic", topic: f.topic, data: running }); // the state at subscribe
      const p40 = { type: "task", task_id: "t1", status: "progress", progress: 40, message: "half" };
      c.send({ type: "topic", topic: f.topic, data: p40 }); // live ...
      c.send(messageFrame("m1", { topic: f.topic, payload: p40, collapse_key: f.topic })); // ... and guaranteed
      const done = { ...p40, status: "completed", progress: 100, result: { url: "/x" } };
      c.send(messageFrame("m2", { topic: f.topic, payload: done, priority: "high" }));
      c.send({ type: "topic", topic: f.topic, data: { ...p40, progress: 50 } }); // late and stale
      c.send({ type: "broadcast", id: "b1", payload: { text: "maintenance" }, system: true });
    },
  });
  const courier = client(server);
  t.after(async () => {
    courier.disconnect();
    await server.close();
  });
  const log = record(courier, ["tasks", "task", "topic", "broadcast", "message"]);
  courier.connect();
  await courier.ready(2000);
  courier.subscribeTask("t1");
  await waitFor(() => log.of("broadcast").length === 1);
  assert.deepEqual(log.of("tasks"), [{ tasks: [running] }]);
  assert.deepEqual(
    log.of("task").map((s) => [s.status, s.progress]),
    [
      ["running", 0],
      ["progress", 40],
      ["completed", 100],
    ],
    "each state once; nothing after completed",
  );
  assert.deepEqual(courier.task("t1")?.result, { url: "/x" });
  assert.equal(log.of("topic").length, 3);
  assert.deepEqual(log.of("message").map((m) => [m.id, m.topic, m.collapseKey, m.priority]), [
    ["m1", "task:t1", "task:t1", "normal"],
    ["m2", "task:t1", undefined, "high"],
  ]);
  assert.deepEqual(log.of("broadcast"), [{ id: "b1", payload: { text: "maintenance" }, system: true }]);
  await waitFor(() => server.framesOf("ack").flatMap((f) => f.ids).length === 2);
});

test("an error frame is an `error` event naming what it was about", async (t) => {
  const server = await fakeServer({
    onFrame: (c, f) => {
      if (f.type === "subscribe") {
        c.send({ type: "error", code: "unknown_task", detail: "no task t9 of this user", topic: f.topic });
      }
    },
  });
  const courier = client(server);
  t.after(async () => {
    courier.disconnect();
    await server.close();
  });
  const log = record(courier, ["error"]);
  courier.subscribeTask("t9").connect();
  await waitFor(() => log.of("error").length === 1);
  const [e] = log.of("error");
  assert.deepEqual([e.type, e.code, e.detail, e.frame.topic], [
    "server",
    "unknown_task",
    "no task t9 of this user",
    "task:t9",
  ]);
  assert.equal(courier.state, "connected", "the connection stays open");
});
