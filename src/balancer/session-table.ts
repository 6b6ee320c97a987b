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

/** No slot. */
const NIL = -1;

/**
 * An LRU list with one time-to-live for all entries, specialised for this table: sid ->
 * slot in a Map, the slots' endpoint, last-seen time and list links in arrays indexed by
 * slot (grown up to `max`, slots reused), so observing a session allocates nothing but the
 * Map entry of a new sid. (lru-cache did this before, at about twice the cost per call:
 * options objects, status and disposal hooks on every call.)
 * A session is stale once more than `ttlMs` passed since it was last seen: a stale one is
 * dropped when it is looked up, and by a sweep of the whole table now and then.
 */
export class SessionTable {
  private readonly slots = new Map<string, number>();
  private readonly sids: Array<string | undefined> = [];
  private readonly endpoints: Array<string | undefined> = [];
  private readonly seenAt: number[] = [];
  /** Towards the least recently seen. */
  private readonly older: number[] = [];
  /** Towards the most recently seen. */
  private readonly newer: number[] = [];
  private oldest = NIL;
  private newest = NIL;
  /** Slots given up by removed sessions, used before new ones. */
  private readonly released: number[] = [];
  private readonly perEndpoint = new Map<string, number>();
  private nextPurge = 0;
  private readonly clock: () => number;
  private readonly ttl: number;
  private readonly max: number;
  private readonly purgeEveryMs: number;

  constructor(opts: SessionTableOptions = {}) {
    this.clock = opts.now ?? performance.now.bind(performance);
    this.ttl = opts.ttlMs ?? 30 * 60_000;
    this.max = opts.max ?? 50_000;
    if (!(Number.isInteger(this.max) && this.max >= 1)) throw new TypeError(`max must be a positive integer, got ${this.max}`);
    this.purgeEveryMs = Math.max(1_000, this.ttl / 10);
  }

  /** A session was assigned to, or seen on, an endpoint. */
  observe(sid: string, endpointId: string): void {
    const now = this.clock();
    let slot = this.slots.get(sid);
    if (slot !== undefined && this.isStale(slot, now)) {
      this.remove(slot);
      slot = undefined;
    }
    if (slot !== undefined) {
      this.seenAt[slot] = now;
      this.toNewest(slot);
      const current = this.endpoints[slot]!;
      if (current === endpointId) return;
      this.decrement(current);
      this.endpoints[slot] = endpointId;
    } else {
      if (this.slots.size >= this.max) this.remove(this.oldest);
      slot = this.released.pop();
      if (slot === undefined) {
        slot = this.sids.length;
        this.sids.push(sid);
        this.endpoints.push(endpointId);
        this.seenAt.push(now);
        this.older.push(NIL);
        this.newer.push(NIL);
      } else {
        this.sids[slot] = sid;
        this.endpoints[slot] = endpointId;
        this.seenAt[slot] = now;
      }
      this.slots.set(sid, slot);
      this.link(slot);
    }
    this.perEndpoint.set(endpointId, (this.perEndpoint.get(endpointId) ?? 0) + 1);
  }

  count(endpointId: string): number {
    this.purgeSometimes();
    return this.perEndpoint.get(endpointId) ?? 0;
  }

  counts(): ReadonlyMap<string, number> {
    this.purgeSometimes();
    return this.perEndpoint;
  }

  /** Sessions held, stale ones not swept yet included. */
  get size(): number {
    return this.slots.size;
  }

  // Stale sessions are dropped lazily; sweep now and then so counts of endpoints that
  // nobody asks about any more go down too.
  private purgeSometimes(): void {
    const now = this.clock();
    if (now < this.nextPurge) return;
    this.nextPurge = now + this.purgeEveryMs;
    // The whole table (an injected clock may go backwards): a few ms for 50,000 sessions,
    // at most every tenth of the TTL.
    for (let slot = this.oldest; slot !== NIL; ) {
      const next = this.newer[slot]!;
      if (this.isStale(slot, now)) this.remove(slot);
      slot = next;
    }
  }

  /** A TTL of 0 is none (as lru-cache had it). */
  private isStale(slot: number, now: number): boolean {
    return this.ttl > 0 && now - this.seenAt[slot]! > this.ttl;
  }

  /** Drops a slot's session and its count. */
  private remove(slot: number): void {
    this.unlink(slot);
    this.slots.delete(this.sids[slot]!);
    this.decrement(this.endpoints[slot]!);
    this.sids[slot] = undefined;
    this.endpoints[slot] = undefined;
    this.released.push(slot);
  }

  /** Appends a slot as the most recently seen. */
  private link(slot: number): void {
    this.older[slot] = this.newest;
    this.newer[slot] = NIL;
    if (this.newest !== NIL) this.newer[this.newest] = slot;
    else this.oldest = slot;
    this.newest = slot;
  }

  private unlink(slot: number): void {
    const older = this.older[slot]!;
    const newer = this.newer[slot]!;
    if (older !== NIL) this.newer[older] = newer;
    else this.oldest = newer;
    if (newer !== NIL) this.older[newer] = older;
    else this.newest = older;
  }

  private toNewest(slot: number): void {
    if (slot === this.newest) return;
    this.unlink(slot);
    this.link(slot);
  }

  private decrement(endpointId: string): void {
    const n = (this.perEndpoint.get(endpointId) ?? 0) - 1;
    if (n > 0) this.perEndpoint.set(endpointId, n);
    else this.perEndpoint.delete(endpointId);
  }
}
