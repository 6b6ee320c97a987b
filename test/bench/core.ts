/**
 * Decision core alone (issue 5, parts 2 and 3): decide() as the handler calls it, on one
 * core, no I/O.
 *   - returning clients: valid tokens whose verification is cached;
 *   - first-seen tokens: valid tokens this process never saw (a full HMAC verify each),
 *     as after a plugin-server restart or on another Kong replica;
 *   - the same with 3 and with 5,000 endpoints.
 */
import { decide, type AffinityPolicy, type AffinityState } from '../../src/affinity/decide.js';
import { RefIndex } from '../../src/affinity/ref-index.js';
import { createStrategy, SessionTable } from '../../src/balancer/index.js';
import { makeSnapshot, type Endpoint, type EndpointSnapshot } from '../../src/endpoints/types.js';
import { TokenCodec } from '../../src/token.js';

export const policy: AffinityPolicy = { strict: false, noReadyEndpoint: 'draining', absoluteTimeout: 0, idleTimeout: 0, refreshAfter: 0 };
const secrets = ['bench-secret-0123456789abcdef-0123456789'];

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

/** A state as one plugin-server process holds it (fresh caches). */
export function freshState(): AffinityState {
  const codec = new TokenCodec({ secrets, binding: 'service:bench', cacheSize: 100_000 });
  return { codec, refs: new RefIndex(codec), sessions: new SessionTable({ max: 200_000 }), strategy: createStrategy('least-sessions') };
}

function issueTokens(snapshot: EndpointSnapshot, count: number): string[] {
  const issuer = freshState();
  const now = Date.now() / 1000;
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const d = decide(undefined, snapshot, issuer, policy, now);
    if (d.kind !== 'new') throw new Error(`expected a new session, got ${d.kind}`);
    out.push(d.token);
  }
  return out;
}

function run(tokens: string[], snapshot: EndpointSnapshot, state: AffinityState, iterations: number): number {
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

export interface CoreResult {
  endpoints: number;
  cachedPerSec: number;
  firstSeenPerSec: number;
}

export function benchCore(endpointCount: number): CoreResult {
  const snapshot = makeSnapshot(1, podEndpoints(endpointCount));
  // Returning clients: 10,000 sessions, each seen before (cache warm).
  const returning = issueTokens(snapshot, 10_000);
  const warm = freshState();
  run(returning, snapshot, warm, returning.length);
  const cachedPerSec = run(returning, snapshot, warm, 2_000_000);
  // First-seen: every token once, on a process that has never verified any of them.
  const unseen = issueTokens(snapshot, 200_000);
  const cold = freshState();
  run(unseen.slice(0, 1000), snapshot, cold, 1000); // builds the ref index, JIT warm-up
  const firstSeenPerSec = run(unseen.slice(1000), snapshot, cold, unseen.length - 1000);
  return { endpoints: endpointCount, cachedPerSec, firstSeenPerSec };
}
