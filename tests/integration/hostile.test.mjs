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
import { Worker } from 'node:worker_threads';
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
// message every intervalMs; finish() asserts every message arrived, in order,
// and returns how many were sent and their latency (send to receipt, ms:
// p50, p99, max).
async function honestPair(srv, room, intervalMs = 50) {
  const a = await Client.connect(srv.wsUrl(room, 'alice'));
  const b = await Client.connect(srv.wsUrl(room, 'bob'));
  await a.next((f) => f.type === 'presence' && f.users.length === 2);
  let sent = 0;
  let stop = false;
  const sentAt = [];
  const lat = [];
  b.ws.on('message', (data) => {
    const m = /"content":"m(\d+)"/.exec(data.toString());
    if (m && sentAt[+m[1]] !== undefined) lat.push(performance.now() - sentAt[+m[1]]);
  });
  const loop = (async () => {
    while (!stop) {
      sentAt[sent] = performance.now();
      a.send({ type: 'message', room, content: `m${sent++}` });
      await sleep(intervalMs);
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
      const q = (f) => lat.slice().sort((x, y) => x - y)[Math.min(lat.length - 1, Math.floor(f * lat.length))];
      return { sent, p50: q(0.5), p90: q(0.9), p99: q(0.99), max: Math.max(...lat) };
    },
  };
}

// The honest pair's latency under the attack, in the test's output
// (docs/HARDENING.md quotes it).
const lat = (t, r) => t.diagnostic(`honest pair: ${r.sent} messages, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms`);

// A raw attacker: reads the server's frames, notes pongs, the close code
// and the JSON text frames (st.frames). opts go to rawConnect.
async function attacker(srv, room, user, opts = {}) {
  const sock = await rawConnect(srv.port, `/ws?room=${room}&username=${user}`, opts);
  const st = { sock, pongs: 0, code: null, ended: false, frames: [], textBytes: 0 };
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
      if (op === 0x1) {
        st.textBytes += len;
        try { st.frames.push(JSON.parse(buf.subarray(at, at + len).toString())); } catch { /* not JSON */ }
      }
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

test('1-byte fragments: memory stays within the message limit, the attacker gets 1009', { timeout: 120000 }, async (t) => {
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
    lat(t, await pair.finish());
  } finally {
    pair?.abort();
    for (const st of evil) st.sock.destroy();
    await stopServer(srv);
  }
});

test('unfinished messages: memory grows with bytes sent, not the declared length; 4002 after message_timeout_ms', { timeout: 120000 }, async (t) => {
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
    lat(t, await pair.finish());
  } finally {
    pair?.abort();
    for (const st of evil) st.sock.destroy();
    await stopServer(srv);
  }
});

test('ping flood: closed with 1008 beyond control_frames_per_second', { timeout: 60000 }, async (t) => {
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
    lat(t, await pair.finish());
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

test('at the open-files limit with 2 I/O threads: nothing is left queued, /healthz answers', { timeout: 120000 }, async (t) => {
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
    lat(t, await pair.finish());
  } finally {
    pair?.abort();
    for (const s of idle) s.destroy();
    await stopServer(srv);
  }
});

test('memory is given back after a spike of unfinished messages', { timeout: 120000 }, async (t) => {
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
    lat(t, await pair.finish());
  } finally {
    pair?.abort();
    for (const st of evil) st.sock.destroy();
    await stopServer(srv);
  }
});

// ---- the core's limits: addresses, history, CPU, the memory budget ----

// The JSON text frames of type `type` an attacker received so far.
const framesOf = (st, type) => st.frames.filter((f) => f.type === type);
const sendJson = (st, obj) => st.sock.write(frame(0x1, JSON.stringify(obj)));

test('many connections from one address: 429 beyond connections_per_address, other addresses unaffected', { timeout: 60000 }, async (t) => {
  const srv = await startServer({ limits: { connections_per_address: 5, address_allowlist: ['127.0.0.1'] } });
  const evil = [];
  let pair;
  try {
    pair = await honestPair(srv, 'honest'); // from 127.0.0.1: allowlisted
    for (let i = 0; i < 5; i++) evil.push(await attacker(srv, 'crowd', `c${i}`, { localAddress: '127.0.0.2' }));
    await assert.rejects(rawConnect(srv.port, '/ws?room=crowd&username=c5', { localAddress: '127.0.0.2' }), /429/);
    evil.push(await attacker(srv, 'crowd', 'd0', { localAddress: '127.0.0.3' }));
    // A place freed is a place taken again.
    evil[0].sock.destroy();
    await evil[0].closed;
    let next = null;
    for (let i = 0; i < 50 && !next; i++) {
      next = await attacker(srv, 'crowd', `again${i}`, { localAddress: '127.0.0.2' }).catch(() => null);
      if (!next) await sleep(50);
    }
    assert.ok(next, 'the address got its place back after a connection closed');
    evil.push(next);
    await sleep(250); // the gauges are published every 100 ms
    const m = await metrics(srv);
    assert.equal(m('nebula_address_connections_refused_total') >= 1, true);
    assert.equal(m('nebula_addresses'), 2, '127.0.0.2 and 127.0.0.3; 127.0.0.1 is allowlisted');
    lat(t, await pair.finish());
  } finally {
    pair?.abort();
    for (const st of evil) st.sock.destroy();
    await stopServer(srv);
  }
});

test('messages from one address: its connections share messages_per_second_per_address', { timeout: 60000 }, async (t) => {
  const rate = 20;
  const srv = await startServer({
    limits: { messages_per_second_per_address: rate, burst_per_address: rate, address_allowlist: ['127.0.0.1'] },
  });
  const evil = [];
  let pair;
  try {
    pair = await honestPair(srv, 'honest');
    for (let i = 0; i < 5; i++) evil.push(await attacker(srv, 'nat', `n${i}`, { localAddress: '127.0.0.4' }));
    await sleep(200);
    const started = Date.now();
    // 5 × 15: within each connection's own burst (40), 75 for the address.
    for (const st of evil) for (let k = 0; k < 15; k++) sendJson(st, { type: 'message', room: 'nat', content: 'x' });
    await sleep(500 * slow);
    const secs = (Date.now() - started) / 1000;
    const accepted = framesOf(evil[0], 'message').length;
    const limited = evil.reduce((n, st) => n + framesOf(st, 'error').filter((f) => f.code === 'rate_limited').length, 0);
    assert.ok(accepted <= rate + rate * secs + 1, `${accepted} messages passed in ${secs} s`);
    assert.ok(accepted >= rate, `the address's burst passed (${accepted})`);
    assert.equal(accepted + limited, 75);
    assert.match(framesOf(evil[1], 'error')[0]?.content ?? framesOf(evil[4], 'error')[0].content, /address/);
    const m = await metrics(srv);
    assert.equal(m('nebula_address_rate_limited_total'), limited);
    lat(t, await pair.finish());
  } finally {
    pair?.abort();
    for (const st of evil) st.sock.destroy();
    await stopServer(srv);
  }
});

test('history: bytes per room and in total are capped; join replay is bounded by bytes_per_second', { timeout: 60000 }, async (t) => {
  const perRoom = 100000;
  const total = 250000;
  const bps = 50000;
  const burst = 100000;
  const srv = await startServer({
    server: { history_bytes_per_room: perRoom, history_bytes_total: total },
    limits: { bytes_per_second: bps, bytes_burst: burst, max_message_bytes: 65536 },
  });
  const evil = [];
  let pair;
  try {
    pair = await honestPair(srv, 'honest');
    const big = 'h'.repeat(20000);
    // 4 rooms × 2 fillers × 4 messages of 20 kB: 160 kB a room, 640 kB in all.
    for (let r = 0; r < 4; r++) for (let f = 0; f < 2; f++) evil.push(await attacker(srv, `hist${r}`, `fill${f}`));
    await sleep(300);
    evil.forEach((st, i) => {
      for (let k = 0; k < 4; k++) sendJson(st, { type: 'message', room: `hist${i >> 1}`, content: big });
    });
    // Every filler sees all 8 messages of its room once they are sequenced.
    const until = Date.now() + 5000 * slow;
    while (Date.now() < until && !evil.every((st) => framesOf(st, 'message').length >= 8)) await sleep(50);
    assert.ok(evil.every((st) => framesOf(st, 'message').length >= 8), 'the fillers were not refused');
    await sleep(250);
    const m = await metrics(srv);
    assert.ok(m('nebula_history_bytes') <= total, `history holds ${m('nebula_history_bytes')} bytes`);
    assert.ok(m('nebula_history_bytes') >= perRoom, 'history is kept up to the limits');
    assert.ok(m('nebula_history_dropped_total') > 0);
    assert.ok(m('nebula_memory_budget_used_bytes') >= m('nebula_history_bytes'));

    // A joiner's replay is at most a room's worth; joining again and
    // again draws on bytes_per_second until the joins are refused.
    const churn = await attacker(srv, 'hist0', 'churner'); // the room filled first: its ring is full
    evil.push(churn);
    const t0 = Date.now();
    while (Date.now() - t0 < 2000 * slow) {
      sendJson(churn, { type: 'leave', room: 'hist0' });
      await sleep(50);
      sendJson(churn, { type: 'join', room: 'hist0' });
      await sleep(100);
    }
    await sleep(300);
    const secs = (Date.now() - t0) / 1000;
    const replayed = framesOf(churn, 'history').reduce((n, f) => n + f.content.length, 0);
    const joins = framesOf(churn, 'join').filter((f) => f.sender === 'churner').length;
    const bound = burst + bps * secs + perRoom;
    assert.ok(replayed <= bound, `${replayed} bytes of history replayed in ${secs} s (bound ${bound})`);
    t.diagnostic(`history ${m('nebula_history_bytes')} bytes (total cap ${total}); churn: ${joins} joins, `
      + `${replayed} bytes replayed in ${secs.toFixed(1)} s (bound ${bound})`);
    assert.ok(joins >= 2, `some joins went through (${joins})`);
    assert.ok(framesOf(churn, 'error').some((f) => f.code === 'rate_limited'), 'a join was refused');
    assert.ok((await metrics(srv))('nebula_bytes_rate_limited_total') > 0);
    lat(t, await pair.finish());
  } finally {
    pair?.abort();
    for (const st of evil) st.sock.destroy();
    await stopServer(srv);
  }
});

test('CPU: the most expensive valid JSON at the rate limit leaves the honest pair fast; deeper or larger is too_complex', { timeout: 60000 }, async (t) => {
  const n = sanitized ? 5 : 20; // instrumented builds are several times slower
  const srv = await startServer({});
  let pair;
  let flood;
  let probe;
  try {
    // 1024 values in all, the most [codec-json] max_elements lets
    // through, 1021 of them in an unknown member: each message makes the
    // parser build over a thousand nodes. Sent from a worker thread at
    // 20/s per connection (the rate limit), 20 connections, each from its
    // own address and in its own room.
    const heavy = (room) => JSON.stringify({ type: 'message', room, content: 'x', pad: Array(1021).fill(0) });
    const rooms = Array.from({ length: n }, (_, i) => `cpu${i}`);
    const warm = await honestPair(srv, 'warm');
    await sleep(3000);
    const base = await warm.finish();
    flood = new Worker(new URL('../lib/flood_worker.mjs', import.meta.url), {
      workerData: {
        port: srv.port, n, intervalMs: 50,
        payloads: rooms.map(heavy),
        paths: rooms.map((r) => `/ws?room=${r}&username=${r}`),
        localAddresses: rooms.map((_, i) => `127.0.0.${10 + i}`),
      },
    });
    await new Promise((resolve, reject) => { flood.once('message', resolve); flood.once('error', reject); });
    pair = await honestPair(srv, 'honest');
    await sleep(3000);
    const hit = await pair.finish();
    flood.postMessage('stop');
    const result = await new Promise((resolve) => flood.once('message', resolve));
    t.diagnostic(`honest pair p50/p90/p99 ms: unattacked ${base.p50.toFixed(2)}/${base.p90.toFixed(2)}/${base.p99.toFixed(2)}, `
      + `attacked ${hit.p50.toFixed(2)}/${hit.p90.toFixed(2)}/${hit.p99.toFixed(2)}`);
    for (let i = 0; i < n; i++) {
      assert.equal(result.codes[i], null, 'an attacker within the limits stays connected');
      assert.ok(result.echoes[i] >= (sanitized ? 10 : 50), `its messages went through (${result.echoes[i]})`);
    }
    // Before the structure limits the median was 48 ms (0.5 ms unattacked).
    // The bounds are relative and leave out the slowest tenth: on a
    // shared 2-core machine single stalls of tens of ms come and go with
    // or without the attack (the p99 is in the output, and in
    // docs/HARDENING.md as measured).
    if (!sanitized) {
      assert.ok(hit.p50 <= Math.max(5, base.p50 * 3), `honest p50 ${hit.p50} ms under the CPU attack`);
      assert.ok(hit.p90 <= Math.max(10, base.p90 * 3), `honest p90 ${hit.p90} ms under the CPU attack`);
    }
    // One value more, or one level deeper, is refused before parsing.
    probe = await attacker(srv, 'probe', 'probe');
    sendJson(probe, { type: 'message', room: 'probe', content: 'x', pad: Array(1022).fill(0) });
    sendJson(probe, { type: 'message', room: 'probe', content: 'x', pad: [[[[[[[[0]]]]]]]] });
    const until = Date.now() + 3000 * slow;
    while (Date.now() < until && framesOf(probe, 'error').filter((f) => f.code === 'too_complex').length < 2) await sleep(20);
    assert.equal(framesOf(probe, 'error').filter((f) => f.code === 'too_complex').length, 2);
  } finally {
    pair?.abort();
    probe?.sock.destroy();
    await flood?.terminate();
    await stopServer(srv);
  }
});

test('memory budget: over memory_budget_bytes the largest holders are closed with 4003, new connections get 503', { timeout: 60000 }, async (t) => {
  const budget = 4 << 20;
  const n = sanitized ? 120 : 300; // × 64 KiB: 7.5 or 19 MiB without the budget
  const srv = await startServer({ limits: { memory_budget_bytes: budget, messages_per_second: 0 } });
  const evil = [];
  let pair;
  try {
    pair = await honestPair(srv, 'honest');
    await sleep(300);
    const before = memory(srv.pid);
    let peak = 0;
    const sampler = setInterval(async () => {
      try { peak = Math.max(peak, (await metrics(srv))('nebula_memory_budget_used_bytes')); } catch { /* stopped */ }
    }, 50);
    // Connected first (an open connection holds nothing counted), then
    // each sends 60000 of a declared 65535 bytes.
    for (let i = 0; i < n; i++) evil.push(await attacker(srv, 'hold', `hold${i}`));
    const whole = frame(0x2, Buffer.alloc(65535, 1));
    for (const st of evil) st.sock.write(whole.subarray(0, 8 + 60000));
    await sleep(500 * slow);
    clearInterval(sampler);
    const closed = evil.filter((st) => st.code === 4003).length;
    assert.ok(closed > 0, 'holders were closed with 4003');
    assert.ok(evil.every((st) => st.code === null || st.code === 4003), 'no other close code');
    const m = await metrics(srv);
    assert.ok(m('nebula_memory_budget_closed_total') >= closed);
    assert.ok(peak <= budget + (1 << 20), `budget use peaked at ${peak} (budget ${budget})`);
    assert.ok(m('nebula_memory_budget_used_bytes') <= budget, 'back under the budget');
    const grew = memory(srv.pid).hwm - before.rss;
    t.diagnostic(`${closed} of ${n} closed with 4003; budget use peaked at ${peak} of ${budget}; RSS peak +${grew} bytes`);
    if (!sanitized) assert.ok(grew < 12 << 20, `RSS peak grew by ${grew} bytes`);
    // Near the budget a new connection is refused; once the holders are
    // gone it is taken again.
    if (m('nebula_memory_budget_used_bytes') >= budget / 8 * 7) {
      await assert.rejects(rawConnect(srv.port, '/ws?room=late&username=late'), /503/);
    }
    for (const st of evil) st.sock.destroy();
    let late = null;
    const until = Date.now() + 8000 * slow;
    while (!late && Date.now() < until) {
      late = await rawConnect(srv.port, '/ws?room=late&username=late').catch(() => null);
      if (!late) await sleep(200);
    }
    assert.ok(late, 'connections are taken again once memory is given back');
    late.destroy();
    lat(t, await pair.finish());
  } finally {
    pair?.abort();
    for (const st of evil) st.sock.destroy();
    await stopServer(srv);
  }
});
