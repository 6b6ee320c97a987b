/**
 * The endpoint view of one Kubernetes Service, kept current from its EndpointSlices.
 *
 * A list-then-watch loop (client-go's reflector, in small): list, watch from the list's
 * resourceVersion, resume from the last resourceVersion seen when a watch ends or breaks,
 * list again only when the server says 410 Gone. Failures (and watches that end at once)
 * wait a capped, jittered backoff, which a working watch resets; all the while the last
 * view keeps being served. `close()` aborts whatever is in flight.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { log } from '../../log.js';
import { loadKubeConfig } from './kubeconfig.js';
import { makeSnapshot, type Endpoint, type EndpointSnapshot, type EndpointSource } from '../types.js';
import {
  isExpired,
  listEndpointSlices,
  watchEndpointSlices,
  type EndpointSliceObject,
  type SliceSelector,
  type WatchEvent,
} from './api.js';
import { Backoff, type BackoffOptions } from './backoff.js';
import { canonicalServiceRef, describeServiceRef, serviceRefKey, type ServiceRef } from './service-ref.js';
import { sameEndpoints, SliceEndpoints } from './slices.js';

export interface EndpointSliceWatcherOptions {
  /** Credentials and API server; default `KubeConfig.loadFromDefault()` (KUBECONFIG, ~/.kube/config or in-cluster). */
  readonly kubeConfig?: KubeConfig;
  /** Delays between failed attempts (default 250 ms doubling to 30 s, full jitter). */
  readonly backoff?: BackoffOptions;
  /** Deadline for the headers of any request and for each whole list page (default 30 s). */
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

/** What the watcher has been through, for status pages and metrics. */
export interface EndpointSliceWatcherStatus {
  /** A list has succeeded: `current()` is defined from now on. */
  readonly synced: boolean;
  /** A watch request is open right now (connecting or streaming). */
  readonly watching: boolean;
  /** When the view was last confirmed by the API server (list or watch event), ms since epoch. */
  readonly lastSyncAt: number | undefined;
  /** Lists completed, the first included (more than one: relists after 410 Gone). */
  readonly lists: number;
  /** Times the list/watch cycle started again after a watch ended, broke or expired. */
  readonly restarts: number;
  readonly lastError: { readonly message: string; readonly at: number } | undefined;
  /** Time the last watch event took to reach the view (ms; event decoded to snapshot published). */
  readonly lastApplyMs: number | undefined;
  /** Time the last list took to become the view, once received (ms). */
  readonly lastRelistMs: number | undefined;
}

/** A watch that ends sooner, without an event, counts as a failure (client-go's rule too). */
const SHORT_WATCH_MS = 1000;

export class EndpointSliceWatcher implements EndpointSource {
  readonly key: string;
  /** What is watched, port in canonical form (`"80"` -> 80). */
  readonly ref: ServiceRef;
  private readonly name: string;
  private readonly selector: SliceSelector;
  private readonly options: Required<Omit<EndpointSliceWatcherOptions, 'kubeConfig' | 'backoff'>>;
  private readonly backoff: Backoff;
  private kubeConfig: KubeConfig | undefined;

  /** The slices held, mapped for the watched port; a watch event re-maps only its slice. */
  private readonly slices: SliceEndpoints;
  private resourceVersion: string | undefined;
  private endpoints: readonly Endpoint[] = [];
  private snapshot: EndpointSnapshot | undefined;
  private missingPort = '';
  private readonly listeners = new Set<(snapshot: EndpointSnapshot) => void>();

  private readonly lifetime = new AbortController();
  private wakeUp: (() => void) | undefined;
  private sleepTimer: NodeJS.Timeout | undefined;
  private state = {
    watching: false,
    lastSyncAt: undefined as number | undefined,
    lists: 0,
    restarts: 0,
    lastError: undefined as EndpointSliceWatcherStatus['lastError'],
    lastApplyMs: undefined as number | undefined,
    lastRelistMs: undefined as number | undefined,
  };

  constructor(ref: ServiceRef, options: EndpointSliceWatcherOptions = {}) {
    this.ref = canonicalServiceRef(ref);
    this.key = serviceRefKey(ref);
    this.name = describeServiceRef(ref);
    this.selector = { namespace: ref.namespace, labelSelector: `kubernetes.io/service-name=${ref.service}` };
    this.slices = new SliceEndpoints(this.ref.port);
    this.kubeConfig = options.kubeConfig;
    this.backoff = new Backoff(options.backoff);
    this.options = {
      requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
      watchIdleTimeoutMs: options.watchIdleTimeoutMs ?? 300_000,
      watchTimeoutSeconds: options.watchTimeoutSeconds ?? 300 + Math.floor(Math.random() * 300),
      listPageSize: options.listPageSize ?? 500,
    };
    this.run().catch((err: unknown) => log.error({ service: this.name, err: message(err) }, 'EndpointSlice watcher stopped'));
  }

  current(): EndpointSnapshot | undefined {
    return this.snapshot;
  }

  onChange(listener: (snapshot: EndpointSnapshot) => void): () => void {
    const subscription = (snapshot: EndpointSnapshot) => listener(snapshot);
    this.listeners.add(subscription);
    return () => this.listeners.delete(subscription);
  }

  status(): EndpointSliceWatcherStatus {
    return { synced: this.snapshot !== undefined, ...this.state };
  }

  close(): void {
    if (this.lifetime.signal.aborted) return;
    this.lifetime.abort(new Error(`watcher for ${this.name} closed`));
    clearTimeout(this.sleepTimer);
    this.wakeUp?.();
    this.listeners.clear();
  }

  private get closed(): boolean {
    return this.lifetime.signal.aborted;
  }

  private async run(): Promise<void> {
    for (let attempt = 0; !this.closed; attempt++) {
      if (attempt > 0) this.state.restarts++;
      let progressed = false;
      let failure: unknown;
      let watchedFrom = Infinity;
      try {
        const kubeConfig = this.loadKubeConfig();
        if (this.resourceVersion === undefined) await this.relist(kubeConfig);
        this.state.watching = true;
        watchedFrom = performance.now();
        await watchEndpointSlices(
          kubeConfig,
          this.selector,
          {
            signal: this.lifetime.signal,
            resourceVersion: this.resourceVersion ?? '',
            timeoutSeconds: this.options.watchTimeoutSeconds,
            connectTimeoutMs: this.options.requestTimeoutMs,
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
      // (timeoutSeconds; a quiet Service on a server without bookmarks sends nothing).
      const healthy = progressed || (failure === undefined && performance.now() - watchedFrom >= SHORT_WATCH_MS);
      if (healthy) this.backoff.reset();
      if (failure !== undefined && isExpired(failure)) {
        // Too old to resume from (compaction, API server restart): only a new list helps.
        this.resourceVersion = undefined;
        log.info({ service: this.name, err: message(failure) }, 'EndpointSlice resourceVersion expired, listing again');
        await this.sleep(this.backoff.next());
      } else if (failure !== undefined) {
        const delayMs = this.backoff.next();
        this.state.lastError = { message: message(failure), at: Date.now() };
        log.warn(
          { service: this.name, err: message(failure), retryInMs: delayMs, serving: this.servingDescription() },
          'EndpointSlice list/watch failed',
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
    const list = await listEndpointSlices(kubeConfig, this.selector, {
      signal: this.lifetime.signal,
      timeoutMs: this.options.requestTimeoutMs,
      pageSize: this.options.listPageSize,
    });
    if (this.closed) return;
    this.state.lists++;
    const started = performance.now();
    this.slices.clear();
    for (const slice of list.items) this.slices.set(slice);
    this.resourceVersion = list.resourceVersion;
    this.state.lastSyncAt = Date.now();
    this.publish();
    this.state.lastRelistMs = performance.now() - started;
  }

  private apply(event: WatchEvent): void {
    if (this.closed) return;
    const started = performance.now();
    const resourceVersion = event.object.metadata?.resourceVersion;
    if (resourceVersion) this.resourceVersion = resourceVersion;
    this.state.lastSyncAt = Date.now();
    switch (event.type) {
      case 'ADDED':
      case 'MODIFIED':
        this.slices.set(event.object);
        break;
      case 'DELETED':
        this.slices.delete(sliceName(event.object));
        break;
      case 'BOOKMARK':
        return;
    }
    this.publish();
    this.state.lastApplyMs = performance.now() - started;
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
    for (const listener of [...this.listeners]) {
      try {
        listener(snapshot);
      } catch (err) {
        log.error({ service: this.name, err: message(err) }, 'endpoint view listener failed');
      }
    }
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

  private servingDescription(): string {
    return this.snapshot
      ? `last view v${this.snapshot.version} (${this.snapshot.ready.length} ready, ${this.snapshot.draining.length} draining)`
      : 'nothing yet (not synced)';
  }

  /** Waits `ms`, or less if the watcher is closed meanwhile; leaves no timer behind. */
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

function sliceName(slice: EndpointSliceObject): string {
  return slice.metadata?.name ?? '';
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
