import { afterEach, describe, expect, it } from 'vitest';
import { decide, type AffinityPolicy, type AffinityState } from '../../src/affinity/decide.js';
import { affinityStatus, type Decision } from '../../src/affinity/decision.js';
import { RefIndex } from '../../src/affinity/ref-index.js';
import { acquireAffinityState } from '../../src/affinity/state.js';
import { createStrategy, SessionTable, WeightedSplit, type StrategyName } from '../../src/balancer/index.js';
import { makeSnapshot, type Endpoint, type EndpointCondition, type EndpointSnapshot } from '../../src/endpoints/types.js';
import { FailureMarks } from '../../src/failover/failure-marks.js';
import type { Lease } from '../../src/shared.js';
import { TokenCodec } from '../../src/token.js';
import { seededRandomInt } from '../support/seeded-random.js';

const K0 = 'decide-key-0-0123456789abcdef-0123456789';
const K1 = 'decide-key-1-0123456789abcdef-0123456789';
const BINDING = 'service:cart';
const T = 1_750_000_000; // seconds


const codec = (secrets: string[] = [K0], binding = BINDING) => new TokenCodec({ secrets, binding, cacheSize: 1000 });

function makeState(opts: { secrets?: string[]; binding?: string; strategy?: StrategyName; seed?: number; isFailing?: (id: string) => boolean } = {}): AffinityState {
  const c = codec(opts.secrets, opts.binding);
  return {
    codec: c,
    refs: new RefIndex(c),
    sessions: new SessionTable({ max: 10_000 }),
    strategy: createStrategy(opts.strategy ?? 'least-sessions', seededRandomInt(opts.seed ?? 1)),
    split: new WeightedSplit(),
    isFailing: opts.isFailing,
  };
}

const POLICY: AffinityPolicy = { strict: false, noReadyEndpoint: 'draining', absoluteTimeout: 0, idleTimeout: 0, refreshAfter: 0 };
const policy = (over: Partial<AffinityPolicy> = {}): AffinityPolicy => ({ ...POLICY, ...over });

function pod(name: string, condition: EndpointCondition = 'ready', host = `192.0.2.${(name.charCodeAt(0) * 7 + name.length) % 250}`): Endpoint {
  return { id: `uid-${name}`, name: `pod-${name}`, host, port: 8080, condition, weight: 1 };
}

const snap = (...endpoints: Endpoint[]): EndpointSnapshot => makeSnapshot(1, endpoints);

/** A token as another replica (or an earlier process) would have issued it. */
const tokenFor = (endpoint: Endpoint, at = T, secrets = [K0], binding = BINDING) => codec(secrets, binding).issue(endpoint.id, at);

/** Checks that a new/repin decision carries a token naming its endpoint, under the signing key. */
function expectTokenNames(d: Decision, secrets = [K0]) {
  if (d.kind !== 'new' && d.kind !== 'repin') throw new Error(`expected new or repin, got ${JSON.stringify(d)}`);
  const verifier = codec(secrets);
  const v = verifier.verify(d.token);
  expect(v.ok).toBe(true);
  if (!v.ok) return undefined;
  expect(v.claims.keyIndex).toBe(0);
  expect(v.claims.ref).toBe(verifier.ref(d.endpoint.id));
  return v.claims;
}

function expectInSnapshot(d: Decision, s: EndpointSnapshot) {
  if (!('endpoint' in d)) throw new Error(`expected an endpoint, got ${JSON.stringify(d)}`);
  expect(s.byId.get(d.endpoint.id)).toBe(d.endpoint);
}

describe('decide: requests without a usable token start a new session on a ready endpoint', () => {
  const a = pod('a');
  const b = pod('b');
  const gone = pod('gone');
  const drain = pod('d', 'draining');
  const s = snap(a, b, drain);
  const cases: Array<[string, () => string | null | undefined, string]> = [
    ['no token (undefined)', () => undefined, 'none'],
    ['no token (null)', () => null, 'none'],
    ['no token (empty)', () => '', 'none'],
    ['malformed', () => 'not-a-token', 'malformed'],
    ['malformed (bad version)', () => {
      const raw = Buffer.from(tokenFor(a).token, 'base64url');
      raw[0] = 9;
      return raw.toString('base64url');
    }, 'malformed'],
    ['bad signature (another secret)', () => tokenFor(a, T, [K1]).token, 'bad-signature'],
    ['foreign service token (same secret, another binding)', () => tokenFor(a, T, [K0], 'service:other').token, 'bad-signature'],
    ['tampered token', () => {
      const raw = Buffer.from(tokenFor(gone).token, 'base64url');
      raw[20] = raw[20]! ^ 0x80;
      return raw.toString('base64url');
    }, 'bad-signature'],
  ];

  for (const [name, token, reason] of cases) {
    it(name, () => {
      const state = makeState();
      const d = decide(token(), s, state, POLICY, T);
      expect(d.kind).toBe('new');
      if (d.kind !== 'new') return;
      expect(d.reason).toBe(reason);
      expect(d.fallback).toBe(false);
      expect(d.endpoint.condition).toBe('ready');
      expectInSnapshot(d, s);
      const claims = expectTokenNames(d);
      expect(claims?.issuedAt).toBe(T);
      expect(affinityStatus(d)).toBe(reason);
      // The balancer counts the new session.
      expect(state.sessions.count(d.endpoint.id)).toBe(1);
    });
  }

  it('never puts a new session on a draining endpoint while a ready one exists', () => {
    const state = makeState();
    for (let i = 0; i < 50; i++) {
      const d = decide(undefined, s, state, POLICY, T);
      expect(d.kind === 'new' && d.endpoint.id).not.toBe(drain.id);
    }
  });

  it('spreads new sessions with the balancer (least-sessions: exactly even)', () => {
    const state = makeState();
    const four = snap(pod('a'), pod('b'), pod('c'), pod('e'));
    for (let i = 0; i < 40; i++) decide(undefined, four, state, POLICY, T);
    for (const e of four.ready) expect(state.sessions.count(e.id)).toBe(10);
  });
});

describe('decide: valid tokens', () => {
  const a = pod('a');
  const b = pod('b');

  it('ready endpoint -> pin to it, no re-issue', () => {
    const state = makeState();
    const s = snap(a, b);
    for (const e of [a, b]) {
      const { token, claims } = tokenFor(e);
      const d = decide(token, s, state, POLICY, T + 10);
      expect(d).toEqual({ kind: 'pin', endpoint: e });
      expect(affinityStatus(d)).toBe('pinned');
      expect(state.sessions.count(e.id)).toBe(1);
      // Seen again: still one session.
      decide(token, s, state, POLICY, T + 20);
      expect(state.sessions.count(e.id)).toBe(1);
      expect(claims.sid).toMatch(/^[0-9a-f]{8}$/);
    }
  });

  it('a token issued by decide itself pins on the next request', () => {
    const state = makeState();
    const s = snap(a, b);
    const first = decide(undefined, s, state, POLICY, T);
    if (first.kind !== 'new') throw new Error('expected new');
    const again = decide(first.token, s, state, POLICY, T + 1);
    expect(again).toEqual({ kind: 'pin', endpoint: first.endpoint });
  });

  it('a returning client follows every view change, whatever its claims remember from the last request', () => {
    const state = makeState();
    const first = decide(undefined, snap(a), state, POLICY, T);
    if (first.kind !== 'new') throw new Error('expected new');
    const token = first.token;
    const s1 = makeSnapshot(1, [a, b]);
    expect(decide(token, s1, state, POLICY, T + 1)).toEqual({ kind: 'pin', endpoint: a });
    // Derived views (a watch update): the pod starts terminating, then is removed.
    const drainingA = pod('a', 'draining');
    const s2 = makeSnapshot(2, [drainingA, b], { snapshot: s1, changes: new Map([[a.id, drainingA]]) });
    const onS2 = decide(token, s2, state, POLICY, T + 2);
    expect(onS2.kind === 'pin' && onS2.endpoint).toBe(drainingA);
    // A request still deciding on the previous view, then the new one again.
    expect(decide(token, s1, state, POLICY, T + 3)).toEqual({ kind: 'pin', endpoint: a });
    const again = decide(token, s2, state, POLICY, T + 3);
    expect(again.kind === 'pin' && again.endpoint).toBe(drainingA);
    const s3 = makeSnapshot(3, [b], { snapshot: s2, changes: new Map([[a.id, undefined]]) });
    const moved = decide(token, s3, state, POLICY, T + 4);
    expect(moved.kind === 'repin' && moved.endpoint).toBe(b);
    // And the same pod back (a rebuilt view, not derived): pinned to it again.
    expect(decide(token, snap(a, b), state, POLICY, T + 5)).toEqual({ kind: 'pin', endpoint: a });
  });

  it('draining (terminating, serving) endpoint -> pin to it: the existing session is honoured', () => {
    const drainingA = pod('a', 'draining');
    const s = snap(drainingA, b);
    for (const p of [POLICY, policy({ noReadyEndpoint: 'reject' }), policy({ strict: true })]) {
      const d = decide(tokenFor(a).token, s, makeState(), p, T + 5);
      expect(d).toEqual({ kind: 'pin', endpoint: drainingA });
      expect(affinityStatus(d)).toBe('draining');
    }
  });

  it('endpoint removed -> repin (gone) to a ready endpoint with a new session', () => {
    const gone = pod('gone');
    const drain = pod('d', 'draining');
    const s = snap(a, b, drain);
    const old = tokenFor(gone);
    const d = decide(old.token, s, makeState(), POLICY, T + 5);
    expect(d.kind).toBe('repin');
    if (d.kind !== 'repin') return;
    expect(d.reason).toBe('gone');
    expect(d.fallback).toBe(false);
    expect(d.endpoint.condition).toBe('ready');
    expectInSnapshot(d, s);
    const claims = expectTokenNames(d);
    expect(claims?.sid).not.toBe(old.claims.sid);
    expect(affinityStatus(d)).toBe('gone');
  });

  it('a new pod that reuses a removed pod\'s IP is a different endpoint: repin, not pin', () => {
    const before = pod('a', 'ready', '192.0.2.77');
    const reused = { ...pod('a2', 'ready', '192.0.2.77'), port: before.port };
    const s1 = snap(before, b);
    const state = makeState();
    const first = decide(undefined, snap(before), state, POLICY, T);
    if (first.kind !== 'new') throw new Error('expected new');
    expect(decide(first.token, s1, state, POLICY, T + 1)).toEqual({ kind: 'pin', endpoint: before });
    const s2 = snap(reused, b);
    const d = decide(first.token, s2, state, POLICY, T + 2);
    expect(d.kind).toBe('repin');
    if (d.kind !== 'repin') return;
    expect(d.reason).toBe('gone');
    expect(d.token).not.toBe(first.token);
    expectInSnapshot(d, s2);
    // Also from another replica, that never saw the first token.
    const other = decide(first.token, s2, makeState(), POLICY, T + 2);
    expect(other.kind === 'repin' && other.reason).toBe('gone');
  });

  it('strict: endpoint gone -> reject (strict); endpoint present or no token -> as usual', () => {
    const s = snap(a, b);
    const strict = policy({ strict: true });
    const d = decide(tokenFor(pod('gone')).token, s, makeState(), strict, T);
    expect(d).toEqual({ kind: 'reject', reason: 'strict' });
    expect(affinityStatus(d)).toBe('strict');
    expect(decide(tokenFor(a).token, s, makeState(), strict, T)).toEqual({ kind: 'pin', endpoint: a });
    expect(decide(undefined, s, makeState(), strict, T).kind).toBe('new');
    expect(decide('junk', s, makeState(), strict, T).kind).toBe('new');
  });
});

describe('decide: no ready endpoint, or no endpoint view', () => {
  const d1 = pod('d1', 'draining');
  const d2 = pod('d2', 'draining');
  const onlyDraining = snap(d1, d2);

  it('only draining endpoints, policy draining -> new session on a draining endpoint, marked fallback', () => {
    for (const token of [undefined, 'junk']) {
      const d = decide(token, onlyDraining, makeState(), policy({ noReadyEndpoint: 'draining' }), T);
      expect(d.kind).toBe('new');
      if (d.kind !== 'new') return;
      expect(d.fallback).toBe(true);
      expect(d.endpoint.condition).toBe('draining');
      expectInSnapshot(d, onlyDraining);
      expectTokenNames(d);
    }
  });

  it('only draining endpoints, policy draining, token of a removed endpoint -> repin with fallback', () => {
    const d = decide(tokenFor(pod('gone')).token, onlyDraining, makeState(), POLICY, T);
    expect(d.kind === 'repin' && d.fallback && d.reason).toBe('gone');
    expectInSnapshot(d, onlyDraining);
  });

  it('only draining endpoints, policy reject -> reject (no-endpoint)', () => {
    const reject = policy({ noReadyEndpoint: 'reject' });
    for (const token of [undefined, 'junk', tokenFor(pod('gone')).token]) {
      const d = decide(token, onlyDraining, makeState(), reject, T);
      expect(d).toEqual({ kind: 'reject', reason: 'no-endpoint' });
      expect(affinityStatus(d)).toBe('no-endpoint');
    }
    // A session already on a draining endpoint is still honoured.
    expect(decide(tokenFor(d1).token, onlyDraining, makeState(), reject, T)).toEqual({ kind: 'pin', endpoint: d1 });
  });

  it('no endpoints at all -> reject (no-endpoint), whatever the token', () => {
    const empty = snap();
    for (const p of [POLICY, policy({ noReadyEndpoint: 'reject' })]) {
      for (const token of [undefined, 'junk', tokenFor(pod('a')).token]) {
        expect(decide(token, empty, makeState(), p, T)).toEqual({ kind: 'reject', reason: 'no-endpoint' });
      }
    }
  });

  it('endpoint view not known (snapshot undefined) -> passthrough, touching nothing', () => {
    const state = makeState();
    for (const token of [undefined, 'junk', tokenFor(pod('a')).token]) {
      const d = decide(token, undefined, state, policy({ strict: true }), T);
      expect(d).toEqual({ kind: 'passthrough', reason: 'not-synced' });
      expect(affinityStatus(d)).toBe('not-synced');
    }
    expect(state.sessions.size).toBe(0);
  });
});

describe('decide: timeouts', () => {
  const a = pod('a');
  const b = pod('b');
  const s = snap(a, b);

  it('absolute timeout: a session older than it starts over (reason expired)', () => {
    const p = policy({ absoluteTimeout: 3600 });
    const { token, claims } = tokenFor(a, T);
    expect(decide(token, s, makeState(), p, T + 3600)).toEqual({ kind: 'pin', endpoint: a });
    const d = decide(token, s, makeState(), p, T + 3601);
    expect(d.kind === 'new' && d.reason).toBe('expired');
    const fresh = expectTokenNames(d);
    expect(fresh?.sid).not.toBe(claims.sid);
    expect(fresh?.issuedAt).toBe(T + 3601);
  });

  it('idle timeout: a session unseen for longer starts over (reason idle)', () => {
    const p = policy({ idleTimeout: 600, refreshAfter: 300 });
    const { token } = tokenFor(a, T);
    expect(decide(token, s, makeState(), p, T + 600).kind).toBe('pin');
    const d = decide(token, s, makeState(), p, T + 601);
    expect(d.kind === 'new' && d.reason).toBe('idle');
    expect(affinityStatus(d)).toBe('idle');
    expectTokenNames(d);
  });

  it('whole-second tokens never cut a session before its timeout, at most 1 s after', () => {
    const p = policy({ absoluteTimeout: 60, idleTimeout: 30, refreshAfter: 15 });
    for (const frac of [0, 0.001, 0.5, 0.999]) {
      const { token } = tokenFor(a, T + frac);
      expect(decide(token, s, makeState(), p, T + frac + 30).kind).toBe('pin');
      expect(decide(token, s, makeState(), p, T + frac + 31.001).kind).toBe('new');
    }
  });

  it('idle refresh: older than refreshAfter -> pin with a re-issued token (same sid and issuedAt, new touchedAt)', () => {
    const p = policy({ idleTimeout: 600, refreshAfter: 300 });
    const state = makeState();
    const { token, claims } = tokenFor(a, T);
    expect(decide(token, s, state, p, T + 299)).toEqual({ kind: 'pin', endpoint: a });
    const d = decide(token, s, state, p, T + 300);
    expect(d.kind).toBe('pin');
    if (d.kind !== 'pin') return;
    expect(d.endpoint).toBe(a);
    expect(d.reissue?.reason).toBe('refreshed');
    const v = codec().verify(d.reissue!.token);
    expect(v.ok).toBe(true);
    if (!v.ok) return;
    expect(v.claims.sid).toBe(claims.sid);
    expect(v.claims.issuedAt).toBe(T);
    expect(v.claims.touchedAt).toBe(T + 300);
    expect(v.claims.ref).toBe(claims.ref);
    // The refreshed token carries the session past the first token's idle limit.
    expect(decide(token, s, makeState(), p, T + 899).kind).toBe('new');
    const later = decide(d.reissue!.token, s, makeState(), p, T + 899);
    expect(later.kind === 'pin' && later.endpoint).toBe(a);
    // One session, counted once.
    expect(state.sessions.count(a.id)).toBe(1);
  });

  it('refreshing never extends the absolute timeout', () => {
    const p = policy({ absoluteTimeout: 3600, idleTimeout: 600, refreshAfter: 300 });
    const state = makeState();
    let { token } = tokenFor(a, T);
    for (let t = T + 500; t <= T + 3500; t += 500) {
      const d = decide(token, s, state, p, t);
      expect(d.kind).toBe('pin');
      if (d.kind === 'pin' && d.reissue) token = d.reissue.token;
    }
    const d = decide(token, s, state, p, T + 3601);
    expect(d.kind === 'new' && d.reason).toBe('expired');
  });

  it('without idle timeout nothing is ever refreshed, and no timeout ever expires', () => {
    const { token } = tokenFor(a, T);
    expect(decide(token, s, makeState(), POLICY, T + 10 * 365 * 86_400)).toEqual({ kind: 'pin', endpoint: a });
  });
});

describe('decide: key rotation', () => {
  const a = pod('a');
  const s = snap(a, pod('b'));

  it('a token under an older key -> pin with a token re-issued under key 0 (same session)', () => {
    const state = makeState({ secrets: [K1, K0] });
    const old = tokenFor(a, T, [K0]);
    const d = decide(old.token, s, state, POLICY, T + 60);
    expect(d.kind).toBe('pin');
    if (d.kind !== 'pin') return;
    expect(d.endpoint).toBe(a);
    expect(d.reissue?.reason).toBe('rotated');
    const onlyNew = codec([K1]).verify(d.reissue!.token);
    expect(onlyNew.ok).toBe(true);
    if (!onlyNew.ok) return;
    expect(onlyNew.claims.sid).toBe(old.claims.sid);
    expect(onlyNew.claims.issuedAt).toBe(T);
    expect(onlyNew.claims.touchedAt).toBe(T + 60);
    expect(onlyNew.claims.ref).toBe(codec([K1]).ref(a.id));
    // The re-issued token then pins without re-issue.
    expect(decide(d.reissue!.token, s, state, POLICY, T + 61)).toEqual({ kind: 'pin', endpoint: a });
  });

  it('an old-key token whose endpoint is gone is re-pinned under the new key', () => {
    const state = makeState({ secrets: [K1, K0] });
    const d = decide(tokenFor(pod('gone'), T, [K0]).token, s, state, POLICY, T);
    expect(d.kind === 'repin' && d.reason).toBe('gone');
    expectTokenNames(d, [K1]);
  });

  it('once the old key is dropped, its tokens start over (bad-signature)', () => {
    const d = decide(tokenFor(a, T, [K0]).token, s, makeState({ secrets: [K1] }), POLICY, T);
    expect(d.kind === 'new' && d.reason).toBe('bad-signature');
  });
});

describe('decide: change on failure (isFailing)', () => {
  const a = pod('a');
  const b = pod('b');
  const c = pod('c');
  let now = 1_000_000;
  const marks = new FailureMarks(10_000, () => now);

  it('moves a pinned session off a failing endpoint (repin failing) and keeps new ones off it', () => {
    const s = snap(a, b, c);
    const state = makeState({ isFailing: marks.isFailing });
    const { token } = tokenFor(a);
    expect(decide(token, s, state, POLICY, T)).toEqual({ kind: 'pin', endpoint: a });
    marks.mark(a.id);
    const d = decide(token, s, state, POLICY, T + 1);
    expect(d.kind).toBe('repin');
    if (d.kind !== 'repin') return;
    expect(d.reason).toBe('failing');
    expect(affinityStatus(d)).toBe('failing');
    expect(d.endpoint.id).not.toBe(a.id);
    expectTokenNames(d);
    for (let i = 0; i < 40; i++) {
      const n = decide(undefined, s, state, POLICY, T + 2);
      expect(n.kind === 'new' && n.endpoint.id).not.toBe(a.id);
    }
    // Once the hold is over, the endpoint is usable again (and least loaded).
    now += 10_001;
    expect(decide(token, s, state, POLICY, T + 3)).toEqual({ kind: 'pin', endpoint: a });
    const n = decide(undefined, s, state, POLICY, T + 3);
    expect(n.kind === 'new' && n.endpoint.id).toBe(a.id);
  });

  it('strict mode answers a failing pinned endpoint with reject (strict)', () => {
    const state = makeState({ isFailing: (id) => id === a.id });
    expect(decide(tokenFor(a).token, snap(a, b), state, policy({ strict: true }), T)).toEqual({ kind: 'reject', reason: 'strict' });
  });

  it('with every ready endpoint failing, falls back to a draining one (policy draining)', () => {
    const d = pod('d', 'draining');
    const state = makeState({ isFailing: (id) => id !== d.id });
    const r = decide(undefined, snap(a, b, d), state, POLICY, T);
    expect(r.kind === 'new' && r.fallback && r.endpoint).toBe(d);
  });
});

describe('decide: invariants', () => {
  it('never routes outside the snapshot (random snapshots, tokens and policies)', () => {
    const rnd = seededRandomInt(2024);
    const chance = (p: number) => rnd(1_000_000) < p * 1_000_000;
    const pool = Array.from({ length: 10 }, (_, i) => pod(`p${i}`, 'ready', `192.0.2.${i % 4}`));
    const failing = new Set<string>();
    const state = makeState({ secrets: [K0, K1], isFailing: (id) => failing.has(id) });
    const verifier = codec([K0, K1]);
    const issuers = [codec([K0]), codec([K1]), codec([K0], 'service:other'), codec(['x'.repeat(40)])];
    const seen: string[] = [];
    const violations: string[] = [];
    const kinds = new Map<string, number>();

    for (let i = 0; i < 3000; i++) {
      const endpoints = pool.filter(() => chance(0.6)).map((e) => (chance(0.3) ? { ...e, condition: 'draining' as const } : e));
      const s = makeSnapshot(i, endpoints);
      failing.clear();
      for (const e of pool) if (chance(0.1)) failing.add(e.id);
      const p = policy({
        strict: chance(0.2),
        noReadyEndpoint: chance(0.5) ? 'draining' : 'reject',
        absoluteTimeout: chance(0.3) ? 1 + rnd(5000) : 0,
        idleTimeout: chance(0.3) ? 1 + rnd(2000) : 0,
      });
      const now = T + rnd(10_000);
      const pick = rnd(6);
      let token: string | undefined;
      if (pick === 0) token = undefined;
      else if (pick === 1) token = Buffer.from(Array.from({ length: 37 }, () => rnd(256))).toString('base64url');
      else if (pick === 2 && seen.length > 0) token = seen[rnd(seen.length)];
      else {
        const issuer = issuers[rnd(issuers.length)]!;
        const target = pool[rnd(pool.length)]!;
        token = issuer.issue(target.id, T + rnd(10_000)).token;
        if (chance(0.1)) {
          const raw = Buffer.from(token, 'base64url');
          raw[1 + rnd(36)]! ^= 1 << rnd(8);
          token = raw.toString('base64url');
        }
      }

      const d = decide(token, s, state, p, now);
      kinds.set(d.kind, (kinds.get(d.kind) ?? 0) + 1);
      const where = `iteration ${i}: ${d.kind}`;
      const usableReady = s.ready.filter((e) => !failing.has(e.id));
      const usableDraining = s.draining.filter((e) => !failing.has(e.id));
      if (d.kind === 'passthrough') violations.push(`${where}: passthrough with a snapshot`);
      if ('endpoint' in d && s.byId.get(d.endpoint.id) !== d.endpoint) violations.push(`${where}: ${d.endpoint.id} not in snapshot`);
      if (d.kind === 'new' || d.kind === 'repin') {
        seen.push(d.token);
        if (failing.has(d.endpoint.id)) violations.push(`${where}: failing endpoint chosen`);
        if (!d.fallback && d.endpoint.condition !== 'ready') violations.push(`${where}: draining without fallback`);
        if (d.fallback && (d.endpoint.condition !== 'draining' || usableReady.length > 0)) violations.push(`${where}: needless fallback`);
        const v = verifier.verify(d.token);
        if (!v.ok || v.claims.keyIndex !== 0 || v.claims.ref !== verifier.ref(d.endpoint.id)) violations.push(`${where}: token does not name the endpoint`);
      }
      if (d.kind === 'pin') {
        const v = verifier.verify(token ?? '');
        if (!v.ok || v.claims.ref !== verifier.ref(d.endpoint.id, v.claims.keyIndex)) violations.push(`${where}: pinned to an endpoint the token does not name`);
        if (failing.has(d.endpoint.id)) violations.push(`${where}: pinned to a failing endpoint`);
        if (v.ok && p.absoluteTimeout > 0 && now - v.claims.issuedAt > p.absoluteTimeout) violations.push(`${where}: pinned past the absolute timeout`);
        if (v.ok && p.idleTimeout > 0 && now - v.claims.touchedAt > p.idleTimeout) violations.push(`${where}: pinned past the idle timeout`);
        if (v.ok && v.claims.keyIndex > 0 && d.reissue?.reason !== 'rotated') violations.push(`${where}: old-key token not re-issued`);
        if (d.reissue) {
          seen.push(d.reissue.token);
          const r = verifier.verify(d.reissue.token);
          if (!r.ok || r.claims.keyIndex !== 0 || r.claims.ref !== verifier.ref(d.endpoint.id) || (v.ok && r.claims.sid !== v.claims.sid)) {
            violations.push(`${where}: re-issued token does not continue the session`);
          }
        }
      }
      if (d.kind === 'reject' && d.reason === 'no-endpoint' && (usableReady.length > 0 || (p.noReadyEndpoint === 'draining' && usableDraining.length > 0))) {
        violations.push(`${where}: rejected with a usable endpoint`);
      }
      if (d.kind === 'reject' && d.reason === 'strict' && !p.strict) violations.push(`${where}: strict reject without strict`);
    }
    expect(violations).toEqual([]);
    // The run exercised every kind that a known view can produce.
    for (const k of ['pin', 'new', 'repin', 'reject']) expect(kinds.get(k) ?? 0).toBeGreaterThan(20);
  });

  describe('two replicas (same secrets and binding, no shared state) decide alike', () => {
    const leases: Array<Lease<AffinityState>> = [];
    afterEach(() => {
      for (const l of leases.splice(0)) l.release();
    });

    it('pins every token to the same endpoint on both', () => {
      const key = { binding: BINDING, secrets: [K1, K0], strategy: 'least-sessions' as const, sessionTtlMs: 1_800_000, failureHoldMs: null };
      const replicaA = acquireAffinityState({ ...key, sourceKey: 'replica-a' });
      const replicaB = acquireAffinityState({ ...key, sourceKey: 'replica-b' });
      leases.push(replicaA, replicaB);
      expect(replicaA.value).not.toBe(replicaB.value);
      // Each replica builds its own view of the same endpoints.
      const endpoints = ['a', 'b', 'c', 'd', 'e', 'f'].map((n) => pod(n));
      const d = pod('z', 'draining');
      const viewA = makeSnapshot(1, [...endpoints, d]);
      const viewB = makeSnapshot(7, [d, ...endpoints.map((e) => ({ ...e }))].reverse());
      for (let i = 0; i < 200; i++) {
        const first = decide(undefined, viewA, replicaA.value, POLICY, T + i);
        if (first.kind !== 'new') throw new Error('expected new');
        const onB = decide(first.token, viewB, replicaB.value, POLICY, T + i + 1);
        expect(onB.kind).toBe('pin');
        expect(onB.kind === 'pin' && onB.endpoint.id).toBe(first.endpoint.id);
      }
      // Tokens of the previous key too, and tokens of a draining pod.
      for (const e of [...endpoints, d]) {
        const old = tokenFor(e, T, [K0]).token;
        const ra = decide(old, viewA, replicaA.value, POLICY, T + 5);
        const rb = decide(old, viewB, replicaB.value, POLICY, T + 5);
        expect(ra.kind === 'pin' && ra.endpoint.id).toBe(e.id);
        expect(rb.kind === 'pin' && rb.endpoint.id).toBe(e.id);
        expect(ra.kind === 'pin' && ra.reissue?.reason).toBe('rotated');
      }
    });
  });
});

describe('decide: legacy cookies (the endpoint an accept_legacy_cookies cookie selects)', () => {
  const a = pod('a');
  const b = pod('b');
  const c = pod('c');

  it('no token of ours: a new session on the legacy endpoint, with our token', () => {
    const state = makeState();
    const s = snap(a, b, c);
    // least-sessions would pick a first: the legacy cookie says c.
    const d = decide(undefined, s, state, POLICY, T, c);
    expect(d.kind === 'new' && d.reason).toBe('legacy');
    expect(d.kind === 'new' && d.endpoint).toBe(c);
    expect(d.kind === 'new' && d.fallback).toBe(false);
    expect(affinityStatus(d)).toBe('legacy');
    expectTokenNames(d);
    expect(state.sessions.count(c.id)).toBe(1);
    // Our token then pins it, with no legacy cookie needed.
    if (d.kind !== 'new') return;
    expect(decide(d.token, s, state, POLICY, T + 1)).toEqual({ kind: 'pin', endpoint: c });
  });

  it('a token that does not verify (malformed, another secret) gives way to the legacy cookie', () => {
    const s = snap(a, b, c);
    for (const token of ['garbage', tokenFor(a, T, [K1]).token]) {
      const d = decide(token, s, makeState(), POLICY, T, c);
      expect(d.kind === 'new' && d.reason).toBe('legacy');
      expect(d.kind === 'new' && d.endpoint).toBe(c);
    }
  });

  it('our own valid token always wins: pinned, re-pinned, expired or idle alike', () => {
    const s = snap(a, b, c);
    expect(decide(tokenFor(a).token, s, makeState(), POLICY, T + 1, c)).toEqual({ kind: 'pin', endpoint: a });
    const gone = decide(tokenFor(pod('gone')).token, s, makeState(), POLICY, T + 1, c);
    expect(gone.kind).toBe('repin');
    const expired = decide(tokenFor(a).token, s, makeState(), policy({ absoluteTimeout: 10 }), T + 100, c);
    expect(expired.kind === 'new' && expired.reason).toBe('expired');
    const idle = decide(tokenFor(a).token, s, makeState(), policy({ idleTimeout: 10, refreshAfter: 5 }), T + 100, c);
    expect(idle.kind === 'new' && idle.reason).toBe('idle');
  });

  it('a legacy endpoint that is not in the view (removed, not serving) is no cookie: a plain new session', () => {
    const removed = pod('removed');
    const s = snap(a, b);
    const d = decide(undefined, s, makeState(), POLICY, T, removed);
    expect(d.kind === 'new' && d.reason).toBe('none');
    expectInSnapshot(d, s);
    expect(d.kind === 'new' && d.endpoint.condition).toBe('ready');
  });

  it('a draining (terminating, serving) legacy endpoint keeps its client, whatever no_ready_endpoint says', () => {
    const drainingC = pod('c', 'draining');
    const s = snap(a, b, drainingC);
    for (const p of [POLICY, policy({ noReadyEndpoint: 'reject' })]) {
      const d = decide(undefined, s, makeState(), p, T, drainingC);
      expect(d.kind === 'new' && d.reason).toBe('legacy');
      expect(d.kind === 'new' && d.endpoint).toBe(drainingC);
    }
  });

  it('a failing legacy endpoint (change on failure) is no cookie', () => {
    const s = snap(a, b, c);
    const d = decide(undefined, s, makeState({ isFailing: (id) => id === c.id }), POLICY, T, c);
    expect(d.kind === 'new' && d.reason).toBe('none');
    expect(d.kind === 'new' && d.endpoint.id).not.toBe(c.id);
  });
});
