import type { Endpoint } from '../endpoints/types.js';
import { LoadBuckets } from './load-buckets.js';
import type { SessionTable } from './session-table.js';
import { mathRandomInt, type RandomInt, type Strategy } from './strategy.js';

/** Below this many candidates a pass over them is as cheap as keeping buckets. */
const BUCKETS_FROM = 64;

/**
 * Fewest active sessions per unit of weight. After a scale-out the new pods have no
 * sessions, so they take new sessions until they catch up: existing sessions never move.
 * Ties go to a random one among the tied, so a burst of new sessions does not pile onto
 * the first endpoint in the list.
 *
 * A view's ready list is the same array until the view changes: from its second pick on,
 * a large list of equal weights is kept in buckets by session count (LoadBuckets), and a
 * pick costs the same at 5,000 endpoints as at 3. Other lists get one pass per pick.
 */
export class LeastSessions implements Strategy {
  readonly name = 'least-sessions';
  /** The list of the previous pick. */
  private previous: readonly Endpoint[] | undefined;
  /** The list (and table) whose way of picking is settled: its buckets, or none (a pass). */
  private decided: readonly Endpoint[] | undefined;
  private decidedTable: SessionTable | undefined;
  private buckets: LoadBuckets | undefined;

  constructor(private readonly random: RandomInt = mathRandomInt) {}

  pick(candidates: readonly Endpoint[], sessions: SessionTable): Endpoint {
    const counts = sessions.counts(); // also drops expired sessions, which the buckets hear of
    const buckets = this.bucketsFor(candidates, sessions, counts);
    return buckets ? buckets.least(this.random) : this.scan(candidates, counts);
  }

  private bucketsFor(candidates: readonly Endpoint[], sessions: SessionTable, counts: ReadonlyMap<string, number>): LoadBuckets | undefined {
    if (candidates === this.decided && sessions === this.decidedTable) return this.buckets;
    const again = candidates === this.previous;
    this.previous = candidates;
    if (!again) return undefined;
    this.decided = candidates;
    this.decidedTable = sessions;
    const buckets = candidates.length >= BUCKETS_FROM && equalWeights(candidates) ? new LoadBuckets(candidates, counts) : undefined;
    this.buckets = buckets;
    sessions.onCountChange = buckets && ((endpointId, count) => buckets.set(endpointId, count));
    return buckets;
  }

  private scan(candidates: readonly Endpoint[], counts: ReadonlyMap<string, number>): Endpoint {
    let best: Endpoint[] = [];
    let bestLoad = Infinity;
    for (const e of candidates) {
      const load = (counts.get(e.id) ?? 0) / e.weight;
      if (load < bestLoad) {
        bestLoad = load;
        best = [e];
      } else if (load === bestLoad) {
        best.push(e);
      }
    }
    return best[best.length === 1 ? 0 : this.random(best.length)] as Endpoint;
  }
}

function equalWeights(endpoints: readonly Endpoint[]): boolean {
  const w = endpoints[0]?.weight;
  return endpoints.every((e) => e.weight === w);
}
