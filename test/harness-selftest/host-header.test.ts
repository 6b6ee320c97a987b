/**
 * The emulator's model of the upstream Host header, case by case against Kong 3.9's Lua:
 * the router (atc.lua + runloop access.before) sets $upstream_host to the request's Host
 * only on a preserve_host route; service.lua set_target sets it to the target host (no
 * port); service/request.lua set_header("Host") sets it and the downstream Host; access.after
 * sends a non-empty $upstream_host as it is, else set_host_header's hostname[:port].
 */
import { describe, expect, it } from 'vitest';
import { callPdk, RequestContext, routerMatched, upstreamHostHeader, type EmulatedRequest, type PdkEnv } from '../harness/pdk.js';

const env: PdkEnv = { pluginId: 'p', pluginName: 'x', nodeId: 'n', workerId: 0, trustedIps: [], log: () => {} };

type Step = ['set_target', string, number] | ['set_header', string, string] | ['get_var', string];

/** One request: the router, then the plugin's calls (results of get_var collected), then Kong's Host. */
function run(req: EmulatedRequest, steps: Step[] = []): { host: string; vars: unknown[]; ctx: RequestContext } {
  const ctx = new RequestContext(req);
  routerMatched(ctx);
  const vars: unknown[] = [];
  for (const s of steps) {
    if (s[0] === 'set_target') callPdk(ctx, 'access', env, 'kong.service.set_target', [s[1], s[2]]);
    else if (s[0] === 'set_header') callPdk(ctx, 'access', env, 'kong.service.request.set_header', [s[1], s[2]]);
    else vars.push(callPdk(ctx, 'access', env, 'kong.nginx.get_var', [s[1]]));
  }
  return { host: upstreamHostHeader(ctx), vars, ctx };
}

const http8080 = { id: 's', host: 'backend.internal', port: 8080, protocol: 'http' };
const http80 = { id: 's', host: 'backend.internal', port: 80, protocol: 'http' };
const https443 = { id: 's', host: 'backend.internal', port: 443, protocol: 'https' };
const https80 = { id: 's', host: 'backend.internal', port: 80, protocol: 'https' };
const preserve = { id: 'r', preserve_host: true };
const plain = { id: 'r', preserve_host: false };

describe('the router and $upstream_host', () => {
  it("is the request's Host header as sent (port, case) on a preserve_host route, '' on any other", () => {
    expect(run({ host: 'Shop.Example:8000', service: http8080, route: preserve }, [['get_var', 'upstream_host']]).vars).toEqual(['Shop.Example:8000']);
    expect(run({ host: 'shop.example', service: http8080, route: plain }, [['get_var', 'upstream_host']]).vars).toEqual(['']);
    expect(run({ host: 'shop.example', service: http8080, route: { id: 'r' } }, [['get_var', 'upstream_host']]).vars).toEqual(['']);
    expect(run({ host: 'shop.example', service: http8080 }, [['get_var', 'upstream_host']]).vars).toEqual(['']);
  });

  it('stays empty on a preserve_host route when the client sent an empty Host', () => {
    const r = run({ headers: { host: '' }, service: http8080, route: preserve }, [['get_var', 'upstream_host']]);
    expect(r.vars).toEqual(['']);
    expect(r.host).toBe('backend.internal:8080');
  });
});

describe('without the plugin touching anything', () => {
  it("preserve_host sends the client's Host; otherwise the service host, with the port unless the scheme's default", () => {
    expect(run({ host: 'Shop.Example:8000', service: http8080, route: preserve }).host).toBe('Shop.Example:8000');
    expect(run({ host: 'shop.example', service: http8080, route: plain }).host).toBe('backend.internal:8080');
    expect(run({ host: 'shop.example', service: http80, route: plain }).host).toBe('backend.internal');
    expect(run({ host: 'shop.example', service: https443, route: plain }).host).toBe('backend.internal');
    expect(run({ host: 'shop.example', service: https80, route: plain }).host).toBe('backend.internal:80');
    expect(run({ host: 'shop.example', service: { ...http80, port: 443 }, route: plain }).host).toBe('backend.internal:443');
  });
});

describe('set_target', () => {
  it('sends the target host without its port, whatever preserve_host, port or scheme (Kong/kong#5945)', () => {
    for (const route of [preserve, plain]) {
      for (const service of [http8080, http80, https443, https80]) {
        expect(run({ host: 'shop.example:8000', service, route }, [['set_target', '10.0.0.7', 8080]]).host).toBe('10.0.0.7');
        expect(run({ host: 'shop.example:8000', service, route }, [['set_target', '10.0.0.7', 80]]).host).toBe('10.0.0.7');
      }
    }
  });

  it('overwrites $upstream_host, so a later read sees the target host', () => {
    const r = run({ host: 'shop.example', service: http8080, route: preserve }, [['get_var', 'upstream_host'], ['set_target', '10.0.0.7', 8080], ['get_var', 'upstream_host']]);
    expect(r.vars).toEqual(['shop.example', '10.0.0.7']);
  });
});

describe('service.request.set_header("Host")', () => {
  it('after set_target, the upstream gets that value, port included', () => {
    const steps: Step[] = [['set_target', '10.0.0.7', 8080], ['set_header', 'Host', 'Shop.Example:8000']];
    expect(run({ host: 'Shop.Example:8000', service: http8080, route: preserve }, steps).host).toBe('Shop.Example:8000');
    expect(run({ host: 'Shop.Example:8000', service: https443, route: plain }, steps).host).toBe('Shop.Example:8000');
    expect(run({ host: 'x', service: http80, route: plain }, [['set_target', '10.0.0.7', 8080], ['set_header', 'host', '10.0.0.7:8080']]).host).toBe('10.0.0.7:8080');
  });

  it("without set_target, on a route that does not preserve the Host, it is sent as the Host (set_host_header is skipped)", () => {
    expect(run({ host: 'shop.example', service: http8080, route: plain }, [['set_header', 'Host', 'api.example']]).host).toBe('api.example');
  });

  it('changes the downstream request Host too: $host, $http_host, get_host, get_header', () => {
    const r = run({ host: 'shop.example', service: http8080, route: plain }, [['set_target', '10.0.0.7', 8080], ['set_header', 'Host', 'Other.Example:9000']]);
    expect(callPdk(r.ctx, 'access', env, 'kong.request.get_host', [])).toBe('other.example');
    expect(callPdk(r.ctx, 'access', env, 'kong.request.get_header', ['host'])).toBe('Other.Example:9000');
    expect(callPdk(r.ctx, 'access', env, 'kong.nginx.get_var', ['host'])).toBe('other.example');
    expect(callPdk(r.ctx, 'access', env, 'kong.nginx.get_var', ['http_host'])).toBe('Other.Example:9000');
    expect(r.ctx.headers.filter(([n]) => n.toLowerCase() === 'host')).toEqual([['Host', 'Other.Example:9000']]);
  });

  it("writing back the value the router set leaves the downstream Host as it was", () => {
    const r = run({ host: 'Shop.Example:8000', service: http8080, route: preserve }, [['get_var', 'upstream_host'], ['set_target', '10.0.0.7', 8080], ['set_header', 'Host', 'Shop.Example:8000']]);
    expect(r.host).toBe('Shop.Example:8000');
    expect(callPdk(r.ctx, 'access', env, 'kong.request.get_header', ['host'])).toBe('Shop.Example:8000');
    expect(callPdk(r.ctx, 'access', env, 'kong.request.get_host', [])).toBe('shop.example');
  });
});

describe('router.get_route', () => {
  it("returns the route entity with the schema's defaults, preserve_host included", () => {
    const ctx = new RequestContext({ route: { id: 'r' } });
    expect(callPdk(ctx, 'access', env, 'kong.router.get_route', [])).toMatchObject({ id: 'r', preserve_host: false, strip_path: true });
    const p = new RequestContext({ route: preserve });
    expect(callPdk(p, 'access', env, 'kong.router.get_route', [])).toMatchObject({ id: 'r', preserve_host: true });
    expect(callPdk(new RequestContext({}), 'access', env, 'kong.router.get_route', [])).toBeUndefined();
  });
});
