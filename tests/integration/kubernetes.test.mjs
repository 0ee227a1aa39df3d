// deployments/kubernetes/ checked offline (docs/CLUSTER.md, "Kubernetes"):
// every object against the Kubernetes schema of its kind, unknown fields
// included; the kustomization lists every file; the references between
// the objects, the node's config and the image hold (probes and Service on
// the port the config listens on, the config file the command names is the
// ConfigMap key mounted there, the grace period covers preStop and
// shutdown_timeout_ms, the image's user, the broker's Redis Service); the
// shipped config passes `nebula --check-config`. Broken copies of the
// manifests must fail each kind of check: a check that cannot fail proves
// nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { runNebula, repoRoot, pluginDir } from '../lib/server.mjs';
import { loadManifests, schemaProblems, parseConf } from '../lib/k8s.mjs';

const dir = path.join(repoRoot, 'deployments', 'kubernetes');
const tmp = mkdtempSync(path.join(tmpdir(), 'nebula-k8s-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

const docs = loadManifests(dir);
const kustomization = docs.find((d) => d.object.kind === 'Kustomization');
const objects = docs.filter((d) => d !== kustomization);

// What the image says about itself: its user (deployments/Dockerfile) and
// its name (the compose file builds and tags it).
const dockerfile = readFileSync(path.join(repoRoot, 'deployments', 'Dockerfile'), 'utf8');
const imageUid = Number(dockerfile.match(/useradd[^\n]*--uid (\d+)/)?.[1]);
const compose = parseYaml(readFileSync(path.join(repoRoot, 'deployments', 'docker-compose.yml'), 'utf8'));
const imageName = compose.services.nebula.image;

const byKind = (list, kind, name) => list.find((o) => o.kind === kind && (!name || o.metadata?.name === name));
const matches = (selector, labels) =>
  !!selector && Object.entries(selector).every(([k, v]) => labels?.[k] === v);

// Kubernetes quantities: bytes ("1Gi", "512Mi", "1000000") and cores ("2", "250m").
function bytesOf(q) {
  const m = String(q).match(/^(\d+)(Ki|Mi|Gi|Ti|k|M|G|T)?$/);
  if (!m) return NaN;
  const unit = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12 };
  return Number(m[1]) * (m[2] ? unit[m[2]] : 1);
}
const coresOf = (q) => (String(q).endsWith('m') ? Number(String(q).slice(0, -1)) / 1000 : Number(q));

// A port reference (number or a container port's name) as a number.
function portOf(container, ref) {
  if (typeof ref === 'number') return ref;
  return container.ports?.find((p) => p.name === ref)?.containerPort;
}

// The config file the container's command names (-c FILE / --config FILE).
function configPath(container) {
  const argv = [...(container.command || []), ...(container.args || [])];
  const i = argv.findIndex((a) => a === '-c' || a === '--config');
  return i >= 0 ? argv[i + 1] : undefined;
}

// The volume mount a path lies under (the longest mountPath that holds it).
function mountOf(container, file) {
  return (container.volumeMounts || [])
    .filter((m) => file === m.mountPath || file.startsWith(m.mountPath.replace(/\/?$/, '/')))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
}

// The text of the config the nebula container reads, found through its
// command, volume mount, volume and ConfigMap; or why it cannot be found.
function configOf(list, pod, container) {
  const file = configPath(container);
  if (!file) return { error: 'the nebula container names no -c/--config file' };
  const mount = mountOf(container, file);
  if (!mount) return { error: `no volume is mounted where ${file} is` };
  const volume = pod.volumes?.find((v) => v.name === mount.name);
  if (!volume?.configMap) return { error: `the volume mounted at ${mount.mountPath} is not a ConfigMap` };
  const rel = mount.subPath ? mount.subPath : path.posix.relative(mount.mountPath, file);
  const item = volume.configMap.items ? volume.configMap.items.find((it) => it.path === rel) : { key: rel };
  if (!item) return { error: `ConfigMap volume ${volume.name} has no item at ${rel}` };
  const cm = byKind(list, 'ConfigMap', volume.configMap.name);
  if (!cm) return { error: `no ConfigMap ${volume.configMap.name} in the manifests` };
  if (typeof cm.data?.[item.key] !== 'string') return { error: `ConfigMap ${cm.metadata.name} has no key ${item.key}` };
  return { file, text: cm.data[item.key], mountPath: mount.mountPath };
}

// Everything wrong between the objects, the config and the image: [] when
// they agree.
function crossProblems(list, configText) {
  const problems = [];
  const bad = (msg) => problems.push(msg);
  const dep = byKind(list, 'Deployment', 'nebula');
  if (!dep) return ['no Deployment named nebula'];
  const pod = dep.spec.template.spec;
  const podLabels = dep.spec.template.metadata?.labels;
  const c = pod.containers.find((x) => x.name === 'nebula');
  if (!c) return ['the nebula Deployment has no container named nebula'];

  if (!(dep.spec.replicas >= 2)) bad(`replicas ${dep.spec.replicas}: a cluster needs more than one node`);
  if (!matches(dep.spec.selector?.matchLabels, podLabels)) bad("the Deployment's selector does not match its pods");
  if (c.image !== imageName) bad(`image ${c.image} is not the one deployments/docker-compose.yml builds (${imageName})`);

  const found = configOf(list, pod, c);
  if (found.error) return [...problems, found.error];
  const conf = parseConf(configText ?? found.text);
  const server = conf.server || {};
  const listenPort = Number(String(server.listen ?? '0.0.0.0:8080').split(':').pop());

  // Probes: readiness is /readyz, liveness /healthz, both on the config's port.
  const probes = { readinessProbe: '/readyz', livenessProbe: '/healthz', startupProbe: null };
  for (const [name, wantPath] of Object.entries(probes)) {
    const probe = c[name];
    if (!probe) {
      if (wantPath) bad(`no ${name}`);
      continue;
    }
    const get = probe.httpGet;
    if (!get) {
      bad(`${name} is not an httpGet`);
      continue;
    }
    if (wantPath && get.path !== wantPath) bad(`${name} asks ${get.path}, not ${wantPath}`);
    if (!wantPath && !['/healthz', '/readyz'].includes(get.path)) bad(`${name} asks ${get.path}`);
    if (portOf(c, get.port) !== listenPort) bad(`${name} port ${get.port} is not the listen port ${listenPort}`);
  }

  // The Service reaches the container port the node listens on.
  const svc = byKind(list, 'Service', 'nebula');
  if (!svc) bad('no Service named nebula');
  else {
    if (!matches(svc.spec.selector, podLabels)) bad("the nebula Service's selector does not match the pods");
    const ports = svc.spec.ports || [];
    if (!ports.some((p) => portOf(c, p.targetPort ?? p.port) === listenPort)) {
      bad(`no port of the nebula Service targets the listen port ${listenPort}`);
    }
  }
  const pdb = byKind(list, 'PodDisruptionBudget');
  if (pdb && !matches(pdb.spec.selector?.matchLabels, podLabels)) bad("the PodDisruptionBudget's selector does not match the pods");

  // Drain: preStop's sleep, then SIGTERM and up to shutdown_timeout_ms,
  // all inside the grace period (it counts from the start of preStop).
  const pre = c.lifecycle?.preStop;
  const sleepS = pre?.sleep?.seconds ??
    (pre?.exec?.command?.length === 2 && /(^|\/)sleep$/.test(pre.exec.command[0]) ? Number(pre.exec.command[1]) : NaN);
  if (!(sleepS >= 1)) bad('preStop does not sleep (the Service must stop routing before SIGTERM)');
  const shutdownS = (server.shutdown_timeout_ms ?? 5000) / 1000;
  const grace = pod.terminationGracePeriodSeconds ?? 30;
  if (!(grace > sleepS + shutdownS)) {
    bad(`terminationGracePeriodSeconds ${grace} is not above preStop ${sleepS} s + shutdown_timeout_ms ${shutdownS * 1000}`);
  }

  // The image's non-root user.
  const ctx = { ...pod.securityContext, ...c.securityContext };
  if (ctx.runAsUser !== imageUid) bad(`runAsUser ${ctx.runAsUser} is not the image's uid ${imageUid}`);
  if (ctx.runAsNonRoot !== true) bad('runAsNonRoot is not true');

  // Limits, and the settings that would otherwise follow the whole machine.
  const res = c.resources || {};
  for (const kind of ['requests', 'limits']) {
    for (const r of ['cpu', 'memory']) if (!res[kind]?.[r]) bad(`no resources.${kind}.${r}`);
  }
  const budget = conf.limits?.memory_budget_bytes;
  if (budget === undefined) bad('no [limits] memory_budget_bytes: its default follows the machine\'s RAM, not the container\'s');
  else if (!(budget < bytesOf(res.limits?.memory))) bad(`memory_budget_bytes ${budget} is not below limits.memory ${res.limits?.memory}`);
  const threads = server.io_threads;
  if (threads === undefined) bad('no [server] io_threads: its default is the machine\'s cores, not the container\'s');
  else if (!(threads <= Math.ceil(coresOf(res.limits?.cpu)))) bad(`io_threads ${threads} is above limits.cpu ${res.limits?.cpu}`);

  // Prometheus finds /metrics on the node's port.
  const ann = dep.spec.template.metadata?.annotations || {};
  if (ann['prometheus.io/scrape'] !== 'true') bad('no prometheus.io/scrape: "true" annotation');
  if (Number(ann['prometheus.io/port']) !== listenPort) bad(`prometheus.io/port ${ann['prometheus.io/port']} is not ${listenPort}`);
  if (ann['prometheus.io/path'] !== '/metrics') bad(`prometheus.io/path ${ann['prometheus.io/path']} is not /metrics`);

  // A read-only root: whatever the node writes (a store's file) is on a
  // writable volume. Relative paths are relative to the config's folder.
  if (ctx.readOnlyRootFilesystem !== true) bad('readOnlyRootFilesystem is not true');
  const store = conf.plugins?.store ?? 'store-sqlite';
  if (store !== 'none') {
    const p = conf[store]?.path ?? (store === 'store-aof' ? 'data/nebula.aof' : 'data/nebula.db');
    const abs = path.posix.resolve(path.posix.dirname(found.file), p);
    const m = mountOf(c, abs);
    const vol = m && pod.volumes?.find((v) => v.name === m.name);
    if (!m || m.readOnly || !vol || vol.configMap || vol.secret) bad(`${store} path ${abs} is not on a writable volume`);
  }

  // broker-redis reaches a Redis Service of the manifests.
  if (conf.plugins?.broker === 'broker-redis') {
    const url = conf['broker-redis']?.url;
    const m = typeof url === 'string' && url.match(/^redis:\/\/(?:[^@/]*@)?([^:/]+)(?::(\d+))?/);
    const rsvc = m && byKind(list, 'Service', m[1]);
    if (!rsvc) bad(`[broker-redis] url ${url} names no Service of the manifests`);
    else {
      const port = Number(m[2] || 6379);
      const sp = rsvc.spec.ports?.find((p) => p.port === port);
      const rdep = list.find((o) => o.kind === 'Deployment' && matches(rsvc.spec.selector, o.spec.template.metadata?.labels));
      const rc = rdep?.spec.template.spec.containers[0];
      if (!sp) bad(`Service ${m[1]} has no port ${port}`);
      else if (!rc || !portOf(rc, sp.targetPort ?? sp.port)) bad(`Service ${m[1]} port ${port} reaches no container port`);
    }
  }
  return problems;
}

const plain = objects.map((d) => d.object);
const clone = () => structuredClone(plain);
const nebulaContainer = (list) => byKind(list, 'Deployment', 'nebula').spec.template.spec.containers[0];

// The config as shipped, with the image's folders replaced by this build's:
// the plugins (the image's are where `meson install` puts them, found with
// no [plugins] dir) and web_root (the image's copy of web/, which the
// Dockerfile must indeed put there).
async function checkConfig(text, name) {
  assert.ok(existsSync(path.join(pluginDir, 'broker-redis.so')),
    `${pluginDir}/broker-redis.so is not built (libhiredis-dev: Makefile APT_PACKAGES)`);
  assert.match(text, /^\[plugins\]$/m);
  const webRoot = parseConf(text).server?.web_root;
  assert.ok(webRoot && dockerfile.includes(`COPY web/ ${webRoot.replace(/\/?$/, '/')}`),
    `web_root ${webRoot} is where deployments/Dockerfile copies web/`);
  const file = path.join(tmp, name);
  writeFileSync(file, text
    .replace(/^\[plugins\]$/m, `[plugins]\ndir = ${JSON.stringify(pluginDir)}`)
    .replace(/^web_root = .*$/m, `web_root = ${JSON.stringify(path.join(repoRoot, 'web'))}`));
  return runNebula(['--check-config', file]);
}

// The commented store-sqlite lines of the ConfigMap, in use.
const withSqlite = (text) => text
  .replace(/^store = "none"\n/m, '')
  .replace(/^# (store = "store-sqlite"|\[store-sqlite\]|path = .*)$/gm, '$1');

test('every manifest parses and the kustomization lists every file', () => {
  assert.ok(kustomization, 'kustomization.yaml is there');
  assert.equal(kustomization.object.apiVersion, 'kustomize.config.k8s.io/v1beta1');
  // kustomize's own fields (the common ones): a misspelt one is an error.
  const known = ['apiVersion', 'kind', 'resources', 'namespace', 'namePrefix', 'nameSuffix', 'labels',
    'commonAnnotations', 'images', 'replicas', 'patches', 'configMapGenerator', 'secretGenerator', 'components'];
  for (const key of Object.keys(kustomization.object)) assert.ok(known.includes(key), `kustomization.yaml: unknown field ${key}`);
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml') && f !== kustomization.file).sort();
  assert.deepEqual([...kustomization.object.resources].sort(), files);
  const kinds = plain.map((o) => `${o.kind}/${o.metadata.name}`).sort();
  assert.deepEqual(kinds, ['ConfigMap/nebula-config', 'Deployment/nebula', 'Deployment/redis',
    'PodDisruptionBudget/nebula', 'Service/nebula', 'Service/redis']);
  assert.throws(() => loadManifests(dir, [{ name: 'broken.yaml', text: 'a: 1\na: 2\n' }]), /broken\.yaml/);
});

test('every object is valid against its Kubernetes schema, with no unknown field', async () => {
  for (const { file, index, object } of objects) {
    assert.deepEqual(await schemaProblems(object), [], `${file} document ${index + 1} (${object.kind})`);
  }
});

test('the schema check rejects misspelt fields, wrong types and unknown kinds', async () => {
  const list = clone();
  const dep = byKind(list, 'Deployment', 'nebula');
  const c = dep.spec.template.spec.containers[0];
  c.readinesProbe = c.readinessProbe;
  delete c.readinessProbe;
  dep.spec.template.metadata.lables = {};
  dep.spec.replicas = '3';
  const problems = await schemaProblems(dep);
  assert.ok(problems.some((p) => p.includes('containers/0/readinesProbe: unknown field')), problems.join('\n'));
  assert.ok(problems.some((p) => p.includes('template/metadata/lables: unknown field')), problems.join('\n'));
  assert.ok(problems.some((p) => p.includes('replicas must be integer')), problems.join('\n'));
  const svc = byKind(list, 'Service', 'nebula');
  assert.deepEqual(await schemaProblems({ ...svc, kind: 'Servise' }), ['unknown kind Servise in v1']);
  assert.deepEqual(await schemaProblems({ ...svc, apiVersion: 'v9' }), ['unknown apiVersion v9']);
});

test('the objects, the config and the image agree with each other', () => {
  assert.ok(Number.isInteger(imageUid), 'deployments/Dockerfile creates its user with --uid');
  assert.deepEqual(crossProblems(plain), []);
});

test('the cross-checks catch each kind of mismatch', () => {
  const cases = {
    'readinessProbe asks /ready': (l) => { nebulaContainer(l).readinessProbe.httpGet.path = '/ready'; },
    'livenessProbe port': (l) => { nebulaContainer(l).livenessProbe.httpGet.port = 9090; },
    'targets the listen port': (l) => { byKind(l, 'Service', 'nebula').spec.ports[0].targetPort = 'http'; },
    "Service's selector": (l) => { byKind(l, 'Service', 'nebula').spec.selector = { app: 'other' }; },
    terminationGracePeriodSeconds: (l) => { byKind(l, 'Deployment', 'nebula').spec.template.spec.terminationGracePeriodSeconds = 10; },
    'preStop does not sleep': (l) => { delete nebulaContainer(l).lifecycle; },
    'has no key': (l) => { byKind(l, 'Deployment', 'nebula').spec.template.spec.volumes[0].configMap.items[0].key = 'node.conf'; },
    'no volume is mounted': (l) => { nebulaContainer(l).command[2] = '/etc/nebula.conf'; },
    runAsUser: (l) => { byKind(l, 'Deployment', 'nebula').spec.template.spec.securityContext.runAsUser = 1000; },
    'prometheus.io/port': (l) => { byKind(l, 'Deployment', 'nebula').spec.template.metadata.annotations['prometheus.io/port'] = '9100'; },
    'names no Service': (l) => { byKind(l, 'Service', 'redis').metadata.name = 'redis-master'; },
    'memory_budget_bytes': (l) => { nebulaContainer(l).resources.limits.memory = '256Mi'; },
    image: (l) => { nebulaContainer(l).image = 'nebula:1.0'; },
  };
  for (const [want, breakIt] of Object.entries(cases)) {
    const list = clone();
    breakIt(list);
    const problems = crossProblems(list);
    assert.ok(problems.some((p) => p.includes(want)), `breaking "${want}" is reported; got:\n${problems.join('\n')}`);
  }
  // The config's own side: another listen port, no io_threads.
  const text = byKind(plain, 'ConfigMap', 'nebula-config').data['nebula.conf'];
  assert.ok(crossProblems(plain, text.replace(':8080"', ':9000"')).some((p) => p.includes('listen port 9000')));
  assert.ok(crossProblems(plain, text.replace(/^io_threads = .*$/m, '')).some((p) => p.includes('io_threads')));
});

test('the ConfigMap\'s nebula.conf passes nebula --check-config', async () => {
  const text = byKind(plain, 'ConfigMap', 'nebula-config').data['nebula.conf'];
  const r = await checkConfig(text, 'nebula.conf');
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout + r.stderr, /: OK$/m);
  // and a mistake in it does not
  const typo = await checkConfig(text.replace('shutdown_timeout_ms', 'shutdown_timeout'), 'typo.conf');
  assert.notEqual(typo.code, 0);
  assert.match(typo.stderr, /shutdown_timeout/);
});

test('the ConfigMap\'s commented store-sqlite variant is valid and writes to the pod\'s volume', async () => {
  const text = withSqlite(byKind(plain, 'ConfigMap', 'nebula-config').data['nebula.conf']);
  const conf = parseConf(text);
  assert.equal(conf.plugins.store, 'store-sqlite');
  assert.ok(conf['store-sqlite']?.path, 'the variant names a path');
  const r = await checkConfig(text, 'sqlite.conf');
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.deepEqual(crossProblems(plain, text), []);
  // A relative path lands beside the config, in the read-only ConfigMap.
  const relative = text.replace(/^path = .*$/m, 'path = "data/nebula.db"');
  assert.ok(crossProblems(plain, relative).some((p) => p.includes('/etc/nebula/data/nebula.db is not on a writable volume')));
});
