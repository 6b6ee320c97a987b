import { describe, expect, it } from 'vitest';
import { parseGatewayDuration } from '../../src/endpoints/gateway-api/duration.js';
import { convert, DEFAULT_OPTIONS } from '../../src/convert/index.js';
import { convertedProblems } from '../manifests/converted.js';

type Obj = Record<string, unknown>;

function route(rules: Obj[]): Obj {
  return { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'shop', namespace: 'shop' }, spec: { parentRefs: [{ name: 'kong' }], rules } };
}
const rule = (sessionPersistence: Obj, extra: Obj = {}): Obj => ({ backendRefs: [{ name: 'web', port: 80 }], sessionPersistence, ...extra });
const service: Obj = {
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'web', namespace: 'shop' },
  spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }, { name: 'admin', port: 81, targetPort: 8081 }] },
};

function run(rules: Obj[], docs: Obj[] = [service]) {
  const result = convert([...docs, route(rules)], DEFAULT_OPTIONS);
  const plugins = result.documents.filter((d) => (d as Obj).kind === 'KongPlugin') as Obj[];
  const out = result.documents.find((d) => (d as Obj).kind === 'HTTPRoute') as Obj;
  return { result, plugins, config: (plugins[0]?.config ?? {}) as Obj, outRules: (out.spec as Obj).rules as Obj[] };
}

describe('GEP-2257 durations', () => {
  it('parses components in any order, repeated units, ms; refuses what the API refuses', () => {
    expect(parseGatewayDuration('1h30m')).toBe(5_400_000);
    expect(parseGatewayDuration('10s30m1h')).toBe(3_600_000 + 1_800_000 + 10_000);
    expect(parseGatewayDuration('100ms200ms300ms')).toBe(600);
    expect(parseGatewayDuration('1h30m30s500ms')).toBe(5_430_500);
    expect(parseGatewayDuration('0s')).toBe(0);
    for (const bad of ['1', '1m1', '1.5h', '1d', '', '1h30m10s20ms50h', '123456s', '-1s', ' 1s', 10]) expect(parseGatewayDuration(bad), String(bad)).toBeUndefined();
  });
});

describe('HTTPRoute sessionPersistence', () => {
  it('v1.1-v1.5 cookie: name, timeouts, Permanent lifetime as Max-Age; the plugin goes on the rule by an ExtensionRef filter', () => {
    const { result, plugins, config, outRules } = run([
      rule({ sessionName: 'cart', absoluteTimeout: '1h30m', idleTimeout: '30m', type: 'Cookie', cookieConfig: { lifetimeType: 'Permanent' } }, { name: 'cart' }),
      { backendRefs: [{ name: 'web', port: 80 }] },
    ]);
    expect(config).toEqual({
      transport: 'cookie',
      cookie_name: 'cart',
      cookie_path: '/',
      absolute_timeout: 5400,
      cookie_max_age: 5400,
      idle_timeout: 1800,
      kubernetes_namespace: 'shop',
      kubernetes_service: 'web',
      kubernetes_port: 'http',
    });
    expect((plugins[0]?.metadata as Obj).name).toBe('shop-cart-sticky-session');
    expect(outRules[0]).toEqual({
      name: 'cart',
      backendRefs: [{ name: 'web', port: 80 }],
      filters: [{ type: 'ExtensionRef', extensionRef: { group: 'configuration.konghq.com', kind: 'KongPlugin', name: 'shop-cart-sticky-session' } }],
    });
    expect(outRules[1]).toEqual({ backendRefs: [{ name: 'web', port: 80 }] }); // no persistence, no plugin
    expect(result.reports.find((r) => r.field.endsWith('idleTimeout'))?.message).toMatch(/900 to 1800 s/);
    for (const d of result.documents) expect(convertedProblems(d)).toEqual([]);
  });

  it('Session lifetime (the default): a browser-session cookie, the absolute timeout enforced by the token', () => {
    const { config } = run([rule({ sessionName: 's', absoluteTimeout: '10m' })]);
    expect(config).toMatchObject({ transport: 'cookie', cookie_max_age: 0, absolute_timeout: 600 });
  });

  it('no name: a unique generated cookie name, reported', () => {
    const { config, result } = run([rule({ absoluteTimeout: '1h' })]);
    expect(config.cookie_name).toBe('sp_shop_shop_0');
    expect(result.reports.find((r) => r.field.endsWith('sessionName'))?.level).toBe('differs');
  });

  it('header type (v1.1-v1.6 sessionName, and the later header.name)', () => {
    expect(run([rule({ sessionName: 'Session-A', type: 'Header', absoluteTimeout: '10m' })]).config).toMatchObject({ transport: 'header', header_name: 'Session-A', absolute_timeout: 600 });
    const later = run([rule({ type: 'Header', header: { name: 'X-Session' } })]);
    expect(later.config).toMatchObject({ transport: 'header', header_name: 'X-Session' });
    expect(later.config).not.toHaveProperty('cookie_max_age');
  });

  it('the later cookie {name, path, lifetimeType} shape', () => {
    const { config } = run([rule({ type: 'Cookie', absoluteTimeout: '2h', cookie: { name: 'JSESSIONID', path: '/shop', lifetimeType: 'Permanent' } })]);
    expect(config).toMatchObject({ cookie_name: 'JSESSIONID', cookie_path: '/shop', cookie_max_age: 7200, absolute_timeout: 7200 });
  });

  it('sub-second and over-a-year durations are rounded and reported; 0s and nonsense are unmapped', () => {
    const sub = run([rule({ sessionName: 's', absoluteTimeout: '1500ms', idleTimeout: '9999h' })]);
    expect(sub.config).toMatchObject({ absolute_timeout: 2, idle_timeout: 31_536_000 });
    const zero = run([rule({ sessionName: 's', absoluteTimeout: '0s', idleTimeout: '5 minutes' })]);
    expect(zero.config).not.toHaveProperty('absolute_timeout');
    expect(zero.config).not.toHaveProperty('idle_timeout');
    expect(zero.result.reports.filter((r) => r.level === 'unmapped').map((r) => r.field)).toEqual([
      'spec.rules[0].sessionPersistence.absoluteTimeout',
      'spec.rules[0].sessionPersistence.idleTimeout',
    ]);
  });

  it('a traffic split, a non-Service backend or no backend: unmapped, sessionPersistence left on the rule', () => {
    const split = rule({ sessionName: 's' }, { backendRefs: [{ name: 'a', port: 80, weight: 90 }, { name: 'b', port: 80, weight: 10 }] });
    const bucket = rule({ sessionName: 's' }, { backendRefs: [{ group: 'example.com', kind: 'Bucket', name: 'b' }] });
    const none = rule({ sessionName: 's' }, { backendRefs: [] });
    const { result, plugins, outRules } = run([split, bucket, none]);
    expect(plugins).toEqual([]);
    expect(outRules.map((r) => r.sessionPersistence)).toEqual([{ sessionName: 's' }, { sessionName: 's' }, { sessionName: 's' }]);
    expect(result.reports.map((r) => r.level)).toEqual(['unmapped', 'unmapped', 'unmapped']);
    expect(result.changed).toEqual([false, false]); // the Service and the route, as read
  });

  it('a backend Service not in the input: kubernetes_port is its number, with a note about multi-port Services', () => {
    const { config, result } = run([rule({ sessionName: 's' })], []);
    expect(config.kubernetes_port).toBe('80');
    expect(result.reports.some((r) => /multi-port/.test(r.message))).toBe(true);
  });

  it('unknown sessionPersistence fields are unmapped; BackendLBPolicy and GRPCRoute persistence are reported, passed through', () => {
    const lb = { apiVersion: 'gateway.networking.k8s.io/v1alpha2', kind: 'BackendLBPolicy', metadata: { name: 'lb', namespace: 'shop' }, spec: { targetRefs: [{ group: '', kind: 'Service', name: 'web' }], sessionPersistence: { sessionName: 'x' } } };
    const grpc = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GRPCRoute', metadata: { name: 'g', namespace: 'shop' }, spec: { rules: [{ sessionPersistence: { sessionName: 'x' } }] } };
    const result = convert([lb, grpc, route([rule({ sessionName: 's', partitioned: true })])], DEFAULT_OPTIONS);
    expect(result.reports.filter((r) => r.level === 'unmapped').map((r) => `${r.source} ${r.field}`)).toEqual([
      'BackendLBPolicy shop/lb spec.sessionPersistence',
      'GRPCRoute shop/g spec.rules[0].sessionPersistence',
      'HTTPRoute shop/shop rule 0 spec.rules[0].sessionPersistence.partitioned',
    ]);
    expect(result.documents.slice(1, 3)).toEqual([lb, grpc]);
  });
});
