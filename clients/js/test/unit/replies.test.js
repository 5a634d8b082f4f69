// reply(id, data) for reply_requested messages, cancel(taskId); both wait in an
// outbox while the client is not connected and go right after the next `connected`.
import assert from "node:assert/strict";
import { test } from "node:test";

import { client, fakeServer, messageFrame, waitFor } from "./fake_server.js";

test("a handler replies to a reply_requested message; the reply goes before the ack", async (t) => {
  const server = await fakeServer({
    onConnection: (c) => {
      c.hello();
      c.send(messageFrame("q1", { payload: { question: "Deploy?" }, reply_requested: true }));
    },
  });
  const courier = client(server);
  t.after(async () => {
    courier.disconnect();
    await server.close();
  });
  courier.on("message", (m) => {
    assert.equal(m.replyRequested, true);
    m.reply({ answer: "yes" });
  });
  courier.connect();
  await waitFor(() => server.framesOf("ack").length === 1);
  assert.deepEqual(
    server.frames.filter(([, f]) => f.type !== "ping").map(([, f]) => f),
    [
      { type: "reply", id: "q1", data: { answer: "yes" } },
      { type: "ack", ids: ["q1"] },
    ],
  );
});

test("reply and cancel made while disconnected are sent after the next `connected`", async (t) => {
  const server = await fakeServer({
    onConnection: (c) => {
      if (c.index === 0) {
        c.hello();
        c.send(messageFrame("q1", { reply_requested: true }));
      } else {
        setTimeout(() => c.hello(), 50);
      }
    },
  });
  const courier = client(server, { ack: "manual" });
  t.after(async () => {
    courier.disconnect();
    await server.close();
  });
  /** @type {import("../../src/index.js").Message[]} */
  const got = [];
  courier.on("message", (m) => void got.push(m));
  courier.connect();
  await waitFor(() => got.length === 1);
  server.connections[0].ws.terminate(); // the network drops while the user thinks
  await waitFor(() => courier.state === "connecting");
  got[0].reply("no");
  courier.cancel("import-7");
  await waitFor(() => server.connections[1]?.frames.length >= 2);
  assert.deepEqual(server.connections[1].frames.slice(0, 2), [
    { type: "reply", id: "q1", data: "no" },
    { type: "cancel", task_id: "import-7" },
  ]);
  assert.deepEqual(server.connections[0].frames, []);
});
