/**
 * `npm start -- --httproute [FILE...]`: the dev gateway serving HTTPRoute manifests the way
 * KIC (3.4+, traditional router) makes Kong serve them, with the real plugin server reading
 * the objects live from the test API server (kube-apiserver.ts), as under KIC.
 *
 * - The files' Services, HTTPRoutes (CRD defaults filled in) and ReferenceGrants go to the
 *   test API server; each Deployment's `spec.replicas` pods get an echo server (named like
 *   the pod, `shop-v1-0`) and an address 192.0.2.x (the API server refuses loopback) in an
 *   EndpointSlice of each Service that selects them.
 * - Kong entities as KIC makes them: a service per rule group (`kicServiceGroups`), a route
 *   per match with KIC's names and tags, preserve_host, and the sticky-session plugin bound
 *   to each route (the KongPlugin the rule's ExtensionRef names: its `config`, or a dev
 *   secret when it has `configFrom` or is not in the files).
 * - Saving a file is `kubectl apply`: validated as a v1.6.1 API server would, the changed
 *   objects written (watch events reach the plugin), one summary line printed. A pod scaled
 *   away drains (terminating, serving) for DRAIN_MS, then leaves its slice.
 *
 * Differences from KIC: header, query and method matches are not routed on (paths and
 * hostnames are); every rule gets the plugin, with or without an ExtensionRef; Kong's
 * router picks the longest matching path (host-bound routes first).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Backends, type Backend } from './dev-echo.js';
import { matchRoute, stableId, type DevRoute, type DevService } from './dev-kong-config.js';
import { checkPluginConfig, loadInstanceCheck, type DevSite, type InstanceCheck, type ReloadOutcome, type Routed } from './dev-site.js';
import { kicRoute, kicService } from './kic-gateway-api.js';
import type { KongEmulator } from './kong-emulator.js';
import { ENDPOINT_SLICE_KIND, HTTP_ROUTE_KIND, REFERENCE_GRANT_KIND, SERVICE_KIND, startKubeApiServer, type KubeApiServer, type ObjectInput, type ResourceKindRef } from './kube-apiserver.js';
import { DRAINING, endpointSlice, podEndpoint, READY } from './kube-slices.js';
import { applyDefaults, gatewayApiProblems, gatewayApiSchema, isGatewayApi } from '../manifests/gateway-api.js';
import { isObj, kindKey, KONGPLUGIN_KEY, manifestProblems, parseYamlDocuments, type Obj } from '../manifests/validate.js';
import { SmoothWeighted } from '../../src/balancer/smooth-weighted.js';
import { defaultBackendRef, routeNamespace, routeRules, type HTTPRouteLike, type HTTPRouteMatchLike, type HTTPRouteRuleLike, type ReferenceGrantLike, type ServiceLike } from '../../src/endpoints/gateway-api/httproute.js';
import { kicServiceGroups, serviceBackends, type RuleRef } from '../../src/endpoints/gateway-api/rule-backends.js';
import { ruleSessionPolicy } from '../../src/endpoints/gateway-api/session-persistence.js';

/** The plugin's secret when the KongPlugin's config is in a Secret (configFrom) or not in the files. */
export const DEV_SECRET = 'dev-only-not-a-secret-0123456789abcdef';
/** How long a pod scaled away stays in its slice as terminating and serving. */
export const DRAIN_MS = 10_000;

const HTTP_ROUTE_KEY = 'gateway.networking.k8s.io/v1/HTTPRoute';
const REFERENCE_GRANT_KEY = 'gateway.networking.k8s.io/v1beta1/ReferenceGrant';
const SERVED: Readonly<Record<string, ResourceKindRef>> = { 'v1/Service': SERVICE_KIND, [HTTP_ROUTE_KEY]: HTTP_ROUTE_KIND, [REFERENCE_GRANT_KEY]: REFERENCE_GRANT_KIND };

interface K8sObject extends Obj {
  metadata: { name: string; namespace: string; labels?: Record<string, string>; annotations?: Record<string, string> };
}

/** The objects of the files the dev gateway uses; other kinds are left out. */
interface Manifests {
  readonly services: readonly K8sObject[];
  readonly deployments: readonly K8sObject[];
  /** As the API server stores them: the CRD's defaults filled in. */
  readonly routes: readonly K8sObject[];
  readonly grants: readonly K8sObject[];
  readonly kongPlugins: readonly K8sObject[];
}

const keyOf = (o: K8sObject): string => `${o.metadata.namespace}/${o.metadata.name}`;

/** Parses and validates the files' documents; throws with every problem, file by file. */
function parseManifests(texts: ReadonlyArray<{ file: string; text: string }>): Manifests {
  const m = { services: [] as K8sObject[], deployments: [] as K8sObject[], routes: [] as K8sObject[], grants: [] as K8sObject[], kongPlugins: [] as K8sObject[] };
  const problems: string[] = [];
  for (const { file, text } of texts) {
    let docs: unknown[];
    try {
      docs = parseYamlDocuments(text, path.basename(file));
    } catch (err) {
      problems.push((err as Error).message);
      continue;
    }
    for (const doc of docs) {
      const key = kindKey(doc);
      const list =
        key === 'v1/Service' ? m.services : key === 'apps/v1/Deployment' ? m.deployments : key === HTTP_ROUTE_KEY ? m.routes : key === REFERENCE_GRANT_KEY ? m.grants : key === KONGPLUGIN_KEY ? m.kongPlugins : undefined;
      if (!list) continue;
      const found = isGatewayApi(doc) ? gatewayApiProblems(doc) : manifestProblems(doc);
      if (found.length > 0) {
        problems.push(...found.map((p) => `${path.basename(file)}: ${p}`));
        continue;
      }
      const schema = isGatewayApi(doc) ? gatewayApiSchema(key) : undefined;
      const obj = (schema ? applyDefaults(schema, structuredClone(doc)) : doc) as K8sObject;
      if (list.some((o) => keyOf(o) === keyOf(obj))) problems.push(`${path.basename(file)}: ${key} ${keyOf(obj)} appears twice`);
      else list.push(obj);
    }
  }
  if (problems.length > 0) throw new Error(problems.join('; '));
  return m;
}

// ---------------------------------------------------------------------------------------
// Pods

interface Pod {
  readonly namespace: string;
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly containerPorts: ReadonlyArray<{ name?: string; containerPort: number }>;
}

function podsOf(deployments: readonly K8sObject[]): Pod[] {
  return deployments.flatMap((d) => {
    const spec = (d.spec ?? {}) as Obj;
    const template = (spec.template ?? {}) as { metadata?: { labels?: Record<string, string> }; spec?: { containers?: Array<{ ports?: Pod['containerPorts'] }> } };
    const replicas = typeof spec.replicas === 'number' ? spec.replicas : 1;
    const containerPorts = (template.spec?.containers ?? []).flatMap((c) => c.ports ?? []);
    return Array.from({ length: replicas }, (_, i) => ({ namespace: d.metadata.namespace, name: `${d.metadata.name}-${i}`, labels: template.metadata?.labels ?? {}, containerPorts }));
  });
}

interface ServicePort {
  readonly name?: string;
  readonly port: number;
  readonly targetPort?: number | string;
}

const servicePorts = (s: K8sObject): readonly ServicePort[] => ((s.spec as { ports?: ServicePort[] } | undefined)?.ports ?? []);

function selects(service: K8sObject, pod: Pod): boolean {
  const selector = (service.spec as { selector?: Record<string, string> } | undefined)?.selector;
  return pod.namespace === service.metadata.namespace && selector !== undefined && Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => pod.labels[k] === v);
}

/** The pod's port a Service port sends to (targetPort by number or container port name; default: the port). */
function targetPort(p: ServicePort, pod: Pod): number {
  if (typeof p.targetPort === 'number') return p.targetPort;
  if (typeof p.targetPort === 'string') return pod.containerPorts.find((c) => c.name === p.targetPort)?.containerPort ?? p.port;
  return p.port;
}

// ---------------------------------------------------------------------------------------
// What KIC makes of the HTTPRoutes

interface KongRule {
  readonly route: DevRoute;
  readonly service: DevService;
  readonly httpRoute: string;
  readonly rule: number;
  readonly ruleLabel: string;
  readonly pluginId: string;
  readonly pluginConfig: Record<string, unknown>;
  /** Where the plugin's config comes from, for the banner. */
  readonly pluginSource: string;
}

interface KongState {
  readonly rules: readonly KongRule[];
  /** Kong service name -> the rules KIC groups under it (the first gives the backends). */
  readonly groups: ReadonlyMap<string, readonly RuleRef[]>;
}

const escapeRegex = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** KIC's Kong paths of a match (traditional router): PathPrefix /x -> `~/x$` and `/x/`. */
function kongPaths(match: HTTPRouteMatchLike): string[] {
  const type = match.path?.type ?? 'PathPrefix';
  const value = match.path?.value ?? '/';
  if (type === 'Exact') return [`~${escapeRegex(value)}$`];
  if (type === 'RegularExpression') return [`~${value}`];
  const base = value.replace(/\/+$/, '');
  return base === '' ? ['/'] : [`~${escapeRegex(base)}$`, `${base}/`];
}

/** The KongPlugin a rule names (ExtensionRef filter, else the HTTPRoute's konghq.com/plugins). */
function pluginFor(route: K8sObject, rule: HTTPRouteRuleLike, kongPlugins: readonly K8sObject[]): { config: Record<string, unknown>; source: string } {
  const ns = route.metadata.namespace;
  const refs = (rule.filters ?? [])
    .filter((f): f is { extensionRef: { group: string; kind: string; name: string } } => isObj(f) && f.type === 'ExtensionRef' && isObj(f.extensionRef))
    .filter((f) => f.extensionRef.kind === 'KongPlugin')
    .map((f) => f.extensionRef.name);
  const annotated = (route.metadata.annotations?.['konghq.com/plugins'] ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const names = refs.length > 0 ? refs : annotated;
  const found = names.map((n) => kongPlugins.find((k) => keyOf(k) === `${ns}/${n}`)).find((k) => k?.plugin === 'sticky-session');
  const named = found ? `KongPlugin ${keyOf(found)}` : names[0] !== undefined ? `KongPlugin ${ns}/${names[0]} (not in the files)` : 'no KongPlugin on this rule (the dev gateway binds one)';
  const config = found && isObj(found.config) ? structuredClone(found.config) : {};
  if (config.secrets !== undefined) return { config, source: named };
  return { config: { ...config, secrets: [DEV_SECRET] }, source: `${named}, with a dev secret` };
}

function kongState(m: Manifests): KongState {
  const routes = m.routes as unknown as HTTPRouteLike[];
  const groups = kicServiceGroups(routes, 'per-route');
  const serviceOf = new Map<string, DevService>();
  for (const [name, refs] of groups) {
    const first = refs[0] as RuleRef;
    // KIC names the group after its smallest rule index: the name's last label.
    const entity: DevService = { ...(kicService(routeNamespace(first.route), first.route.metadata.name, Number(name.split('.').pop())) as DevService), path: '/' };
    for (const r of refs) serviceOf.set(`${routeNamespace(r.route)}/${r.route.metadata.name}.${r.rule}`, entity);
  }
  const rules: KongRule[] = [];
  for (const obj of m.routes) {
    const route = obj as unknown as HTTPRouteLike;
    const ns = routeNamespace(route);
    const name = route.metadata.name;
    const hostnames = route.spec?.hostnames?.length ? route.spec.hostnames.map((h) => h.toLowerCase()) : null;
    routeRules(route).forEach((rule, i) => {
      const plugin = pluginFor(obj, rule, m.kongPlugins);
      const matches = rule.matches?.length ? rule.matches : [{}];
      matches.forEach((match, j) => {
        const base = kicRoute(ns, name, i, j, true, rule.name);
        const method = typeof match.method === 'string' ? [match.method] : null;
        const kongRoute: DevRoute = { ...base, id: base.id as string, paths: kongPaths(match), methods: method, hosts: hostnames, strip_path: false, preserve_host: true };
        rules.push({
          route: kongRoute,
          service: serviceOf.get(`${ns}/${name}.${i}`) as DevService,
          httpRoute: `${ns}/${name}`,
          rule: i,
          ruleLabel: rule.name ? `rule ${i} (${rule.name})` : `rule ${i}`,
          pluginId: stableId('plugin', 'sticky-session', kongRoute.name as string),
          pluginConfig: plugin.config,
          pluginSource: plugin.source,
        });
      });
    });
  }
  return { rules, groups };
}

// ---------------------------------------------------------------------------------------
// What changed, in one line

/** `shop-v1` for a backendRef of the route's namespace and its only port there, else `ns/name:port`. */
function backendWeights(ns: string, rule: HTTPRouteRuleLike | undefined): Map<string, number> {
  const out = new Map<string, number>();
  for (const raw of rule?.backendRefs ?? []) {
    const ref = defaultBackendRef(raw);
    const key = `${ref.namespace && ref.namespace !== ns ? `${ref.namespace}/` : ''}${ref.name}`;
    out.set(key, (out.get(key) ?? 0) + ref.weight);
  }
  return out;
}

function flatDiff(before: unknown, after: unknown, at: string, out: string[]): void {
  if (JSON.stringify(before) === JSON.stringify(after)) return;
  if (isObj(before) && isObj(after)) {
    for (const k of new Set([...Object.keys(before), ...Object.keys(after)])) flatDiff(before[k], after[k], `${at}.${k}`, out);
    return;
  }
  const show = (v: unknown): string => (v === undefined ? '(unset)' : typeof v === 'string' ? v : JSON.stringify(v));
  out.push(`${at} ${show(before)} -> ${show(after)}`);
}

function ruleChanges(ns: string, before: HTTPRouteRuleLike, after: HTTPRouteRuleLike): string[] {
  const parts: string[] = [];
  const a = backendWeights(ns, before);
  const b = backendWeights(ns, after);
  const weights: string[] = [];
  const removed: string[] = [];
  for (const [k, w] of b) {
    const old = a.get(k);
    if (old === undefined) weights.push(`${k} added (${w})`);
    else if (old !== w) weights.push(`${k} ${old} -> ${w}`);
  }
  for (const k of a.keys()) if (!b.has(k)) removed.push(k);
  if (weights.length > 0) parts.push(`weights ${weights.join(', ')}`);
  if (removed.length > 0) parts.push(`backendRef ${removed.join(', ')} removed`);
  const sp: string[] = [];
  flatDiff(before.sessionPersistence, after.sessionPersistence, 'sessionPersistence', sp);
  parts.push(...sp);
  if (JSON.stringify(before.matches) !== JSON.stringify(after.matches)) parts.push('matches changed');
  if (JSON.stringify(before.filters) !== JSON.stringify(after.filters)) parts.push('filters changed');
  if (parts.length === 0) return [];
  const nameOf = (r: HTTPRouteRuleLike): string | undefined => {
    const p = ruleSessionPolicy(r);
    return p?.ok ? `${p.policy.type}:${p.policy.name ?? ''}` : undefined;
  };
  const verdict =
    removed.length > 0
      ? `sessions on ${removed.join(', ')} re-pin (new cookie)`
      : nameOf(before) !== nameOf(after)
        ? 'a new session name: clients start new sessions'
        : 'sessions stay';
  return [`${parts.join(', ')}; ${verdict}`];
}

function objectChanges(kind: string, before: readonly K8sObject[], after: readonly K8sObject[]): string[] {
  const out: string[] = [];
  for (const o of after) {
    const old = before.find((x) => keyOf(x) === keyOf(o));
    if (!old) out.push(`${kind} ${keyOf(o)} added`);
    else if (JSON.stringify(old) !== JSON.stringify(o) && kind !== 'HTTPRoute') out.push(`${kind} ${keyOf(o)} changed`);
  }
  for (const o of before) if (!after.some((x) => keyOf(x) === keyOf(o))) out.push(`${kind} ${keyOf(o)} removed`);
  return out;
}

function httpRouteChanges(before: readonly K8sObject[], after: readonly K8sObject[]): string[] {
  const out: string[] = [];
  for (const o of after) {
    const old = before.find((x) => keyOf(x) === keyOf(o));
    if (!old) continue;
    const ns = o.metadata.namespace;
    const a = routeRules(old as unknown as HTTPRouteLike);
    const b = routeRules(o as unknown as HTTPRouteLike);
    for (let i = 0; i < Math.max(a.length, b.length); i++) {
      const [x, y] = [a[i], b[i]];
      const label = `HTTPRoute ${keyOf(o)} rule ${(y ?? x)?.name ?? i}`;
      if (!x) out.push(`${label} added`);
      else if (!y) out.push(`${label} removed: its sessions start over`);
      else for (const c of ruleChanges(ns, x, y)) out.push(`${label}: ${c}`);
    }
    const hosts = (r: K8sObject) => JSON.stringify((r.spec as Obj | undefined)?.hostnames ?? []);
    if (hosts(old) !== hosts(o)) out.push(`HTTPRoute ${keyOf(o)}: hostnames changed`);
  }
  return [...out, ...objectChanges('HTTPRoute', before, after)];
}

// ---------------------------------------------------------------------------------------

interface PodState {
  readonly pod: Pod;
  readonly ip: string;
  /** Scaled away: terminating and serving until the timer ends it. */
  draining?: NodeJS.Timeout;
}

export class HttpRouteSite implements DevSite {
  readonly pluginEnv: Readonly<Record<string, string>>;
  private readonly backendMap = new Backends();
  private kong!: KongEmulator;
  private instanceCheck: InstanceCheck | undefined;
  private manifests: Manifests;
  private kongState: KongState;
  private texts: string[];
  private readonly pods = new Map<string, PodState>();
  private readonly balancers = new Map<string, SmoothWeighted>();
  private fingerprint = '';
  /** Reloads and drain timers, one at a time. */
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(
    readonly files: readonly string[],
    readonly api: KubeApiServer,
    private readonly kubeDir: string,
    texts: string[],
    manifests: Manifests,
  ) {
    this.texts = texts;
    this.manifests = manifests;
    this.kongState = kongState(manifests);
    this.pluginEnv = { KUBECONFIG: api.writeKubeconfig(kubeDir) };
  }

  /** Reads and validates the files, starts the test API server and the pods, writes the objects. */
  static async open(files: readonly string[]): Promise<HttpRouteSite> {
    const texts = files.map((f) => readFileSync(f, 'utf8'));
    const manifests = parseManifests(files.map((file, i) => ({ file, text: texts[i] as string })));
    if (manifests.routes.length === 0) throw new Error(`no HTTPRoute in ${files.map((f) => path.basename(f)).join(', ')}`);
    const api = await startKubeApiServer();
    const site = new HttpRouteSite(files, api, mkdtempSync(path.join(os.tmpdir(), 'sticky-dev-kube-')), texts, manifests);
    try {
      await site.applyObjects({ services: [], deployments: [], routes: [], grants: [], kongPlugins: [] }, manifests);
    } catch (err) {
      await site.close();
      throw err;
    }
    return site;
  }

  async start(kong: KongEmulator): Promise<void> {
    this.kong = kong;
    this.instanceCheck = await loadInstanceCheck();
    this.bindPlugins(this.checkedPlugins(this.kongState));
    this.fingerprint = this.kongFingerprint();
    // Each rule's source lists and watches before the gateway says it is up (else first
    // requests fail open). Sessions made here are thrown away.
    const deadline = Date.now() + 10_000;
    for (const r of this.kongState.rules) {
      while (Date.now() < deadline) {
        const res = await kong.access({ service: r.service, route: r.route, path: '/', host: 'localhost' }, { plugin: r.pluginId, worker: 0 });
        if (res.target || res.exit) break;
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    }
  }

  // --- Kong's router and balancer --------------------------------------------------------

  route(method: string, hostHeader: string, reqPath: string): Routed | null {
    let best: { rule: KongRule; match: NonNullable<ReturnType<typeof matchRoute>>; score: number } | undefined;
    for (const rule of this.kongState.rules) {
      const match = matchRoute(rule.route, method, hostHeader, reqPath);
      if (!match) continue;
      const score = (rule.route.hosts ? 1_000_000 : 0) + match.prefix.length;
      if (!best || score > best.score) best = { rule, match, score };
    }
    if (!best) return null;
    const cookieName = this.cookieNameOf(best.rule);
    return { service: best.rule.service, route: best.rule.route, match: best.match, plugin: best.rule.pluginId, ...(cookieName ? { cookieName } : {}) };
  }

  /** The rule's cookie when the log can name it: sessionPersistence's, else the plugin's cookie_name. */
  private cookieNameOf(rule: KongRule): string | undefined {
    const r = this.ruleOf(rule);
    const p = r && ruleSessionPolicy(r);
    if (p?.ok) return p.policy.type === 'cookie' ? p.policy.name : undefined;
    const configured = this.kong.plugins().find((e) => e.id === rule.pluginId)?.config.cookie_name;
    return typeof configured === 'string' ? configured : undefined;
  }

  private ruleOf(rule: KongRule): HTTPRouteRuleLike | undefined {
    const obj = this.manifests.routes.find((o) => keyOf(o) === rule.httpRoute);
    return obj && routeRules(obj as unknown as HTTPRouteLike)[rule.rule];
  }

  /**
   * KIC's upstream targets of a Kong service: every ready pod of each backend, weight =
   * backendRef weight / pods of that backend (at least 1; 0 stays 0).
   */
  private upstreamTargets(serviceName: string): Array<{ host: string; port: number; weight: number; pod: string }> {
    const rules = this.kongState.groups.get(serviceName);
    if (!rules) return [];
    const lookup = (ns: string, name: string) => this.manifests.services.find((s) => keyOf(s) === `${ns}/${name}`) as ServiceLike | undefined;
    const { backends } = serviceBackends({ mode: 'per-route', serviceName, rules }, this.manifests.grants as unknown as ReferenceGrantLike[], lookup);
    return backends.flatMap((b) => {
      const svc = this.manifests.services.find((s) => keyOf(s) === `${b.ref.namespace}/${b.ref.service}`);
      const port = svc && servicePorts(svc).find((p) => (p.name ?? '') === b.ref.port);
      if (!svc || !port) return [];
      const ready = [...this.pods.values()].filter((p) => !p.draining && selects(svc, p.pod));
      const weight = b.weight === 0 ? 0 : Math.max(1, Math.floor(b.weight / Math.max(1, ready.length)));
      return ready.map((p) => ({ host: p.ip, port: targetPort(port, p.pod), weight, pod: p.pod.name }));
    });
  }

  balance(routed: Routed): { host: string; port: number; note: string } {
    const name = routed.service.name as string;
    const rr = this.balancers.get(name) ?? new SmoothWeighted();
    this.balancers.set(name, rr);
    const t = rr.pick(
      this.upstreamTargets(name).filter((x) => x.weight > 0),
      (x) => `${x.host}:${x.port}`,
      (x) => x.weight,
    );
    if (!t) return { host: routed.service.host, port: routed.service.port, note: ' (no target from the plugin, and the upstream has none with a weight: Kong answers 503)' };
    return { host: t.host, port: t.port, note: " (no target from the plugin: Kong balanced by the upstream's weights)" };
  }

  backend(host: string, port: number): Backend | undefined {
    return this.backendMap.get(host, port);
  }

  backends(): Backend[] {
    return this.backendMap.list();
  }

  // --- Applying the files ------------------------------------------------------------------

  reload(): Promise<ReloadOutcome> {
    const next = this.queue.then(() => this.doReload());
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async doReload(): Promise<ReloadOutcome> {
    const texts: string[] = [];
    try {
      for (const f of this.files) texts.push(readFileSync(f, 'utf8'));
    } catch (err) {
      return this.refused('', (err as Error).message);
    }
    const changed = this.files.filter((_, i) => texts[i] !== this.texts[i]).map((f) => path.basename(f));
    if (changed.length === 0) return { ok: true, unchanged: true, message: 'unchanged' };
    const what = changed.join(', ');
    let next: Manifests;
    let state: KongState;
    let plugins: Map<string, Record<string, unknown>>;
    try {
      next = parseManifests(this.files.map((file, i) => ({ file, text: texts[i] as string })));
      if (next.routes.length === 0) throw new Error('no HTTPRoute left (the dev gateway needs one)');
      state = kongState(next);
      plugins = this.checkedPlugins(state);
    } catch (err) {
      // Nothing applied: a half-written file (an editor mid-save) is refused the same way and
      // read again on its next change event.
      this.texts = texts;
      return this.refused(what, (err as Error).message);
    }
    const old = this.manifests;
    this.texts = texts;
    const pods = await this.applyObjects(old, next);
    this.manifests = next;
    this.kongState = state;
    this.bindPlugins(plugins);
    const fingerprint = this.kongFingerprint();
    // KIC pushes a new declarative config when anything it translates changed (upstream target
    // weights included): Kong rebuilds its plugins iterator, every worker starts new instances.
    if (fingerprint !== this.fingerprint) this.kong.reloadConfig();
    this.fingerprint = fingerprint;
    const parts = [
      ...httpRouteChanges(old.routes, next.routes),
      ...objectChanges('Service', old.services, next.services),
      ...objectChanges('ReferenceGrant', old.grants, next.grants),
      ...objectChanges('KongPlugin', old.kongPlugins, next.kongPlugins),
      ...pods.summary,
    ];
    const summary = parts.length > 0 ? parts.join('; ') : 'nothing the gateway serves changed';
    return { ok: true, message: `${what} applied: ${summary}`, backendsStarted: pods.started, backendsStopped: pods.stopped };
  }

  private refused(what: string, error: string): ReloadOutcome {
    return { ok: false, error, message: `${what || 'manifests'} NOT applied, the API server keeps the previous objects: ${error}` };
  }

  /** The filled config of each Kong route's plugin, checked as Kong and instance start would. */
  private checkedPlugins(state: KongState): Map<string, Record<string, unknown>> {
    const out = new Map<string, Record<string, unknown>>();
    for (const r of state.rules) {
      try {
        out.set(r.pluginId, checkPluginConfig(this.kong, this.instanceCheck, r.pluginConfig, { service: null, route: r.route.id }));
      } catch (err) {
        throw new Error(`${r.httpRoute} ${r.ruleLabel}: plugin config: ${(err as Error).message}`);
      }
    }
    return out;
  }

  /** One plugin entity per Kong route (KIC binds the KongPlugin to each); changed ones replaced. */
  private bindPlugins(wanted: Map<string, Record<string, unknown>>): void {
    const routeOf = new Map(this.kongState.rules.map((r) => [r.pluginId, r.route.id]));
    for (const p of this.kong.plugins()) {
      const config = wanted.get(p.id);
      if (config && JSON.stringify(config) === JSON.stringify(p.config) && p.routeId === routeOf.get(p.id)) wanted.delete(p.id);
      else this.kong.removePlugin(p.id);
    }
    for (const [id, config] of wanted) this.kong.addPlugin({ id, config, route: routeOf.get(id) as string });
  }

  private kongFingerprint(): string {
    const services = [...this.kongState.groups.keys()].sort();
    return JSON.stringify({
      routes: this.kongState.rules.map((r) => [r.route, r.service.name]),
      plugins: this.kong.plugins().map((p) => [p.id, p.config]),
      targets: services.map((s) => this.upstreamTargets(s)),
    });
  }

  /**
   * Writes what changed to the API server: Services, slices, grants, then HTTPRoutes (a new
   * backend exists before a rule names it); deletions in the reverse order. Starts the pods'
   * echo servers; pods scaled away drain.
   */
  private async applyObjects(old: Manifests, next: Manifests): Promise<{ summary: string[]; started: string[]; stopped: string[] }> {
    const summary: string[] = [];
    const wantedPods = podsOf(next.deployments);
    const before = new Map([...this.pods].filter(([, p]) => !p.draining).map(([k, p]) => [k, p]));
    for (const pod of wantedPods) {
      const key = `${pod.namespace}/${pod.name}`;
      const have = this.pods.get(key);
      if (have?.draining) clearTimeout(have.draining);
      this.pods.set(key, { pod, ip: have?.ip ?? this.freeIp() });
    }
    const drained: string[] = [];
    for (const [key, p] of this.pods) {
      if (p.draining || wantedPods.some((w) => `${w.namespace}/${w.name}` === key)) continue;
      p.draining = setTimeout(() => void this.endDrain(key), DRAIN_MS);
      p.draining.unref();
      drained.push(p.pod.name);
    }
    const byDeployment = (pods: Iterable<PodState>) => {
      const n = new Map<string, number>();
      for (const p of pods) n.set(p.pod.name.replace(/-\d+$/, ''), (n.get(p.pod.name.replace(/-\d+$/, '')) ?? 0) + 1);
      return n;
    };
    const a = byDeployment(before.values());
    const b = byDeployment([...this.pods.values()].filter((p) => !p.draining));
    for (const d of new Set([...a.keys(), ...b.keys()])) if ((a.get(d) ?? 0) !== (b.get(d) ?? 0)) summary.push(`pods ${d} ${a.get(d) ?? 0} -> ${b.get(d) ?? 0}`);
    if (drained.length > 0) summary.push(`${drained.join(', ')} draining for ${DRAIN_MS / 1000} s (terminating, serving)`);

    const started = await this.backendMap.add(this.wantedAddresses(next.services));
    const upsert = (kind: ResourceKindRef, objs: readonly K8sObject[]) => objs.forEach((o) => this.api.applyObject(kind, o as unknown as ObjectInput));
    const remove = (kind: ResourceKindRef, was: readonly K8sObject[], now: readonly K8sObject[]) =>
      was.filter((o) => !now.some((x) => keyOf(x) === keyOf(o))).forEach((o) => this.api.deleteObject(kind, o.metadata.namespace, o.metadata.name));
    upsert(SERVICE_KIND, next.services);
    this.publishSlices(next.services);
    upsert(REFERENCE_GRANT_KIND, next.grants);
    upsert(HTTP_ROUTE_KIND, next.routes);
    remove(HTTP_ROUTE_KIND, old.routes, next.routes);
    remove(REFERENCE_GRANT_KIND, old.grants, next.grants);
    for (const s of old.services) if (!next.services.some((x) => keyOf(x) === keyOf(s))) this.api.deleteObject(ENDPOINT_SLICE_KIND, s.metadata.namespace, sliceName(s));
    remove(SERVICE_KIND, old.services, next.services);
    const stopped = await this.backendMap.retain(this.wantedAddresses(next.services));
    return { summary, started, stopped };
  }

  private endDrain(key: string): void {
    this.queue = this.queue.then(async () => {
      const p = this.pods.get(key);
      if (this.closed || !p?.draining) return;
      this.pods.delete(key);
      this.publishSlices(this.manifests.services);
      await this.backendMap.retain(this.wantedAddresses(this.manifests.services));
      this.kong.reloadConfig();
      this.fingerprint = this.kongFingerprint();
    });
  }

  private freeIp(): string {
    const used = new Set([...this.pods.values()].map((p) => p.ip));
    for (let i = 1; i < 255; i++) if (!used.has(`192.0.2.${i}`)) return `192.0.2.${i}`;
    throw new Error('more than 254 pods: the dev gateway gives each an address of 192.0.2.0/24');
  }

  private podsOf(service: K8sObject): PodState[] {
    return [...this.pods.values()].filter((p) => selects(service, p.pod));
  }

  private wantedAddresses(services: readonly K8sObject[]): Array<{ host: string; port: number; name: string }> {
    return services.flatMap((s) => this.podsOf(s).flatMap((p) => servicePorts(s).map((port) => ({ host: p.ip, port: targetPort(port, p.pod), name: p.pod.name }))));
  }

  /** One EndpointSlice per Service, as the EndpointSlice controller writes it. */
  private publishSlices(services: readonly K8sObject[]): void {
    for (const s of services) {
      const pods = this.podsOf(s);
      const first = pods[0];
      this.api.apply(
        endpointSlice({
          name: sliceName(s),
          namespace: s.metadata.namespace,
          service: s.metadata.name,
          ports: servicePorts(s).map((p) => ({ ...(p.name ? { name: p.name } : {}), port: first ? targetPort(p, first.pod) : typeof p.targetPort === 'number' ? p.targetPort : p.port })),
          endpoints: pods.map((p) => podEndpoint(p.pod.name, p.ip, p.draining ? DRAINING : READY, p.pod.namespace)),
        }),
      );
    }
  }

  // --- Banner ------------------------------------------------------------------------------

  describe(shown: string, rel: (file: string) => string): string[] {
    const lines = [
      `  manifests ${this.files.map(rel).join(', ')}  (watched: save to apply, like kubectl apply)`,
      `  API server ${this.api.url} (the in-repo test API server; the plugin server's KUBECONFIG)`,
    ];
    for (const obj of this.manifests.routes) {
      const route = obj as unknown as HTTPRouteLike;
      lines.push(`  HTTPRoute ${keyOf(obj)}${route.spec?.hostnames?.length ? ` (hostnames ${route.spec.hostnames.join(', ')})` : ''}`);
      routeRules(route).forEach((rule, i) => {
        const kong = this.kongState.rules.filter((r) => r.httpRoute === keyOf(obj) && r.rule === i);
        const paths = (rule.matches ?? []).map((m) => `${m.path?.type ?? 'PathPrefix'} ${m.path?.value ?? '/'}`).join(', ') || 'PathPrefix /';
        const weights = [...backendWeights(obj.metadata.namespace, rule)].map(([k, w]) => `${k} ${w}`).join(', ');
        lines.push(`    rule ${i}${rule.name ? ` "${rule.name}"` : ''}: ${paths} -> ${weights || '(no backendRefs)'}; ${this.sessionText(rule, kong[0])}`);
        if (kong[0]) lines.push(`      Kong service ${kong[0].service.name}, route${kong.length > 1 ? 's' : ''} ${kong.map((r) => r.route.name).join(', ')}; plugin: ${kong[0].pluginSource}`);
      });
    }
    lines.push('  pods (192.0.2.x in the EndpointSlices; an echo server answers for each)');
    for (const b of this.backends()) lines.push(`    ${b.echo?.name ?? b.key}  ${b.key} -> ${b.host}:${b.port}`);
    return [...lines, '', ...this.walkThrough(shown, rel)];
  }

  private sessionText(rule: HTTPRouteRuleLike, kong: KongRule | undefined): string {
    const p = ruleSessionPolicy(rule);
    if (!p) return `no sessionPersistence: the plugin's cookie ${kong ? (this.cookieNameOf(kong) ?? '') : ''}`.trim();
    if (!p.ok) return `sessionPersistence unusable (${p.reason}): the plugin's settings`;
    const pol = p.policy;
    if (pol.type === 'header') return `header ${pol.name ?? '(a name of its own)'}`;
    return `cookie ${pol.name ?? '(a name of its own)'} (${pol.lifetime === 'permanent' ? `Permanent, Max-Age=${pol.absoluteTimeoutS}` : 'Session'})`;
  }

  private walkThrough(shown: string, rel: (file: string) => string): string[] {
    // The example: the first rule with two backends or more (else the first rule).
    const all = this.manifests.routes.flatMap((o) => routeRules(o as unknown as HTTPRouteLike).map((rule) => ({ o, rule })));
    const pick = all.find((x) => (x.rule.backendRefs?.length ?? 0) > 1) ?? all[0];
    if (!pick) return [];
    const match = pick.rule.matches?.[0]?.path;
    const url = `${shown}${match?.type === 'PathPrefix' || match?.type === 'Exact' ? (match.value ?? '/') : '/'}`;
    const host = (pick.o.spec as { hostnames?: string[] } | undefined)?.hostnames?.[0];
    const h = host ? ` -H 'Host: ${host.replace(/^\*\./, 'www.')}'` : '';
    const names = [...backendWeights(pick.o.metadata.namespace, pick.rule).keys()];
    const [first, last] = [names[0] ?? 'v1', names[names.length - 1] ?? 'v2'];
    const routeFile = this.files.find((_, i) => /kind:\s*HTTPRoute/.test(this.texts[i] ?? '')) ?? this.files[0] ?? '';
    const jar = `curl -s -c jar -b jar${h} ${url}`;
    return [
      'Walk-through (the cookie jar plays the browser; the body starts with the pod that answered):',
      `  curl -si -c jar -b jar${h} ${url} | grep -iE '^(set-cookie|name):'   # the rule's cookie, a pod`,
      `  for i in 1 2 3 4 5; do ${jar} | head -1; done   # the same pod every time`,
      `  for i in $(seq 10); do curl -s${h} ${url} | head -1; done   # new clients: split by the weights`,
      `  # in ${rel(routeFile)} set ${first}'s weight to 0 and ${last}'s to 100, save (git checkout restores it)`,
      `  for i in 1 2 3 4 5; do ${jar} | head -1; done   # still the same pod: weights steer new sessions only`,
      `  for i in $(seq 10); do curl -s${h} ${url} | head -1; done   # new clients: ${last} only`,
      `  # delete ${first}'s backendRef (name, port, weight) and save`,
      `  curl -si -c jar -b jar${h} ${url} | grep -iE '^(set-cookie|name):'   # a ${first} session: re-pinned, a new Set-Cookie`,
    ];
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.queue;
    for (const p of this.pods.values()) clearTimeout(p.draining);
    await this.backendMap.closeAll();
    await this.api.stop();
    rmSync(this.kubeDir, { recursive: true, force: true });
  }
}

function sliceName(service: K8sObject): string {
  return `${service.metadata.name}-dev`;
}
