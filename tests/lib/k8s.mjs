// Offline checks of Kubernetes manifests (deployments/kubernetes/), used by
// tests/integration/kubernetes.test.mjs:
//   loadManifests     every YAML document of a folder, parse errors included;
//   schemaProblems    one object against the Kubernetes OpenAPI schema of its
//                     apiVersion and kind (npm kubernetes-models), strictly:
//                     an unknown field is an error, as `kubectl apply
//                     --validate=strict` makes it;
//   parseConf         the keys of a nebula.conf, enough for cross-checks
//                     (`nebula --check-config` judges the syntax itself).
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';

// { file, index, object } for every document of every .yaml file in dir;
// a file that does not parse throws, naming the file and the error.
export function loadManifests(dir, files = readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort()) {
  const docs = [];
  for (const file of files) {
    const texts = typeof file === 'object' ? file : { name: file, text: readFileSync(path.join(dir, file), 'utf8') };
    parseAllDocuments(texts.text, { prettyErrors: true, uniqueKeys: true }).forEach((doc, index) => {
      const problems = [...doc.errors, ...doc.warnings];
      if (problems.length) throw new Error(`${texts.name}: ${problems.map((p) => p.message).join('; ')}`);
      const object = doc.toJS();
      if (object !== null) docs.push({ file: texts.name, index, object });
    });
  }
  return docs;
}

// The model class of apiVersion/kind, or an explanation of why there is none.
async function modelOf(apiVersion, kind) {
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') {
    return { error: 'no apiVersion or kind' };
  }
  let mod;
  try {
    mod = await import(`kubernetes-models/${apiVersion}`);
  } catch {
    return { error: `unknown apiVersion ${apiVersion}` };
  }
  const model = mod[kind];
  if (typeof model !== 'function' || model.kind !== kind || model.apiVersion !== apiVersion) {
    return { error: `unknown kind ${kind} in ${apiVersion}` };
  }
  return { model };
}

// The schema validators are compiled JSON Schema (ajv) and, like the
// Kubernetes OpenAPI document they come from, accept any extra property:
// a misspelt field (`readinesProbe`) would pass them and be dropped by the
// API server. So the object is validated through a proxy that records
// which properties the validator looks up: a property of a structure it
// never looked up is not in the schema. A map (labels, data, resources'
// limits) is enumerated by the validator, which marks all of its keys known.
function tracked(root) {
  const records = new Map(); // target -> { where, read: Set, all }
  const wrap = (value, where) => {
    if (value === null || typeof value !== 'object') return value;
    let rec = records.get(value);
    if (!rec) {
      rec = { where, read: new Set(), all: false };
      records.set(value, rec);
    }
    const mark = (key) => typeof key === 'string' && rec.read.add(key);
    return new Proxy(value, {
      get(target, key, receiver) {
        mark(key);
        return wrap(Reflect.get(target, key, receiver), `${where}/${String(key)}`);
      },
      has(target, key) {
        mark(key);
        return Reflect.has(target, key);
      },
      getOwnPropertyDescriptor(target, key) {
        mark(key);
        return Reflect.getOwnPropertyDescriptor(target, key);
      },
      ownKeys(target) {
        rec.all = true;
        return Reflect.ownKeys(target);
      },
    });
  };
  const unknown = () => {
    const found = [];
    for (const [target, rec] of records) {
      if (Array.isArray(target) || rec.all) continue;
      for (const key of Object.keys(target)) {
        if (!rec.read.has(key)) found.push(`${rec.where}/${key}: unknown field`);
      }
    }
    return found;
  };
  return { proxy: wrap(root, ''), unknown };
}

// Problems of one object against its schema: [] when it is valid.
export async function schemaProblems(object) {
  const { model, error } = await modelOf(object?.apiVersion, object?.kind);
  if (error) return [error];
  const { proxy, unknown } = tracked(object);
  const problems = [];
  try {
    model.prototype.validate.call(proxy);
  } catch (e) {
    problems.push(e.message);
  }
  return [...problems, ...unknown()];
}

// { section: { key: value } } of a nebula.conf; values as JSON reads them
// (strings, numbers, lists), anything else as its text.
export function parseConf(text) {
  const conf = { '': {} };
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const head = line.match(/^\[([^\]]+)\]$/);
    if (head) {
      section = head[1];
      conf[section] ??= {};
      continue;
    }
    const kv = line.match(/^([A-Za-z0-9_-]+)\s*=\s*(.*)$/);
    if (!kv) continue;
    let value;
    try {
      value = JSON.parse(kv[2]);
    } catch {
      value = kv[2];
    }
    conf[section][kv[1]] = value;
  }
  return conf;
}
