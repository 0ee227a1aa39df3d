// End-to-end: the admin dashboard (web/admin/) in headless Chromium
// against the real nebula binary. The page asks for the token, refuses a
// wrong one, then follows the node's WebSocket feed: the connected-clients
// tile changes when a chat client connects and leaves, with no reload and
// no polling of /metrics. Without [admin] token every /admin path is 404.
//
// NEBULA_ADMIN_SCREENSHOT=path also writes a picture of the live page
// (docs/admin.png is made that way).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { launchBrowser } from '../lib/browser.mjs';
import { Client } from '../lib/client.mjs';
import { startServer } from '../lib/server.mjs';

const WAIT = 15000;
const TOKEN = 'e2e-admin-token-0123456789';

async function until(page, what, fn, arg) {
  try {
    await page.waitForFunction(fn, arg, { timeout: WAIT });
  } catch (e) {
    const seen = await page.evaluate(() => ({
      status: document.querySelector('#status')?.textContent,
      connections: document.querySelector('#connections')?.textContent,
      tokenError: document.querySelector('#token-error')?.textContent,
    })).catch(() => 'page gone');
    throw new Error(`timed out waiting for ${what}; page shows ${JSON.stringify(seen)}\n${e.message}`);
  }
}

const clients = (page, n) => until(page, `${n} connected clients`,
  (want) => document.querySelector('#connections').textContent === want, String(n));

test('without [admin] token the dashboard and its feed are 404', async () => {
  const srv = await startServer();
  try {
    for (const p of ['/admin/', '/admin/snapshot?token=x', '/admin/admin.js']) {
      assert.equal((await fetch(srv.url + p)).status, 404, p);
    }
    const c = await Client.connect(`ws://127.0.0.1:${srv.port}/admin/feed?token=x`).catch((e) => e);
    assert.match(String(c.message), /HTTP 404/);
  } finally {
    await srv.stop();
  }
});

test('the token is checked: absent 401, wrong 403; the feed likewise', async () => {
  const srv = await startServer({ extra: `[admin]\ntoken = "${TOKEN}"\n` });
  try {
    assert.equal((await fetch(`${srv.url}/admin/snapshot`)).status, 401);
    assert.equal((await fetch(`${srv.url}/admin/snapshot?token=nope`)).status, 403);
    const ok = await fetch(`${srv.url}/admin/snapshot?token=${TOKEN}`);
    assert.equal(ok.status, 200);
    const snap = await ok.json();
    assert.equal(snap.connections, 0);
    assert.equal(snap.cluster.nodes[0].self, true);
    const bad = await Client.connect(`ws://127.0.0.1:${srv.port}/admin/feed?token=nope`).catch((e) => e);
    assert.match(String(bad.message), /HTTP 403/);
    // The feed pushes a snapshot at once, then about once a second.
    const feed = await Client.connect(`ws://127.0.0.1:${srv.port}/admin/feed?token=${TOKEN}`);
    const first = await feed.next((f) => typeof f.connections === 'number');
    const chat = await Client.connect(srv.wsUrl('r', 'zed'));
    await chat.next('welcome');
    const later = await feed.next((f) => f.connections === 1, 4000);
    assert.ok(later.ts > first.ts);
    assert.equal(later.rooms, 1);
    feed.send('ignored'); // the feed only listens
    await feed.next((f) => typeof f.connections === 'number', 3000);
    chat.close();
    feed.close();
  } finally {
    const r = await srv.stop();
    assert.equal(r.code, 0, r.stderr);
  }
});

test('the dashboard shows the node live: clients connecting and leaving', async () => {
  const srv = await startServer({
    extra: `[admin]\ntoken = "${TOKEN}"\n`, limits: { messages_per_second: 0 }, server: { node_id: 'node-a' },
  });
  const browser = await launchBrowser();
  const chats = [];
  try {
    const ctx = await browser.newContext({ viewport: { width: 1000, height: 720 } });
    const page = await ctx.newPage();
    const requests = [];
    page.on('request', (r) => requests.push(new URL(r.url()).pathname));
    await page.goto(`${srv.url}/admin/`);
    // A wrong token is refused on the page.
    await page.fill('#token', 'wrong-token');
    await page.press('#token', 'Enter');
    await until(page, 'the wrong-token message', () => document.querySelector('#token-error').textContent === 'Wrong token.');
    await page.fill('#token', TOKEN);
    await page.press('#token', 'Enter');
    await until(page, 'live status', () => document.querySelector('#status').dataset.state === 'live');
    await until(page, 'the token form gone', () => getComputedStyle(document.querySelector('#token-form')).display === 'none');
    await clients(page, 0);
    chats.push(await Client.connect(srv.wsUrl('general', 'alice')));
    await clients(page, 1);
    chats.push(await Client.connect(srv.wsUrl('general', 'bob')));
    chats.push(await Client.connect(srv.wsUrl('dev', 'carol')));
    await clients(page, 3);
    await until(page, '2 rooms', () => document.querySelector('#rooms').textContent === '2');
    for (let i = 0; i < 40; i++) chats[0].send({ type: 'message', room: 'general', content: `hi ${i}` });
    await until(page, 'a message rate', () => parseFloat(document.querySelector('#rate').textContent) > 0);
    await until(page, 'a p99', () => /ms$/.test(document.querySelector('#p99').textContent));
    assert.match(await page.textContent('#store'), /^none$|: up$/);
    assert.match(await page.textContent('#nodes'), /this node/);
    if (process.env.NEBULA_ADMIN_SCREENSHOT) writeFileSync(process.env.NEBULA_ADMIN_SCREENSHOT, await page.screenshot({ fullPage: true }));
    chats.pop().close();
    await clients(page, 2);
    // Live over the feed, not by polling: no request for /metrics, and one
    // snapshot request per token tried.
    assert.ok(!requests.includes('/metrics'), requests.join(' '));
    assert.equal(requests.filter((p) => p === '/admin/snapshot').length, 2);
    // The token in the URL works too (and leaves the address bar).
    const p2 = await ctx.newPage();
    await p2.goto(`${srv.url}/admin/?token=${TOKEN}`);
    await clients(p2, 2);
    assert.equal(new URL(p2.url()).search, '');
  } finally {
    for (const c of chats) c.close();
    await browser.close();
    const r = await srv.stop();
    assert.equal(r.code, 0, r.stderr);
  }
});
