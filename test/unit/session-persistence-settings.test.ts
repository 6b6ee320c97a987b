/**
 * The precedence between an HTTPRoute rule's sessionPersistence and the KongPlugin's config
 * (README, Gateway API): every row of the table, and every default.
 */
import { describe, expect, it } from 'vitest';
import { formatSetCookie } from '../../src/cookie.js';
import { resolveConfig, type ResolvedConfig } from '../../src/config/resolve.js';
import { sessionSettingsOf } from '../../src/config/session-persistence.js';
import { parseSessionPersistence, type SessionPolicy } from '../../src/endpoints/gateway-api/session-persistence.js';

const SECRET = 's'.repeat(40);
const RULE = 'httproute:shop/web/0';

/** The KongPlugin's config as Kong hands it over (schema defaults applied). */
function plugin(over: Record<string, unknown> = {}): ResolvedConfig {
  return resolveConfig({
    secrets: [SECRET],
    transport: 'cookie',
    header_name: 'X-Sticky-Session',
    cookie_name: 'sticky_session',
    cookie_path: '/',
    cookie_max_age: 0,
    cookie_http_only: true,
    cookie_same_site: 'Lax',
    idle_refresh_percent: 50,
    route_id: 'r1',
    ...over,
  });
}

function policy(sp: unknown): SessionPolicy {
  const r = parseSessionPersistence(sp);
  if (!r.ok) throw new Error(r.reason);
  return r.policy;
}

describe('sessionPersistence over the KongPlugin config', () => {
  it('type Cookie with a name: that cookie, a browser-session cookie (lifetime Session, the default)', () => {
    const s = sessionSettingsOf(plugin({ cookie_max_age: 86400 }), policy({ sessionName: 'shop' }), RULE);
    expect(s).toMatchObject({ readCookie: true, readHeader: false, cookieVar: 'cookie_shop', cookie: { name: 'shop', maxAge: 0, expires: false, path: '/' } });
    expect(formatSetCookie(s.cookie, 'v', { https: false })).toBe('shop=v; Path=/; HttpOnly; SameSite=Lax');
  });

  it('no name: one of the rule\'s own, <cookie_name>_<8 hex>, the same for every instance of the rule and different for another rule', () => {
    const a = sessionSettingsOf(plugin(), policy({ type: 'Cookie' }), RULE);
    const again = sessionSettingsOf(plugin({ route_id: 'r2' }), policy({}), RULE);
    const other = sessionSettingsOf(plugin(), policy({}), 'httproute:shop/web/1');
    expect(a.cookie.name).toMatch(/^sticky_session_[0-9a-f]{8}$/);
    expect(again.cookie.name).toBe(a.cookie.name);
    expect(other.cookie.name).not.toBe(a.cookie.name);
    expect(sessionSettingsOf(plugin({ cookie_name: 'kp' }), policy({}), RULE).cookie.name).toMatch(/^kp_[0-9a-f]{8}$/);
  });

  it('Permanent: Max-Age and Expires from absoluteTimeout; the token expires with it too', () => {
    const s = sessionSettingsOf(plugin(), policy({ absoluteTimeout: '2h', cookieConfig: { lifetimeType: 'Permanent' } }), RULE);
    expect(s.cookie).toMatchObject({ maxAge: 7200, expires: true });
    expect(s.policy.absoluteTimeout).toBe(7200);
    expect(formatSetCookie(s.cookie, 'v', { https: true, nowMs: Date.UTC(2026, 11, 7, 12) })).toMatch(
      /^sticky_session_[0-9a-f]{8}=v; Path=\/; Max-Age=7200; Expires=Mon, 07 Dec 2026 14:00:00 GMT; Secure; HttpOnly; SameSite=Lax$/,
    );
  });

  it('the newer shape (cookie.name, cookie.path, cookie.lifetimeType) reads the same', () => {
    const s = sessionSettingsOf(plugin(), policy({ type: 'Cookie', absoluteTimeout: '30m', cookie: { name: 'c', path: '/shop', lifetimeType: 'Permanent' } }), RULE);
    expect(s.cookie).toMatchObject({ name: 'c', path: '/shop', maxAge: 1800, expires: true });
  });

  it('cookie.path unset: the KongPlugin\'s cookie_path', () => {
    expect(sessionSettingsOf(plugin({ cookie_path: '/app' }), policy({ sessionName: 'x' }), RULE).cookie.path).toBe('/app');
  });

  it('absoluteTimeout and idleTimeout override the KongPlugin\'s; unset, the KongPlugin\'s apply', () => {
    const base = plugin({ absolute_timeout: 100, idle_timeout: 60, idle_refresh_percent: 25 });
    const own = sessionSettingsOf(base, policy({ absoluteTimeout: '1h', idleTimeout: '10m' }), RULE);
    expect(own.policy).toMatchObject({ absoluteTimeout: 3600, idleTimeout: 600, refreshAfter: 150 });
    const inherited = sessionSettingsOf(base, policy({ sessionName: 'x' }), RULE);
    expect(inherited.policy).toMatchObject({ absoluteTimeout: 100, idleTimeout: 60, refreshAfter: 15 });
  });

  it('type Header: the header named by the rule (else the KongPlugin\'s header_name), no cookie', () => {
    const named = sessionSettingsOf(plugin(), policy({ type: 'Header', sessionName: 'X-Session' }), RULE);
    expect(named).toMatchObject({ readCookie: false, readHeader: true, headerName: 'X-Session' });
    const main = sessionSettingsOf(plugin(), policy({ type: 'Header', header: { name: 'X-Main' } }), RULE);
    expect(main.headerName).toBe('X-Main');
    expect(sessionSettingsOf(plugin({ header_name: 'X-Kp' }), policy({ type: 'Header' }), RULE).headerName).toBe('X-Kp');
  });

  it('type Cookie on a KongPlugin whose transport is header or both: a cookie only', () => {
    const s = sessionSettingsOf(plugin({ transport: 'cookie-and-header' }), policy({ sessionName: 'x' }), RULE);
    expect(s).toMatchObject({ readCookie: true, readHeader: false });
  });

  it('Domain, SameSite, HttpOnly, Secure, strictness and no_ready_endpoint stay the KongPlugin\'s', () => {
    const base = plugin({ cookie_domain: '.example.com', cookie_same_site: 'None', cookie_http_only: false, cookie_secure: true, strict: true, no_ready_endpoint: 'reject' });
    const s = sessionSettingsOf(base, policy({ sessionName: 'x', absoluteTimeout: '1m', cookieConfig: { lifetimeType: 'Permanent' } }), RULE);
    expect(s.cookie).toMatchObject({ domain: '.example.com', sameSite: 'None', httpOnly: false, secure: true });
    expect(s.policy).toMatchObject({ strict: true, noReadyEndpoint: 'reject' });
  });
});
