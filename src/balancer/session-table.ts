import { LRUCache } from 'lru-cache';

/**
 * Active sessions per endpoint, as seen by this process: a session counts while it has
 * been seen within `ttlMs`. Bounded by `max` (least recently seen sessions drop out; 50,000
 * per service by default), so
 * memory stays flat however many clients come; counts are then approximate, which is all
 * a balancer needs. Process-local: replicas do not share it, and need not.
 */
export interface SessionTableOptions {
  readonly max?: number;
  readonly ttlMs?: number;
  /** Clock for tests (milliseconds). */
  readonly now?: () => number;
}

export class SessionTable {
  private readonly sessions: LRUCache<string, string>;
  private readonly perEndpoint = new Map<string, number>();
  private nextPurge = 0;
  private readonly clock: () => number;
  private readonly purgeEveryMs: number;
  /** Told of every change of an endpoint's session count (least-sessions keeps its buckets by it). */
  onCountChange: ((endpointId: string, count: number) => void) | undefined;

  constructor(opts: SessionTableOptions = {}) {
    this.clock = opts.now ?? performance.now.bind(performance);
    const ttl = opts.ttlMs ?? 30 * 60_000;
    this.purgeEveryMs = Math.max(1_000, ttl / 10);
    this.sessions = new LRUCache<string, string>({
      // maxSize, not max: with max, lru-cache allocates its arrays for every entry at once
      // (~2 MB at 50,000, per service), however few sessions the service has.
      maxSize: opts.max ?? 50_000,
      sizeCalculation: () => 1,
      ttl,
      updateAgeOnGet: true,
      // Read the clock on every call (the default caches it for 1 ms), and never report 0:
      // lru-cache takes a start time of 0 for "no TTL".
      ttlResolution: 0,
      perf: { now: () => this.clock() + 1 },
      dispose: (endpointId, _sid, reason) => {
        if (reason !== 'set') this.decrement(endpointId);
      },
    });
  }

  /** A session was assigned to, or seen on, an endpoint. */
  observe(sid: string, endpointId: string): void {
    const current = this.sessions.get(sid);
    if (current === endpointId) return;
    if (current !== undefined) this.decrement(current);
    this.sessions.set(sid, endpointId);
    const n = (this.perEndpoint.get(endpointId) ?? 0) + 1;
    this.perEndpoint.set(endpointId, n);
    this.onCountChange?.(endpointId, n);
  }

  count(endpointId: string): number {
    this.purgeSometimes();
    return this.perEndpoint.get(endpointId) ?? 0;
  }

  counts(): ReadonlyMap<string, number> {
    this.purgeSometimes();
    return this.perEndpoint;
  }

  get size(): number {
    return this.sessions.size;
  }

  // Expired sessions are dropped lazily by lru-cache; sweep now and then so counts of
  // endpoints that nobody asks about any more go down too.
  private purgeSometimes(): void {
    const now = this.clock();
    if (now < this.nextPurge) return;
    this.nextPurge = now + this.purgeEveryMs;
    this.sessions.purgeStale();
  }

  private decrement(endpointId: string): void {
    const n = (this.perEndpoint.get(endpointId) ?? 0) - 1;
    if (n > 0) this.perEndpoint.set(endpointId, n);
    else this.perEndpoint.delete(endpointId);
    this.onCountChange?.(endpointId, Math.max(n, 0));
  }
}
