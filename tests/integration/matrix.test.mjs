// One plugin combination end to end: the codec (NEBULA_TEST_CODEC), the
// store (NEBULA_TEST_STORE) and the broker (NEBULA_TEST_BROKER) that
// tests/meson.build names for this run. Chat in order, presence, history
// for a joiner, and — with a persistent store — history and `since` across
// a restart; with a broker, the members sit on two nodes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, freePort, matrix } from '../lib/server.mjs';
import { Client } from '../lib/client.mjs';
import { ProtoClient, PROTO_SUBPROTOCOL } from '../lib/proto_client.mjs';

const codec = process.env.NEBULA_TEST_CODEC || 'codec-json';
const persistent = ['store-aof', 'store-sqlite'].includes(matrix.store);
const clustered = matrix.broker !== 'none';

async function node(dataDir, name, port) {
  const ext = matrix.store === 'store-aof' ? 'aof' : 'db';
  const storeSection = persistent
    ? `[${matrix.store}]\npath = ${JSON.stringify(path.join(dataDir, `${name}.${ext}`))}\nfsync = "always"\n` : '';
  return startServer({
    port: port || await freePort(),
    server: { node_id: name, history_per_room: 100 },
    limits: { messages_per_second: 0 },
    plugins: { codecs: [codec] },
    extra: storeSection,
  });
}

async function enter(srv, room, user, query = '') {
  const url = srv.wsUrl(room, user) + query;
  const c = codec === 'codec-protobuf' ? await ProtoClient.connect(url, [PROTO_SUBPROTOCOL]) : await Client.connect(url);
  const join = await c.next((f) => f.type === 'join' && f.room === room && f.sender === user, 15000);
  const history = c.frames.filter((f) => f.type === 'history');
  c.frames = c.frames.filter((f) => f.type !== 'history');
  return { c, join, history };
}

const contents = (frames) => frames.map((f) => f.content);

test(`${codec} + ${matrix.store} + ${matrix.broker}: chat, presence, history, restart`, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'nebula-matrix-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  let n1 = await node(dir, 'n1');
  let n2 = clustered ? await node(dir, 'n2') : n1;
  try {
    const a = await enter(n1, 'room', 'alice');
    const b = await enter(n2, 'room', 'bob');
    await a.c.next((f) => f.type === 'presence' && f.users.includes('alice') && f.users.includes('bob'), 10000);
    for (let i = 1; i <= 10; i++) (i % 2 ? a : b).c.send({ type: 'message', room: 'room', content: `m${i}` });
    const gotA = [];
    const gotB = [];
    for (let i = 0; i < 10; i++) gotA.push(await a.c.next('message', 10000));
    for (let i = 0; i < 10; i++) gotB.push(await b.c.next('message', 10000));
    assert.deepEqual(gotA.map((f) => f.id), gotB.map((f) => f.id), 'both members see one order');
    const seqs = gotA.map((f) => f.seq);
    for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i] > seqs[i - 1], 'seq increases');
    // a joiner (on the other node, with a broker) gets the history in that order
    const c = await enter(n2, 'room', 'carol');
    assert.deepEqual(c.history.map((f) => f.id), gotA.map((f) => f.id));
    // room isolation
    const o = await enter(n1, 'other', 'olga');
    o.c.send({ type: 'message', room: 'other', content: 'elsewhere' });
    await o.c.next('message');
    await c.c.none((f) => f.type === 'message' && f.content === 'elsewhere', 300);
    for (const x of [a, b, c, o]) x.c.close();
    if (!persistent) return;

    // restart every node on its own store file
    const epoch = a.join.epoch;
    const ports = [n1.port, n2.port];
    for (const n of clustered ? [n1, n2] : [n1]) assert.equal((await n.stop()).code, 0);
    n1 = await node(dir, 'n1', ports[0]);
    n2 = clustered ? await node(dir, 'n2', ports[1]) : n1;
    const d = await enter(n1, 'room', 'dave');
    assert.deepEqual(contents(d.history), contents(gotA), 'history survives the restart');
    const e = await enter(n2, 'room', 'erin', `&since=${gotA[4].seq}&epoch=${encodeURIComponent(epoch)}`);
    assert.deepEqual(contents(e.history), contents(gotA.slice(5)), 'since after the restart');
    assert.equal(e.join.incomplete, undefined);
    d.c.close();
    e.c.close();
  } finally {
    for (const n of clustered ? [n1, n2] : [n1]) {
      const r = await n.stop();
      assert.equal(r.code, 0, r.stderr);
    }
  }
});
