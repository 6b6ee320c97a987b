/**
 * Part 2 (and the decision-time half of part 3): decide() as the handler calls it, on one
 * core, no I/O, with the state a plugin-server process builds (acquireAffinityState:
 * default verification cache and session table sizes, least-sessions balancer).
 *   - returning clients: valid tokens whose verification is cached;
 *   - first-seen tokens: valid tokens this process never saw (a full HMAC verify each),
 *     as after a plugin-server restart or on another Kong replica;
 *   - new sessions (no token): a balancer pick (least-sessions) and a token issued, what part 1 (d) does per request;
 *   - each with 3 and with 5,000 endpoints, interleaved, ratios taken within a run.
 *
 *   npm run bench:core [-- --runs 5]
 *   node --cpu-prof --import tsx test/bench/core.ts --only first-seen   # profile one case
 */
import { decide, type AffinityPolicy, type AffinityState } from '../../src/affinity/decide.js';
import { acquireAffinityState } from '../../src/affinity/state.js';
import { makeSnapshot, type Endpoint, type EndpointSnapshot } from '../../src/endpoints/types.js';
import { TokenCodec } from '../../src/token.js';
import { fmt, isMain, median, numberOption, option, printTable, printTargets, report, verdict, type TargetRow } from './report.js';

export const policy: AffinityPolicy = { strict: false, noReadyEndpoint: 'draining', absoluteTimeout: 0, idleTimeout: 0, refreshAfter: 0 };
export const SECRETS = ['bench-secret-0123456789abcdef-0123456789'];
export const BINDING = 'service:0e3c1c3e-1111-4c4c-9a9a-000000000001';

export function podEndpoints(n: number, prefix = 'pod'): Endpoint[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `${prefix}-uid-${i.toString().padStart(6, '0')}`,
    name: `${prefix}-${i}`,
    host: `192.0.2.${i % 250}`,
    port: 8080,
    condition: 'ready' as const,
    weight: 1,
  }));
}

let states = 0;
const leases: Array<{ release(): void }> = [];
/**
 * A state as one plugin-server process builds it for a service (fresh caches each call).
 * Held until releaseStates().
 */
export function freshState(): AffinityState {
  const lease = acquireAffinityState({
    binding: BINDING,
    secrets: SECRETS,
    sourceKey: `bench:${++states}`,
    strategy: 'least-sessions',
    sessionTtlMs: 1800 * 1000,
    failureHoldMs: null,
  });
  leases.push(lease);
  return lease.value;
}

/** Lets go of every state freshState() handed out (the registry drops them). */
export function releaseStates(): void {
  for (const lease of leases.splice(0)) lease.release();
}

/** Valid tokens for endpoints of `snapshot`, spread over all of them, issued elsewhere. */
export function issueTokens(snapshot: EndpointSnapshot, count: number): string[] {
  const issuer = new TokenCodec({ secrets: SECRETS, binding: BINDING, cacheSize: 1 });
  const endpoints = [...snapshot.byId.values()];
  const now = Date.now() / 1000;
  return Array.from({ length: count }, (_, i) => issuer.issue(endpoints[i % endpoints.length]!.id, now).token);
}

/** Decisions per second over `iterations` decisions cycling through `tokens`; every one must pin. */
function pinLoop(tokens: readonly (string | undefined)[], snapshot: EndpointSnapshot, state: AffinityState, iterations: number): number {
  const now = Date.now() / 1000;
  let pinned = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) {
    if (decide(tokens[i % tokens.length], snapshot, state, policy, now).kind === 'pin') pinned++;
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (pinned !== iterations) throw new Error(`only ${pinned} of ${iterations} pinned`);
  return iterations / seconds;
}

function newLoop(snapshot: EndpointSnapshot, state: AffinityState, iterations: number): number {
  const now = Date.now() / 1000;
  let issued = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) {
    if (decide(undefined, snapshot, state, policy, now).kind === 'new') issued++;
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (issued !== iterations) throw new Error(`only ${issued} of ${iterations} new`);
  return iterations / seconds;
}

/** Returning clients: 10,000 sessions, each verified once before (cache warm). */
export function cachedRate(snapshot: EndpointSnapshot, decisions = 2_000_000): number {
  const tokens = issueTokens(snapshot, 10_000);
  const state = freshState();
  pinLoop(tokens, snapshot, state, tokens.length * 3);
  try {
    return pinLoop(tokens, snapshot, state, decisions);
  } finally {
    releaseStates();
  }
}

/** First-seen: every token once, on a process that has never verified any of them. */
export function firstSeenRate(snapshot: EndpointSnapshot, count = 200_000): number {
  const tokens = issueTokens(snapshot, count + 2000);
  const state = freshState();
  pinLoop(tokens.slice(0, 2000), snapshot, state, 2000); // builds the ref index, JIT warm-up
  try {
    return pinLoop(tokens.slice(2000), snapshot, state, count);
  } finally {
    releaseStates();
  }
}

/** New sessions: no token, a balancer pick and a token issued per decision. */
export function newSessionRate(snapshot: EndpointSnapshot, count: number): number {
  const state = freshState();
  newLoop(snapshot, state, Math.min(2000, count));
  try {
    return newLoop(snapshot, state, count);
  } finally {
    releaseStates();
  }
}

export interface CoreResult {
  readonly runs: number;
  /** Median decisions/s per endpoint count. */
  readonly cached: Record<number, number>;
  readonly firstSeen: Record<number, number>;
  readonly fresh: Record<number, number>;
  /** Median over runs of (time per decision at 5,000 endpoints) / (at 3), per case. */
  readonly slowdown: { cached: number; firstSeen: number; fresh: number };
}

export const SMALL = 3;
export const LARGE = 5000;

export function benchCore(runs = 5, only?: string): CoreResult {
  const snaps: Record<number, EndpointSnapshot> = { [SMALL]: makeSnapshot(1, podEndpoints(SMALL)), [LARGE]: makeSnapshot(1, podEndpoints(LARGE)) };
  const perSize = (): Record<number, number[]> => ({ [SMALL]: [], [LARGE]: [] });
  const samples = { cached: perSize(), firstSeen: perSize(), fresh: perSize() };
  const ratios = { cached: [] as number[], firstSeen: [] as number[], fresh: [] as number[] };
  for (let r = 0; r < runs; r++) {
    // Alternate which size goes first, so drift (other load, thermal) cancels out in the ratios.
    const order = r % 2 === 0 ? [SMALL, LARGE] : [LARGE, SMALL];
    for (const kind of ['cached', 'firstSeen', 'fresh'] as const) {
      if (only && only !== kind && !(only === 'first-seen' && kind === 'firstSeen') && !(only === 'new' && kind === 'fresh')) continue;
      const got: Record<number, number> = {};
      for (const n of order) {
        const snap = snaps[n]!;
        got[n] = kind === 'cached' ? cachedRate(snap) : kind === 'firstSeen' ? firstSeenRate(snap) : newSessionRate(snap, 100_000);
        samples[kind][n]!.push(got[n]!);
      }
      ratios[kind].push(got[SMALL]! / got[LARGE]!);
    }
  }
  return {
    runs,
    cached: { [SMALL]: median(samples.cached[SMALL]!), [LARGE]: median(samples.cached[LARGE]!) },
    firstSeen: { [SMALL]: median(samples.firstSeen[SMALL]!), [LARGE]: median(samples.firstSeen[LARGE]!) },
    fresh: { [SMALL]: median(samples.fresh[SMALL]!), [LARGE]: median(samples.fresh[LARGE]!) },
    slowdown: { cached: median(ratios.cached), firstSeen: median(ratios.firstSeen), fresh: median(ratios.fresh) },
  };
}

export function coreTargets(c: CoreResult): TargetRow[] {
  return [
    { part: '2', what: `cached verify, ${SMALL} endpoints`, measured: fmt.rate(c.cached[SMALL]!), target: '>= 1,000,000/s', verdict: verdict(c.cached[SMALL]! >= 1_000_000) },
    { part: '2', what: `first-seen (full HMAC), ${SMALL} endpoints`, measured: fmt.rate(c.firstSeen[SMALL]!), target: '>= 200,000/s', verdict: verdict(c.firstSeen[SMALL]! >= 200_000) },
    { part: '2', what: `cached verify, ${LARGE} endpoints`, measured: fmt.rate(c.cached[LARGE]!), target: '>= 1,000,000/s', verdict: verdict(c.cached[LARGE]! >= 1_000_000) },
    { part: '2', what: `first-seen (full HMAC), ${LARGE} endpoints`, measured: fmt.rate(c.firstSeen[LARGE]!), target: '>= 200,000/s', verdict: verdict(c.firstSeen[LARGE]! >= 200_000) },
  ];
}

export function decisionScaleTargets(c: CoreResult): TargetRow[] {
  const pct = (x: number) => `${x >= 1 ? '+' : ''}${((x - 1) * 100).toFixed(1)}%`;
  return [
    { part: '3', what: `decision time ${LARGE} vs ${SMALL} endpoints, cached token`, measured: pct(c.slowdown.cached), target: '<= +10%', verdict: verdict(c.slowdown.cached <= 1.1) },
    { part: '3', what: `decision time ${LARGE} vs ${SMALL} endpoints, first-seen token`, measured: pct(c.slowdown.firstSeen), target: '<= +10%', verdict: verdict(c.slowdown.firstSeen <= 1.1) },
    { part: '3', what: `decision time ${LARGE} vs ${SMALL} endpoints, new session (least-sessions)`, measured: pct(c.slowdown.fresh), target: '<= +10%', verdict: verdict(c.slowdown.fresh <= 1.1) },
  ];
}

export function printCore(c: CoreResult): void {
  printTable(
    `Part 2: decision core, one core, median of ${c.runs} runs (decisions/s)`,
    ['case', `${SMALL} endpoints`, `${LARGE} endpoints`, `time ${LARGE} vs ${SMALL}`],
    [
      ['valid token, verification cached', fmt.rate(c.cached[SMALL]!), fmt.rate(c.cached[LARGE]!), fmt.ratio(c.slowdown.cached)],
      ['valid token, first seen (HMAC verify)', fmt.rate(c.firstSeen[SMALL]!), fmt.rate(c.firstSeen[LARGE]!), fmt.ratio(c.slowdown.firstSeen)],
      ['no token: new session (pick + issue)', fmt.rate(c.fresh[SMALL]!), fmt.rate(c.fresh[LARGE]!), fmt.ratio(c.slowdown.fresh)],
    ],
  );
}

if (isMain(import.meta)) {
  const result = benchCore(numberOption('runs', 5), option('only'));
  printCore(result);
  const rows = [...coreTargets(result), ...decisionScaleTargets(result)];
  printTargets('Part 2 targets (and part 3: decision time at scale)', rows);
  report(rows);
}
