/**
 * nginx's smooth weighted round robin: each pick adds every item's weight to its running
 * score, takes the highest and lowers it by the total. Picks are in exact proportion to the
 * weights, evenly interleaved, and deterministic. Items that leave the set are forgotten.
 */
export class SmoothWeighted {
  private current = new Map<string, number>();

  /** The next of `items` (weights > 0); undefined when there is none. */
  pick<T>(items: readonly T[], keyOf: (item: T) => string, weightOf: (item: T) => number): T | undefined {
    let total = 0;
    let best: T | undefined;
    let bestKey = '';
    let bestScore = -Infinity;
    const next = new Map<string, number>();
    for (const item of items) {
      const key = keyOf(item);
      const weight = weightOf(item);
      const score = (this.current.get(key) ?? 0) + weight;
      next.set(key, score);
      total += weight;
      if (score > bestScore) {
        bestScore = score;
        best = item;
        bestKey = key;
      }
    }
    if (best === undefined) return undefined;
    next.set(bestKey, bestScore - total);
    this.current = next;
    return best;
  }
}
