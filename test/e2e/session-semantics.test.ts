/**
 * Session semantics beyond Kong's own sticky sessions (issue 4), end to end through the real
 * plugin server: header affinity, idle and absolute timeouts, balancing strategies, strict
 * mode, SameSite=None exemptions, key rotation and change on failure.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KongEmulator, type RequestResult } from '../harness/kong-emulator.js';
import type { EmulatedRequest } from '../harness/pdk.js';

const NEW_KEY = 'rotation-new-0123456789abcdef01234567';
const OLD_KEY = 'rotation-old-0123456789abcdef01234567';
const SERVICE = { id: '0e3c1c3e-2222-4c4c-9a9a-000000000001', name: 'api', host: 'api.internal', port: 80, protocol: 'http' };
const TARGETS = ['192.0.2.20:8080', '192.0.2.21:8080', '192.0.2.22:8080'];

let kong: KongEmulator;
let plugin: string;

const target = (r: RequestResult) => r.target && `${r.target.host}:${r.target.port}`;
const cookieOf = (r: RequestResult) => r.responseHeaders['set-cookie']?.[0]?.split(';')[0];
const send = (req: EmulatedRequest = {}, worker = 0) => kong.request({ service: SERVICE, ...req }, { worker, plugin });
const configure = (config: Record<string, unknown>) => kong.updatePlugin(plugin, { config });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  kong = await KongEmulator.start({ useDockerfile: true, workers: 2 });
  plugin = kong.addPlugin({ service: SERVICE.id, config: { secrets: [NEW_KEY], targets: TARGETS } }).id;
});

afterAll(async () => {
  await kong?.stop();
});

describe('header affinity (Gateway API SessionPersistence type: Header)', () => {
  it('reads and returns the token in a header, with no cookie', async () => {
    configure({ transport: 'header', header_name: 'X-Session' });
    const first = await send();
    expect(first.responseHeaders['set-cookie']).toBeUndefined();
    const token = first.responseHeaders['x-session']?.[0];
    expect(token).toMatch(/^[A-Za-z0-9_-]{50}$/);
    for (let i = 0; i < 4; i++) {
      const r = await send({ headers: { 'x-session': token! } }, i % 2);
      expect(target(r)).toBe(target(first));
      expect(r.responseHeaders['x-session']).toBeUndefined();
    }
  });

  it('beside the cookie: answers the way the token came, both for a new client', async () => {
    configure({ transport: 'cookie-and-header' });
    const first = await send();
    const token = first.responseHeaders['x-session']![0]!;
    expect(cookieOf(first)).toBe(`sticky_session=${token}`);
    const viaHeader = await send({ headers: { 'x-session': token } });
    expect(target(viaHeader)).toBe(target(first));
    const viaCookie = await send({ headers: { cookie: cookieOf(first)! } });
    expect(target(viaCookie)).toBe(target(first));
    configure({ transport: 'cookie' });
  });
});

describe('timeouts', () => {
  it('idle: refreshes the token only after the refresh fraction, and a session idle too long starts over', async () => {
    // Tokens carry whole seconds, rounded up, so an age read from one is up to 1 s short of
    // the real age: each wait below clears its bound by that second.
    configure({ idle_timeout: 4, idle_refresh_percent: 50 });
    const first = await send();
    const cookie = cookieOf(first)!;
    // Right away: no Set-Cookie on pinned requests.
    const quick = await send({ headers: { cookie } });
    expect(target(quick)).toBe(target(first));
    expect(cookieOf(quick)).toBeUndefined();
    // Past the 2 s refresh point, within the 4 s idle timeout: same pod, a renewed token.
    await sleep(3100);
    const refreshed = await send({ headers: { cookie } });
    expect(target(refreshed)).toBe(target(first));
    const renewed = cookieOf(refreshed);
    expect(renewed).toBeDefined();
    expect(renewed).not.toBe(cookie);
    // The old token, now idle for more than 5 s, is a new session; the renewed one is not.
    await sleep(2100);
    const stale = await send({ headers: { cookie } });
    expect(cookieOf(stale)).toBeDefined();
    expect(cookieOf(stale)).not.toBe(renewed);
    const kept = await send({ headers: { cookie: renewed! } });
    expect(target(kept)).toBe(target(first));
    configure({ idle_timeout: 0 });
  });
});

describe('balancing strategies for new sessions', () => {
  it('round-robin spreads new sessions evenly, in proportion to weights', async () => {
    configure({ balancer: 'round-robin', targets: ['192.0.2.20:8080 weight=1', '192.0.2.21:8080 weight=2', '192.0.2.22:8080 weight=3'] });
    const counts = new Map<string, number>();
    for (let i = 0; i < 60; i++) {
      const t = target(await send())!;
      counts.set(t, (counts.get(t) ?? 0) + 1);
    }
    expect(Object.fromEntries(counts)).toEqual({ '192.0.2.20:8080': 10, '192.0.2.21:8080': 20, '192.0.2.22:8080': 30 });
  });

  it('least-sessions gives new pods the new sessions after a scale-out from 2 to 4', async () => {
    configure({ balancer: 'least-sessions', targets: TARGETS.slice(0, 2) });
    const sessions = await Promise.all(Array.from({ length: 40 }, () => send()));
    configure({ targets: [...TARGETS.slice(0, 2), '192.0.2.22:8080', '192.0.2.23:8080'] });
    // The existing sessions keep coming (and keep their pods); new ones arrive.
    for (const s of sessions) expect(TARGETS.slice(0, 2)).toContain(target(await send({ headers: { cookie: cookieOf(s)! } })));
    let onNew = 0;
    for (let i = 0; i < 40; i++) if (['192.0.2.22:8080', '192.0.2.23:8080'].includes(target(await send())!)) onNew++;
    expect(onNew).toBeGreaterThanOrEqual(36);
  });

  it('two-choices routes every new session to a ready endpoint', async () => {
    configure({ balancer: 'two-choices', targets: [...TARGETS.slice(0, 2), `${TARGETS[2]} draining`] });
    for (let i = 0; i < 20; i++) expect(TARGETS.slice(0, 2)).toContain(target(await send()));
    configure({ balancer: 'least-sessions', targets: TARGETS });
  });
});

describe('SameSite=None', () => {
  it('forces Secure, and is left out for User-Agents that mishandle it', async () => {
    configure({ cookie_same_site: 'None', cookie_same_site_none_exempt_user_agents: ['Chrome/5[1-9]\\.', 'Chrome/6[0-6]\\.'] });
    const modern = await send({ headers: { 'user-agent': 'Mozilla/5.0 Chrome/120.0 Safari/537.36' } });
    expect(modern.responseHeaders['set-cookie']![0]).toMatch(/; Secure; HttpOnly; SameSite=None$/);
    const old = await send({ headers: { 'user-agent': 'Mozilla/5.0 Chrome/55.0 Safari/537.36' } });
    expect(old.responseHeaders['set-cookie']![0]).toMatch(/; Secure; HttpOnly$/);
    configure({ cookie_same_site: 'Lax', cookie_same_site_none_exempt_user_agents: null });
  });
});

describe('key rotation', () => {
  it('with [new, old] old tokens route and are re-issued under the new key; with [new] they start over', async () => {
    configure({ secrets: [OLD_KEY] });
    const old = await send();
    const oldCookie = cookieOf(old)!;
    configure({ secrets: [NEW_KEY, OLD_KEY] });
    const rotated = await send({ headers: { cookie: oldCookie } });
    expect(target(rotated)).toBe(target(old));
    const reissued = cookieOf(rotated)!;
    expect(reissued).toBeDefined();
    expect(reissued).not.toBe(oldCookie);
    configure({ secrets: [NEW_KEY] });
    const after = await send({ headers: { cookie: reissued } });
    expect(target(after)).toBe(target(old));
    expect(cookieOf(after)).toBeUndefined();
    const retired = await send({ headers: { cookie: oldCookie } });
    expect(cookieOf(retired)).toBeDefined();
  });
});

describe('change on failure', () => {
  it('is not in the access-only plugin\'s schema, so Kong refuses it: that server never gets a log event', () => {
    expect(() => kong.addPlugin({ route: 'r-cof', config: { secrets: [NEW_KEY], targets: TARGETS, change_on_failure: true } })).toThrow(
      /config\.change_on_failure: unknown field/,
    );
    expect(kong.info.Phases).toEqual(['access']);
  });

  it('on plugins-failover/: a failed response moves the pinned sessions of that endpoint', async () => {
    const failing = new Set<string>();
    const failover = await KongEmulator.start({
      pluginsDir: 'plugins-failover',
      upstream: (u) => ({ status: failing.has(`${u.target?.host}:${u.target?.port}`) ? 502 : 200 }),
    });
    try {
      expect([...failover.info.Phases].sort()).toEqual(['access', 'log']);
      failover.addPlugin({ service: SERVICE.id, config: { secrets: [NEW_KEY], targets: TARGETS, change_on_failure: true, failure_timeout: 30 } });
      const first = await failover.request({ service: SERVICE });
      const pinned = target(first)!;
      failing.add(pinned);
      const failed = await failover.request({ service: SERVICE, headers: { cookie: cookieOf(first)! } });
      expect(failed.status).toBe(502);
      expect(target(failed)).toBe(pinned);
      const moved = await failover.request({ service: SERVICE, headers: { cookie: cookieOf(first)! } });
      expect(target(moved)).not.toBe(pinned);
      expect(moved.status).toBe(200);
      expect(cookieOf(moved)).toBeDefined();
      // New sessions avoid it while it is marked.
      for (let i = 0; i < 10; i++) expect(target(await failover.request({ service: SERVICE }))).not.toBe(pinned);
    } finally {
      await failover.stop();
    }
  });
});
