import type { Endpoint } from '../endpoints/types.js';
import type { SessionTable } from './session-table.js';

/**
 * How a new session picks its endpoint. Only new sessions and re-pins ask: a pinned
 * session never goes through a strategy. `candidates` is never empty and is in the
 * view's deterministic order.
 */
export interface Strategy {
  readonly name: StrategyName;
  pick(candidates: readonly Endpoint[], sessions: SessionTable): Endpoint;
}

export type StrategyName = 'least-sessions' | 'round-robin' | 'two-choices';

export const STRATEGY_NAMES: readonly StrategyName[] = ['least-sessions', 'round-robin', 'two-choices'];

/** Uniform random integer in [0, n). Injected so tests can make choices repeatable. */
export type RandomInt = (n: number) => number;

export const mathRandomInt: RandomInt = (n) => Math.floor(Math.random() * n);
