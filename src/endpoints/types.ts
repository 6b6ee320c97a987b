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
  /** Endpoints that take new sessions, in a stable order (sorted by id). */
  readonly ready: readonly Endpoint[];
  /** Serving, terminating endpoints, in a stable order (sorted by id). */
  readonly draining: readonly Endpoint[];
}

/** Builds a snapshot from a list of endpoints; later duplicates of an id are ignored. */
export function makeSnapshot(version: number, endpoints: Iterable<Endpoint>): EndpointSnapshot {
  const byId = new Map<string, Endpoint>();
  for (const e of endpoints) if (!byId.has(e.id)) byId.set(e.id, e);
  const sorted = [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return {
    version,
    byId,
    ready: sorted.filter((e) => e.condition === 'ready'),
    draining: sorted.filter((e) => e.condition === 'draining'),
  };
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
}
