// The plugin author's path, end to end: install Nebula's headers and
// nebula-plugin.pc (`meson install --tags devel` into a staging folder),
// build examples/uppercase-codec from a COPY of its sources in a temp
// folder using nothing but pkg-config, then run the real server with it
// next to codec-json and check both renderings of one conversation.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  mkdtempSync, rmSync, cpSync, existsSync, readdirSync, symlinkSync, mkdirSync, statSync, writeFileSync,
  readFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, runNebula, makeConfig, freePort, pluginDir, repoRoot, matrix } from '../lib/server.mjs';
import { Client } from '../lib/client.mjs';

const sourceRoot = process.env.NEBULA_SOURCE_ROOT || repoRoot;
const exampleSrc = path.join(sourceRoot, 'examples', 'uppercase-codec');

// The meson build folder: the nearest folder above the plugin dir that
// has meson-info/ (NEBULA_PLUGIN_DIR is <build>/plugins).
function findBuildDir(from) {
  for (let d = path.resolve(from); d !== path.dirname(d); d = path.dirname(d)) {
    if (existsSync(path.join(d, 'meson-info'))) return d;
  }
  throw new Error(`no meson build folder above ${from}`);
}

function findFile(dir, name) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      const hit = findFile(p, name);
      if (hit) return hit;
    } else if (e.name === name) {
      return p;
    }
  }
  return null;
}

// The binary and every plugin must use the same sanitizer (STACK.md).
function sanitizerFlags() {
  const s = process.env.NEBULA_SANITIZE || 'none';
  return s === 'none' || s === '' ? '' : ` -fsanitize=${s} -fno-omit-frame-pointer`;
}

const tmp = mkdtempSync(path.join(tmpdir(), 'nebula-example-'));
const stage = path.join(tmp, 'stage');
const src = path.join(tmp, 'src');
const plugins = path.join(tmp, 'plugins');
let pkgEnv;
let cflags;
let makeOutput;

before(() => {
  const build = findBuildDir(pluginDir);
  execFileSync('meson', ['install', '-C', build, '--no-rebuild', '--quiet', '--tags', 'devel',
    '--destdir', stage], { stdio: 'pipe', timeout: 30000 });
  const pc = findFile(stage, 'nebula-plugin.pc');
  assert.ok(pc, 'meson install put nebula-plugin.pc in the stage');
  // The .pc says prefix=/usr/local (or the configured prefix); the sysroot
  // moves its include path into the stage.
  pkgEnv = { ...process.env, PKG_CONFIG_PATH: path.dirname(pc), PKG_CONFIG_SYSROOT_DIR: stage };
  cflags = execFileSync('pkg-config', ['--cflags', 'nebula-plugin'], { env: pkgEnv }).toString().trim();

  // Out of tree for real: the sources alone, away from the checkout.
  cpSync(exampleSrc, src, { recursive: true });
  mkdirSync(plugins);
  makeOutput = execFileSync('make', ['-C', src, `OUT=${plugins}`,
    `CFLAGS=-O2 -g -Werror${sanitizerFlags()}`], { env: pkgEnv, timeout: 30000 }).toString();
  // and the plugin matrix's store and broker, which every test server uses
  const extra = [matrix.store, matrix.broker].filter((p) => p !== 'none').map((p) => `${p}.so`);
  for (const name of ['transport-ws.so', 'codec-json.so', ...extra]) {
    symlinkSync(path.join(pluginDir, name), path.join(plugins, name));
  }
});

after(() => rmSync(tmp, { recursive: true, force: true }));

test('nebula-plugin.pc gives only the installed include dir', () => {
  assert.match(cflags, /^-I\S+$/, `one -I flag: "${cflags}"`);
  const inc = cflags.slice(2);
  assert.ok(inc.startsWith(stage), `the include dir is in the install stage: ${inc}`);
  assert.ok(statSync(path.join(inc, 'nebula', 'plugin.h')).isFile(), 'nebula/plugin.h is installed there');
  const libs = execFileSync('pkg-config', ['--libs', 'nebula-plugin'], { env: pkgEnv }).toString().trim();
  assert.equal(libs, '', 'Cflags only: a plugin links no Nebula library');
});

test('the example builds from its own folder with pkg-config alone', () => {
  assert.ok(existsSync(path.join(plugins, 'codec-upper.so')), makeOutput);
  assert.ok(!makeOutput.includes(sourceRoot), `the build never points into the source tree:\n${makeOutput}`);
  assert.ok(!existsSync(path.join(exampleSrc, 'codec-upper.so')), 'nothing was built in the checkout');
});

test('an upper client and a JSON client share a room, each in its own rendering', async () => {
  const srv = await startServer({
    plugins: { dir: plugins, codecs: ['codec-json', 'codec-upper'] },
    extra: '[codec-upper]\nupper_sender = false\n',
  });
  try {
    assert.match(srv.output().stderr, /loaded codec plugin codec-upper 1\.0\.0/);
    const up = await Client.connect(srv.wsUrl('general', 'ursula'), 'example.upper.v1');
    assert.equal(up.ws.protocol, 'example.upper.v1');
    const js = await Client.connect(srv.wsUrl('general', 'jason'));
    assert.equal(js.ws.protocol, '', 'no subprotocol asked: the default codec, codec-json');
    await up.next((f) => f.type === 'presence' && f.users?.includes('jason'));

    // A JSON client's message, seen by both.
    js.send({ type: 'message', room: 'general', content: 'Hello, Wörld "quoted"\n' });
    const a = await js.next('message');
    const b = await up.next('message');
    assert.equal(a.content, 'Hello, Wörld "quoted"\n');
    assert.equal(b.content, 'HELLO, WöRLD "QUOTED"\n', 'ASCII upper-cased, UTF-8 kept');
    assert.equal(b.sender, 'jason');
    assert.equal(b.id, a.id, 'the same message');
    assert.equal(b.ts, a.ts);

    // The upper client's message: decoded as written, shouted only to itself.
    up.send({ type: 'message', room: 'general', content: 'quiet words \u00e9\ud83d\ude00', extra: 1 });
    const c = await js.next('message');
    const d = await up.next('message');
    assert.equal(c.content, 'quiet words é😀');
    assert.equal(c.sender, 'ursula');
    assert.equal(d.content, 'QUIET WORDS é😀');

    // Its errors are the protocol's errors.
    up.send('not json');
    const e = await up.next('error');
    assert.equal(e.code, 'bad_json');
    up.send({ type: 'shout', room: 'general' });
    assert.equal((await up.next('error')).code, 'unknown_type');
    up.send({ type: 'message', room: 5, content: 'x' });
    assert.equal((await up.next('error')).code, 'bad_field');
    await js.none('error');

    up.close();
    js.close();
  } finally {
    const r = await srv.stop();
    assert.equal(r.signal, null, r.stderr);
    assert.doesNotMatch(r.stderr, /AddressSanitizer|LeakSanitizer|runtime error:|ThreadSanitizer/);
  }
});

// The plugin's config goes through the host, so its mistakes are reported
// like the core's: file, line, key.
test('a bad value in [codec-upper] is reported with its file and line', async () => {
  const conf = path.join(tmp, 'bad.conf');
  const text = makeConfig({
    port: await freePort(),
    plugins: { dir: plugins, codecs: ['codec-json', 'codec-upper'] },
    extra: '[codec-upper]\nupper_sender = "loud"\n',
  });
  writeFileSync(conf, text);
  const line = text.split('\n').findIndex((l) => l.startsWith('upper_sender')) + 1;
  const r = await runNebula(['--check-config', conf]);
  assert.equal(r.signal, null);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`${conf}:${line}: .*upper_sender`), r.stderr);
});

// docs/PLUGIN_ABI.md promises its minimal plugin compiles as listed: build
// it the way the page says and have nebula load and create it.
test('the minimal plugin of PLUGIN_ABI.md builds and loads', async () => {
  const doc = readFileSync(path.join(sourceRoot, 'docs', 'PLUGIN_ABI.md'), 'utf8');
  const m = doc.match(/<!-- BEGIN minimal-plugin -->\n```c\n([\s\S]*?)```\n<!-- END minimal-plugin -->/);
  assert.ok(m, 'the listing is marked in the page');
  const file = path.join(src, 'codec_plain.c');
  writeFileSync(file, m[1]);
  execFileSync('sh', ['-c', `cc -std=c17 -Wall -Wextra -Werror -O2 -fPIC -fvisibility=hidden${sanitizerFlags()} `
    + '$(pkg-config --cflags nebula-plugin) -shared -Wl,-z,defs '
    + `-o ${path.join(plugins, 'codec-plain.so')} ${file}`], { env: pkgEnv, stdio: 'pipe', timeout: 30000 });
  const conf = path.join(tmp, 'plain.conf');
  writeFileSync(conf, makeConfig({
    port: await freePort(),
    plugins: { dir: plugins, codecs: ['codec-json', 'codec-upper', 'codec-plain'] },
  }));
  // --check-config prints problems only; --log-level info shows what it loaded
  const r = await runNebula(['--check-config', conf, '--log-level', 'info']);
  assert.equal(r.signal, null);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /loaded codec plugin codec-plain 0\.1\.0/);
  assert.match(r.stdout, /OK/);
});
