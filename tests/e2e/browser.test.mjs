// End-to-end: the browser client (web/) in headless Chromium against the
// real nebula binary. Two pages chat, presence and join/leave notices,
// rooms and unread markers, name validation (client and server side),
// history on join, reconnect after a server restart (said as such, a gap
// line in the conversation, a one-line header at 1000 px; 1012 from a
// cluster node too), the idle close.
//
// NEBULA_SCREENSHOT=path also writes a picture of two pages chatting
// (docs/screenshot.png is made that way).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { launchBrowser } from '../lib/browser.mjs';
import { startServer } from '../lib/server.mjs';

const WAIT = 15000; // generous: sanitizer builds and a busy CI machine are slow


// Wait for fn(arg) to be true in the page; on timeout say what the page shows.
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

const waitStatus = (page, state) => until(page, `status ${state}`,
  (s) => document.querySelector('#status').dataset.state === s, state);

// A visible item of the log of the room shown (li.msg or li.notice) with this text.
const logItem = (page, cls, text) => page.locator(`#messages ol:not([hidden]) li.${cls}`, { hasText: text });

async function join(page, url, user, room = 'general') {
  await page.goto(url);
  await page.fill('#username', user);
  await page.fill('#room', room);
  await page.click('#join-button');
  await waitStatus(page, 'connected');
  await until(page, `${user} in the user list`, (u) => !!document.querySelector(`#users li[data-user="${u}"]`), user);
}

async function send(page, text) {
  await page.fill('#message-input', text);
  await page.press('#message-input', 'Enter');
}

async function screenshot(pages, file) {
  const shots = await Promise.all(pages.map((p) => p.screenshot()));
  const board = await pages[0].context().newPage();
  await board.setViewportSize({ width: 1560, height: 620 });
  await board.setContent(`<!doctype html><meta charset="utf-8"><body style="margin:0;padding:16px;display:flex;gap:16px;background:#9aa3b5">${
    shots.map((s) => `<img style="border-radius:8px;box-shadow:0 2px 8px #0005" src="data:image/png;base64,${s.toString('base64')}">`).join('')}</body>`);
  writeFileSync(file, await board.screenshot());
  await board.close();
}

test('browser client', { timeout: 60000 }, async (t) => {
  // A missing browser fails the test by name; it never skips it.
  let server = await startServer();
  const browser = await launchBrowser();
  const pageErrors = [];
  const open = async () => {
    const ctx = await browser.newContext({ viewport: { width: 760, height: 580 } });
    const page = await ctx.newPage();
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    return page;
  };
  let stopped;
  try {
    const alice = await open();
    const bob = await open();

    await t.test('alice and bob join general and see each other', async () => {
      await join(alice, server.url, 'alice');
      // bob uses the keyboard only: type, Tab to the (prefilled) room, Tab to Join, Enter.
      await bob.goto(server.url);
      await bob.focus('#username');
      await bob.keyboard.type('bob');
      await bob.keyboard.press('Tab');
      assert.equal(await bob.evaluate(() => document.activeElement.id), 'room');
      assert.equal(await bob.inputValue('#room'), 'general');
      await bob.keyboard.press('Tab');
      assert.equal(await bob.evaluate(() => document.activeElement.id), 'join-button');
      await bob.keyboard.press('Enter');
      await waitStatus(bob, 'connected');
      await waitUsers(alice, ['alice', 'bob']);
      await waitUsers(bob, ['alice', 'bob']);
      await logItem(alice, 'notice', 'bob joined').waitFor({ timeout: WAIT });
      // After joining, focus is in the message box, so Enter sends.
      assert.equal(await bob.evaluate(() => document.activeElement.id), 'message-input');
      // ARIA the screen reader relies on.
      assert.equal(await alice.getAttribute('#messages', 'role'), 'log');
      assert.equal(await alice.getAttribute('#messages', 'aria-live'), 'polite');
      assert.equal(await alice.getAttribute('#status', 'role'), 'status');
    });

    await t.test('a message from alice reaches bob, and bob answers', async () => {
      await send(alice, 'Hello from alice');
      const got = logItem(bob, 'msg', 'Hello from alice');
      await got.waitFor({ timeout: WAIT });
      assert.equal(await got.locator('.sender').textContent(), 'alice');
      assert.equal(await got.locator('.text').textContent(), 'Hello from alice');
      assert.match(await got.locator('time').getAttribute('datetime'), /^\d{4}-\d\d-\d\dT/);
      await logItem(alice, 'msg', 'Hello from alice').waitFor({ timeout: WAIT }); // the echo
      assert.equal(await alice.inputValue('#message-input'), '');
      await bob.keyboard.type('Hi alice! The build is green.');
      await bob.keyboard.press('Enter');
      await logItem(alice, 'msg', 'The build is green').waitFor({ timeout: WAIT });
      if (process.env.NEBULA_SCREENSHOT) await screenshot([alice, bob], process.env.NEBULA_SCREENSHOT);
    });

    await t.test('message text is shown as text, never as HTML', async () => {
      const evil = '<img src=x onerror="window.pwned=1"><b>bold</b>';
      await send(bob, evil);
      const got = logItem(alice, 'msg', 'onerror');
      await got.waitFor({ timeout: WAIT });
      assert.equal(await got.locator('.text').textContent(), evil);
      assert.equal(await alice.locator('#messages img, #messages b').count(), 0);
      assert.equal(await alice.evaluate(() => window.pwned), undefined);
    });

    await t.test('rooms: join another, unread marker, switch by keyboard, leave', async () => {
      await alice.fill('#new-room', 'dev');
      await alice.press('#new-room', 'Enter');
      await until(alice, 'dev shown and joined', () => document.querySelector('#room-title').textContent === '#dev' &&
        document.querySelector('#rooms button[data-room="dev"]:not(.pending)'));
      await waitUsers(alice, ['alice']);
      await send(bob, 'ping in general');
      const tab = alice.locator('#rooms button[data-room="general"] .badge');
      await until(alice, 'unread marker on general', () =>
        document.querySelector('#rooms button[data-room="general"] .badge').textContent.startsWith('1'));
      assert.match(await tab.textContent(), /1\s*unread/);
      await alice.keyboard.press('Alt+ArrowUp'); // previous room: general
      await logItem(alice, 'msg', 'ping in general').waitFor({ timeout: WAIT });
      assert.equal(await tab.textContent(), '');
      await waitUsers(alice, ['alice', 'bob']);
      await alice.click('#rooms button[data-room="dev"]');
      await alice.click('#leave-button');
      assert.equal(await alice.locator('#rooms button[data-room="dev"]').count(), 0);
      assert.equal(await alice.textContent('#room-title'), '#general');
    });

    const carol = await open();

    await t.test('an invalid username is refused in the page, with the reason', async () => {
      await carol.goto(server.url);
      await carol.fill('#username', 'bad name!');
      await carol.click('#join-button');
      const err = carol.locator('#join-error');
      await err.waitFor({ timeout: WAIT });
      assert.match(await err.textContent(), /letters.*digits/);
      assert.equal(await carol.getAttribute('#username', 'aria-invalid'), 'true');
      assert.equal(await carol.isHidden('#chat-view'), true);
      assert.equal(await carol.getAttribute('#status', 'data-state'), 'idle'); // no connection tried
    });

    await t.test('when bob closes his page, alice sees him leave', async () => {
      await bob.context().close();
      await logItem(alice, 'notice', 'bob left').waitFor({ timeout: WAIT });
      await waitUsers(alice, ['alice']);
    });

    await t.test('a taken name is refused by the server; another name then joins and gets history', async () => {
      await carol.fill('#username', 'alice');
      await carol.click('#join-button');
      await until(carol, 'the name-taken message', () => /already taken/.test(document.querySelector('#join-error').textContent));
      assert.equal(await carol.isVisible('#join-form'), true);
      assert.equal(await carol.getAttribute('#status', 'data-state'), 'disconnected'); // and no reconnect loop
      await carol.fill('#username', 'carol');
      await carol.click('#join-button');
      await waitStatus(carol, 'connected');
      await waitUsers(carol, ['alice', 'carol']);
      const old = logItem(carol, 'msg.history', 'Hello from alice');
      await old.waitFor({ timeout: WAIT });
      assert.equal(await old.getAttribute('data-history'), 'true');
      assert.equal(await old.locator('.sender').textContent(), 'alice');
      await logItem(carol, 'divider', 'Earlier messages').waitFor({ timeout: WAIT });
      await waitUsers(alice, ['alice', 'carol']);
    });

    await t.test('after a server restart the pages reconnect and re-join their rooms', async () => {
      await carol.fill('#new-room', 'ops');
      await carol.press('#new-room', 'Enter');
      await until(carol, 'ops joined', () => document.querySelector('#rooms button[data-room="ops"]:not(.pending)'));
      // A desktop width where the longest status must not wrap the header.
      await alice.setViewportSize({ width: 1000, height: 580 });
      const header = () => document.querySelector('header.top').getBoundingClientRect().height;
      const oneLine = await alice.evaluate(header);
      const { port } = server;
      const r = await server.stop();
      assert.equal(r.code, 0, r.stderr);
      // 1001 is in the "reconnect" class, and said as a restart, not a
      // network error; read in the same tick as the state changes.
      const seen = await (await alice.waitForFunction(() => {
        const s = document.querySelector('#status');
        return s.dataset.state === 'reconnecting' && {
          text: s.textContent,
          height: document.querySelector('header.top').getBoundingClientRect().height,
          button: !document.querySelector('#reconnect-button').hidden,
        };
      }, undefined, { timeout: WAIT })).jsonValue();
      assert.equal(seen.text, 'The server restarted, reconnecting…');
      assert.ok(seen.button, 'the "Reconnect now" button is shown');
      assert.equal(seen.height, oneLine, 'the header stays one line at 1000 px');
      // The longest status the client writes (a network loss at the longest
      // backoff), with the longest name, in the same tick: still one line.
      const longest = await alice.evaluate(() => {
        const me = document.querySelector('#me');
        const name = me.textContent;
        me.textContent = 'Signed in as ' + 'x'.repeat(32);
        setStatus('reconnecting', 'Connection lost (network error or server unreachable). Reconnecting in 15 s…');
        const h = document.querySelector('header.top').getBoundingClientRect().height;
        me.textContent = name;
        return h;
      });
      assert.equal(longest, oneLine, 'the header stays one line at 1000 px with the longest status');
      server = await startServer({ port });
      await waitStatus(alice, 'connected');
      await waitStatus(carol, 'connected');
      await until(carol, 'ops re-joined', () => document.querySelector('#rooms button[data-room="ops"]:not(.pending)'));
      await carol.click('#rooms button[data-room="general"]');
      await waitUsers(carol, ['alice', 'carol']);
      await waitUsers(alice, ['alice', 'carol']);
      await send(alice, 'back again');
      await logItem(carol, 'msg', 'back again').waitFor({ timeout: WAIT });
      // The gap is marked once in every room, before what came after it.
      for (const [page, room] of [[alice, 'general'], [carol, 'general'], [carol, 'ops']]) {
        const log = await page.evaluate((name) =>
          [...document.querySelectorAll(`#messages ol[data-room="${name}"] li`)].map((li) => li.className + ': ' + li.textContent), room);
        const gaps = log.filter((x) => /\bgap\b/.test(x));
        assert.equal(gaps.length, 1, `one gap line in #${room}: ${JSON.stringify(log)}`);
        assert.match(gaps[0], /The server restarted at \d/);
        if (room === 'general') assert.ok(log.findIndex((x) => /\bgap\b/.test(x)) < log.findIndex((x) => /back again/.test(x)));
      }
    });

    await t.test('a close 1012 (a node of a cluster restarting) reads as a restart too', async () => {
      const fixtureDir = process.env.NEBULA_FIXTURE_DIR;
      assert.ok(fixtureDir, 'NEBULA_FIXTURE_DIR names the fixture plugins (tests/meson.build sets it)');
      // a broker makes the node one of a cluster: its shutdown closes with 1012
      const node = await startServer({ plugins: { dir: fixtureDir, store: 'none', broker: 'broker-loopback' } });
      const erin = await open();
      try {
        await join(erin, node.url, 'erin', 'cluster');
        const r = await node.stop();
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stderr, /closing every connection with 1012/);
        await until(erin, 'the restart status', () => {
          const s = document.querySelector('#status');
          return s.dataset.state === 'reconnecting' && s.textContent === 'The server restarted, reconnecting…';
        });
        await logItem(erin, 'gap', 'The server restarted at').waitFor({ timeout: WAIT });
      } finally {
        await erin.context().close();
      }
    });

    await t.test('closed for idleness (4408), the page goes back to the join form and stays there', async () => {
      const idle = await startServer({ limits: { idle_timeout_ms: 1000 } });
      try {
        const dave = await open();
        await join(dave, idle.url, 'dave', 'quiet');
        await until(dave, 'the idle message', () => /without messages/.test(document.querySelector('#join-error').textContent));
        assert.equal(await dave.isVisible('#join-form'), true);
        assert.equal(await dave.inputValue('#room'), 'quiet');
        assert.equal(await dave.getAttribute('#status', 'data-state'), 'disconnected'); // no reconnect loop
        await dave.context().close();
      } finally {
        const r = await idle.stop();
        assert.equal(r.code, 0, r.stderr);
      }
    });

    assert.deepEqual(pageErrors, []);
  } finally {
    await browser.close();
    stopped = await server.stop();
  }
  assert.equal(stopped.signal, null);
  assert.equal(stopped.code, 0, stopped.stderr);
});
