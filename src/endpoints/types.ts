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
  /** The backend it belongs to in a traffic split (`<namespace>/<service>:<port>`); unset otherwise. */
  readonly backend?: string;
}

/**
 * One backend of a traffic split (a Gateway API backendRef): new sessions go to it in
 * proportion to its weight; weight 0 takes none, yet its pinned sessions stay.
 */
export interface BackendShare {
  /** `<namespace>/<service>:<port>`, as its endpoints' `backend`. */
  readonly key: string;
  readonly weight: number;
  /** Its endpoints that take new sessions, in the view's order. */
  readonly ready: readonly Endpoint[];
}

export interface EndpointSnapshot {
  /** Increases with every change the source publishes; lets caches key on it. */
  readonly version: number;
  readonly byId: ReadonlyMap<string, Endpoint>;
  /** Endpoints that take new sessions, in the source's order (deterministic for the same input). */
  readonly ready: readonly Endpoint[];
  /** Serving, terminating endpoints, in the source's order. */
  readonly draining: readonly Endpoint[];
  /**
   * Set for a traffic split: new sessions pick a backend by weight first, then one of its
   * ready endpoints. `ready` then holds every backend's, weight 0 included (for status).
   */
  readonly backends?: readonly BackendShare[];
  /**
   * Set when the snapshot was derived from another one: what differs. Lets caches keyed by
   * snapshot (the token ref index) patch themselves instead of rebuilding.
   */
  readonly delta?: SnapshotDelta;
}

export interface SnapshotDelta {
  /** `byId` of the snapshot this one was derived from. */
  readonly base: ReadonlyMap<string, Endpoint>;
  /** Ids whose endpoint was added, removed, or replaced by another object; all others are the same objects. */
  readonly changed: readonly string[];
}

/**
 * Builds a snapshot; later duplicates of an id are ignored. Order is kept as given: sources
 * give a deterministic one, so replicas with the same input list endpoints alike.
 *
 * With `previous`, the snapshot is derived from an earlier one instead: `endpoints` then
 * holds no duplicate ids and differs from `previous.snapshot`'s only by `previous.changes`
 * (id -> its endpoint now, undefined if gone). Its `byId` shares the earlier lookup table
 * and layers the changes over it, so a watch event that changes a few endpoints of
 * thousands costs no rebuild of an id map; the result is the same as without `previous`.
 */
export function makeSnapshot(
  version: number,
  endpoints: Iterable<Endpoint>,
  previous?: { readonly snapshot: EndpointSnapshot; readonly changes: ReadonlyMap<string, Endpoint | undefined> },
): EndpointSnapshot {
  if (previous) {
    const list = Array.isArray(endpoints) ? (endpoints as readonly Endpoint[]) : [...endpoints];
    const ready: Endpoint[] = [];
    const draining: Endpoint[] = [];
    for (const e of list) (e.condition === 'ready' ? ready : draining).push(e);
    const base = previous.snapshot.byId;
    const byId = EndpointIndex.derive(base, list, previous.changes);
    return { version, byId, ready, draining, delta: { base, changed: [...previous.changes.keys()] } };
  }
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
 * An immutable id -> endpoint map made of a shared table and a small layer of changes on
 * top; iterates in the snapshot's order, like the Map makeSnapshot builds. Once the layer
 * grows past a sixteenth of the endpoints (at least 64), the next derived index gets a
 * table of its own again.
 */
class EndpointIndex implements ReadonlyMap<string, Endpoint> {
  private constructor(
    private readonly list: readonly Endpoint[],
    private readonly table: ReadonlyMap<string, Endpoint>,
    /** id -> endpoint, or null: removed. */
    private readonly layer: ReadonlyMap<string, Endpoint | null>,
  ) {}

  static derive(
    base: ReadonlyMap<string, Endpoint>,
    list: readonly Endpoint[],
    changes: ReadonlyMap<string, Endpoint | undefined>,
  ): ReadonlyMap<string, Endpoint> {
    const table = base instanceof EndpointIndex ? base.table : base;
    const layer = new Map<string, Endpoint | null>(base instanceof EndpointIndex ? base.layer : undefined);
    for (const [id, e] of changes) layer.set(id, e ?? null);
    if (layer.size > Math.max(64, list.length / 16)) {
      const own = new Map<string, Endpoint>();
      for (const e of list) own.set(e.id, e);
      return own;
    }
    return new EndpointIndex(list, table, layer);
  }

  get size(): number {
    return this.list.length;
  }

  get(id: string): Endpoint | undefined {
    const e = this.layer.get(id);
    if (e !== undefined) return e ?? undefined;
    return this.table.get(id);
  }

  has(id: string): boolean {
    return this.get(id) !== undefined;
  }

  forEach(callback: (value: Endpoint, key: string, map: ReadonlyMap<string, Endpoint>) => void, thisArg?: unknown): void {
    for (const e of this.list) callback.call(thisArg, e, e.id, this);
  }

  *entries(): MapIterator<[string, Endpoint]> {
    for (const e of this.list) yield [e.id, e];
  }

  *keys(): MapIterator<string> {
    for (const e of this.list) yield e.id;
  }

  *values(): MapIterator<Endpoint> {
    yield* this.list;
  }

  [Symbol.iterator](): MapIterator<[string, Endpoint]> {
    return this.entries();
  }
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
  /** What keeps the view from being what its config asks (an HTTPRoute rule's backendRef left out, say). */
  readonly problem?: string | undefined;
}
