import type { Endpoint } from '../endpoints/types.js';
import type { SessionTable } from './session-table.js';
import { mathRandomInt, type RandomInt, type Strategy } from './strategy.js';

/**
 * Fewest active sessions per unit of weight. After a scale-out the new pods have no
 * sessions, so they take new sessions until they catch up: existing sessions never move.
 * Costs one pass over the candidates per new session. Ties go to a random one among the
 * tied, so a burst of new sessions does not pile onto the first endpoint in the list.
 */
export class LeastSessions implements Strategy {
  readonly name = 'least-sessions';

  constructor(private readonly random: RandomInt = mathRandomInt) {}

  pick(candidates: readonly Endpoint[], sessions: SessionTable): Endpoint {
    const counts = sessions.counts(); // once per pick, not per candidate: 5,000 endpoints are common
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
