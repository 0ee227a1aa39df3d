// Bad input, written from docs/PROTOCOL.md "Errors": each case gets an
// error frame with the exact code and a human reason, and the connection
// stays usable (a valid message afterwards is delivered). Repeated abuse
// closes with 4429. Subprotocol negotiation: unknown only → HTTP 400.
//
// One server for the file. max_errors is per connection, so each case uses
// a fresh connection and stays well below it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { Client } from '../lib/client.mjs';

const MAX_MESSAGE_BYTES = 1024;
const MAX_ERRORS = 5;
const ROOMS_PER_CONNECTION = 3;
let srv;

before(async () => {
  srv = await startServer({
    limits: {
      max_message_bytes: MAX_MESSAGE_BYTES,
      max_errors: MAX_ERRORS,
      rooms_per_connection: ROOMS_PER_CONNECTION,
      messages_per_second: 0, // no rate limit: errors here are the frames' own
    },
  });
});

after(async () => {
  const r = await srv.stop();
  assert.equal(r.signal, null, r.stderr);
  assert.equal(r.code, 0, `nebula exited ${r.code}:\n${r.stderr}`);
});

let seq = 0;

// A connection alone in a fresh room, its connect frames consumed.
async function fresh(protocols) {
  seq++;
  const room = `pe-${seq}`;
  const user = `user${seq}`;
  const c = await Client.connect(srv.wsUrl(room, user), protocols);
  await c.next((f) => f.type === 'presence' && f.room === room);
  return { c, room, user };
}

async function expectError(c, code, room) {
  const e = await c.next('error');
  assert.equal(e.code, code, `expected ${code}, got ${JSON.stringify(e)}`);
  assert.equal(typeof e.content, 'string', 'content is the human reason');
  assert.ok(e.content.length > 0, 'the reason is not empty');
  for (const k of ['sender', 'id', 'users']) assert.equal(e[k], undefined, `no ${k} in ${JSON.stringify(e)}`);
  if (room !== undefined) assert.equal(e.room, room, `room of ${JSON.stringify(e)}`);
  return e;
}

// The connection still works: a valid message is echoed, nothing closed.
async function stillUsable(c, room, user) {
  const content = `still usable ${Math.random()}`;
  c.send({ type: 'message', room, content });
  const m = await c.next((f) => f.type === 'message' && f.content === content);
  assert.equal(m.sender, user);
  assert.equal(m.room, room);
  assert.equal(c.closed, null);
  assert.ok(!c.frames.some((f) => f.type === 'error'), `no further error: ${JSON.stringify(c.frames)}`);
}

// [name, frame to send (string sent verbatim, function of room), code, room expected in the error]
const cases = [
  // not JSON, or not an object
  ['{', '{', 'bad_json'],
  ['not json', 'not json', 'bad_json'],
  ['[]', '[]', 'bad_json'],
  ['42', '42', 'bad_json'],
  ['"str"', '"str"', 'bad_json'],
  ['null', 'null', 'bad_json'],
  ['empty text frame', '', 'bad_json'],
  ['data after the object', (r) => `{"type":"message","room":"${r}","content":"x"} {}`, 'bad_json'],
  // type
  ['unknown type shout', '{"type":"shout"}', 'unknown_type'],
  ['server-only type presence', (r) => `{"type":"presence","room":"${r}","users":[]}`, 'unknown_type'],
  ['server-only type history', (r) => `{"type":"history","room":"${r}","content":"x"}`, 'unknown_type'],
  ['server-only type welcome', '{"type":"welcome"}', 'unknown_type'],
  ['server-only type error', '{"type":"error","code":"x","content":"y"}', 'unknown_type'],
  ['type is case-sensitive', (r) => `{"type":"MESSAGE","room":"${r}","content":"x"}`, 'unknown_type'],
  ['missing type', (r) => `{"room":"${r}","content":"x"}`, 'missing_field'],
  ['empty object', '{}', 'missing_field'],
  // fields a type needs
  ['message without room', '{"type":"message","content":"x"}', 'missing_field'],
  ['message without content', (r) => `{"type":"message","room":"${r}"}`, 'missing_field'],
  ['join without room', '{"type":"join"}', 'missing_field'],
  ['leave without room', '{"type":"leave"}', 'missing_field'],
  // wrong field types
  ['room is a number', '{"type":"message","room":5,"content":"x"}', 'bad_field'],
  ['content is a number', (r) => `{"type":"message","room":"${r}","content":5}`, 'bad_field'],
  ['content is an object', (r) => `{"type":"message","room":"${r}","content":{"a":1}}`, 'bad_field'],
  ['join room is an array', '{"type":"join","room":["dev"]}', 'bad_field'],
  ['type is a number', '{"type":5}', 'bad_field'],
  // membership
  ['message to a room not joined', '{"type":"message","room":"elsewhere","content":"x"}', 'not_joined', 'elsewhere'],
  ['leave of a room not joined', '{"type":"leave","room":"elsewhere"}', 'not_joined', 'elsewhere'],
  ['join of an already joined room', (r) => `{"type":"join","room":"${r}"}`, 'already_joined', (r) => r],
  // room names in join
  ['join with a space in the room', '{"type":"join","room":"bad room"}', 'bad_room'],
  ['join with a 65-byte room', `{"type":"join","room":"${'r'.repeat(65)}"}`, 'bad_room'],
  ['join with a non-ASCII room', '{"type":"join","room":"café"}', 'bad_room'],
  ['join with a slash in the room', '{"type":"join","room":"a/b"}', 'bad_room'],
  ['join with an empty room', '{"type":"join","room":""}', 'bad_room'],
];

for (const [name, frame, code, errRoom] of cases) {
  test(`${name} → ${code}, connection stays usable`, async () => {
    const { c, room, user } = await fresh();
    c.send(typeof frame === 'function' ? frame(room) : frame);
    await expectError(c, code, typeof errRoom === 'function' ? errRoom(room) : errRoom);
    await stillUsable(c, room, user);
    c.close();
  });
}

// The transport's message limit is the core's [limits] max_message_bytes
// (docs/TRANSPORT_WS.md): a longer message is refused by the transport
// with 1009 before it is assembled, so the core's too_large error is not
// reached over WebSocket.
test('one just under the limit is delivered; an oversized message closes with 1009, undelivered', async () => {
  const { c, room, user } = await fresh();
  const peer = await Client.connect(srv.wsUrl(room, 'peer'));
  await peer.next((f) => f.type === 'presence' && f.users.length === 2);
  const under = 'z'.repeat(MAX_MESSAGE_BYTES - 200); // the whole frame stays below 1024 bytes
  c.send({ type: 'message', room, content: under });
  const m = await peer.next('message');
  assert.equal(m.content, under);
  assert.equal(m.sender, user);
  c.send({ type: 'message', room, content: 'y'.repeat(2000) });
  assert.equal((await c.waitClose()).code, 1009);
  await peer.none((f) => f.type === 'message' && f.content.startsWith('y'), 200);
  peer.close();
});

test('binary frame to the JSON codec → bad_encoding, connection stays usable', async () => {
  const { c, room, user } = await fresh();
  c.ws.send(Buffer.from(JSON.stringify({ type: 'message', room, content: 'as binary' })), { binary: true });
  await expectError(c, 'bad_encoding');
  await c.none((f) => f.type === 'message', 100);
  await stillUsable(c, room, user);
  c.close();
});

test(`join beyond rooms_per_connection (${ROOMS_PER_CONNECTION}) → too_many_rooms`, async () => {
  const { c, room, user } = await fresh();
  for (let i = 1; i < ROOMS_PER_CONNECTION; i++) {
    c.send({ type: 'join', room: `${room}-x${i}` });
    await c.next((f) => f.type === 'presence' && f.room === `${room}-x${i}`);
  }
  c.send({ type: 'join', room: `${room}-over` });
  await expectError(c, 'too_many_rooms', `${room}-over`);
  await stillUsable(c, room, user);
  // after leaving one, the join succeeds
  c.send({ type: 'leave', room: `${room}-x1` });
  await c.next('leave');
  c.send({ type: 'join', room: `${room}-over` });
  await c.next((f) => f.type === 'presence' && f.room === `${room}-over`);
  c.close();
});

test('errors are sent to the offender only; the room does not see them', async () => {
  const { c, room } = await fresh();
  const peer = await Client.connect(srv.wsUrl(room, 'peer'));
  await peer.next((f) => f.type === 'presence' && f.users.length === 2);
  c.send('not json');
  await expectError(c, 'bad_json');
  await peer.none((f) => f.type === 'error', 200);
  c.close(); peer.close();
});

test(`repeated abuse (more than max_errors = ${MAX_ERRORS}) closes with 4429; others unaffected`, async () => {
  const { c, room } = await fresh();
  const peer = await Client.connect(srv.wsUrl(room, 'peer'));
  await peer.next((f) => f.type === 'presence' && f.users.length === 2);
  for (let i = 0; i < 30; i++) c.send('not json');
  const closed = await c.waitClose(5000);
  assert.equal(closed.code, 4429, JSON.stringify(closed));
  const errors = c.frames.filter((f) => f.type === 'error');
  assert.ok(errors.length >= MAX_ERRORS, `at least ${MAX_ERRORS} error frames before the close, got ${errors.length}`);
  assert.ok(errors.length <= MAX_ERRORS + 1, `the close comes right after the limit, got ${errors.length} errors`);
  // the abuser leaves the room like any closed connection
  const lv = await peer.next('leave');
  assert.equal(lv.room, room);
  const p = await peer.next((f) => f.type === 'presence' && f.users.length === 1);
  assert.deepEqual(p.users, ['peer']);
  peer.send({ type: 'message', room, content: 'peer still fine' });
  await peer.next((f) => f.type === 'message' && f.content === 'peer still fine');
  peer.close();
});

test('a few errors spread out do not close the connection', async () => {
  const { c, room, user } = await fresh();
  for (let i = 0; i < MAX_ERRORS; i++) {
    c.send('{');
    await expectError(c, 'bad_json');
  }
  await stillUsable(c, room, user);
  c.close();
});

// ------------------------------------------------------ subprotocols

test('an unknown subprotocol offered alone → HTTP 400', async () => {
  await assert.rejects(Client.connect(srv.wsUrl('sp', 'alice'), 'nebula.bogus.v1'), /HTTP 400/);
  await assert.rejects(Client.connect(srv.wsUrl('sp', 'alice'), ['chat', 'nebula.bogus.v1']), /HTTP 400/);
  // the refused ones never joined: the name is free
  const ok = await Client.connect(srv.wsUrl('sp', 'alice'));
  const p = await ok.next('presence');
  assert.deepEqual(p.users, ['alice']);
  ok.close();
});

test('offering nebula.json.v1 echoes it; offering none gets no subprotocol', async () => {
  const { c, room, user } = await fresh('nebula.json.v1');
  assert.equal(c.ws.protocol, 'nebula.json.v1');
  await stillUsable(c, room, user);
  c.close();
  const mixed = await fresh(['nebula.bogus.v1', 'nebula.json.v1']);
  assert.equal(mixed.c.ws.protocol, 'nebula.json.v1', 'the known one of several is chosen');
  await stillUsable(mixed.c, mixed.room, mixed.user);
  mixed.c.close();
  const plain = await fresh();
  assert.equal(plain.c.ws.protocol, '', 'no Sec-WebSocket-Protocol header without an offer');
  await stillUsable(plain.c, plain.room, plain.user);
  plain.c.close();
});
