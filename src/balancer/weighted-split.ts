import type { BackendShare, Endpoint } from '../endpoints/types.js';

/**
 * The backend of a traffic split a new session goes to: smooth weighted round robin over the
 * backends with a weight and an endpoint to take it, so N new sessions split in exact
 * proportion to the weights, evenly interleaved (what KIC's upstream does per request, done
 * per session). Costs nothing to pinned sessions: only new sessions and re-pins ask.
 * A backend without a usable ready endpoint is skipped and its share goes to the others, as
 * an upstream with no target of that backend would do.
 */
export class WeightedSplit {
  private current = new Map<string, number>();

  /**
   * The chosen backend's candidates (`usable` of its ready endpoints), or undefined when no
   * backend with weight > 0 has one.
   */
  pick(backends: readonly BackendShare[], usable: (endpoints: readonly Endpoint[]) => readonly Endpoint[]): readonly Endpoint[] | undefined {
    let total = 0;
    let best: readonly Endpoint[] | undefined;
    let bestKey = '';
    let bestCurrent = -Infinity;
    const next = new Map<string, number>();
    for (const b of backends) {
      if (b.weight <= 0) continue;
      const candidates = usable(b.ready);
      if (candidates.length === 0) continue;
      const cw = (this.current.get(b.key) ?? 0) + b.weight;
      next.set(b.key, cw);
      total += b.weight;
      if (cw > bestCurrent) {
        bestCurrent = cw;
        best = candidates;
        bestKey = b.key;
      }
    }
    if (!best) return undefined;
    next.set(bestKey, bestCurrent - total);
    // Backends that left the split (or took no part this time) start again from 0.
    this.current = next;
    return best;
  }
}
