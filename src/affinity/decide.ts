import type { SessionTable, Strategy, WeightedSplit } from '../balancer/index.js';
import type { Endpoint, EndpointSnapshot } from '../endpoints/types.js';
import type { TokenCodec } from '../token.js';
import type { Decision, NewReason, RepinReason } from './decision.js';
import type { RefIndex } from './ref-index.js';
import type { FailureMarks } from '../failover/failure-marks.js';

/** Session rules from the plugin config. Times are in seconds. */
export interface AffinityPolicy {
  /** A pinned session whose endpoint is gone is answered 503 instead of being moved. */
  readonly strict: boolean;
  /** With no ready endpoint: send new sessions to a serving, terminating one, or answer 503. */
  readonly noReadyEndpoint: 'draining' | 'reject';
  /** 0 = none. A session older than this starts over. */
  readonly absoluteTimeout: number;
  /** 0 = none. A session idle longer than this starts over. */
  readonly idleTimeout: number;
  /** Re-issue a pinned token once it is this old, so idle tracking costs no Set-Cookie per request. */
  readonly refreshAfter: number;
}

/** The long-lived state a decision reads: shared per service by every instance of the process. */
export interface AffinityState {
  readonly codec: TokenCodec;
  readonly refs: RefIndex;
  readonly sessions: SessionTable;
  readonly strategy: Strategy;
  /** Which backend of a traffic split a new session goes to (views with `backends`). */
  readonly split: WeightedSplit;
  /** Endpoints recently seen failing (change on failure); none by default. */
  readonly isFailing?: ((endpointId: string) => boolean) | undefined;
  /** Where the log phase records failures, when change on failure is on. */
  readonly failures?: FailureMarks | undefined;
}

/**
 * The decision core: (token, endpoint view, now) -> decision. No I/O; time is passed in.
 * A token only ever routes to an endpoint of `snapshot`, the current view of its service.
 *
 * `legacy`: the endpoint a legacy cookie selects (accept_legacy_cookies). It counts only for
 * a request with no token of ours that verifies, and only if it is an endpoint of `snapshot`
 * (ready, or draining: its session is honoured) and not failing; else it is no cookie.
 */
export function decide(
  token: string | null | undefined,
  snapshot: EndpointSnapshot | undefined,
  state: AffinityState,
  policy: AffinityPolicy,
  now: number,
  legacy?: Endpoint,
): Decision {
  if (!snapshot) return { kind: 'passthrough', reason: 'not-synced' };

  let reason: NewReason = 'none';
  if (token) {
    const verified = state.codec.verify(token);
    if (!verified.ok) {
      reason = verified.reason;
    } else {
      const c = verified.claims;
      if (policy.absoluteTimeout > 0 && now - c.issuedAt > policy.absoluteTimeout) reason = 'expired';
      else if (policy.idleTimeout > 0 && now - c.touchedAt > policy.idleTimeout) reason = 'idle';
      else {
        const endpoint = state.refs.resolve(snapshot, c);
        const lost: RepinReason | undefined = !endpoint
          ? 'gone'
          : state.isFailing?.(endpoint.id) ? 'failing' : undefined;
        if (endpoint && !lost) {
          state.sessions.observe(c.sid, endpoint.id);
          const reissueReason =
            c.keyIndex > 0 ? 'rotated'
            : policy.idleTimeout > 0 && now - c.touchedAt >= policy.refreshAfter ? 'refreshed'
            : undefined;
          if (!reissueReason) return { kind: 'pin', endpoint };
          const { token: reissued } = state.codec.issue(endpoint.id, now, c);
          return { kind: 'pin', endpoint, reissue: { token: reissued, reason: reissueReason } };
        }
        if (policy.strict) return { kind: 'reject', reason: 'strict' };
        const chosen = choose(snapshot, state, policy, now);
        if (!chosen) return { kind: 'reject', reason: 'no-endpoint' };
        return { kind: 'repin', reason: lost ?? 'gone', ...chosen };
      }
    }
  }
  if (legacy && (reason === 'none' || reason === 'malformed' || reason === 'bad-signature')) {
    const endpoint = snapshot.byId.get(legacy.id);
    if (endpoint && !state.isFailing?.(endpoint.id)) {
      const { token: issued, claims } = state.codec.issue(endpoint.id, now);
      state.sessions.observe(claims.sid, endpoint.id);
      return { kind: 'new', reason: 'legacy', endpoint, token: issued, fallback: false };
    }
  }
  const chosen = choose(snapshot, state, policy, now);
  if (!chosen) return { kind: 'reject', reason: 'no-endpoint' };
  return { kind: 'new', reason, ...chosen };
}

/** Picks the endpoint of a new session and issues its token. */
function choose(
  snapshot: EndpointSnapshot,
  state: AffinityState,
  policy: AffinityPolicy,
  now: number,
): { endpoint: Endpoint; token: string; fallback: boolean } | undefined {
  // A traffic split picks the backend first, by weight; weight-0 backends take no new session.
  let candidates = snapshot.backends
    ? (state.split.pick(snapshot.backends, (ready) => usable(ready, state)) ?? [])
    : usable(snapshot.ready, state);
  let fallback = false;
  if (candidates.length === 0 && policy.noReadyEndpoint === 'draining') {
    candidates = usable(snapshot.draining, state);
    fallback = true;
  }
  if (candidates.length === 0) return undefined;
  const endpoint = state.strategy.pick(candidates, state.sessions);
  const { token, claims } = state.codec.issue(endpoint.id, now);
  state.sessions.observe(claims.sid, endpoint.id);
  return { endpoint, token, fallback };
}

function usable(endpoints: readonly Endpoint[], state: AffinityState): readonly Endpoint[] {
  const failing = state.isFailing;
  return failing ? endpoints.filter((e) => !failing(e.id)) : endpoints;
}
