/**
 * Gateway API material: kong/kubernetes/gateway-api/ (GatewayClass and Gateway for KIC, the
 * app, the HTTPRoute with a 90/10 split and sessionPersistence, the KongPlugin; ../rbac.yaml's
 * grants for what the plugin reads of them), the
 * `kubectl patch` commands of its README, and every HTTPRoute anywhere in the repo's YAML and
 * Markdown and in what `sticky-session convert` makes of the examples, all checked against the
 * Gateway API v1.6.1 experimental-channel schema (gateway-api.ts). The last block shows the
 * checkers fail.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readDocuments } from '../../src/cli/convert.js';
import { extractSchemas } from './extract-gateway-api-schema.js';
import { httpRoute, referenceGrant } from '../harness/kic-gateway-api.js';
import { convert, DEFAULT_OPTIONS } from '../../src/convert/index.js';
import { parseSessionPersistence } from '../../src/endpoints/gateway-api/session-persistence.js';
import {
  celCompatible,
  celRules,
  compileCelRule,
  GATEWAY_API_KINDS,
  GATEWAY_API_SCHEMA_SOURCE,
  gatewayApiProblems,
  gatewayApiSchema,
  isGatewayApi,
  isTransitionRule,
} from './gateway-api.js';
import {
  isObj,
  kindKey,
  manifestProblems,
  MANIFESTS_DIR,
  type Obj,
  parseConfigLikeKic,
  parseYamlDocuments,
  pluginConfigProblems,
  rbacBindingProblems,
  rbacRoleProblems,
  readYamlDocuments,
  REPO_DIR,
  secretValue,
} from './validate.js';

const DIR = path.join(MANIFESTS_DIR, 'gateway-api');
const FILES = ['gateway.yaml', 'app.yaml', 'kongplugin.yaml', 'httproute.yaml'];
const docsByFile = new Map(FILES.map((f) => [f, readYamlDocuments(path.join(DIR, f)) as Obj[]]));
const docs: Obj[] = [...docsByFile.values()].flat();
const baseRbac = readYamlDocuments(path.join(MANIFESTS_DIR, 'rbac.yaml')) as Obj[];
const readme = readFileSync(path.join(DIR, 'README.md'), 'utf8');

const meta = (d: Obj): Obj => (isObj(d.metadata) ? d.metadata : {});
const label = (d: Obj): string => `${String(d.kind)} ${meta(d).namespace ? `${String(meta(d).namespace)}/` : ''}${String(meta(d).name)}`;
const ofKind = (kind: string, from: readonly Obj[] = docs): Obj[] => from.filter((d) => d.kind === kind);
function theOne(kind: string, from: readonly Obj[] = docs): Obj {
  const found = ofKind(kind, from);
  if (found.length !== 1) throw new Error(`expected one ${kind}, found ${found.length}`);
  return found[0] as Obj;
}
function named(kind: string, name: string, namespace: string): Obj {
  const found = ofKind(kind).filter((d) => meta(d).name === name && meta(d).namespace === namespace);
  if (found.length !== 1) throw new Error(`expected one ${kind} ${namespace}/${name}, found ${found.length}`);
  return found[0] as Obj;
}
function at(value: unknown, ...keys: Array<string | number>): unknown {
  let v = value;
  for (const k of keys) v = typeof k === 'number' ? (Array.isArray(v) ? v[k] : undefined) : isObj(v) ? v[k] : undefined;
  return v;
}
const list = (v: unknown): Obj[] => (Array.isArray(v) ? v.filter(isObj) : []);

/** Any document: Gateway API kinds by their schema, the rest as kong/kubernetes/ validates them. */
function problems(doc: Obj): string[] {
  return isGatewayApi(doc) ? gatewayApiProblems(doc) : manifestProblems(doc);
}

const route = theOne('HTTPRoute');
const ROUTE_NS = String(meta(route).namespace);
const rule = list(at(route, 'spec', 'rules'))[0] as Obj;

// ---------------------------------------------------------------------------------------

describe('kong/kubernetes/gateway-api/ documents', () => {
  it('holds the files its README lists', () => {
    for (const f of [...FILES, 'README.md']) expect(readme.includes(`\`${f}\``) || f === 'README.md', f).toBe(true);
    expect(docs.length).toBeGreaterThan(0);
  });

  it.each(docs.map((d) => [label(d), d] as const))('%s validates', (_name, doc) => {
    expect(problems(doc)).toEqual([]);
  });

  it('uses each kind, namespace and name once, and creates the namespaces it uses', () => {
    const keys = docs.map((d) => `${kindKey(d)} ${String(meta(d).namespace ?? '')}/${String(meta(d).name)}`);
    expect(keys.length).toBe(new Set(keys).size);
    const namespaces = new Set([...ofKind('Namespace'), ...ofKind('Namespace', baseRbac)].map((n) => meta(n).name));
    for (const d of docs) if (meta(d).namespace !== undefined) expect(namespaces, label(d)).toContain(meta(d).namespace);
  });
});

describe('GatewayClass and Gateway', () => {
  const gatewayClass = theOne('GatewayClass');
  const gateway = theOne('Gateway');

  it("the GatewayClass is KIC's, unmanaged (KIC programs the Kong it runs with)", () => {
    expect(at(gatewayClass, 'spec', 'controllerName')).toBe('konghq.com/kic-gateway-controller');
    expect(at(meta(gatewayClass), 'annotations', 'konghq.com/gatewayclass-unmanaged')).toBe('true');
  });

  it('the Gateway is of that class and lets the HTTPRoute attach', () => {
    expect(at(gateway, 'spec', 'gatewayClassName')).toBe(meta(gatewayClass).name);
    const parents = list(at(route, 'spec', 'parentRefs'));
    expect(parents).toHaveLength(1);
    const parent = parents[0] as Obj;
    expect(parent.name).toBe(meta(gateway).name);
    expect(parent.namespace ?? ROUTE_NS).toBe(meta(gateway).namespace);
    const listeners = list(at(gateway, 'spec', 'listeners'));
    const open = listeners.filter((l) => l.protocol === 'HTTP' && (at(l, 'allowedRoutes', 'namespaces', 'from') ?? 'Same') !== 'None');
    expect(open.length).toBeGreaterThan(0);
    for (const l of open) {
      const from = at(l, 'allowedRoutes', 'namespaces', 'from') ?? 'Same';
      expect(from === 'All' || (from === 'Same' && meta(gateway).namespace === ROUTE_NS), String(l.name)).toBe(true);
    }
  });
});

describe('the HTTPRoute', () => {
  const services = ofKind('Service');

  it('has one rule with a 90/10 split whose backendRefs are Services of the manifest, on a port they have', () => {
    expect(list(at(route, 'spec', 'rules'))).toHaveLength(1);
    const refs = list(rule.backendRefs);
    expect(refs.map((r) => r.weight)).toEqual([90, 10]);
    for (const ref of refs) {
      expect(ref.group ?? '').toBe('');
      expect(ref.kind ?? 'Service').toBe('Service');
      const svc = named('Service', String(ref.name), String(ref.namespace ?? ROUTE_NS));
      expect(list(at(svc, 'spec', 'ports')).map((p) => p.port), label(svc)).toContain(ref.port);
    }
    expect(new Set(refs.map((r) => r.name)).size).toBe(2);
  });

  it('sessionPersistence uses v1.6.1 field names, and the plugin reads it as a 12h Permanent cookie', () => {
    const sp = rule.sessionPersistence as Obj;
    expect(Object.keys(sp).sort()).toEqual(['absoluteTimeout', 'cookieConfig', 'sessionName', 'type']);
    expect(parseSessionPersistence(sp)).toEqual({
      ok: true,
      shape: 'v1',
      ignored: [],
      policy: { type: 'cookie', name: 'shop_session', lifetime: 'permanent', absoluteTimeoutS: 43_200 },
    });
  });

  it('attaches the KongPlugin of its namespace by an ExtensionRef filter on the rule', () => {
    const refs = list(rule.filters).filter((f) => f.type === 'ExtensionRef');
    expect(refs).toHaveLength(1);
    const ext = refs[0]?.extensionRef as Obj;
    expect(ext).toMatchObject({ group: 'configuration.konghq.com', kind: 'KongPlugin' });
    expect(named('KongPlugin', String(ext.name), ROUTE_NS).plugin).toBe('sticky-session');
    // No annotation as well: the plugin would run twice on the rule's routes.
    expect(at(meta(route), 'annotations', 'konghq.com/plugins')).toBeUndefined();
  });

  it('the Services select the pods of one Deployment each, by a port name the containers have', () => {
    expect(services).toHaveLength(2);
    for (const svc of services) {
      const selector = at(svc, 'spec', 'selector') as Obj;
      const selected = ofKind('Deployment').filter((d) => {
        const labels = at(d, 'spec', 'template', 'metadata', 'labels');
        return isObj(labels) && Object.entries(selector).every(([k, v]) => labels[k] === v);
      });
      expect(selected, label(svc)).toHaveLength(1);
      const containerPorts = list(at(selected[0], 'spec', 'template', 'spec', 'containers')).flatMap((c) => list(c.ports).map((p) => p.name));
      for (const p of list(at(svc, 'spec', 'ports'))) {
        expect(p.name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
        expect(containerPorts).toContain(p.targetPort);
      }
    }
  });

  it('the pods drain: readiness probe, preStop sleep, a grace period longer than it, no unavailable pod in a rollout', () => {
    for (const d of ofKind('Deployment')) {
      const pod = at(d, 'spec', 'template', 'spec') as Obj;
      const c = list(pod.containers)[0] as Obj;
      expect(c.readinessProbe, label(d)).toBeDefined();
      const sleep = Number(at(c, 'lifecycle', 'preStop', 'sleep', 'seconds'));
      expect(sleep).toBeGreaterThan(0);
      expect(Number(pod.terminationGracePeriodSeconds)).toBeGreaterThan(sleep);
      expect(at(d, 'spec', 'strategy', 'rollingUpdate', 'maxUnavailable')).toBe(0);
    }
  });
});

describe('the KongPlugin', () => {
  const plugin = named('KongPlugin', 'sticky-session', ROUTE_NS);
  const ref = at(plugin, 'configFrom', 'secretKeyRef') as Obj;
  const secret = named('Secret', String(ref.name), ROUTE_NS);
  const config = parseConfigLikeKic(secretValue(secret, String(ref.key)) ?? '') as Obj;

  it('takes from a Secret a config that carries only secrets, which Kong and the plugin accept', () => {
    expect(Object.keys(config)).toEqual(['secrets']);
    expect(pluginConfigProblems(config)).toEqual([]);
    expect(meta(secret).labels).toMatchObject({ 'konghq.com/validate': 'plugin' });
  });

  it("its placeholder is the one the README's sed replaces", () => {
    const placeholder = String((config.secrets as unknown[])[0]);
    expect(placeholder).toMatch(/REPLACE-ME/);
    expect(readme).toContain(`s|${placeholder}|$(openssl rand -base64 32)|`);
  });
});

describe('RBAC for Gateway API (../rbac.yaml)', () => {
  const role = theOne('ClusterRole', baseRbac);

  it('grants list/watch on services, httproutes and referencegrants besides endpointslices, to the ServiceAccount', () => {
    expect(rbacRoleProblems(role)).toEqual([]);
    const grants = list(role.rules).flatMap((r) => (r.apiGroups as string[]).flatMap((g) => (r.resources as string[]).map((res) => `${g}/${res}`)));
    expect(grants).toEqual(expect.arrayContaining(['/services', 'gateway.networking.k8s.io/httproutes', 'gateway.networking.k8s.io/referencegrants']));
    const sa = theOne('ServiceAccount', baseRbac);
    expect(rbacBindingProblems(theOne('ClusterRoleBinding', baseRbac), role, { name: String(meta(sa).name), namespace: String(meta(sa).namespace) })).toEqual([]);
  });

  it('no second grant here: the directory has no RBAC of its own', () => {
    for (const kind of ['ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding']) expect(ofKind(kind), kind).toEqual([]);
  });

  it('that grant fails the check without the Gateway API rule', () => {
    const edited = structuredClone(role);
    edited.rules = list(edited.rules).filter((r) => !(r.apiGroups as string[]).includes('gateway.networking.k8s.io'));
    expect(rbacRoleProblems(edited)).toEqual(expect.arrayContaining([expect.stringMatching(/no rule for apiGroup "gateway.networking.k8s.io"/)]));
  });
});

// ---------------------------------------------------------------------------------------
// The README's kubectl patch commands, applied to httproute.yaml

type JsonPatchOp = { op: 'replace' | 'remove' | 'add'; path: string; value?: unknown };

function applyJsonPatch(doc: Obj, ops: readonly JsonPatchOp[]): Obj {
  const out = structuredClone(doc);
  for (const op of ops) {
    const parts = op.path.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = parts.pop() as string;
    const parent = at(out, ...parts.map((p) => (/^\d+$/.test(p) ? Number(p) : p)));
    if (Array.isArray(parent)) {
      const i = Number(last);
      if (!(i in parent) && op.op !== 'add') throw new Error(`${op.path}: no such element`);
      if (op.op === 'remove') parent.splice(i, 1);
      else if (op.op === 'add') parent.splice(i, 0, op.value);
      else parent[i] = op.value;
    } else if (isObj(parent)) {
      if (!(last in parent) && op.op !== 'add') throw new Error(`${op.path}: no such field`);
      if (op.op === 'remove') delete parent[last];
      else parent[last] = op.value;
    } else throw new Error(`${op.path}: no parent`);
  }
  return out;
}

const patches = [...readme.matchAll(/^\s*kubectl -n (\S+) patch httproute (\S+) --type=json -p '(.+)'$/gm)].map((m) => ({
  namespace: m[1] as string,
  name: m[2] as string,
  ops: JSON.parse(m[3] as string) as JsonPatchOp[],
}));

describe("the README's walk-throughs", () => {
  const weights = (r: Obj): Array<[unknown, unknown]> => list(at(r, 'spec', 'rules', 0, 'backendRefs')).map((b) => [b.name, b.weight]);

  it('patch the HTTPRoute of httproute.yaml, and each result validates with backendRefs on the Services', () => {
    expect(patches.length).toBe(5);
    for (const p of patches) {
      expect([p.namespace, p.name]).toEqual([ROUTE_NS, meta(route).name]);
      const patched = applyJsonPatch(route, p.ops);
      expect(gatewayApiProblems(patched), JSON.stringify(p.ops)).toEqual([]);
      for (const b of list(at(patched, 'spec', 'rules', 0, 'backendRefs'))) named('Service', String(b.name), ROUTE_NS);
    }
  });

  it('canary 90/10 -> 50/50 -> 0/100; blue/green 100/0 -> 0/100, then blue removed', () => {
    expect(weights(route)).toEqual([['shop-v1', 90], ['shop-v2', 10]]);
    expect(patches.map((p) => weights(applyJsonPatch(route, p.ops)))).toEqual([
      [['shop-v1', 50], ['shop-v2', 50]],
      [['shop-v1', 0], ['shop-v2', 100]],
      [['shop-v1', 100], ['shop-v2', 0]],
      [['shop-v1', 0], ['shop-v2', 100]],
      [['shop-v2', 10]],
    ]);
  });
});

// ---------------------------------------------------------------------------------------
// Every HTTPRoute in the repo

const SKIP_DIRS = new Set(['node_modules', 'dist', '.git', 'coverage']);

function repoFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = path.join(dir, f);
    if (statSync(p).isDirectory()) return SKIP_DIRS.has(f) ? [] : repoFiles(p);
    return /\.(ya?ml|md)$/.test(f) ? [p] : [];
  });
}

/** Gateway API documents of a YAML file, or of the ```yaml blocks of a Markdown file. */
function gatewayDocs(file: string): Array<[string, Obj]> {
  const text = readFileSync(file, 'utf8');
  const where = path.relative(REPO_DIR, file);
  const blocks = file.endsWith('.md') ? [...text.matchAll(/^```ya?ml\n([\s\S]*?)^```$/gm)].map((m, i) => [`${where} block ${i + 1}`, m[1] as string] as const) : [[where, text] as const];
  return blocks.flatMap(([w, yaml]) => {
    // Helm values with templates and the like are not manifests; a Gateway API document must parse.
    if (!/gateway\.networking\.k8s\.io\//.test(yaml)) return [];
    return (parseYamlDocuments(yaml, w) as unknown[]).filter((d): d is Obj => isGatewayApi(d)).map((d) => [`${w}: ${label(d)}`, d] as [string, Obj]);
  });
}

const everywhere = repoFiles(REPO_DIR).flatMap(gatewayDocs);
const converted = readdirSync(path.join(REPO_DIR, 'docs/examples/convert'))
  .filter((f) => f.endsWith('.yaml'))
  .flatMap((f) => {
    const out = convert(readDocuments(readFileSync(path.join(REPO_DIR, 'docs/examples/convert', f), 'utf8')), DEFAULT_OPTIONS).documents;
    return out.filter(isGatewayApi).map((d) => [`sticky-session convert -f docs/examples/convert/${f}: ${label(d as Obj)}`, d as Obj] as [string, Obj]);
  });

describe('every Gateway API document in the repo validates against the v1.6.1 experimental schema', () => {
  it('finds them: the manifests here, the convert example, and its output', () => {
    const where = everywhere.map(([w]) => w);
    expect(where.filter((w) => w.startsWith('kong/kubernetes/gateway-api/')).length).toBe(3);
    expect(where.filter((w) => w.startsWith('docs/examples/convert/gateway-api.yaml')).length).toBe(1);
    expect(converted.length).toBeGreaterThanOrEqual(1);
  });

  it.each([...everywhere, ...converted])('%s', (_where, doc) => {
    expect(gatewayApiProblems(doc)).toEqual([]);
  });

  it("the e2e harness's builders (test/harness/kic-gateway-api.ts), with a v1.6.1 sessionPersistence", () => {
    const sp = { sessionName: 'cart', type: 'Cookie', absoluteTimeout: '1h', cookieConfig: { lifetimeType: 'Permanent' } };
    const built = httpRoute('shop', 'shop', [
      { name: 'split', path: '/', backendRefs: [{ name: 'v1', port: 80, weight: 90 }, { name: 'v2', port: 80, weight: 10 }], sessionPersistence: sp },
      { path: '/other', backendRefs: [{ name: 'v3', namespace: 'payments', port: 8080 }] },
    ]);
    expect(gatewayApiProblems(built)).toEqual([]);
    expect(gatewayApiProblems(referenceGrant('payments', 'shop', 'shop', 'v3'))).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------

describe('the Gateway API schema', () => {
  it('is the v1.6.1 experimental channel, for the four kinds', () => {
    expect(GATEWAY_API_SCHEMA_SOURCE).toMatch(/Gateway API v1\.6\.1 experimental channel/);
    for (const key of Object.keys(GATEWAY_API_KINDS)) expect(gatewayApiSchema(key), key).toBeDefined();
    // Experimental fields of v1.6.1: sessionPersistence without idleTimeout.
    const sp = at(gatewayApiSchema('gateway.networking.k8s.io/v1/HTTPRoute'), 'properties', 'spec', 'properties', 'rules', 'items', 'properties', 'sessionPersistence', 'properties');
    expect(Object.keys(sp as Obj).sort()).toEqual(['absoluteTimeout', 'cookieConfig', 'sessionName', 'type']);
  });

  // Set GATEWAY_API_CRDS to a directory with the v1.6.1 experimental CRDs (GATEWAY-API-SOURCE.md).
  it.skipIf(!process.env.GATEWAY_API_CRDS)('is what extract-gateway-api-schema.ts makes of the CRDs in $GATEWAY_API_CRDS', () => {
    const committed = JSON.parse(readFileSync(new URL('./gateway-api-v1.6.1-experimental.schema.json', import.meta.url), 'utf8')) as unknown;
    expect(extractSchemas(String(process.env.GATEWAY_API_CRDS), 'v1.6.1', '8bb74df00e56ec8f944d48c25e6c1c9c2f6848e3')).toEqual(committed);
  });

  it('every CEL rule compiles (a schema update with a rule cel-js cannot run fails here)', () => {
    let n = 0;
    for (const key of Object.keys(GATEWAY_API_KINDS)) {
      for (const rule of celRules(gatewayApiSchema(key))) {
        if (isTransitionRule(rule)) continue;
        expect(() => compileCelRule(rule), rule).not.toThrow();
        n++;
      }
    }
    expect(n).toBeGreaterThan(100);
    expect(celCompatible('has(self.matches[0].path)')).toBe("('path' in self.matches[0])");
  });
});

describe('the Gateway API checkers fail on bad input', () => {
  function edited<T>(value: T, edit: (copy: T) => void): T {
    const copy = structuredClone(value);
    edit(copy);
    return copy;
  }
  const withRule = (edit: (r: Obj) => void): Obj => edited(route, (d) => edit(list(at(d, 'spec', 'rules'))[0] as Obj));

  it('sessionPersistence: a bad type, an unknown or removed field, a bad duration, Permanent without absoluteTimeout, cookieConfig with Header', () => {
    // The enum, and the CEL rule that reads the type: the API server reports both.
    expect(gatewayApiProblems(withRule((r) => ((r.sessionPersistence as Obj).type = 'Query')))).toEqual([
      expect.stringMatching(/sessionPersistence: cookieConfig can only be set with type Cookie/),
      expect.stringMatching(/sessionPersistence\/type: must be equal to one of the allowed values \["Cookie","Header"\]/),
    ]);
    expect(gatewayApiProblems(withRule((r) => ((r.sessionPersistence as Obj).idleTimeout = '30m')))).toEqual([expect.stringMatching(/sessionPersistence: must NOT have additional properties "idleTimeout"/)]);
    expect(gatewayApiProblems(withRule((r) => ((r.sessionPersistence as Obj).cookie = { name: 'x' })))).toEqual([expect.stringMatching(/additional properties "cookie"/)]);
    expect(gatewayApiProblems(withRule((r) => ((r.sessionPersistence as Obj).absoluteTimeout = '12 hours')))).toEqual([expect.stringMatching(/absoluteTimeout: must match pattern/)]);
    expect(gatewayApiProblems(withRule((r) => delete (r.sessionPersistence as Obj).absoluteTimeout))).toEqual([expect.stringMatching(/AbsoluteTimeout must be specified when cookie lifetimeType is Permanent/)]);
    expect(gatewayApiProblems(withRule((r) => ((r.sessionPersistence as Obj).type = 'Header')))).toEqual([expect.stringMatching(/cookieConfig can only be set with type Cookie/)]);
    expect(gatewayApiProblems(withRule((r) => ((r.sessionPersistence as Obj).sessionName = 'x'.repeat(129))))).toEqual([expect.stringMatching(/sessionName: must NOT have more than 128 characters/)]);
  });

  it('backendRefs: a weight out of range, a Service without port, a bad kind of field', () => {
    expect(gatewayApiProblems(withRule((r) => ((list(r.backendRefs)[0] as Obj).weight = 1_000_001)))).toEqual([expect.stringMatching(/backendRefs\/0\/weight: must be <= 1000000/)]);
    expect(gatewayApiProblems(withRule((r) => ((list(r.backendRefs)[0] as Obj).weight = -1)))).toEqual([expect.stringMatching(/weight: must be >= 0/)]);
    expect(gatewayApiProblems(withRule((r) => ((list(r.backendRefs)[0] as Obj).weight = '90')))).toEqual([expect.stringMatching(/weight: must be integer/)]);
    expect(gatewayApiProblems(withRule((r) => delete (list(r.backendRefs)[1] as Obj).port))).toEqual([expect.stringMatching(/backendRefs\/1: Must have port for Service reference/)]);
    // A non-Service backend needs no port: the rule reads the defaulted group and kind.
    expect(gatewayApiProblems(withRule((r) => Object.assign(list(r.backendRefs)[1] as Obj, { group: 'example.com', kind: 'Bucket', port: undefined })))).toEqual([]);
  });

  it('unknown fields anywhere, metadata included; a missing namespace', () => {
    expect(gatewayApiProblems(withRule((r) => (r.sessionPersistance = {})))).toEqual([expect.stringMatching(/rules\/0: must NOT have additional properties "sessionPersistance"/)]);
    expect(gatewayApiProblems(edited(route, (d) => ((d.spec as Obj).hostname = 'x')))).toEqual([expect.stringMatching(/spec: must NOT have additional properties "hostname"/)]);
    expect(gatewayApiProblems(edited(route, (d) => ((d.metadata as Obj).label = {})))).toEqual([expect.stringMatching(/metadata\.label: unknown field/)]);
    expect(gatewayApiProblems(edited(route, (d) => delete (d.metadata as Obj).namespace))).toEqual([expect.stringMatching(/metadata\.namespace missing/)]);
  });

  it('CEL rules of filters and matches, evaluated on the defaulted object', () => {
    // A match without a path is defaulted to PathPrefix "/", which the URLRewrite rule then reads.
    const rewrite = { type: 'URLRewrite', urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/x' } } };
    expect(gatewayApiProblems(withRule((r) => (r.filters = [rewrite])))).toEqual([]);
    expect(gatewayApiProblems(withRule((r) => ((r.filters = [rewrite]), (r.matches = [{ path: { type: 'Exact', value: '/a' } }]))))).toEqual([
      expect.stringMatching(/When using URLRewrite filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified/),
    ]);
    expect(gatewayApiProblems(withRule((r) => (r.matches = [{ path: { type: 'PathPrefix', value: '/a//b' } }])))).toEqual([expect.stringMatching(/must not contain '\/\/'/)]);
    expect(gatewayApiProblems(withRule((r) => (list(r.filters)[0] as Obj).type = 'RequestHeaderModifier'))).toEqual(
      expect.arrayContaining([expect.stringMatching(/filter.requestHeaderModifier must be specified for RequestHeaderModifier filter.type/)]),
    );
    expect(gatewayApiProblems(edited(route, (d) => (at(d, 'spec', 'rules') as Obj[]).push({ name: 'shop' })))).toEqual([expect.stringMatching(/Rule name must be unique within the route/)]);
  });

  it('Gateway, GatewayClass, ReferenceGrant', () => {
    const gateway = theOne('Gateway');
    expect(gatewayApiProblems(edited(gateway, (g) => (at(g, 'spec', 'listeners') as Obj[]).push({ name: 'http', protocol: 'HTTP', port: 8080 })))).toEqual(
      expect.arrayContaining([expect.stringMatching(/duplicate entry with name = \["http"\]|Listener name must be unique/)]),
    );
    expect(gatewayApiProblems(edited(gateway, (g) => ((list(at(g, 'spec', 'listeners'))[0] as Obj).port = 70000)))).toEqual([expect.stringMatching(/port: must be <= 65535/)]);
    const gatewayClass = theOne('GatewayClass');
    expect(gatewayApiProblems(edited(gatewayClass, (c) => ((c.metadata as Obj).namespace = 'shop')))).toEqual([expect.stringMatching(/cluster-scoped/)]);
    expect(gatewayApiProblems(edited(gatewayClass, (c) => ((c.spec as Obj).controllerName = 'kic')))).toEqual([expect.stringMatching(/controllerName: must match pattern/)]);
    const grant = {
      apiVersion: 'gateway.networking.k8s.io/v1beta1',
      kind: 'ReferenceGrant',
      metadata: { name: 'shop-to-payments', namespace: 'payments' },
      spec: { from: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: 'shop' }], to: [{ group: '', kind: 'Service' }] },
    };
    expect(gatewayApiProblems(grant)).toEqual([]);
    expect(gatewayApiProblems(edited(grant, (g) => delete (list(at(g, 'spec', 'from'))[0] as Obj).namespace))).toEqual([expect.stringMatching(/must have required property 'namespace'/)]);
    expect(gatewayApiProblems({ ...grant, apiVersion: 'gateway.networking.k8s.io/v1alpha2' })).toEqual([expect.stringMatching(/not a Gateway API kind this validator knows/)]);
  });
});
