/**
 * The endpoint view: what the decision core knows about the backends of one service.
 *
 * Sources (static targets, the Kubernetes EndpointSlice watcher) publish immutable
 * snapshots; the core only ever reads the latest one. A snapshot is replaced, never
 * mutated, so a decision sees one consistent set.
 */

/**
 * `ready`: takes new sessions. `draining`: terminating but still serving; it keeps the
 * sessions it has and takes no new ones. An endpoint that serves nothing is not in the view.
 */
export type EndpointCondition = 'ready' | 'draining';

export interface Endpoint {
  /** Stable identity: the pod uid for Kubernetes, the target's name for static targets. */
  readonly id: string;
  /** Human name for logs and status (pod name, or the target as configured). */
  readonly name: string;
  /** Address Kong connects to (IP or hostname) and port. */
  readonly host: string;
  readonly port: number;
  readonly condition: EndpointCondition;
  /** Relative weight for weighted strategies; 1 unless a static target says otherwise. */
  readonly weight: number;
}

export interface EndpointSnapshot {
  /** Increases with every change the source publishes; lets caches key on it. */
  readonly version: number;
  readonly byId: ReadonlyMap<string, Endpoint>;
  /** Endpoints that take new sessions, in the source's order (deterministic for the same input). */
  readonly ready: readonly Endpoint[];
  /** Serving, terminating endpoints, in the source's order. */
  readonly draining: readonly Endpoint[];
}

/**
 * Builds a snapshot; later duplicates of an id are ignored. Order is kept as given: sources
 * give a deterministic one, so replicas with the same input list endpoints alike.
 */
export function makeSnapshot(version: number, endpoints: Iterable<Endpoint>): EndpointSnapshot {
  const byId = new Map<string, Endpoint>();
  const ready: Endpoint[] = [];
  const draining: Endpoint[] = [];
  for (const e of endpoints) {
    if (byId.has(e.id)) continue;
    byId.set(e.id, e);
    (e.condition === 'ready' ? ready : draining).push(e);
  }
  return { version, byId, ready, draining };
}

/**
 * A source of endpoint snapshots for one service. `current()` is undefined until the
 * source has synced once (the contract then fails open to Kong's own balancer).
 */
export interface EndpointSource {
  /** Identifies what the source watches, e.g. `k8s:shop/cart:http` or `static:<hash>`. */
  readonly key: string;
  current(): EndpointSnapshot | undefined;
  /** Called once per subscriber when the view changes (after the snapshot is replaced). */
  onChange(listener: (snapshot: EndpointSnapshot) => void): () => void;
  /** Releases watches and timers. Idempotent. */
  close(): void;
  /** How the source is doing, for status pages and metrics; sources that never change need none. */
  status?(): SourceStatus;
}

/** What a source that syncs from elsewhere (the Kubernetes watcher) reports about itself. */
export interface SourceStatus {
  /** `current()` is defined. */
  readonly synced: boolean;
  /** When the view was last confirmed by its origin, ms since the epoch. */
  readonly lastSyncAt: number | undefined;
  /** Times the source had to start its sync again (watch ended, broke or expired). */
  readonly restarts: number;
  readonly lastError?: { readonly message: string; readonly at: number } | undefined;
}
