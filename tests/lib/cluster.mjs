// deployments/local-cluster.sh driven from tests: a cluster on free
// loopback ports in a temp folder, with this build's binary and plugins.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { repoRoot, nebulaBin, pluginDir, freePort } from './server.mjs';

export const clusterScript = path.join(repoRoot, 'deployments', 'local-cluster.sh');

// Runs the script with a command; resolves with { code, stdout, stderr }.
function runScript(env, args, timeoutMs) {
  return new Promise((resolve) => {
    const child = spawn(clusterScript, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, stdout, stderr }); });
  });
}

// Ports one at a time from the OS; distinct even if the OS repeats one.
async function distinctPorts(n) {
  const ports = new Set();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

// A cluster description (not started): { env, lbPort, nodePorts, run(cmd), pids(), dispose() }.
// Node ports are consecutive (the script's NODE_PORT + i - 1): the first
// free port whose next `nodes - 1` are free too.
export async function makeCluster({ nodes = 3, broker = 'none', extraConf } = {}) {
  const runDir = mkdtempSync(path.join(tmpdir(), 'nebula-cluster-'));
  const [lbPort, statsPort, redisPort] = await distinctPorts(3);
  let nodePort;
  for (;;) {
    nodePort = 20000 + Math.floor(Math.random() * 20000);
    const probe = await Promise.all(Array.from({ length: nodes }, (_, i) => isFree(nodePort + i)));
    if (probe.every(Boolean) && ![lbPort, statsPort, redisPort].some((p) => p >= nodePort && p < nodePort + nodes)) break;
  }
  const env = {
    RUN_DIR: runDir,
    NODES: String(nodes),
    LB_PORT: String(lbPort),
    STATS_PORT: String(statsPort),
    NODE_PORT: String(nodePort),
    REDIS_PORT: String(redisPort),
    NEBULA_BIN: nebulaBin,
    PLUGIN_DIR: pluginDir,
    BROKER: broker,
    STOP_TIMEOUT: '10',
    ...(extraConf ? { EXTRA_CONF: extraConf } : {}),
  };
  const nodePorts = Array.from({ length: nodes }, (_, i) => nodePort + i);
  return {
    env,
    runDir,
    lbPort,
    statsPort,
    redisPort,
    nodePorts,
    lbUrl: `http://127.0.0.1:${lbPort}`,
    wsUrl: (room, user) => `ws://127.0.0.1:${lbPort}/ws?${new URLSearchParams({ room, username: user })}`,
    run: (...args) => runScript(env, args, 60000),
    // PID files' contents: { name: pid }
    pids() {
      const out = {};
      const read = (name, file) => { try { out[name] = Number(readFileSync(path.join(runDir, file), 'utf8')); } catch { /* absent */ } };
      read('redis', 'redis/redis.pid');
      read('haproxy', 'haproxy/haproxy.pid');
      nodePorts.forEach((_, i) => read(`node${i + 1}`, `node${i + 1}/nebula.pid`));
      return out;
    },
    async dispose() {
      await runScript(env, ['stop'], 60000);
      rmSync(runDir, { recursive: true, force: true });
    },
  };
}

function isFree(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

// Whether a process runs (an unreaped zombie has finished).
export function alive(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return !/^State:\s*Z/m.test(status);
  } catch {
    return false;
  }
}
