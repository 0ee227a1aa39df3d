// Graceful shutdown and a clean exit: SIGTERM closes every client with
// 1001 and exits 0; under valgrind, a session with real traffic leaves no
// leak and no memory error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { startServer } from '../lib/server.mjs';
import { Client } from '../lib/client.mjs';

async function exercise(srv) {
  const a = await Client.connect(srv.wsUrl('general', 'alice'));
  const b = await Client.connect(srv.wsUrl('general', 'bob'));
  await a.next((f) => f.type === 'presence' && f.users.length === 2, 20000);
  a.send({ type: 'message', room: 'general', content: 'hello' });
  await b.next((f) => f.type === 'message' && f.content === 'hello', 20000);
  b.send({ type: 'join', room: 'dev' });
  await b.next((f) => f.type === 'presence' && f.room === 'dev', 20000);
  b.send('{not json');
  await b.next('error', 20000);
  b.send({ type: 'leave', room: 'dev' });
  await b.next((f) => f.type === 'leave' && f.room === 'dev', 20000);
  const res = await fetch(`${srv.url}/metrics`);
  assert.equal(res.status, 200);
  return [a, b];
}

test('SIGTERM closes every client with 1001 and exits 0', async () => {
  const srv = await startServer();
  const clients = await exercise(srv);
  const closes = clients.map((c) => c.waitClose(10000));
  const r = await srv.stop('SIGTERM');
  for (const c of await Promise.all(closes)) {
    assert.equal(c.code, 1001);
    assert.match(c.reason, /shutting down/);
  }
  assert.equal(r.signal, null);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /shutting down/);
});

function haveValgrind() {
  try { execFileSync('valgrind', ['--version']); return true; } catch { return false; }
}

test('no leak and no memory error under valgrind', {
  skip: process.env.NEBULA_SANITIZE && process.env.NEBULA_SANITIZE !== 'none'
    ? 'sanitizer build (valgrind runs on the plain build)'
    : !haveValgrind() && 'valgrind is not installed',
  timeout: 240000,
}, async () => {
  const srv = await startServer({
    wrapper: ['valgrind', '--quiet', '--leak-check=full', '--show-leak-kinds=definite,indirect',
      '--errors-for-leak-kinds=definite,indirect', '--error-exitcode=99'],
    env: { NEBULA_NO_DLCLOSE: '1' },
    startTimeoutMs: 60000,
  });
  const clients = await exercise(srv);
  const closes = clients.map((c) => c.waitClose(60000));
  const r = await srv.stop('SIGTERM', 120000);
  await Promise.all(closes);
  assert.equal(r.code, 0, `valgrind reported problems:\n${r.stderr}`);
});
