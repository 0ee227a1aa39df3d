// Start and stop the real `nebula` binary for integration tests.
//
// NEBULA_BIN names the binary (meson sets it: the plain build or a
// sanitizer build); NEBULA_PLUGIN_DIR the folder of its plugins. Each
// server gets a fresh temp directory with its own config file and a free
// loopback port, and is stopped by PID.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const nebulaBin = process.env.NEBULA_BIN || path.join(repoRoot, 'build', 'nebula');
export const pluginDir = process.env.NEBULA_PLUGIN_DIR || path.join(path.dirname(nebulaBin), 'plugins');

// A port nobody listens on right now (bind 0, read it, close).
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// The plugin matrix: NEBULA_TEST_STORE / NEBULA_TEST_BROKER name the store
// and broker every server of a test run uses unless the test names its own
// (tests/meson.build runs the integration suite once per combination);
// NEBULA_TEST_STORE_CONF / NEBULA_TEST_BROKER_CONF are appended to a config
// that uses that store / broker (e.g. the broker's section with the address
// of the test's Redis).
export const matrix = {
  store: process.env.NEBULA_TEST_STORE || 'none',
  broker: process.env.NEBULA_TEST_BROKER || 'none',
  storeConf: process.env.NEBULA_TEST_STORE_CONF || '',
  brokerConf: process.env.NEBULA_TEST_BROKER_CONF || '',
};

// The smallest config that runs single-node; `extra` is appended verbatim
// (later sections), `plugins` overrides [plugins] keys.
export function makeConfig({ port, plugins = {}, server = {}, limits = {}, extra = '' }) {
  const q = (v) => (Array.isArray(v) ? `[${v.map((s) => JSON.stringify(s)).join(', ')}]`
    : typeof v === 'string' ? JSON.stringify(v) : String(v));
  const section = (name, obj) => `[${name}]\n` + Object.entries(obj).map(([k, v]) => `${k} = ${q(v)}`).join('\n') + '\n';
  const p = { dir: pluginDir, transport: 'transport-ws', codecs: ['codec-json'], store: matrix.store, broker: matrix.broker, ...plugins };
  return section('server', { listen: `127.0.0.1:${port}`, web_root: path.join(repoRoot, 'web'), ...server })
    + section('plugins', p)
    + section('limits', limits)
    + extra
    + (p.store === matrix.store && matrix.storeConf ? `\n${matrix.storeConf}\n` : '')
    + (p.broker === matrix.broker && matrix.brokerConf ? `\n${matrix.brokerConf}\n` : '');
}

// Run nebula with arguments and collect its exit code and output.
export function runNebula(args, opts = {}) {
  return runProgram(nebulaBin, args, opts);
}

// Run any program to its end (killed after timeoutMs) and collect its exit
// code and output.
export function runProgram(bin, args, { timeoutMs = 20000, cwd } = {}) {
  return new Promise((resolve) => {
    const child = spawn(bin, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, stdout, stderr }); });
  });
}

function waitListening(port, deadline) {
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(); });
      s.once('error', () => {
        s.destroy();
        if (Date.now() > deadline) reject(new Error(`nebula did not listen on ${port}`));
        else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}

// Start a server. Returns { port, url, wsUrl(room, user), dir, stop(), output() }.
// stop() sends SIGTERM and resolves with { code, signal, stderr }.
// opts.dir: run in this folder (the caller's, kept after stop(): a store
// file there survives a restart), else a fresh temp folder removed at stop().
export async function startServer(opts = {}) {
  const port = opts.port || await freePort();
  const dir = opts.dir || mkdtempSync(path.join(tmpdir(), 'nebula-test-'));
  const confPath = path.join(dir, 'nebula.conf');
  writeFileSync(confPath, opts.config ?? makeConfig({ port, ...opts }));
  // opts.wrapper: a command to run nebula under, e.g. ['valgrind', '--leak-check=full'];
  // else NEBULA_WRAPPER, the same as one string (make test-valgrind sets it).
  const wrapper = opts.wrapper || (process.env.NEBULA_WRAPPER || '').split(' ').filter(Boolean);
  const argv = [...wrapper, nebulaBin, '-c', confPath, ...(opts.args || [])];
  const child = spawn(argv[0], argv.slice(1),
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...(opts.env || {}) } });
  let stderr = '';
  let stdout = '';
  child.stderr.on('data', (d) => { stderr += d; if (process.env.NEBULA_TEST_VERBOSE) process.stderr.write(d); });
  child.stdout.on('data', (d) => { stdout += d; });
  const exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  let early = null;
  exited.then((r) => { early = r; });
  try {
    await waitListening(port, Date.now() + (opts.startTimeoutMs || 15000));
  } catch (e) {
    child.kill('SIGKILL');
    throw new Error(`${e.message}; exit ${JSON.stringify(early)}; stderr:\n${stderr}`);
  }
  return {
    port,
    dir,
    pid: child.pid,
    url: `http://127.0.0.1:${port}`,
    wsUrl: (room, user) => {
      const q = new URLSearchParams();
      if (room !== undefined && room !== null) q.set('room', room);
      if (user !== undefined && user !== null) q.set('username', user);
      return `ws://127.0.0.1:${port}/ws?${q}`;
    },
    output: () => ({ stdout, stderr }),
    async stop(signal = 'SIGTERM', timeoutMs = 15000) {
      if (early) return { ...early, stderr, stdout };
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const r = await exited;
      clearTimeout(timer);
      if (!opts.dir) rmSync(dir, { recursive: true, force: true });
      return { ...r, stderr, stdout };
    },
  };
}
