/**
 * The endpoint view of one Kubernetes Service, kept current from its EndpointSlices.
 *
 * The slices come from the process-wide EndpointSlice cache of the Service's namespace
 * (informer.ts): one list-and-watch per namespace, however many Services are watched in it.
 * This view subscribes to the slices labelled `kubernetes.io/service-name=<service>` and
 * re-maps only the slice a change carries; a relist (first sync, 410 Gone) rebuilds it.
 * While the API server is away, the cache keeps its objects and this view its snapshot.
 */
import { log } from '../../log.js';
import type { Lease } from '../../shared.js';
import { ViewListeners } from '../view-listeners.js';
import { makeSnapshot, type Endpoint, type EndpointSnapshot, type EndpointSource } from '../types.js';
import type { KubeObject } from './api.js';
import { acquireObjectCache, ENDPOINT_SLICES, scopeFor, type ObjectCache, type ObjectCacheOptions, type ObjectCacheStatus, type ObjectChange } from './informer.js';
import { canonicalServiceRef, describeServiceRef, serviceRefKey, type ServiceRef } from './service-ref.js';
import { sameEndpoints, SliceEndpoints, type EndpointSliceLike } from './slices.js';

/** An EndpointSlice as the API server sends it: with the metadata the cache keys on. */
export type EndpointSliceObject = EndpointSliceLike & KubeObject;

/** The label the EndpointSlice controller puts on every slice of a Service. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

/**
 * Options of the shared EndpointSlice cache (they count for the holder that starts it, see
 * acquireObjectCache).
 */
export type EndpointSliceWatcherOptions = ObjectCacheOptions;

/**
 * What the watcher has been through, for status pages and metrics: its namespace's shared
 * EndpointSlice cache's status, but `synced` means `current()` is defined from now on.
 */
export interface EndpointSliceWatcherStatus extends Omit<ObjectCacheStatus, 'objects'> {
  /** Time the last change of one of its slices took to reach the view (ms; event decoded to snapshot published). */
  readonly lastApplyMs: number | undefined;
  /** Time the last list took to become the view, once received (ms). */
  readonly lastRelistMs: number | undefined;
}

export class EndpointSliceWatcher implements EndpointSource {
  readonly key: string;
  /** What is watched, port in canonical form (`"80"` -> 80). */
  readonly ref: ServiceRef;
  private readonly name: string;
  private readonly lease: Lease<ObjectCache<EndpointSliceObject>>;
  private readonly cache: ObjectCache<EndpointSliceObject>;
  private readonly unsubscribe: () => void;
  private closed = false;

  /** The slices held, mapped for the watched port; a change re-maps only its slice. */
  private readonly slices: SliceEndpoints;
  private endpoints: readonly Endpoint[] = [];
  private snapshot: EndpointSnapshot | undefined;
  private missingPort = '';
  private readonly listeners = new ViewListeners();
  private lastApplyMs: number | undefined;
  private lastRelistMs: number | undefined;

  constructor(ref: ServiceRef, options: EndpointSliceWatcherOptions = {}) {
    this.ref = canonicalServiceRef(ref);
    this.key = serviceRefKey(ref);
    this.name = describeServiceRef(ref);
    this.slices = new SliceEndpoints(this.ref.port);
    this.lease = acquireObjectCache<EndpointSliceObject>(ENDPOINT_SLICES, scopeFor(this.ref.namespace), options);
    this.cache = this.lease.value;
    const label = { key: SERVICE_NAME_LABEL, value: this.ref.service };
    this.unsubscribe = this.cache.onChange((change) => this.apply(change), { namespace: this.ref.namespace, label });
    // Another Service of the namespace may have synced the cache already.
    if (this.cache.synced()) this.rebuild();
  }

  current(): EndpointSnapshot | undefined {
    return this.snapshot;
  }

  onChange(listener: (snapshot: EndpointSnapshot) => void): () => void {
    return this.listeners.add(listener);
  }

  status(): EndpointSliceWatcherStatus {
    const cache = this.cache.status();
    return {
      synced: this.snapshot !== undefined,
      watching: cache.watching,
      lastSyncAt: cache.lastSyncAt,
      lists: cache.lists,
      restarts: cache.restarts,
      lastError: cache.lastError,
      lastApplyMs: this.lastApplyMs,
      lastRelistMs: this.lastRelistMs,
    };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    this.lease.release();
    this.listeners.clear();
  }

  private apply(change: ObjectChange<EndpointSliceObject>): void {
    if (this.closed) return;
    if (change.type === 'RELISTED') return this.rebuild();
    const started = performance.now();
    if (change.type === 'DELETED') this.slices.delete(change.object.metadata?.name ?? '');
    else this.slices.set(change.object);
    this.publish();
    this.lastApplyMs = performance.now() - started;
  }

  /** The view from the cache's slices of this Service, in full (first sync, relist). */
  private rebuild(): void {
    const started = performance.now();
    this.slices.clear();
    for (const slice of this.cache.list(this.ref.namespace, { key: SERVICE_NAME_LABEL, value: this.ref.service })) this.slices.set(slice);
    this.publish();
    this.lastRelistMs = performance.now() - started;
  }

  /** Replaces the snapshot when the endpoints changed (and at the first list). */
  private publish(): void {
    this.warnOnMissingPort();
    const { endpoints, changes } = this.slices.collect();
    if (this.snapshot && sameEndpoints(this.endpoints, endpoints)) {
      // Equal, yet maybe other objects (a pod moved between slices): then the next view is
      // built in full, so that a view and its endpoint objects always agree.
      if (endpoints.some((e, i) => e !== this.endpoints[i])) this.slices.rebase();
      return;
    }
    this.endpoints = endpoints;
    // Only what changed since the last view is applied to it (see SliceEndpoints).
    const previous = this.snapshot && changes ? { snapshot: this.snapshot, changes } : undefined;
    const snapshot = makeSnapshot((this.snapshot?.version ?? 0) + 1, endpoints, previous);
    this.snapshot = snapshot;
    log.info(
      { service: this.name, version: snapshot.version, ready: snapshot.ready.length, draining: snapshot.draining.length },
      'endpoint view changed',
    );
    this.listeners.notify(snapshot, this.name);
  }

  private warnOnMissingPort(): void {
    const missing = this.slices.missingPort().join(',');
    if (missing && missing !== this.missingPort) {
      log.warn(
        { service: this.name, slices: missing },
        'EndpointSlices without the configured port: their endpoints are left out',
      );
    }
    this.missingPort = missing;
  }
}
