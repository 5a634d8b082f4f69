'use strict';
// What the Node peer's two processes share with bench/common.py: the JSON-lines
// protocol with the bench (events on stdout, commands on stdin), the message payload
// and who gets message i.

const readline = require('node:readline');
const { performance } = require('node:perf_hooks');

function emit(event, fields = {}) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + '\n');
}

// Wall time in seconds with sub-millisecond precision, as Python's time.time().
function now() {
  return (performance.timeOrigin + performance.now()) / 1000;
}

// Message i: its sequence number and the wall time it was handed over (bench/common.py).
function payload(i) {
  return { i, ts: now(), text: `Your order #${i} has shipped`, kind: 'bench' };
}

function userOf(i, users) {
  return `u${i % users}`;
}

// Calls onLine(text) for every line on stdin; the process ends when stdin closes (the
// bench died or closed it).
function commands(onLine) {
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => onLine(line.trim()));
  rl.on('close', () => process.exit(0));
}

module.exports = { emit, now, payload, userOf, commands };
