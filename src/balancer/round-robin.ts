import type { Endpoint } from '../endpoints/types.js';
import type { Strategy } from './strategy.js';

/**
 * Smooth weighted round robin (nginx's algorithm): new sessions are spread in proportion
 * to the weights, evenly interleaved. Blind to how many sessions each endpoint already
 * has, so after a scale-out new pods only get their share of *new* sessions.
 */
export class RoundRobin implements Strategy {
  readonly name = 'round-robin';
  private current = new Map<string, number>();

  pick(candidates: readonly Endpoint[]): Endpoint {
    let total = 0;
    let best: Endpoint | undefined;
    let bestCurrent = -Infinity;
    const next = new Map<string, number>();
    for (const e of candidates) {
      const cw = (this.current.get(e.id) ?? 0) + e.weight;
      next.set(e.id, cw);
      total += e.weight;
      if (cw > bestCurrent) {
        bestCurrent = cw;
        best = e;
      }
    }
    const chosen = best as Endpoint;
    next.set(chosen.id, bestCurrent - total);
    // Endpoints that left the candidate set are forgotten with the old map.
    this.current = next;
    return chosen;
  }
}
