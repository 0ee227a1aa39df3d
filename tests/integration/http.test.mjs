// HTTP side of the transport: static files (types, HEAD, 405, 404, no way
// out of web_root), the core's endpoints, and the WebSocket handshake's
// HTTP answers (400, 426, 431, subprotocol echo). Requests are written by
// hand on raw sockets, so paths reach the server exactly as written.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import crypto from 'node:crypto';
import { mkdtempSync, mkdirSync, writeFileSync, symlinkSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer } from '../lib/server.mjs';

const SECRET = 'TOP-SECRET-OUTSIDE-WEB-ROOT';
let srv;
let root;
let web;

const files = {
  'index.html': ['<!doctype html><meta charset="utf-8"><title>fixture</title>', 'text/html; charset=utf-8'],
  'app.js': ['console.log("hi");', 'text/javascript; charset=utf-8'],
  'style.css': ['body { color: red }', 'text/css; charset=utf-8'],
  'logo.svg': ['<svg xmlns="http://www.w3.org/2000/svg"/>', 'image/svg+xml'],
  'img.png': [Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 1, 2]), 'image/png'],
  'favicon.ico': [Buffer.from([0, 0, 1, 0, 1, 0]), 'image/x-icon'],
  'data.json': ['{"a":1}', 'application/json'],
  'notes.txt': ['plain notes', 'text/plain; charset=utf-8'],
  'font.woff2': [Buffer.from('wOF2fake'), 'font/woff2'],
  'blob.bin': [Buffer.from([1, 2, 3]), 'application/octet-stream'],
};

before(async () => {
  root = mkdtempSync(path.join(tmpdir(), 'nebula-http-'));
  web = path.join(root, 'web');
  mkdirSync(path.join(web, 'sub'), { recursive: true });
  for (const [name, [body]] of Object.entries(files)) writeFileSync(path.join(web, name), body);
  writeFileSync(path.join(web, 'sub', 'index.html'), '<p>sub index</p>');
  writeFileSync(path.join(web, '.hidden'), SECRET);
  writeFileSync(path.join(root, 'secret.txt'), SECRET);
  symlinkSync(path.join(root, 'secret.txt'), path.join(web, 'escape'));
  srv = await startServer({
    server: { web_root: web },
    extra: '[transport-ws]\nhandshake_timeout_ms = 500\n',
  });
});

after(async () => {
  const r = await srv.stop();
  rmSync(root, { recursive: true, force: true });
  assert.equal(r.code, 0, r.stderr);
});

// Write `raw` (a string, a Buffer, or an array of pieces written apart)
// and read until the server closes. Returns { status, headers, body }.
function request(raw, { timeoutMs = 5000, gapMs = 0 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(srv.port, '127.0.0.1');
    sock.setNoDelay(true);
    const chunks = [];
    const timer = setTimeout(() => { sock.destroy(); reject(new Error('no answer (or connection not closed)')); }, timeoutMs);
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', () => {});
    sock.on('close', () => {
      clearTimeout(timer);
      const all = Buffer.concat(chunks);
      const end = all.indexOf('\r\n\r\n');
      if (end < 0) { resolve({ status: 0, headers: {}, body: all, closedEarly: true }); return; }
      const lines = all.subarray(0, end).toString('latin1').split('\r\n');
      const status = Number(lines[0].split(' ')[1]);
      const headers = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
      }
      resolve({ status, statusLine: lines[0], headers, body: all.subarray(end + 4) });
    });
    sock.on('connect', async () => {
      const pieces = Array.isArray(raw) ? raw : [raw];
      for (const p of pieces) {
        sock.write(p);
        if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
      }
    });
  });
}

const get = (target, { method = 'GET', headers = '', version = 'HTTP/1.1' } = {}) =>
  request(`${method} ${target} ${version}\r\nHost: 127.0.0.1\r\n${headers}\r\n`);

function upgradeRequest(extraHeaders, { key = crypto.randomBytes(16).toString('base64'), version = '13', path: p = '/ws?room=r&username=u' } = {}) {
  const lines = [`GET ${p} HTTP/1.1`, 'Host: 127.0.0.1', 'Upgrade: websocket', 'Connection: Upgrade'];
  if (key !== null) lines.push(`Sec-WebSocket-Key: ${key}`);
  if (version !== null) lines.push(`Sec-WebSocket-Version: ${version}`);
  return lines.concat(extraHeaders).join('\r\n') + '\r\n\r\n';
}

// Read only the response head of an upgrade (the socket stays open on 101).
function upgradeHead(raw) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(srv.port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => { sock.destroy(); reject(new Error('no upgrade answer')); }, 5000);
    sock.on('connect', () => sock.write(raw));
    sock.on('error', () => {});
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      clearTimeout(timer);
      sock.destroy();
      const lines = buf.subarray(0, end).toString().split('\r\n');
      const headers = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
      }
      resolve({ status: Number(lines[0].split(' ')[1]), headers });
    });
  });
}

// ---- static files ------------------------------------------------------

test('GET / serves index.html as text/html', async () => {
  const r = await get('/');
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-type'], 'text/html; charset=utf-8');
  assert.equal(r.body.toString(), files['index.html'][0]);
  assert.equal(Number(r.headers['content-length']), r.body.length);
  assert.equal(r.headers.connection, 'close');
});

test('the repository\'s own web client is served by a default server', async () => {
  const other = await startServer();
  try {
    const res = await fetch(`${other.url}/`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/html/);
    const body = await res.text();
    assert.equal(body, readFileSync(path.join(path.dirname(new URL(import.meta.url).pathname), '..', '..', 'web', 'index.html'), 'utf8'));
  } finally {
    await other.stop();
  }
});

test('Content-Type follows the extension', async () => {
  for (const [name, [body, type]] of Object.entries(files)) {
    const r = await get(`/${name}`);
    assert.equal(r.status, 200, name);
    assert.equal(r.headers['content-type'], type, name);
    assert.deepEqual(r.body, Buffer.from(body), name);
  }
});

test('a folder path serves its index.html; without the slash it is 404', async () => {
  const r = await get('/sub/');
  assert.equal(r.status, 200);
  assert.equal(r.body.toString(), '<p>sub index</p>');
  assert.equal((await get('/sub')).status, 404);
});

test('a missing file is 404', async () => {
  const r = await get('/missing.js');
  assert.equal(r.status, 404);
  assert.equal(r.headers['content-type'], 'text/plain; charset=utf-8');
});

test('%-encoded names are decoded', async () => {
  const r = await get('/%61pp.js?v=3');
  assert.equal(r.status, 200);
  assert.equal(r.body.toString(), files['app.js'][0]);
});

test('path traversal never leaves web_root', async () => {
  const attempts = [
    '/../secret.txt', '/%2e%2e/secret.txt', '/%2E%2E/secret.txt', '/..%2fsecret.txt',
    '/%2e%2e%2fsecret.txt', '/sub/../../secret.txt', '/sub/%2e%2e/%2e%2e/secret.txt',
    '/.%2e/secret.txt', '/..\\secret.txt', '/%5c..%5csecret.txt', '/escape', '/.hidden',
    '/etc/passwd', '//etc/passwd', '/index.html%00.txt', `/${'../'.repeat(20)}etc/passwd`,
    `/..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd`, `${root}/secret.txt`,
  ];
  for (const a of attempts) {
    const r = await get(a);
    assert.ok(r.status === 400 || r.status === 404, `${a}: ${r.status}`);
    assert.ok(!r.body.includes(SECRET) && !r.body.includes('root:'), `${a} leaked`);
  }
  // Absolute-form and asterisk targets are refused outright.
  for (const target of [`http://127.0.0.1:${srv.port}/../secret.txt`, 'secret.txt', '*']) {
    const r = await get(target);
    assert.equal(r.status, 400, target);
  }
});

test('HEAD answers the headers of GET without the body', async () => {
  const r = await get('/', { method: 'HEAD' });
  assert.equal(r.status, 200);
  assert.equal(Number(r.headers['content-length']), Buffer.byteLength(files['index.html'][0]));
  assert.equal(r.body.length, 0);
  const missing = await get('/nope', { method: 'HEAD' });
  assert.equal(missing.status, 404);
  assert.equal(missing.body.length, 0);
});

test('methods other than GET and HEAD are 405', async () => {
  for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS', 'get']) {
    const r = await get('/', { method });
    assert.equal(r.status, 405, method);
    assert.equal(r.headers.allow, 'GET, HEAD');
  }
});

// ---- HTTP syntax and limits --------------------------------------------

test('HTTP/1.0 GET is served; other versions and bad syntax are refused', async () => {
  assert.equal((await request('GET / HTTP/1.0\r\n\r\n')).status, 200);
  assert.equal((await request('POST / HTTP/1.0\r\n\r\n')).status, 505);
  assert.equal((await request('GET / HTTP/2.0\r\nHost: x\r\n\r\n')).status, 505);
  assert.equal((await request('GET / HTTP/1.1\r\n\r\n')).status, 400, 'no Host');
  assert.equal((await request('GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n')).status, 400, 'two Hosts');
  assert.equal((await request('GET / HTTP/1.1\nHost: x\n\n')).status, 400, 'bare LF');
  assert.equal((await request('GET /  HTTP/1.1\r\nHost: x\r\n\r\n')).status, 400);
  assert.equal((await request('GET / HTTP/1.1\r\nHost : x\r\n\r\n')).status, 400);
  assert.equal((await request('GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n')).status, 400);
  assert.equal((await request(Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5, 0x01]))).status, 400, 'TLS hello');
});

test('a head larger than max_header_bytes (8 KiB) is 431; just under is fine', async () => {
  const big = await get('/', { headers: `X-Big: ${'a'.repeat(9000)}\r\n` });
  assert.equal(big.status, 431);
  const ok = await get('/', { headers: `X-Big: ${'a'.repeat(7000)}\r\n` });
  assert.equal(ok.status, 200);
  const many = await get('/', { headers: Array.from({ length: 100 }, (_, i) => `X-${i}: y\r\n`).join('') });
  assert.equal(many.status, 431);
});

test('a head that arrives in pieces is answered', async () => {
  const raw = 'GET /app.js HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: trickle\r\n\r\n';
  const r = await request(raw.match(/.{1,7}/gs), { gapMs: 5 });
  assert.equal(r.status, 200);
  assert.equal(r.body.toString(), files['app.js'][0]);
});

test('a head never completed is dropped after handshake_timeout_ms', async () => {
  const t0 = Date.now();
  const r = await request('GET / HTTP/1.1\r\nHost: x\r\n', { timeoutMs: 5000 });
  assert.equal(r.status, 0);
  assert.ok(Date.now() - t0 >= 400, `closed after ${Date.now() - t0} ms`);
});

test('every response closes the connection, even when keep-alive is asked', async () => {
  const r = await get('/notes.txt', { headers: 'Connection: keep-alive\r\n' });
  assert.equal(r.status, 200);
  assert.equal(r.headers.connection, 'close');
});

test('fetch() works against it', async () => {
  const res = await fetch(`${srv.url}/data.json`);
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { a: 1 });
});

// ---- the core's endpoints ------------------------------------------------

test('/healthz, /readyz and /metrics are answered by the core', async () => {
  const h = await get('/healthz');
  assert.equal(h.status, 200);
  assert.equal(h.body.toString().trim(), 'ok');
  assert.equal((await get('/readyz')).status, 200);
  const m = await get('/metrics');
  assert.equal(m.status, 200);
  const text = m.body.toString();
  for (const name of ['nebula_ws_connections_accepted_total', 'nebula_http_requests_total',
    'nebula_ws_protocol_errors_total', 'nebula_ws_upgrades_total']) {
    assert.match(text, new RegExp(`^${name} \\d+$`, 'm'), name);
  }
  const head = await get('/healthz', { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.body.length, 0);
});

// ---- the WebSocket handshake --------------------------------------------

test('an upgrade without Sec-WebSocket-Key is 400; a malformed key too', async () => {
  assert.equal((await request(upgradeRequest([], { key: null }))).status, 400);
  assert.equal((await request(upgradeRequest([], { key: 'c2hvcnQ=' }))).status, 400);
  assert.equal((await request(upgradeRequest([], { key: 'not base64 at all!!!!!!=' }))).status, 400);
});

test('an upgrade for another WebSocket version is 426 with Sec-WebSocket-Version: 13', async () => {
  for (const version of ['8', null]) {
    const r = await request(upgradeRequest([], { version }));
    assert.equal(r.status, 426);
    assert.equal(r.headers['sec-websocket-version'], '13');
  }
});

test('an upgrade without "Connection: upgrade", or not a GET, is 400', async () => {
  const noConn = 'GET /ws?room=r&username=u HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n'
    + `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
  assert.equal((await request(noConn)).status, 400);
  const post = upgradeRequest([]).replace(/^GET/, 'POST');
  assert.equal((await request(post)).status, 400);
});

test('Connection may list other tokens; Upgrade is matched in any case', async () => {
  const raw = upgradeRequest([]).replace('Connection: Upgrade', 'Connection: keep-alive, Upgrade')
    .replace('Upgrade: websocket', 'Upgrade: WebSocket').replace('username=u', 'username=tokens');
  const r = await upgradeHead(raw);
  assert.equal(r.status, 101);
});

test('the accepted subprotocol is echoed, and none when none was asked', async () => {
  const withProto = await upgradeHead(upgradeRequest(['Sec-WebSocket-Protocol: nebula.json.v1'], { path: '/ws?room=p&username=p1' }));
  assert.equal(withProto.status, 101);
  assert.equal(withProto.headers['sec-websocket-protocol'], 'nebula.json.v1');
  const listed = await upgradeHead(upgradeRequest(['Sec-WebSocket-Protocol: x-unknown, nebula.json.v1'], { path: '/ws?room=p&username=p2' }));
  assert.equal(listed.status, 101);
  assert.equal(listed.headers['sec-websocket-protocol'], 'nebula.json.v1');
  const without = await upgradeHead(upgradeRequest([], { path: '/ws?room=p&username=p3' }));
  assert.equal(without.status, 101);
  assert.equal(without.headers['sec-websocket-protocol'], undefined);
  const key = crypto.randomBytes(16).toString('base64');
  const accept = await upgradeHead(upgradeRequest([], { key, path: '/ws?room=p&username=p4' }));
  assert.equal(accept.headers['sec-websocket-accept'],
    crypto.createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64'));
  // Only unknown subprotocols: the core refuses the upgrade.
  const unknown = await request(upgradeRequest(['Sec-WebSocket-Protocol: x-unknown'], { path: '/ws?room=p&username=p5' }));
  assert.equal(unknown.status, 400);
});

test('an upgrade on a path other than /ws is refused by the core with 404', async () => {
  const r = await request(upgradeRequest([], { path: '/elsewhere' }));
  assert.equal(r.status, 404);
});
