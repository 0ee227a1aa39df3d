// tools/cluster-hop.mjs — what the Redis hop costs (docs/BROKER_REDIS.md,
// "Cost"): a short, bounded run on loopback.
//
//   node tools/cluster-hop.mjs [--messages 2000] [--burst 20000] [--rooms 4]
//
// Needs build/nebula, build/plugins and redis-server; run from the source
// folder (tests/node_modules holds `ws`). It starts one redis-server and
// three nodes on free loopback ports, and measures:
//   1. latency, one message in flight at a time, sender on node 0:
//      a) no broker, receiver on the same node (the baseline);
//      b) broker-redis, receiver on the same node (the round trip through
//         Redis every message now takes);
//      c) broker-redis, receiver on node 1 (the cross-node hop);
//   2. throughput: `rooms` senders on node 0 send `burst` messages in all
//      as fast as they can; receivers on node 1 count them; messages/s
//      through one Redis (each one an EVALSHA, pipelined by hiredis).
// Prints one JSON object.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(root, 'tests', 'package.json'));
const WebSocket = require('ws');

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const MESSAGES = arg('messages', 2000);
const BURST = arg('burst', 20000);
const ROOMS = arg('rooms', 4);
const bin = process.env.NEBULA_BIN || path.join(root, 'build', 'nebula');
const plugins = process.env.NEBULA_PLUGIN_DIR || path.join(root, 'build', 'plugins');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

async function waitPort(port) {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => { s.destroy(); resolve(false); });
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`nothing listens on ${port}`);
}

const procs = [];
const dir = mkdtempSync(path.join(tmpdir(), 'nebula-hop-'));

async function startRedis() {
  const port = await freePort();
  procs.push(spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
    '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' }));
  await waitPort(port);
  return port;
}

async function startNode(id, redisPort) {
  const port = await freePort();
  const conf = path.join(dir, `${id}.conf`);
  writeFileSync(conf, `[server]\nlisten = "127.0.0.1:${port}"\nnode_id = "${id}"\nlog_level = "warn"\n`
    + `[plugins]\ndir = "${plugins}"\nbroker = "${redisPort ? 'broker-redis' : 'none'}"\n`
    + '[limits]\nmessages_per_second = 0\n'
    + (redisPort ? `[broker-redis]\nurl = "redis://127.0.0.1:${redisPort}"\n` : ''));
  procs.push(spawn(bin, ['-c', conf], { stdio: 'ignore' }));
  await waitPort(port);
  await sleep(300); // the broker connects
  return port;
}

function client(port, room, user) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?room=${room}&username=${user}`);
    ws.on('error', reject);
    ws.on('message', (d) => {
      const f = JSON.parse(d.toString());
      if (f.type === 'presence' && f.users.includes(user)) resolve(ws);
    });
  });
}

const pct = (xs, p) => xs[Math.min(xs.length - 1, Math.floor(xs.length * p))];

async function latency(senderPort, receiverPort, room) {
  const s = await client(senderPort, room, 'sender');
  const r = await client(receiverPort, room, 'receiver');
  await sleep(200);
  const times = [];
  let resolveOne;
  r.on('message', (d) => {
    const f = JSON.parse(d.toString());
    if (f.type === 'message' && resolveOne) resolveOne();
  });
  for (let i = 0; i < MESSAGES; i++) {
    const t0 = process.hrtime.bigint();
    await new Promise((resolve) => { resolveOne = resolve; s.send(JSON.stringify({ type: 'message', room, content: `m${i}` })); });
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  s.close(); r.close();
  times.sort((a, b) => a - b);
  return { p50_ms: +pct(times, 0.5).toFixed(3), p99_ms: +pct(times, 0.99).toFixed(3), n: times.length };
}

async function throughput(senderPort, receiverPort) {
  const per = Math.ceil(BURST / ROOMS);
  const pairs = [];
  for (let k = 0; k < ROOMS; k++) {
    pairs.push([await client(senderPort, `burst${k}`, `s${k}`), await client(receiverPort, `burst${k}`, `r${k}`)]);
  }
  await sleep(300);
  let got = 0;
  let done;
  const all = new Promise((resolve) => { done = resolve; });
  for (const [, r] of pairs) {
    r.on('message', (d) => {
      if (d.toString().startsWith('{"type":"message"') && ++got === per * ROOMS) done();
    });
  }
  const t0 = Date.now();
  for (let i = 0; i < per; i++) {
    for (let k = 0; k < ROOMS; k++) pairs[k][0].send(`{"type":"message","room":"burst${k}","content":"x${i}"}`);
    if (i % 500 === 499) await sleep(0);
  }
  const timeout = setTimeout(() => done(), 60000);
  await all;
  clearTimeout(timeout);
  const secs = (Date.now() - t0) / 1000;
  for (const [s, r] of pairs) { s.close(); r.close(); }
  return { messages: got, sent: per * ROOMS, seconds: +secs.toFixed(2), per_second: Math.round(got / secs) };
}

try {
  const lone = await startNode('alone', 0);
  const redisPort = await startRedis();
  const n0 = await startNode('n0', redisPort);
  const n1 = await startNode('n1', redisPort);
  await startNode('n2', redisPort);
  const out = {
    note: 'loopback, one short run; a busy machine makes these figures noisy',
    latency_no_broker_same_node: await latency(lone, lone, 'a'),
    latency_redis_same_node: await latency(n0, n0, 'b'),
    latency_redis_cross_node: await latency(n0, n1, 'c'),
    throughput_cross_node_one_redis: await throughput(n0, n1),
  };
  console.log(JSON.stringify(out, null, 2));
} finally {
  for (const p of procs) p.kill('SIGTERM');
  await sleep(500);
  rmSync(dir, { recursive: true, force: true });
}
