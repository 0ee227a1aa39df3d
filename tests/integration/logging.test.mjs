// Logging: text or JSON lines with levels, repeats limited with a count of
// what was suppressed, and a stderr nobody reads never stalls the chat.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client } from '../lib/client.mjs';
import { startServer, makeConfig, freePort, nebulaBin, runNebula } from '../lib/server.mjs';
import { until } from '../lib/util.mjs';

// A connection that breaks the error budget: max_errors is 1, so the
// second bad frame closes it with 4429 and logs "closing <user>: ...".
async function abuser(srv, user) {
  const c = await Client.connect(srv.wsUrl(null, user));
  await c.next('welcome');
  c.send('{bad');
  c.send('{bad');
  const closed = await c.waitClose();
  assert.equal(closed.code, 4429);
}

test('--log-format json: every line is one JSON object with ts, level, origin and msg', async () => {
  const srv = await startServer({ args: ['--log-format', 'json'] });
  const r = await srv.stop();
  assert.equal(r.code, 0);
  const lines = r.stderr.trim().split('\n');
  assert.ok(lines.length >= 4, r.stderr);
  for (const line of lines) {
    const o = JSON.parse(line);
    assert.match(o.ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(['error', 'warn', 'info', 'debug'].includes(o.level), line);
    assert.equal(typeof o.origin, 'string');
    assert.equal(typeof o.msg, 'string');
  }
  assert.ok(lines.some((l) => JSON.parse(l).msg.startsWith('listening on http://')), 'the transport logs through the core');
});

test('[server] log_format = "json" in the config; a bad value is named with its line', async () => {
  const srv = await startServer({ server: { log_format: 'json' } });
  const r = await srv.stop();
  for (const line of r.stderr.trim().split('\n')) JSON.parse(line);
  const dir = mkdtempSync(path.join(tmpdir(), 'nebula-log-'));
  const conf = path.join(dir, 'nebula.conf');
  writeFileSync(conf, makeConfig({ port: await freePort(), server: { log_format: 'yaml' } }));
  const bad = await runNebula(['--check-config', conf]);
  rmSync(dir, { recursive: true, force: true });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /nebula\.conf:\d+: \[server\] log_format: "yaml": expected "text" or "json"/);
  const cli = await runNebula(['--log-format', 'xml', '--check-config']);
  assert.equal(cli.code, 2);
  assert.match(cli.stderr, /--log-format xml: expected text or json/);
});

test('a flood of the same line yields a bounded number of lines and the suppressed count', async () => {
  // Long enough for the flood to fit in one window on a slow (valgrind) run.
  const windowMs = process.env.NEBULA_WRAPPER ? 20000 : 3000;
  const srv = await startServer({
    args: ['--log-format', 'json'],
    server: { log_repeat_window_ms: windowMs },
    limits: { max_errors: 1 },
  });
  try {
    const n = 30;
    for (let i = 0; i < n; i += 10) {
      await Promise.all(Array.from({ length: 10 }, (_, k) => abuser(srv, `flood${i + k}`)));
    }
    const closing = () => srv.output().stderr.trim().split('\n').map((l) => JSON.parse(l))
      .filter((o) => o.msg.startsWith('closing flood'));
    const accounted = () => closing().reduce((sum, o) => sum + (o.suppressed || 1), 0);
    // Every close is either shown or counted in a summary once its window ends.
    await until(() => accounted() === n, windowMs + 5000, `${n} closes accounted for`);
    const lines = closing();
    const shown = lines.filter((o) => !o.suppressed).length;
    const summaries = lines.filter((o) => o.suppressed);
    assert.ok(summaries.length >= 1, 'a summary line');
    assert.ok(shown <= 5 * (summaries.length + 1), `${shown} lines shown for ${summaries.length + 1} window(s)`);
    for (const o of summaries) {
      assert.match(o.msg, new RegExp(`^closing flood\\d+: more than 1 errors in 10 s \\(${o.suppressed} more like this in the last ${windowMs / 1000} s\\)$`));
    }
    // A later window shows lines again.
    await abuser(srv, 'later');
    await until(() => srv.output().stderr.includes('closing later'), windowMs + 3000, 'a line in a new window');
  } finally {
    await srv.stop();
  }
});

// The server writes to a pipe nobody reads: once it is full, the old
// write() would block the I/O thread that logged. Lines are made with a
// flood of refused upgrades at debug level (repeats not limited), then a
// chat must still work; reading the pipe at last shows the dropped count.
test('a stderr nobody reads does not stall the chat; dropped lines are counted', async () => {
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'nebula-log-'));
  const conf = path.join(dir, 'nebula.conf');
  writeFileSync(conf, makeConfig({
    port, server: { log_level: 'debug', log_queue_bytes: 65536, log_repeat_window_ms: 0 },
    limits: { messages_per_second: 0 },
  }));
  const child = spawn(nebulaBin, ['-c', conf], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr.pause(); // nobody reads: the pipe fills up
  const exited = new Promise((resolve) => child.on('close', (code) => resolve(code)));
  try {
    const url = `http://127.0.0.1:${port}`;
    await until(async () => { try { return (await fetch(`${url}/healthz`)).ok; } catch { return false; } }, 10000, 'the server listens');
    // Upgrade requests without a key: each is refused and logged at debug.
    const refused = () => new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.write(`GET /ws?username=x HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n`);
      });
      s.on('data', () => s.destroy());
      s.on('close', resolve);
      s.on('error', resolve);
    });
    for (let i = 0; i < 3000; i += 50) await Promise.all(Array.from({ length: 50 }, refused));
    const a = await Client.connect(`ws://127.0.0.1:${port}/ws?room=r&username=alice`);
    const b = await Client.connect(`ws://127.0.0.1:${port}/ws?room=r&username=bob`);
    await b.next((f) => f.type === 'presence' && f.users.includes('alice') && f.users.includes('bob'), 5000);
    const t0 = Date.now();
    for (let i = 0; i < 50; i++) a.send({ type: 'message', room: 'r', content: `m${i}` });
    await b.next((f) => f.type === 'message' && f.content === 'm49', 5000);
    assert.ok(Date.now() - t0 < 5000);
    a.close();
    b.close();
    let text = '';
    child.stderr.on('data', (d) => { text += d; });
    child.stderr.resume();
    await until(() => /log line\(s\) dropped: stderr did not keep up/.test(text), 10000, 'the dropped count is logged');
  } finally {
    child.kill('SIGTERM');
    child.stderr.resume();
    assert.equal(await exited, 0);
    rmSync(dir, { recursive: true, force: true });
  }
});
