// tools/echo-probe.mjs — the sender's own echo, timed: how long after a
// client sends a message its own copy comes back. With a store whose
// `fsync = "always"`, the echo is the acknowledgment that the message is on
// disk (docs/STORES.md), so this is the durable acknowledgment's latency.
//
//   node tools/echo-probe.mjs --port 8080 [--duration 10] [--interval-ms 5]
//        [--clients 4]
//
// Each of --clients connections joins a room of its own and sends one
// message at a time, the next --interval-ms after its echo arrived, for
// --duration seconds. Meant to run beside a load (tools/bench-stores.sh
// runs it during nebula-bench S4). The server's messages_per_second must
// allow 1000 / --interval-ms per connection: an error frame (rate_limited,
// store_unavailable) is counted, not timed. Prints one JSON object: count,
// p50, p99, p999, max in ms, errors.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(root, 'tests', 'package.json'));
const WebSocket = require('ws');

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return def;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v < 0) {
    console.error(`echo-probe: --${name} needs a number, got ${process.argv[i + 1]}`);
    process.exit(2);
  }
  return v;
};
if (process.argv.includes('--help') || process.argv.includes('-h')) {
  console.log('usage: node tools/echo-probe.mjs --port PORT [--host 127.0.0.1] [--duration S] '
    + '[--interval-ms MS] [--clients N]');
  process.exit(0);
}
const PORT = arg('port', 8080);
const hostAt = process.argv.indexOf('--host');
const HOST = hostAt > 0 ? process.argv[hostAt + 1] : '127.0.0.1';
const DURATION = arg('duration', 10);
const INTERVAL = arg('interval-ms', 5);
const CLIENTS = arg('clients', 4);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function connect(room, user) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${HOST}:${PORT}/ws?room=${room}&username=${user}`);
    const timer = setTimeout(() => reject(new Error(`${user}: no presence within 10 s`)), 10000);
    ws.on('error', reject);
    ws.on('message', function first(d) {
      const f = JSON.parse(d.toString());
      if (f.type === 'presence' && f.users.includes(user)) {
        clearTimeout(timer);
        ws.off('message', first);
        resolve(ws);
      }
    });
  });
}

async function probe(k, until, times, errors) {
  const room = `probe${process.pid}-${k}`;
  const ws = await connect(room, `probe${k}`);
  let waiting = null;
  ws.on('message', (d) => {
    const f = JSON.parse(d.toString());
    if (f.type === 'message' && waiting && f.content === waiting.content) {
      waiting.resolve(true);
    } else if (f.type === 'error' && waiting) {
      // rate_limited (the server's messages_per_second must allow
      // 1000 / --interval-ms per connection), store_unavailable, ...
      errors.push(f.code || 'error');
      waiting.resolve(false);
    }
  });
  let closed = false;
  ws.on('close', (code) => {
    if (closed) return; // ours, below
    closed = true;
    errors.push(`closed by the server (${code})`);
    if (waiting) waiting.resolve(false);
  });
  for (let i = 0; Date.now() < until && !closed; i++) {
    const content = `echo ${i}`;
    const t0 = process.hrtime.bigint();
    const echoed = await new Promise((resolve) => {
      waiting = { content, resolve };
      ws.send(JSON.stringify({ type: 'message', room, content }));
    });
    if (echoed) times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    await sleep(INTERVAL);
  }
  closed = true;
  ws.close();
}

const times = [];
const errors = [];
const until = Date.now() + DURATION * 1000;
await Promise.all(Array.from({ length: CLIENTS }, (_, k) => probe(k, until, times, errors)));
times.sort((a, b) => a - b);
const pct = (p) => (times.length ? +times[Math.min(times.length - 1, Math.floor(times.length * p))].toFixed(3) : null);
console.log(JSON.stringify({
  count: times.length, p50: pct(0.5), p99: pct(0.99), p999: pct(0.999),
  max: times.length ? +times[times.length - 1].toFixed(3) : null,
  errors: errors.length, first_error: errors[0] || null,
}));
process.exit(times.length ? 0 : 1);
