// URLs and tokens: the server's origin or its ws URL; JWT exp without verification.
import assert from "node:assert/strict";
import { test } from "node:test";

import { tokenExp, websocketUrl } from "../../src/index.js";
import { refreshDelay } from "../../src/token.js";
import { tokenWithExp } from "./fake_server.js";

test("an origin gets /v1/ws (or /v1/ws/{user}); http becomes ws; a full ws URL is kept", () => {
  assert.equal(websocketUrl("http://127.0.0.1:8000"), "ws://127.0.0.1:8000/v1/ws");
  assert.equal(websocketUrl("https://c.example.com/"), "wss://c.example.com/v1/ws");
  assert.equal(websocketUrl("https://c.example.com", { user: "a b" }), "wss://c.example.com/v1/ws/a%20b");
  assert.equal(websocketUrl("wss://c.example.com/edge/v1/ws"), "wss://c.example.com/edge/v1/ws");
  assert.equal(websocketUrl("ws://h:1/v1/ws", { device: "phone 1" }), "ws://h:1/v1/ws?device=phone+1");
  assert.throws(() => websocketUrl("ftp://h"), /ws:\/\/, wss:\/\/, http:\/\/ or https:\/\//);
});

test("tokenExp reads exp; anything else is null", () => {
  assert.equal(tokenExp(tokenWithExp(1796120964)), 1796120964);
  assert.equal(tokenExp("not-a-jwt"), null);
  assert.equal(tokenExp("a.!!!.c"), null);
  assert.equal(tokenExp(tokenWithExp(/** @type {any} */ ("soon"))), null);
});

test("refresh margin: 30 s before exp, at most half-way for short tokens", () => {
  assert.equal(refreshDelay(3600_000, 30_000), 3570_000);
  assert.equal(refreshDelay(4000, 30_000), 2000);
  assert.equal(refreshDelay(0, 30_000), 0);
});
