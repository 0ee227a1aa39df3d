// End-to-end, both codecs: a JSON browser page, a Protobuf browser page
// (?codec=proto, protobufjs's minimal runtime vendored into web/vendor/ by
// `make build`) and a Protobuf client written from proto/nebula.proto
// alone (tests/lib/proto_client.mjs) chat in one room of one server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { launchBrowser } from '../lib/browser.mjs';
import { startServer, repoRoot } from '../lib/server.mjs';
import { ProtoClient } from '../lib/proto_client.mjs';

const RUNTIME = path.join(repoRoot, 'web', 'vendor', 'protobuf.min.js');
const WAIT = 15000;

async function until(page, what, fn, arg) {
  try {
    await page.waitForFunction(fn, arg, { timeout: WAIT });
  } catch (e) {
    const seen = await page.evaluate(() => ({
      status: document.querySelector('#status')?.textContent,
      users: [...document.querySelectorAll('#users li')].map((li) => li.dataset.user),
      log: [...document.querySelectorAll('#messages ol:not([hidden]) li')].map((li) => li.textContent),
      joinError: document.querySelector('#join-error')?.textContent,
    })).catch(() => 'page gone');
    throw new Error(`timed out waiting for ${what}; page shows ${JSON.stringify(seen)}\n${e.message}`);
  }
}

const waitUsers = (page, list) => until(page, `users ${list}`,
  (want) => JSON.stringify([...document.querySelectorAll('#users li')].map((li) => li.dataset.user)) === want,
  JSON.stringify(list));
const logItem = (page, cls, text) => page.locator(`#messages ol:not([hidden]) li.${cls}`, { hasText: text });

async function join(page, url, user) {
  await page.goto(url);
  await page.fill('#username', user);
  await page.fill('#room', 'mixed');
  await page.click('#join-button');
  await until(page, 'connected', () => document.querySelector('#status').dataset.state === 'connected');
}

async function send(page, text) {
  await page.fill('#message-input', text);
  await page.press('#message-input', 'Enter');
}

test('a JSON page, a Protobuf page and a Protobuf client chat in one room', { timeout: 60000 }, async () => {
  assert.ok(existsSync(RUNTIME), `${RUNTIME} is missing: \`make build\` copies it from npm (web-deps/)`);
  const server = await startServer({
    plugins: { codecs: ['codec-json', 'codec-protobuf'] },
    limits: { messages_per_second: 1, burst: 3 },
  });
  const browser = await launchBrowser();
  const pageErrors = [];
  const open = async () => {
    const page = await (await browser.newContext({ viewport: { width: 760, height: 580 } })).newPage();
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    return page;
  };
  let stranger;
  try {
    const jay = await open();
    const pia = await open();

    await join(jay, server.url, 'jay'); // the default: JSON
    await join(pia, `${server.url}/?codec=proto`, 'pia');
    assert.equal(await pia.inputValue('#codec'), 'proto', '?codec=proto selects Protobuf');
    assert.equal(await jay.inputValue('#codec'), 'json');
    assert.equal(await pia.evaluate(() => state.ws.protocol), 'nebula.proto.v1');
    assert.equal(await pia.evaluate(() => state.ws.binaryType), 'arraybuffer');
    assert.equal(await jay.evaluate(() => state.ws.protocol), 'nebula.json.v1');

    stranger = await ProtoClient.connect(server.wsUrl('mixed', 'sam'));
    for (const p of [jay, pia]) await waitUsers(p, ['jay', 'pia', 'sam']);

    await send(jay, 'hello from the JSON page');
    await send(pia, 'hello from the Protobuf page ✓');
    stranger.send({ type: 'message', room: 'mixed', content: 'hello from a stranger 😀' });
    for (const p of [jay, pia]) {
      await logItem(p, 'msg', 'hello from the JSON page').waitFor({ timeout: WAIT });
      await logItem(p, 'msg', 'hello from the Protobuf page ✓').waitFor({ timeout: WAIT });
      await logItem(p, 'msg', 'hello from a stranger 😀').waitFor({ timeout: WAIT });
    }
    const got = [];
    while (got.length < 3) {
      const f = await stranger.next('message');
      got.push(`${f.sender}: ${f.content}`);
    }
    assert.deepEqual(got.sort(), ['jay: hello from the JSON page', 'pia: hello from the Protobuf page ✓',
      'sam: hello from a stranger 😀']);
    // The same order on both pages.
    const order = (p) => p.evaluate(() => [...document.querySelectorAll('#messages ol:not([hidden]) li.msg .text')]
      .map((e) => e.textContent));
    assert.deepEqual(await order(pia), await order(jay));

    // Presence and leave reach the Protobuf page.
    stranger.send({ type: 'leave', room: 'mixed' });
    await waitUsers(pia, ['jay', 'pia']);
    await logItem(pia, 'notice', 'sam left').waitFor({ timeout: WAIT });
    // An error frame is shown on the Protobuf page too: past the burst,
    // rate_limited.
    for (let i = 0; i < 6; i++) await send(pia, `fast ${i}`);
    await logItem(pia, 'notice', 'rate_limited').first().waitFor({ timeout: WAIT });
    assert.deepEqual(pageErrors, []);
  } finally {
    stranger?.close();
    await browser.close();
    const r = await server.stop();
    assert.equal(r.code, 0, r.stderr);
  }
});
