// /metrics: the seeds' metrics beside the core's own, promtool's lint on a
// running node, a plugin's histogram and labeled counter (host ABI 1.2),
// and a real Prometheus scraping a node and answering a PromQL query.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client } from '../lib/client.mjs';
import { startServer, makeConfig, freePort } from '../lib/server.mjs';
import { until, sleep } from '../lib/util.mjs';

const fixtureDir = process.env.NEBULA_FIXTURE_DIR;

function need(tool) {
  const r = spawnSync('sh', ['-c', `command -v ${tool}`]);
  assert.equal(r.status, 0, `no '${tool}' command: install Debian's prometheus package (Makefile APT_PACKAGES)`);
}

async function scrape(srv) {
  const res = await fetch(`${srv.url}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  return res.text();
}

// The value of one sample line, e.g. value(text, 'nebula_errors_total{code="bad_json"}').
function value(text, series) {
  for (const line of text.split('\n')) {
    const i = line.lastIndexOf(' ');
    if (i > 0 && line.slice(0, i) === series) return Number(line.slice(i + 1));
  }
  return NaN;
}

async function enter(srv, room, user) {
  const c = await Client.connect(srv.wsUrl(room, user));
  await c.next((f) => f.type === 'join' && f.sender === user);
  return c;
}

test('the seeds\' metrics: gauges, counters by error code, the broadcast histogram, build and process', async () => {
  const srv = await startServer({ limits: { messages_per_second: 0 } });
  try {
    let text = await scrape(srv);
    const codes = ['bad_message', 'bad_json', 'bad_encoding', 'bad_field', 'missing_field', 'unknown_type',
      'too_large', 'bad_room', 'bad_username', 'username_taken', 'not_joined', 'already_joined',
      'too_many_rooms', 'rate_limited', 'idle_timeout', 'store_unavailable', 'broker_unavailable', 'busy', 'internal'];
    for (const code of codes) assert.equal(value(text, `nebula_errors_total{code="${code}"}`), 0, `${code} present at 0`);
    assert.match(text, /^# TYPE nebula_broadcast_duration_seconds histogram$/m);
    assert.match(text, /^nebula_build_info\{version="[0-9.]+",abi="1\.\d+"\} 1$/m);
    assert.ok(value(text, 'nebula_threads') >= 2, 'main and at least one I/O thread');
    assert.ok(value(text, 'process_resident_memory_bytes') > 1e6);
    assert.ok(value(text, 'process_open_fds') > 3);
    assert.ok(value(text, 'process_max_fds') >= value(text, 'process_open_fds'));
    const start = value(text, 'process_start_time_seconds');
    assert.ok(Math.abs(start - Date.now() / 1000) < 120, `start time ${start} is about now`);

    const a = await enter(srv, 'm', 'alice');
    const b = await enter(srv, 'm', 'bob');
    const n = 40;
    for (let i = 0; i < n; i++) a.send({ type: 'message', room: 'm', content: `x${i}` });
    await b.next((f) => f.type === 'message' && f.content === `x${n - 1}`);
    a.send('{not json');
    await a.next('error');
    text = await scrape(srv);
    assert.equal(value(text, 'nebula_connected_clients'), 2);
    assert.equal(value(text, 'nebula_active_rooms'), 1);
    assert.equal(value(text, 'nebula_messages_total'), n);
    assert.equal(value(text, 'nebula_errors_total{code="bad_json"}'), 1);
    // One message in 16 is sampled, the first one included.
    await until(async () => value(await scrape(srv), 'nebula_broadcast_duration_seconds_count') >= 2, 3000,
      'sampled broadcasts are recorded');
    text = await scrape(srv);
    const count = value(text, 'nebula_broadcast_duration_seconds_count');
    assert.ok(count <= n / 16 + 1, `${count} samples for ${n} messages`);
    assert.equal(value(text, 'nebula_broadcast_duration_seconds_bucket{le="+Inf"}'), count);
    assert.ok(value(text, 'nebula_broadcast_duration_seconds_sum') > 0);
    assert.ok(value(text, 'nebula_broadcast_duration_seconds_sum') < count * 2.5, 'seconds, not ms');
    a.close();
    await until(async () => value(await scrape(srv), 'nebula_connected_clients') === 1, 5000, 'a leaves');
    b.close();
  } finally {
    await srv.stop();
  }
});

test('promtool check metrics passes on a running node\'s /metrics (with a store plugin\'s own)', async () => {
  need('promtool');
  const port = await freePort();
  const config = makeConfig({ port, plugins: { dir: fixtureDir, store: 'store-memory' },
    extra: '[store-memory]\nack_after_flush = true\n' });
  const srv = await startServer({ port, config });
  try {
    const a = await enter(srv, 'p', 'alice');
    for (let i = 0; i < 17; i++) a.send({ type: 'message', room: 'p', content: 'hello' });
    await a.next((f) => f.type === 'message' && f.seq === 17);
    await until(async () => value(await scrape(srv), 'nebula_broadcast_duration_seconds_count') >= 2, 3000,
      'sampled through the store\'s flush');
    const text = await scrape(srv);
    assert.equal(value(text, 'nebula_store_memory_append_bytes_count'), 17, 'a plugin\'s histogram (ABI 1.2)');
    assert.equal(value(text, 'nebula_store_memory_append_bytes_bucket{le="16"}'), 17);
    assert.equal(value(text, 'nebula_store_memory_appends_total{result="ok"}'), 17, 'a plugin\'s labeled counter');
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(r.status, 0, `promtool check metrics (exit ${r.status}):\n${r.stdout}${r.stderr}`);
    a.close();
  } finally {
    await srv.stop();
  }
});

test('a real Prometheus scrapes the node and answers a PromQL query about it', async () => {
  need('prometheus');
  const srv = await startServer();
  const dir = mkdtempSync(path.join(tmpdir(), 'nebula-prom-'));
  const promPort = await freePort();
  writeFileSync(path.join(dir, 'prometheus.yml'), [
    'global:', '  scrape_interval: 1s', '  evaluation_interval: 1s',
    'scrape_configs:', '  - job_name: nebula', '    static_configs:', `      - targets: ['127.0.0.1:${srv.port}']`, '',
  ].join('\n'));
  let log = '';
  const prom = spawn('prometheus', [
    `--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${promPort}`, '--log.level=warn',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  prom.stderr.on('data', (d) => { log += d; });
  const exited = new Promise((resolve) => prom.on('close', resolve));
  const clients = [];
  try {
    for (const u of ['ann', 'ben', 'cid']) clients.push(await enter(srv, 'q', u));
    const query = async (q) => {
      const res = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(q)}`);
      const body = await res.json();
      return body.status === 'success' ? body.data.result : [];
    };
    // The first scrape comes 5-8 s after start: poll the API.
    await until(async () => {
      try {
        const r = await query('nebula_connected_clients{job="nebula"}');
        return r.length === 1 && r[0].value[1] === '3';
      } catch { return false; }
    }, 40000, `Prometheus reports nebula_connected_clients = 3 (prometheus log: ${log})`);
    const up = await query('up{job="nebula"}');
    assert.equal(up[0].value[1], '1', 'the scrape succeeded');
    const info = await query('nebula_build_info');
    assert.match(info[0].metric.abi, /^1\.\d+$/);
  } finally {
    for (const c of clients) c.close();
    prom.kill('SIGTERM');
    await Promise.race([exited, sleep(10000)]);
    if (prom.exitCode === null) prom.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    await srv.stop();
  }
});
