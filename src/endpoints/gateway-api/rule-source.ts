/**
 * The endpoint view of one HTTPRoute rule under KIC: the serving pods of every backendRef KIC
 * routes the rule to, weighted as the rule says (a traffic split), and the rule's
 * sessionPersistence. Kept current from the shared caches of HTTPRoutes, ReferenceGrants and
 * Services and from each backend Service's endpoint view; every change is followed live.
 *
 * While the rule is not known yet (caches not synced, no such rule) there is no view: the
 * contract fails open. Once known, a rule that disappears keeps its last view: KIC removes
 * its Kong routes next, and until then sessions stay where they are.
 */
import { log } from '../../log.js';
import type { Lease } from '../../shared.js';
import {
  acquireKubernetesSource,
  acquireObjectCache,
  HTTP_ROUTES,
  REFERENCE_GRANTS,
  scopeFor,
  SERVICES,
  type EndpointSliceWatcherOptions,
  type KubeObject,
  type ObjectCache,
  type ObjectCacheOptions,
  type ResourceKind,
} from '../kubernetes/index.js';
import { makeSplitSnapshot } from '../split.js';
import { ViewListeners } from '../view-listeners.js';
import type { EndpointSnapshot, EndpointSource, SourceStatus } from '../types.js';
import { defaultBackendRef, routeNamespace, routeRules, type HTTPRouteLike, type HTTPRouteRuleLike, type ReferenceGrantLike, type ServiceLike } from './httproute.js';
import { parseKicServiceName } from './kic-names.js';
import { backendsOf, findKicService, type RuleBackend } from './rule-backends.js';
import { ruleSessionPolicy, type SessionPolicyResult } from './session-persistence.js';

/** How an instance names its rule: the Kong service host, and the rule its Kong route names. */
export interface GatewayRuleIdentity {
  /** The Kong service host KIC generated (`httproute.<ns>.<name>.<rule>`, ...). */
  readonly host: string;
  /** From the Kong route's name or tags (route-bound instances): exact even for shared services. */
  readonly rule?: { readonly namespace: string; readonly name: string; readonly index: number } | undefined;
}

export interface GatewayRuleSourceOptions {
  /** For the shared caches of HTTPRoutes, ReferenceGrants and Services (tests: the API server). */
  readonly objects?: ObjectCacheOptions;
  /** For each backend Service's endpoint view. */
  readonly watcher?: EndpointSliceWatcherOptions;
}

/** The rule as last read: which one, and what it asks for. */
export interface RuleReading {
  /** `httproute:<ns>/<name>/<rule index>`: what the rule's tokens are bound to. */
  readonly ruleKey: string;
  /** Its sessionPersistence; undefined: none (the KongPlugin's config applies). */
  readonly sessionPolicy: SessionPolicyResult | undefined;
}

/** The registry key of the source for `identity`: instances naming the same rule share one. */
export function gatewayRuleSourceKey(identity: GatewayRuleIdentity): string {
  const r = identity.rule;
  return r ? ruleKeyOf(r.namespace, r.name, r.index) : `kic-service:${identity.host}`;
}

/** `httproute:<ns>/<name>/<rule index>`: what a rule's tokens are bound to. */
function ruleKeyOf(namespace: string, name: string, index: number): string {
  return `httproute:${namespace}/${name}/${index}`;
}

type RouteObject = HTTPRouteLike & KubeObject;
type GrantObject = ReferenceGrantLike & KubeObject;
type ServiceObject = ServiceLike & KubeObject;

interface HeldBackend {
  readonly backend: RuleBackend;
  readonly source: Lease<EndpointSource>;
  readonly unsubscribe: () => void;
}

interface HeldCache<T extends KubeObject> {
  readonly lease: Lease<ObjectCache<T>>;
  readonly unsubscribe: () => void;
}

export class GatewayRuleSource implements EndpointSource {
  readonly key: string;
  private readonly namespace: string | undefined;
  private readonly routes: HeldCache<RouteObject> | undefined;
  private readonly services = new Map<string, HeldCache<ServiceObject>>();
  private readonly grants = new Map<string, HeldCache<GrantObject>>();
  private backends = new Map<string, HeldBackend>();
  /** Backend keys in the rule's order, with their weights: what the view is built from. */
  private order: readonly RuleBackend[] = [];
  private reading: RuleReading | undefined;
  private snapshot: EndpointSnapshot | undefined;
  /** What the last view was built from, to publish only changes. */
  private built: readonly unknown[] = [];
  private readonly listeners = new ViewListeners();
  /** Last logged problem text, so a lasting problem is logged once. */
  private reported = '';
  private closed = false;

  constructor(
    private readonly identity: GatewayRuleIdentity,
    private readonly options: GatewayRuleSourceOptions = {},
  ) {
    this.key = gatewayRuleSourceKey(identity);
    this.namespace = identity.rule?.namespace ?? parseKicServiceName(identity.host)?.namespace;
    if (this.namespace === undefined) {
      this.report(`Kong service host ${JSON.stringify(identity.host)} is not one KIC builds for an HTTPRoute`);
      return;
    }
    this.routes = this.watch<RouteObject>(HTTP_ROUTES, this.namespace);
    this.recompute();
  }

  current(): EndpointSnapshot | undefined {
    return this.snapshot;
  }

  /** The rule and its sessionPersistence, once read; undefined before. */
  rule(): RuleReading | undefined {
    return this.reading;
  }

  onChange(listener: (snapshot: EndpointSnapshot) => void): () => void {
    return this.listeners.add(listener);
  }

  status(): SourceStatus {
    const caches = [this.routes, ...this.services.values(), ...this.grants.values()].flatMap((c) => (c ? [c.lease.value.status()] : []));
    const sources = [...this.backends.values()].flatMap((b) => (b.source.value.status ? [b.source.value.status()] : []));
    const all = [...caches, ...sources];
    const errors = all.flatMap((s) => (s.lastError ? [s.lastError] : [])).sort((a, b) => b.at - a.at);
    const syncs = all.flatMap((s) => (s.lastSyncAt === undefined ? [] : [s.lastSyncAt]));
    return {
      synced: this.snapshot !== undefined,
      lastSyncAt: syncs.length === all.length && syncs.length > 0 ? Math.min(...syncs) : undefined,
      restarts: all.reduce((n, s) => n + s.restarts, 0),
      lastError: errors[0],
      problem: this.reported || undefined,
    };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const b of this.backends.values()) release(b);
    this.backends.clear();
    for (const c of [this.routes, ...this.services.values(), ...this.grants.values()]) if (c) release(c);
    this.services.clear();
    this.grants.clear();
    this.listeners.clear();
  }

  /** Reads the rule again from the caches and follows what it now says. */
  private recompute(): void {
    if (this.closed || !this.routes || this.namespace === undefined) return;
    if (!this.routes.lease.value.synced()) return;
    const found = this.findRule(this.routes.lease.value);
    if (!found) return;
    const { route, rule, ruleKey } = found;
    const fromNamespace = routeNamespace(route);
    const refs = rule.backendRefs ?? [];

    // Services of every backend namespace; ReferenceGrants of every other one (grants live with the backend).
    const namespaces = new Set([fromNamespace, ...refs.map((r) => defaultBackendRef(r).namespace ?? fromNamespace)]);
    this.holdOnly(this.services, namespaces, SERVICES);
    this.holdOnly(this.grants, new Set([...namespaces].filter((ns) => ns !== fromNamespace)), REFERENCE_GRANTS);
    if ([...this.services.values(), ...this.grants.values()].some((c) => !c.lease.value.synced())) return;

    const grants = [...this.grants].flatMap(([ns, g]) => g.lease.value.list(ns));
    const { backends, problems } = backendsOf(fromNamespace, refs, grants, (ns, name) => this.services.get(ns)?.lease.value.get(ns, name));
    const policy = ruleSessionPolicy(rule);
    this.report(
      [
        ...problems.map((p) => `backendRef ${p.message} (${p.reason}): left out, as KIC does`),
        ...(policy && !policy.ok ? [`sessionPersistence not used: ${policy.reason}; the KongPlugin's session settings apply`] : []),
        ...(backends.length === 0 ? ['no backend to pin sessions to'] : []),
      ].join('; '),
      ruleKey,
    );
    this.reading = { ruleKey, sessionPolicy: policy };
    this.follow(backends);
    this.publish();
  }

  /** The rule the identity names, or (no route known) the first rule of the Kong service the host names. */
  private findRule(routes: ObjectCache<RouteObject>): { route: RouteObject; rule: HTTPRouteRuleLike; ruleKey: string } | undefined {
    const named = this.identity.rule;
    if (named) {
      const route = routes.get(named.namespace, named.name);
      const rule = route && routeRules(route)[named.index];
      if (!route || !rule) {
        this.report(`no rule ${named.index} in HTTPRoute ${named.namespace}/${named.name}`);
        return undefined;
      }
      return { route, rule, ruleKey: ruleKeyOf(named.namespace, named.name, named.index) };
    }
    const [match] = findKicService(this.identity.host, routes.list(this.namespace));
    const first = match?.rules[0];
    const rule = first && routeRules(first.route)[first.rule];
    if (!first || !rule) {
      this.report(`no HTTPRoute rule of namespace ${this.namespace} makes the Kong service ${this.identity.host}`);
      return undefined;
    }
    const route = first.route as RouteObject;
    return { route, rule, ruleKey: ruleKeyOf(routeNamespace(route), route.metadata.name, first.rule) };
  }

  /** Holds the endpoint view of every backend of the rule, and only those. */
  private follow(backends: readonly RuleBackend[]): void {
    const next = new Map<string, HeldBackend>();
    for (const backend of backends) {
      const held = this.backends.get(backend.key);
      if (held && sameRef(held.backend, backend)) {
        next.set(backend.key, { ...held, backend });
        continue;
      }
      const source = acquireKubernetesSource(backend.ref, this.options.watcher);
      const unsubscribe = source.value.onChange(() => this.publish());
      next.set(backend.key, { backend, source, unsubscribe });
    }
    for (const [key, held] of this.backends) if (next.get(key)?.source !== held.source) release(held);
    this.backends = next;
    this.order = backends;
  }

  /** A new view when the backends, their weights or their endpoints changed; none until all are synced. */
  private publish(): void {
    if (this.closed) return;
    const parts = this.order.map((b) => ({ backend: b, view: this.backends.get(b.key)?.source.value.current() }));
    if (parts.some((p) => p.view === undefined)) return;
    const built = parts.flatMap((p) => [p.backend.key, p.backend.weight, p.view]);
    if (this.snapshot && built.length === this.built.length && built.every((x, i) => x === this.built[i])) return;
    this.built = built;
    const snapshot = makeSplitSnapshot(
      (this.snapshot?.version ?? 0) + 1,
      parts.map(({ backend, view }) => ({ key: backend.key, weight: backend.weight, endpoints: [...(view as EndpointSnapshot).byId.values()] })),
    );
    this.snapshot = snapshot;
    log.info(
      { source: this.key, version: snapshot.version, backends: snapshot.backends?.map((b) => `${b.key} w${b.weight}: ${b.ready.length} ready`) },
      'rule view changed',
    );
    this.listeners.notify(snapshot, this.key);
  }

  /** Holds the caches of `kind` for exactly `namespaces`: opens the missing, releases the others. */
  private holdOnly<T extends KubeObject>(held: Map<string, HeldCache<T>>, namespaces: ReadonlySet<string>, kind: ResourceKind): void {
    for (const ns of namespaces) if (!held.has(ns)) held.set(ns, this.watch<T>(kind, ns));
    for (const [ns, cache] of held) {
      if (namespaces.has(ns)) continue;
      release(cache);
      held.delete(ns);
    }
  }

  private watch<T extends KubeObject>(kind: ResourceKind, namespace: string): HeldCache<T> {
    const lease = acquireObjectCache<T>(kind, scopeFor(namespace), this.options.objects);
    const unsubscribe = lease.value.onChange(() => this.recompute(), { namespace });
    return { lease, unsubscribe };
  }

  private report(problem: string, ruleKey?: string): void {
    if (problem === this.reported) return;
    this.reported = problem;
    if (problem) log.warn({ source: this.key, rule: ruleKey }, problem);
  }
}

function sameRef(a: RuleBackend, b: RuleBackend): boolean {
  return a.ref.namespace === b.ref.namespace && a.ref.service === b.ref.service && a.ref.port === b.ref.port;
}

function release(held: { readonly unsubscribe: () => void; readonly lease?: Lease<unknown>; readonly source?: Lease<unknown> }): void {
  held.unsubscribe();
  held.lease?.release();
  held.source?.release();
}
