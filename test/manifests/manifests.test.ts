/**
 * The Kubernetes material in kong/kubernetes/: every YAML document validates against the API
 * it is for, the plugin configs are configs Kong and the plugin accept, the RBAC grants what
 * the EndpointSlice watcher needs and nothing more, and the Helm values and the Deployment
 * patch run the image the way the Dockerfile does. The last block shows the checkers fail.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveServiceRef } from '../../src/endpoints/kubernetes/service-ref.js';
import { DOCKERFILE, readDockerfileEnv } from '../harness/dockerfile.js';
import {
  commentedBlock,
  isObj,
  kindKey,
  kongPluginProblems,
  manifestProblems,
  MANIFESTS_DIR,
  nginxMainEnvNames,
  type Obj,
  parseConfigLikeKic,
  parseYamlDocuments,
  pluginConfigProblems,
  rbacBindingProblems,
  rbacRoleProblems,
  readYamlDocuments,
  secretValue,
  strategicMerge,
  unknownFields,
} from './validate.js';

const HELM_VALUES = 'helm-values.yaml';
const PATCH = 'deployment-patch.yaml';
const PLUGIN = 'sticky-session';
const IMAGE_REPOSITORY = 'ghcr.io/example/sticky-session-kong';

const file = (name: string): string => path.join(MANIFESTS_DIR, name);
const yamlFiles = readdirSync(MANIFESTS_DIR)
  .filter((f) => /\.ya?ml$/.test(f))
  .sort();
// Everything that is neither Helm values nor a patch is a manifest, and must validate as one.
const manifestFiles = yamlFiles.filter((f) => f !== HELM_VALUES && f !== PATCH);

const docsByFile = new Map(manifestFiles.map((f) => [f, readYamlDocuments(file(f)) as Obj[]]));
const docs: Obj[] = [...docsByFile.values()].flat();
const rbacAlternative = parseYamlDocuments(
  commentedBlock(readFileSync(file('rbac.yaml'), 'utf8'), 'namespaced-alternative'),
  'rbac.yaml (namespaced alternative)',
) as Obj[];

const helmValues = readYamlDocuments(file(HELM_VALUES));
const patchDocs = readYamlDocuments(file(PATCH));

function meta(doc: Obj): Obj {
  return isObj(doc.metadata) ? doc.metadata : {};
}

function label(doc: Obj): string {
  const m = meta(doc);
  return `${String(doc.kind)} ${m.namespace ? `${String(m.namespace)}/` : ''}${String(m.name)}`;
}

function ofKind(kind: string, from: readonly Obj[] = docs): Obj[] {
  return from.filter((d) => d.kind === kind);
}

function theOne(kind: string, from: readonly Obj[] = docs): Obj {
  const found = ofKind(kind, from);
  if (found.length !== 1) throw new Error(`expected one ${kind}, found ${found.length}`);
  return found[0] as Obj;
}

function named(kind: string, name: string, namespace?: string): Obj {
  const found = ofKind(kind).filter((d) => meta(d).name === name && (namespace === undefined || meta(d).namespace === namespace));
  if (found.length !== 1) throw new Error(`expected one ${kind} ${namespace ?? '*'}/${name}, found ${found.length}`);
  return found[0] as Obj;
}

function at(value: unknown, ...keys: Array<string | number>): unknown {
  let v = value;
  for (const k of keys) {
    if (typeof k === 'number') v = Array.isArray(v) ? v[k] : undefined;
    else v = isObj(v) ? v[k] : undefined;
  }
  return v;
}

function obj(value: unknown, what: string): Obj {
  if (!isObj(value)) throw new Error(`${what} is not an object`);
  return value;
}

function list(value: unknown): Obj[] {
  return Array.isArray(value) ? value.filter(isObj) : [];
}

function container(deployment: unknown, name: string): Obj {
  const found = list(at(deployment, 'spec', 'template', 'spec', 'containers')).filter((c) => c.name === name);
  if (found.length !== 1) throw new Error(`expected one container ${name}, found ${found.length}`);
  return found[0] as Obj;
}

function envOf(c: Obj): Map<string, unknown> {
  const env = new Map<string, unknown>();
  for (const e of list(c.env)) {
    if (env.has(String(e.name))) throw new Error(`env ${String(e.name)} set twice`);
    env.set(String(e.name), e.value ?? e.valueFrom);
  }
  return env;
}

// ---------------------------------------------------------------------------------------
// What the Dockerfile sets, and where the app lives

/** The KONG_* values the image runs the plugin server with. */
const dockerEnv = readDockerfileEnv();
const KONG_ENV_KEYS = [...dockerEnv.keys()].filter(
  (k) => k === 'KONG_PLUGINS' || k === 'KONG_NGINX_MAIN_ENV' || k.startsWith('KONG_PLUGINSERVER_'),
);
const kongEnv = Object.fromEntries(KONG_ENV_KEYS.map((k) => [k, dockerEnv.get(k)]));
const SOCKET_KEY = 'KONG_PLUGINSERVER_STICKY_SESSION_SOCKET';
const START_KEY = 'KONG_PLUGINSERVER_STICKY_SESSION_START_CMD';

const serviceAccount = theOne('ServiceAccount');
const saRef = { name: String(meta(serviceAccount).name), namespace: String(meta(serviceAccount).namespace) };

/** The Service carrying the plugin annotation: the app the examples are about. */
const appService = (() => {
  const annotated = ofKind('Service').filter((s) => isObj(meta(s).annotations) && 'konghq.com/plugins' in (meta(s).annotations as Obj));
  if (annotated.length !== 1) throw new Error(`expected one Service with konghq.com/plugins, found ${annotated.length}`);
  return annotated[0] as Obj;
})();
const APP_NS = String(meta(appService).namespace);

/** The Secret and the plugin config the `sticky-session` KongPlugin takes with configFrom. */
function configFromSecret(): { secret: Obj; text: string | undefined; config: () => Obj } {
  const plugin = named('KongPlugin', PLUGIN, APP_NS);
  const ref = obj(at(plugin, 'configFrom', 'secretKeyRef'), 'configFrom.secretKeyRef');
  // KIC looks the Secret up in the KongPlugin's own namespace.
  const secret = named('Secret', String(ref.name), APP_NS);
  const text = secretValue(secret, String(ref.key));
  return { secret, text, config: () => obj(parseConfigLikeKic(text ?? ''), `Secret ${String(ref.name)} key ${String(ref.key)}`) };
}

// ---------------------------------------------------------------------------------------

describe('kong/kubernetes/ documents', () => {
  it('holds the files the deployment guide refers to', () => {
    for (const f of ['rbac.yaml', 'kongplugin.yaml', 'app-example.yaml', HELM_VALUES, PATCH, 'README.md']) {
      expect(existsSync(file(f)), f).toBe(true);
    }
    expect(docs.length).toBeGreaterThan(0);
  });

  it.each(docs.map((d) => [label(d), d] as const))('%s validates', (_name, doc) => {
    expect(manifestProblems(doc)).toEqual([]);
  });

  it.each(rbacAlternative.map((d) => [label(d), d] as const))('%s (rbac.yaml, commented alternative) validates', (_name, doc) => {
    expect(manifestProblems(doc)).toEqual([]);
  });

  it('uses each kind, namespace and name once', () => {
    const keys = docs.map((d) => `${kindKey(d)} ${String(meta(d).namespace ?? '')}/${String(meta(d).name)}`);
    expect(keys.length).toBe(new Set(keys).size);
  });

  it('creates the namespaces it puts objects in', () => {
    const namespaces = new Set(ofKind('Namespace').map((n) => meta(n).name));
    for (const d of docs) if (meta(d).namespace !== undefined) expect(namespaces, label(d)).toContain(meta(d).namespace);
  });
});

describe('KongPlugins and the plugin configuration', () => {
  const plugins = ofKind('KongPlugin');

  it('are all for the sticky-session plugin, in the app namespace, with one source of config', () => {
    expect(plugins.length).toBeGreaterThanOrEqual(2);
    for (const p of plugins) {
      expect(p.plugin, label(p)).toBe(PLUGIN);
      expect(meta(p).namespace, label(p)).toBe(APP_NS);
      expect([p.config, p.configFrom].filter((x) => x !== undefined), label(p)).toHaveLength(1);
    }
  });

  it('the one the Service names takes its whole config from a Secret that Kong and the plugin accept', () => {
    const { secret, text, config: parsed } = configFromSecret();
    expect(text, 'the Secret key configFrom names').toBeDefined();
    const config = parsed();
    expect(pluginConfigProblems(config)).toEqual([]);
    // Under KIC the Kong service host names the Service.
    for (const k of ['kubernetes_namespace', 'kubernetes_service', 'kubernetes_port', 'targets']) expect(config).not.toHaveProperty(k);
    expect(meta(secret).labels).toMatchObject({ 'konghq.com/validate': 'plugin' });
  });

  it("the Secret's placeholder is the one README.md tells how to replace", () => {
    const stored = configFromSecret().config();
    const placeholder = String((stored.secrets as unknown[])[0]);
    expect(placeholder).toMatch(/REPLACE-ME/);
    expect(readFileSync(file('README.md'), 'utf8')).toContain(`s|${placeholder}|$(openssl rand -base64 32)|`);
  });

  it('the inline example is a config Kong and the plugin accept', () => {
    const inline = plugins.filter((p) => p.config !== undefined);
    expect(inline.length).toBeGreaterThanOrEqual(1);
    for (const p of inline) {
      expect(pluginConfigProblems(p.config), label(p)).toEqual([]);
      expect(p.config, label(p)).not.toHaveProperty('targets');
    }
  });

  it('the Secret example and the inline example do not share a signing secret', () => {
    const stored = configFromSecret().config();
    const inlineSecrets = plugins.flatMap((p) => {
      const secrets = at(p, 'config', 'secrets');
      return Array.isArray(secrets) ? (secrets as unknown[]) : [];
    });
    for (const s of stored.secrets as unknown[]) expect(inlineSecrets).not.toContain(s);
  });
});

describe('RBAC', () => {
  it('the ClusterRole grants list/watch on endpointslices, services, httproutes and referencegrants, and nothing else', () => {
    expect(rbacRoleProblems(theOne('ClusterRole'))).toEqual([]);
  });

  it('the ClusterRoleBinding gives it to the ServiceAccount, and only to it', () => {
    expect(rbacBindingProblems(theOne('ClusterRoleBinding'), theOne('ClusterRole'), saRef)).toEqual([]);
  });

  it('the namespaced alternative grants the same in the app namespace to the same ServiceAccount', () => {
    const role = theOne('Role', rbacAlternative);
    expect(meta(role).namespace).toBe(APP_NS);
    expect(rbacRoleProblems(role)).toEqual([]);
    expect(rbacBindingProblems(theOne('RoleBinding', rbacAlternative), role, saRef)).toEqual([]);
  });

  it('nothing else in the manifests grants permissions', () => {
    expect(ofKind('ClusterRole')).toHaveLength(1);
    expect(ofKind('Role')).toHaveLength(0);
    expect(ofKind('ClusterRoleBinding')).toHaveLength(1);
    expect(ofKind('RoleBinding')).toHaveLength(0);
  });

  it('the Helm values and the patch run Kong under that ServiceAccount, with its token mounted', () => {
    const sa = obj(at(helmValues[0], 'gateway', 'deployment', 'serviceAccount'), 'gateway.deployment.serviceAccount');
    expect(sa).toEqual({ create: false, name: saRef.name, automountServiceAccountToken: true });
    const patch = obj(patchDocs[0], PATCH);
    expect(at(patch, 'spec', 'template', 'spec', 'serviceAccountName')).toBe(saRef.name);
    expect(at(patch, 'spec', 'template', 'spec', 'automountServiceAccountToken')).toBe(true);
    // A pod can only use a ServiceAccount of its own namespace.
    expect(meta(patch).namespace).toBe(saRef.namespace);
  });
});

// ---------------------------------------------------------------------------------------
// Helm values (kong/ingress chart) and the Deployment patch

/** Leaf keys of the values, with env/customEnv entries as `*`. */
function valuePaths(value: unknown, prefix = ''): string[] {
  if (!isObj(value)) return [prefix];
  return Object.entries(value).flatMap(([k, v]) => {
    const p = prefix ? `${prefix}.${k}` : k;
    if (/(^|\.)(env|customEnv)$/.test(p)) return [`${p}.*`];
    return valuePaths(v, p);
  });
}

/**
 * Value keys read from Kong/charts (charts/ingress 0.24 values.yaml; charts/kong 3.2-3.4
 * values.yaml and templates/_helpers.tpl, deployment.yaml). A key outside this list would be
 * silently ignored by the chart.
 */
const CHART_KEYS = new Set([
  'gateway.image.repository',
  'gateway.image.tag',
  'gateway.image.effectiveSemver',
  'gateway.env.*',
  'gateway.customEnv.*',
  'gateway.deployment.serviceAccount.create',
  'gateway.deployment.serviceAccount.name',
  'gateway.deployment.serviceAccount.automountServiceAccountToken',
  'gateway.containerSecurityContext.readOnlyRootFilesystem',
]);

/** The chart's kong.env: env.<key> becomes KONG_<KEY>; customEnv.<key> becomes <KEY>. */
function chartEnv(gateway: Obj): Map<string, unknown> {
  const env = new Map<string, unknown>();
  for (const [k, v] of Object.entries(isObj(gateway.env) ? gateway.env : {})) env.set(`KONG_${k.toUpperCase()}`, v);
  for (const [k, v] of Object.entries(isObj(gateway.customEnv) ? gateway.customEnv : {})) env.set(k.toUpperCase(), v);
  return env;
}

/** Mount points the kong chart gives the proxy container (emptyDirs): writable even with a read-only root. */
const CHART_WRITABLE_DIRS = ['/kong_prefix/', '/tmp/'];

function isUnder(dir: string, mounts: readonly string[]): boolean {
  const d = dir.endsWith('/') ? dir : `${dir}/`;
  return mounts.some((m) => d.startsWith(m.endsWith('/') ? m : `${m}/`));
}

const socketDir = path.posix.dirname(String(kongEnv[SOCKET_KEY]));

/** A Kong Deployment as the kong charts render it, reduced to what the patch touches. */
const KONG_DEPLOYMENT: Obj = {
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'kong-gateway', namespace: 'kong' },
  spec: {
    selector: { matchLabels: { 'app.kubernetes.io/instance': 'kong' } },
    template: {
      metadata: { labels: { 'app.kubernetes.io/instance': 'kong' } },
      spec: {
        serviceAccountName: 'kong-gateway',
        automountServiceAccountToken: false,
        containers: [
          {
            name: 'proxy',
            image: 'kong:3.9',
            env: [
              { name: 'KONG_PREFIX', value: '/kong_prefix/' },
              { name: 'KONG_PLUGINS', value: 'bundled' },
            ],
            securityContext: { readOnlyRootFilesystem: true, runAsUser: 1000, runAsNonRoot: true },
            volumeMounts: [
              { name: 'kong-gateway-prefix-dir', mountPath: '/kong_prefix/' },
              { name: 'kong-gateway-tmp', mountPath: '/tmp' },
            ],
          },
        ],
        volumes: [
          { name: 'kong-gateway-prefix-dir', emptyDir: { sizeLimit: '256Mi' } },
          { name: 'kong-gateway-tmp', emptyDir: { sizeLimit: '1Gi' } },
        ],
      },
    },
  },
};

describe('Kong environment against the Dockerfile', () => {
  it('the Dockerfile sets what Kong needs to run the plugin server', () => {
    expect(KONG_ENV_KEYS).toEqual(
      expect.arrayContaining([
        'KONG_PLUGINS',
        'KONG_PLUGINSERVER_NAMES',
        SOCKET_KEY,
        START_KEY,
        'KONG_PLUGINSERVER_STICKY_SESSION_QUERY_CMD',
      ]),
    );
    // start_cmd creates the socket at <--kong-prefix>/<--sock-name>: where Kong connects.
    const words = String(kongEnv[START_KEY]).split(/\s+/);
    const arg = (flag: string): string | undefined => words[words.indexOf(flag) + 1];
    expect(path.posix.join(arg('--kong-prefix') ?? '', arg('--sock-name') ?? '')).toBe(kongEnv[SOCKET_KEY]);
  });

  it('the Helm values set the same KONG_* values', () => {
    const env = chartEnv(obj(at(helmValues[0], 'gateway'), 'gateway'));
    expect(Object.fromEntries(KONG_ENV_KEYS.map((k) => [k, env.get(k)]))).toEqual(kongEnv);
    // No other plugin-server setting that the Dockerfile does not know.
    expect([...env.keys()].filter((k) => k.startsWith('KONG_PLUGINSERVER_')).sort()).toEqual(
      KONG_ENV_KEYS.filter((k) => k.startsWith('KONG_PLUGINSERVER_')).sort(),
    );
  });

  it('the patch gives the proxy container the same KONG_* values', () => {
    const proxy = container(strategicMerge(KONG_DEPLOYMENT, patchDocs[0]), 'proxy');
    const env = envOf(proxy);
    expect(Object.fromEntries(KONG_ENV_KEYS.map((k) => [k, env.get(k)]))).toEqual(kongEnv);
    expect(env.get('KONG_PREFIX')).toBe('/kong_prefix/'); // what was there stays
  });

  it('nginx passes the plugin server every variable the Helm values and the patch set for it', () => {
    const gateway = obj(at(helmValues[0], 'gateway'), 'gateway');
    const patchEnv = envOf(container(patchDocs[0], 'proxy'));
    const sources: Array<[string, Map<string, unknown>]> = [
      [HELM_VALUES, chartEnv(gateway)],
      [PATCH, patchEnv],
    ];
    for (const [where, env] of sources) {
      const declared = nginxMainEnvNames(String(env.get('KONG_NGINX_MAIN_ENV') ?? dockerEnv.get('KONG_NGINX_MAIN_ENV') ?? ''));
      expect(declared, where).toEqual(expect.arrayContaining(['KUBERNETES_SERVICE_HOST', 'KUBERNETES_SERVICE_PORT']));
      const own = [...env.keys()].filter((k) => !k.startsWith('KONG_'));
      expect(own, where).toContain('STICKY_SESSION_LOG_LEVEL');
      expect(declared, where).toEqual(expect.arrayContaining(own));
    }
  });

  it('the plugin server can create its socket (a writable directory in the container)', () => {
    const gateway = obj(at(helmValues[0], 'gateway'), 'gateway');
    const chartWritable =
      at(gateway, 'containerSecurityContext', 'readOnlyRootFilesystem') === false || isUnder(socketDir, CHART_WRITABLE_DIRS);
    expect(chartWritable, `${HELM_VALUES}: ${socketDir} under a read-only root filesystem`).toBe(true);

    const proxy = container(strategicMerge(KONG_DEPLOYMENT, patchDocs[0]), 'proxy');
    const mounts = list(proxy.volumeMounts).map((m) => String(m.mountPath));
    const patchWritable = at(proxy, 'securityContext', 'readOnlyRootFilesystem') === false || isUnder(socketDir, mounts);
    expect(patchWritable, `${PATCH}: ${socketDir} under a read-only root filesystem`).toBe(true);
  });
});

describe('Helm values (kong/ingress chart)', () => {
  const gateway = obj(at(helmValues[0], 'gateway'), 'gateway');

  it('is one document that uses only keys the chart reads', () => {
    expect(helmValues).toHaveLength(1);
    const unknown = valuePaths(helmValues[0]).filter((p) => !CHART_KEYS.has(p));
    expect(unknown).toEqual([]);
  });

  it('runs our image, telling the chart which Kong version the image is built from', () => {
    expect(at(gateway, 'image', 'repository')).toBe(IMAGE_REPOSITORY);
    expect(typeof at(gateway, 'image', 'tag')).toBe('string');
    const kongTag = /^ARG\s+KONG_IMAGE=[^:\s]+:(\S+)\s*$/m.exec(readFileSync(DOCKERFILE, 'utf8'))?.[1];
    expect(kongTag, 'ARG KONG_IMAGE in the Dockerfile').toBeDefined();
    const semver = String(at(gateway, 'image', 'effectiveSemver'));
    expect(semver).toMatch(/^\d+\.\d+\.\d+$/);
    expect(`${semver}.`.startsWith(`${kongTag as string}.`), `effectiveSemver ${semver} vs kong:${kongTag as string}`).toBe(true);
  });

  it('gives env values as strings, as Kubernetes wants them (YAML 1.1: no bare on/off/yes/no)', () => {
    for (const [k, v] of chartEnv(gateway)) expect(typeof v, k).toBe('string');
  });

  it('sets a log level pino knows', () => {
    expect(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).toContain(at(gateway, 'customEnv', 'sticky_session_log_level'));
  });

  it('renders into a valid proxy container', () => {
    const env = [...chartEnv(gateway)].sort(([a], [b]) => a.localeCompare(b)).map(([name, value]) => ({ name, value }));
    const rendered = strategicMerge(KONG_DEPLOYMENT, {
      spec: {
        template: {
          spec: {
            serviceAccountName: at(gateway, 'deployment', 'serviceAccount', 'name'),
            automountServiceAccountToken: at(gateway, 'deployment', 'serviceAccount', 'automountServiceAccountToken'),
            containers: [
              {
                name: 'proxy',
                image: `${String(at(gateway, 'image', 'repository'))}:${String(at(gateway, 'image', 'tag'))}`,
                env,
                securityContext: gateway.containerSecurityContext,
              },
            ],
          },
        },
      },
    });
    expect(manifestProblems(rendered)).toEqual([]);
  });
});

describe('Deployment patch', () => {
  it('is one strategic-merge patch of a Deployment, for the container named proxy', () => {
    expect(patchDocs).toHaveLength(1);
    const patch = obj(patchDocs[0], PATCH);
    expect(kindKey(patch)).toBe('apps/v1/Deployment');
    expect(list(at(patch, 'spec', 'template', 'spec', 'containers')).map((c) => c.name)).toEqual(['proxy']);
    // Field names must exist even in a partial object.
    expect(unknownFields(patch, 'V1Deployment', PATCH)).toEqual([]);
  });

  it('applied to a chart-made Kong Deployment, yields a valid Deployment running our image', () => {
    const patched = strategicMerge(KONG_DEPLOYMENT, patchDocs[0]);
    expect(manifestProblems(patched)).toEqual([]);
    const proxy = container(patched, 'proxy');
    expect(String(proxy.image).startsWith(`${IMAGE_REPOSITORY}:`)).toBe(true);
    expect(list(at(patched, 'spec', 'template', 'spec', 'containers'))).toHaveLength(1);
  });
});

describe('the example app', () => {
  const selector = obj(at(appService, 'spec', 'selector'), 'Service selector');
  const selected = ofKind('Deployment').filter((d) => {
    const labels = at(d, 'spec', 'template', 'metadata', 'labels');
    return meta(d).namespace === APP_NS && isObj(labels) && Object.entries(selector).every(([k, v]) => labels[k] === v);
  });
  const deployment = selected[0] as Obj;
  const podSpec = obj(at(deployment, 'spec', 'template', 'spec'), 'pod spec');
  const app = list(podSpec.containers)[0] as Obj;

  it('runs 3 replicas that drain: readiness probe, preStop sleep, a grace period longer than it', () => {
    expect(at(deployment, 'spec', 'replicas')).toBe(3);
    expect(app.readinessProbe).toBeDefined();
    const sleep = Number(at(app, 'lifecycle', 'preStop', 'sleep', 'seconds'));
    expect(sleep).toBeGreaterThan(0);
    expect(Number(podSpec.terminationGracePeriodSeconds)).toBeGreaterThan(sleep);
    expect(at(deployment, 'spec', 'strategy', 'rollingUpdate', 'maxUnavailable')).toBe(0);
  });

  it('the Service selects the pods of one Deployment and names its ports after container ports', () => {
    expect(selected).toHaveLength(1);
    const containerPorts = list(app.ports).map((p) => p.name);
    for (const port of list(at(appService, 'spec', 'ports'))) {
      expect(port.name, 'Service port name').toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
      expect(containerPorts).toContain(port.targetPort);
    }
  });

  it('the Service annotation names the KongPlugin (same namespace) that runs sticky-session', () => {
    const names = String(at(appService, 'metadata', 'annotations', 'konghq.com/plugins'))
      .split(',')
      .map((s) => s.trim());
    expect(names).toContain(PLUGIN);
    for (const n of names) expect(named('KongPlugin', n, APP_NS).plugin).toBe(PLUGIN);
  });

  it("the Ingress is Kong's and sends to that Service on a port it has", () => {
    const ingress = theOne('Ingress');
    expect(meta(ingress).namespace).toBe(APP_NS);
    expect(at(ingress, 'spec', 'ingressClassName')).toBe('kong');
    const backends = list(at(ingress, 'spec', 'rules'))
      .flatMap((r) => list(at(r, 'http', 'paths')))
      .map((p) => obj(at(p, 'backend', 'service'), 'backend.service'));
    expect(backends.length).toBeGreaterThan(0);
    for (const b of backends) {
      expect(b.name).toBe(meta(appService).name);
      const ports = list(at(appService, 'spec', 'ports'));
      const port = obj(b.port, 'backend.service.port');
      expect(ports.some((p) => (port.name !== undefined ? p.name === port.name : p.port === port.number))).toBe(true);
    }
  });

  it("KIC's Kong service host leads the plugin to that Service and port, with no kubernetes_* config", () => {
    const ingress = theOne('Ingress');
    const backend = obj(at(ingress, 'spec', 'rules', 0, 'http', 'paths', 0, 'backend', 'service'), 'backend.service');
    const port = obj(backend.port, 'port');
    // KIC (subtranslator/ingress.go): <service>.<namespace>.<port name or number>.svc
    const host = `${String(backend.name)}.${APP_NS}.${String(port.name ?? port.number)}.svc`;
    const resolved = resolveServiceRef({}, host);
    expect(resolved).toEqual({ ok: true, ref: { namespace: APP_NS, service: meta(appService).name, port: port.name ?? port.number } });
    // EndpointSlices carry the Service port's name: the plugin finds the port by it.
    expect(list(at(appService, 'spec', 'ports')).map((p) => p.name)).toContain(resolved.ok ? resolved.ref.port : undefined);
  });
});

// ---------------------------------------------------------------------------------------

describe('the checkers fail on bad input', () => {
  const deployment = theOne('Deployment');
  const kongPlugin = named('KongPlugin', PLUGIN, APP_NS);
  const clusterRole = theOne('ClusterRole');

  function edited<T>(value: T, edit: (copy: T) => void): T {
    const copy = structuredClone(value);
    edit(copy);
    return copy;
  }

  it('a Deployment with a field of the wrong type', () => {
    const bad = edited(deployment, (d) => ((d.spec as Obj).replicas = 'three'));
    expect(manifestProblems(bad).join('\n')).toMatch(/replicas must be integer/);
    const badPort = edited(deployment, (d) => (list(at(d, 'spec', 'template', 'spec', 'containers'))[0] as Obj).ports = [{ containerPort: '8080' }]);
    expect(manifestProblems(badPort)).not.toEqual([]);
  });

  it('a Deployment with a misspelt field', () => {
    const bad = edited(deployment, (d) => {
      const c = list(at(d, 'spec', 'template', 'spec', 'containers'))[0] as Obj;
      c.readinesProbe = c.readinessProbe;
      delete c.readinessProbe;
    });
    expect(manifestProblems(bad)).toEqual([expect.stringMatching(/containers\[0\]\.readinesProbe: unknown field/)]);
  });

  it('a Service with a string port', () => {
    expect(manifestProblems(edited(appService, (s) => (list(at(s, 'spec', 'ports'))[0] as Obj).port = 'http'))).not.toEqual([]);
  });

  it('a kind nothing validates', () => {
    expect(manifestProblems({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x', namespace: 'demo' } })).toEqual([
      expect.stringMatching(/no validator for this kind/),
    ]);
    expect(manifestProblems({ ...kongPlugin, kind: 'KongClusterPlugin' })).not.toEqual([]);
  });

  it('a KongPlugin with both config and configFrom, or configFrom and configPatches', () => {
    expect(kongPluginProblems(kongPlugin)).toEqual([]);
    expect(kongPluginProblems({ ...kongPlugin, config: { secrets: ['x'.repeat(32)] } })).toEqual([
      expect.stringContaining('!(has(self.config) && has(self.configFrom))'),
    ]);
    const patches = [{ path: '/secrets', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } }];
    expect(kongPluginProblems({ ...kongPlugin, configPatches: patches })).toEqual([
      expect.stringContaining('!(has(self.configFrom) && has(self.configPatches))'),
    ]);
    const { configFrom: _, ...inline } = kongPlugin;
    expect(kongPluginProblems({ ...inline, config: {}, configPatches: patches })).toEqual([]);
  });

  it('a KongPlugin without plugin, with a bad secretKeyRef, protocol or unknown field', () => {
    const { plugin: _, ...noPlugin } = kongPlugin;
    expect(kongPluginProblems(noPlugin)).toEqual([expect.stringMatching(/required property 'plugin'/)]);
    expect(kongPluginProblems({ ...kongPlugin, configFrom: { secretKeyRef: { name: 's' } } })).toEqual([
      expect.stringMatching(/secretKeyRef: must have required property 'key'/),
    ]);
    expect(kongPluginProblems({ ...kongPlugin, protocols: ['http', 'ftp'] })).toEqual([expect.stringMatching(/protocols\/1: must be equal to one of/)]);
    expect(kongPluginProblems({ ...kongPlugin, cofnig: {} })).toEqual([expect.stringMatching(/additional properties.*cofnig/)]);
  });

  it('a plugin config Kong or the plugin would refuse', () => {
    const good = { secrets: ['s'.repeat(32)] };
    expect(pluginConfigProblems(good)).toEqual([]);
    const refused = (config: unknown, field: string): void => {
      expect(pluginConfigProblems(config), field).toEqual([expect.stringContaining(`config.${field}`)]);
    };
    refused({ ...good, cookie_same_site: 'none' }, 'cookie_same_site'); // one_of is case-sensitive
    refused({ ...good, idle_refresh_percent: 0 }, 'idle_refresh_percent'); // between 1..100
    refused({ ...good, cookie_max_age: '3600' }, 'cookie_max_age'); // integer
    refused({ ...good, cookie_nmae: 'x' }, 'cookie_nmae'); // unknown field
    refused({ secrets: ['too-short'] }, 'secrets'); // len_min 32
    refused({}, 'secrets'); // required
    // Accepted by Kong's schema, refused when the instance starts (src/config/resolve.ts).
    expect(pluginConfigProblems({ ...good, targets: ['a:80'], kubernetes_service: 'x' })).toEqual([
      expect.stringMatching(/instance would not start.*targets/),
    ]);
  });

  it('a ClusterRole that grants too much, or too little', () => {
    const withRule = (rule: Obj): Obj => edited(clusterRole, (r) => ((r.rules as Obj[])[0] = rule));
    const base = { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] };
    expect(rbacRoleProblems(withRule(base))).toEqual([]);
    expect(rbacRoleProblems(withRule({ ...base, verbs: ['*'] }))).toEqual([expect.stringMatching(/verbs \["\*"\]/)]);
    expect(rbacRoleProblems(withRule({ ...base, verbs: ['list', 'watch', 'delete'] }))).not.toEqual([]);
    // get is more than the plugin needs (it only lists and watches).
    expect(rbacRoleProblems(withRule({ ...base, verbs: ['get', 'list', 'watch'] }))).not.toEqual([]);
    expect(rbacRoleProblems(withRule({ ...base, resources: ['endpointslices', 'secrets'] }))).not.toEqual([]);
    expect(rbacRoleProblems(withRule({ ...base, apiGroups: ['*'] }))).not.toEqual([]);
    expect(rbacRoleProblems(withRule({ ...base, verbs: ['list'] }))).not.toEqual([]);
    expect(rbacRoleProblems(edited(clusterRole, (r) => (r.rules as Obj[]).push({ apiGroups: [''], resources: ['pods'], verbs: ['get'] })))).not.toEqual([]);
    // Each group's rule: its resources exactly (no Secrets next to Services), read-only, all present.
    const rule = (group: string) => (r: Obj) => (r.rules as Obj[]).findIndex((x) => (x.apiGroups as string[])[0] === group);
    const editRule = (group: string, change: (x: Obj) => void) => edited(clusterRole, (r) => change((r.rules as Obj[])[rule(group)(r)]!));
    expect(rbacRoleProblems(editRule('', (x) => (x.resources = ['services', 'secrets'])))).not.toEqual([]);
    expect(rbacRoleProblems(editRule('gateway.networking.k8s.io', (x) => (x.verbs = ['list', 'watch', 'patch'])))).not.toEqual([]);
    expect(rbacRoleProblems(edited(clusterRole, (r) => (r.rules as Obj[]).splice(rule('')(r), 1)))).toEqual([expect.stringMatching(/expected 3 rules/), expect.stringMatching(/no rule for apiGroup ""/)]);
    expect(rbacRoleProblems(edited(clusterRole, (r) => (r.aggregationRule = { clusterRoleSelectors: [] })))).not.toEqual([]);
  });

  it('a binding to another ServiceAccount or role', () => {
    const binding = theOne('ClusterRoleBinding');
    expect(rbacBindingProblems(binding, clusterRole, { ...saRef, namespace: 'default' })).not.toEqual([]);
    expect(rbacBindingProblems(binding, edited(clusterRole, (r) => ((r.metadata as Obj).name = 'other')), saRef)).not.toEqual([]);
    const extra = edited(binding, (b) => (b.subjects as Obj[]).push({ kind: 'Group', name: 'system:authenticated', apiGroup: 'rbac.authorization.k8s.io' }));
    expect(rbacBindingProblems(extra, clusterRole, saRef)).not.toEqual([]);
  });

  it('YAML that kubectl would read differently, or not at all', () => {
    expect(() => parseYamlDocuments('a: 1\na: 2\n', 'dup')).toThrow();
    expect(parseYamlDocuments('v: off\n', 'yaml 1.1')).toEqual([{ v: false }]);
  });
});
