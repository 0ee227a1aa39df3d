// End-to-end: a server restart leaves no hole in the browser's
// conversation. Two pages (one JSON, one Protobuf) chat in two rooms; the
// server is stopped with SIGTERM (close 1001, said as a restart) and
// started again on the same port with the same store file; while the pages
// are still away, another client sends to both rooms; the pages come back
// with `since` and `epoch` (in the URL for the first room, in a join frame
// for the other) and show every message exactly once, in order, after one
// gap line.
//
// The pages reach the server through a small TCP relay of this test, which
// can refuse new connections: that holds the pages away for the downtime
// window however fast the server restarts.
//
// Needs a store that keeps its data across processes: NEBULA_TEST_STORE
// (and NEBULA_TEST_STORE_CONF for its section) as tests/lib/server.mjs
// reads them, e.g. store-sqlite or store-aof. The fixture store-memory
// forgets everything on exit, and without a store nothing survives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { launchBrowser } from '../lib/browser.mjs';
import { startServer, freePort, makeConfig, matrix, repoRoot } from '../lib/server.mjs';
import { Client } from '../lib/client.mjs';
import { toJsonShape } from '../lib/proto_client.mjs';

const RUNTIME = path.join(repoRoot, 'web', 'vendor', 'protobuf.min.js');
const WAIT = 15000;

// A TCP relay to the server's port that can refuse new connections.
async function relay(targetPort) {
  const port = await freePort();
  const sockets = new Set();
  const r = { port, refusing: false };
  const srv = net.createServer((down) => {
    if (r.refusing) return down.destroy();
    const up = net.connect(targetPort, '127.0.0.1');
    for (const s of [down, up]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => { down.destroy(); up.destroy(); });
    }
    down.pipe(up);
    up.pipe(down);
  });
  await new Promise((resolve) => srv.listen(port, '127.0.0.1', resolve));
  r.close = () => new Promise((resolve) => {
    for (const s of sockets) s.destroy();
    srv.close(resolve);
  });
  return r;
}

async function until(page, what, fn, arg) {
  try {
    await page.waitForFunction(fn, arg, { timeout: WAIT });
  } catch (e) {
    const seen = await page.evaluate(() => ({
      status: document.querySelector('#status')?.textContent,
      logs: Object.fromEntries([...document.querySelectorAll('#messages ol')].map((ol) =>
        [ol.dataset.room, [...ol.querySelectorAll('li')].map((li) => li.textContent)])),
    })).catch(() => 'page gone');
    throw new Error(`timed out waiting for ${what}; page shows ${JSON.stringify(seen)}\n${e.message}`);
  }
}

const waitStatus = (page, state) => until(page, `status ${state}`,
  (s) => document.querySelector('#status').dataset.state === s, state);
const waitJoined = (page, room) => until(page, `#${room} joined`,
  (r) => !!document.querySelector(`#rooms button[data-room="${r}"]:not(.pending)`), room);

// The texts of a room's messages, in the order shown.
const texts = (page, room) => page.evaluate((r) =>
  [...document.querySelectorAll(`#messages ol[data-room="${r}"] li.msg .text`)].map((p) => p.textContent), room);
// Every line of a room's log: class and text.
const lines = (page, room) => page.evaluate((r) =>
  [...document.querySelectorAll(`#messages ol[data-room="${r}"] li`)].map((li) => `${li.className}: ${li.textContent}`), room);

async function send(page, text) {
  await page.fill('#message-input', text);
  await page.press('#message-input', 'Enter');
}

async function showRoom(page, room) {
  await page.click(`#rooms button[data-room="${room}"]`);
  await until(page, `#${room} shown`, (r) => document.querySelector('#room-title').textContent === `#${r}`, room);
}

const waitText = (page, room, text) => until(page, `"${text}" in #${room}`,
  ([r, t]) => [...document.querySelectorAll(`#messages ol[data-room="${r}"] li.msg .text`)].some((p) => p.textContent === t),
  [room, text]);

test('a server restart: the pages resume with since and epoch and show every message once, in order', { timeout: 120000 }, async () => {
  assert.ok(existsSync(RUNTIME), `${RUNTIME} is missing: make build copies protobufjs's runtime there`);
  assert.ok(matrix.store !== 'none' && matrix.store !== 'store-memory',
    `this test needs a store that keeps its data across a restart: set NEBULA_TEST_STORE to one ` +
    `(e.g. store-sqlite or store-aof, with NEBULA_TEST_STORE_CONF for its section); it is "${matrix.store}"`);

  const dir = mkdtempSync(path.join(tmpdir(), 'nebula-resume-'));
  const port = await freePort();
  const config = makeConfig({ port, plugins: { codecs: ['codec-json', 'codec-protobuf'] } });
  let server = await startServer({ port, dir, config });
  const proxy = await relay(port);
  const browser = await launchBrowser();
  const pageErrors = [];
  let zed;
  try {
    // alice speaks JSON, bob Protobuf; each records its socket URLs and sent frames.
    const pages = [];
    for (const [user, codec] of [['alice', 'json'], ['bob', 'proto']]) {
      const ctx = await browser.newContext({ viewport: { width: 1000, height: 600 } });
      const page = await ctx.newPage();
      page.on('pageerror', (e) => pageErrors.push(String(e)));
      const wire = { urls: [], sent: [] };
      page.on('websocket', (ws) => {
        wire.urls.push(ws.url());
        ws.on('framesent', (f) => wire.sent.push(typeof f.payload === 'string' ? JSON.parse(f.payload) : toJsonShape(f.payload)));
      });
      await page.goto(`http://127.0.0.1:${proxy.port}/?codec=${codec}`);
      await page.fill('#username', user);
      await page.fill('#room', 'resume');
      await page.click('#join-button');
      await waitStatus(page, 'connected');
      await waitJoined(page, 'resume');
      await page.fill('#new-room', 'side');
      await page.press('#new-room', 'Enter');
      await waitJoined(page, 'side');
      await showRoom(page, 'resume');
      pages.push({ user, page, wire });
    }
    const [alice, bob] = pages;

    // Before the restart.
    await send(alice.page, 'a1');
    await waitText(bob.page, 'resume', 'a1');
    await send(bob.page, 'b1');
    await showRoom(alice.page, 'side');
    await send(alice.page, 'side-a1');
    for (const { page } of pages) {
      await waitText(page, 'resume', 'b1');
      await waitText(page, 'side', 'side-a1');
    }

    // The restart: the pages are held away by the relay from now on.
    proxy.refusing = true;
    const r = await server.stop();
    assert.equal(r.code, 0, r.stderr);
    for (const { page } of pages) {
      await until(page, 'the restart status', () => {
        const s = document.querySelector('#status');
        return s.dataset.state === 'reconnecting' && s.textContent === 'The server restarted, reconnecting…';
      });
    }
    server = await startServer({ port, dir, config });

    // Right after the restart, while the pages are away, zed talks.
    zed = await Client.connect(`ws://127.0.0.1:${port}/ws?room=resume&username=zed`);
    const joined = await zed.next((f) => f.type === 'join' && f.sender === 'zed', WAIT);
    const kept = zed.frames.filter((f) => f.type === 'history').map((f) => f.content);
    assert.deepEqual(kept, ['a1', 'b1'], `the store (${matrix.store}) kept #resume across the restart`);
    for (const t of ['z1', 'z2', 'z3']) zed.send({ type: 'message', room: 'resume', content: t });
    zed.send({ type: 'join', room: 'side' });
    await zed.next((f) => f.type === 'join' && f.room === 'side' && f.sender === 'zed', WAIT);
    zed.send({ type: 'message', room: 'side', content: 'side-z1' });
    await zed.next((f) => f.type === 'message' && f.content === 'side-z1', WAIT);
    assert.ok(joined.seq >= 2, 'the room kept its seq across the restart');

    // The pages come back ("Reconnect now"), resuming where they were.
    // (count each page's connections before the relay lets them through:
    // a backoff timer may reconnect a page at once)
    const before = pages.map(({ wire }) => wire.urls.length);
    proxy.refusing = false;
    for (const [i, { page, wire }] of pages.entries()) {
      // Its backoff timer may have fired already; if not, the button.
      await page.evaluate(() => {
        const b = document.querySelector('#reconnect-button');
        if (!b.hidden) b.click();
      });
      await waitStatus(page, 'connected');
      await waitJoined(page, 'resume');
      await waitJoined(page, 'side');
      assert.ok(wire.urls.length > before[i], 'the page connected again');
    }
    await showRoom(alice.page, 'resume');
    await send(alice.page, 'after');

    for (const { user, page, wire } of pages) {
      await waitText(page, 'resume', 'after');
      await waitText(page, 'side', 'side-z1');
      // Every message once, in order; the gap line before what came in the gap.
      assert.deepEqual(await texts(page, 'resume'), ['a1', 'b1', 'z1', 'z2', 'z3', 'after'], `${user}: #resume`);
      assert.deepEqual(await texts(page, 'side'), ['side-a1', 'side-z1'], `${user}: #side`);
      for (const room of ['resume', 'side']) {
        const log = await lines(page, room);
        const gaps = log.filter((l) => /\bgap\b/.test(l));
        assert.equal(gaps.length, 1, `${user}: one gap line in #${room}: ${JSON.stringify(log)}`);
        assert.match(gaps[0], /The server restarted at \d/);
        const first = room === 'resume' ? 'z1' : 'side-z1';
        assert.ok(log.findIndex((l) => /\bgap\b/.test(l)) < log.findIndex((l) => l.endsWith(first)),
          `${user}: the gap line comes before ${first} in #${room}`);
        assert.equal(log.filter((l) => /could not be recovered/.test(l)).length, 0,
          `${user}: nothing reported lost in #${room}: ${JSON.stringify(log)}`);
      }
      // What went on the wire: since and epoch in the URL of the last
      // socket (#resume) and in its join frame for #side.
      const url = new URL(wire.urls[wire.urls.length - 1]);
      assert.equal(url.searchParams.get('room'), 'resume');
      assert.ok(Number(url.searchParams.get('since')) >= 2, `${user}: since in ${url}`);
      assert.ok(url.searchParams.get('epoch'), `${user}: epoch in ${url}`);
      const sideJoin = wire.sent.filter((f) => f.type === 'join' && f.room === 'side').pop();
      assert.ok(sideJoin && sideJoin.since >= 1 && sideJoin.epoch,
        `${user}: the join frame of #side carries since and epoch: ${JSON.stringify(sideJoin)}`);
    }
    assert.deepEqual(pageErrors, []);
  } finally {
    if (zed) zed.close();
    await browser.close();
    await proxy.close();
    const r = await server.stop();
    rmSync(dir, { recursive: true, force: true });
    assert.equal(r.code, 0, r.stderr);
  }
});
