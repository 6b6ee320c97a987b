import type { Endpoint } from '../endpoints/types.js';
import type { RandomInt } from './strategy.js';

interface Slot {
  readonly endpoint: Endpoint;
  count: number;
  /** Position in buckets[count]. */
  at: number;
}

/**
 * One candidate list bucketed by session count, so that a least-loaded candidate is found
 * without looking at the others: least-sessions over 5,000 endpoints costs what it costs
 * over 3. Kept current by the session table's count changes (`set`), rebuilt when the
 * candidate list changes. Equal weights only: a count is then the load.
 */
export class LoadBuckets {
  private readonly slots = new Map<string, Slot>();
  /** buckets[n]: the candidates with n sessions, in no order. */
  private readonly buckets: Slot[][] = [];
  /** No bucket below it holds a candidate. */
  private min = Infinity;

  constructor(
    readonly candidates: readonly Endpoint[],
    counts: ReadonlyMap<string, number>,
  ) {
    for (const endpoint of candidates) {
      if (this.slots.has(endpoint.id)) continue;
      const slot: Slot = { endpoint, count: counts.get(endpoint.id) ?? 0, at: 0 };
      this.slots.set(endpoint.id, slot);
      this.add(slot);
    }
  }

  /** The session count of `endpointId` is now `count` (ignored unless it is a candidate). */
  set(endpointId: string, count: number): void {
    const slot = this.slots.get(endpointId);
    if (!slot || slot.count === count) return;
    this.remove(slot);
    slot.count = count;
    this.add(slot);
  }

  /** A candidate with the fewest sessions; ties broken at random. */
  least(random: RandomInt): Endpoint {
    if (this.slots.size === 0) throw new Error('least-sessions: no candidates');
    let bucket = this.buckets[this.min];
    while (!bucket?.length) {
      // Every slot is in a bucket: this ends. (Past the last bucket would be a bug: start over.)
      if (++this.min >= this.buckets.length) this.min = 0;
      bucket = this.buckets[this.min];
    }
    return bucket[bucket.length === 1 ? 0 : random(bucket.length)]!.endpoint;
  }

  private add(slot: Slot): void {
    const bucket = (this.buckets[slot.count] ??= []);
    slot.at = bucket.length;
    bucket.push(slot);
    if (slot.count < this.min) this.min = slot.count;
  }

  private remove(slot: Slot): void {
    const bucket = this.buckets[slot.count]!;
    const last = bucket.pop()!;
    if (last !== slot) {
      bucket[slot.at] = last;
      last.at = slot.at;
    }
  }
}
