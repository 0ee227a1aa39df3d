// Protection rules: slow consumers, the rate limit, heartbeats, and the
// open-file limit. Each case checks that the others are not affected.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { Client } from '../lib/client.mjs';
import { rawConnect, frame } from '../lib/rawws.mjs';

async function metric(srv, name) {
  const text = await (await fetch(`${srv.url}/metrics`)).text();
  const m = text.match(new RegExp(`^${name} (\\d+)$`, 'm'));
  return m ? Number(m[1]) : NaN;
}

async function until(cond, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timeout: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('a client that never reads is dropped; the room keeps flowing', { timeout: 60000 }, async () => {
  const srv = await startServer({ limits: { messages_per_second: 0, bytes_per_second: 0, max_queued_bytes: 4194304 } });
  try {
    const a = await Client.connect(srv.wsUrl('busy', 'alice'));
    const b = await Client.connect(srv.wsUrl('busy', 'bob'));
    const slow = await rawConnect(srv.port, '/ws?room=busy&username=slow', { noRead: true });
    await a.next((f) => f.type === 'presence' && f.users.includes('slow'));
    const big = 'x'.repeat(32000);
    // ~26 MB towards the reader that never reads: far beyond the kernel's
    // socket buffers plus max_queued_bytes. Sent in batches that both
    // readers take in full (and in order) before the next, so that only
    // the one who never reads falls behind.
    for (let i = 0; i < 800; i += 20) {
      for (let j = i; j < i + 20; j++) a.send({ type: 'message', room: 'busy', content: `${j} ${big}` });
      for (let j = i; j < i + 20; j++) {
        for (const c of [a, b]) {
          const m = await c.next('message', 20000);
          assert.ok(m.content.startsWith(`${j} `), `message ${j} out of order`);
        }
      }
    }
    await a.next((f) => f.type === 'leave' && f.sender === 'slow', 30000);
    assert.equal(await metric(srv, 'nebula_slow_consumers_total'), 1);
    a.send({ type: 'message', room: 'busy', content: 'still flowing' });
    await b.next((f) => f.type === 'message' && f.content === 'still flowing');
    slow.destroy();
    a.close(); b.close();
  } finally {
    const r = await srv.stop();
    assert.equal(r.code, 0, r.stderr);
  }
});

test('a client over the rate limit gets rate_limited; others are unaffected', async () => {
  const srv = await startServer({ limits: { messages_per_second: 5, burst: 5, max_errors: 1000 } });
  try {
    const spam = await Client.connect(srv.wsUrl('r', 'spammer'));
    const ok = await Client.connect(srv.wsUrl('r', 'calm'));
    await ok.next((f) => f.type === 'presence' && f.users.length === 2);
    for (let i = 0; i < 30; i++) spam.send({ type: 'message', room: 'r', content: `spam ${i}` });
    const err = await spam.next('error');
    assert.equal(err.code, 'rate_limited');
    // The burst passed (5), most of the rest did not.
    await new Promise((r) => setTimeout(r, 300));
    const passed = ok.frames.filter((f) => f.type === 'message' && f.sender === 'spammer').length;
    assert.ok(passed >= 5 && passed <= 8, `passed ${passed}`);
    ok.send({ type: 'message', room: 'r', content: 'calm message' });
    await spam.next((f) => f.type === 'message' && f.content === 'calm message');
    assert.ok(await metric(srv, 'nebula_rate_limited_total') >= 20);
    spam.close(); ok.close();
  } finally {
    const r = await srv.stop();
    assert.equal(r.code, 0, r.stderr);
  }
});

test('sustained abuse of the rate limit closes with 4429', async () => {
  const srv = await startServer({ limits: { messages_per_second: 2, burst: 2, max_errors: 10 } });
  try {
    const spam = await Client.connect(srv.wsUrl('r', 'spammer'));
    for (let i = 0; i < 40; i++) spam.send({ type: 'message', room: 'r', content: `spam ${i}` });
    const c = await spam.waitClose(5000);
    assert.equal(c.code, 4429);
  } finally {
    const r = await srv.stop();
    assert.equal(r.code, 0, r.stderr);
  }
});

test('a client that never answers pings is reaped by the heartbeat', { timeout: 30000 }, async () => {
  const srv = await startServer({
    extra: '[transport-ws]\nping_interval_ms = 200\npong_timeout_ms = 700\n',
  });
  try {
    const a = await Client.connect(srv.wsUrl('hb', 'alice')); // ws answers pings itself
    const mute = await rawConnect(srv.port, '/ws?room=hb&username=mute');
    mute.on('data', () => {}); // reads, but never sends a pong
    await a.next((f) => f.type === 'presence' && f.users.includes('mute'));
    const t0 = Date.now();
    await a.next((f) => f.type === 'leave' && f.sender === 'mute', 10000);
    assert.ok(Date.now() - t0 < 5000);
    // alice, who answers pings, is still connected after several intervals
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(a.closed, null);
    a.send({ type: 'message', room: 'hb', content: 'alive' });
    await a.next((f) => f.type === 'message' && f.content === 'alive');
    mute.destroy();
    a.close();
  } finally {
    const r = await srv.stop();
    assert.equal(r.code, 0, r.stderr);
  }
});

test('at the open-file limit, new clients are refused and existing ones keep chatting', { timeout: 60000 }, async () => {
  // 64 descriptors: a few for the process, the rest for clients.
  const srv = await startServer({
    wrapper: ['sh', '-c', 'ulimit -n 64 && exec "$0" "$@"'],
    server: { io_threads: 1 },
  });
  try {
    const a = await Client.connect(srv.wsUrl('fd', 'alice'));
    const b = await Client.connect(srv.wsUrl('fd', 'bob'));
    await a.next((f) => f.type === 'presence' && f.users.length === 2);
    const extra = [];
    let refused = 0;
    for (let i = 0; i < 80; i++) {
      try { extra.push(await Client.connect(srv.wsUrl('other', `u${i}`))); } catch { refused++; }
    }
    assert.ok(refused > 0, 'some connections should be refused at the limit');
    a.send({ type: 'message', room: 'fd', content: 'still here' });
    await b.next((f) => f.type === 'message' && f.content === 'still here', 5000);
    for (const c of extra) c.close();
    // Once descriptors are free again, new clients get in.
    await until(async () => {
      try { const c = await Client.connect(srv.wsUrl('fd', 'carol')); c.close(); return true; } catch { return false; }
    }, 10000, 'a new client after the others left');
    const { stderr } = srv.output();
    const lines = stderr.split('\n').filter((l) => /descriptor|EMFILE|open files/i.test(l));
    assert.ok(lines.length >= 1 && lines.length <= 3, `logged ${lines.length} times:\n${lines.join('\n')}`);
    a.close(); b.close();
  } finally {
    const r = await srv.stop();
    assert.equal(r.code, 0, r.stderr);
  }
});

test('frames still go out after a client closes its reading side half-way', async () => {
  // A raw client sends a message and closes: the server must not crash on
  // writing to it, and the others see it leave.
  const srv = await startServer();
  try {
    const a = await Client.connect(srv.wsUrl('h', 'alice'));
    const raw = await rawConnect(srv.port, '/ws?room=h&username=ghost');
    await a.next((f) => f.type === 'presence' && f.users.includes('ghost'));
    raw.write(frame(1, JSON.stringify({ type: 'message', room: 'h', content: 'boo' })));
    raw.end();
    await a.next((f) => f.type === 'message' && f.content === 'boo');
    await a.next((f) => f.type === 'leave' && f.sender === 'ghost', 5000);
    a.close();
  } finally {
    const r = await srv.stop();
    assert.equal(r.code, 0, r.stderr);
  }
});

test('in a room larger than presence_batch_above, presence is batched', async () => {
  const srv = await startServer({ server: { presence_batch_above: 2, presence_interval_ms: 500 } });
  try {
    const first = await Client.connect(srv.wsUrl('big', 'u0'));
    await first.next((f) => f.type === 'presence' && f.users.length === 1);
    const names = Array.from({ length: 8 }, (_, i) => `u${i + 1}`);
    const others = await Promise.all(names.map((n) => Client.connect(srv.wsUrl('big', n))));
    const all = ['u0', ...names].sort();
    // every join is still reported at once, one event each
    for (const n of names) await first.next((f) => f.type === 'join' && f.sender === n, 5000);
    // the user list comes as it is after the burst, in fewer frames than joins
    const last = await first.next((f) => f.type === 'presence' && f.users.length === all.length, 5000);
    assert.deepEqual(last.users, all);
    const earlier = first.frames.filter((f) => f.type === 'presence').length;
    assert.ok(earlier + 1 < names.length, `${earlier + 1} presence frames for ${names.length} joins`);
    for (const c of others) {
      const p = await c.next((f) => f.type === 'presence' && f.users.length === all.length, 5000);
      assert.deepEqual(p.users, all);
    }
    // rooms at or under the threshold keep one presence per join
    const a = await Client.connect(srv.wsUrl('small', 'a'));
    await a.next((f) => f.type === 'presence' && f.users.length === 1);
    const b = await Client.connect(srv.wsUrl('small', 'b'));
    await a.next((f) => f.type === 'presence' && f.users.length === 2, 300);
    for (const c of [first, ...others, a, b]) c.close();
  } finally {
    const r = await srv.stop();
    assert.equal(r.code, 0, r.stderr);
  }
});

test('a connection that sends no message for idle_timeout_ms is closed with 4408; a chatting one stays', { timeout: 30000 }, async () => {
  const srv = await startServer({
    // max_errors 2: the lurker's two mistakes plus the idle_timeout error
    // would be 3, so a 4429 here means idle_timeout was counted as abuse
    limits: { idle_timeout_ms: 1000, max_errors: 2 },
    // pings every 200 ms, answered by the ws client: pongs are no activity
    extra: '[transport-ws]\nping_interval_ms = 200\npong_timeout_ms = 2000\n',
  });
  let timer;
  try {
    const t0 = Date.now();
    const lurker = await Client.connect(srv.wsUrl('idle', 'lurker'));
    const chatty = await Client.connect(srv.wsUrl('idle', 'chatty'));
    lurker.send('{not json');
    lurker.send('{not json');
    let n = 0;
    timer = setInterval(() => chatty.send({ type: 'message', room: 'idle', content: `tick ${n++}` }), 300);

    const err = await lurker.next((f) => f.type === 'error' && f.code !== 'bad_json', 3000);
    assert.equal(err.code, 'idle_timeout');
    assert.match(err.content, /inactivity/);
    const c = await lurker.waitClose(2000);
    assert.equal(c.code, 4408);
    const dt = Date.now() - t0;
    assert.ok(dt >= 900 && dt <= 2500, `closed after ${dt} ms`);
    assert.equal(lurker.frames.filter((f) => f.code === 'bad_json').length, 2);
    await chatty.next((f) => f.type === 'leave' && f.sender === 'lurker', 2000);

    await new Promise((r) => setTimeout(r, Math.max(0, 3000 - (Date.now() - t0))));
    assert.equal(chatty.closed, null, 'the chatting client is still connected');
    assert.ok(!chatty.frames.some((f) => f.type === 'error'));
    // and its messages still flow
    const next = n;
    await chatty.next((f) => f.type === 'message' && f.content === `tick ${next}`, 3000);
    assert.equal(await metric(srv, 'nebula_idle_timeouts_total'), 1);
    clearInterval(timer);
    chatty.close();
  } finally {
    clearInterval(timer);
    const r = await srv.stop();
    assert.equal(r.code, 0, r.stderr);
  }
});

test('garbage does not keep a connection alive; a message that gets an error does', { timeout: 60000 }, async () => {
  // Under valgrind the server runs many times slower: a longer limit keeps
  // the honest client's 300 ms messages well inside it.
  const idle = (process.env.NEBULA_WRAPPER || '').includes('valgrind') ? 3000 : 1000;
  const srv = await startServer({ limits: { idle_timeout_ms: idle, max_errors: 1000 } });
  const timers = [];
  try {
    const t0 = Date.now();
    const bot = await Client.connect(srv.wsUrl('g', 'bot'));
    // no room: each message gets not_joined, but is a valid client type
    const stray = await Client.connect(srv.wsUrl(null, 'stray'));
    let i = 0;
    // invalid JSON, and valid JSON of a type clients may not send
    timers.push(setInterval(() => bot.send(i++ % 2 ? '{not json' : { type: 'presence', room: 'g' }), 300));
    timers.push(setInterval(() => stray.send({ type: 'message', room: 'elsewhere', content: 'hi' }), 300));
    const err = await bot.next((f) => f.type === 'error' && f.code === 'idle_timeout', 3 * idle);
    assert.match(err.content, /inactivity/);
    const c = await bot.waitClose(2 * idle);
    assert.equal(c.code, 4408);
    const dt = Date.now() - t0;
    assert.ok(dt >= 0.9 * idle && dt <= 2.5 * idle, `closed after ${dt} ms`);
    // the garbage was read and answered, not ignored
    assert.ok(bot.frames.some((f) => f.code === 'bad_json'));
    assert.ok(bot.frames.some((f) => f.code === 'unknown_type'));

    await new Promise((r) => setTimeout(r, Math.max(0, 3 * idle - (Date.now() - t0))));
    assert.equal(stray.closed, null, 'the client whose messages get not_joined is still connected');
    assert.ok(stray.frames.filter((f) => f.code === 'not_joined').length >= 5);
    assert.ok(!stray.frames.some((f) => f.code === 'idle_timeout'));
    assert.equal(await metric(srv, 'nebula_idle_timeouts_total'), 1);
    for (const t of timers.splice(0)) clearInterval(t);
    stray.close();
  } finally {
    for (const t of timers) clearInterval(t);
    const r = await srv.stop();
    assert.equal(r.code, 0, r.stderr);
  }
});
