'use strict';
// The Node peer's producer, in its own process (node producer.js CONFIG_JSON):
// @socket.io/redis-emitter on node-redis emits message i to the room of user
// u{i % users} (one PUBLISH each), the same messages as every other scenario.
//
// On `start` it sends cfg.messages messages in batches of cfg.batch (500), as
// bench/common.py paced() does: without a rate as fast as Redis answers, at most
// cfg.concurrency (2) batches in flight (the emitter does not wait for its PUBLISH,
// so a PING after each batch tells when Redis has taken all of it); with cfg.rate,
// small batches on a 10 ms clock. Events: `ready`, `started` {t}, `progress` {sent}
// and `produced` {sent, seconds}; `stop` ends it (`done`).

const { Emitter } = require('@socket.io/redis-emitter');
const { createClient } = require('redis');
const { emit, now, payload, userOf, commands } = require('./common');

const cfg = JSON.parse(process.argv[2]);
const BATCH = cfg.batch || 500;
const CONCURRENCY = cfg.concurrency || 2;
const TICK = 0.01;

const sleep = (s) => new Promise((resolve) => setTimeout(resolve, Math.max(0, s * 1000)));

async function main() {
  const client = createClient({ url: cfg.redis_url });
  client.on('error', (e) => console.error('redis:', e.message));
  await client.connect();
  const io = new Emitter(client);
  let sent = 0;

  function batch(first, n) {
    for (let i = first; i < first + n; i++) {
      io.to(userOf(i, cfg.users)).emit('message', payload(i));
    }
    return client.ping(); // answered after every PUBLISH before it
  }

  async function produce() {
    const total = cfg.messages;
    const t0 = now();
    emit('started', { t: t0 });
    const progress = setInterval(() => emit('progress', { sent }), 500);
    if (cfg.rate) {
      const step = Math.max(1, Math.min(BATCH, Math.round(cfg.rate * TICK)));
      while (sent < total) {
        const n = Math.min(step, total - sent);
        await sleep(t0 + sent / cfg.rate - now());
        await batch(sent, n);
        sent += n;
      }
    } else {
      const inFlight = [];
      for (let first = 0; first < total; first += BATCH) {
        if (inFlight.length >= CONCURRENCY) await inFlight.shift();
        const n = Math.min(BATCH, total - first);
        inFlight.push(batch(first, n).then(() => (sent += n)));
      }
      await Promise.all(inFlight);
    }
    clearInterval(progress);
    emit('produced', { sent, seconds: now() - t0 });
  }

  emit('ready');
  commands(async (line) => {
    if (line === 'start') {
      produce().catch((e) => {
        console.error(e);
        emit('failed', { error: String(e) });
      });
    } else if (line === 'stop') {
      emit('done', { sent });
      await client.quit().catch(() => {});
      process.exit(0);
    }
  });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
