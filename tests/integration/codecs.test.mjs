// JSON and Protobuf clients in one room (docs/PROTOCOL.md, docs/CODEC_PROTOBUF.md).
//
// The Protobuf client is tests/lib/proto_client.mjs: protobufjs reading
// proto/nebula.proto, nothing of the server's. Both clients turn frames
// into the same shape, so "the same events in the same order" is a
// deepEqual of what each one received, ts and id included (both encodings
// are made from one server-side message).
//
// Also: the subprotocol negotiation for every order of `codecs`, and
// malformed Protobuf getting error frames on a connection that stays
// usable.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { Client } from '../lib/client.mjs';
import { ProtoClient, PROTO_SUBPROTOCOL, fromJsonShape } from '../lib/proto_client.mjs';

const JSON_SUBPROTOCOL = 'nebula.json.v1';
let srv; // codecs = ["codec-json", "codec-protobuf"]

before(async () => {
  srv = await startServer({
    plugins: { codecs: ['codec-json', 'codec-protobuf'] },
    server: { history_per_room: 10 },
    limits: { max_errors: 1000, max_message_bytes: 131072 },
  });
});

after(async () => {
  const r = await srv.stop();
  assert.equal(r.signal, null, r.stderr);
  assert.equal(r.code, 0, `nebula exited ${r.code}:\n${r.stderr}`);
});

// Every frame until (and including) the first that matches pred.
async function framesUntil(c, pred, timeoutMs = 5000) {
  const out = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const f = await c.next(() => true, Math.max(1, deadline - Date.now()));
    out.push(f);
    if (pred(f)) return out;
  }
}
// Wait until a frame matching pred is queued, without taking it.
async function arrived(c, pred, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!c.frames.some(pred)) {
    if (Date.now() > deadline) throw new Error(`timeout; have ${JSON.stringify(c.frames).slice(0, 500)}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
const presenceWith = (room, n) => (f) => f.type === 'presence' && f.room === room && f.users.length === n;

async function expectError(c, code) {
  const f = await c.next('error');
  assert.equal(f.code, code, JSON.stringify(f));
  assert.equal(typeof f.content, 'string');
  assert.ok(f.content.length > 0, 'a human reason');
  return f;
}

// Still usable: a join of a fresh room is answered.
async function stillUsable(c, room) {
  c.send({ type: 'join', room });
  const fr = await framesUntil(c, (f) => f.type === 'presence' && f.room === room);
  assert.deepEqual(fr.map((f) => f.type), ['join', 'presence'], JSON.stringify(fr));
}

test('the server answers with the subprotocol the client chose', async () => {
  const p = await ProtoClient.connect(srv.wsUrl(null, 'sub-p'));
  assert.equal(p.ws.protocol, PROTO_SUBPROTOCOL);
  const w = await p.next('welcome');
  assert.equal(w.sender, 'sub-p');
  assert.ok(Number.isInteger(w.ts) && Math.abs(w.ts - Date.now()) < 10000, `ts ${w.ts}`);
  const j = await Client.connect(srv.wsUrl(null, 'sub-j'), [JSON_SUBPROTOCOL]);
  assert.equal(j.ws.protocol, JSON_SUBPROTOCOL);
  await j.next('welcome');
  const d = await Client.connect(srv.wsUrl(null, 'sub-d')); // none offered: the default, JSON
  assert.equal(d.ws.protocol, '');
  await d.next('welcome');
  for (const c of [p, j, d]) c.close();
});

test('mixed room: JSON and Protobuf members see the same events in the same order', async () => {
  const room = 'mixed';
  const j1 = await Client.connect(srv.wsUrl(room, 'jane'));
  await framesUntil(j1, presenceWith(room, 1));
  const p1 = await ProtoClient.connect(srv.wsUrl(room, 'pete'));
  await framesUntil(p1, presenceWith(room, 2));
  const p2 = await ProtoClient.connect(srv.wsUrl(room, 'paul'));
  await framesUntil(p2, presenceWith(room, 3));
  const j2 = await Client.connect(srv.wsUrl(room, 'joan'));
  await framesUntil(j2, presenceWith(room, 4));
  const all = [j1, p1, p2, j2];
  // Everyone but joan still has joan's join and presence queued.
  const seen = new Map(all.map((c) => [c, []]));
  for (const c of [j1, p1, p2])
    seen.get(c).push(...(await framesUntil(c, presenceWith(room, 4))));

  // Interleaved senders of both codecs, Unicode and an empty content.
  const lines = [[j1, 'hello from json'], [p1, 'hello from proto ✓'], [p2, ''], [j2, 'zoë 😀'],
    [p1, 'x'.repeat(3000)], [j1, 'last']];
  // Each waits for its own echo, so the room's order is the list's order
  // (messages of different connections have no order of their own).
  for (const [c, content] of lines) {
    c.send({ type: 'message', room, content });
    await arrived(c, (f) => f.type === 'message' && f.content === content);
  }
  for (const c of all)
    seen.get(c).push(...(await framesUntil(c, (f) => f.type === 'message' && f.content === 'last')));
  // pete leaves: the others see leave + presence.
  p1.send({ type: 'leave', room });
  for (const c of all)
    seen.get(c).push(...(await framesUntil(c, (f) => f.type === 'leave' && f.sender === 'pete')));
  for (const c of [j1, p2, j2])
    seen.get(c).push(...(await framesUntil(c, presenceWith(room, 3))));

  const ref = seen.get(j1);
  assert.deepEqual(ref.filter((f) => f.type === 'message').map((f) => f.content),
    lines.map(([, content]) => content));
  const seqs = [];
  for (const f of ref.filter((f) => f.type === 'message')) {
    assert.equal(typeof f.id, 'string');
    assert.ok(Number.isInteger(f.ts));
    seqs.push(f.seq);
  }
  // seq travels in both codecs (the views are compared whole below).
  assert.ok(seqs.every((q, i) => Number.isInteger(q) && (i === 0 || q === seqs[i - 1] + 1)),
    `message seq strictly increasing by one: ${seqs}`);
  // Each member joined later than jane: its view is jane's from its first
  // frame on (pete's ends with its own leave: no presence after it).
  for (const c of [p1, p2, j2]) {
    const mine = seen.get(c);
    const from = ref.findIndex((f) => JSON.stringify(f) === JSON.stringify(mine[0]));
    assert.ok(from >= 0, `first frame ${JSON.stringify(mine[0])} is in jane's view`);
    assert.deepEqual(mine, ref.slice(from, from + mine.length),
      'a member of either codec sees exactly what a JSON member sees');
  }
  assert.equal(seen.get(p2).length + 4, ref.length, "paul's view: all but pete's and his own joins");
  for (const c of all) await c.none(() => true, 100);
  for (const c of all) c.close();
});

test('history and presence are the same in both codecs', async () => {
  const room = 'mixed-hist';
  const a = await ProtoClient.connect(srv.wsUrl(room, 'a'));
  await framesUntil(a, presenceWith(room, 1));
  a.send({ type: 'message', room, content: 'one' });
  a.send({ type: 'message', room, content: 'two' });
  const sent = [];
  sent.push(await a.next('message'), await a.next('message'));
  const j = await Client.connect(srv.wsUrl(room, 'j'));
  const p = await ProtoClient.connect(srv.wsUrl(room, 'p'));
  const jf = await framesUntil(j, (f) => f.type === 'presence' && f.users.includes('j'));
  const pf = await framesUntil(p, (f) => f.type === 'presence' && f.users.includes('p'));
  assert.deepEqual(jf.map((f) => f.type), ['welcome', 'history', 'history', 'join', 'presence']);
  assert.deepEqual(pf.map((f) => f.type), ['welcome', 'history', 'history', 'join', 'presence']);
  // The history frames are the original messages, in both encodings.
  for (const fr of [jf, pf])
    assert.deepEqual(fr.slice(1, 3), sent.map((m) => ({ ...m, type: 'history' })));
  assert.deepEqual(pf[4].users, ['a', 'j', 'p']);
  for (const c of [a, j, p]) c.close();
});

test('semantic errors carry the same codes in both codecs', async () => {
  const j = await Client.connect(srv.wsUrl(null, 'err-j'));
  const p = await ProtoClient.connect(srv.wsUrl(null, 'err-p'));
  await j.next('welcome');
  await p.next('welcome');
  const cases = [
    [{ type: 'message', room: 'nowhere', content: 'x' }, 'not_joined'],
    [{ type: 'leave', room: 'nowhere' }, 'not_joined'],
    [{ type: 'join', room: 'bad room!' }, 'bad_room'],
    [{ type: 'join' }, 'missing_field'],
    [{ type: 'welcome' }, 'unknown_type'],
    [{ type: 'presence', room: 'r' }, 'unknown_type'],
  ];
  for (const [msg, code] of cases) {
    j.send(msg);
    p.send(msg);
    const ej = await expectError(j, code);
    const ep = await expectError(p, code);
    assert.deepEqual({ ...ep, ts: 0 }, { ...ej, ts: 0 }, `the same error for ${JSON.stringify(msg)}`);
  }
  for (const c of [j, p]) c.close();
});

test('malformed Protobuf gets an error frame and the connection stays usable', async () => {
  const p = await ProtoClient.connect(srv.wsUrl(null, 'mal'));
  await p.next('welcome');
  const big = Buffer.alloc(2 + 2 * 32768);
  big[0] = 0x08; big[1] = 0x04; // presence, then 32768 empty user names (64 KiB)
  for (let i = 0; i < 32768; i++) { big[2 + 2 * i] = 0x2a; big[3 + 2 * i] = 0x00; }
  const cases = [
    [[0x08], 'bad_message'], // truncated varint
    [[0x08, 0x80], 'bad_message'],
    [[0x08, 0x01, 0x38, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], 'bad_message'],
    [[0x08, 0x01, 0x12, 0x05, 0x61], 'bad_message'], // length past the end
    [[0x08, 0x01, 0x12, 0xff, 0xff, 0xff, 0xff, 0x0f], 'bad_message'],
    [[0x08, 0x01, 0x6b], 'bad_message'], // a group
    [[0x08, 0x01, 0x6f], 'bad_message'], // wire type 7
    [[0x00, 0x00], 'bad_message'], // field 0
    [[0x08, 0x02, 0x10, 0x01], 'bad_field'], // room as a varint
    [[0x0a, 0x01, 0x01], 'bad_field'], // type as bytes
    [[0x08, 0x01, 0x12, 0x01, 0xff], 'bad_field'], // invalid UTF-8
    [[0x08, 0x01, 0x22, 0x03, 0x61, 0x00, 0x62], 'bad_field'], // a NUL
    [[0x08, 0x01, 0x48, 0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10], 'bad_field'], // seq > 2^53
    [[], 'missing_field'], // an empty Envelope has no type
    [[0x12, 0x01, 0x72], 'missing_field'],
    [[0x08, 0x08], 'unknown_type'],
    [[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], 'unknown_type'], // -1
    [big, 'too_complex'], // 64 KiB repeated field: beyond [codec-protobuf] max_fields, refused before unpacking
  ];
  for (const [bytes, code] of cases) {
    p.send(Buffer.from(bytes));
    const e = await expectError(p, code);
    assert.equal(e.room, undefined);
  }
  p.send('{"type":"join","room":"x"}'); // a text frame to the binary codec
  await expectError(p, 'bad_encoding');
  // Unknown fields (and the numbers reserved for later) are skipped.
  const known = fromJsonShape({ type: 'join', room: 'mal-ok' });
  p.send(Buffer.concat([Buffer.from([0x68, 0x05, 0x72, 0x01, 0x00, 0xa2, 0x06, 0x00]), known]));
  const fr = await framesUntil(p, (f) => f.type === 'presence' && f.room === 'mal-ok');
  assert.deepEqual(fr.map((f) => f.type), ['join', 'presence']);
  await stillUsable(p, 'mal-after');
  p.close();
});

// The matrix of `codecs`: each order, and each codec alone.
for (const codecs of [['codec-protobuf'], ['codec-protobuf', 'codec-json'], ['codec-json']]) {
  test(`codecs = ${JSON.stringify(codecs)}: the first is the default, the others by subprotocol`, async () => {
    const s = await startServer({ plugins: { codecs } });
    try {
      const protoDefault = codecs[0] === 'codec-protobuf';
      // No subprotocol offered: the default codec, without a header.
      const d = protoDefault ? await ProtoClient.connect(s.wsUrl('m', 'dflt'), [])
        : await Client.connect(s.wsUrl('m', 'dflt'));
      assert.equal(d.ws.protocol, '');
      assert.equal((await d.next('welcome')).sender, 'dflt');
      await framesUntil(d, presenceWith('m', 1));
      for (const [name, sub, Cls] of [['codec-json', JSON_SUBPROTOCOL, Client],
        ['codec-protobuf', PROTO_SUBPROTOCOL, ProtoClient]]) {
        if (codecs.includes(name)) {
          const c = await Cls.connect(s.wsUrl('m', `u-${name}`), [sub]);
          assert.equal(c.ws.protocol, sub);
          await framesUntil(c, presenceWith('m', 2));
          c.send({ type: 'message', room: 'm', content: `via ${name}` });
          const got = await c.next('message');
          const other = await d.next('message');
          assert.deepEqual(other, got);
          assert.equal(got.content, `via ${name}`);
          c.close();
          await framesUntil(d, presenceWith('m', 1));
        } else {
          await assert.rejects(Cls.connect(s.wsUrl('m', 'nope'), [sub]), /HTTP 400/);
        }
      }
      d.close();
    } finally {
      const r = await s.stop();
      assert.equal(r.code, 0, r.stderr);
    }
  });
}
