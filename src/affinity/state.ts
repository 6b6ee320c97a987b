import { createHash } from 'node:crypto';
import { createStrategy, SessionTable, WeightedSplit, type StrategyName } from '../balancer/index.js';
import { SharedRegistry, type Lease } from '../shared.js';
import { TokenCodec } from '../token.js';
import type { AffinityState } from './decide.js';
import { RefIndex } from './ref-index.js';
import { FailureMarks } from '../failover/failure-marks.js';

export interface StateKey {
  readonly binding: string;
  readonly secrets: readonly string[];
  readonly sourceKey: string;
  readonly strategy: StrategyName;
  /** How long an unseen session still counts for the balancer (ms). */
  readonly sessionTtlMs: number;
  /** Change on failure: how long a failed endpoint is avoided (ms); null = off. */
  readonly failureHoldMs: number | null;
}

const states = new SharedRegistry<AffinityState>();
/** What each live state serves, for status and metrics (states are keyed by a digest). */
const served = new WeakMap<AffinityState, { readonly binding: string; readonly sourceKey: string }>();

/**
 * The affinity state of one service in this process: token codec with its verification
 * cache, endpoint ref index, session counts and balancer. Every worker's instance with the
 * same settings shares one, so a client's second request is a cache hit whichever worker
 * takes it, and the balancer sees all of this process's sessions.
 */
export function acquireAffinityState(key: StateKey): Lease<AffinityState> {
  const secretsDigest = createHash('sha256').update(key.secrets.join('\0')).digest('hex');
  const id = [key.binding, secretsDigest, key.sourceKey, key.strategy, key.sessionTtlMs, key.failureHoldMs].join('|');
  return states.acquire(id, () => {
    const codec = new TokenCodec({ secrets: key.secrets, binding: key.binding });
    const failures = key.failureHoldMs === null ? undefined : new FailureMarks(key.failureHoldMs);
    const state: AffinityState = {
      codec,
      refs: new RefIndex(codec),
      sessions: new SessionTable({ ttlMs: key.sessionTtlMs }),
      strategy: createStrategy(key.strategy),
      split: new WeightedSplit(),
      failures,
      isFailing: failures?.isFailing,
    };
    served.set(state, { binding: key.binding, sourceKey: key.sourceKey });
    return state;
  });
}

export interface ServedState {
  /** The Kong service (or route) its tokens are bound to. */
  readonly binding: string;
  /** The endpoint source it decides over. */
  readonly sourceKey: string;
  readonly state: AffinityState;
}

/** Every affinity state alive in this process, with what it serves: for status and metrics. */
export function* affinityStates(): IterableIterator<ServedState> {
  for (const [, state] of states.held()) {
    const s = served.get(state);
    if (s) yield { binding: s.binding, sourceKey: s.sourceKey, state };
  }
}

/** Keys of the states alive in this process, for leak tests and status. */
export function affinityStateKeys(): string[] {
  return states.keys();
}
