// Durability on the real binary with a real store file (NEBULA_TEST_STORE:
// store-aof or store-sqlite; tests/meson.build runs this file once per
// store): kill -9 and SIGTERM under load lose nothing acknowledged, the
// room's order continues after a restart, and a client that reconnects
// with `since` after a restart gets every message exactly once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, freePort, matrix } from '../lib/server.mjs';
import { Client } from '../lib/client.mjs';
import { sleep } from '../lib/util.mjs';

const store = matrix.store;
const persistent = ['store-aof', 'store-sqlite'];

test('a persistent store is configured for this run', () => {
  assert.ok(persistent.includes(store),
    `durability tests need NEBULA_TEST_STORE set to one of ${persistent.join(', ')} (got "${store}")`);
});

// One data folder per test, kept across the restarts of its server.
function dataDir(t) {
  const dir = mkdtempSync(path.join(tmpdir(), 'nebula-durable-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function start(dir, { fsync = 'always', port, history = 5000, retention = 0 } = {}) {
  const file = path.join(dir, store === 'store-aof' ? 'chat.aof' : 'chat.db');
  const retentionLine = retention ? `retention_messages = ${retention}\n` : '';
  return startServer({
    port: port || await freePort(),
    server: { history_per_room: history, node_id: 'dur' },
    limits: { messages_per_second: 0, replay_messages: 10000 },
    plugins: { store },
    extra: `[${store}]\npath = ${JSON.stringify(file)}\nfsync = "${fsync}"\n${retentionLine}`,
  });
}

async function enter(srv, room, user, query = '') {
  const c = await Client.connect(srv.wsUrl(room, user) + query);
  const join = await c.next((f) => f.type === 'join' && f.room === room && f.sender === user, 15000);
  const history = c.frames.filter((f) => f.type === 'history' && f.room === room);
  c.frames = c.frames.filter((f) => f.type !== 'history');
  return { c, join, history };
}

// Each sender keeps up to 8 messages in flight, at most one new one a
// millisecond (so that a run stays within the history a joiner gets back);
// every echo is an acknowledgment, recorded with the time it arrived.
function load(senders, room) {
  const acked = [];
  const timers = [];
  let n = 0;
  for (const s of senders) {
    let outstanding = 0;
    s.c.ws.on('message', (data) => {
      const f = JSON.parse(data.toString());
      if (f.type === 'message' && f.sender === s.name) {
        acked.push({ id: f.id, seq: f.seq, at: Date.now() });
        outstanding--;
      } else if (f.type === 'error') {
        outstanding--;
      }
    });
    timers.push(setInterval(() => {
      if (outstanding < 8 && s.c.ws.readyState === 1) {
        outstanding++;
        s.c.send({ type: 'message', room, content: `${s.name}-${n++}` });
      }
    }, 1));
  }
  return { acked, stop: () => timers.forEach(clearInterval) };
}

function assertContiguous(history, what) {
  const seqs = history.map((f) => f.seq);
  for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], seqs[i - 1] + 1, `${what}: seq ${seqs[i - 1]} then ${seqs[i]}`);
  assert.equal(new Set(history.map((f) => f.id)).size, history.length, `${what}: an id twice`);
}

for (const [fsync, signal] of [['always', 'SIGKILL'], ['everysec', 'SIGKILL'], ['always', 'SIGTERM']]) {
  test(`fsync = "${fsync}", ${signal} under load: every acknowledged message is in the history after a restart`, async (t) => {
    if (!persistent.includes(store)) assert.fail(`no persistent store (NEBULA_TEST_STORE="${store}")`);
    const dir = dataDir(t);
    let srv = await start(dir, { fsync });
    const senders = [];
    for (const name of ['s1', 's2', 's3']) senders.push({ name, ...(await enter(srv, 'load', name)) });
    const run = load(senders, 'load');
    await sleep(1500); // at most 1 message a ms per sender: under the 5,000 a joiner gets back
    const killedAt = Date.now();
    const r = await srv.stop(signal);
    run.stop();
    if (signal === 'SIGTERM') assert.equal(r.code, 0, r.stderr);
    else assert.equal(r.signal, 'SIGKILL');
    const acked = run.acked.filter((a) => a.at <= killedAt);
    assert.ok(acked.length >= 50, `only ${acked.length} messages acknowledged: the load did not run`);
    assert.ok(acked.length < 5000, `${acked.length} messages: more than the history a joiner gets back`);
    for (const s of senders) s.c.close();

    srv = await start(dir, { fsync, port: srv.port });
    try {
      const { c, history, join } = await enter(srv, 'load', 'reader');
      assertContiguous(history, 'history after restart');
      const ids = new Set(history.map((f) => f.id));
      const missing = acked.filter((a) => !ids.has(a.id));
      if (fsync === 'always') {
        assert.deepEqual(missing, [], `${missing.length} of ${acked.length} acknowledged messages lost`);
      } else {
        // everysec: only what was acknowledged in the last second may be missing
        const old = missing.filter((a) => a.at < killedAt - 1000);
        assert.deepEqual(old, [], `${old.length} messages acknowledged more than 1 s before the kill were lost`);
      }
      assert.equal(join.seq, history.at(-1).seq, 'the join stands where the history ends');
      // the room's order continues where the store left it
      c.send({ type: 'message', room: 'load', content: 'after' });
      const after = await c.next((f) => f.type === 'message' && f.content === 'after');
      assert.equal(after.seq, join.seq + 1, 'seq continues after the restart');
      c.close();
    } finally {
      const r2 = await srv.stop();
      assert.equal(r2.code, 0, r2.stderr);
    }
  });
}

test('reconnect with since after a restart: every message once, in order', async (t) => {
  if (!persistent.includes(store)) assert.fail(`no persistent store (NEBULA_TEST_STORE="${store}")`);
  const dir = dataDir(t);
  let srv = await start(dir, { fsync: 'always' });
  const a = await enter(srv, 'r', 'alice');
  const b = await enter(srv, 'r', 'bob');
  for (let i = 1; i <= 20; i++) a.c.send({ type: 'message', room: 'r', content: `m${i}` });
  const seen = [];
  for (let i = 1; i <= 20; i++) seen.push(await b.c.next('message'));
  const epoch = b.join.epoch;
  assert.equal(typeof epoch, 'string');
  // bob saw up to m12 only, when the server went away
  const lastSeen = seen[11].seq;
  const r = await srv.stop('SIGTERM');
  assert.equal(r.code, 0, r.stderr);
  a.c.close();
  b.c.close();

  srv = await start(dir, { fsync: 'always', port: srv.port });
  try {
    const a2 = await enter(srv, 'r', 'alice');
    for (let i = 21; i <= 25; i++) a2.c.send({ type: 'message', room: 'r', content: `m${i}` });
    for (let i = 21; i <= 25; i++) await a2.c.next((f) => f.type === 'message' && f.content === `m${i}`);
    const b2 = await enter(srv, 'r', 'bob', `&since=${lastSeen}&epoch=${encodeURIComponent(epoch)}`);
    assert.equal(b2.join.incomplete, undefined, 'the store had every message');
    assert.equal(b2.join.epoch, epoch, 'the store keeps its epoch across restarts');
    assert.deepEqual(b2.history.map((f) => f.content),
      Array.from({ length: 13 }, (_, i) => `m${13 + i}`));
    assertContiguous(b2.history, 'replay');
    // a since from another epoch (the data was recreated) is incomplete
    b2.c.send({ type: 'leave', room: 'r' });
    await b2.c.next((f) => f.type === 'leave' && f.sender === 'bob');
    b2.c.frames.length = 0;
    b2.c.send({ type: 'join', room: 'r', since: 3, epoch: 'not-this-store' });
    const j = await b2.c.next((f) => f.type === 'join' && f.sender === 'bob');
    assert.equal(j.incomplete, true);
    a2.c.close();
    b2.c.close();
  } finally {
    const r2 = await srv.stop();
    assert.equal(r2.code, 0, r2.stderr);
  }
});

test('retention: a since older than the store keeps is answered with what it has, incomplete', async (t) => {
  if (!persistent.includes(store)) assert.fail(`no persistent store (NEBULA_TEST_STORE="${store}")`);
  const dir = dataDir(t);
  let srv = await start(dir, { retention: 10, history: 50 });
  const a = await enter(srv, 'r', 'alice');
  for (let i = 1; i <= 30; i++) a.c.send({ type: 'message', room: 'r', content: `m${i}` });
  await a.c.next((f) => f.type === 'message' && f.content === 'm30');
  const epoch = a.join.epoch;
  a.c.close();
  const r = await srv.stop('SIGTERM');
  assert.equal(r.code, 0, r.stderr);
  srv = await start(dir, { retention: 10, history: 50, port: srv.port });
  try {
    const b = await enter(srv, 'r', 'bob', `&since=5&epoch=${encodeURIComponent(epoch)}`);
    assert.deepEqual(b.history.map((f) => f.seq), Array.from({ length: 10 }, (_, i) => 21 + i));
    assert.equal(b.join.incomplete, true);
    const c = await enter(srv, 'r', 'carol');
    assert.equal(c.history.length, 10, 'a plain join gets what retention kept');
    b.c.close();
    c.c.close();
  } finally {
    const r2 = await srv.stop();
    assert.equal(r2.code, 0, r2.stderr);
  }
});
