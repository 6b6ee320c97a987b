import type { Endpoint } from '../endpoints/types.js';
import type { SessionTable } from './session-table.js';
import { mathRandomInt, type RandomInt, type Strategy } from './strategy.js';

/**
 * Power of two random choices: sample two endpoints, take the one with fewer sessions per
 * weight. Constant cost however many endpoints there are, and close to least-sessions in
 * balance; less eager than least-sessions to fill a brand-new pod all at once.
 */
export class TwoChoices implements Strategy {
  readonly name = 'two-choices';

  constructor(private readonly random: RandomInt = mathRandomInt) {}

  pick(candidates: readonly Endpoint[], sessions: SessionTable): Endpoint {
    const n = candidates.length;
    const a = candidates[this.random(n)] as Endpoint;
    if (n === 1) return a;
    let j = this.random(n - 1);
    if (candidates[j] === a) j = n - 1;
    const b = candidates[j] as Endpoint;
    return sessions.count(b.id) / b.weight < sessions.count(a.id) / a.weight ? b : a;
  }
}
