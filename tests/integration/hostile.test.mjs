// Hostile clients against the WebSocket transport (docs/HARDENING.md):
// each attack runs on raw sockets while an honest pair chats in another
// room, and asserts the bound the server keeps, the close code the
// attacker gets, and that the honest pair lost nothing.
//
// Memory bounds are asserted in every build through the transport's own
// gauge (nebula_ws_assembly_bytes, sampled during the attack); the
// process's RSS (VmHWM, VmRSS) is asserted too in the plain build, where
// it means something (sanitizers and valgrind have allocators of their
// own).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { startServer } from '../lib/server.mjs';
import { Client } from '../lib/client.mjs';
import { rawConnect, frame } from '../lib/rawws.mjs';

const sanitized = (!!process.env.NEBULA_SANITIZE && process.env.NEBULA_SANITIZE !== 'none')
  || !!process.env.NEBULA_WRAPPER;
const slow = sanitized ? 4 : 1; // time margins in instrumented builds
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function metrics(srv) {
  const text = await (await fetch(`${srv.url}/metrics`)).text();
  return (name) => {
    const m = text.match(new RegExp(`^${name} (-?\\d+)$`, 'm'));
    return m ? Number(m[1]) : NaN;
  };
}

// VmRSS and VmHWM (peak) of the server, in bytes.
function memory(pid) {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number(s.match(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm'))[1]) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

// Sample the assembly gauge every 50 ms until stop(); resolves with its peak.
function sampleGauge(srv) {
  let peak = 0;
  let stop = false;
  const done = (async () => {
    while (!stop) {
      let v = 0;
      try { v = (await metrics(srv))('nebula_ws_assembly_bytes'); } catch { break; }
      if (v > peak) peak = v;
      await sleep(50);
    }
    return peak;
  })();
  return () => { stop = true; return done; };
}

// Two ws clients chatting in their own room during the attack, one
// message every 50 ms; finish() asserts every message arrived, in order.
async function honestPair(srv, room) {
  const a = await Client.connect(srv.wsUrl(room, 'alice'));
  const b = await Client.connect(srv.wsUrl(room, 'bob'));
  await a.next((f) => f.type === 'presence' && f.users.length === 2);
  let sent = 0;
  let stop = false;
  const loop = (async () => {
    while (!stop) {
      a.send({ type: 'message', room, content: `m${sent++}` });
      await sleep(50);
    }
  })();
  return {
    abort() { stop = true; a.ws.terminate(); b.ws.terminate(); },
    async finish() {
      while (sent < 10) await sleep(50); // chat through the whole attack, and some
      stop = true;
      await loop;
      for (let i = 0; i < sent; i++) {
        const m = await b.next('message', 10000 * slow);
        assert.equal(m.content, `m${i}`, 'the honest pair lost or reordered a message');
      }
      assert.equal(a.closed, null);
      assert.equal(b.closed, null);
      a.close();
      b.close();
      return sent;
    },
  };
}

// A raw attacker: reads the server's frames, notes pongs and the close code.
async function attacker(srv, room, user) {
  const sock = await rawConnect(srv.port, `/ws?room=${room}&username=${user}`);
  const st = { sock, pongs: 0, code: null, ended: false };
  let buf = sock.rest || Buffer.alloc(0);
  const parse = () => {
    while (buf.length >= 2) {
      const op = buf[0] & 0x0f;
      let len = buf[1] & 0x7f;
      let at = 2;
      if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); at = 4; }
      else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); at = 10; }
      if (buf.length < at + len) return;
      if (op === 0xa) st.pongs++;
      if (op === 0x8 && st.code === null) st.code = len >= 2 ? buf.readUInt16BE(at) : 1005;
      buf = buf.subarray(at + len);
    }
  };
  parse();
  sock.on('data', (d) => { buf = Buffer.concat([buf, d]); parse(); });
  sock.on('error', () => {});
  st.closed = new Promise((resolve) => sock.on('close', () => { st.ended = true; resolve(); }));
  return st;
}

// Write chunks as fast as the socket takes them until the server closes or
// ms pass.
async function flood(st, chunk, ms) {
  const end = Date.now() + ms;
  while (!st.ended && st.code === null && Date.now() < end) {
    if (!st.sock.write(chunk)) {
      await new Promise((resolve) => {
        const done = () => { clearTimeout(timer); st.sock.off('drain', done); resolve(); };
        const timer = setTimeout(done, 200);
        st.sock.once('drain', done);
        st.closed.then(done);
      });
    }
    await new Promise((r) => setImmediate(r));
  }
}

// A frame with FIN cleared: one fragment of a message still going on.
function fragment(opcode, payload) {
  const f = frame(opcode, payload);
  f[0] &= 0x7f;
  return f;
}

async function waitCode(st, ms) {
  const end = Date.now() + ms;
  while (st.code === null && Date.now() < end) await sleep(20);
  return st.code;
}

async function stopServer(srv) {
  const r = await srv.stop();
  assert.equal(r.signal, null, r.stderr);
  assert.equal(r.code, 0, `nebula exited ${r.code}:\n${r.stderr}`);
}

test('1-byte fragments: memory stays within the message limit, the attacker gets 1009', { timeout: 120000 }, async () => {
  const limit = sanitized ? 8192 : 65536;
  const n = sanitized ? 5 : 20;
  const srv = await startServer({ limits: { messages_per_second: 0, max_message_bytes: limit } });
  const evil = [];
  let pair;
  try {
    pair = await honestPair(srv, 'honest');
    const before = memory(srv.pid);
    const gauge = sampleGauge(srv);
    for (let i = 0; i < n; i++) evil.push(await attacker(srv, 'frag', `frag${i}`));
    const batch = Buffer.concat(Array.from({ length: 2000 }, () => fragment(0x0, 'a')));
    await Promise.all(evil.map(async (st) => {
      st.sock.write(fragment(0x1, 'a')); // FIN=0: a message starts, never finished
      await flood(st, batch, 60000);
    }));
    for (const st of evil) assert.equal(await waitCode(st, 5000 * slow), 1009);
    const peak = await gauge();
    assert.ok(peak <= n * limit, `assembly peak ${peak} > ${n} × ${limit}`);
    if (!sanitized) {
      // Before: ~96 bytes per fragment, 20 × 65536 fragments ≈ 126 MB.
      const grew = memory(srv.pid).hwm - before.rss;
      assert.ok(grew < 24 * 1024 * 1024, `RSS peak grew by ${grew} bytes`);
    }
    const m = await metrics(srv);
    assert.ok(m('nebula_ws_messages_too_large_total') >= n);
    await pair.finish();
  } finally {
    pair?.abort();
    for (const st of evil) st.sock.destroy();
    await stopServer(srv);
  }
});

test('unfinished messages: memory grows with bytes sent, not the declared length; 4002 after message_timeout_ms', { timeout: 120000 }, async () => {
  const n = sanitized ? 10 : 50;
  const timeoutMs = 1000;
  const srv = await startServer({
    limits: { messages_per_second: 0 },
    extra: `[transport-ws]\nmessage_timeout_ms = ${timeoutMs}\n`,
  });
  const evil = [];
  let pair;
  try {
    pair = await honestPair(srv, 'honest');
    const gauge = sampleGauge(srv);
    for (let i = 0; i < n; i++) evil.push(await attacker(srv, 'slow', `slow${i}`));
    const started = Date.now();
    // Half of them: a header declaring 65535 bytes (the limit is 65536)
    // and 1000 of them. The other half: a first fragment of 1000 bytes,
    // then a ping every 200 ms between fragments that never come, as a
    // client that looks alive would.
    const whole = frame(0x1, Buffer.alloc(65535, 'x'));
    evil.forEach((st, i) => st.sock.write(i % 2 ? fragment(0x1, Buffer.alloc(1000, 'y')) : whole.subarray(0, 8 + 1000)));
    const pinger = setInterval(() => {
      evil.forEach((st, i) => { if (i % 2 && !st.ended) st.sock.write(frame(0x9, 'p')); });
    }, 200);
    try {
      for (const st of evil) assert.equal(await waitCode(st, 6000 * slow), 4002);
    } finally {
      clearInterval(pinger);
    }
    const took = Date.now() - started;
    assert.ok(took >= timeoutMs * 0.9, `closed after ${took} ms, before message_timeout_ms`);
    const peak = await gauge();
    // 1000 bytes need a 1024-byte buffer; wslay alone would hold 65535 each.
    assert.ok(peak <= n * 2048, `assembly peak ${peak} > ${n} × 2048`);
    const m = await metrics(srv);
    assert.equal(m('nebula_ws_message_timeouts_total'), n);
    await pair.finish();
  } finally {
    pair?.abort();
    for (const st of evil) st.sock.destroy();
    await stopServer(srv);
  }
});

test('ping flood: closed with 1008 beyond control_frames_per_second', { timeout: 60000 }, async () => {
  const n = 5;
  const perSecond = 20;
  const srv = await startServer({ limits: { messages_per_second: 0 } });
  const evil = [];
  let pair;
  try {
    pair = await honestPair(srv, 'honest');
    for (let i = 0; i < n; i++) evil.push(await attacker(srv, 'ping', `ping${i}`));
    const batch = Buffer.concat(Array.from({ length: 1000 }, () => frame(0x9, 'x')));
    const started = Date.now();
    await Promise.all(evil.map((st) => flood(st, batch, 10000 * slow)));
    for (const st of evil) assert.equal(await waitCode(st, 5000 * slow), 1008);
    const secs = (Date.now() - started) / 1000;
    for (const st of evil) {
      assert.ok(st.pongs <= perSecond * (Math.ceil(secs) + 1), `${st.pongs} pongs in ${secs} s`);
    }
    const m = await metrics(srv);
    assert.equal(m('nebula_ws_control_flood_total'), n);
    await pair.finish();
  } finally {
    pair?.abort();
    for (const st of evil) st.sock.destroy();
    await stopServer(srv);
  }
});

// An HTTP request on a raw socket: resolves with the status, 'reset' (the
// connection was closed without an answer) or 'hang' (nothing in ms).
function rawGet(port, path, ms) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let data = '';
    const done = (r) => { clearTimeout(timer); s.destroy(); resolve(r); };
    const timer = setTimeout(() => done('hang'), ms);
    s.on('connect', () => s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`));
    s.on('data', (d) => { data += d; });
    s.on('error', () => done(data ? Number(data.split(' ')[1]) : 'reset'));
    s.on('close', () => done(data ? Number(data.split(' ')[1]) : 'reset'));
  });
}

// Connections waiting in the accept queue of a listening socket on `port`
// (/proc/net/tcp: rx_queue of a LISTEN entry), summed over every thread's.
function acceptBacklog(port) {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  let total = 0;
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try { text = readFileSync(f, 'utf8'); } catch { continue; }
    for (const line of text.split('\n').slice(1)) {
      const c = line.trim().split(/\s+/);
      if (c.length > 4 && c[1].endsWith(`:${hex}`) && c[3] === '0A') total += parseInt(c[4].split(':')[1], 16);
    }
  }
  return total;
}

test('at the open-files limit with 2 I/O threads: nothing is left queued, /healthz answers', { timeout: 120000 }, async () => {
  const envWrapper = (process.env.NEBULA_WRAPPER || '').split(' ').filter(Boolean);
  const srv = await startServer({
    wrapper: ['sh', '-c', 'ulimit -n 128 && exec "$0" "$@"', ...envWrapper],
    server: { io_threads: 2 },
    limits: { messages_per_second: 0 },
  });
  const idle = [];
  let pair;
  try {
    pair = await honestPair(srv, 'honest');
    // 200 silent TCP clients: more than the descriptors left.
    await Promise.all(Array.from({ length: 200 }, () => new Promise((resolve) => {
      const s = net.connect(srv.port, '127.0.0.1');
      s.on('error', () => {});
      s.on('connect', resolve);
      s.on('close', resolve);
      idle.push(s);
    })));
    // Every thread accepts or refuses at once: no queue builds up.
    await sleep(500 * slow);
    assert.equal(acceptBacklog(srv.port), 0, 'connections left waiting in a listen queue');
    // Concurrent health checks: each is answered or refused, none hangs.
    const burst = await Promise.all(Array.from({ length: 20 }, () => rawGet(srv.port, '/healthz', 2000 * slow)));
    assert.ok(!burst.includes('hang'), `a request hung: ${burst}`);
    // Idle clients that landed on reserve descriptors hold them for at
    // most 2 s (plus the timer's lateness); then health checks one at a
    // time are all served from the reserve.
    const seen = [];
    const until = Date.now() + 4000 * slow;
    while (Date.now() < until && seen.at(-1) !== 200) {
      seen.push(await rawGet(srv.port, '/healthz', 2000 * slow));
      if (seen.at(-1) !== 200) await sleep(200);
    }
    assert.equal(seen.at(-1), 200, `health checks after the reserve's deadline: ${seen}`);
    for (let i = 0; i < 5; i++) assert.equal(await rawGet(srv.port, '/healthz', 2000 * slow), 200);
    assert.equal(acceptBacklog(srv.port), 0);
    const m = await metrics(srv);
    assert.ok(m('nebula_ws_connections_refused_total') > 0, 'some connections were refused');
    assert.ok(m('nebula_ws_reserve_connections_total') >= 5, 'health checks came through the reserve');
    await pair.finish();
  } finally {
    pair?.abort();
    for (const s of idle) s.destroy();
    await stopServer(srv);
  }
});

test('memory is given back after a spike of unfinished messages', { timeout: 120000 }, async () => {
  const n = sanitized ? 80 : 150; // 40 × 64 KiB per I/O thread: past the 1 MiB that triggers a trim
  const srv = await startServer({ limits: { messages_per_second: 0 } });
  const evil = [];
  let pair;
  try {
    pair = await honestPair(srv, 'honest');
    await sleep(300);
    const before = memory(srv.pid);
    for (let i = 0; i < n; i++) evil.push(await attacker(srv, 'spike', `spike${i}`));
    // 60000 of a declared 65535 bytes each: ~64 KiB of buffer per connection.
    const whole = frame(0x2, Buffer.alloc(65535, 1));
    for (const st of evil) st.sock.write(whole.subarray(0, 8 + 60000));
    let m;
    const deadline = Date.now() + 10000 * slow;
    do {
      await sleep(100);
      m = await metrics(srv);
    } while (m('nebula_ws_assembly_bytes') < n * 60000 && Date.now() < deadline);
    assert.ok(m('nebula_ws_assembly_bytes') >= n * 60000, 'the spike was assembled');
    const peak = memory(srv.pid);
    for (const st of evil) st.sock.destroy();
    let after;
    const until = Date.now() + 5000 * slow;
    do {
      await sleep(200);
      m = await metrics(srv);
      after = memory(srv.pid);
    } while ((m('nebula_ws_malloc_trims_total') < 1 || m('nebula_ws_assembly_bytes') > 0) && Date.now() < until);
    assert.equal(m('nebula_ws_assembly_bytes'), 0, 'every assembly buffer was freed');
    assert.ok(m('nebula_ws_malloc_trims_total') >= 1, 'the heap was trimmed after the spike');
    if (!sanitized) {
      const spike = peak.rss - before.rss;
      assert.ok(spike >= n * 50000, `the spike showed in RSS (${spike} bytes)`);
      assert.ok(after.rss - before.rss < spike / 2, `RSS stayed up: before ${before.rss}, peak ${peak.rss}, after ${after.rss}`);
    }
    await pair.finish();
  } finally {
    pair?.abort();
    for (const st of evil) st.sock.destroy();
    await stopServer(srv);
  }
});
