import { LeastSessions } from './least-sessions.js';
import { RoundRobin } from './round-robin.js';
import { type RandomInt, type Strategy, type StrategyName, mathRandomInt } from './strategy.js';
import { TwoChoices } from './two-choices.js';

export { SessionTable } from './session-table.js';
export { WeightedSplit } from './weighted-split.js';
export type { Strategy, StrategyName } from './strategy.js';
export { STRATEGY_NAMES } from './strategy.js';

export function createStrategy(name: StrategyName, random: RandomInt = mathRandomInt): Strategy {
  switch (name) {
    case 'least-sessions':
      return new LeastSessions(random);
    case 'round-robin':
      return new RoundRobin();
    case 'two-choices':
      return new TwoChoices(random);
  }
}
