// nebula-bench against the real server, S2 shape: every message sent must
// reach every member of its room and no connection may fail. No timing
// assertions: this checks the load tool and the message path, not speed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { startServer, pluginDir, runProgram } from '../lib/server.mjs';

// The bench is built in the same build folder as the plugins.
const benchBin = process.env.NEBULA_BENCH
  || path.join(path.dirname(pluginDir), 'tools', 'nebula-bench', 'nebula-bench');
const sanitized = !!process.env.NEBULA_SANITIZE && process.env.NEBULA_SANITIZE !== 'none';

const runBench = (args, timeoutMs) => runProgram(benchBin, args, { timeoutMs });

test('nebula-bench S2: 1 msg/s per connection, nothing lost', { timeout: 60000 }, async () => {
  assert.ok(existsSync(benchBin), `nebula-bench not built: ${benchBin}`);
  // The rate limit is off: the bench is the only client.
  const srv = await startServer({ limits: { messages_per_second: 0, max_queued_bytes: 67108864 } });
  let stopped;
  try {
    const connections = sanitized ? 200 : 1000;
    const r = await runBench(['S2', '--port', String(srv.port), '--connections', String(connections),
      '--room-size', '10', '--rate', '1', '--duration', '5', '--warmup', '1', '--drain', '2',
      '--fail-on-loss', '--server-pid', String(srv.pid)], 50000);
    assert.equal(r.code, 0, `exit ${r.code} ${r.signal ?? ''}\n${r.stderr}`);
    const out = JSON.parse(r.stdout);
    assert.equal(out.scenario, 'S2');
    assert.equal(out.status, 'ok');
    assert.equal(out.connections.ok, connections);
    assert.equal(out.connections.failed, 0);
    assert.equal(out.connections.dropped, 0);
    assert.ok(out.messages.expected > 0, 'nothing was expected');
    assert.equal(out.messages.delivered, out.messages.expected);
    assert.equal(out.messages.lost, 0);
    assert.ok(out.server_rss_kb.after_connect > 0);
  } finally {
    stopped = await srv.stop();
  }
  assert.equal(stopped.code, 0, stopped.stderr);
});

// --codec: Protobuf only, and mixed rooms (even ids JSON, odd ids
// Protobuf) against a server with both codecs; a JSON-only server refuses
// the Protobuf upgrade, which the bench reports as failed connections.
for (const codec of ['proto', 'mixed']) {
  test(`nebula-bench S2 --codec ${codec}: nothing lost`, { timeout: 60000 }, async () => {
    const srv = await startServer({
      plugins: { codecs: ['codec-json', 'codec-protobuf'] },
      limits: { messages_per_second: 0, max_queued_bytes: 67108864 },
    });
    let stopped;
    try {
      const connections = sanitized ? 100 : 400;
      const r = await runBench(['S2', '--port', String(srv.port), '--connections', String(connections),
        '--room-size', '10', '--rate', '1', '--duration', '3', '--warmup', '1', '--drain', '2',
        '--codec', codec, '--fail-on-loss'], 50000);
      assert.equal(r.code, 0, `exit ${r.code} ${r.signal ?? ''}\n${r.stderr}`);
      const out = JSON.parse(r.stdout);
      assert.equal(out.params.codec, codec);
      assert.equal(out.connections.ok, connections);
      assert.ok(out.messages.expected > 0, 'nothing was expected');
      assert.equal(out.messages.delivered, out.messages.expected);
      assert.equal(out.messages.lost, 0);
    } finally {
      stopped = await srv.stop();
    }
    assert.equal(stopped.code, 0, stopped.stderr);
  });
}

test('nebula-bench --codec proto against a JSON-only server: the upgrade is refused', { timeout: 30000 }, async () => {
  const srv = await startServer({});
  try {
    const r = await runBench(['S2', '--port', String(srv.port), '--connections', '2', '--room-size', '2',
      '--rate', '1', '--duration', '0.5', '--warmup', '0', '--drain', '0.5', '--codec', 'proto',
      '--fail-on-loss'], 20000);
    assert.notEqual(r.code, 0, r.stdout);
    const out = JSON.parse(r.stdout);
    assert.equal(out.connections.failed, 2, r.stdout);
  } finally {
    await srv.stop();
  }
});

// --targets: connections spread over several servers that share nothing
// (broker "none"). By room, each room's members meet on one server and
// every copy arrives; by connection, a room's members are split over both
// servers and each sees only the copies of its own half, which shows the
// connections really went to both. --server-pid sums their RSS.
test('nebula-bench --targets: two servers, spread by room and by connection', { timeout: 60000 }, async () => {
  const limits = { messages_per_second: 0, max_queued_bytes: 67108864 };
  const a = await startServer({ limits, plugins: { broker: 'none' } });
  const b = await startServer({ limits, plugins: { broker: 'none' } });
  try {
    const targets = `127.0.0.1:${a.port},127.0.0.1:${b.port}`;
    const common = ['S2', '--targets', targets, '--connections', '200', '--room-size', '10', '--rate', '1',
      '--duration', '2', '--warmup', '0.5', '--drain', '1'];
    const byRoom = await runBench([...common, '--server-pid', `${a.pid},${b.pid}`, '--fail-on-loss'], 40000);
    assert.equal(byRoom.code, 0, `exit ${byRoom.code}\n${byRoom.stderr}`);
    const r = JSON.parse(byRoom.stdout);
    assert.deepEqual(r.params.targets, [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`]);
    assert.equal(r.params.spread, 'room');
    assert.deepEqual(r.params.server_pid, [a.pid, b.pid]);
    assert.equal(r.connections.ok, 200);
    assert.ok(r.messages.expected > 0);
    assert.equal(r.messages.lost, 0);
    assert.ok(r.server_rss_kb.after_connect > 0);

    const byConn = await runBench([...common, '--spread', 'connection'], 40000);
    assert.equal(byConn.code, 0, `exit ${byConn.code}\n${byConn.stderr}`);
    const c = JSON.parse(byConn.stdout);
    assert.equal(c.connections.ok, 200);
    // Rooms of 10 split 5 + 5: each message reaches half its room.
    assert.ok(Math.abs(c.messages.loss_pct - 50) < 5, `loss ${c.messages.loss_pct} %, expected about 50 %`);

    const bad = await runBench(['S2', '--targets', '127.0.0.1', '--connections', '2'], 10000);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /not HOST:PORT/);
    const both = await runBench(['S2', '--targets', targets, '--port', '1', '--connections', '2'], 10000);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /replaces --host and --port/);
  } finally {
    await a.stop();
    await b.stop();
  }
});
