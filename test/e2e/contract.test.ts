/**
 * The behaviour contract (shared/design-notes.md), row by row, through the real plugin
 * server started exactly as the image starts it (Dockerfile commands and env), driven by the
 * Kong emulator: two Kong replicas (two plugin-server processes with one secret), each with
 * two nginx workers. Also the PDK round trips of every row, which the README documents.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KongEmulator, KongSchemaError, type RequestResult } from '../harness/kong-emulator.js';
import type { EmulatedRequest } from '../harness/pdk.js';

const SECRET = 'e2e-secret-0123456789abcdef0123456789';
const SERVICE = { id: '0e3c1c3e-1111-4c4c-9a9a-000000000001', name: 'shop', host: 'shop.internal', port: 80, protocol: 'http' };
const A = '192.0.2.10:8080';
const B = '192.0.2.11:8080';
const C = '192.0.2.12:8080';

let replicas: KongEmulator[];
let plugins: string[];

function configure(config: Record<string, unknown>): void {
  replicas.forEach((kong, i) => kong.updatePlugin(plugins[i]!, { config }));
}

function target(r: RequestResult): string | undefined {
  return r.target && `${r.target.host}:${r.target.port}`;
}

function cookieOf(r: RequestResult): string | undefined {
  return r.responseHeaders['set-cookie']?.[0]?.split(';')[0];
}

/** A request to replica `replica`, nginx worker `worker`. */
function send(req: EmulatedRequest = {}, replica = 0, worker = 0): Promise<RequestResult> {
  return replicas[replica]!.request({ service: SERVICE, ...req }, { worker });
}

/** Every replica and worker, in turn. */
const EVERYWHERE = [
  [0, 0],
  [0, 1],
  [1, 0],
  [1, 1],
] as const;

beforeAll(async () => {
  replicas = await Promise.all([0, 1].map(() => KongEmulator.start({ useDockerfile: true, workers: 2 })));
  plugins = replicas.map(
    (kong) => kong.addPlugin({ service: SERVICE.id, config: { secrets: [SECRET], cookie_name: 'sticky', targets: [A, B, C] } }).id,
  );
});

afterAll(async () => {
  await Promise.all(replicas?.map((k) => k.stop()) ?? []);
});

describe('contract', () => {
  it('a new client is pinned to a ready endpoint and gets a signed cookie (any worker, any replica)', async () => {
    for (const [replica, worker] of EVERYWHERE) {
      const r = await send({}, replica, worker);
      expect(r.eventFinished).toBe(true);
      expect([A, B, C]).toContain(target(r));
      const setCookie = r.responseHeaders['set-cookie'];
      expect(setCookie).toHaveLength(1);
      expect(setCookie![0]).toMatch(/^sticky=[A-Za-z0-9_-]{50}; Path=\/; HttpOnly; SameSite=Lax$/);
      // The cookie names no address.
      expect(Buffer.from(cookieOf(r)!.slice(7), 'base64url').toString('latin1')).not.toMatch(/192\.0\.2/);
    }
  });

  it('a pinned client reaches its endpoint from every worker of every replica, with no new cookie', async () => {
    const first = await send();
    const cookie = cookieOf(first)!;
    for (const [replica, worker] of EVERYWHERE) {
      for (let i = 0; i < 5; i++) {
        const r = await send({ headers: { cookie } }, replica, worker);
        expect(target(r)).toBe(target(first));
        expect(r.responseHeaders['set-cookie']).toBeUndefined();
      }
    }
  });

  it('a session pinned to a terminating, still serving endpoint stays; new sessions never go there', async () => {
    configure({ targets: [A, B, C] });
    const clients = await Promise.all(Array.from({ length: 12 }, () => send()));
    const onB = clients.find((c) => target(c) === B)!;
    expect(onB).toBeDefined();
    configure({ targets: [A, `${B} draining`, C] });
    for (const [replica, worker] of EVERYWHERE) {
      const r = await send({ headers: { cookie: cookieOf(onB)! } }, replica, worker);
      expect(target(r)).toBe(B);
      expect(r.responseHeaders['set-cookie']).toBeUndefined();
    }
    for (let i = 0; i < 30; i++) {
      const fresh = await send({}, i % 2, i % 2);
      expect([A, C]).toContain(target(fresh));
    }
  });

  it('a session whose endpoint is removed is re-pinned to a ready endpoint with a new cookie, which then sticks', async () => {
    configure({ targets: [A, B, C] });
    let onC: RequestResult | undefined;
    while (!onC) {
      const r = await send();
      if (target(r) === C) onC = r;
    }
    configure({ targets: [A, B] });
    const moved = await send({ headers: { cookie: cookieOf(onC)! } }, 1, 1);
    expect([A, B]).toContain(target(moved));
    const renewed = cookieOf(moved)!;
    expect(renewed).toBeDefined();
    expect(renewed).not.toBe(cookieOf(onC));
    for (const [replica, worker] of EVERYWHERE) {
      const r = await send({ headers: { cookie: renewed } }, replica, worker);
      expect(target(r)).toBe(target(moved));
      expect(r.responseHeaders['set-cookie']).toBeUndefined();
    }
    // Every replica makes the same decision for the old token too: both re-pin it.
    const other = await send({ headers: { cookie: cookieOf(onC)! } }, 0, 0);
    expect(cookieOf(other)).toBeDefined();
  });

  it('with no ready endpoint: new sessions go to a serving, terminating one (default) or get 503', async () => {
    configure({ targets: [`${A} draining`, `${B} draining`], no_ready_endpoint: 'draining' });
    const r = await send();
    expect([A, B]).toContain(target(r));
    expect(cookieOf(r)).toBeDefined();

    configure({ no_ready_endpoint: 'reject' });
    const rejected = await send({}, 1, 0);
    expect(rejected.status).toBe(503);
    expect(rejected.target).toBeUndefined();
    expect(rejected.responseHeaders['set-cookie']).toBeUndefined();
    expect(rejected.body).toContain('No server available');
    // A pinned session on a draining endpoint is still honoured under 'reject'.
    const pinned = await send({ headers: { cookie: cookieOf(r)! } }, 1, 0);
    expect(target(pinned)).toBe(target(r));
    // The log says which way the plugin went.
    expect(replicas[0]!.serverLog()).toContain('new sessions go to serving, terminating endpoints (no_ready_endpoint=draining)');
    expect(replicas[1]!.serverLog()).toContain('answering 503 to new sessions (no_ready_endpoint=reject)');
    configure({ targets: [A, B, C], no_ready_endpoint: 'draining' });
  });

  it('strict mode answers 503 instead of moving a session whose endpoint is gone', async () => {
    configure({ targets: [A], strict: true });
    const pinned = await send();
    configure({ targets: [B] });
    const r = await send({ headers: { cookie: cookieOf(pinned)! } });
    expect(r.status).toBe(503);
    expect(r.body).toContain('The server holding this session is gone');
    expect(r.target).toBeUndefined();
    configure({ targets: [A, B, C], strict: false });
  });

  it('invalid, tampered, foreign and expired tokens are simply new sessions', async () => {
    configure({ targets: [A, B, C], absolute_timeout: 0 });
    const good = cookieOf(await send())!.slice('sticky='.length);
    const raw = Buffer.from(good, 'base64url');
    raw[15] = raw[15]! ^ 0x40;
    const foreign = await (async () => {
      // A token of another Kong service (same secret, same cookie name).
      const otherService = { ...SERVICE, id: '0e3c1c3e-1111-4c4c-9a9a-000000000002' };
      const id = replicas[0]!.addPlugin({ service: otherService.id, config: { secrets: [SECRET], cookie_name: 'sticky', targets: [A, B, C] } }).id;
      const r = await replicas[0]!.request({ service: otherService }, { plugin: id });
      replicas[0]!.removePlugin(id);
      return cookieOf(r)!.slice('sticky='.length);
    })();
    for (const bad of ['garbage', '', raw.toString('base64url'), foreign, good.slice(0, 40), `${good}x`]) {
      const r = await replicas[0]!.request({ service: SERVICE, headers: { cookie: `sticky=${bad}` } }, { plugin: plugins[0]! });
      expect(r.eventFinished).toBe(true);
      expect([A, B, C]).toContain(target(r));
      expect(cookieOf(r)).toMatch(/^sticky=/);
      expect(cookieOf(r)).not.toBe(`sticky=${bad}`);
    }
    // Expired: a session older than absolute_timeout starts over. Tokens carry whole
    // seconds: wait past a 1 s timeout.
    configure({ absolute_timeout: 1 });
    const young = cookieOf(await send())!;
    expect(cookieOf(await send({ headers: { cookie: young } }))).toBeUndefined();
    await new Promise((r) => setTimeout(r, 2100));
    expect(cookieOf(await send({ headers: { cookie: young } }))).toMatch(/^sticky=/);
    configure({ absolute_timeout: 0 });
  });

  it('before the endpoint set is known, Kong balances: no target, no cookie, logged (fail open)', async () => {
    // A Kubernetes source whose API server is unreachable never syncs.
    const kong = replicas[0]!;
    const id = kong.addPlugin({
      route: 'r-unsynced',
      config: { secrets: [SECRET], kubernetes_namespace: 'shop', kubernetes_service: 'cart' },
    }).id;
    const r = await kong.request({ service: SERVICE }, { plugin: id });
    expect(r.status).toBe(200);
    expect(r.eventFinished).toBe(true);
    expect(r.target).toBeUndefined();
    expect(r.responseHeaders['set-cookie']).toBeUndefined();
    expect(r.pdkCalls).toEqual([]);
    kong.removePlugin(id);
  });

  it('HTTPS clients get Secure cookies; SameSite=None always adds Secure', async () => {
    const https = await send({ scheme: 'https' });
    expect(https.responseHeaders['set-cookie']![0]).toContain('; Secure');
    configure({ cookie_same_site: 'None' });
    const none = await send();
    expect(none.responseHeaders['set-cookie']![0]).toMatch(/; Secure; HttpOnly; SameSite=None$/);
    configure({ cookie_same_site: 'Lax' });
  });
});

describe('PDK round trips per contract row (README table)', () => {
  const calls = (r: RequestResult) => r.pdkCalls.map((c) => c.method.replace(/^kong\./, ''));

  it('counts them', async () => {
    configure({ targets: [A, B, C], cookie_secure: null, strict: false, no_ready_endpoint: 'draining' });
    const warm = await send(); // instance started
    const fresh = await send();
    // A service-bound instance reads $upstream_host before set_target (no route here: '').
    expect(calls(fresh)).toEqual(['nginx.get_var', 'nginx.get_var', 'service.set_target', 'request.get_forwarded_scheme', 'response.add_header']);
    expect(fresh.pdkCalls[1]!.args).toEqual(['upstream_host']);
    expect(fresh.roundTrips).toBe(6);

    const pinned = await send({ headers: { cookie: cookieOf(warm)! } });
    expect(calls(pinned)).toEqual(['nginx.get_var', 'nginx.get_var', 'service.set_target']);
    expect(pinned.roundTrips).toBe(4);

    configure({ cookie_secure: false });
    await send(); // new instance for the new config (StartInstance + CloseInstance)
    const fixedSecure = await send();
    expect(calls(fixedSecure)).toEqual(['nginx.get_var', 'nginx.get_var', 'service.set_target', 'response.add_header']);
    expect(fixedSecure.roundTrips).toBe(5);

    configure({ targets: [`${A} draining`], no_ready_endpoint: 'reject' });
    await send();
    const rejected = await send();
    expect(calls(rejected)).toEqual(['nginx.get_var', 'response.exit']);
    expect(rejected.roundTrips).toBe(2);
    configure({ targets: [A, B, C], cookie_secure: null, no_ready_endpoint: 'draining' });
  });

  it('Host work: per binding and preserve_host (pinned request)', async () => {
    const routes = { true: { id: 'r-host-preserve', preserve_host: true }, false: { id: 'r-host-plain', preserve_host: false } };
    const kong = replicas[0]!;
    const pinnedCalls = async (scope: { route: string } | { service: string }, preserveHost: boolean) => {
      const id = kong.addPlugin({ ...scope, config: { secrets: [SECRET], cookie_name: 'sticky', targets: [A] } }).id;
      try {
        const req = { service: SERVICE, route: routes[`${preserveHost}`], host: 'shop.example' };
        const first = await kong.request(req, { plugin: id }); // instance start (and, route-bound, get_route)
        const cookie = cookieOf(first)!;
        const r = await kong.request({ ...req, headers: { cookie } }, { plugin: id });
        expect(r.upstreamHost).toBe(preserveHost ? 'shop.example' : '192.0.2.10');
        return { first: calls(first), calls: calls(r), roundTrips: r.roundTrips };
      } finally {
        kong.removePlugin(id);
      }
    };
    const routeTrue = await pinnedCalls({ route: routes.true.id }, true);
    expect(routeTrue.first.slice(0, 2)).toEqual(['nginx.get_var', 'router.get_route']);
    expect(routeTrue.calls).toEqual(['nginx.get_var', 'nginx.get_var', 'service.set_target', 'service.request.set_header']);
    expect(routeTrue.roundTrips).toBe(5);
    const routeFalse = await pinnedCalls({ route: routes.false.id }, false);
    expect(routeFalse.first.slice(0, 3)).toEqual(['nginx.get_var', 'router.get_route', 'service.set_target']);
    expect(routeFalse.calls).toEqual(['nginx.get_var', 'service.set_target']);
    expect(routeFalse.roundTrips).toBe(3);
    const serviceTrue = await pinnedCalls({ service: 'svc-host' }, true);
    expect(serviceTrue.calls).toEqual(['nginx.get_var', 'nginx.get_var', 'service.set_target', 'service.request.set_header']);
    expect(serviceTrue.roundTrips).toBe(5);
    const serviceFalse = await pinnedCalls({ service: 'svc-host' }, false);
    expect(serviceFalse.calls).toEqual(['nginx.get_var', 'nginx.get_var', 'service.set_target']);
    expect(serviceFalse.roundTrips).toBe(4);
  });
});

describe('bad input never crashes the server or leaves a request hanging', () => {
  it('garbage, huge, duplicated and many cookies', async () => {
    const pid = replicas[0]!.serverPid;
    const good = cookieOf(await send())!;
    const headers = [
      { cookie: 'sticky=%%%%' },
      { cookie: `sticky=${'A'.repeat(8000)}` },
      { cookie: [`sticky=garbage`, good] },
      { cookie: `${good}; sticky=other` },
      { cookie: Array.from({ length: 200 }, (_, i) => `c${i}=${i}`).join('; ') + `; ${good}` },
      { cookie: 'sticky' },
      { cookie: 'sticky=' },
      { cookie: '=;;;=' },
      { cookie: `sticky="${good.slice(7)}"` },
    ];
    for (const h of headers) {
      const r = await send({ headers: h });
      expect(r.eventFinished).toBe(true);
      expect(r.hung).toBeFalsy();
      expect(r.status).toBe(200);
      expect(r.target).toBeDefined();
    }
    expect(replicas[0]!.serverPid).toBe(pid);
  });
});

describe('bad config', () => {
  it('is refused by the schema, naming the field', () => {
    const kong = replicas[0]!;
    const attempts: Array<[Record<string, unknown>, string]> = [
      [{ secrets: ['short'], targets: [A] }, 'secrets'],
      [{ secrets: [SECRET], cookie_same_site: 'Sometimes' }, 'cookie_same_site'],
      [{ secrets: [SECRET], cookie_max_age: -1 }, 'cookie_max_age'],
      [{ secrets: [SECRET], balancer: 'fastest' }, 'balancer'],
      [{ secrets: [SECRET], idle_refresh_percent: 0 }, 'idle_refresh_percent'],
      [{ targets: [A] }, 'secrets'],
    ];
    for (const [config, field] of attempts) {
      const error = (() => {
        try {
          kong.addPlugin({ route: `r-${field}`, config });
        } catch (e) {
          return e;
        }
      })();
      expect(error).toBeInstanceOf(KongSchemaError);
      expect(JSON.stringify((error as KongSchemaError).fields)).toContain(field);
    }
  });

  it('what the schema cannot check leaves the route to Kong, with an error naming the field', async () => {
    const kong = replicas[1]!;
    const id = kong.addPlugin({ route: 'r-bad-target', config: { secrets: [SECRET], targets: [A, '192.0.2.999:80'] } }).id;
    const r = await kong.request({ service: SERVICE }, { plugin: id });
    expect(r.status).toBe(200);
    expect(r.target).toBeUndefined();
    expect(r.responseHeaders['set-cookie']).toBeUndefined();
    expect(kong.serverLog()).toMatch(/config\.targets\[2\].*Kong balances/);
    kong.removePlugin(id);
    // The server is fine and the other plugin still routes.
    expect(target(await send({}, 1, 0))).toBeDefined();
  });
});
