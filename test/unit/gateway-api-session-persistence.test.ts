import { describe, expect, it } from 'vitest';
import {
  DEFAULT_COOKIE_PATH,
  legacyMatchCookiePath,
  parseSessionPersistence,
  policyCookiePath,
  ruleSessionPolicy,
} from '../../src/endpoints/gateway-api/session-persistence.js';

const ok = (value: unknown) => {
  const r = parseSessionPersistence(value);
  if (!r.ok) throw new Error(`expected a policy, got: ${r.reason}`);
  return r;
};
const reason = (value: unknown) => {
  const r = parseSessionPersistence(value);
  if (r.ok) throw new Error(`expected a refusal, got ${JSON.stringify(r.policy)}`);
  return r.reason;
};

describe('the manifests of the conformance PRs (v1.x shape)', () => {
  it('#4350 httproute-session-persistence-cookie.yaml: {type: Cookie, cookieConfig: {lifetimeType: Session}}', () => {
    expect(ok({ type: 'Cookie', cookieConfig: { lifetimeType: 'Session' } })).toEqual({
      ok: true,
      shape: 'v1',
      policy: { type: 'cookie', lifetime: 'session' },
      ignored: [],
    });
  });

  it('#4954 httproute-session-persistence-cookie.yaml: {type: Cookie}, a session cookie with a generated name', () => {
    expect(ok({ type: 'Cookie' })).toMatchObject({ shape: 'either', policy: { type: 'cookie', lifetime: 'session' } });
    expect(ok({ type: 'Cookie' }).policy).not.toHaveProperty('name');
  });

  it('#4954 ...-permanent-lifetime.yaml: absoluteTimeout 1h + Permanent -> Max-Age 3600', () => {
    expect(ok({ type: 'Cookie', absoluteTimeout: '1h', cookieConfig: { lifetimeType: 'Permanent' } }).policy).toEqual({
      type: 'cookie',
      lifetime: 'permanent',
      absoluteTimeoutS: 3600,
    });
  });

  it('{} is valid in v1.1-v1.6 (type defaults to Cookie, lifetimeType to Session)', () => {
    expect(ok({}).policy).toEqual({ type: 'cookie', lifetime: 'session' });
  });
});

describe('Gateway API v1.1-v1.6 fields', () => {
  it('v1.1-v1.5 with sessionName, absoluteTimeout and idleTimeout (GEP-2257 durations, seconds rounded up)', () => {
    expect(ok({ sessionName: 'SHOPSESSION', absoluteTimeout: '8h', idleTimeout: '30m', type: 'Cookie' })).toEqual({
      ok: true,
      shape: 'v1',
      policy: { type: 'cookie', name: 'SHOPSESSION', lifetime: 'session', absoluteTimeoutS: 28_800, idleTimeoutS: 1800 },
      ignored: [],
    });
    expect(ok({ absoluteTimeout: '1h30m10s' }).policy).toMatchObject({ absoluteTimeoutS: 5410 });
    expect(ok({ absoluteTimeout: '10s30m1h' }).policy).toMatchObject({ absoluteTimeoutS: 5410 });
    expect(ok({ absoluteTimeout: '1500ms' }).policy).toMatchObject({ absoluteTimeoutS: 2 });
  });

  it('header sessions: sessionName names the header; a cookieConfig beside it means nothing (v1.5 CEL refuses it) and is reported', () => {
    expect(ok({ type: 'Header', sessionName: 'x-session-id', absoluteTimeout: '15m' })).toEqual({
      ok: true,
      shape: 'v1',
      policy: { type: 'header', name: 'x-session-id', absoluteTimeoutS: 900 },
      ignored: [],
    });
    expect(ok({ type: 'Header', cookieConfig: { lifetimeType: 'Permanent' } })).toMatchObject({ policy: { type: 'header' }, ignored: ['cookieConfig'] });
  });

  it('Permanent without absoluteTimeout is refused (CEL of every version)', () => {
    expect(reason({ cookieConfig: { lifetimeType: 'Permanent' } })).toMatch(/absoluteTimeout is required/);
  });

  it.each([
    [{ sessionName: 'my session' }, /cannot be a cookie name/],
    [{ sessionName: 'a'.repeat(129) }, /at most 128/],
    [{ sessionName: 'sess;Path=/admin' }, /cannot be a cookie name/],
    [{ type: 'cookie' }, /must be Cookie or Header/],
    [{ cookieConfig: { lifetimeType: 'Forever' } }, /Session or Permanent/],
    [{ cookieConfig: 'Session' }, /must be an object/],
    [{ absoluteTimeout: '1d' }, /not a Gateway API duration/],
    [{ idleTimeout: 90 }, /not a Gateway API duration/],
    [{ absoluteTimeout: '0s' }, /zero/],
  ])('%j is refused', (value, message) => {
    expect(reason(value)).toMatch(message);
  });
});

describe('gateway-api main (PR #4873 cookie/header, PR #5046 cookie.path)', () => {
  it('cookie {name, path, lifetimeType}', () => {
    expect(ok({ type: 'Cookie', absoluteTimeout: '24h', cookie: { name: 'shop-affinity', path: '/shop', lifetimeType: 'Permanent' } })).toEqual({
      ok: true,
      shape: 'main',
      policy: { type: 'cookie', name: 'shop-affinity', lifetime: 'permanent', absoluteTimeoutS: 86_400, cookiePath: '/shop' },
      ignored: [],
    });
  });

  it('cookie as the API server returns it (path and lifetimeType defaulted)', () => {
    expect(ok({ type: 'Cookie', cookie: { path: '/', lifetimeType: 'Session' } }).policy).toEqual({ type: 'cookie', lifetime: 'session', cookiePath: '/' });
  });

  it('header {name}', () => {
    expect(ok({ type: 'Header', header: { name: 'X-Session' } })).toMatchObject({ shape: 'main', policy: { type: 'header', name: 'X-Session' } });
  });

  it.each([
    [{ type: 'Header' , header: {} }, /header.name is required/],
    [{ header: { name: 'x' } }, /header must be unset when type is Cookie/],
    [{ type: 'Header', header: { name: 'x' }, cookie: {} }, /cookie must be unset/],
    [{ cookie: { name: '' } }, /cookie.name must be 1-256/],
    [{ cookie: { name: 'a b' } }, /cookie.name must be 1-256/],
    [{ cookie: { lifetimeType: 'Permanent' } }, /absoluteTimeout is required/],
    [{ cookie: { path: 'shop' } }, /must start with \//],
    [{ cookie: { path: '/shop; Domain=evil.example' } }, /';' or a control character/],
    [{ cookie: { path: `/${'a'.repeat(1024)}` } }, /at most 1024/],
    [{ sessionName: 'x', cookie: { name: 'y' } }, /mixes Gateway API v1.x fields \(sessionName\) with the newer ones \(cookie\)/],
    [{ idleTimeout: '1m', header: { name: 'x' }, type: 'Header' }, /mixes/],
  ])('%j is refused', (value, message) => {
    expect(reason(value)).toMatch(message);
  });
});

describe('odd input', () => {
  it.each([null, 'Cookie', [], 3])('%j is not an object', (value) => {
    expect(reason(value)).toMatch(/must be an object/);
  });

  it('unknown fields (a newer Gateway API?) do not refuse the policy; they are listed', () => {
    expect(ok({ type: 'Cookie', drainTimeout: '1m' })).toMatchObject({ policy: { type: 'cookie' }, ignored: ['drainTimeout'] });
  });

  it('ruleSessionPolicy: undefined without sessionPersistence, the parse otherwise', () => {
    expect(ruleSessionPolicy({ backendRefs: [{ name: 'cart', port: 80 }] })).toBeUndefined();
    expect(ruleSessionPolicy({ sessionPersistence: { sessionName: 'S' } })).toMatchObject({ ok: true, policy: { name: 'S' } });
  });
});

describe('cookie Path', () => {
  it('GEP-1619 on main: "/" unless cookie.path says otherwise', () => {
    expect(DEFAULT_COOKIE_PATH).toBe('/');
    const session = ok({ cookieConfig: { lifetimeType: 'Session' } }).policy;
    const scoped = ok({ cookie: { path: '/shop' } }).policy;
    expect(session.type === 'cookie' && policyCookiePath(session)).toBe('/');
    expect(scoped.type === 'cookie' && policyCookiePath(scoped)).toBe('/shop');
  });

  it.each([
    ['no match (all paths)', undefined, '/'],
    ['a match without path (CRD default PathPrefix /)', {}, '/'],
    ['PathPrefix /session-persistence (the conformance route)', { path: { type: 'PathPrefix', value: '/session-persistence' } }, '/session-persistence'],
    ['PathPrefix with a trailing slash', { path: { type: 'PathPrefix', value: '/shop/' } }, '/shop'],
    ['Exact', { path: { type: 'Exact', value: '/api/v1/login' } }, '/api/v1/login'],
    ['RegularExpression, GEP example /p1/p2/*/p3', { path: { type: 'RegularExpression', value: '/p1/p2/.*/p3' } }, '/p1/p2'],
    ['RegularExpression with no literal directory', { path: { type: 'RegularExpression', value: '/v[0-9]+/users' } }, '/'],
  ])('v1.6.1 GEP rule (dropped on main): %s -> %s', (_, match, expected) => {
    expect(legacyMatchCookiePath(match)).toBe(expected);
  });
});
