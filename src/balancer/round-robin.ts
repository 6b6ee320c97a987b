import type { Endpoint } from '../endpoints/types.js';
import { SmoothWeighted } from './smooth-weighted.js';
import type { Strategy } from './strategy.js';

/**
 * Smooth weighted round robin (nginx's algorithm): new sessions are spread in proportion
 * to the weights, evenly interleaved. Blind to how many sessions each endpoint already
 * has, so after a scale-out new pods only get their share of *new* sessions.
 */
export class RoundRobin implements Strategy {
  readonly name = 'round-robin';
  private readonly order = new SmoothWeighted();

  pick(candidates: readonly Endpoint[]): Endpoint {
    return this.order.pick(candidates, (e) => e.id, (e) => e.weight) as Endpoint;
  }
}
