/**
 * One list-and-watch per resource kind and namespace (or the whole cluster), kept in memory
 * and shared by everything in the process that reads that kind: the endpoint views of every
 * watched Service, the Gateway API routes and grants. client-go's shared informer, in small.
 *
 * The loop is client-go's reflector: list, watch from the list's resourceVersion, resume
 * from the last resourceVersion seen when a watch ends or breaks, list again only when the
 * server says 410 Gone. The API server must answer a request at once (answerTimeoutMs, 2 s)
 * or the attempt is given up; failures wait a capped, jittered backoff counted from the
 * start of the failed attempt, which a working watch resets. All the while the objects last
 * seen stay readable. `close()` aborts whatever is in flight.
 *
 * Readers subscribe to changes, all of them or those of one namespace and label value (an
 * index, so that 1,000 Service views do not each look at every EndpointSlice event).
 */
import { createHash } from 'node:crypto';
import type { KubeConfig } from '@kubernetes/client-node';
import { log } from '../../log.js';
import { SharedRegistry, type Lease } from '../../shared.js';
import {
  describeKind,
  isExpired,
  listObjects,
  watchObjects,
  type KubeObject,
  type ResourceKind,
  type WatchEvent,
} from './api.js';
import { Backoff, type BackoffOptions } from './backoff.js';
import { loadKubeConfig } from './kubeconfig.js';

export type { KubeObject, ResourceKind } from './api.js';

export const SERVICES: ResourceKind = { group: '', version: 'v1', plural: 'services' };
export const ENDPOINT_SLICES: ResourceKind = { group: 'discovery.k8s.io', version: 'v1', plural: 'endpointslices' };
export const HTTP_ROUTES: ResourceKind = { group: 'gateway.networking.k8s.io', version: 'v1', plural: 'httproutes' };
export const REFERENCE_GRANTS: ResourceKind = { group: 'gateway.networking.k8s.io', version: 'v1beta1', plural: 'referencegrants' };

export interface ObjectCacheOptions {
  /** Credentials and API server; default `loadKubeConfig()` (KUBECONFIG, ~/.kube/config or in-cluster). */
  readonly kubeConfig?: KubeConfig;
  /** Delays between failed attempts (default 250 ms doubling to 3 s, full jitter). */
  readonly backoff?: BackoffOptions;
  /**
   * Deadline for the API server's answer: the headers of a watch or of a list page (default
   * 2 s, never more than requestTimeoutMs). A healthy API server answers at once; one that
   * does not (hung, partitioned, overloaded) is asked again after the backoff.
   */
  readonly answerTimeoutMs?: number;
  /** Deadline for each whole list page, headers and body (default 30 s). */
  readonly requestTimeoutMs?: number;
  /**
   * A watch silent this long (no event, no bookmark) is restarted (default 5 min; API
   * servers send a bookmark about every minute). undici's own body timeout, also 5 min,
   * caps it: a larger value ends the same way, reported as undici's error.
   */
  readonly watchIdleTimeoutMs?: number;
  /** `timeoutSeconds` asked of the server per watch (default random in [300, 600), as client-go). */
  readonly watchTimeoutSeconds?: number;
  /** `limit` per list page (default 500). */
  readonly listPageSize?: number;
}

/** Which objects of a kind a cache holds: one namespace, or every namespace. */
export interface CacheScope {
  readonly namespace?: string | undefined;
}

/** What a cache has been through, for status pages and metrics. */
export interface ObjectCacheStatus {
  /** A list has succeeded: the cache holds what the API server holds (as of then). */
  readonly synced: boolean;
  /** A watch request is open right now (connecting or streaming). */
  readonly watching: boolean;
  /** When the cache was last confirmed by the API server (list or watch event), ms since epoch. */
  readonly lastSyncAt: number | undefined;
  /** Lists completed, the first included (more than one: relists after 410 Gone). */
  readonly lists: number;
  /** Times the list/watch cycle started again after a watch ended, broke or expired. */
  readonly restarts: number;
  readonly lastError: { readonly message: string; readonly at: number } | undefined;
  /** Objects held. */
  readonly objects: number;
}

/**
 * One change as readers see it. `RELISTED`: the cache was (re)filled from a list (the first
 * sync included); read what you need with `list()` / `get()`. `previous`: the object as it
 * was before a MODIFIED or DELETED.
 */
export type ObjectChange<T> =
  | { readonly type: 'ADDED' | 'MODIFIED' | 'DELETED'; readonly object: T; readonly previous?: T | undefined }
  | { readonly type: 'RELISTED'; readonly object?: undefined; readonly previous?: undefined };

/** The changes a listener wants: of one namespace, and/or of objects carrying one label value. */
export interface ChangeFilter {
  readonly namespace?: string;
  /**
   * Objects whose label `key` is `value`. An object whose label moves away from `value` is
   * reported DELETED to this listener, one whose label moves to it ADDED.
   */
  readonly label?: { readonly key: string; readonly value: string };
}

export interface ObjectCache<T extends KubeObject> {
  readonly kind: ResourceKind;
  readonly scope: CacheScope;
  /** The first list is done. */
  synced(): boolean;
  get(namespace: string, name: string): T | undefined;
  /** The objects held, of one namespace and/or one label value (by index, not by scan). */
  list(namespace?: string, label?: { readonly key: string; readonly value: string }): readonly T[];
  /** Calls `listener` after each change (the cache already shows it); returns the unsubscribe. */
  onChange(listener: (change: ObjectChange<T>) => void, filter?: ChangeFilter): () => void;
  status(): ObjectCacheStatus;
}

/** A watch that ends sooner, without an event, counts as a failure (client-go's rule too). */
const SHORT_WATCH_MS = 1000;

type Listener<T> = (change: ObjectChange<T>) => void;

export class Informer<T extends KubeObject> implements ObjectCache<T> {
  private readonly name: string;
  private readonly options: Required<Omit<ObjectCacheOptions, 'kubeConfig' | 'backoff'>>;
  private readonly backoff: Backoff;
  private kubeConfig: KubeConfig | undefined;

  /** `<namespace>/<name>` -> object. */
  private readonly objects = new Map<string, T>();
  private resourceVersion: string | undefined;
  /** Label key -> `<namespace>\0<value>` -> name -> object; built for keys someone asked about. */
  private readonly labelIndexes = new Map<string, Map<string, Map<string, T>>>();
  /** Route (see routeKey) -> listeners; `''` is every change. */
  private readonly routes = new Map<string, Set<Listener<T>>>();
  /** Label keys some listener filters on, with the number of such listeners. */
  private readonly routedLabels = new Map<string, number>();

  private readonly lifetime = new AbortController();
  private wakeUp: (() => void) | undefined;
  private sleepTimer: NodeJS.Timeout | undefined;
  private state = {
    synced: false,
    watching: false,
    lastSyncAt: undefined as number | undefined,
    lists: 0,
    restarts: 0,
    lastError: undefined as ObjectCacheStatus['lastError'],
  };

  constructor(
    readonly kind: ResourceKind,
    readonly scope: CacheScope,
    options: ObjectCacheOptions = {},
  ) {
    this.name = `${describeKind(kind)} in ${scope.namespace === undefined ? 'all namespaces' : `namespace ${scope.namespace}`}`;
    this.kubeConfig = options.kubeConfig;
    this.backoff = new Backoff(options.backoff);
    const requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    this.options = {
      requestTimeoutMs,
      answerTimeoutMs: Math.min(options.answerTimeoutMs ?? 2_000, requestTimeoutMs),
      watchIdleTimeoutMs: options.watchIdleTimeoutMs ?? 300_000,
      watchTimeoutSeconds: options.watchTimeoutSeconds ?? 300 + Math.floor(Math.random() * 300),
      listPageSize: options.listPageSize ?? 500,
    };
    this.run().catch((err: unknown) => log.error({ resource: this.name, err: message(err) }, 'list/watch loop stopped'));
  }

  synced(): boolean {
    return this.state.synced;
  }

  get(namespace: string, name: string): T | undefined {
    return this.objects.get(`${namespace}/${name}`);
  }

  list(namespace?: string, label?: { readonly key: string; readonly value: string }): readonly T[] {
    if (label) {
      const index = this.labelIndex(label.key);
      if (namespace !== undefined) return [...(index.get(`${namespace}\0${label.value}`)?.values() ?? [])];
      const out: T[] = [];
      for (const [at, byName] of index) if (at.endsWith(`\0${label.value}`)) out.push(...byName.values());
      return out;
    }
    const all = [...this.objects.values()];
    return namespace === undefined ? all : all.filter((o) => o.metadata?.namespace === namespace);
  }

  onChange(listener: Listener<T>, filter: ChangeFilter = {}): () => void {
    const route = routeKey(filter.namespace, filter.label?.key, filter.label?.value);
    // A listener of its own, so that the same function can subscribe twice.
    const subscription: Listener<T> = (change) => listener(change);
    let set = this.routes.get(route);
    if (!set) this.routes.set(route, (set = new Set()));
    set.add(subscription);
    const labelKey = filter.label?.key;
    if (labelKey !== undefined) {
      this.labelIndex(labelKey);
      this.routedLabels.set(labelKey, (this.routedLabels.get(labelKey) ?? 0) + 1);
    }
    let subscribed = true;
    return () => {
      if (!subscribed) return;
      subscribed = false;
      set.delete(subscription);
      if (set.size === 0 && this.routes.get(route) === set) this.routes.delete(route);
      if (labelKey !== undefined) {
        const n = (this.routedLabels.get(labelKey) ?? 1) - 1;
        if (n > 0) this.routedLabels.set(labelKey, n);
        else this.routedLabels.delete(labelKey);
      }
    };
  }

  status(): ObjectCacheStatus {
    return { ...this.state, objects: this.objects.size };
  }

  close(): void {
    if (this.lifetime.signal.aborted) return;
    this.lifetime.abort(new Error(`list/watch of ${this.name} closed`));
    clearTimeout(this.sleepTimer);
    this.wakeUp?.();
    this.routes.clear();
    this.routedLabels.clear();
  }

  private get closed(): boolean {
    return this.lifetime.signal.aborted;
  }

  private async run(): Promise<void> {
    for (let attempt = 0; !this.closed; attempt++) {
      if (attempt > 0) this.state.restarts++;
      const started = performance.now();
      let progressed = false;
      let failure: unknown;
      let watchedFrom = Infinity;
      try {
        const kubeConfig = this.loadKubeConfig();
        if (this.resourceVersion === undefined) await this.relist(kubeConfig);
        this.state.watching = true;
        watchedFrom = performance.now();
        await watchObjects<T>(
          kubeConfig,
          this.kind,
          { namespace: this.scope.namespace },
          {
            signal: this.lifetime.signal,
            resourceVersion: this.resourceVersion ?? '',
            timeoutSeconds: this.options.watchTimeoutSeconds,
            answerTimeoutMs: this.options.answerTimeoutMs,
            idleTimeoutMs: this.options.watchIdleTimeoutMs,
          },
          (event) => {
            progressed = true;
            this.apply(event);
          },
        );
      } catch (err) {
        failure = err;
      } finally {
        this.state.watching = false;
      }
      if (this.closed) return;

      // The server works if it sent an event, or held the watch open until it ended it
      // (timeoutSeconds; a quiet namespace on a server without bookmarks sends nothing).
      const healthy = progressed || (failure === undefined && performance.now() - watchedFrom >= SHORT_WATCH_MS);
      if (healthy) this.backoff.reset();
      // The delay runs from the start of the failed attempt: one that hung for the whole
      // answer timeout has already kept its distance from the API server.
      const delay = () => Math.max(0, this.backoff.next() - (performance.now() - started));
      if (failure !== undefined && isExpired(failure)) {
        // Too old to resume from (compaction, API server restart): only a new list helps.
        this.resourceVersion = undefined;
        log.info({ resource: this.name, err: message(failure) }, 'resourceVersion expired, listing again');
        await this.sleep(delay());
      } else if (failure !== undefined) {
        const delayMs = delay();
        this.state.lastError = { message: message(failure), at: Date.now() };
        log.warn(
          { resource: this.name, err: message(failure), retryInMs: Math.round(delayMs), serving: this.servingDescription() },
          'list/watch failed',
        );
        await this.sleep(delayMs);
      } else if (!healthy) {
        // Ended at once without a single event: do not spin on a server that does that.
        await this.sleep(this.backoff.next());
      }
    }
  }

  private loadKubeConfig(): KubeConfig {
    this.kubeConfig ??= loadKubeConfig();
    return this.kubeConfig;
  }

  private async relist(kubeConfig: KubeConfig): Promise<void> {
    const list = await listObjects<T>(kubeConfig, this.kind, { namespace: this.scope.namespace }, {
      signal: this.lifetime.signal,
      answerTimeoutMs: this.options.answerTimeoutMs,
      timeoutMs: this.options.requestTimeoutMs,
      pageSize: this.options.listPageSize,
    });
    if (this.closed) return;
    this.state.lists++;
    this.objects.clear();
    for (const index of this.labelIndexes.values()) index.clear();
    for (const object of list.items) {
      this.objects.set(objectKey(object), object);
      this.indexObject(object, 1);
    }
    this.resourceVersion = list.resourceVersion;
    this.state.lastSyncAt = Date.now();
    this.state.synced = true;
    this.notifyAll({ type: 'RELISTED' });
  }

  private apply(event: WatchEvent<T>): void {
    if (this.closed) return;
    const resourceVersion = event.object.metadata?.resourceVersion;
    if (resourceVersion) this.resourceVersion = resourceVersion;
    this.state.lastSyncAt = Date.now();
    if (event.type === 'BOOKMARK') return;
    const object = event.object;
    const key = objectKey(object);
    const previous = this.objects.get(key);
    if (previous) this.indexObject(previous, -1);
    if (event.type === 'DELETED') this.objects.delete(key);
    else {
      this.objects.set(key, object);
      this.indexObject(object, 1);
    }
    // A watch replaying history may send ADDED for an object held (and DELETED for one not).
    const type = event.type === 'DELETED' ? 'DELETED' : previous ? 'MODIFIED' : 'ADDED';
    this.notify(type, object, previous);
  }

  /** Tells the listeners of every route the change concerns. */
  private notify(type: 'ADDED' | 'MODIFIED' | 'DELETED', object: T, previous: T | undefined): void {
    const namespace = object.metadata?.namespace ?? '';
    const change: ObjectChange<T> = { type, object, previous };
    this.call(this.routes.get(''), change);
    this.call(this.routes.get(routeKey(namespace)), change);
    for (const key of this.routedLabels.keys()) {
      const before = previous?.metadata?.labels?.[key];
      const after = type === 'DELETED' ? undefined : object.metadata?.labels?.[key];
      if (before !== undefined && before === after) {
        this.call(this.routes.get(routeKey(namespace, key, after)), change);
        this.call(this.routes.get(routeKey(undefined, key, after)), change);
        continue;
      }
      if (before !== undefined) {
        const gone: ObjectChange<T> = { type: 'DELETED', object: type === 'DELETED' ? object : previous!, previous };
        this.call(this.routes.get(routeKey(namespace, key, before)), gone);
        this.call(this.routes.get(routeKey(undefined, key, before)), gone);
      }
      if (after !== undefined) {
        const came: ObjectChange<T> = { type: 'ADDED', object };
        this.call(this.routes.get(routeKey(namespace, key, after)), came);
        this.call(this.routes.get(routeKey(undefined, key, after)), came);
      }
    }
  }

  private notifyAll(change: ObjectChange<T>): void {
    for (const set of [...this.routes.values()]) this.call(set, change);
  }

  private call(listeners: Set<Listener<T>> | undefined, change: ObjectChange<T>): void {
    if (!listeners) return;
    for (const listener of [...listeners]) {
      try {
        listener(change);
      } catch (err) {
        log.error({ resource: this.name, err: message(err) }, 'object cache listener failed');
      }
    }
  }

  /** The index of label `key`, built on first use and kept current from then on. */
  private labelIndex(key: string): Map<string, Map<string, T>> {
    let index = this.labelIndexes.get(key);
    if (!index) {
      index = new Map();
      this.labelIndexes.set(key, index);
      for (const object of this.objects.values()) addToIndex(index, key, object);
    }
    return index;
  }

  private indexObject(object: T, delta: 1 | -1): void {
    for (const [key, index] of this.labelIndexes) {
      if (delta > 0) addToIndex(index, key, object);
      else removeFromIndex(index, key, object);
    }
  }

  private servingDescription(): string {
    return this.state.synced ? `last known ${this.objects.size} objects` : 'nothing yet (not synced)';
  }

  /** Waits `ms`, or less if the cache is closed meanwhile; leaves no timer behind. */
  private sleep(ms: number): Promise<void> {
    if (this.closed || ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.wakeUp = () => {
        this.wakeUp = undefined;
        resolve();
      };
      this.sleepTimer = setTimeout(this.wakeUp, ms);
    });
  }
}

function routeKey(namespace?: string, labelKey?: string, labelValue?: string): string {
  if (namespace === undefined && labelKey === undefined) return '';
  return `${namespace ?? '*'}\0${labelKey ?? ''}\0${labelValue ?? ''}`;
}

function objectKey(object: KubeObject): string {
  return `${object.metadata?.namespace ?? ''}/${object.metadata?.name ?? ''}`;
}

function addToIndex<T extends KubeObject>(index: Map<string, Map<string, T>>, key: string, object: T): void {
  const value = object.metadata?.labels?.[key];
  if (value === undefined) return;
  const at = `${object.metadata?.namespace ?? ''}\0${value}`;
  let byName = index.get(at);
  if (!byName) index.set(at, (byName = new Map()));
  byName.set(object.metadata?.name ?? '', object);
}

function removeFromIndex<T extends KubeObject>(index: Map<string, Map<string, T>>, key: string, object: T): void {
  const value = object.metadata?.labels?.[key];
  if (value === undefined) return;
  const at = `${object.metadata?.namespace ?? ''}\0${value}`;
  const byName = index.get(at);
  byName?.delete(object.metadata?.name ?? '');
  if (byName?.size === 0) index.delete(at);
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// --- the process-wide caches ---------------------------------------------------------------

let warnedScope = '';

/**
 * Where the objects of one namespace are listed and watched. `namespace` (the default): one
 * list-and-watch per kind and namespace, which namespaced RBAC allows. `cluster`
 * (STICKY_SESSION_WATCH_SCOPE): one per kind for every namespace, so a Kong pod holds a few
 * watches however many namespaces it serves, and receives every namespace's changes of that
 * kind (needs the ClusterRole).
 */
export function scopeFor(namespace: string, env: NodeJS.ProcessEnv = process.env): CacheScope {
  const scope = env.STICKY_SESSION_WATCH_SCOPE?.trim() || 'namespace';
  if (scope === 'cluster') return {};
  if (scope !== 'namespace' && scope !== warnedScope) {
    warnedScope = scope;
    log.warn({ STICKY_SESSION_WATCH_SCOPE: scope }, 'STICKY_SESSION_WATCH_SCOPE is neither namespace nor cluster: watching per namespace');
  }
  return { namespace };
}

const caches = new SharedRegistry<Informer<KubeObject>>((cache) => cache.close());

/**
 * The process-wide cache of `kind` in `scope`: the first holder starts its list-and-watch,
 * the last `release()` stops it. `options` only count for the holder that creates it.
 * Holders with different credentials (another kubeconfig cluster or user) get their own.
 */
export function acquireObjectCache<T extends KubeObject>(
  kind: ResourceKind,
  scope: CacheScope = {},
  options: ObjectCacheOptions = {},
): Lease<ObjectCache<T>> {
  const key = objectCacheKey(kind, scope, options.kubeConfig);
  return caches.acquire(key, () => new Informer<KubeObject>(kind, scope, options)) as unknown as Lease<ObjectCache<T>>;
}

/** The caches held right now (`<kind>@<namespace or *>#<credentials>`), for status and leak tests. */
export function objectCacheKeys(): string[] {
  return caches.keys();
}

function objectCacheKey(kind: ResourceKind, scope: CacheScope, kubeConfig: KubeConfig | undefined): string {
  return `${describeKind(kind)}/${kind.version}@${scope.namespace ?? '*'}#${credentialsKey(kubeConfig)}`;
}

/** Which API server and identity a kubeconfig reaches, as a short digest (no secret in keys). */
function credentialsKey(kubeConfig: KubeConfig | undefined): string {
  if (!kubeConfig) return 'default';
  const identity = JSON.stringify([kubeConfig.getCurrentCluster(), kubeConfig.getCurrentUser()]);
  return createHash('sha256').update(identity).digest('hex').slice(0, 12);
}
