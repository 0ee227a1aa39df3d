// The two races of the old core, forced from outside with 2-4 I/O threads
// and many iterations (docs/ARCHITECTURE.md, "A join, a leave"):
//  1. duplicate on join: a message sequenced before a join reached the
//     joiner twice — in its history and live;
//  2. a leaver missed messages sequenced before its own leave.
// Both are checked with message ids against a reference member who sees the
// whole room, so the checks mean the same with or without seq.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { Client } from '../lib/client.mjs';
import { sleep, until } from '../lib/util.mjs';

const ROOM = 'race';
const inRoom = (f) => f.room === ROOM;

// The room's message ids a client saw live, in order, between two frame
// indexes of its frame list.
const liveIds = (frames, from = 0, to = frames.length) =>
  frames.slice(from, to).filter((f) => f.type === 'message' && inRoom(f)).map((f) => f.id);

// Flood the room from `flooders` connections, `per` messages each, as fast
// as the sockets take them; resolves when all were sent.
async function flood(flooders, per) {
  for (let i = 0; i < per; i++) {
    for (const [k, c] of flooders.entries()) c.send({ type: 'message', room: ROOM, content: `f${k}-${i}` });
    if (i % 4 === 3) await sleep(1); /* spread over the joins below */
  }
}

async function scenario(ioThreads, iteration) {
  const srv = await startServer({
    server: { io_threads: ioThreads, history_per_room: 50 },
    limits: { messages_per_second: 0, max_queued_bytes: 1 << 28 },
  });
  const clients = [];
  try {
    const ref = await Client.connect(srv.wsUrl(ROOM, 'ref'));
    clients.push(ref);
    await ref.next((f) => f.type === 'presence');
    const flooders = [];
    for (let k = 0; k < 4; k++) {
      const c = await Client.connect(srv.wsUrl(ROOM, `flood${k}`));
      flooders.push(c);
      clients.push(c);
      await c.next((f) => f.type === 'presence');
    }
    const per = 600;
    const total = per * flooders.length;
    const sending = flood(flooders, per);
    // Joiners one by one while the flood runs; leavers leave during it.
    const joiners = [];
    const leavers = [];
    for (let j = 0; j < 24; j++) {
      const c = await Client.connect(srv.wsUrl(ROOM, `join${j}`));
      clients.push(c);
      (j % 3 === 2 ? leavers : joiners).push({ c, name: `join${j}` });
    }
    for (const l of leavers) {
      await until(() => l.c.frames.some((f) => f.type === 'join' && f.sender === l.name), 5000, 'joined');
      await sleep(3);
      l.c.send({ type: 'leave', room: ROOM });
    }
    await sending;
    const refIds = () => liveIds(ref.frames);
    await until(() => refIds().length === total, 30000, `ref saw ${refIds().length} of ${total}`);
    const all = refIds();
    const last = all[all.length - 1];
    const tag = `io_threads=${ioThreads} iteration ${iteration}`;

    // Every check runs and every failure is reported, so one run shows
    // both races when both happen.
    const failures = [];
    const check = (ok, why) => { if (!ok) failures.push(`${tag}: ${why}`); };

    // 1. Each joiner: history then live, no duplicate, no gap, up to the end.
    for (const { c, name } of joiners) {
      const seenIds = () => c.frames.filter((f) => (f.type === 'message' || f.type === 'history') && inRoom(f)).map((f) => f.id);
      await until(() => seenIds().includes(last), 30000, `${name} got the last message (closed ${JSON.stringify(c.closed)})`);
      const own = c.frames.findIndex((f) => f.type === 'join' && f.sender === name && inRoom(f));
      check(own >= 0, `${name} got its own join`);
      const hist = c.frames.slice(0, own).filter((f) => f.type === 'history' && inRoom(f)).map((f) => f.id);
      // every live message, also one that came before the joiner's own join
      const seen = [...hist, ...liveIds(c.frames)];
      const dup = seen.find((id, k) => seen.indexOf(id) !== k);
      check(dup === undefined, `${name} got message ${dup} twice (history and live)`);
      const start = all.indexOf(seen[0]);
      const same = start >= 0 && JSON.stringify(seen) === JSON.stringify(all.slice(start, start + seen.length));
      check(dup !== undefined || same, `${name} saw the room's messages with a gap or out of order`);
    }

    // 2. Each leaver: live, exactly what the room ordered between its join
    // and its leave (as the reference member saw them), nothing after.
    for (const { c, name } of leavers) {
      await until(() => c.frames.some((f) => f.type === 'leave' && f.sender === name), 10000, `${name} left`);
      const rj = ref.frames.findIndex((f) => f.type === 'join' && f.sender === name);
      const rl = ref.frames.findIndex((f) => f.type === 'leave' && f.sender === name);
      check(rj >= 0 && rl > rj, `ref saw ${name} join then leave`);
      const expected = liveIds(ref.frames, rj, rl);
      const own = c.frames.findIndex((f) => f.type === 'join' && f.sender === name);
      const left = c.frames.findIndex((f) => f.type === 'leave' && f.sender === name);
      const got = liveIds(c.frames, own, left);
      check(JSON.stringify(got) === JSON.stringify(expected),
        `${name} got ${got.length} of the ${expected.length} messages sequenced between its join and its leave`);
      check(liveIds(c.frames, left).length === 0, `${name} got messages after its leave`);
    }
    assert.deepEqual(failures, []);
  } finally {
    for (const c of clients) c.close();
    const r = await srv.stop();
    assert.equal(r.code, 0, r.stderr);
  }
}

for (const ioThreads of [2, 3, 4]) {
  test(`joins and leaves during a flood, ${ioThreads} I/O threads: no duplicate, no gap`,
    { timeout: 240000 }, async () => {
      const slow = (process.env.NEBULA_SANITIZE && process.env.NEBULA_SANITIZE !== 'none')
        || (process.env.NEBULA_WRAPPER || '').includes('valgrind');
      const runs = slow ? 1 : 3;
      for (let i = 1; i <= runs; i++) await scenario(ioThreads, i);
    });
}
