import { describe, expect, it } from 'vitest';
import { formatSetCookie, needsScheme, type CookieAttributes, type SameSite } from '../../src/cookie.js';

const base: CookieAttributes = {
  name: 'sticky_session',
  path: '/',
  domain: null,
  maxAge: 0,
  httpOnly: false,
  secure: false,
  sameSite: 'Lax',
};
const VALUE = 'AQAAA-_tokenvalue';

/** Splits a Set-Cookie value into its name=value pair and its attributes (name -> value). */
function parse(setCookie: string): { pair: string; attrs: Map<string, string | true>; names: string[] } {
  const [pair, ...rest] = setCookie.split('; ');
  const attrs = new Map<string, string | true>();
  const names: string[] = [];
  for (const a of rest) {
    const eq = a.indexOf('=');
    const name = eq < 0 ? a : a.slice(0, eq);
    names.push(name);
    attrs.set(name, eq < 0 ? true : a.slice(eq + 1));
  }
  return { pair: pair ?? '', attrs, names };
}

const fmt = (over: Partial<CookieAttributes>, https = false, omitSameSiteNone?: boolean) =>
  parse(formatSetCookie({ ...base, ...over }, VALUE, omitSameSiteNone === undefined ? { https } : { https, omitSameSiteNone }));

describe('formatSetCookie', () => {
  it('starts with name=value, then Path', () => {
    const c = fmt({});
    expect(c.pair).toBe(`sticky_session=${VALUE}`);
    expect(c.attrs.get('Path')).toBe('/');
    expect(c.names[0]).toBe('Path');
    expect(fmt({ name: 'aff.x-1' }).pair).toBe(`aff.x-1=${VALUE}`);
  });

  it('uses the configured path', () => {
    expect(fmt({ path: '/shop/cart' }).attrs.get('Path')).toBe('/shop/cart');
  });

  it('sets Domain only when configured', () => {
    expect(fmt({}).attrs.has('Domain')).toBe(false);
    expect(fmt({ domain: '.example.com' }).attrs.get('Domain')).toBe('.example.com');
  });

  it('sets Max-Age for a positive lifetime; 0 makes a browser-session cookie', () => {
    expect(fmt({ maxAge: 0 }).attrs.has('Max-Age')).toBe(false);
    expect(fmt({ maxAge: 3600 }).attrs.get('Max-Age')).toBe('3600');
    expect(fmt({ maxAge: 1 }).attrs.get('Max-Age')).toBe('1');
    expect(fmt({}).attrs.has('Expires')).toBe(false);
  });

  it('sets HttpOnly when configured', () => {
    expect(fmt({ httpOnly: true }).attrs.get('HttpOnly')).toBe(true);
    expect(fmt({ httpOnly: false }).attrs.has('HttpOnly')).toBe(false);
  });

  it('automatic Secure (null) follows the client scheme', () => {
    expect(fmt({ secure: null }, true).attrs.get('Secure')).toBe(true);
    expect(fmt({ secure: null }, false).attrs.has('Secure')).toBe(false);
  });

  it('configured Secure ignores the scheme', () => {
    expect(fmt({ secure: true }, false).attrs.get('Secure')).toBe(true);
    expect(fmt({ secure: false }, true).attrs.has('Secure')).toBe(false);
  });

  it('SameSite=None forces Secure whatever cookie_secure and the scheme say', () => {
    for (const secure of [null, false, true]) {
      for (const https of [false, true]) {
        const c = fmt({ secure, sameSite: 'None' }, https);
        expect(c.attrs.get('Secure'), `secure=${secure} https=${https}`).toBe(true);
        expect(c.attrs.get('SameSite')).toBe('None');
      }
    }
  });

  it('writes each SameSite value', () => {
    for (const s of ['Strict', 'Lax', 'None'] satisfies SameSite[]) {
      expect(fmt({ sameSite: s }).attrs.get('SameSite')).toBe(s);
    }
  });

  it('omitSameSiteNone drops only the SameSite=None attribute (Secure stays)', () => {
    const c = fmt({ sameSite: 'None', httpOnly: true, domain: 'example.com', maxAge: 60 }, false, true);
    expect(c.attrs.has('SameSite')).toBe(false);
    expect(c.attrs.get('Secure')).toBe(true);
    expect(c.attrs.get('HttpOnly')).toBe(true);
    expect(c.attrs.get('Domain')).toBe('example.com');
    expect(c.attrs.get('Max-Age')).toBe('60');
    expect(c.pair).toBe(`sticky_session=${VALUE}`);
    // Strict and Lax are never dropped.
    expect(fmt({ sameSite: 'Lax' }, false, true).attrs.get('SameSite')).toBe('Lax');
    expect(fmt({ sameSite: 'Strict' }, false, true).attrs.get('SameSite')).toBe('Strict');
    expect(fmt({ sameSite: 'None' }, false, false).attrs.get('SameSite')).toBe('None');
  });

  it('writes every attribute once, with no empty ones', () => {
    const out = formatSetCookie(
      { name: 's', path: '/p', domain: 'd.example', maxAge: 10, httpOnly: true, secure: true, sameSite: 'Strict' },
      'v',
      { https: true },
    );
    const c = parse(out);
    expect(new Set(c.names).size).toBe(c.names.length);
    expect(c.names.sort()).toEqual(['Domain', 'HttpOnly', 'Max-Age', 'Path', 'SameSite', 'Secure']);
    expect(out).not.toMatch(/;\s*;|;\s*$/);
  });
});

describe('needsScheme', () => {
  it('is true only for automatic Secure with SameSite other than None', () => {
    expect(needsScheme({ ...base, secure: null, sameSite: 'Lax' })).toBe(true);
    expect(needsScheme({ ...base, secure: null, sameSite: 'Strict' })).toBe(true);
    expect(needsScheme({ ...base, secure: null, sameSite: 'None' })).toBe(false);
    expect(needsScheme({ ...base, secure: true, sameSite: 'Lax' })).toBe(false);
    expect(needsScheme({ ...base, secure: false, sameSite: 'Strict' })).toBe(false);
  });

  it('whenever it is false, the scheme makes no difference to the cookie', () => {
    for (const secure of [null, false, true]) {
      for (const sameSite of ['Strict', 'Lax', 'None'] satisfies SameSite[]) {
        const attrs = { ...base, secure, sameSite };
        const differs = formatSetCookie(attrs, 'v', { https: true }) !== formatSetCookie(attrs, 'v', { https: false });
        expect(differs, `secure=${secure} sameSite=${sameSite}`).toBe(needsScheme(attrs));
      }
    }
  });
});
