// The command line and the config file, from docs/CONFIG.md and the
// operator's expectations: --help, --version, unknown options,
// --check-config naming FILE:LINE and the key of every mistake, --listen,
// ./nebula.conf as the default file, and SIGTERM with clients connected.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, mkdirSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { runNebula, makeConfig, freePort, startServer, nebulaBin, pluginDir } from '../lib/server.mjs';
import { Client } from '../lib/client.mjs';

const tmp = mkdtempSync(path.join(tmpdir(), 'nebula-cli-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

let nfile = 0;
function writeConf(text, name) {
  const f = path.join(tmp, name || `c${++nfile}.conf`);
  writeFileSync(f, text);
  return f;
}

// 1-based line of the first line of text containing needle.
function lineOf(text, needle) {
  const i = text.split('\n').findIndex((l) => l.includes(needle));
  assert.ok(i >= 0, `${needle} is in the config`);
  return i + 1;
}

// stderr has a line naming FILE:LINE that also mentions every one of words.
function assertReported(stderr, file, line, ...words) {
  const lines = stderr.split('\n').filter((l) => l.includes(`${file}:${line}`));
  assert.ok(lines.length >= 1, `stderr names ${file}:${line}:\n${stderr}`);
  for (const w of words) {
    assert.ok(lines.some((l) => l.includes(w)), `the line for ${file}:${line} mentions ${w}:\n${lines.join('\n')}`);
  }
}

function canConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => { s.destroy(); resolve(false); });
  });
}

async function untilListening(port, child, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await canConnect(port))) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`nebula exited ${child.exitCode}`);
    if (Date.now() > deadline) throw new Error(`nothing listens on ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// ------------------------------------------------------------ options

test('--help prints usage naming the options and exits 0', async () => {
  const r = await runNebula(['--help']);
  assert.equal(r.code, 0, r.stderr);
  for (const opt of ['-c', '--listen', '--check-config', '--version']) {
    assert.ok(r.stdout.includes(opt), `usage names ${opt}:\n${r.stdout}`);
  }
  assert.match(r.stdout, /usage/i);
});

test('--version prints a version line and exits 0', async () => {
  const r = await runNebula(['--version']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^nebula\b.*\d+\.\d+/m);
});

test('an unknown option exits non-zero and names the option', async () => {
  const r = await runNebula(['--frobnicate']);
  assert.notEqual(r.code, 0);
  assert.equal(r.signal, null);
  assert.ok(r.stderr.includes('--frobnicate'), r.stderr);
});

// ------------------------------------------------------ --check-config

test('--check-config on a good config exits 0 and says OK', async () => {
  const f = writeConf(makeConfig({ port: 18080 }));
  const r = await runNebula(['--check-config', f]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout + r.stderr, /\bOK\b/i);
});

test('--check-config names FILE:LINE and the key of a typo, and suggests the known key', async () => {
  const text = makeConfig({ port: 18080, limits: { burts: 5 } });
  const f = writeConf(text);
  const r = await runNebula(['--check-config', f]);
  assert.equal(r.code, 1, r.stderr);
  assertReported(r.stderr, f, lineOf(text, 'burts'), 'burts');
  assert.ok(r.stderr.includes('burst'), `suggests burst:\n${r.stderr}`);
});

test('--check-config names FILE:LINE and the key of a wrong type', async () => {
  const text = makeConfig({ port: 18080, server: { shards: 'x' } });
  const f = writeConf(text);
  const r = await runNebula(['--check-config', f]);
  assert.equal(r.code, 1, r.stderr);
  assertReported(r.stderr, f, lineOf(text, 'shards'), 'shards');
});

test('--check-config names FILE:LINE of a syntax error', async () => {
  const text = makeConfig({ port: 18080 }).replace('[server]\n', '[server]\nnode_id = "unterminated\n');
  const f = writeConf(text);
  const r = await runNebula(['--check-config', f]);
  assert.equal(r.code, 1, r.stderr);
  assertReported(r.stderr, f, lineOf(text, '"unterminated'));
});

test('--check-config reports every mistake in one run', async () => {
  const text = makeConfig({
    port: 18080,
    server: { shards: 'x', lissen: '127.0.0.1:1' },
    limits: { burts: 5, max_message_bytes: 'big' },
    extra: '[limitz]\nburst = 5\n',
  });
  const f = writeConf(text);
  const r = await runNebula(['--check-config', f]);
  assert.equal(r.code, 1, r.stderr);
  assertReported(r.stderr, f, lineOf(text, 'shards'), 'shards');
  assertReported(r.stderr, f, lineOf(text, 'lissen'), 'lissen');
  assertReported(r.stderr, f, lineOf(text, 'burts'), 'burts');
  assertReported(r.stderr, f, lineOf(text, 'max_message_bytes'), 'max_message_bytes');
  // an unknown section with a key: reported on the section's line or the key's
  const l = lineOf(text, '[limitz]');
  assert.ok([l, l + 1].some((n) => r.stderr.split('\n').some((x) => x.includes(`${f}:${n}`) && x.includes('limitz'))),
    `[limitz] is reported at ${f}:${l} or :${l + 1}:\n${r.stderr}`);
});

test('--check-config refuses [limits] idle_timeout_ms between 1 and 999, naming the key', async () => {
  const text = makeConfig({ port: 18080, limits: { idle_timeout_ms: 500 } });
  const f = writeConf(text);
  const r = await runNebula(['--check-config', f]);
  assert.equal(r.code, 1, r.stderr);
  assertReported(r.stderr, f, lineOf(text, 'idle_timeout_ms'), 'idle_timeout_ms', '500', 'out of range');
  for (const bad of [1, 999, 604800001, -1]) {
    const t = makeConfig({ port: 18080, limits: { idle_timeout_ms: bad } });
    const g = writeConf(t);
    const rb = await runNebula(['--check-config', g]);
    assert.equal(rb.code, 1, `${bad} is refused:\n${rb.stderr}`);
    assertReported(rb.stderr, g, lineOf(t, 'idle_timeout_ms'), 'idle_timeout_ms', String(bad));
  }
  for (const good of [0, 1000, 604800000]) {
    const rg = await runNebula(['--check-config', writeConf(makeConfig({ port: 18080, limits: { idle_timeout_ms: good } }))]);
    assert.equal(rg.code, 0, `${good} is accepted:\n${rg.stderr}`);
  }
});

test('--check-config reports an unknown section even when it is empty', async () => {
  const text = makeConfig({ port: 18080, extra: '[limitz]\n# nothing here yet\n' });
  const f = writeConf(text);
  const r = await runNebula(['--check-config', f]);
  assert.equal(r.code, 1, `${r.stdout}${r.stderr}`);
  assertReported(r.stderr, f, lineOf(text, '[limitz]'), 'limitz');
});

test('--check-config on a missing file names the file', async () => {
  const f = path.join(tmp, 'does-not-exist.conf');
  const r = await runNebula(['--check-config', f]);
  assert.notEqual(r.code, 0);
  assert.equal(r.signal, null);
  assert.ok(r.stderr.includes(f), r.stderr);
});

test('--check-config names a codec plugin that does not exist', async () => {
  const text = makeConfig({ port: 18080, plugins: { codecs: ['codec-json', 'codec-nonexistent'] } });
  const f = writeConf(text);
  const r = await runNebula(['--check-config', f]);
  assert.notEqual(r.code, 0);
  assert.equal(r.signal, null);
  assert.ok(r.stderr.includes('codec-nonexistent'), r.stderr);
});

test('--check-config prints only problems and a final OK: no info lines', async () => {
  const f = writeConf(makeConfig({ port: 18080 }));
  const r = await runNebula(['--check-config', f]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${f}: OK\n`);
  assert.equal(r.stderr, '', 'nothing on stderr for a good config');
  // a warning or an error is still shown
  const bad = writeConf(makeConfig({ port: 18080, limits: { burts: 5 } }));
  const rb = await runNebula(['--check-config', bad]);
  assert.equal(rb.code, 1);
  assert.doesNotMatch(rb.stderr, / info /, `no info lines:\n${rb.stderr}`);
  assert.match(rb.stderr, /burts/);
});

test('--check-config: a transport that does not exist names FILE:LINE, the folder and the available plugins', async () => {
  const text = makeConfig({ port: 18080, plugins: { transport: 'transport-wss' } });
  const f = writeConf(text);
  const r = await runNebula(['--check-config', f]);
  assert.equal(r.code, 1, r.stderr);
  const line = lineOf(text, 'transport-wss');
  const want = `${f}:${line}: [plugins] transport: no plugin "transport-wss" in ${pluginDir} (available: `;
  const hit = r.stderr.split('\n').find((l) => l.includes(want));
  assert.ok(hit, `stderr has "${want}...":\n${r.stderr}`);
  for (const name of ['transport-ws', 'codec-json']) assert.match(hit, new RegExp(`\\b${name}\\b`));
});

test('--check-config: a failing codec does not make the transport\'s section unknown', async () => {
  const text = makeConfig({
    port: 18080,
    plugins: { codecs: ['codec-json', 'codec-nonexistent'] },
    extra: '[transport-ws]\nping_interval_ms = 20000\nmax_mesage_bytes = 4096\n',
  });
  const f = writeConf(text);
  const r = await runNebula(['--check-config', f]);
  assert.equal(r.code, 1, r.stderr);
  assertReported(r.stderr, f, lineOf(text, 'codec-nonexistent'), 'no plugin "codec-nonexistent"');
  assert.doesNotMatch(r.stderr, /unknown section/, `no false unknown section:\n${r.stderr}`);
  // the transport still read (and checked) its section in the same run
  assertReported(r.stderr, f, lineOf(text, 'max_mesage_bytes'), 'max_mesage_bytes', 'max_message_bytes');
  assert.equal(r.stderr.split('\n').filter((l) => l.includes(`${f}:${lineOf(text, 'ping_interval_ms')}`)).length, 0,
    'a good key of the transport is not reported');
});

test('a relative path that does not exist names the folder it was resolved against', async () => {
  const text = makeConfig({ port: 18080, server: { web_root: 'no-such-web' }, plugins: { dir: ['no-such-plugins', pluginDir] } });
  const f = writeConf(text);
  const r = await runNebula(['--check-config', f]);
  assert.equal(r.code, 1, r.stderr);
  assertReported(r.stderr, f, lineOf(text, 'web_root'), '"no-such-web" is not a directory', `resolved against ${tmp}`);
  assertReported(r.stderr, f, lineOf(text, 'no-such-plugins'), '"no-such-plugins" is not a directory', `resolved against ${tmp}`);
  // -c with a relative file name: the working directory
  const rc = await runNebula(['-c', 'missing.conf'], { cwd: tmp });
  assert.equal(rc.code, 1);
  assert.match(rc.stderr, new RegExp(`missing\\.conf: cannot open: .*resolved against ${tmp.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
});

test('[plugins] dir takes a list: plugins are looked up in order, "available" covers every folder', async () => {
  const mine = mkdtempSync(path.join(tmp, 'mine-'));
  const fixtureDir = process.env.NEBULA_FIXTURE_DIR || path.join(path.dirname(nebulaBin), 'tests', 'fixtures');
  copyFileSync(path.join(fixtureDir, 'store-memory.so'), path.join(mine, 'store-memory.so'));
  // a name found in no folder lists the plugins of both
  const missing = makeConfig({ port: 18080, plugins: { dir: [mine, pluginDir], store: 'store-nope' } });
  const rm = await runNebula(['--check-config', writeConf(missing)]);
  assert.equal(rm.code, 1);
  assert.match(rm.stderr, new RegExp(`no plugin "store-nope" in ${mine}, ${pluginDir} \\(available: [^)]*\\bcodec-json\\b[^)]*\\bstore-memory\\b`), rm.stderr);
  // the store from the first folder, transport and codec from the second: a server that works
  const port = await freePort();
  const srv = await startServer({ port, config: makeConfig({ port, plugins: { dir: [mine, pluginDir], store: 'store-memory' } }) });
  try {
    assert.match(srv.output().stderr, new RegExp(`loaded store plugin store-memory .* from ${mine}/store-memory\\.so`));
    assert.match(srv.output().stderr, new RegExp(`loaded transport plugin transport-ws .* from ${pluginDir}/transport-ws\\.so`));
    const c = await Client.connect(`ws://127.0.0.1:${port}/ws?room=dirs&username=alice`);
    await c.next('presence');
    c.send({ type: 'message', room: 'dirs', content: 'stored' });
    assert.equal((await c.next('message')).content, 'stored');
    c.close();
  } finally {
    const r = await srv.stop();
    assert.equal(r.code, 0, r.stderr);
  }
  // a plain string still works
  const one = await runNebula(['--check-config', writeConf(makeConfig({ port: 18080, plugins: { dir: pluginDir } }))]);
  assert.equal(one.code, 0, one.stderr);
});

// ------------------------------------------------------ running

test('a port in use: the error says how to pick another (--listen, make run ARGS)', async () => {
  const srv = await startServer();
  try {
    const f = writeConf(makeConfig({ port: srv.port }));
    const r = await runNebula(['-c', f]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /Address already in use/);
    assert.match(r.stderr, /--listen HOST:PORT/);
    assert.match(r.stderr, /make run ARGS="--listen 127\.0\.0\.1:8081"/);
  } finally {
    await srv.stop();
  }
});

test('--listen overrides the config listen address', async () => {
  const confPort = await freePort();
  const port = await freePort();
  const srv = await startServer({ port, config: makeConfig({ port: confPort }), args: ['--listen', `127.0.0.1:${port}`] });
  try {
    assert.equal(await canConnect(confPort), false, 'nothing listens on the config port');
    const c = await Client.connect(`ws://127.0.0.1:${port}/ws?room=lst&username=alice`);
    const p = await c.next('presence');
    assert.deepEqual(p.users, ['alice']);
    c.close();
  } finally {
    const r = await srv.stop();
    assert.equal(r.code, 0, r.stderr);
  }
});

test('without -c nebula reads ./nebula.conf from its working directory', async () => {
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmp, 'cwd-'));
  writeFileSync(path.join(dir, 'nebula.conf'), makeConfig({ port }));
  const child = spawn(nebulaBin, [], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  child.stdout.on('data', () => {});
  const exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  try {
    await untilListening(port, child);
    const c = await Client.connect(`ws://127.0.0.1:${port}/ws?room=cwd&username=alice`);
    assert.deepEqual((await c.next('presence')).users, ['alice']);
    const closed = c.waitClose(10000);
    child.kill('SIGTERM');
    const r = await exited;
    assert.equal(r.signal, null, stderr);
    assert.equal(r.code, 0, stderr);
    assert.equal((await closed).code, 1001);
  } catch (e) {
    child.kill('SIGKILL');
    throw new Error(`${e.message}\nstderr:\n${stderr}`);
  }
});

test('SIGTERM with clients connected: every client gets 1001 "shutting down", exit 0', async () => {
  const srv = await startServer();
  const clients = [];
  for (const [room, user] of [['s1', 'alice'], ['s1', 'bob'], ['s2', 'carol']]) {
    const c = await Client.connect(srv.wsUrl(room, user));
    await c.next((f) => f.type === 'presence' && f.users.includes(user));
    clients.push(c);
  }
  // one without a room
  const lone = await Client.connect(`ws://127.0.0.1:${srv.port}/ws?username=lone`);
  await lone.next('welcome');
  clients.push(lone);
  const closes = clients.map((c) => c.waitClose(10000));
  const r = await srv.stop('SIGTERM');
  for (const c of await Promise.all(closes)) {
    assert.equal(c.code, 1001);
    assert.match(c.reason, /shutting down/i);
  }
  assert.equal(r.signal, null, r.stderr);
  assert.equal(r.code, 0, r.stderr);
});
