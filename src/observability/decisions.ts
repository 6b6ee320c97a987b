import type { Decision, NewReason, PassthroughReason, RejectReason, RepinReason } from '../affinity/decision.js';

/**
 * Decision counts per Kong service, kept as plain numbers: a request costs one Map lookup
 * and one increment, whether metrics are served or not. prom-client reads them at scrape
 * time. Process-wide: every instance of every worker counts into the same cells.
 */

/** Metric outcome of a decision (the `outcome` label of sticky_session_decisions_total). */
export type Outcome = 'new' | 'pinned' | 'pinned_draining' | 'repinned' | 'rejected' | 'fail_open';

type PinReason = 'none' | 'rotated' | 'refreshed';

const slots: Array<{ readonly outcome: Outcome; readonly reason: string }> = [];
function table<R extends string>(outcome: Outcome, reasons: readonly R[]): Record<R, number> {
  const t = {} as Record<R, number>;
  for (const reason of reasons) t[reason] = slots.push({ outcome, reason }) - 1;
  return t;
}
const NEW = table<NewReason>('new', ['none', 'malformed', 'bad-signature', 'expired', 'idle', 'legacy']);
const PINNED = table<PinReason>('pinned', ['none', 'rotated', 'refreshed']);
const PINNED_DRAINING = table<PinReason>('pinned_draining', ['none', 'rotated', 'refreshed']);
const REPINNED = table<RepinReason>('repinned', ['gone', 'failing']);
const REJECTED = table<RejectReason>('rejected', ['strict', 'no-endpoint']);
const FAIL_OPEN = table<PassthroughReason>('fail_open', ['not-synced', 'config-error']);

/** Every (outcome, reason) pair a decision can have, in a fixed order: one counter cell each. */
export const DECISION_SLOTS: ReadonlyArray<{ readonly outcome: Outcome; readonly reason: string }> = slots;

/** Tokens that verified to nothing usable: the `new` reasons other than "no token". */
export const TOKEN_REJECTIONS: ReadonlyArray<{ readonly reason: Exclude<NewReason, 'none'>; readonly slot: number }> = (
  ['malformed', 'bad-signature', 'expired', 'idle'] as const
).map((reason) => ({ reason, slot: NEW[reason] }));

export function outcomeOf(d: Decision): Outcome {
  return slots[slotOf(d)]!.outcome;
}

function slotOf(d: Decision): number {
  switch (d.kind) {
    case 'pin':
      return (d.endpoint.condition === 'ready' ? PINNED : PINNED_DRAINING)[d.reissue?.reason ?? 'none'];
    case 'new':
      return NEW[d.reason];
    case 'repin':
      return REPINNED[d.reason];
    case 'reject':
      return REJECTED[d.reason];
    case 'passthrough':
      return FAIL_OPEN[d.reason];
  }
}

const counts = new Map<string, Float64Array>();

/** Counts one decision for `service` (the instance's token binding). O(1), no allocation once warm. */
export function observeDecision(d: Decision, service: string): void {
  let cells = counts.get(service);
  if (cells === undefined) {
    cells = new Float64Array(DECISION_SLOTS.length);
    counts.set(service, cells);
  }
  cells[slotOf(d)]!++;
  // Traffic splits: also per backend Service, by outcome.
  if ('endpoint' in d && d.endpoint.backend !== undefined) observeBackend(service, d.endpoint.backend, outcomeOf(d));
}

const backendCounts = new Map<string, Map<string, Map<Outcome, number>>>();

function observeBackend(service: string, backend: string, outcome: Outcome): void {
  let byBackend = backendCounts.get(service);
  if (byBackend === undefined) backendCounts.set(service, (byBackend = new Map()));
  let byOutcome = byBackend.get(backend);
  if (byOutcome === undefined) byBackend.set(backend, (byOutcome = new Map()));
  byOutcome.set(outcome, (byOutcome.get(outcome) ?? 0) + 1);
}

/** Decisions that routed to a backend of a traffic split: service -> backend -> outcome -> count. */
export function backendDecisionCounts(): ReadonlyMap<string, ReadonlyMap<string, ReadonlyMap<Outcome, number>>> {
  return backendCounts;
}

/** Counts so far per service, cells indexed like DECISION_SLOTS. Live arrays: read, do not keep. */
export function decisionCounts(): ReadonlyMap<string, Float64Array> {
  return counts;
}
