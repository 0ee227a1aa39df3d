// deployments/local-cluster.sh: Redis, three nodes and haproxy start on
// loopback, the load balancer keeps each room on one node (room affinity:
// with broker = "none" the members of a room only meet if it does), a node
// that goes away is taken out of rotation, and stop ends every process it
// started, by PID.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { Client } from '../lib/client.mjs';
import { makeCluster, alive } from '../lib/cluster.mjs';
import { sleep, until } from '../lib/util.mjs';

const ROOMS = 12;

// Two members per room through the load balancer; each room's pair must
// see each other's message. Returns the clients.
async function chatInEveryRoom(cluster, tag) {
  const pairs = [];
  for (let r = 0; r < ROOMS; r++) {
    const room = `room-${tag}-${r}`;
    const a = await Client.connect(cluster.wsUrl(room, `a${r}`));
    const b = await Client.connect(cluster.wsUrl(room, `b${r}`));
    pairs.push({ room, a, b });
  }
  for (const { room, a, b } of pairs) {
    await a.next('welcome');
    await b.next('welcome');
    a.send({ type: 'message', room, content: `hello from a in ${room}` });
    const got = await b.next((f) => f.type === 'message', 5000)
      .catch((e) => { throw new Error(`${room}: b did not get a's message (not on one node?): ${e.message}`); });
    assert.equal(got.content, `hello from a in ${room}`);
  }
  return pairs.flatMap((p) => [p.a, p.b]);
}

async function connectedPerNode(cluster) {
  return Promise.all(cluster.nodePorts.map(async (port) => {
    try {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return Number(text.match(/^nebula_connections (\d+)$/m)?.[1] ?? NaN);
    } catch {
      return 0;
    }
  }));
}

test('local-cluster.sh: start, room affinity through haproxy, a node leaves, stop', { timeout: 120000 }, async () => {
  for (const tool of ['/usr/sbin/haproxy', '/usr/bin/redis-server', '/usr/bin/curl']) {
    assert.ok(existsSync(tool), `${tool} is not installed (Makefile APT_PACKAGES: haproxy, redis-server, curl)`);
  }
  const cluster = await makeCluster({ nodes: 3 });
  let clients = [];
  try {
    const started = await cluster.run('start');
    assert.equal(started.code, 0, `start failed:\n${started.stdout}\n${started.stderr}`);
    const pids = cluster.pids();
    assert.deepEqual(Object.keys(pids).sort(), ['haproxy', 'node1', 'node2', 'node3', 'redis']);
    for (const [name, pid] of Object.entries(pids)) assert.ok(alive(pid), `${name} (pid ${pid}) does not run`);

    const status = await cluster.run('status');
    assert.equal(status.code, 0, status.stdout + status.stderr);
    assert.match(status.stdout, /node3 +\d+ +127\.0\.0\.1:\d+ +ready/);

    // The shipped page comes through the balancer too.
    const page = await fetch(`${cluster.lbUrl}/`);
    assert.equal(page.status, 200);

    clients = await chatInEveryRoom(cluster, 'x');
    // Affinity is per room, not one node for everyone: 12 rooms land on
    // more than one of the three nodes.
    const counts = await connectedPerNode(cluster);
    assert.equal(counts.reduce((s, n) => s + n, 0), 2 * ROOMS, `connected per node: ${counts}`);
    assert.ok(counts.filter((n) => n > 0).length >= 2, `every room on one node: ${counts}`);

    // A node stops (SIGTERM, as an operator or orchestrator would): it
    // drains, haproxy's /readyz check takes it out, and every room works
    // again through the two others.
    const victim = counts.findIndex((n) => n > 0) + 1;
    process.kill(pids[`node${victim}`], 'SIGTERM');
    await until(() => !alive(pids[`node${victim}`]), 15000, `node${victim} to exit`);
    await until(async () => {
      const text = await (await fetch(`http://127.0.0.1:${cluster.statsPort}/stats;csv`)).text();
      return new RegExp(`^nebula,node${victim},.*?,DOWN`, 'm').test(text);
    }, 10000, `haproxy to mark node${victim} down`);
    for (const c of clients) c.close();
    clients = await chatInEveryRoom(cluster, 'y');
    const after = await connectedPerNode(cluster);
    assert.equal(after[victim - 1], 0);
    assert.equal(after.reduce((s, n) => s + n, 0), 2 * ROOMS, `connected per node: ${after}`);

    for (const c of clients) c.close();
    clients = [];
    const t0 = Date.now();
    const stopped = await cluster.run('stop');
    assert.equal(stopped.code, 0, stopped.stdout + stopped.stderr);
    assert.ok(Date.now() - t0 < 15000, `stop took ${Date.now() - t0} ms`);
    for (const [name, pid] of Object.entries(pids)) assert.ok(!alive(pid), `${name} (pid ${pid}) still runs after stop`);
    const down = await cluster.run('status');
    assert.equal(down.code, 3, `status after stop: ${down.code}\n${down.stdout}`);
    // Stopping twice is harmless.
    assert.equal((await cluster.run('stop')).code, 0);
  } finally {
    for (const c of clients) c.close();
    await cluster.dispose();
  }
});

test('local-cluster.sh: scale adds and removes nodes behind a reloaded haproxy', { timeout: 120000 }, async () => {
  // Ports for three nodes; two start.
  const cluster = await makeCluster({ nodes: 3 });
  cluster.env.NODES = '2';
  try {
    const started = await cluster.run('start');
    assert.equal(started.code, 0, started.stdout + started.stderr);
    const up = await cluster.run('scale', '3');
    assert.equal(up.code, 0, up.stdout + up.stderr);
    await until(async () => {
      // the reload hands the stats port to the new haproxy: the old one may
      // close a request in flight ("other side closed"); ask again
      try {
        const text = await (await fetch(`http://127.0.0.1:${cluster.statsPort}/stats;csv`)).text();
        return /^nebula,node3,.*?,UP/m.test(text);
      } catch {
        return false;
      }
    }, 10000, 'haproxy to list node3 as UP');
    const clients = await chatInEveryRoom(cluster, 'z');
    for (const c of clients) c.close();
    const down = await cluster.run('scale', '1');
    assert.equal(down.code, 0, down.stdout + down.stderr);
    assert.match(down.stdout, /stopped node3/);
    assert.match(down.stdout, /stopped node2/);
    const one = await chatInEveryRoom(cluster, 'w');
    assert.deepEqual(await connectedPerNode(cluster), [2 * ROOMS, 0, 0]);
    const status = await cluster.run('status');
    assert.equal(status.code, 0, status.stdout);
    assert.doesNotMatch(status.stdout, /node[23]/);
    for (const c of one) c.close();
    await sleep(100);
    const bad = await cluster.run('scale', 'x');
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /must be a number/);
  } finally {
    await cluster.dispose();
  }
});
