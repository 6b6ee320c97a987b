import { affinityStates } from '../affinity/state.js';
import { sources } from '../endpoints/registry.js';
import type { EndpointCondition, EndpointSource, SourceStatus } from '../endpoints/types.js';
import { configErrors } from './config-errors.js';

/**
 * The read-only status view: every endpoint source of this process (one per watched
 * Service or static target set) with its endpoints, their conditions and the sessions this
 * process has seen on each. Built on demand from the process-wide registries; nothing is
 * kept for it on the request path. Served as JSON at GET /status.
 */
export interface StatusView {
  readonly pid: number;
  /** When the view was built, ISO 8601. */
  readonly at: string;
  readonly services: readonly ServiceStatus[];
  /** Instances whose config the plugin cannot use (they stand aside), one entry per service and field. */
  readonly configErrors: readonly ConfigErrorStatus[];
}

export interface ConfigErrorStatus {
  readonly service: string;
  readonly field: string;
  readonly message: string;
  /** When the first of its instances started, ISO 8601. */
  readonly since: string;
  /** Instances with this error (one per nginx worker that has taken a request). */
  readonly instances: number;
}

export interface ServiceStatus {
  /** The source key: `k8s:<namespace>/<service>:<port>` or `static:<hash>`. */
  readonly source: string;
  readonly kind: 'kubernetes' | 'httproute' | 'static';
  /** Kong services (or routes) whose tokens point into this source. */
  readonly bindings: readonly string[];
  readonly synced: boolean;
  /** Last confirmation from the API server, ISO 8601; null for static targets or before the first sync. */
  readonly lastSyncAt: string | null;
  readonly lastSyncAgeSeconds: number | null;
  readonly restarts: number;
  readonly lastError: { readonly message: string; readonly at: string } | null;
  /** What keeps the view from being what was asked (an HTTPRoute rule's backendRef left out...); null: nothing. */
  readonly problem: string | null;
  /** Version of the endpoint view (increases with every change); null before the first sync. */
  readonly version: number | null;
  readonly endpoints: readonly EndpointStatus[];
  /** A traffic split (an HTTPRoute rule): its backend Services, weights and sessions. */
  readonly backends?: readonly BackendStatus[];
}

export interface BackendStatus {
  /** `<namespace>/<service>:<port>`. */
  readonly backend: string;
  readonly weight: number;
  readonly ready: number;
  readonly draining: number;
  /** Sessions seen on its pods by this process within the session TTL. */
  readonly activeSessions: number;
}

export interface EndpointStatus {
  /** Stable identity: the pod uid, or host:port for static targets. */
  readonly id: string;
  /** Pod name, or the target as configured. */
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly condition: EndpointCondition;
  /** Its backend Service in a traffic split. */
  readonly backend?: string;
  /** Sessions seen on this endpoint by this process within the session TTL (all workers). */
  readonly activeSessions: number;
}

/** One source's facts, shared by the status view and the metrics collectors. */
export interface SourceFacts {
  readonly key: string;
  readonly source: EndpointSource;
  readonly status: SourceStatus;
  readonly bindings: readonly string[];
  /** Active sessions per endpoint id, summed over every affinity state on this source. */
  readonly sessions: ReadonlyMap<string, number>;
}

/** Walks the registries once: every source with its status, bindings and session counts. */
export function sourceFacts(): SourceFacts[] {
  const bySource = new Map<string, { bindings: Set<string>; sessions: Map<string, number> }>();
  for (const { sourceKey, binding, state } of affinityStates()) {
    let entry = bySource.get(sourceKey);
    if (!entry) bySource.set(sourceKey, (entry = { bindings: new Set(), sessions: new Map() }));
    entry.bindings.add(binding);
    for (const [endpointId, n] of state.sessions.counts()) entry.sessions.set(endpointId, (entry.sessions.get(endpointId) ?? 0) + n);
  }
  const facts: SourceFacts[] = [];
  for (const [key, source] of sources.held()) {
    const entry = bySource.get(key);
    facts.push({
      key,
      source,
      status: source.status?.() ?? { synced: source.current() !== undefined, lastSyncAt: undefined, restarts: 0 },
      bindings: entry ? [...entry.bindings].sort() : [],
      sessions: entry?.sessions ?? new Map(),
    });
  }
  return facts.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** The backends of a traffic split with their weights, endpoint counts and sessions; [] for other sources. */
export function backendFacts(f: SourceFacts): Array<{ key: string; weight: number; ready: number; draining: number; sessions: number }> {
  const snapshot = f.source.current();
  if (!snapshot?.backends) return [];
  const out = new Map(snapshot.backends.map((b) => [b.key, { key: b.key, weight: b.weight, ready: b.ready.length, draining: 0, sessions: 0 }]));
  for (const e of snapshot.byId.values()) {
    const b = e.backend === undefined ? undefined : out.get(e.backend);
    if (!b) continue;
    if (e.condition === 'draining') b.draining++;
    b.sessions += f.sessions.get(e.id) ?? 0;
  }
  return [...out.values()];
}

/** Refused configs of live instances, one entry per (service, field, message). */
function configErrorStatus(): ConfigErrorStatus[] {
  const byKey = new Map<string, { service: string; field: string; message: string; since: number; instances: number }>();
  for (const e of configErrors()) {
    const key = `${e.service}\n${e.field}\n${e.message}`;
    const entry = byKey.get(key);
    if (entry) {
      entry.instances++;
      entry.since = Math.min(entry.since, e.since);
    } else byKey.set(key, { ...e, instances: 1 });
  }
  return [...byKey.values()].map((e) => ({ ...e, since: new Date(e.since).toISOString() }));
}

export function buildStatus(now = Date.now()): StatusView {
  return {
    pid: process.pid,
    at: new Date(now).toISOString(),
    configErrors: configErrorStatus(),
    services: sourceFacts().map((f): ServiceStatus => {
      const snapshot = f.source.current();
      const { lastSyncAt, lastError } = f.status;
      return {
        source: f.key,
        kind: f.key.startsWith('static:') ? 'static' : f.key.startsWith('k8s:') ? 'kubernetes' : 'httproute',
        bindings: f.bindings,
        synced: f.status.synced,
        lastSyncAt: lastSyncAt === undefined ? null : new Date(lastSyncAt).toISOString(),
        lastSyncAgeSeconds: lastSyncAt === undefined ? null : Math.max(0, (now - lastSyncAt) / 1000),
        restarts: f.status.restarts,
        lastError: lastError ? { message: lastError.message, at: new Date(lastError.at).toISOString() } : null,
        problem: f.status.problem ?? null,
        version: snapshot?.version ?? null,
        endpoints: snapshot
          ? [...snapshot.byId.values()].map((e) => ({
              id: e.id,
              name: e.name,
              host: e.host,
              port: e.port,
              condition: e.condition,
              ...(e.backend === undefined ? {} : { backend: e.backend }),
              activeSessions: f.sessions.get(e.id) ?? 0,
            }))
          : [],
        ...(snapshot?.backends
          ? { backends: backendFacts(f).map((b) => ({ backend: b.key, weight: b.weight, ready: b.ready, draining: b.draining, activeSessions: b.sessions })) }
          : {}),
      };
    }),
  };
}
