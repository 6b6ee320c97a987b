/**
 * The Host header the upstream gets when the plugin routes a request (issue 11 part 1),
 * through the real plugin server served as the image serves it, and the Kong emulator's
 * model of Kong's Host handling (router, set_target, set_header, access.after): it must be
 * the Host Kong sends without the plugin. On a preserve_host route that is the client's Host
 * as sent; on any other route the plugin leaves what set_target leaves, the target host
 * without its port (README "Cost per request": why the port is not restored).
 * Route-bound and service-bound instances, cookie and header transports, new, pinned and
 * re-pinned requests.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KongEmulator, type RequestResult, type UpstreamRequest } from '../harness/kong-emulator.js';

const SECRET = 'e2e-host-secret-0123456789abcdef0123456789';
const SERVICE = { id: '0e3c1c3e-2222-4c4c-9a9a-000000000001', name: 'shop', host: 'shop.internal', port: 8080, protocol: 'http' };
const ROUTES = {
  true: { id: '0e3c1c3e-2222-4c4c-9a9a-0000000000a1', name: 'preserve', preserve_host: true },
  false: { id: '0e3c1c3e-2222-4c4c-9a9a-0000000000a2', name: 'plain', preserve_host: false },
} as const;
const A = '192.0.2.10:8080';
const B = '192.0.2.11:8080';
const CLIENT_HOST = 'Shop.Example:8000';

type Binding = 'route' | 'service';
type Transport = 'cookie' | 'header';

let kong: KongEmulator;

beforeAll(async () => {
  kong = await KongEmulator.start({ useDockerfile: true, workers: 1 });
});

afterAll(async () => {
  await kong?.stop();
});

/** Sends a request on the route with that preserve_host; returns Kong's result and the Host line(s) the upstream got. */
async function send(plugin: string, preserveHost: boolean, token: { transport: Transport; value: string } | undefined): Promise<{ r: RequestResult; hosts: string[] }> {
  const headers: Record<string, string> = { host: CLIENT_HOST };
  if (token?.transport === 'cookie') headers.cookie = `sticky=${token.value}`;
  if (token?.transport === 'header') headers['x-sticky-session'] = token.value;
  let hosts: string[] = [];
  const upstream = (u: UpstreamRequest) => {
    hosts = u.headers.filter(([n]) => n.toLowerCase() === 'host').map(([, v]) => v);
    return { status: 200 };
  };
  const r = await kong.request({ service: SERVICE, route: ROUTES[`${preserveHost}`], headers }, { plugin, upstream, log: false });
  return { r, hosts };
}

function tokenOf(r: RequestResult, transport: Transport): string | undefined {
  if (transport === 'header') return r.responseHeaders['x-sticky-session']?.[0];
  return r.responseHeaders['set-cookie']?.[0]?.split(';')[0]?.slice('sticky='.length);
}

/** What Kong sends without the plugin (preserve_host) or after set_target (otherwise). */
function expectedHost(preserveHost: boolean, target: { host: string } | undefined): string {
  return preserveHost ? CLIENT_HOST : target!.host;
}

describe.each([
  ['route', true],
  ['route', false],
  ['service', true],
  ['service', false],
] as Array<[Binding, boolean]>)('%s-bound instance, preserve_host=%s', (binding, preserveHost) => {
  for (const transport of ['cookie', 'header'] as Transport[]) {
    it(`${transport} transport: new, pinned and re-pinned requests carry the Host Kong sends without the plugin`, async () => {
      const scope = binding === 'route' ? { route: ROUTES[`${preserveHost}`].id } : { service: SERVICE.id };
      const config = { secrets: [SECRET], cookie_name: 'sticky', transport, targets: [A] };
      const id = kong.addPlugin({ ...scope, config }).id;
      try {
        const fresh = await send(id, preserveHost, undefined);
        expect(fresh.r.target).toEqual({ host: '192.0.2.10', port: 8080 });
        const token = tokenOf(fresh.r, transport)!;
        expect(token).toBeDefined();
        expect(fresh.hosts).toEqual([expectedHost(preserveHost, fresh.r.target)]);
        expect(fresh.r.upstreamHost).toBe(expectedHost(preserveHost, fresh.r.target));

        for (let i = 0; i < 2; i++) {
          const pinned = await send(id, preserveHost, { transport, value: token });
          expect(pinned.r.target).toEqual(fresh.r.target);
          expect(tokenOf(pinned.r, transport)).toBeUndefined();
          expect(pinned.hosts).toEqual([expectedHost(preserveHost, pinned.r.target)]);
        }

        // A is removed: the session moves to B with a new token (a new instance for the new config).
        kong.updatePlugin(id, { config: { targets: [B] } });
        const repinned = await send(id, preserveHost, { transport, value: token });
        expect(repinned.r.target).toEqual({ host: '192.0.2.11', port: 8080 });
        expect(tokenOf(repinned.r, transport)).toBeDefined();
        expect(repinned.hosts).toEqual([expectedHost(preserveHost, repinned.r.target)]);

        // The client's Host as later plugins and the log see it is untouched.
        for (const x of [fresh, repinned]) {
          expect(x.r.pdkCalls.filter((c) => c.method === 'kong.service.request.set_header').map((c) => c.args)).toEqual(preserveHost ? [['Host', CLIENT_HOST]] : []);
        }
      } finally {
        kong.removePlugin(id);
      }
    });
  }
});

describe('edge cases', () => {
  it('a preserve_host route whose client sent an empty Host: Kong computes the Host itself, and so does the plugin', async () => {
    const id = kong.addPlugin({ service: SERVICE.id, config: { secrets: [SECRET], targets: [A] } }).id;
    try {
      let host: string | undefined;
      const r = await kong.request(
        { service: SERVICE, route: ROUTES.true, headers: { host: '' } },
        { plugin: id, log: false, upstream: (u) => ((host = u.hostHeader), { status: 200 }) },
      );
      expect(r.target).toEqual({ host: '192.0.2.10', port: 8080 });
      expect(host).toBe('192.0.2.10');
      expect(r.pdkCalls.map((c) => c.method)).not.toContain('kong.service.request.set_header');
    } finally {
      kong.removePlugin(id);
    }
  });

  it('fail open and 503 do no Host work: Kong sends what it sends without the plugin', async () => {
    const open = kong.addPlugin({ route: ROUTES.true.id, config: { secrets: [SECRET], kubernetes_namespace: 'shop', kubernetes_service: 'cart' } }).id;
    const reject = kong.addPlugin({ route: ROUTES.true.id, config: { secrets: [SECRET], targets: [`${A} draining`], no_ready_endpoint: 'reject' } }).id;
    try {
      const r = await kong.request({ service: SERVICE, route: ROUTES.true, headers: { host: CLIENT_HOST } }, { plugin: open, log: false });
      expect(r.pdkCalls).toEqual([]);
      expect(r.upstreamHost).toBe(CLIENT_HOST);
      const plain = await kong.request({ service: SERVICE, route: ROUTES.false, headers: { host: CLIENT_HOST } }, { plugin: open, log: false });
      expect(plain.upstreamHost).toBe('shop.internal:8080');
      const rejected = await kong.request({ service: SERVICE, route: ROUTES.true, headers: { host: CLIENT_HOST } }, { plugin: reject, log: false });
      expect(rejected.status).toBe(503);
      expect(rejected.pdkCalls.map((c) => c.method)).toEqual(['kong.nginx.get_var', 'kong.response.exit']);
    } finally {
      kong.removePlugin(open);
      kong.removePlugin(reject);
    }
  });
});
