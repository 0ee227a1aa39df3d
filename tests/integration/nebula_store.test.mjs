// store-aof in the real server, and tools/nebula-store on the file it
// wrote: check, check --fix, dump, and convert AOF -> SQLite -> AOF (the
// sqlite3 command reads the converted database; the server serves the
// history of the converted-back file). Also what a damaged file does to
// the server: a torn tail is cut at start, damage in the middle refuses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, copyFileSync, rmSync, statSync, truncateSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, runProgram, runNebula, makeConfig, freePort, repoRoot } from '../lib/server.mjs';
import { Client } from '../lib/client.mjs';

const tool = process.env.NEBULA_STORE_TOOL || path.join(repoRoot, 'build', 'tools', 'nebula-store', 'nebula-store');
const run = (args) => runProgram(tool, args);

function sqlite(db, sql) {
  try {
    return execFileSync('sqlite3', [db, sql], { encoding: 'utf8' }).trim();
  } catch (e) {
    if (e.code === 'ENOENT') throw new Error('the sqlite3 command is missing (make deps installs it)');
    throw e;
  }
}

const dumpLines = (out) => out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
const byRoomSeq = (a, b) => (a.room < b.room ? -1 : a.room > b.room ? 1 : a.seq - b.seq);

const work = mkdtempSync(path.join(tmpdir(), 'nebula-store-test-'));
const aof = path.join(work, 'data', 'chat.aof');
const sent = ['plain', 'quote " and \\ backslash', 'line\nbreak', 'ünïcødé ✓ 日本', 'tab\there'];

function aofConf(file, fsync = 'always') {
  return `[store-aof]\npath = ${JSON.stringify(file)}\nfsync = "${fsync}"\n`;
}

async function serverOn(file) {
  return startServer({ plugins: { store: 'store-aof' }, server: { history_per_room: 50 }, extra: aofConf(file) });
}

test('the server writes its history to the AOF; nebula-store checks and dumps it', async () => {
  const srv = await serverOn(aof);
  try {
    const a = await Client.connect(srv.wsUrl('general', 'alice'));
    await a.next('presence', 10000);
    a.send({ type: 'join', room: 'dev' });
    await a.next((f) => f.type === 'presence' && f.room === 'dev', 10000);
    for (const [i, content] of sent.entries()) {
      const room = i % 2 ? 'dev' : 'general';
      a.send({ type: 'message', room, content });
      await a.next((f) => f.type === 'message' && f.content === content, 10000);
    }
    a.close();
  } finally {
    const r = await srv.stop('SIGTERM');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /store-aof/);
  }
  const check = await run(['check', aof]);
  assert.equal(check.code, 0, check.stderr);
  assert.match(check.stdout, /ok: 5 messages, 0 room marks/);
  const dump = await run(['dump', aof]);
  assert.equal(dump.code, 0, dump.stderr);
  const recs = dumpLines(dump.stdout);
  assert.deepEqual(recs.map((r) => r.content), sent);
  assert.deepEqual(recs.map((r) => `${r.room}:${r.seq}`), ['general:1', 'dev:1', 'general:2', 'dev:2', 'general:3']);
  for (const r of recs) {
    assert.equal(r.sender, 'alice');
    assert.ok(r.ts > 1.6e12 && r.id.length > 0);
  }
});

test('convert AOF -> SQLite -> AOF keeps every message and the epoch', async () => {
  const db = path.join(work, 'chat.db');
  const back = path.join(work, 'back.aof');
  let r = await run(['convert', aof, db]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(sqlite(db, 'select count(*) from messages'), '5');
  assert.equal(sqlite(db, 'select version from schema_version'), '3');
  assert.equal(sqlite(db, "select room || '=' || last_seq from rooms order by room"), 'dev=2\ngeneral=3');
  assert.equal(sqlite(db, "select content from messages where room = 'general' and seq = 3"), sent[4]);
  const epoch = (await run(['check', aof])).stdout.match(/epoch ([0-9a-f]{16})/)[1];
  assert.equal(sqlite(db, "select value from meta where key = 'epoch'"), epoch);

  r = await run(['convert', aof, db]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /exists/);
  // a room whose messages are gone keeps its last seq, in both directions
  sqlite(db, "insert into rooms values ('empty', 42)");
  r = await run(['convert', db, back]);
  assert.equal(r.code, 0, r.stderr);
  const orig = dumpLines((await run(['dump', aof])).stdout).sort(byRoomSeq);
  const again = dumpLines((await run(['dump', back])).stdout);
  assert.deepEqual(again.filter((x) => !x.mark).sort(byRoomSeq), orig);
  assert.deepEqual(again.filter((x) => x.mark), [{ room: 'empty', seq: 42, mark: true }]);
  assert.match((await run(['check', back])).stdout, new RegExp(`ok: 5 messages, 1 room marks, \\d+ bytes, epoch ${epoch}`));

  // the server serves the converted-back file's history
  const srv = await serverOn(back);
  try {
    const c = await Client.connect(srv.wsUrl('general', 'carol'));
    await c.next((f) => f.type === 'join' && f.sender === 'carol', 10000);
    const hist = c.frames.filter((f) => f.type === 'history');
    assert.deepEqual(hist.map((f) => f.content), [sent[0], sent[2], sent[4]]);
    c.close();
  } finally {
    await srv.stop('SIGTERM');
  }
});

test('damage in the middle: check names the offset, the server refuses, --fix cuts', async () => {
  const bad = path.join(work, 'mid.aof');
  copyFileSync(aof, bad);
  const bytes = readFileSync(bad);
  const recLen = bytes.readUInt32LE(40) + 12; // the first record after the 40-byte header
  const second = 40 + recLen;
  bytes[second + 30] ^= 0x20;
  writeFileSync(bad, bytes);

  let r = await run(['check', bad]);
  assert.equal(r.code, 1);
  assert.match(r.stdout, new RegExp(`1 good records, then at offset ${second}: damaged record`));
  assert.match(r.stdout, /damage in the middle/);

  const port = await freePort();
  const confDir = mkdtempSync(path.join(tmpdir(), 'nebula-store-conf-'));
  const conf = path.join(confDir, 'nebula.conf');
  writeFileSync(conf, makeConfig({ port, plugins: { store: 'store-aof' }, extra: aofConf(bad) }));
  const refused = await runNebula(['-c', conf]);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, new RegExp(`at offset ${second}, and valid records follow`));
  assert.match(refused.stderr, /nebula-store check --fix/);
  rmSync(confDir, { recursive: true, force: true });

  r = await run(['check', bad, '--fix']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`cutting at offset ${second}: \\d+ bytes and 3 valid records after it are lost`));
  assert.equal(statSync(bad).size, second);
  r = await run(['check', bad]);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /ok: 1 messages/);
});

test('a torn tail: check says so, the server cuts it and starts', async () => {
  const torn = path.join(work, 'torn.aof');
  copyFileSync(aof, torn);
  const size = statSync(torn).size;
  truncateSync(torn, size - 5);
  const r = await run(['check', torn]);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /4 good records, then at offset \d+: record cut short/);
  assert.match(r.stdout, /a torn tail/);
  const srv = await serverOn(torn);
  const out = await srv.stop('SIGTERM');
  assert.match(out.stderr, /torn or damaged tail/);
  assert.match((await run(['check', torn])).stdout, /ok: 4 messages/);
});

test('usage: --help, bad arguments (exit 2), missing files (exit 1)', async () => {
  let r = await run(['--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /check FILE \[--fix\]/);
  assert.match(r.stdout, /convert SRC DST/);
  r = await run([]);
  assert.equal(r.code, 2);
  r = await run(['frobnicate']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown command "frobnicate"/);
  r = await run(['convert', path.join(work, 'a.txt'), path.join(work, 'b.db')]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--from/);
  r = await run(['check', path.join(work, 'nope.aof')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /No such file/);
  r = await run(['dump', path.join(work, 'chat.db')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /not a store-aof file/);
});

test('cleanup', () => rmSync(work, { recursive: true, force: true }));
