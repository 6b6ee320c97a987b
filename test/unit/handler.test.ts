import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ConfigError } from '../../src/config/resolve.js';
import { StickySession, StickySessionWithFailover } from '../../src/handler.js';
import type { KongPdk } from '../../src/kong/pdk.js';
import { log } from '../../src/log.js';
import type { PluginConfig } from '../../src/config/schema.js';
import { TokenCodec } from '../../src/token.js';
import { kongConfig } from '../support/kong-config.js';

const SECRET = 'handler-secret-0123456789abcdef-0123456789';

interface Call {
  readonly name: string;
  readonly args: readonly unknown[];
}

/**
 * Kong's side of the plugin-server protocol, reduced to what src/kong/pdk.ts declares: every
 * call is recorded (one round trip each) and answered from the request it describes.
 */
class FakeKong implements KongPdk {
  readonly calls: Call[] = [];
  /** nginx variables, e.g. cookie_sticky_session. */
  readonly vars = new Map<string, string>();
  /** Request headers, lower-cased names (Kong's lookup is case-insensitive). */
  readonly headers = new Map<string, string>();
  scheme = 'http';
  serviceHost: string | null = null;
  /** PDK functions (by recorded name) that fail, as a closed socket or a Lua error would. */
  readonly failing = new Set<string>();

  private call<T>(name: string, args: unknown[], result: T): Promise<T> {
    this.calls.push({ name, args });
    if (this.failing.has(name)) return Promise.reject(new Error(`${name}: PDK error`));
    return Promise.resolve(result);
  }

  readonly request = {
    getHeader: (name: string) => this.call('request.getHeader', [name], this.headers.get(name.toLowerCase()) ?? null),
    getForwardedScheme: () => this.call('request.getForwardedScheme', [], this.scheme),
  };
  readonly nginx = {
    getVar: (name: string) => this.call('nginx.getVar', [name], this.vars.get(name) ?? null),
  };
  readonly router = {
    getService: () => this.call('router.getService', [], this.serviceHost === null ? null : { host: this.serviceHost, id: 'svc' }),
    getRoute: () => this.call('router.getRoute', [], null),
  };
  readonly service = {
    setTarget: (host: string, port: number) => this.call('service.setTarget', [host, port], true),
    request: {
      setHeader: (name: string, value: string) => this.call('service.request.setHeader', [name, value], true),
    },
  };
  readonly response = {
    addHeader: (name: string, value: string) => this.call('response.addHeader', [name, value], true),
    setHeader: (name: string, value: string) => this.call('response.setHeader', [name, value], true),
    exit: (status: number, body?: unknown, headers?: Record<string, string>) => this.call('response.exit', [status, body, headers], undefined),
    getStatus: () => this.call('response.getStatus', [], 200),
  };
  readonly log = {
    serialize: () => this.call('log.serialize', [], '{}'),
  };

  names(): string[] {
    return this.calls.map((c) => c.name);
  }

  find(name: string): Call[] {
    return this.calls.filter((c) => c.name === name);
  }

  target(): { host: unknown; port: unknown } | undefined {
    const c = this.find('service.setTarget');
    expect(c.length).toBeLessThanOrEqual(1);
    return c[0] && { host: c[0].args[0], port: c[0].args[1] };
  }

  setCookie(): string | undefined {
    const c = this.find('response.addHeader').filter((x) => x.args[0] === 'Set-Cookie');
    expect(c.length).toBeLessThanOrEqual(1);
    return c[0]?.args[1] as string | undefined;
  }
}

const TARGETS = ['192.0.2.10:8080', '192.0.2.11:8080', '[2001:db8::12]:9000'];
const SERVICE = 'svc-default';
let serviceSeq = 0;
/** A Kong service of its own, for tests that count sessions from zero. */
const uniqueService = (): string => `svc-${++serviceSeq}`;
const instances: StickySession[] = [];

/**
 * A plugin instance. Instances stay open until the file ends, so instances of one service
 * share their affinity state across tests as Kong workers do (building one costs ~50 ms).
 */
function plugin(over: Partial<PluginConfig> = {}, service = SERVICE): StickySession {
  const p = new StickySession(kongConfig({ secrets: [SECRET], targets: TARGETS, service_id: service, ...over }) satisfies PluginConfig);
  instances.push(p);
  return p;
}

/** Runs access() for a request and returns Kong's record of it. */
async function request(p: StickySession, setup: (k: FakeKong) => void = () => {}): Promise<FakeKong> {
  const kong = new FakeKong();
  setup(kong);
  await p.access(kong);
  return kong;
}

/** The token value of a Set-Cookie header. */
function cookieValue(setCookie: string | undefined, name = 'sticky_session'): string {
  const m = new RegExp(`^${name}=([^;]*)`).exec(setCookie ?? '');
  if (!m) throw new Error(`no ${name} cookie in ${setCookie}`);
  return m[1]!;
}

const configured = (t: string) => {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(t)!;
  return { host: m[1], port: Number(m[2]) };
};

let errors: ReturnType<typeof vi.spyOn>;
beforeEach(() => {
  errors = vi.spyOn(log, 'error').mockImplementation(() => undefined);
  vi.spyOn(log, 'warn').mockImplementation(() => undefined);
});
afterEach(() => {
  vi.restoreAllMocks();
  vi.useRealTimers();
});

describe('StickySession.access: cookie transport', () => {
  it('new session: reads the cookie, asks the scheme, sets the target, adds Set-Cookie', async () => {
    const kong = await request(plugin());
    expect([...kong.names()].sort()).toEqual(['nginx.getVar', 'nginx.getVar', 'request.getForwardedScheme', 'response.addHeader', 'service.setTarget']);
    expect(kong.find('nginx.getVar').map((c) => c.args)).toEqual([['cookie_sticky_session'], ['upstream_host']]);
    expect(TARGETS.map(configured)).toContainEqual(kong.target());
    const cookie = kong.setCookie()!;
    expect(cookie).toMatch(/^sticky_session=[A-Za-z0-9_-]{50}; Path=\//);
    expect(cookie).toContain('HttpOnly');
    expect(cookie).toContain('SameSite=Lax');
    expect(cookie).not.toContain('Secure');
    expect(cookie).not.toContain('Max-Age');
    expect(errors).not.toHaveBeenCalled();
  });

  it('the token names the chosen target, bound to the Kong service', async () => {
    const kong = await request(plugin());
    const codec = new TokenCodec({ secrets: [SECRET], binding: `service:${SERVICE}`, cacheSize: 8 });
    const v = codec.verify(cookieValue(kong.setCookie()));
    expect(v.ok).toBe(true);
    const t = kong.target()!;
    const id = String(t.host).includes(':') ? `[${t.host}]:${t.port}` : `${t.host}:${t.port}`;
    expect(v.ok && v.claims.ref).toBe(codec.ref(id));
  });

  it('common path (valid token, ready pod): exactly one getVar and one setTarget', async () => {
    const p = plugin();
    const first = await request(p);
    const token = cookieValue(first.setCookie());
    for (let i = 0; i < 5; i++) {
      const kong = await request(p, (k) => k.vars.set('cookie_sticky_session', token));
      expect(kong.calls).toEqual([
        { name: 'nginx.getVar', args: ['cookie_sticky_session'] },
        { name: 'nginx.getVar', args: ['upstream_host'] },
        { name: 'service.setTarget', args: [first.target()!.host, first.target()!.port] },
      ]);
    }
  });

  it('another instance of the same plugin (another nginx worker) pins the token the same way', async () => {
    const first = await request(plugin());
    const token = cookieValue(first.setCookie());
    const kong = await request(plugin(), (k) => k.vars.set('cookie_sticky_session', token));
    expect(kong.names()).toEqual(['nginx.getVar', 'nginx.getVar', 'service.setTarget']);
    expect(kong.target()).toEqual(first.target());
  });

  it('spreads new sessions over the targets', async () => {
    const p = plugin({}, uniqueService());
    const seen = new Map<string, number>();
    for (let i = 0; i < 30; i++) {
      const t = (await request(p)).target()!;
      seen.set(`${t.host}`, (seen.get(`${t.host}`) ?? 0) + 1);
    }
    expect([...seen.values()]).toEqual([10, 10, 10]);
  });

  it('Secure follows the forwarded scheme when cookie_secure is unset', async () => {
    const kong = await request(plugin(), (k) => (k.scheme = 'https'));
    expect(kong.setCookie()).toContain('; Secure');
  });

  it('cookie_secure set: no scheme lookup', async () => {
    for (const secure of [true, false]) {
      const kong = await request(plugin({ cookie_secure: secure }), (k) => (k.scheme = 'https'));
      expect(kong.names()).not.toContain('request.getForwardedScheme');
      expect(kong.names().sort()).toEqual(['nginx.getVar', 'nginx.getVar', 'response.addHeader', 'service.setTarget']);
      expect(kong.setCookie()!.includes('; Secure')).toBe(secure);
    }
  });

  it('SameSite=None: no scheme lookup, Secure forced', async () => {
    const kong = await request(plugin({ cookie_same_site: 'None' }));
    expect(kong.names()).not.toContain('request.getForwardedScheme');
    expect(kong.setCookie()).toContain('; Secure');
    expect(kong.setCookie()).toContain('SameSite=None');
  });

  it('SameSite=None exemptions: reads the User-Agent and drops SameSite=None for matching clients only', async () => {
    const p = plugin({ cookie_same_site: 'None', cookie_same_site_none_exempt_user_agents: ['Chrome/5[1-9]\\.'] });
    const old = await request(p, (k) => k.headers.set('user-agent', 'Mozilla/5.0 Chrome/55.0.1'));
    expect(old.find('request.getHeader').map((c) => c.args[0])).toEqual(['user-agent']);
    expect(old.setCookie()).not.toContain('SameSite');
    expect(old.setCookie()).toContain('; Secure');
    const modern = await request(p, (k) => k.headers.set('user-agent', 'Mozilla/5.0 Chrome/120.0'));
    expect(modern.setCookie()).toContain('SameSite=None');
  });

  it('uses the configured cookie name, path, domain and Max-Age', async () => {
    const p = plugin({ cookie_name: 'aff', cookie_path: '/shop', cookie_domain: 'example.com', cookie_max_age: 600, cookie_http_only: false, cookie_same_site: 'Strict', cookie_secure: true });
    const kong = await request(p);
    expect(kong.find('nginx.getVar')[0]!.args).toEqual(['cookie_aff']);
    const cookie = kong.setCookie()!;
    expect(cookie).toMatch(/^aff=[A-Za-z0-9_-]{50}; /);
    for (const a of ['Path=/shop', 'Domain=example.com', 'Max-Age=600', 'Secure', 'SameSite=Strict']) expect(cookie.split('; ')).toContain(a);
    expect(cookie).not.toContain('HttpOnly');
    const again = await request(p, (k) => k.vars.set('cookie_aff', cookieValue(cookie, 'aff')));
    expect(again.names()).toEqual(['nginx.getVar', 'nginx.getVar', 'service.setTarget']);
  });

  it('an invalid cookie starts a new session with a new cookie', async () => {
    const kong = await request(plugin(), (k) => k.vars.set('cookie_sticky_session', 'forged-or-stale'));
    expect(kong.names()).toContain('service.setTarget');
    expect(cookieValue(kong.setCookie())).not.toBe('forged-or-stale');
  });

  it('a token of another Kong service is not honoured', async () => {
    const first = await request(plugin());
    const token = cookieValue(first.setCookie());
    const other = await request(plugin({}, uniqueService()), (k) => k.vars.set('cookie_sticky_session', token));
    expect(cookieValue(other.setCookie())).not.toBe(token);
  });

  it('idle refresh re-sends the cookie, keeping the session', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2030-01-01T00:00:00Z'));
    const service = uniqueService();
    const p = plugin({ idle_timeout: 600, idle_refresh_percent: 50 }, service);
    const first = await request(p);
    const token = cookieValue(first.setCookie());
    vi.setSystemTime(new Date('2030-01-01T00:01:00Z'));
    expect((await request(p, (k) => k.vars.set('cookie_sticky_session', token))).names()).toEqual(['nginx.getVar', 'nginx.getVar', 'service.setTarget']);
    vi.setSystemTime(new Date('2030-01-01T00:05:01Z'));
    const refreshed = await request(p, (k) => k.vars.set('cookie_sticky_session', token));
    expect(refreshed.target()).toEqual(first.target());
    const next = cookieValue(refreshed.setCookie());
    expect(next).not.toBe(token);
    const codec = new TokenCodec({ secrets: [SECRET], binding: `service:${service}`, cacheSize: 8 });
    const [a, b] = [codec.verify(token), codec.verify(next)];
    expect(a.ok && b.ok && b.claims.sid === a.claims.sid && b.claims.issuedAt === a.claims.issuedAt).toBe(true);
    // Past the idle timeout of the first token, the refreshed one still pins.
    vi.setSystemTime(new Date('2030-01-01T00:12:00Z'));
    const later = await request(p, (k) => k.vars.set('cookie_sticky_session', next));
    expect(later.target()).toEqual(first.target());
    expect((await request(p, (k) => k.vars.set('cookie_sticky_session', token))).setCookie()).toBeDefined();
  });
});

describe('StickySession.access: header transport', () => {
  it('new session: reads the header, sets the target, sends the token in the header', async () => {
    const kong = await request(plugin({ transport: 'header', header_name: 'X-Affinity' }));
    expect(kong.find('nginx.getVar').map((c) => c.args)).toEqual([['upstream_host']]);
    expect(kong.names()).not.toContain('response.addHeader');
    expect(kong.names().sort()).toEqual(['nginx.getVar', 'request.getHeader', 'response.setHeader', 'service.setTarget']);
    expect(kong.find('request.getHeader')[0]!.args).toEqual(['X-Affinity']);
    const set = kong.find('response.setHeader')[0]!;
    expect(set.args[0]).toBe('X-Affinity');
    expect(set.args[1]).toMatch(/^[A-Za-z0-9_-]{50}$/);
  });

  it('common path: one getHeader and one setTarget', async () => {
    const p = plugin({ transport: 'header' });
    const first = await request(p);
    const token = first.find('response.setHeader')[0]!.args[1] as string;
    const kong = await request(p, (k) => k.headers.set('x-sticky-session', token));
    expect(kong.calls).toEqual([
      { name: 'request.getHeader', args: ['X-Sticky-Session'] },
      { name: 'nginx.getVar', args: ['upstream_host'] },
      { name: 'service.setTarget', args: [first.target()!.host, first.target()!.port] },
    ]);
  });

  it('cookie-and-header: a client without token gets both, a client answers the way it came', async () => {
    const p = plugin({ transport: 'cookie-and-header' });
    const first = await request(p);
    expect(first.names().sort()).toEqual([
      'nginx.getVar',
      'nginx.getVar',
      'request.getForwardedScheme',
      'request.getHeader',
      'response.addHeader',
      'response.setHeader',
      'service.setTarget',
    ]);
    const token = cookieValue(first.setCookie());
    expect(first.find('response.setHeader')[0]!.args).toEqual(['X-Sticky-Session', token]);

    const viaCookie = await request(p, (k) => k.vars.set('cookie_sticky_session', token));
    expect(viaCookie.names()).toEqual(['nginx.getVar', 'nginx.getVar', 'service.setTarget']);
    const viaHeader = await request(p, (k) => k.headers.set('x-sticky-session', token));
    expect(viaHeader.names()).toEqual(['nginx.getVar', 'request.getHeader', 'nginx.getVar', 'service.setTarget']);
    expect(viaHeader.target()).toEqual(first.target());

    // A bad header token gets a new one back in the header only; a bad cookie, in the cookie only.
    const badHeader = await request(p, (k) => k.headers.set('x-sticky-session', 'junk'));
    expect(badHeader.names()).toContain('response.setHeader');
    expect(badHeader.names()).not.toContain('response.addHeader');
    const badCookie = await request(p, (k) => k.vars.set('cookie_sticky_session', 'junk'));
    expect(badCookie.names()).toContain('response.addHeader');
    expect(badCookie.names()).not.toContain('response.setHeader');

    // A cookie that does not verify does not hide a good header token: pinned by the header.
    const both = await request(p, (k) => {
      k.vars.set('cookie_sticky_session', 'junk');
      k.headers.set('x-sticky-session', token);
    });
    expect(both.names()).toEqual(['nginx.getVar', 'request.getHeader', 'nginx.getVar', 'service.setTarget']);
    expect(both.target()).toEqual(first.target());
    // A good cookie is used as it is, without reading the header.
    const goodCookie = await request(p, (k) => {
      k.vars.set('cookie_sticky_session', token);
      k.headers.set('x-sticky-session', 'junk');
    });
    expect(goodCookie.names()).toEqual(['nginx.getVar', 'nginx.getVar', 'service.setTarget']);
  });
});

describe('StickySession.access: static targets', () => {
  it('never starts a session on a draining target, but honours one pinned to it', async () => {
    const service = uniqueService();
    const p = plugin({ targets: ['192.0.2.20:80', '192.0.2.21:81 draining'] }, service);
    for (let i = 0; i < 10; i++) expect((await request(p)).target()).toEqual({ host: '192.0.2.20', port: 80 });
    // A session that began before the target was marked draining (same service and secret).
    const before = new TokenCodec({ secrets: [SECRET], binding: `service:${service}`, cacheSize: 8 }).issue('192.0.2.21:81', Date.now() / 1000);
    const kong = await request(p, (k) => k.vars.set('cookie_sticky_session', before.token));
    expect(kong.calls).toEqual([
      { name: 'nginx.getVar', args: ['cookie_sticky_session'] },
      { name: 'nginx.getVar', args: ['upstream_host'] },
      { name: 'service.setTarget', args: ['192.0.2.21', 81] },
    ]);
  });

  it('sets an IPv6 target by its address, and host names as given', async () => {
    const v6 = await request(plugin({ targets: ['[2001:db8::12]:9000'] }));
    expect(v6.target()).toEqual({ host: '2001:db8::12', port: 9000 });
    const named = await request(plugin({ targets: ['app.internal:8080'] }));
    expect(named.target()).toEqual({ host: 'app.internal', port: 8080 });
  });

  it('a token for a target removed from the config moves to a remaining one', async () => {
    const service = uniqueService();
    const before = await request(plugin({ targets: ['192.0.2.30:80'] }, service));
    const token = cookieValue(before.setCookie());
    const kong = await request(plugin({ targets: ['192.0.2.31:80'] }, service), (k) => k.vars.set('cookie_sticky_session', token));
    expect(kong.target()).toEqual({ host: '192.0.2.31', port: 80 });
    expect(cookieValue(kong.setCookie())).not.toBe(token);
  });

  it('weights: a target of weight 3 takes three times the new sessions', async () => {
    const p = plugin({ targets: ['192.0.2.40:80 weight=3', '192.0.2.41:80'] }, uniqueService());
    let heavy = 0;
    for (let i = 0; i < 40; i++) if ((await request(p)).target()!.host === '192.0.2.40') heavy++;
    expect(heavy).toBe(30);
  });
});

describe('StickySession.access: 503 and failures', () => {
  it('reject: only draining targets and no_ready_endpoint=reject -> exit(503), no target set', async () => {
    const kong = await request(plugin({ targets: ['192.0.2.50:80 draining'], no_ready_endpoint: 'reject' }));
    expect(kong.names()).toEqual(['nginx.getVar', 'response.exit']);
    const [status, body, headers] = kong.find('response.exit')[0]!.args;
    expect(status).toBe(503);
    expect(body).toEqual({ message: expect.any(String) });
    expect(headers).toEqual({ 'Retry-After': '1' });
  });

  it('only draining targets and no_ready_endpoint=draining -> routed there with a cookie', async () => {
    const kong = await request(plugin({ targets: ['192.0.2.50:80 draining'] }));
    expect(kong.target()).toEqual({ host: '192.0.2.50', port: 80 });
    expect(kong.setCookie()).toBeDefined();
  });

  it('strict: a session whose target is gone gets 503', async () => {
    const service = uniqueService();
    const before = await request(plugin({ targets: ['192.0.2.60:80'] }, service));
    const token = cookieValue(before.setCookie());
    const kong = await request(plugin({ targets: ['192.0.2.61:80'], strict: true }, service), (k) => k.vars.set('cookie_sticky_session', token));
    expect(kong.names()).toEqual(['nginx.getVar', 'response.exit']);
    expect(kong.find('response.exit')[0]!.args[0]).toBe(503);
  });

  for (const failing of ['nginx.getVar', 'service.setTarget', 'request.getForwardedScheme', 'response.addHeader']) {
    it(`a rejected PDK call (${failing}) does not throw out of access(), and is logged`, async () => {
      const kong = new FakeKong();
      kong.failing.add(failing);
      await expect(plugin().access(kong)).resolves.toBeUndefined();
      expect(kong.names()).toContain(failing);
      expect(errors).toHaveBeenCalledTimes(1);
    });
  }

  it('a rejected getVar stops the request before any target is set', async () => {
    const kong = new FakeKong();
    kong.failing.add('nginx.getVar');
    await plugin().access(kong);
    expect(kong.names()).toEqual(['nginx.getVar']);
  });

  it('fails open when it cannot tell which endpoints to use: nothing read, nothing set', async () => {
    const p = plugin({ targets: null });
    const kong = await request(p, (k) => (k.serviceHost = 'example.com'));
    expect(kong.names()).toEqual(['router.getService']);
    // Not asked again on the next request.
    const next = await request(p, (k) => (k.serviceHost = 'example.com'));
    expect(next.calls).toEqual([]);
  });
});

describe('StickySession: instance start', () => {
  it('refuses a bad config with a ConfigError', () => {
    expect(() => plugin({ secrets: ['short'] })).toThrow(ConfigError);
    expect(() => plugin({ targets: ['192.0.2.1:0'] })).toThrow(/config\.targets\[1\]/);
  });

  it('change_on_failure needs the plugin with a log phase', () => {
    expect(() => plugin({ change_on_failure: true })).toThrow(ConfigError);
    const p = new StickySessionWithFailover({ ...minimal(), change_on_failure: true });
    instances.push(p);
    expect(p).toBeInstanceOf(StickySession);
  });
});

function minimal(): Partial<PluginConfig> {
  return { secrets: [SECRET], targets: ['192.0.2.70:80'], service_id: uniqueService() };
}

afterAll(() => {
  for (const p of instances.splice(0)) p.close();
});
