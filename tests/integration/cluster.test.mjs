// Several nodes, one chat: broker-redis with real redis-servers started
// here (tests/lib/redis.mjs): one order per room on every node, one
// presence list, unique names across nodes, history and `since` from any
// node, a node killed, Redis stopped and restarted, rooms spread over
// three instances (docs/BROKER_REDIS.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { startServer, makeConfig, freePort, runNebula, pluginDir } from '../lib/server.mjs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client } from '../lib/client.mjs';
import { startRedis, brokerSection } from '../lib/redis.mjs';
import { metric, sleep, until } from '../lib/util.mjs';

const slow = process.env.NEBULA_SANITIZE && process.env.NEBULA_SANITIZE !== 'none'
  || (process.env.NEBULA_WRAPPER || '').includes('valgrind');
const scale = slow ? 4 : 1;

// Small heartbeat and TTL so that a dead node is noticed quickly: its users
// leave within NODE_TTL_MS + HEARTBEAT_MS of its last beat.
const HEARTBEAT_MS = 200;
const NODE_TTL_MS = 1000 * scale;
const BOUND_MS = NODE_TTL_MS + HEARTBEAT_MS;
const ADMIN_TOKEN = 'cluster-admin-token-0123';

async function startNode(redises, id, extra = {}) {
  const port = await freePort();
  const srv = await startServer({
    port,
    startTimeoutMs: 15000 * scale,
    config: makeConfig({
      port,
      server: { node_id: id },
      limits: { messages_per_second: 0 },
      plugins: { broker: 'broker-redis', store: 'none' },
      extra: brokerSection(redises, { heartbeat_ms: HEARTBEAT_MS, node_ttl_ms: NODE_TTL_MS, reconnect_max_ms: 500, ...extra })
        + `\n[admin]\ntoken = "${ADMIN_TOKEN}"\n`,
    }),
  });
  srv.id = id;
  await until(async () => (await metric(srv, 'nebula_broker_up')) === 1, 10000 * scale, `${id}: broker up`);
  return srv;
}

async function stopOk(srv) {
  const r = await srv.stop();
  assert.equal(r.code, 0, `${srv.id} exited ${r.code} ${r.signal}: ${r.stderr.slice(-3000)}`);
  return r;
}

// Stop every node and Redis first, then assert: a node that exits badly
// must not leave the others (and the test file) running.
async function stopAllOk(nodes, redises) {
  const results = [];
  for (const n of nodes) results.push([n, await n.stop()]);
  for (const r of redises) await r.close();
  for (const [n, r] of results) {
    assert.equal(r.code, 0, `${n.id} exited ${r.code} ${r.signal}: ${r.stderr.slice(-3000)}`);
  }
}

const hasUsers = (room, users) => (f) => f.type === 'presence' && f.room === room
  && JSON.stringify(f.users) === JSON.stringify(users);

async function enter(srv, room, user, query = '') {
  const c = await Client.connect(srv.wsUrl(room, user) + query);
  c.presence = await c.next((f) => f.type === 'presence' && f.room === room && f.users.includes(user), 10000);
  return c;
}

const say = (c, room, content) => c.send({ type: 'message', room, content });

function rssKb(pid) {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/);
  return m ? Number(m[1]) : 0;
}

function cpuTicks(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime
}

test('three nodes: one order, one presence list, joins and leaves, room isolation, names unique across nodes', async () => {
  const redis = await startRedis();
  const nodes = [];
  const clients = [];
  try {
    for (let i = 0; i < 3; i++) nodes.push(await startNode([redis], `n${i}`));
    const a = await enter(nodes[0], 'lobby', 'alice');
    const b = await enter(nodes[1], 'lobby', 'bob');
    const c = await enter(nodes[2], 'lobby', 'carol');
    clients.push(a, b, c);
    // one list, the same on every node
    for (const x of [a, b]) await x.next(hasUsers('lobby', ['alice', 'bob', 'carol']), 5000);
    assert.deepEqual(c.presence.users, ['alice', 'bob', 'carol']);
    // a join on another node is seen everywhere
    await a.next((f) => f.type === 'join' && f.sender === 'carol', 5000);

    // everyone talks at once: every member sees the same order
    const N = 30;
    for (let i = 0; i < N; i++) for (const [x, who] of [[a, 'a'], [b, 'b'], [c, 'c']]) say(x, 'lobby', `${who}${i}`);
    const seen = [[], [], []];
    for (let k = 0; k < 3; k++) {
      for (let i = 0; i < 3 * N; i++) {
        const f = await [a, b, c][k].next('message', 10000 * scale);
        seen[k].push(`${f.seq}:${f.content}`);
      }
    }
    assert.deepEqual(seen[1], seen[0], 'node 1 saw node 0\'s order');
    assert.deepEqual(seen[2], seen[0], 'node 2 saw node 0\'s order');
    const seqs = seen[0].map((s) => Number(s.split(':')[0]));
    assert.deepEqual(seqs, Array.from({ length: 3 * N }, (_, i) => seqs[0] + i), 'seq 1, 2, 3… with no gap');
    for (const who of ['a', 'b', 'c']) {
      const mine = seen[0].map((s) => s.split(':')[1]).filter((s) => s.startsWith(who));
      assert.deepEqual(mine, Array.from({ length: N }, (_, i) => `${who}${i}`), `${who}'s messages in the order sent`);
    }

    // room isolation across nodes
    const d = await enter(nodes[1], 'other', 'dave');
    clients.push(d);
    say(d, 'other', 'only here');
    await d.next((f) => f.type === 'message' && f.content === 'only here', 5000);
    say(a, 'lobby', 'after');
    await c.next((f) => f.type === 'message' && f.content === 'after', 5000);
    for (const x of [a, b, c]) assert.ok(!x.frames.some((f) => f.room === 'other'), 'no event of another room');

    // a name taken on node 0 is refused on node 2, and closes as a local duplicate does
    const dup = await Client.connect(nodes[2].wsUrl('lobby', 'alice'));
    const err = await dup.next('error', 5000);
    assert.equal(err.code, 'username_taken');
    assert.equal((await dup.waitClose(5000)).code, 4409);
    // … and joining it as a further room gets the error but keeps the connection
    d.send({ type: 'join', room: 'lobby' });
    await d.next((f) => f.type === 'join' && f.sender === 'dave' && f.room === 'lobby', 5000);
    const e2 = await Client.connect(nodes[0].wsUrl('other', 'x1'));
    clients.push(e2);
    await e2.next((f) => f.type === 'presence' && f.room === 'other', 5000);
    const eve = await enter(nodes[2], 'side', 'bob');
    clients.push(eve);
    eve.send({ type: 'join', room: 'lobby' });
    const e3 = await eve.next('error', 5000);
    assert.equal(e3.code, 'username_taken');
    assert.equal(eve.closed, null, 'a further room taken does not close');

    // leaves are seen across nodes and the list follows
    b.close();
    await a.next((f) => f.type === 'leave' && f.sender === 'bob' && f.room === 'lobby', 5000);
    await c.next(hasUsers('lobby', ['alice', 'carol', 'dave']), 5000);
    // the name is free again: bob comes back on another node
    const b2 = await enter(nodes[2], 'lobby', 'bob');
    clients.push(b2);
    await a.next(hasUsers('lobby', ['alice', 'bob', 'carol', 'dave']), 5000);

    // /cluster lists the live nodes with their counts
    await until(async () => {
      const j = await (await fetch(`${nodes[0].url}/cluster`)).json();
      return j.broker === 'up' && j.nodes.length === 3
        && j.nodes.map((n) => n.id).sort().join() === 'n0,n1,n2'
        && j.nodes.find((n) => n.id === 'n2').connections >= 2;
    }, 5000, '/cluster lists n0, n1, n2 with n2\'s connections');
    assert.equal(await metric(nodes[0], 'nebula_cluster_nodes'), 2, 'two other nodes');
    // the admin dashboard's snapshot shows the same cluster
    const snap = await (await fetch(`${nodes[0].url}/admin/snapshot?token=${ADMIN_TOKEN}`)).json();
    assert.equal(snap.cluster.source, 'broker');
    assert.deepEqual(snap.cluster.nodes.map((n) => n.id).sort(), ['n0', 'n1', 'n2']);
    assert.equal(snap.cluster.nodes.filter((n) => n.self).map((n) => n.id).join(), 'n0');
  } finally {
    for (const x of clients) x.close();
    await stopAllOk(nodes, [redis]);
  }
});

// The publish script calls Redis ran (EVALSHA, or EVAL after NOSCRIPT).
async function scriptCalls(redis) {
  const info = await redis.command('INFO', 'commandstats');
  const calls = (cmd) => Number((info.match(new RegExp(`cmdstat_${cmd}:calls=(\\d+)`)) || [0, 0])[1]);
  return calls('evalsha') + calls('eval');
}

// One client on node 0 sends N messages at once over 10 rooms; a member of
// the same rooms on node 1 must get them all in each room's order with
// consecutive seqs. Returns the script calls Redis ran meanwhile.
async function burst(id, extra) {
  const N = 1000;
  const rooms = Array.from({ length: 10 }, (_, i) => `burst${i}`);
  const redis = await startRedis();
  const nodes = [];
  const clients = [];
  try {
    // rare heartbeats: their script calls would blur the count
    const quiet = { heartbeat_ms: 2000, node_ttl_ms: 4000, ...extra };
    for (let i = 0; i < 2; i++) nodes.push(await startNode([redis], `${id}${i}`, quiet));
    const a = await enter(nodes[0], rooms[0], 'alice');
    const b = await enter(nodes[1], rooms[0], 'bob');
    clients.push(a, b);
    for (const r of rooms.slice(1)) {
      for (const [c, who] of [[a, 'alice'], [b, 'bob']]) {
        c.send({ type: 'join', room: r });
        await c.next((f) => f.type === 'join' && f.room === r && f.sender === who, 5000);
      }
    }
    await b.next(hasUsers(rooms[9], ['alice', 'bob']), 5000);
    const before = await scriptCalls(redis);
    for (let i = 0; i < N; i++) say(a, rooms[i % 10], `m${i}`);
    const got = Object.fromEntries(rooms.map((r) => [r, []]));
    for (let i = 0; i < N; i++) {
      const f = await b.next('message', 10000 * scale);
      got[f.room].push([f.seq, f.content]);
    }
    const calls = await scriptCalls(redis) - before;
    for (const [k, r] of rooms.entries()) {
      const mine = got[r];
      assert.equal(mine.length, N / 10, `${r}: every message`);
      assert.deepEqual(mine.map(([, c]) => c), Array.from({ length: N / 10 }, (_, i) => `m${k + 10 * i}`),
        `${r}: in the order sent`);
      assert.deepEqual(mine.map(([s]) => s), Array.from({ length: N / 10 }, (_, i) => mine[0][0] + i),
        `${r}: consecutive seqs`);
    }
    return { calls, N };
  } finally {
    for (const x of clients) x.close();
    await stopAllOk(nodes, [redis]);
  }
}

test('a burst goes to Redis in batches: per-room order and consecutive seqs kept, far fewer script calls than messages', async () => {
  const batched = await burst('b', {});
  assert.ok(batched.calls < batched.N / 4,
    `${batched.calls} script calls for ${batched.N} messages: publishes were not batched`);
  // publish_batch = 1: one call per message, as before batching (and proof
  // that the count above counts the publishes)
  const single = await burst('u', { publish_batch: 1 });
  assert.ok(single.calls >= single.N, `${single.calls} script calls for ${single.N} messages with publish_batch = 1`);
});

test('kill -9 a node: its users leave the others\' presence within the bound', async () => {
  const redis = await startRedis();
  const nodes = [];
  try {
    for (let i = 0; i < 2; i++) nodes.push(await startNode([redis], `k${i}`));
    const a = await enter(nodes[0], 'room', 'alice');
    const v = await enter(nodes[1], 'room', 'victor');
    await a.next(hasUsers('room', ['alice', 'victor']), 5000);
    v.ws.on('error', () => {});
    const t0 = Date.now();
    await nodes[1].stop('SIGKILL');
    const p = await a.next(hasUsers('room', ['alice']), BOUND_MS + 3000);
    const took = Date.now() - t0;
    assert.ok(p, 'the list without victor');
    assert.ok(took <= BOUND_MS + 1000, `victor left after ${took} ms; the bound is ${BOUND_MS} ms (+1 s of slack)`);
    await until(async () => (await metric(nodes[0], 'nebula_cluster_nodes')) === 0, 5000, 'k1 expired');
    // the name is free: victor can come back elsewhere at once
    const v2 = await enter(nodes[0], 'room', 'victor');
    a.close(); v2.close();
  } finally {
    await stopOk(nodes[0]);
    await redis.close();
  }
});

test('Redis stops while clients chat: local delivery goes on, no busy loop, bounded memory, and the cluster heals', async () => {
  const redis = await startRedis();
  const nodes = [];
  try {
    for (let i = 0; i < 2; i++) nodes.push(await startNode([redis], `o${i}`));
    const a = await enter(nodes[0], 'talk', 'alice');
    const b = await enter(nodes[0], 'talk', 'bob');
    const c = await enter(nodes[1], 'talk', 'carol');
    say(a, 'talk', 'before');
    await c.next((f) => f.type === 'message' && f.content === 'before', 5000);

    await redis.stop();
    await until(async () => (await metric(nodes[0], 'nebula_broker_up')) === 0, 5000 * scale, 'broker down');
    assert.match(await (await fetch(`${nodes[0].url}/readyz`)).text(), /broker: down/);
    const rss0 = rssKb(nodes[0].pid);
    const cpu0 = cpuTicks(nodes[0].pid);
    const t0 = Date.now();
    // local chat goes on, sequenced locally
    for (let i = 0; i < 300; i++) say(a, 'talk', `down${i}`);
    for (let i = 0; i < 300; i++) await b.next((f) => f.type === 'message' && f.content === `down${i}`, 5000);
    await sleep(2000);
    const cpuSec = (cpuTicks(nodes[0].pid) - cpu0) / 100;
    const wall = (Date.now() - t0) / 1000;
    const rss1 = rssKb(nodes[0].pid);
    if (!slow) {
      assert.ok(cpuSec / wall < 0.25, `${cpuSec}s of CPU in ${wall}s while Redis was down: a busy loop?`);
      assert.ok(rss1 - rss0 < 30 * 1024, `RSS grew by ${rss1 - rss0} kB while Redis was down`);
    }
    assert.ok(!c.frames.some((f) => f.type === 'message' && f.content.startsWith('down')), 'nothing crossed while down');

    // Redis comes back empty (no persistence): the nodes reconnect and heal
    await redis.start();
    for (const n of nodes) await until(async () => (await metric(n, 'nebula_broker_up')) === 1, 10000 * scale, `${n.id}: broker up again`);
    await c.next((f) => f.type === 'presence' && f.users.length === 3, 5000 * scale);
    say(a, 'talk', 'healed');
    const m = await c.next((f) => f.type === 'message' && f.content === 'healed', 5000 * scale);
    say(c, 'talk', 'back');
    const m2 = await a.next((f) => f.type === 'message' && f.content === 'back', 5000 * scale);
    assert.ok(m2.seq > m.seq, 'one order again');
    const out = await stopOk(nodes[0]);
    nodes.shift();
    assert.equal(out.stderr.match(/broker: down/g).length, 1, 'logged down once');
    for (const x of [a, b, c]) x.close();
  } finally {
    await stopAllOk(nodes, [redis]);
  }
});

test('Redis restarts with its data: who left meanwhile leaves the other nodes\' lists, and the order goes on', async () => {
  const redis = await startRedis({ persist: true });
  const nodes = [];
  try {
    for (let i = 0; i < 2; i++) nodes.push(await startNode([redis], `p${i}`));
    const a = await enter(nodes[0], 'kept', 'alice');
    const d = await enter(nodes[0], 'kept', 'dan');
    const c = await enter(nodes[1], 'kept', 'carol');
    assert.deepEqual(c.presence.users, ['alice', 'carol', 'dan']);
    say(a, 'kept', 'one');
    const one = await c.next((f) => f.type === 'message' && f.content === 'one', 5000);
    await redis.stop();
    await until(async () => (await metric(nodes[0], 'nebula_broker_up')) === 0, 5000 * scale, 'broker down');
    d.close(); // leaves while Redis is away
    await a.next((f) => f.type === 'leave' && f.sender === 'dan', 5000);
    await redis.start();
    for (const n of nodes) await until(async () => (await metric(n, 'nebula_broker_up')) === 1, 10000 * scale, `${n.id}: up again`);
    // node 1 learns that dan left: no ghost
    await c.next(hasUsers('kept', ['alice', 'carol']), 5000 * scale);
    say(c, 'kept', 'two');
    const two = await a.next((f) => f.type === 'message' && f.content === 'two', 5000 * scale);
    const two1 = await c.next((f) => f.type === 'message' && f.content === 'two', 5000 * scale);
    assert.equal(two.seq, two1.seq, 'one order on both nodes');
    assert.ok(two1.seq > one.seq);
    a.close(); c.close();
  } finally {
    await stopAllOk(nodes, [redis]);
  }
});

test('history from any node, and since on another node misses nothing', async () => {
  const redis = await startRedis();
  const nodes = [];
  try {
    for (let i = 0; i < 3; i++) nodes.push(await startNode([redis], `h${i}`));
    const a = await enter(nodes[0], 'hist', 'alice');
    for (let i = 1; i <= 5; i++) say(a, 'hist', `m${i}`);
    for (let i = 1; i <= 5; i++) await a.next((f) => f.type === 'message' && f.content === `m${i}`, 5000);
    // node 1 has no member of the room until bob joins
    const b = await Client.connect(nodes[1].wsUrl('hist', 'bob'));
    const j = await b.next((f) => f.type === 'join' && f.sender === 'bob', 5000);
    assert.deepEqual(b.frames.filter((f) => f.type === 'history').map((f) => f.content), ['m1', 'm2', 'm3', 'm4', 'm5']);
    assert.equal(j.seq, 5);
    b.close();
    await a.next((f) => f.type === 'leave' && f.sender === 'bob', 5000);
    for (let i = 6; i <= 8; i++) say(a, 'hist', `m${i}`);
    for (let i = 6; i <= 8; i++) await a.next((f) => f.type === 'message' && f.content === `m${i}`, 5000);
    // bob comes back on node 2 with what it saw
    const b2 = await Client.connect(nodes[2].wsUrl('hist', 'bob') + `&since=5&epoch=${encodeURIComponent(j.epoch)}`);
    const j2 = await b2.next((f) => f.type === 'join' && f.sender === 'bob', 5000);
    assert.deepEqual(b2.frames.filter((f) => f.type === 'history').map((f) => [f.seq, f.content]),
      [[6, 'm6'], [7, 'm7'], [8, 'm8']]);
    assert.equal(j2.incomplete, undefined);
    assert.equal(j2.epoch, j.epoch, 'one epoch on every node');
    a.close(); b2.close();
  } finally {
    await stopAllOk(nodes, [redis]);
  }
});

test('three Redis instances: rooms spread over all three; killing one affects only its rooms', async () => {
  const redises = [await startRedis(), await startRedis(), await startRedis()];
  const nodes = [];
  const clients = [];
  try {
    for (let i = 0; i < 2; i++) nodes.push(await startNode(redises, `s${i}`));
    const rooms = Array.from({ length: 24 }, (_, i) => `room${i}`);
    const pairs = {};
    for (const r of rooms) {
      const x = await enter(nodes[0], r, 'xa');
      const y = await enter(nodes[1], r, 'yb');
      clients.push(x, y);
      pairs[r] = [x, y];
      say(x, r, 'hello');
      await y.next((f) => f.type === 'message' && f.content === 'hello', 5000);
    }
    // which instance holds each room: its seq key is there
    const owner = {};
    for (let k = 0; k < 3; k++) {
      const reply = await redises[k].command('KEYS', 'nebula:seq:*');
      for (const m of reply.matchAll(/nebula:seq:(room\d+)/g)) owner[m[1]] = k;
    }
    const counts = [0, 1, 2].map((k) => rooms.filter((r) => owner[r] === k).length);
    assert.equal(counts.reduce((s, n) => s + n, 0), rooms.length, 'each room on exactly one instance');
    for (const n of counts) assert.ok(n > 0, `rooms spread over all three: ${counts}`);

    await redises[1].kill();
    await sleep(300 * scale);
    for (const r of rooms) {
      const [x, y] = pairs[r];
      say(x, r, 'after');
      if (owner[r] === 1) {
        const e = await x.next((f) => f.type === 'error' || (f.type === 'message' && f.content === 'after'), 5000 * scale);
        assert.equal(e.code, 'broker_unavailable', `room ${r} on the dead instance`);
      } else {
        await y.next((f) => f.type === 'message' && f.content === 'after', 5000 * scale);
      }
    }
    assert.equal(await metric(nodes[0], 'nebula_broker_up'), 1, 'the broker is up: two instances of three are');
  } finally {
    for (const x of clients) x.close();
    await stopAllOk(nodes, redises);
  }
});

test('config: every mistake reported with its line; a host name is resolved off the loop', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'nebula-rbconf-'));
  const redis = await startRedis();
  try {
    const conf = path.join(dir, 'bad.conf');
    writeFileSync(conf, `[plugins]\ndir = "${pluginDir}"\nbroker = "broker-redis"\n`
      + '[broker-redis]\nurl = "http://x:pw@h"\nheartbeat_ms = 10\nstream_max_len = "many"\n');
    const r = await runNebula(['--check-config', conf]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /bad\.conf:5: \[broker-redis\] url: expected redis:\/\//);
    assert.match(r.stderr, /bad\.conf:6: \[broker-redis\] heartbeat_ms: must be from 50/);
    assert.match(r.stderr, /bad\.conf:7: \[broker-redis\] stream_max_len:/);
    assert.ok(!r.stderr.includes(':pw@'), 'a password is never logged');
    // "localhost": resolved by the plugin's resolver thread, then connected
    const n = await startNode([{ url: `redis://localhost:${redis.port}` }], 'named');
    assert.match(await (await fetch(`${n.url}/readyz`)).text(), /broker: up/);
    await stopOk(n);
  } finally {
    await redis.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
