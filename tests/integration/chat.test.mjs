// The chat protocol end to end, written from docs/PROTOCOL.md: the frames a
// client receives on connect, join and leave (fields and order), messages
// and their echo, room isolation, history replay, presence, duplicate
// usernames, name rules, %-decoding, Unicode content, and a room of 50.
//
// One server for the whole file; every test uses its own room names so the
// tests do not see each other's traffic.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, matrix } from '../lib/server.mjs';
import { Client } from '../lib/client.mjs';

const HISTORY = 5; // [server] history_per_room for this server
let srv;

before(async () => {
  srv = await startServer({ server: { history_per_room: HISTORY } });
});

after(async () => {
  const r = await srv.stop();
  assert.equal(r.signal, null, r.stderr);
  assert.equal(r.code, 0, `nebula exited ${r.code}:\n${r.stderr}`);
});

// ---------------------------------------------------------------- helpers

// Take frames in arrival order until one matches pred; returns all taken.
async function framesUntil(c, pred, timeoutMs = 5000) {
  const out = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const f = await c.next(() => true, Math.max(1, deadline - Date.now()));
    out.push(f);
    if (pred(f)) return out;
  }
}

const isPresence = (room) => (f) => f.type === 'presence' && f.room === room;
const sorted = (names) => [...names].sort((a, b) => (Buffer.compare(Buffer.from(a), Buffer.from(b))));

// A ts is an integer number of ms since the epoch, close to now.
function assertTs(ts, what = 'ts') {
  assert.equal(typeof ts, 'number', `${what} is a number`);
  assert.ok(Number.isInteger(ts), `${what} ${ts} is an integer`);
  assert.ok(Math.abs(ts - Date.now()) < 10000, `${what} ${ts} is close to now (${Date.now()})`);
}

// Strip ts (checked separately) and, unless expected names them, the room
// order's seq (a positive integer, on messages and history always) and the
// joiner's epoch (a string, on its own join only); compare the rest exactly:
// the server only emits the fields that apply. pipeline.test.mjs checks
// what seq and epoch say.
function assertFrame(f, expected) {
  assert.ok(f && typeof f === 'object', `frame ${JSON.stringify(f)}`);
  assertTs(f.ts, `${f.type}.ts`);
  const { ts, ...rest } = f;
  if (!('seq' in expected)) {
    if (f.type === 'message' || f.type === 'history') assert.ok('seq' in f, `seq on ${JSON.stringify(f)}`);
    if ('seq' in f) assert.ok(Number.isInteger(f.seq) && f.seq > 0, `seq ${f.seq} is a positive integer`);
    delete rest.seq;
  }
  if (!('epoch' in expected)) {
    if ('epoch' in f) {
      assert.equal(f.type, 'join', `only a join carries epoch: ${JSON.stringify(f)}`);
      assert.equal(typeof f.epoch, 'string');
    }
    delete rest.epoch;
  }
  assert.deepEqual(rest, expected, `frame ${JSON.stringify(f)}`);
}

function assertMessage(f, { room, sender, content }) {
  assert.equal(typeof f.id, 'string', `id is a string in ${JSON.stringify(f)}`);
  assert.ok(f.id.length > 0, 'id is not empty');
  assertFrame(f, { type: 'message', room, sender, content, id: f.id });
}

// Connect (room may be null), check the frames of the connect sequence up
// to the client's own presence, return the client.
async function enter(room, user, { expectUsers, url } = {}) {
  const c = await Client.connect(url || srv.wsUrl(room, user));
  const welcome = await c.next(() => true);
  assertFrame(welcome, { type: 'welcome', sender: user });
  if (room) {
    const fr = await framesUntil(c, isPresence(room));
    const hist = fr.filter((f) => f.type === 'history');
    const rest = fr.filter((f) => f.type !== 'history');
    assert.equal(rest.length, 2, `join + presence after history: ${JSON.stringify(fr)}`);
    assertFrame(rest[0], { type: 'join', room, sender: user });
    if (expectUsers) assertFrame(rest[1], { type: 'presence', room, users: expectUsers });
    c.history = hist;
  }
  return c;
}

// Send a message and wait for its echo.
async function say(c, room, content) {
  c.send({ type: 'message', room, content });
  return c.next((f) => f.type === 'message' && f.room === room && f.content === content);
}

function closeAll(...cs) { for (const c of cs) if (c && !c.closed) c.close(); }

// ---------------------------------------------------------------- tests

test('the first frame is welcome with the own name', async () => {
  const c = await Client.connect(srv.wsUrl('wel', 'alice'));
  const first = await c.next(() => true);
  assertFrame(first, { type: 'welcome', sender: 'alice' });
  const fr = await framesUntil(c, isPresence('wel'));
  assert.deepEqual(fr.map((f) => f.type), ['join', 'presence']);
  assertFrame(fr[0], { type: 'join', room: 'wel', sender: 'alice' });
  assertFrame(fr[1], { type: 'presence', room: 'wel', users: ['alice'] });
  closeAll(c);
});

test('two users exchange messages; both get each message with server-set fields', async () => {
  const a = await enter('chat1', 'alice', { expectUsers: ['alice'] });
  const b = await enter('chat1', 'bob', { expectUsers: ['alice', 'bob'] });
  const ids = new Set();

  a.send({ type: 'message', room: 'chat1', content: 'Hi bob' });
  const a1 = await a.next('message');
  const b1 = await b.next('message');
  assertMessage(a1, { room: 'chat1', sender: 'alice', content: 'Hi bob' });
  assert.deepEqual(b1, a1, 'the sender echo and the peer copy are the same message');
  ids.add(a1.id);

  b.send({ type: 'message', room: 'chat1', content: 'Hi alice' });
  const b2 = await b.next('message');
  const a2 = await a.next('message');
  assertMessage(b2, { room: 'chat1', sender: 'bob', content: 'Hi alice' });
  assert.deepEqual(a2, b2);
  ids.add(a2.id);

  // several more, in order, each with its own id
  for (let i = 0; i < 5; i++) a.send({ type: 'message', room: 'chat1', content: `n${i}` });
  for (let i = 0; i < 5; i++) {
    const ma = await a.next('message');
    const mb = await b.next('message');
    assertMessage(ma, { room: 'chat1', sender: 'alice', content: `n${i}` });
    assert.deepEqual(mb, ma);
    ids.add(ma.id);
  }
  assert.equal(ids.size, 7, 'every message has a distinct id');
  closeAll(a, b);
});

test('a client cannot forge sender, id or ts; unknown fields are ignored', async () => {
  const a = await enter('forge', 'alice');
  const b = await enter('forge', 'bob');
  a.send({ type: 'message', room: 'forge', content: 'forged', sender: 'mallory', id: 'forged-id', ts: 1, extra: { x: [1, 2] } });
  const m = await b.next('message');
  assertMessage(m, { room: 'forge', sender: 'alice', content: 'forged' });
  assert.notEqual(m.id, 'forged-id');
  const echo = await a.next('message');
  assert.deepEqual(echo, m);
  // with a forged ts far in the future
  a.send({ type: 'message', room: 'forge', content: 'future', ts: 4102444800000, sender: 'bob' });
  const m2 = await b.next('message');
  assertMessage(m2, { room: 'forge', sender: 'alice', content: 'future' });
  closeAll(a, b);
});

test('room isolation: a user in dev sees nothing of general', async () => {
  const g = await enter('iso-general', 'alice');
  const g2 = await enter('iso-general', 'carol');
  const d = await enter('iso-dev', 'bob', { expectUsers: ['bob'] });
  await say(g, 'iso-general', 'for general only');
  await g2.next((f) => f.type === 'message' && f.content === 'for general only');
  await d.none(() => true, 300); // not the message, nor general's join/presence of carol
  // and the other way round
  await say(d, 'iso-dev', 'for dev only');
  await g.none('message', 200);
  await g2.none('message', 50);
  closeAll(g, g2, d);
});

test('join shows existing users: presence sorted by byte value, join event with sender', async () => {
  // Byte order puts upper case first: Bob < alice < bob (a locale sort would not).
  const bob = await enter('js', 'bob', { expectUsers: ['bob'] });
  const Bob = await enter('js', 'Bob', { expectUsers: ['Bob', 'bob'] }); // names are case-sensitive
  const alice = await enter('js', 'alice', { expectUsers: ['Bob', 'alice', 'bob'] });
  // the members already there get join(U) then presence, in that order
  for (const [c, joiners] of [[bob, ['Bob', 'alice']], [Bob, ['alice']]]) {
    for (const u of joiners) {
      const fr = await framesUntil(c, isPresence('js'));
      assert.deepEqual(fr.map((f) => f.type), ['join', 'presence'], JSON.stringify(fr));
      assertFrame(fr[0], { type: 'join', room: 'js', sender: u });
      assert.deepEqual(fr[1].users, sorted(u === 'Bob' ? ['bob', 'Bob'] : ['bob', 'Bob', 'alice']));
    }
  }
  assert.deepEqual(sorted(['bob', 'Bob', 'alice']), ['Bob', 'alice', 'bob']);
  closeAll(bob, Bob, alice);
});

test('history: earlier messages are replayed oldest first before the own join and presence', async () => {
  const a = await enter('hist', 'alice');
  assert.deepEqual(a.history, [], 'a new room has no history');
  const sent = [];
  for (const content of ['first', 'second', 'third']) sent.push(await say(a, 'hist', content));

  const b = await Client.connect(srv.wsUrl('hist', 'bob'));
  const fr = await framesUntil(b, isPresence('hist'));
  assert.deepEqual(fr.map((f) => f.type), ['welcome', 'history', 'history', 'history', 'join', 'presence'],
    JSON.stringify(fr));
  assertFrame(fr[0], { type: 'welcome', sender: 'bob' });
  for (let i = 0; i < 3; i++) {
    assert.deepEqual(fr[1 + i], { ...sent[i], type: 'history' }, 'history keeps room, sender, content, id, ts');
  }
  assertFrame(fr[4], { type: 'join', room: 'hist', sender: 'bob' });
  assertFrame(fr[5], { type: 'presence', room: 'hist', users: ['alice', 'bob'] });

  // history frames go to the joiner only
  await a.next((f) => f.type === 'presence' && f.users.length === 2);
  await a.none('history', 100);

  // also for a join on an open connection, and messages from several senders
  sent.push(await say(b, 'hist', 'fourth'));
  const c = await enter('hist-other', 'carol');
  c.send({ type: 'join', room: 'hist' });
  const fr2 = await framesUntil(c, isPresence('hist'));
  assert.deepEqual(fr2.map((f) => f.type), ['history', 'history', 'history', 'history', 'join', 'presence']);
  for (let i = 0; i < 4; i++) assert.deepEqual(fr2[i], { ...sent[i], type: 'history' });
  assertFrame(fr2[5], { type: 'presence', room: 'hist', users: ['alice', 'bob', 'carol'] });
  closeAll(a, b, c);
});

test(`history keeps the last history_per_room (${HISTORY}) messages`, async () => {
  const a = await enter('hist-cap', 'alice');
  const sent = [];
  for (let i = 0; i < HISTORY + 3; i++) sent.push(await say(a, 'hist-cap', `m${i}`));
  const b = await enter('hist-cap', 'bob', { expectUsers: ['alice', 'bob'] });
  assert.deepEqual(b.history, sent.slice(-HISTORY).map((m) => ({ ...m, type: 'history' })));
  closeAll(a, b);
});

// Without a store an emptied room is forgotten with its history; with one
// (the plugin matrix), the history comes back from the store.
test('an empty room is forgotten with its history, unless a store keeps it', async () => {
  const a = await enter('hist-gone', 'alice');
  await say(a, 'hist-gone', 'lost');
  a.send({ type: 'leave', room: 'hist-gone' });
  assertFrame(await a.next('leave'), { type: 'leave', room: 'hist-gone', sender: 'alice' });
  a.send({ type: 'join', room: 'hist-gone' });
  const fr = await framesUntil(a, isPresence('hist-gone'));
  const kept = matrix.store !== 'none' ? ['history'] : [];
  assert.deepEqual(fr.map((f) => f.type), [...kept, 'join', 'presence'], JSON.stringify(fr));
  if (kept.length) {
    const { type, room, sender, content } = fr[0];
    assert.deepEqual({ type, room, sender, content }, { type: 'history', room: 'hist-gone', sender: 'alice', content: 'lost' });
  }
  assertFrame(fr[fr.length - 1], { type: 'presence', room: 'hist-gone', users: ['alice'] });
  closeAll(a);
});

test('join and leave further rooms on the same connection', async () => {
  const alice = await enter('lv-main', 'alice');
  const bob = await enter('lv-main', 'bob');
  const carol = await enter('lv-dev', 'carol', { expectUsers: ['carol'] });

  // join: the joiner gets join(self) + presence; the members get the same
  bob.send({ type: 'join', room: 'lv-dev' });
  const fr = await framesUntil(bob, isPresence('lv-dev'));
  assert.deepEqual(fr.map((f) => f.type), ['join', 'presence'], JSON.stringify(fr));
  assertFrame(fr[0], { type: 'join', room: 'lv-dev', sender: 'bob' });
  assertFrame(fr[1], { type: 'presence', room: 'lv-dev', users: ['bob', 'carol'] });
  const cf = await framesUntil(carol, isPresence('lv-dev'));
  assert.deepEqual(cf.map((f) => f.type), ['join', 'presence']);
  assertFrame(cf[0], { type: 'join', room: 'lv-dev', sender: 'bob' });
  assertFrame(cf[1], { type: 'presence', room: 'lv-dev', users: ['bob', 'carol'] });
  alice.send({ type: 'join', room: 'lv-dev' });
  await framesUntil(alice, isPresence('lv-dev'));
  await framesUntil(bob, (f) => isPresence('lv-dev')(f) && f.users.length === 3);
  await framesUntil(carol, (f) => isPresence('lv-dev')(f) && f.users.length === 3);

  // messages to lv-dev reach every member of lv-dev, and only lv-dev's frames say lv-dev
  const m = await say(carol, 'lv-dev', 'dev talk');
  assert.deepEqual(await bob.next('message'), m);
  assert.deepEqual(await alice.next('message'), m);
  // bob is still in lv-main
  const m2 = await say(alice, 'lv-main', 'main talk');
  assert.deepEqual(await bob.next('message'), m2);
  await carol.none('message', 100);

  // bob leaves lv-dev: he gets his own leave, the others leave + presence without him
  bob.send({ type: 'leave', room: 'lv-dev' });
  assertFrame(await bob.next('leave'), { type: 'leave', room: 'lv-dev', sender: 'bob' });
  for (const c of [alice, carol]) {
    const lf = (await framesUntil(c, isPresence('lv-dev'))).filter((f) => f.room === 'lv-dev');
    assert.deepEqual(lf.map((f) => f.type), ['leave', 'presence'], JSON.stringify(lf));
    assertFrame(lf[0], { type: 'leave', room: 'lv-dev', sender: 'bob' });
    assertFrame(lf[1], { type: 'presence', room: 'lv-dev', users: ['alice', 'carol'] });
  }
  // messages to the left room no longer reach him; lv-main still does
  const m3 = await say(carol, 'lv-dev', 'after bob left');
  assert.deepEqual(await alice.next('message'), m3);
  const m4 = await say(alice, 'lv-main', 'main again');
  assert.deepEqual(await bob.next('message'), m4, 'bob is still in lv-main');
  await bob.none((f) => f.room === 'lv-dev', 200);
  closeAll(alice, bob, carol);
});

test('closing a socket sends leave and presence to every room the user was in', async () => {
  const alice = await enter('cl-a', 'alice');
  const bob = await enter('cl-a', 'bob');
  const carol = await enter('cl-b', 'carol');
  alice.send({ type: 'join', room: 'cl-b' });
  await framesUntil(alice, isPresence('cl-b'));
  await framesUntil(carol, (f) => isPresence('cl-b')(f) && f.users.length === 2);

  alice.close();
  for (const [c, room, left] of [[bob, 'cl-a', ['bob']], [carol, 'cl-b', ['carol']]]) {
    const fr = await framesUntil(c, isPresence(room));
    assert.deepEqual(fr.map((f) => f.type), ['leave', 'presence'], JSON.stringify(fr));
    assertFrame(fr[0], { type: 'leave', room, sender: 'alice' });
    assertFrame(fr[1], { type: 'presence', room, users: left });
  }
  // the name is free again
  const again = await enter('cl-a', 'alice', { expectUsers: ['alice', 'bob'] });
  closeAll(bob, carol, again);
});

test('duplicate username on connect: username_taken, close 4409; the holder sees nothing', async () => {
  const a = await enter('dup1', 'alice');
  const b = await enter('dup1', 'bob');
  const dup = await Client.connect(srv.wsUrl('dup1', 'alice'));
  const err = await dup.next('error');
  assert.equal(err.code, 'username_taken', JSON.stringify(err));
  assert.equal(typeof err.content, 'string');
  assert.ok(err.content.length > 0);
  assert.equal(err.room, 'dup1');
  const closed = await dup.waitClose();
  assert.equal(closed.code, 4409);
  assert.ok(!dup.frames.some((f) => f.type === 'join' || f.type === 'presence' || f.type === 'history'),
    `no join/presence/history for the refused connection: ${JSON.stringify(dup.frames)}`);
  await framesUntil(a, (f) => f.type === 'presence' && f.users.length === 2); // bob's arrival
  await a.none(() => true, 200);
  await b.none(() => true, 50);
  // the original alice is unaffected
  const m = await say(a, 'dup1', 'still me');
  assert.equal(m.sender, 'alice');
  assert.deepEqual(await b.next('message'), m);
  closeAll(a, b);
});

test('the same username in different rooms is fine', async () => {
  const a1 = await enter('same-1', 'alice', { expectUsers: ['alice'] });
  const a2 = await enter('same-2', 'alice', { expectUsers: ['alice'] });
  const m = await say(a2, 'same-2', 'from the second alice');
  assert.equal(m.sender, 'alice');
  await a1.none('message', 200);
  closeAll(a1, a2);
});

test('join of a room where the name is taken: username_taken, the connection stays usable', async () => {
  const holder = await enter('dupj-b', 'alice');
  const other = await enter('dupj-a', 'alice');
  const peer = await enter('dupj-a', 'bob');
  other.send({ type: 'join', room: 'dupj-b' });
  const err = await other.next('error');
  assert.equal(err.code, 'username_taken', JSON.stringify(err));
  assert.ok(typeof err.content === 'string' && err.content.length > 0);
  assert.equal(err.room, 'dupj-b');
  await holder.none(() => true, 200);
  // still open and in dupj-a
  const m = await say(other, 'dupj-a', 'still here');
  assert.deepEqual(await peer.next('message'), m);
  assert.equal(other.closed, null);
  // and not in dupj-b
  other.send({ type: 'message', room: 'dupj-b', content: 'sneak' });
  const e2 = await other.next('error');
  assert.equal(e2.code, 'not_joined');
  await holder.none('message', 100);
  closeAll(holder, other, peer);
});

// A bad name: error frame with the code, then close 4400.
async function refused(path, code) {
  const c = await Client.connect(`ws://127.0.0.1:${srv.port}${path}`);
  const err = await c.next('error');
  assert.equal(err.code, code, `${path}: ${JSON.stringify(err)}`);
  assert.ok(typeof err.content === 'string' && err.content.length > 0);
  const closed = await c.waitClose();
  assert.equal(closed.code, 4400, `${path} closes with 4400`);
  assert.ok(!c.frames.some((f) => f.type === 'join' || f.type === 'presence'), JSON.stringify(c.frames));
}

test('invalid usernames: bad_username then close 4400', async () => {
  await refused('/ws?room=names&username=', 'bad_username');
  await refused(`/ws?room=names&username=${'a'.repeat(33)}`, 'bad_username');
  await refused('/ws?room=names&username=a%20b', 'bad_username');
  await refused('/ws?room=names&username=%C3%A9', 'bad_username');
  await refused('/ws?room=names&username=a%2Fb', 'bad_username');
  await refused('/ws?room=names&username=a%22b', 'bad_username');
  await refused('/ws?room=names&username=%00alice', 'bad_username');
  // malformed %-escapes never decode into a valid name
  await refused('/ws?room=names&username=al%zzice', 'bad_username');
  await refused('/ws?room=names&username=alice%', 'bad_username');
  await refused('/ws?room=names&username=alice%2', 'bad_username');
  // a missing username is refused the same way (not at the HTTP level)
  await refused('/ws?room=names', 'bad_username');
  // the longest valid name and every allowed character class
  const long = await enter('names', 'a'.repeat(32), { expectUsers: ['a'.repeat(32)] });
  const mixed = await enter('names', 'Az09_-.', { expectUsers: sorted(['a'.repeat(32), 'Az09_-.']) });
  closeAll(long, mixed);
});

test('invalid rooms in the URL: bad_room then close 4400', async () => {
  await refused('/ws?room=bad%20room&username=alice', 'bad_room');
  await refused(`/ws?room=${'r'.repeat(65)}&username=alice`, 'bad_room');
  await refused('/ws?room=%C3%A9&username=alice', 'bad_room');
  await refused('/ws?room=a%2Fb&username=alice', 'bad_room');
  const ok = await enter('r'.repeat(64), 'alice', { expectUsers: ['alice'] });
  closeAll(ok);
});

test('no room in the URL: the connection works and can join later', async () => {
  const c = await enter(null, 'solo', { url: `ws://127.0.0.1:${srv.port}/ws?username=solo` });
  await c.none(() => true, 300);
  c.send({ type: 'join', room: 'later' });
  const fr = await framesUntil(c, isPresence('later'));
  assert.deepEqual(fr.map((f) => f.type), ['join', 'presence']);
  assertFrame(fr[0], { type: 'join', room: 'later', sender: 'solo' });
  assertFrame(fr[1], { type: 'presence', room: 'later', users: ['solo'] });
  const m = await say(c, 'later', 'hello later');
  assertMessage(m, { room: 'later', sender: 'solo', content: 'hello later' });
  closeAll(c);
});

test('%-encoded names are decoded', async () => {
  const url = `ws://127.0.0.1:${srv.port}/ws?room=d%65v-%65nc&username=al%69ce`;
  const c = await enter('dev-enc', 'alice', { url, expectUsers: ['alice'] });
  const m = await say(c, 'dev-enc', 'decoded');
  assertMessage(m, { room: 'dev-enc', sender: 'alice', content: 'decoded' });
  // upper-case hex too, and the decoded name is the one that is unique
  const dup = await Client.connect(`ws://127.0.0.1:${srv.port}/ws?room=dev-enc&username=%41%4C%49%43%45`);
  assertFrame(await dup.next(() => true), { type: 'welcome', sender: 'ALICE' });
  await dup.next((f) => f.type === 'presence' && f.users.length === 2);
  const taken = await Client.connect(`ws://127.0.0.1:${srv.port}/ws?room=dev-enc&username=%61lice`);
  assert.equal((await taken.next('error')).code, 'username_taken');
  assert.equal((await taken.waitClose()).code, 4409);
  closeAll(c, dup);
});

test('Unicode content round-trips exactly', async () => {
  const a = await enter('uni', 'alice');
  const b = await enter('uni', 'bob');
  const texts = [
    'héllo wörld — ça va?',
    '日本語のテキスト、中文，한국어',
    '😀🎉 family: 👩‍👩‍👧‍👦 flag: 🇫🇷 skin: 👋🏽',
    'combining: e\u0301 a\u0308; RTL: שלום مرحبا',
    'math 𝔸𝕓𝕔 ∑∫√ and U+FFFF-ish: \uFFFD \u{10FFFF}',
    'quotes " and \\ backslash, tab\there, newline\nthere, ctrl \u0001',
    ' leading and trailing spaces ',
  ];
  for (const t of texts) {
    const m = await say(a, 'uni', t);
    assert.equal(m.content, t);
    const mb = await b.next('message');
    assert.equal(mb.content, t);
    assert.equal(Buffer.compare(Buffer.from(mb.content), Buffer.from(t)), 0);
  }
  closeAll(a, b);
});

test('50 users in one room: every message reaches all 50', { timeout: 45000 }, async () => {
  const N = 50;
  const names = Array.from({ length: N }, (_, i) => `u${String(i).padStart(2, '0')}`);
  const clients = [];
  for (const n of names.slice(0, -1)) clients.push(await enter('crowd', n));
  clients.push(await enter('crowd', names[N - 1], { expectUsers: names }));
  // the last arrival's presence, as everyone sees it, lists all 50 sorted
  for (const c of clients.slice(0, -1)) {
    const p = await c.next((f) => f.type === 'presence' && f.room === 'crowd' && f.users.length === N, 10000);
    assert.deepEqual(p.users, names);
  }
  clients.forEach((c, i) => c.send({ type: 'message', room: 'crowd', content: `from ${names[i]}` }));
  const seen = await Promise.all(clients.map(async (c) => {
    const got = new Map();
    for (let i = 0; i < N; i++) {
      const m = await c.next('message', 20000);
      assertMessage(m, { room: 'crowd', sender: m.sender, content: `from ${m.sender}` });
      got.set(m.sender, m.id);
    }
    assert.equal(got.size, N, 'one message from each of the 50');
    return got;
  }));
  // every copy of a message carries the same id; the 50 ids are distinct
  for (const got of seen) assert.deepEqual(got, seen[0]);
  assert.equal(new Set(seen[0].values()).size, N);
  await clients[0].none('message', 100);
  closeAll(...clients);
});
