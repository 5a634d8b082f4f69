// The console in Debian's Chromium against a real `courier serve` and a private Redis:
// what an operator sees on each page, checked against what the server says and what
// real WebSocket clients get. Each test uses its own users.
//
// Screenshots go to console/test-results/; with COURIER_UPDATE_SCREENSHOTS=1 also to
// docs/img/console-*.png (the ones docs/operations.md shows).

import assert from "node:assert/strict";
import { copyFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { CourierServer, ROOT, freePort, launchBrowser, sign, sleep, startRedis, until } from "./harness.js";

const RESULTS = join(ROOT, "console/test-results");

/** @type {Awaited<ReturnType<typeof startRedis>>} */
let redis;
/** @type {CourierServer} */
let courier;
/** @type {Awaited<ReturnType<typeof launchBrowser>>} */
let browser;
const pageErrors = /** @type {string[]} */ ([]);
/** files of the page (not API answers) that were not found: a favicon, a script */
const notFound = /** @type {string[]} */ ([]);

before(async () => {
  redis = await startRedis();
  courier = new CourierServer({ redisUrl: redis.url, port: await freePort() });
  await courier.start();
  browser = await launchBrowser();
  await browser.context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: courier.base });
  mkdirSync(RESULTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  await courier?.stop();
  await redis?.stop();
});

/** A console page, not signed in. */
async function blank() {
  const page = await browser.context.newPage();
  page.on("pageerror", (e) => pageErrors.push(e.message));
  page.on("response", (r) => {
    if (r.status() === 404 && r.request().method() === "GET" && !new URL(r.url()).pathname.startsWith("/v1/")) notFound.push(r.url());
  });
  await page.goto(`${courier.base}/admin/`);
  return page;
}

/**
 * A console page signed in with a pasted admin token, showing `hash`.
 * @param {string} [hash]
 */
async function console_(hash = "#/") {
  const page = await blank();
  await page.fill("#token", sign("ops", { role: "admin" }));
  await page.click("#sign-in");
  await page.waitForSelector('[data-testid="who"]');
  await page.evaluate((h) => (location.hash = h), hash);
  return page;
}

/** @param {import("playwright-core").Page} page @param {string} name */
async function screenshot(page, name) {
  const path = join(RESULTS, `console-${name}.png`);
  await page.screenshot({ path, fullPage: true });
  if (process.env.COURIER_UPDATE_SCREENSHOTS === "1") copyFileSync(path, join(ROOT, "docs/img", `console-${name}.png`));
}

test("a user token is refused, and the page says why; the one-time link signs in once", async () => {
  const page = await blank();
  await page.fill("#token", sign("mallory"));
  await page.click("#sign-in");
  const error = page.locator('[data-testid="error"]');
  await error.waitFor();
  const text = await error.innerText();
  assert.match(text, /may not open the console: role 'user' may not do this; needs admin/);
  assert.match(text, /courier admin/);
  assert.equal(await page.evaluate(() => sessionStorage.length), 0, "nothing kept");
  assert.equal(await page.locator('[data-testid="who"]').count(), 0);
  await screenshot(page, "sign-in");

  const { url, user_id } = JSON.parse(await courier.cli(["admin", "--user", "oncall-erin", "--json", "--url", courier.base]));
  assert.equal(user_id, "oncall-erin");
  assert.match(url, /\/admin\/#code=[\w-]{32}$/);
  await page.goto(url);
  await page.waitForSelector('[data-testid="who"]');
  assert.match(await page.locator('[data-testid="who"]').innerText(), /Signed in as oncall-erin/);
  assert.equal(await page.evaluate(() => location.hash), "#/", "the code left the address bar");
  assert.ok(await page.evaluate(() => sessionStorage.getItem("courier.console.token")), "token in the tab's session");
  assert.equal(await page.evaluate(() => localStorage.length), 0, "never in localStorage");
  await until(() => courier.logged("admin oncall-erin: sign in console (using=one-time link)").length === 1, 3000, "sign-in logged");

  const again = await browser.context.newPage(); // the same link a second time
  await again.goto(url);
  const refused = again.locator('[data-testid="error"]');
  await refused.waitFor();
  assert.match(await refused.innerText(), /unknown, used already or expired/);
  await again.close();
  await page.close();
});

test("the overview's numbers match /v1/stats after a known load, rates included", async () => {
  const page = await console_("#/");
  await page.waitForSelector('[data-testid="overview"][data-readings="2"]');
  const reader = await courier.client("ov-reader");
  const ids = [];
  for (let i = 0; i < 7; i++) ids.push(await courier.send(`ov-offline-${i % 3}`, { n: i }));
  for (let i = 0; i < 3; i++) ids.push(await courier.send("ov-reader", { n: i }));
  for (const id of ids.slice(7, 10)) await courier.reaches(id, "delivered");
  // a backend's own producer (`courier send` is one: no Courier process) counts too
  for (let i = 0; i < 2; i++) await courier.cli(["send", "ov-offline-cli", JSON.stringify({ n: i })]);
  // the rates: every message of the load, counted once, in the charts' window
  const windowTotal = (/** @type {string} */ name) => page.getAttribute(`[data-rate="${name}"]`, "data-window-total");
  await until(async () => (await windowTotal("enqueued")) === "12", 15000, "12 enqueued in the window");
  await until(async () => (await windowTotal("delivered")) === "3", 15000, "3 delivered in the window");
  await until(async () => (await windowTotal("parked")) === "9", 15000, "9 parked in the window");
  // the numbers: what the page shows is what /v1/stats says (both read until they agree)
  const keys = ["delayed", "inflight", "parked", "dead_letters", "online_users", "connections", "nodes_alive", "consumers_alive"];
  /** @type {any} */
  let stats;
  await until(async () => {
    stats = await courier.admin("/v1/stats");
    for (const k of keys) {
      const shown = (await page.locator(`[data-stat="${k}"] .v`).innerText()).replace(/,/g, "");
      if (shown !== String(stats[k])) return false;
    }
    for (const [prio, s] of Object.entries(stats.streams)) {
      for (const k of ["length", "pending", "lag"]) {
        const shown = await page.locator(`[data-stream="${prio}"] [data-k="${k}"]`).innerText();
        if (shown !== String(/** @type {any} */ (s)[k])) return false;
      }
    }
    return true;
  }, 10000, "the page agrees with /v1/stats");
  assert.ok(stats.parked >= 9, `9 parked at least: ${stats.parked}`);
  assert.ok(stats.online_users >= 1 && stats.connections >= 1);
  const node = stats.nodes[0];
  assert.equal(await page.locator(`[data-node="${node.node_id}"] [data-k="connections"]`).innerText(), String(node.connections));
  assert.match(await page.locator('[data-testid="redis"]').innerText(), /PING\s+[\d.]+ ms/);
  await screenshot(page, "overview");
  reader.ws.close();
  await page.close();
});

test("looking up a delivered message shows its timeline with the acking connection", async () => {
  const user = "msg-frank";
  const client = await courier.client(user, { device: "pixel-8" });
  const id = await courier.send(user, { text: "Your export is ready", rows: 1042 }, { priority: "high" });
  const server = await courier.reaches(id, "delivered");
  const page = await console_("#/message");
  await page.fill("#message-id", id);
  await page.press("#message-id", "Enter");
  const acked = page.locator('[data-testid="timeline"] li[data-event="acked"]');
  await acked.waitFor();
  assert.equal(await acked.locator('[data-k="conn"]').innerText(), client.connectionId);
  const ack = server.timeline.find((/** @type {any} */ e) => e.event === "acked");
  assert.equal(await acked.locator('[data-k="node"]').innerText(), ack.node);
  const events = await page.$$eval('[data-testid="timeline"] li', (els) => els.map((e) => /** @type {HTMLElement} */ (e).dataset.event));
  assert.deepEqual(events, server.timeline.map((/** @type {any} */ e) => e.event));
  assert.equal(await page.getAttribute('[data-testid="message"]', "data-status"), "delivered");
  assert.deepEqual(JSON.parse(await page.locator('[data-testid="payload"]').innerText()), { text: "Your export is ready", rows: 1042 });
  await page.click("#copy-json");
  await until(async () => (await page.locator('[data-testid="copied"]').innerText()) === "Copied", 3000, "copied");
  const copied = JSON.parse(await page.evaluate(() => navigator.clipboard.readText()));
  assert.equal(copied.id, id);
  assert.deepEqual(copied.timeline, server.timeline);
  await screenshot(page, "message");
  client.ws.close();
  await page.close();
});

test("a dead letter replayed from the page reaches a connected client and shows delivered", async () => {
  const user = "dlq-grace";
  const deaf = await courier.client(user, { ack: false });
  const id = await courier.send(user, { text: "Deploy build 231?" }, { max_attempts: 1 });
  await courier.reaches(id, "dead");
  deaf.ws.close();
  await until(async () => (await courier.admin(`/v1/users/${user}/connections`)).connections.length === 0, 5000, "gone");
  const listener = await courier.client(user);
  const page = await console_("#/dead-letters");
  const row = page.locator(`tr[data-dead="${id}"]`);
  await row.waitFor();
  assert.match(await row.innerText(), /ack_timeout/);
  assert.equal(await page.locator("#replay-all").isDisabled(), false, "enabled with a dead letter");
  await screenshot(page, "dead-letters");
  await row.locator("button.replay").click();
  const followed = page.locator(`tr[data-replayed="${id}"] [data-status]`);
  await until(async () => (await followed.count()) && (await followed.getAttribute("data-status")) === "delivered", 10000, "shown delivered");
  assert.match(await page.locator('[data-testid="dlq-result"]').innerText(), /Replayed 1 of 1/);
  assert.equal(await row.count(), 0, "it left the dead-letter list");
  const got = listener.frames.filter((f) => f.type === "message" && f.id === id);
  assert.equal(got.length, 1, "the connected client got it once");
  assert.deepEqual(got[0].payload, { text: "Deploy build 231?" });
  const server = await courier.reaches(id, "delivered");
  assert.ok(server.timeline.some((/** @type {any} */ e) => e.event === "replayed" && e.by === "ops"));
  assert.equal(courier.logged(`admin ops: replay ${id}`).length, 1, "the replay is logged with who did it");
  listener.ws.close();
  await page.close();
});

test("purging from the page asks first, then the entry is gone", async () => {
  const user = "dlq-heidi";
  const deaf = await courier.client(user, { ack: false });
  const id = await courier.send(user, { text: "lost" }, { max_attempts: 1 });
  await courier.reaches(id, "dead");
  deaf.ws.close();
  const page = await console_("#/dead-letters");
  const row = page.locator(`tr[data-dead="${id}"]`);
  await row.waitFor();
  await row.locator("button.purge").click();
  await page.locator("dialog#confirm").waitFor();
  await page.click("dialog#confirm button.cancel");
  await sleep(300);
  assert.equal(await row.count(), 1, "cancel keeps it");
  await row.locator("button.purge").click();
  await page.click("dialog#confirm button.ok");
  await until(async () => (await row.count()) === 0, 5000, "purged");
  assert.match(await page.locator('[data-testid="dlq-result"]').innerText(), /Purged 1 entry/);
  assert.equal((await courier.admin(`/v1/messages/${id}`)).status, "dead", "the message stays dead");
  await until(() => courier.logged(`admin ops: purge ${id}`).length === 1, 3000, "logged");
  await page.close();
});

test("disconnecting a user from the page closes their sockets with 4409", async () => {
  const user = "kick-ivan";
  const phone = await courier.client(user, { device: "phone" });
  const laptop = await courier.client(user, { device: "laptop" });
  const page = await console_(`#/user/${user}`);
  const devices = page.locator('[data-testid="devices"] tr[data-conn]');
  await until(async () => (await devices.count()) === 2, 5000, "two devices shown");
  const shown = await devices.allInnerTexts();
  assert.ok(shown.some((t) => t.includes("phone")) && shown.some((t) => t.includes("laptop")), shown.join("|"));
  assert.ok(shown.some((t) => t.includes(phone.connectionId)));
  // a test message from the page reaches both devices
  await page.click("#send-test");
  const sent = page.locator('[data-testid="test-result"] a');
  await sent.waitFor();
  const testId = await sent.innerText();
  await until(() => phone.frames.some((f) => f.id === testId) && laptop.frames.some((f) => f.id === testId), 5000, "test message arrives");
  assert.equal(phone.frames.find((f) => f.id === testId).payload.type, "courier.test");
  await courier.reaches(testId, "delivered");
  await screenshot(page, "user");
  await page.click("#disconnect-all");
  await page.click("dialog#confirm button.ok");
  await until(() => phone.closeCode !== null && laptop.closeCode !== null, 5000, "both closed");
  assert.equal(phone.closeCode, 4409);
  assert.equal(laptop.closeCode, 4409);
  assert.equal(phone.closeReason, "disconnected by an operator");
  assert.match(await page.locator('[data-testid="disconnect-result"]').innerText(), /Asked 2 connections to close/);
  await until(async () => (await devices.count()) === 0, 5000, "no device left");
  assert.equal(courier.logged(`admin ops: disconnect ${user} (connections=2)`).length, 1);
  assert.equal(courier.logged(`admin ops: test message ${user} (id=${testId})`).length, 1);
  await page.close();
});

test("tasks and the live tail: a user's task statuses; lifecycle events as they happen", async () => {
  const user = "task-judy";
  await courier.api("POST", "/v1/tasks/render-7/status", { body: { user_id: user, status: "running", progress: 40, message: "rendering page 4 of 10" } });
  await courier.api("POST", "/v1/tasks/export-3/status", { body: { user_id: user, status: "completed", result: { url: "/files/3.csv" } } });
  const page = await console_(`#/tasks/${user}`);
  const rows = page.locator('[data-testid="tasks"] tr[data-task]');
  await until(async () => (await rows.count()) === 2, 5000, "two tasks");
  assert.match(await page.locator('tr[data-task="render-7"]').innerText(), /running\s+40 %\s+rendering page 4 of 10/);
  assert.match(await page.locator('tr[data-task="export-3"]').innerText(), /completed/);
  await screenshot(page, "tasks");
  await page.evaluate(() => (location.hash = "#/tail"));
  await page.locator('[data-testid="tail"][data-state="live"]').waitFor();
  const parked = await courier.send("tail-ken", { text: "for a user who is offline" });
  const row = page.locator(`[data-testid="tail-events"] tr[data-event="parked"]`);
  await row.waitFor();
  assert.match(await row.innerText(), new RegExp(`${parked}\\s+tail-ken`));
  await screenshot(page, "tail");
  await page.close();
});

test("the shell: expiry in words, Redis uptime, charts as wide as their tiles, empty dead letters disable their buttons", async () => {
  const page = await console_("#/");
  assert.match(await page.locator('[data-testid="who"] [data-k="until"]').innerText(), /^until \d\d:\d\d \(in \d+ (s|min|h \d+ min|d \d+ h)\)$/);
  await page.waitForSelector('[data-testid="redis"] [data-k="uptime"]');
  assert.match(await page.locator('[data-testid="redis"] [data-k="uptime"]').innerText(), /^\d+ (s|min|h \d+ min|d \d+ h)$/);
  const widths = await page.$$eval(".chart", (els) => els.map((e) => [e.querySelector(".plot")?.clientWidth, e.querySelector("canvas")?.getBoundingClientRect().width]));
  for (const [box, canvas] of widths) assert.ok(box && canvas && Math.abs(box - canvas) <= 2 && canvas > 250, JSON.stringify(widths));
  // dead letters: none left by the earlier tests' purge and replay? purge them all first
  await courier.api("DELETE", "/v1/dead-letters", { token: sign("ops", { role: "admin" }) });
  await page.evaluate(() => (location.hash = "#/dead-letters"));
  await page.locator('[data-testid="dlq-empty"]').waitFor();
  assert.equal(await page.locator("#replay-all").isDisabled(), true);
  assert.equal(await page.locator("#purge-all").isDisabled(), true);
  await page.close();
});

test("a device connected without a name shows as default", async () => {
  const user = "nameless-judy";
  const client = await courier.client(user);
  const page = await console_(`#/user/${user}`);
  const cell = page.locator(`[data-testid="devices"] tr[data-conn="${client.connectionId}"] [data-k="device"]`);
  await cell.waitFor();
  assert.match(await cell.innerText(), /^default\s/);
  client.ws.close();
  await page.close();
});

test("no page threw, no file of the page was missing (the favicon included)", () => {
  assert.deepEqual(pageErrors, []);
  assert.deepEqual(notFound, []);
});
