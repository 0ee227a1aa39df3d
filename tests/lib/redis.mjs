// A real redis-server for tests: loopback, a free port, its own folder,
// no persistence (a restart loses the data, like a crashed instance
// without AOF), stopped by PID. The tests need redis-server from the
// Makefile's APT_PACKAGES; when it is missing they fail saying so.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { freePort } from './server.mjs';

export const redisServerBin = process.env.REDIS_SERVER || 'redis-server';

function haveRedis() {
  const r = spawnSync(redisServerBin, ['--version'], { encoding: 'utf8' });
  if (r.error) throw new Error(`${redisServerBin} is not installed (apt-get install redis-server; the Makefile's deps target does it)`);
  return r.stdout.trim();
}

function waitPort(port, deadline) {
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(); });
      s.once('error', () => {
        s.destroy();
        if (Date.now() > deadline) reject(new Error(`redis-server did not listen on ${port}`));
        else setTimeout(attempt, 25);
      });
    };
    attempt();
  });
}

// One RESP command on a fresh connection: resolves with the raw reply text.
export function redisCommand(port, ...args) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let out = '';
    const timer = setTimeout(() => { s.destroy(); reject(new Error('redis command timed out')); }, 5000);
    s.on('connect', () => {
      s.write(`*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`).join(''));
    });
    s.on('data', (d) => {
      out += d;
      if (out.endsWith('\r\n')) { clearTimeout(timer); s.end(); resolve(out); }
    });
    s.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

// Start a redis-server. Returns { port, url, pid, stop(), kill(), restart(), command(...) }.
// persist: keep the data across restarts (AOF, fsync always), as a production Redis would.
export async function startRedis({ port, persist = false } = {}) {
  haveRedis();
  const p = port || await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'nebula-redis-'));
  const r = {
    port: p,
    url: `redis://127.0.0.1:${p}`,
    child: null,
    async start() {
      const child = spawn(redisServerBin, ['--port', String(p), '--bind', '127.0.0.1',
        '--save', '', '--appendonly', persist ? 'yes' : 'no', '--appendfsync', 'always',
        '--dir', dir, '--daemonize', 'no',
        '--loglevel', 'warning'], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d) => { stderr += d; });
      this.child = child;
      this.exited = new Promise((resolve) => child.on('close', resolve));
      try {
        await waitPort(p, Date.now() + 10000);
      } catch (e) {
        child.kill('SIGKILL');
        throw new Error(`${e.message}: ${stderr}`);
      }
      this.pid = child.pid;
    },
    // Stop by PID; resolves when the process is gone.
    async stop(signal = 'SIGTERM') {
      if (!this.child) return;
      const child = this.child;
      this.child = null;
      child.kill(signal);
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await this.exited;
      clearTimeout(t);
    },
    kill() { return this.stop('SIGKILL'); },
    async restart() { await this.stop(); await this.start(); },
    command(...args) { return redisCommand(p, ...args); },
    async close() { await this.stop(); rmSync(dir, { recursive: true, force: true }); },
  };
  await r.start();
  return r;
}

// The [broker-redis] section naming these instances (one: url, several: urls).
export function brokerSection(redises, extra = {}) {
  const lines = redises.length === 1
    ? [`url = "${redises[0].url}"`]
    : [`urls = [${redises.map((r) => `"${r.url}"`).join(', ')}]`];
  for (const [k, v] of Object.entries(extra)) lines.push(`${k} = ${typeof v === 'string' ? JSON.stringify(v) : v}`);
  return `[broker-redis]\n${lines.join('\n')}\n`;
}
