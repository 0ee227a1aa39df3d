// RFC 6455 conformance of the transport, after the Autobahn case groups
// (framing, pings, reserved bits and opcodes, fragmentation, UTF-8, close
// codes and reasons, limits), spoken by hand over raw TCP sockets so that
// every byte — including the wrong ones — is ours to choose.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import crypto from 'node:crypto';
import { startServer } from '../lib/server.mjs';

const MAX_MESSAGE = 200000; // [limits] max_message_bytes, which the transport takes as its own
let srv;
let seq = 0;

before(async () => {
  srv = await startServer({
    limits: { messages_per_second: 0, max_errors: 100000, max_message_bytes: MAX_MESSAGE },
    extra: '[transport-ws]\nclose_timeout_ms = 1000\n',
  });
});

after(async () => {
  const r = await srv.stop();
  assert.equal(r.code, 0, r.stderr);
});

// ---- a raw client ------------------------------------------------------

// A masked client frame. b0 is the first header byte (FIN, RSV, opcode).
function frame(b0, payload = Buffer.alloc(0), { mask = true } = {}) {
  const p = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  let hdr;
  if (p.length < 126) hdr = Buffer.from([b0, p.length]);
  else if (p.length < 65536) { hdr = Buffer.alloc(4); hdr[0] = b0; hdr[1] = 126; hdr.writeUInt16BE(p.length, 2); }
  else { hdr = Buffer.alloc(10); hdr[0] = b0; hdr[1] = 127; hdr.writeBigUInt64BE(BigInt(p.length), 2); }
  if (!mask) return Buffer.concat([hdr, p]);
  hdr[1] |= 0x80;
  const key = crypto.randomBytes(4);
  const body = Buffer.alloc(p.length);
  for (let i = 0; i < p.length; i++) body[i] = p[i] ^ key[i & 3];
  return Buffer.concat([hdr, key, body]);
}
const FIN = 0x80;
const text = (s) => frame(FIN | 0x1, Buffer.from(s));
const closeFrame = (code, reason = Buffer.alloc(0)) => {
  const p = Buffer.alloc(2); p.writeUInt16BE(code, 0);
  return frame(FIN | 0x8, Buffer.concat([p, Buffer.from(reason)]));
};

// Parses the server's (unmasked) frames as they arrive.
class RawWs {
  constructor(sock, rest) {
    this.sock = sock;
    this.buf = rest;
    this.frames = [];
    this.ended = false;
    this.waiters = [];
    sock.on('data', (d) => { this.buf = Buffer.concat([this.buf, d]); this.parse(); this.wake(); });
    sock.on('close', () => { this.ended = true; this.wake(); });
    sock.on('error', () => {});
    this.parse();
  }

  parse() {
    for (;;) {
      const b = this.buf;
      if (b.length < 2) return;
      let len = b[1] & 0x7f;
      let off = 2;
      assert.equal(b[1] & 0x80, 0, 'server frames are never masked');
      if (len === 126) { if (b.length < 4) return; len = b.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (b.length < 10) return; len = Number(b.readBigUInt64BE(2)); off = 10; }
      if (b.length < off + len) return;
      const f = { fin: !!(b[0] & 0x80), rsv: (b[0] >> 4) & 7, opcode: b[0] & 0x0f, payload: b.subarray(off, off + len) };
      if (f.opcode === 1) { try { f.json = JSON.parse(f.payload.toString()); } catch { /* not JSON */ } }
      this.frames.push(f);
      this.buf = b.subarray(off + len);
    }
  }

  wake() { for (const w of this.waiters.splice(0)) w(); }

  async until(cond, timeoutMs, what) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = cond();
      if (v) return v;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout waiting for ${what}; frames: ${this.describe()}`);
      await new Promise((r) => { const t = setTimeout(r, left); this.waiters.push(() => { clearTimeout(t); r(); }); });
    }
  }

  describe() {
    return JSON.stringify(this.frames.map((f) => ({ op: f.opcode, len: f.payload.length, json: f.json?.type })));
  }

  // The first frame not yet taken that matches.
  async next(pred, timeoutMs = 5000, what = 'a frame') {
    return this.until(() => {
      const i = this.frames.findIndex(pred);
      return i >= 0 ? this.frames.splice(i, 1)[0] : null;
    }, timeoutMs, what);
  }

  async message(content, timeoutMs = 5000) {
    return this.next((f) => f.json?.type === 'message' && f.json.content === content, timeoutMs,
      `message ${String(content).slice(0, 40)}…`);
  }

  // The server's close frame, then the end of the TCP connection, and
  // nothing in between.
  async closed(timeoutMs = 5000) {
    const i = await this.until(() => {
      const k = this.frames.findIndex((x) => x.opcode === 8);
      return k >= 0 ? k + 1 : 0;
    }, timeoutMs, 'a close frame') - 1;
    await this.until(() => this.ended, timeoutMs, 'the server to close the TCP connection');
    assert.equal(this.frames.length, i + 1, `frames after the close: ${this.describe()}`);
    const f = this.frames.splice(i, 1)[0];
    const code = f.payload.length >= 2 ? f.payload.readUInt16BE(0) : null;
    return { code, reason: f.payload.subarray(2).toString() };
  }

  send(...bufs) { this.sock.write(Buffer.concat(bufs)); }
  destroy() { this.sock.destroy(); }
}

// Upgrade `path`; `extra` is written right behind the request head, in
// the same packet. Resolves with a RawWs once the 101 has arrived.
async function handshake(path, extra = Buffer.alloc(0)) {
  const sock = net.connect(srv.port, '127.0.0.1');
  sock.setNoDelay(true);
  await new Promise((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
  const key = crypto.randomBytes(16).toString('base64');
  sock.write(Buffer.concat([Buffer.from(`GET ${path} HTTP/1.1\r\n`
    + `Host: 127.0.0.1:${srv.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`
    + `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`), extra]));
  let head = Buffer.alloc(0);
  const rest = await new Promise((resolve, reject) => {
    const onData = (d) => {
      head = Buffer.concat([head, d]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      sock.off('data', onData);
      const lines = head.subarray(0, end).toString().split('\r\n');
      if (!/^HTTP\/1\.1 101 /.test(lines[0])) { reject(new Error(lines[0])); return; }
      const accept = crypto.createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
      assert.ok(lines.includes(`Sec-WebSocket-Accept: ${accept}`), lines.join('\n'));
      resolve(head.subarray(end + 4));
    };
    sock.on('data', onData);
    sock.once('error', reject);
  });
  return new RawWs(sock, rest);
}

// Open /ws as a fresh user in a room of its own, past the welcome frame.
async function connect({ extra } = {}) {
  const name = `u${++seq}`;
  const ws = await handshake(`/ws?room=${name}&username=${name}`, extra);
  ws.room = name;
  await ws.next((f) => f.json?.type === 'welcome', 5000, 'welcome');
  return ws;
}

const chat = (room, content) => JSON.stringify({ type: 'message', room, content });

// A chat message whose frame payload is exactly n bytes.
function chatOfLength(room, n) {
  const empty = chat(room, '');
  assert.ok(n >= empty.length);
  const content = 'x'.repeat(n - empty.length);
  return { json: chat(room, content), content };
}

// ---- framing -----------------------------------------------------------

test('text frames of 125, 126, 65535 and 65536 bytes round-trip', async () => {
  const ws = await connect();
  for (const n of [125, 126, 65535, 65536]) {
    const { json, content } = chatOfLength(ws.room, n);
    assert.equal(Buffer.byteLength(json), n);
    ws.send(text(json));
    await ws.message(content);
  }
  ws.destroy();
});

test('an empty text frame is delivered (and refused by the codec, not the transport)', async () => {
  const ws = await connect();
  ws.send(text(''));
  const f = await ws.next((x) => x.json?.type === 'error');
  assert.equal(f.json.code, 'bad_json');
  ws.send(text(chat(ws.room, 'still open')));
  await ws.message('still open');
  ws.destroy();
});

test('several frames in one TCP write', async () => {
  const ws = await connect();
  ws.send(text(chat(ws.room, 'one')), frame(FIN | 0x9, 'p'), text(chat(ws.room, 'two')), text(chat(ws.room, 'three')));
  await ws.message('one');
  await ws.message('two');
  await ws.message('three');
  const pong = await ws.next((f) => f.opcode === 0xa);
  assert.equal(pong.payload.toString(), 'p');
  ws.destroy();
});

test('one frame written a byte at a time, and split at every byte boundary', async () => {
  const ws = await connect();
  const bytes = text(chat(ws.room, 'trickle'));
  for (let i = 0; i < bytes.length; i++) {
    ws.sock.write(bytes.subarray(i, i + 1));
    await new Promise((r) => setTimeout(r, 2));
  }
  await ws.message('trickle');
  // The same message cut in two at each position (header included).
  const whole = text(chat(ws.room, 'split'));
  for (let k = 1; k < whole.length; k++) {
    ws.sock.write(whole.subarray(0, k));
    await new Promise((r) => setTimeout(r, 2));
    ws.sock.write(whole.subarray(k));
    await ws.message('split');
  }
  ws.destroy();
});

test('frames sent in the same packet as the upgrade request are not lost', async () => {
  const ws = await connect({ extra: Buffer.concat([frame(FIN | 0x9, 'early'), frame(FIN | 0x9, 'bird')]) });
  const a = await ws.next((f) => f.opcode === 0xa);
  const b = await ws.next((f) => f.opcode === 0xa);
  assert.equal(a.payload.toString(), 'early');
  assert.equal(b.payload.toString(), 'bird');
  ws.destroy();
});

test('a message over max_message_bytes closes with 1009', async () => {
  const ws = await connect();
  // The header alone announces too much: refused before the payload.
  const hdr = Buffer.alloc(14);
  hdr[0] = FIN | 0x2; hdr[1] = 0x80 | 127; hdr.writeBigUInt64BE(BigInt(MAX_MESSAGE + 1), 2);
  ws.send(hdr);
  assert.equal((await ws.closed()).code, 1009);
});

test('a fragmented message growing over max_message_bytes closes with 1009', async () => {
  const ws = await connect();
  const part = Buffer.alloc(MAX_MESSAGE / 2, 'a');
  ws.send(frame(0x2, part), frame(0x0, part), frame(FIN | 0x0, Buffer.from('b')));
  assert.equal((await ws.closed()).code, 1009);
});

test('a message of exactly max_message_bytes is accepted', async () => {
  const ws = await connect();
  // Binary: the JSON codec answers bad_encoding, which proves delivery.
  ws.send(frame(FIN | 0x2, Buffer.alloc(MAX_MESSAGE, 1)));
  const f = await ws.next((x) => x.json?.type === 'error', 10000);
  assert.ok(['bad_encoding', 'too_large'].includes(f.json.code), f.json.code);
  ws.destroy();
});

test('a non-minimal length encoding closes with 1002', async () => {
  const ws = await connect();
  const f = text('hi');
  // Re-encode the 2-byte payload with a 16-bit length.
  const bad = Buffer.concat([Buffer.from([f[0], 0x80 | 126, 0, 2]), f.subarray(2)]);
  ws.send(bad);
  assert.equal((await ws.closed()).code, 1002);
});

// ---- ping / pong -------------------------------------------------------

test('ping is answered by a pong with the same payload', async () => {
  const ws = await connect();
  for (const payload of [Buffer.alloc(0), Buffer.from('hello'), crypto.randomBytes(125)]) {
    ws.send(frame(FIN | 0x9, payload));
    const pong = await ws.next((f) => f.opcode === 0xa);
    assert.ok(pong.fin);
    assert.deepEqual(pong.payload, payload);
  }
  ws.destroy();
});

test('a ping over 125 bytes closes with 1002', async () => {
  const ws = await connect();
  ws.send(frame(FIN | 0x9, Buffer.alloc(126, 0x41)));
  assert.equal((await ws.closed()).code, 1002);
});

test('an unsolicited pong is ignored', async () => {
  const ws = await connect();
  ws.send(frame(FIN | 0xa, 'unsolicited'), text(chat(ws.room, 'after pong')));
  await ws.message('after pong');
  ws.destroy();
});

// ---- reserved bits, opcodes, masking -----------------------------------

for (const rsv of [0x40, 0x20, 0x10, 0x70]) {
  test(`reserved bits 0x${rsv.toString(16)} set close with 1002`, async () => {
    const ws = await connect();
    ws.send(frame(FIN | rsv | 0x1, chat(ws.room, 'rsv')));
    assert.equal((await ws.closed()).code, 1002);
    assert.equal(ws.frames.filter((f) => f.json?.content === 'rsv').length, 0);
  });
}

test('reserved opcodes 3-7 and 0xB-0xF close with 1002', async () => {
  await Promise.all([3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf].map(async (op) => {
    const ws = await connect();
    ws.send(frame(FIN | op, 'x'));
    assert.equal((await ws.closed()).code, 1002, `opcode ${op}`);
  }));
});

test('an unmasked client frame closes with 1002', async () => {
  const ws = await connect();
  ws.send(frame(FIN | 0x1, chat(ws.room, 'naked'), { mask: false }));
  assert.equal((await ws.closed()).code, 1002);
});

// ---- fragmentation -----------------------------------------------------

test('a fragmented text message is reassembled, pings in between answered', async () => {
  const ws = await connect();
  const json = Buffer.from(chat(ws.room, 'in three pieces'));
  ws.send(frame(0x1, json.subarray(0, 10)));
  ws.send(frame(FIN | 0x9, 'mid'));
  ws.send(frame(0x0, json.subarray(10, 20)));
  ws.send(frame(FIN | 0x0, json.subarray(20)));
  await ws.message('in three pieces');
  const pong = await ws.next((f) => f.opcode === 0xa);
  assert.equal(pong.payload.toString(), 'mid');
  ws.destroy();
});

test('empty fragments are allowed', async () => {
  const ws = await connect();
  ws.send(frame(0x1, ''), frame(0x0, chat(ws.room, 'empties')), frame(FIN | 0x0, ''));
  await ws.message('empties');
  ws.destroy();
});

test('a fragmented control frame closes with 1002', async () => {
  const ws = await connect();
  ws.send(frame(0x9, 'frag'), frame(FIN | 0x0, 'ment'));
  assert.equal((await ws.closed()).code, 1002);
});

test('a continuation frame with no message started closes with 1002', async () => {
  const ws = await connect();
  ws.send(frame(FIN | 0x0, 'orphan'));
  assert.equal((await ws.closed()).code, 1002);
});

test('a new data frame inside a fragmented message closes with 1002', async () => {
  const ws = await connect();
  ws.send(frame(0x1, '{"type":'), text(chat(ws.room, 'interloper')));
  assert.equal((await ws.closed()).code, 1002);
  assert.equal(ws.frames.filter((f) => f.json?.content === 'interloper').length, 0);
});

// ---- UTF-8 -------------------------------------------------------------

const badUtf8 = {
  'lone continuation byte': Buffer.from([0x80]),
  'overlong NUL': Buffer.from([0xc0, 0x80]),
  'overlong 3-byte': Buffer.from([0xe0, 0x80, 0xaf]),
  'UTF-16 surrogate': Buffer.from([0xed, 0xa0, 0x80]),
  'above U+10FFFF': Buffer.from([0xf4, 0x90, 0x80, 0x80]),
  'truncated at the end': Buffer.from([0x61, 0xe2, 0x82]),
  'byte 0xFF': Buffer.from([0xff]),
};

for (const [name, bytes] of Object.entries(badUtf8)) {
  test(`text with invalid UTF-8 (${name}) closes with 1007`, async () => {
    const ws = await connect();
    ws.send(frame(FIN | 0x1, Buffer.concat([Buffer.from('{"x":"'), bytes, Buffer.from('"}')])));
    assert.equal((await ws.closed()).code, 1007);
  });
}

test('invalid UTF-8 spread over fragments closes with 1007', async () => {
  const ws = await connect();
  // Each fragment alone is a valid prefix; together they form a surrogate.
  ws.send(frame(0x1, Buffer.from([0x61, 0xed])), frame(0x0, Buffer.from([0xa0])), frame(FIN | 0x0, Buffer.from([0x80])));
  assert.equal((await ws.closed()).code, 1007);
});

test('a message ending inside a character closes with 1007', async () => {
  const ws = await connect();
  ws.send(frame(0x1, Buffer.from('abc')), frame(FIN | 0x0, Buffer.from([0xf0, 0x9f, 0x98])));
  assert.equal((await ws.closed()).code, 1007);
});

test('valid UTF-8 split across fragment boundaries is accepted', async () => {
  const ws = await connect();
  const content = 'κόσμε 😀 ok';
  const json = Buffer.from(chat(ws.room, content));
  const emoji = json.indexOf(Buffer.from('😀'));
  const kappa = json.indexOf(Buffer.from('κ'));
  ws.send(frame(0x1, json.subarray(0, kappa + 1)), frame(0x0, json.subarray(kappa + 1, emoji + 2)),
    frame(0x0, json.subarray(emoji + 2, emoji + 3)), frame(FIN | 0x0, json.subarray(emoji + 3)));
  await ws.message(content);
  ws.destroy();
});

// ---- closing -----------------------------------------------------------

const validCodes = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999];
const invalidCodes = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535];

test('a close with a valid code is echoed, then the server closes TCP', async () => {
  await Promise.all(validCodes.map(async (code) => {
    const ws = await connect();
    ws.send(closeFrame(code, 'bye'));
    assert.equal((await ws.closed()).code, code, `code ${code}`);
  }));
});

test('a close with an invalid code closes with 1002', async () => {
  await Promise.all(invalidCodes.map(async (code) => {
    const ws = await connect();
    ws.send(closeFrame(code));
    assert.equal((await ws.closed()).code, 1002, `code ${code}`);
  }));
});

test('an empty close is answered by an empty close', async () => {
  const ws = await connect();
  ws.send(frame(FIN | 0x8));
  const c = await ws.closed();
  assert.equal(c.code, null);
});

test('a close payload of one byte closes with 1002', async () => {
  const ws = await connect();
  ws.send(frame(FIN | 0x8, Buffer.from([0x03])));
  assert.equal((await ws.closed()).code, 1002);
});

test('a close reason that is not UTF-8 closes with 1002', async () => {
  const ws = await connect();
  ws.send(closeFrame(1000, Buffer.from([0x61, 0xed, 0xa0, 0x80])));
  assert.equal((await ws.closed()).code, 1002);
});

test('a close with a 123-byte UTF-8 reason is echoed', async () => {
  const ws = await connect();
  ws.send(closeFrame(1000, 'é'.repeat(61) + 'x'));
  assert.equal((await ws.closed()).code, 1000);
});

test('a close split across writes is still understood', async () => {
  const ws = await connect();
  const c = closeFrame(4321, 'split close');
  ws.sock.write(c.subarray(0, 3));
  await new Promise((r) => setTimeout(r, 20));
  ws.sock.write(c.subarray(3));
  assert.equal((await ws.closed()).code, 4321);
});

test('nothing sent after a close is processed', async () => {
  const ws = await connect();
  ws.send(closeFrame(1000), text(chat(ws.room, 'too late')));
  assert.equal((await ws.closed()).code, 1000);
  assert.equal(ws.frames.filter((f) => f.json?.content === 'too late').length, 0);
});

test('a server-initiated close waits for the client and carries the code', async () => {
  // No username: the server sends an error frame and closes with 4400.
  const ws = await handshake('/ws');
  const err = await ws.next((f) => f.json?.type === 'error');
  assert.equal(err.json.code, 'bad_username');
  const c = await ws.next((f) => f.opcode === 8);
  assert.equal(c.payload.readUInt16BE(0), 4400);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(ws.ended, false, 'the server waits for our close');
  ws.send(closeFrame(4400));
  await ws.until(() => ws.ended, 5000, 'TCP close after the handshake');
});

test('a client that never answers a server close is dropped after close_timeout_ms', async () => {
  const t0 = Date.now();
  const ws = await handshake('/ws');
  await ws.next((f) => f.opcode === 8);
  await ws.until(() => ws.ended, 5000, 'the server to give up');
  assert.ok(Date.now() - t0 >= 900, `waited for close_timeout_ms (${Date.now() - t0} ms)`);
});

test('the server is still healthy after all of the above', async () => {
  const res = await fetch(`${srv.url}/healthz`);
  assert.equal(res.status, 200);
  const ws = await connect();
  ws.send(text(chat(ws.room, 'alive')));
  await ws.message('alive');
  ws.send(closeFrame(1000));
  assert.equal((await ws.closed()).code, 1000);
});
