/**
 * Traffic splits (Gateway API backendRefs with weights) in the decision core: weights steer
 * new sessions only; a session stays on its pod through any weight change, weight 0
 * included; a backend removed from the split re-pins its sessions.
 */
import { describe, expect, it } from 'vitest';
import { decide, type AffinityPolicy, type AffinityState } from '../../src/affinity/decide.js';
import type { Decision } from '../../src/affinity/decision.js';
import { RefIndex } from '../../src/affinity/ref-index.js';
import { createStrategy, SessionTable, WeightedSplit, type StrategyName } from '../../src/balancer/index.js';
import { makeSplitSnapshot, type SplitBackend } from '../../src/endpoints/split.js';
import type { Endpoint, EndpointCondition, EndpointSnapshot } from '../../src/endpoints/types.js';
import { TokenCodec } from '../../src/token.js';

const SECRET = 'k'.repeat(40);
const T = 1_750_000_000;
const POLICY: AffinityPolicy = { strict: false, noReadyEndpoint: 'draining', absoluteTimeout: 0, idleTimeout: 0, refreshAfter: 0 };

function state(strategy: StrategyName = 'least-sessions'): AffinityState {
  const codec = new TokenCodec({ secrets: [SECRET], binding: 'httproute:shop/web/0', cacheSize: 10_000 });
  return { codec, refs: new RefIndex(codec), sessions: new SessionTable({ max: 10_000 }), strategy: createStrategy(strategy), split: new WeightedSplit() };
}

let ip = 0;
function pods(service: string, n: number, condition: EndpointCondition = 'ready'): Endpoint[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `uid-${service}-${i}`,
    name: `${service}-${i}`,
    host: `192.0.2.${++ip % 250}`,
    port: 8080,
    condition,
    weight: 1,
  }));
}

const backend = (service: string, weight: number, endpoints: Endpoint[]): SplitBackend => ({ key: `shop/${service}:80`, weight, endpoints });

function endpointOf(d: Decision): Endpoint {
  if (!('endpoint' in d)) throw new Error(`expected an endpoint, got ${JSON.stringify(d)}`);
  return d.endpoint;
}

/** n new sessions: their tokens and where they went. */
function newSessions(s: AffinityState, view: EndpointSnapshot, n: number): Array<{ token: string; endpoint: Endpoint }> {
  return Array.from({ length: n }, () => {
    const d = decide(undefined, view, s, POLICY, T);
    if (d.kind !== 'new') throw new Error(`expected new, got ${d.kind}`);
    return { token: d.token, endpoint: d.endpoint };
  });
}

function countByBackend(sessions: ReadonlyArray<{ endpoint: Endpoint }>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const { endpoint } of sessions) out[endpoint.backend ?? '?'] = (out[endpoint.backend ?? '?'] ?? 0) + 1;
  return out;
}

describe('traffic split: new sessions', () => {
  it('go to each backend in proportion to its weight, exactly, then evenly over its pods', () => {
    const v1 = pods('v1', 3);
    const v2 = pods('v2', 2);
    const view = makeSplitSnapshot(1, [backend('v1', 70, v1), backend('v2', 30, v2)]);
    const s = state();
    const made = newSessions(s, view, 100);
    expect(countByBackend(made)).toEqual({ 'shop/v1:80': 70, 'shop/v2:80': 30 });
    // least-sessions inside the backend: 70 over 3 pods, 30 over 2.
    const perPod = new Map<string, number>();
    for (const m of made) perPod.set(m.endpoint.id, (perPod.get(m.endpoint.id) ?? 0) + 1);
    expect(v1.map((p) => perPod.get(p.id)).sort()).toEqual([23, 23, 24]);
    expect(v2.map((p) => perPod.get(p.id))).toEqual([15, 15]);
  });

  it('interleave: any 10 consecutive new sessions of a 90/10 split hold exactly one of the small backend', () => {
    const view = makeSplitSnapshot(1, [backend('v1', 90, pods('v1', 2)), backend('v2', 10, pods('v2', 1))]);
    const made = newSessions(state('round-robin'), view, 50);
    for (let i = 0; i < 50; i += 10) expect(countByBackend(made.slice(i, i + 10))['shop/v2:80']).toBe(1);
  });

  it('a backend without a ready pod gives its share to the others; none at all falls back as without a split', () => {
    const view = makeSplitSnapshot(1, [backend('v1', 50, pods('v1', 2, 'draining')), backend('v2', 50, pods('v2', 2))]);
    expect(countByBackend(newSessions(state(), view, 10))).toEqual({ 'shop/v2:80': 10 });

    const draining = makeSplitSnapshot(1, [backend('v1', 50, pods('v1', 1, 'draining')), backend('v2', 0, pods('v2', 2))]);
    const fallback = decide(undefined, draining, state(), POLICY, T);
    // weight 0's ready pods are not taken: the draining pod of the weighted backend is, as a fallback.
    expect(fallback).toMatchObject({ kind: 'new', fallback: true, endpoint: { backend: 'shop/v1:80', condition: 'draining' } });
    expect(decide(undefined, draining, state(), { ...POLICY, noReadyEndpoint: 'reject' }, T)).toEqual({ kind: 'reject', reason: 'no-endpoint' });
  });
});

describe('traffic split: sessions stay where they are', () => {
  it('a canary going 10 -> 50 -> 100 (and back) moves no session', () => {
    const v1 = pods('v1', 3);
    const v2 = pods('v2', 3);
    const s = state();
    const made = newSessions(s, makeSplitSnapshot(1, [backend('v1', 90, v1), backend('v2', 10, v2)]), 200);
    for (const [w1, w2, version] of [[50, 50, 2], [0, 100, 3], [100, 0, 4]] as const) {
      const view = makeSplitSnapshot(version, [backend('v1', w1, v1), backend('v2', w2, v2)]);
      for (const m of made) expect(decide(m.token, view, s, POLICY, T)).toEqual({ kind: 'pin', endpoint: view.byId.get(m.endpoint.id) });
      // and every new session of that view follows the new weights
      const fresh = newSessions(s, view, 20);
      if (w1 === 0) expect(countByBackend(fresh)).toEqual({ 'shop/v2:80': 20 });
      if (w2 === 0) expect(countByBackend(fresh)).toEqual({ 'shop/v1:80': 20 });
    }
  });

  it('weight 0 (blue/green): no new session, the old version drains pod by pod as usual', () => {
    const blue = pods('blue', 2);
    const green = pods('green', 2);
    const s = state();
    const made = newSessions(s, makeSplitSnapshot(1, [backend('blue', 100, blue), backend('green', 0, green)]), 20);
    expect(countByBackend(made)).toEqual({ 'shop/blue:80': 20 });

    // Switch: blue 0, green 100. A blue pod then terminates (still serving), the other is removed.
    const terminating = { ...(blue[0] as Endpoint), condition: 'draining' as const };
    const view = makeSplitSnapshot(2, [backend('blue', 0, [terminating]), backend('green', 100, green)]);
    for (const m of made) {
      const d = decide(m.token, view, s, POLICY, T);
      if (m.endpoint.id === terminating.id) expect(d).toEqual({ kind: 'pin', endpoint: view.byId.get(terminating.id) });
      else expect(d).toMatchObject({ kind: 'repin', reason: 'gone', endpoint: { backend: 'shop/green:80' } });
    }
    expect(countByBackend(newSessions(s, view, 10))).toEqual({ 'shop/green:80': 10 });
  });

  it('a backendRef removed from the rule: its sessions re-pin with a new token to the remaining backends', () => {
    const v1 = pods('v1', 2);
    const v2 = pods('v2', 2);
    const s = state();
    const made = newSessions(s, makeSplitSnapshot(1, [backend('v1', 50, v1), backend('v2', 50, v2)]), 40);
    const view = makeSplitSnapshot(2, [backend('v1', 50, v1)]);
    for (const m of made) {
      const d = decide(m.token, view, s, POLICY, T);
      if (m.endpoint.backend === 'shop/v1:80') expect(d.kind).toBe('pin');
      else {
        expect(d).toMatchObject({ kind: 'repin', reason: 'gone' });
        expect(endpointOf(d).backend).toBe('shop/v1:80');
        expect((d as { token: string }).token).not.toBe(m.token);
      }
    }
  });

  it('a pod listed by two backends is one endpoint, of the first', () => {
    const shared = pods('v1', 1);
    const view = makeSplitSnapshot(1, [backend('v1', 1, shared), backend('v2', 1, [...shared, ...pods('v2', 1)])]);
    expect(view.byId.size).toBe(2);
    expect(view.byId.get(shared[0]!.id)?.backend).toBe('shop/v1:80');
    expect(view.backends?.map((b) => b.ready.length)).toEqual([1, 1]);
  });

  it('unchanged pods keep their endpoint objects from one split view to the next', () => {
    const v1 = pods('v1', 2);
    const a = makeSplitSnapshot(1, [backend('v1', 90, v1)]);
    const b = makeSplitSnapshot(2, [backend('v1', 10, v1)]);
    expect(b.byId.get(v1[0]!.id)).toBe(a.byId.get(v1[0]!.id));
  });
});
