// The plugin author's promise (docs/PLUGIN_ABI.md): a plugin built wrong,
// or for another ABI, is refused loudly and once — one error line naming
// the file and the reason (both versions on a mismatch) — and nebula exits
// 1 without crashing, whether it was starting or only checking the config.
//
// The plugin dir is the build's tests/fixtures/ folder (NEBULA_FIXTURE_DIR):
// the broken fixture plugins plus copies of the real transport-ws and
// codec-json, so each config below is wrong in exactly one slot.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runNebula, makeConfig, freePort, startServer, repoRoot } from '../lib/server.mjs';
import { Client } from '../lib/client.mjs';

const fixtureDir = process.env.NEBULA_FIXTURE_DIR
  || path.join(repoRoot, 'build', 'tests', 'fixtures');
const tmp = mkdtempSync(path.join(tmpdir(), 'nebula-loader-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

// The ABI this nebula speaks, from the header it was built with.
const pluginH = readFileSync(path.join(process.env.NEBULA_SOURCE_ROOT || repoRoot,
  'include', 'nebula', 'plugin.h'), 'utf8');
const abi = (name) => Number(pluginH.match(new RegExp(`#define ${name} (\\d+)`))[1]);
const MAJOR = abi('NB_ABI_MAJOR');
const MINOR = abi('NB_ABI_MINOR');

const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

// "<time> <level> [<origin>] <message>", as core/log.c writes them.
function logLines(stderr) {
  return stderr.split('\n').filter(Boolean).map((l) => {
    const m = l.match(/^\S+ (error|warn|info|debug)\s+\[([^\]]*)\] (.*)$/);
    return m ? { level: m[1], origin: m[2], text: m[3], raw: l } : { level: null, raw: l };
  });
}

// What no run may show, whatever it is refusing.
function assertNoCrash(r) {
  assert.equal(r.signal, null, `nebula was killed by ${r.signal}:\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /AddressSanitizer|LeakSanitizer|runtime error:|ThreadSanitizer|Segmentation/,
    'no sanitizer report or crash');
}

let nconf = 0;
async function confFor(plugins) {
  const file = path.join(tmp, `c${++nconf}.conf`);
  writeFileSync(file, makeConfig({ port: await freePort(), plugins: { dir: fixtureDir, ...plugins } }));
  return file;
}

// One case per refusal: the [plugins] keys that cause it, the file that
// must be named, and what the one line must say.
const cases = [
  {
    title: 'a file that is not a shared object',
    plugins: { codecs: ['fixture-not-elf'] },
    file: 'fixture-not-elf.so',
    reason: [/: not a Nebula plugin \(not a shared object: /],
  },
  {
    title: 'a shared object without the entry symbol',
    plugins: { codecs: ['fixture-no-entry'] },
    file: 'fixture-no-entry.so',
    reason: [/: not a Nebula plugin \(no symbol nebula_plugin_entry\)$/],
  },
  {
    title: 'a plugin that needs a symbol of the binary',
    plugins: { codecs: ['fixture-undefined'] },
    file: 'fixture-undefined.so',
    reason: [/: cannot load: undefined symbol: core_internal_room_count/, /-z,defs/],
  },
  {
    title: 'another ABI major',
    plugins: { codecs: ['fixture-major2'] },
    file: 'fixture-major2.so',
    reason: [new RegExp(esc(`: built for plugin ABI 2.0, this nebula speaks ${MAJOR}.${MINOR} (major differs)`)),
      /rebuild the plugin/],
  },
  {
    title: 'a newer ABI minor',
    plugins: { codecs: ['fixture-minor99'] },
    file: 'fixture-minor99.so',
    reason: [new RegExp(esc(`: built for plugin ABI ${MAJOR}.99, newer than this nebula's ${MAJOR}.${MINOR}: upgrade nebula`))],
  },
  {
    title: 'a broker built for ABI 1.1 (presence() changed in 1.2)',
    plugins: { broker: 'fixture-broker-1-1' },
    file: 'fixture-broker-1-1.so',
    reason: [new RegExp(esc(`: broker built for plugin ABI ${MAJOR}.1: brokers need ${MAJOR}.2 or later`)),
      /rebuild the plugin/],
  },
  {
    title: 'a descriptor without create()',
    plugins: { codecs: ['fixture-no-create'] },
    file: 'fixture-no-create.so',
    reason: [/: plugin descriptor has no create/],
  },
  {
    title: 'a codec in the transport slot',
    plugins: { transport: 'codec-json' },
    file: 'codec-json.so',
    reason: [/: is a codec plugin, but the \[plugins\] transport slot needs a transport$/],
  },
  {
    title: 'a transport in the codecs slot',
    plugins: { codecs: ['transport-ws'] },
    file: 'transport-ws.so',
    reason: [/: is a transport plugin, but the \[plugins\] codecs slot needs a codec$/],
  },
  {
    title: 'a plugin whose create() fails',
    plugins: { codecs: ['fixture-create-fails'] },
    file: 'fixture-create-fails.so',
    reason: [/create\(\) failed/],
    // create() says why itself, through host->log, under its own name.
    pluginSays: /always fails its create\(\)/,
  },
];

// The refusal is there exactly once, from the core, naming the full path,
// and (for create()) the plugin's own reason is the only other error.
function assertRefusal(r, c) {
  assertNoCrash(r);
  assert.equal(r.code, 1, `exit code 1:\n${r.stderr}`);
  const full = path.join(fixtureDir, c.file);
  const errors = logLines(r.stderr).filter((l) => l.level === 'error');
  const naming = errors.filter((l) => l.text.includes(full));
  assert.equal(naming.length, 1, `exactly one error line names ${full}:\n${r.stderr}`);
  const line = naming[0];
  assert.ok(line.text.startsWith(`${full}: `), `"<path>: <reason>": ${line.raw}`);
  for (const re of c.reason) assert.match(line.text, re, line.raw);
  const others = errors.filter((l) => l !== line);
  if (c.pluginSays) {
    assert.equal(others.length, 1, `one more error line, the plugin's reason:\n${r.stderr}`);
    assert.equal(others[0].origin, path.basename(c.file, '.so'));
    assert.match(others[0].text, c.pluginSays);
  } else {
    assert.deepEqual(others.map((l) => l.raw), [], 'no other error line');
  }
}

for (const c of cases) {
  test(`refuses ${c.title} at start-up: one line, exit 1`, async () => {
    const conf = await confFor(c.plugins);
    const r = await runNebula(['-c', conf], { cwd: tmp });
    assertRefusal(r, c);
  });

  test(`--check-config reports ${c.title}`, async () => {
    const conf = await confFor(c.plugins);
    const r = await runNebula(['--check-config', conf], { cwd: tmp });
    assertRefusal(r, c);
    assert.doesNotMatch(r.stdout, /OK/, 'the check does not pass');
    // The summary must not contradict the refusal just printed.
    assert.doesNotMatch(r.stderr, /\b0 problem\(s\) found/, `the summary counts the refusal:\n${r.stderr}`);
  });
}

// A name no folder holds is a mistake in the config: FILE:LINE of the key,
// the folder looked in, and the plugins that are there.
test('a missing plugin file is reported on its [plugins] line, with what is available', async () => {
  for (const args of [['--check-config'], ['-c']]) {
    const conf = await confFor({ codecs: ['fixture-missing'] });
    const r = await runNebula([...args, conf], { cwd: tmp });
    assertNoCrash(r);
    assert.equal(r.code, 1, r.stderr);
    const errors = logLines(r.stderr).filter((l) => l.level === 'error');
    assert.equal(errors.length, 1, `one error line:\n${r.stderr}`);
    assert.match(errors[0].text, new RegExp(`^${esc(conf)}:\\d+: \\[plugins\\] codecs: no plugin "fixture-missing" in ${esc(fixtureDir)} \\(available: .*\\bcodec-json\\b.*\\)$`));
  }
});

// Two mistakes, two lines: a refusal does not hide the next one.
test('every refused plugin is reported in one run', async () => {
  const conf = await confFor({ transport: 'codec-json', codecs: ['fixture-major2', 'fixture-minor99'] });
  const r = await runNebula(['--check-config', conf], { cwd: tmp });
  assertNoCrash(r);
  assert.equal(r.code, 1);
  const errors = logLines(r.stderr).filter((l) => l.level === 'error').map((l) => l.text);
  for (const f of ['fixture-major2.so', 'fixture-minor99.so', 'codec-json.so']) {
    assert.equal(errors.filter((t) => t.startsWith(path.join(fixtureDir, f) + ': ')).length, 1,
      `one line for ${f}:\n${r.stderr}`);
  }
});

// The other side of the version rule: a plugin built from the frozen ABI
// 1.0 headers (tests/fixtures/abi-1.0/) loads in this nebula and serves
// clients next to the current codec-json.
test('a plugin built for ABI 1.0 loads and works', async () => {
  const srv = await startServer({ plugins: { dir: fixtureDir, codecs: ['codec-json', 'fixture-old-minor'] } });
  try {
    assert.match(srv.output().stderr, /loaded codec plugin fixture-old-minor 1\.0\.0/);
    const old = await Client.connect(srv.wsUrl('general', 'olduser'), 'fixture.old.v1');
    assert.equal(old.ws.protocol, 'fixture.old.v1');
    const json = await Client.connect(srv.wsUrl('general', 'jsonuser'), 'nebula.json.v1');
    await json.next((f) => f.type === 'presence' && (f.users || []).includes('olduser'));
    old.send('message:general:hello from 1.0');
    const got = await json.next((f) => f.type === 'message');
    assert.equal(got.sender, 'olduser');
    assert.equal(got.content, 'hello from 1.0');
    const echo = await old.next((f) => typeof f.raw === 'string' && f.raw.startsWith('message:'));
    assert.equal(echo.raw, 'message:general:olduser:hello from 1.0');
    old.close();
    json.close();
  } finally {
    const r = await srv.stop();
    assertNoCrash(r);
  }
});

// And one built from the frozen ABI 1.1 headers (tests/fixtures/abi-1.1/).
test('a plugin built for ABI 1.1 loads and works', async () => {
  const srv = await startServer({ plugins: { dir: fixtureDir, codecs: ['codec-json', 'fixture-old-minor-1-1'] } });
  try {
    assert.match(srv.output().stderr, /loaded codec plugin fixture-old-minor-1-1 1\.1\.0/);
    const old = await Client.connect(srv.wsUrl('general', 'olduser'), 'fixture.old11.v1');
    assert.equal(old.ws.protocol, 'fixture.old11.v1');
    const json = await Client.connect(srv.wsUrl('general', 'jsonuser'), 'nebula.json.v1');
    await json.next((f) => f.type === 'presence' && (f.users || []).includes('olduser'));
    old.send('message:general:hello from 1.1');
    const got = await json.next((f) => f.type === 'message');
    assert.equal(got.sender, 'olduser');
    assert.equal(got.content, 'hello from 1.1');
    old.close();
    json.close();
  } finally {
    const r = await srv.stop();
    assertNoCrash(r);
  }
});
