// History survives a restart by default: the shipped nebula.conf (copied
// into a temp folder, unchanged but for its two paths into the source
// tree) and the built-in defaults (no config file at all) both keep it in
// store-sqlite's data/nebula.db, created on first start; the sqlite3 shell
// reads that file while the server runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { nebulaBin, pluginDir, repoRoot, freePort } from '../lib/server.mjs';
import { Client } from '../lib/client.mjs';
import { until } from '../lib/util.mjs';

// Start nebula in `cwd` with `args`; resolves once /healthz answers.
async function run(cwd, args) {
  const port = await freePort();
  const wrapper = (process.env.NEBULA_WRAPPER || '').split(' ').filter(Boolean);
  const argv = [...wrapper, nebulaBin, ...args, '--listen', `127.0.0.1:${port}`];
  const child = spawn(argv[0], argv.slice(1), { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stderr.on('data', (d) => { log += d; });
  child.stdout.on('data', (d) => { log += d; });
  const exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  let done = null;
  exited.then((r) => { done = r; });
  await until(async () => {
    if (done) throw new Error(`nebula exited ${JSON.stringify(done)}:\n${log}`);
    try { return (await fetch(`http://127.0.0.1:${port}/healthz`)).ok; } catch { return false; }
  }, 20000, `nebula on port ${port}`);
  const srv = {
    port,
    log: () => log,
    // The log thread writes its lines on its own time: under valgrind a
    // line logged before /healthz answered may come a moment later.
    async logged(re) {
      await until(() => re.test(log), 20000, `a log line matching ${re}:\n${log}`);
    },
    wsUrl: (room, user) => `ws://127.0.0.1:${port}/ws?room=${room}&username=${user}`,
    async stop() {
      child.kill('SIGTERM');
      const r = await exited;
      assert.equal(r.code, 0, log);
    },
    // A test that failed half-way: no server outlives it.
    kill() {
      if (!done) child.kill('SIGKILL');
    },
  };
  running.push(srv);
  return srv;
}

const running = [];
function killAll() {
  while (running.length) running.pop().kill();
}

async function chat(srv, room, lines) {
  const c = await Client.connect(srv.wsUrl(room, 'alice'));
  await c.next('presence');
  for (const text of lines) {
    c.send({ type: 'message', room, content: text });
    await c.next((f) => f.type === 'message' && f.content === text);
  }
  c.ws.close();
}

async function history(srv, room) {
  const c = await Client.connect(srv.wsUrl(room, 'bob'));
  await c.next('presence');
  const got = c.frames.filter((f) => f.type === 'history');
  c.ws.close();
  return got;
}

function sqlite3(file, sql) {
  try {
    return execFileSync('sqlite3', ['-readonly', file, sql], { encoding: 'utf8' }).trim();
  } catch (e) {
    throw new Error(`the sqlite3 shell (Makefile APT_PACKAGES: sqlite3) failed: ${e.message}`);
  }
}

test('the shipped nebula.conf keeps history in data/nebula.db across restarts', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'nebula-default-'));
  try {
    const shipped = readFileSync(path.join(repoRoot, 'nebula.conf'), 'utf8');
    assert.match(shipped, /^store = "store-sqlite"/m);
    assert.match(shipped, /^\[store-sqlite\]/m);
    const conf = shipped
      .replace(/^dir = "build\/plugins"/m, `dir = ${JSON.stringify(pluginDir)}`)
      .replace(/^web_root = "web"/m, `web_root = ${JSON.stringify(path.join(repoRoot, 'web'))}`);
    writeFileSync(path.join(dir, 'nebula.conf'), conf);
    const db = path.join(dir, 'data', 'nebula.db');
    assert.ok(!existsSync(path.join(dir, 'data')));

    let srv = await run(dir, ['-c', path.join(dir, 'nebula.conf')]);
    await srv.logged(/history in .*data\/nebula\.db \(created\)/);
    await chat(srv, 'lobby', ['one', 'two', 'three']);
    // readable from outside while the server runs (WAL)
    await until(() => sqlite3(db, 'SELECT count(*) FROM messages') === '3', 5000, 'rows committed');
    assert.equal(sqlite3(db, "SELECT group_concat(content, ',') FROM messages WHERE room = 'lobby'"),
      'one,two,three');
    await srv.stop();

    srv = await run(dir, ['-c', path.join(dir, 'nebula.conf')]);
    await srv.logged(/history in .*data\/nebula\.db \(opened\)/);
    const h = await history(srv, 'lobby');
    assert.deepEqual(h.map((f) => f.content), ['one', 'two', 'three']);
    assert.deepEqual(h.map((f) => f.seq), [1, 2, 3]);
    await chat(srv, 'lobby', ['four']);
    await srv.stop();
    assert.equal(sqlite3(db, "SELECT max(seq) FROM messages WHERE room = 'lobby'"), '4',
      'numbering goes on after the restart');
  } finally {
    killAll();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('with no config file, history lives in ./data/nebula.db and the log says where', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'nebula-builtin-'));
  try {
    let srv = await run(dir, []);
    await srv.logged(/config \(built-in defaults\)/);
    const where = `history in ${path.join(dir, 'data', 'nebula.db')} (created)`;
    await srv.logged(new RegExp(where.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    await chat(srv, 'r', ['kept']);
    await srv.stop();
    srv = await run(dir, []);
    assert.deepEqual((await history(srv, 'r')).map((f) => f.content), ['kept']);
    await srv.stop();
  } finally {
    killAll();
    rmSync(dir, { recursive: true, force: true });
  }
});
