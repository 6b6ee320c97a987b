/**
 * Forgery and misuse, property-based (issue 6): over 100,000 hostile tokens in all, no
 * request is routed to an endpoint the token did not legitimately pin, and none outside the
 * service's current endpoint set.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decide, type AffinityPolicy, type AffinityState } from '../../src/affinity/decide.js';
import type { Decision } from '../../src/affinity/decision.js';
import { RefIndex } from '../../src/affinity/ref-index.js';
import { createStrategy, SessionTable, WeightedSplit } from '../../src/balancer/index.js';
import { makeSnapshot, type Endpoint, type EndpointSnapshot } from '../../src/endpoints/types.js';
import { TokenCodec } from '../../src/token.js';

const SECRET = 'current-secret-0123456789abcdef0123';
const RETIRED = 'retired-secret-0123456789abcdef0123';
const policy: AffinityPolicy = { strict: false, noReadyEndpoint: 'draining', absoluteTimeout: 0, idleTimeout: 0, refreshAfter: 0 };
const NOW = 1_800_000_000;
const RUNS = 12_500; // x 8 properties = 100,000 attempts

function pod(n: number, condition: Endpoint['condition'] = 'ready', ip = `192.0.2.${n}`): Endpoint {
  return { id: `uid-pod-${n}`, name: `pod-${n}`, host: ip, port: 8080, condition, weight: 1 };
}

function state(secrets: string[], binding = 'service:cart'): AffinityState {
  const codec = new TokenCodec({ secrets, binding, cacheSize: 1000 });
  return { codec, refs: new RefIndex(codec), sessions: new SessionTable({ max: 1000 }), strategy: createStrategy('least-sessions'), split: new WeightedSplit() };
}

const view = makeSnapshot(1, [pod(1), pod(2), pod(3, 'draining'), pod(4)]);
const issuer = state([SECRET]);
/** Legitimate tokens, with the endpoint each was issued for. */
const legit = [...view.byId.values()].map((e) => ({ token: issuer.codec.issue(e.id, NOW).token, endpoint: e }));
const legitEndpoint = new Map(legit.map((l) => [l.token, l.endpoint.id]));

/** The invariant every decision must keep. */
function assertSafe(token: string, d: Decision, snapshot: EndpointSnapshot = view): void {
  if ('endpoint' in d) expect(snapshot.byId.get(d.endpoint.id)).toBe(d.endpoint);
  if (d.kind === 'pin') {
    // Only a legitimate token pins, and only to the endpoint it was issued for.
    expect(legitEndpoint.get(token)).toBe(d.endpoint.id);
  }
  if (d.kind === 'new' || d.kind === 'repin') expect(d.endpoint.condition).toBe('ready');
}

const base64url = fc.string({ unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'), minLength: 0, maxLength: 80 });
const legitToken = fc.constantFrom(...legit.map((l) => l.token));

describe('hostile tokens never pick a backend', () => {
  const verifier = state([SECRET]);
  const check = (token: string) => assertSafe(token, decide(token, view, verifier, policy, NOW));

  it('random strings and random base64url', () => {
    fc.assert(fc.property(fc.oneof(fc.string({ maxLength: 200 }), base64url, fc.string({ unit: 'binary', maxLength: 60 })), check), { numRuns: RUNS });
  });

  it('truncated and extended legitimate tokens', () => {
    fc.assert(
      fc.property(legitToken, fc.nat(60), base64url, (t, cut, extra) => {
        check(t.slice(0, cut % t.length));
        check(t + extra.slice(0, 5) + 'A');
      }),
      { numRuns: RUNS },
    );
  });

  it('bit-flipped legitimate tokens', () => {
    fc.assert(
      fc.property(legitToken, fc.nat(36), fc.integer({ min: 0, max: 7 }), (t, byte, bit) => {
        const raw = Buffer.from(t, 'base64url');
        raw[byte] = raw[byte]! ^ (1 << bit);
        const forged = raw.toString('base64url');
        check(forged);
        expect(decide(forged, view, verifier, policy, NOW).kind).not.toBe('pin');
      }),
      { numRuns: RUNS },
    );
  });

  it('re-encoded legitimate tokens (base64 alphabet, padding, last-character variants)', () => {
    fc.assert(
      fc.property(legitToken, fc.integer({ min: 0, max: 3 }), (t, variant) => {
        const raw = Buffer.from(t, 'base64url');
        const last = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
        const reencoded = [
          raw.toString('base64'),
          `${t}=`,
          t.slice(0, -1) + last[(last.indexOf(t.at(-1)!) + 1 + variant) % 64],
          ` ${t}`,
        ][variant]!;
        check(reencoded);
      }),
      { numRuns: RUNS },
    );
  });

  it('oversized and duplicated tokens', () => {
    fc.assert(
      fc.property(legitToken, fc.integer({ min: 2, max: 50 }), (t, n) => {
        check(t.repeat(n));
        check(Array(n).fill(t).join('; '));
      }),
      { numRuns: RUNS },
    );
  });

  it('tokens signed with a wrong or a retired key', () => {
    const retiredIssuer = state([RETIRED]);
    fc.assert(
      fc.property(fc.constantFrom(...view.byId.values()), fc.string({ minLength: 32, maxLength: 40 }), (e, secret) => {
        const wrong = state([secret.padEnd(32, 'x')]).codec.issue(e.id, NOW).token;
        check(wrong);
        const retired = retiredIssuer.codec.issue(e.id, NOW).token;
        expect(decide(retired, view, verifier, policy, NOW).kind).toBe('new');
      }),
      { numRuns: RUNS },
    );
  });

  it('a valid token replayed against another service', () => {
    const otherService = state([SECRET], 'service:orders');
    fc.assert(
      fc.property(legitToken, (t) => {
        const d = decide(t, view, otherService, policy, NOW);
        expect(d.kind).toBe('new');
        assertSafe(t, d);
      }),
      { numRuns: RUNS },
    );
  });

  it('a token naming a pod that is gone, or whose IP now belongs to another pod', () => {
    // pod-1 deleted; a new pod-9 took its IP. Tokens of pod-1 must not reach pod-9.
    const after = makeSnapshot(2, [pod(2), pod(3, 'draining'), pod(4), pod(9, 'ready', '192.0.2.1')]);
    fc.assert(
      fc.property(legitToken, (t) => {
        const d = decide(t, after, verifier, policy, NOW);
        if ('endpoint' in d) expect(after.byId.get(d.endpoint.id)).toBe(d.endpoint);
        if (legitEndpoint.get(t) === 'uid-pod-1') expect(d.kind).toBe('repin');
        else expect(d.kind === 'pin' && d.endpoint.id).toBe(legitEndpoint.get(t));
      }),
      { numRuns: RUNS },
    );
  });
});
