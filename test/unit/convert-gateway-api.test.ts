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
  const extensionRef = (name: string): Obj => ({ type: 'ExtensionRef', extensionRef: { group: 'configuration.konghq.com', kind: 'KongPlugin', name } });

  it('v1.6.1 cookie: sessionPersistence stays on the rule as is, a KongPlugin with only the secrets goes on it by an ExtensionRef filter', () => {
    const sp = { sessionName: 'cart', absoluteTimeout: '1h30m', type: 'Cookie', cookieConfig: { lifetimeType: 'Permanent' } };
    const { result, plugins, outRules } = run([rule(sp, { name: 'cart' }), { backendRefs: [{ name: 'web', port: 80 }] }]);
    expect(plugins).toHaveLength(1);
    const plugin = plugins[0] as Obj;
    expect(plugin.config).toEqual({});
    expect(plugin.configPatches).toEqual([{ path: '/secrets', valueFrom: { secretKeyRef: { name: 'sticky-session-secrets', key: 'secrets' } } }]);
    expect((plugin.metadata as Obj).name).toBe('shop-cart-sticky-session');
    expect(outRules[0]).toEqual({ name: 'cart', backendRefs: [{ name: 'web', port: 80 }], sessionPersistence: sp, filters: [extensionRef('shop-cart-sticky-session')] });
    expect(outRules[1]).toEqual({ backendRefs: [{ name: 'web', port: 80 }] }); // no persistence, no plugin
    // Nothing differs from GEP-1619 here; the Secret and the RBAC are to do.
    expect(result.reports.map((r) => `${r.level} ${r.source}`)).toEqual(['action Secret shop/sticky-session-secrets', 'action ClusterRole sticky-session-endpointslices-reader']);
    for (const d of result.documents) expect(convertedProblems(d)).toEqual([]);
  });

  it('a traffic split converts like any rule (weights 90/10, and 0)', () => {
    const split = rule({ sessionName: 's' }, { backendRefs: [{ name: 'web', port: 80, weight: 90 }, { name: 'web-v2', port: 80, weight: 10 }] });
    const drained = rule({ sessionName: 't' }, { name: 'old', backendRefs: [{ name: 'web', port: 80, weight: 0 }, { name: 'web-v2', port: 80, weight: 100 }] });
    const { result, plugins, outRules } = run([split, drained]);
    expect(plugins.map((p) => (p.metadata as Obj).name)).toEqual(['shop-0-sticky-session', 'shop-old-sticky-session']);
    expect(outRules.map((r) => r.filters)).toEqual([[extensionRef('shop-0-sticky-session')], [extensionRef('shop-old-sticky-session')]]);
    expect(outRules.map((r) => r.backendRefs)).toEqual([split.backendRefs, drained.backendRefs]);
    expect(result.reports.filter((r) => r.level !== 'action')).toEqual([]);
    for (const d of result.documents) expect(convertedProblems(d)).toEqual([]);
  });

  it('keeps filters the rule has, and converting the output again adds no second filter or plugin', () => {
    const header = { type: 'RequestHeaderModifier', requestHeaderModifier: { add: [{ name: 'X-A', value: '1' }] } };
    const first = convert([service, route([rule({ sessionName: 's' }, { filters: [header] })])], DEFAULT_OPTIONS);
    const again = convert(first.documents, DEFAULT_OPTIONS);
    expect(again.documents).toEqual(first.documents);
    const out = first.documents.find((d) => (d as Obj).kind === 'HTTPRoute') as Obj;
    expect(((out.spec as Obj).rules as Obj[])[0]?.filters).toEqual([header, extensionRef('shop-0-sticky-session')]);
  });

  it('Session lifetime (the default) and header type convert with nothing to report', () => {
    for (const sp of [{ sessionName: 's', absoluteTimeout: '10m' }, { sessionName: 'Session-A', type: 'Header', absoluteTimeout: '10m' }]) {
      const { result, plugins } = run([rule(sp)]);
      expect(plugins).toHaveLength(1);
      expect(result.reports.filter((r) => r.level !== 'action'), JSON.stringify(sp)).toEqual([]);
    }
  });

  it("no name: a cookie gets one per rule from the plugin (nothing to report), a header the KongPlugin's (reported)", () => {
    const cookie = run([rule({ absoluteTimeout: '1h' })]);
    expect(cookie.plugins).toHaveLength(1);
    expect(cookie.result.reports.filter((r) => r.level !== 'action')).toEqual([]);
    const header = run([rule({ type: 'Header' })]);
    expect(header.result.reports.filter((r) => r.level === 'differs').map((r) => [r.field, r.message])).toEqual([
      ['spec.rules[0].sessionPersistence.sessionName', expect.stringMatching(/KongPlugin's header_name \(X-Sticky-Session\)/)],
    ]);
  });

  it('a rule matching a path other than /: the cookie Path is / , reported', () => {
    const { result } = run([rule({ sessionName: 's' }, { matches: [{ path: { type: 'PathPrefix', value: '/cart' } }] })]);
    expect(result.reports.filter((r) => r.level === 'differs').map((r) => r.message)).toEqual([expect.stringMatching(/Path=\/ .*\(\/cart\)/)]);
    // gateway-api main's cookie.path says it: nothing to report.
    const withPath = run([rule({ type: 'Cookie', cookie: { name: 'c', path: '/cart' } }, { matches: [{ path: { type: 'PathPrefix', value: '/cart' } }] })]);
    expect(withPath.result.reports.filter((r) => r.level === 'differs')).toEqual([]);
  });

  it('v1.1-v1.5 idleTimeout stays on the rule: how the plugin honours it, and that v1.6 refuses it, are reported', () => {
    const { result, outRules } = run([rule({ sessionName: 's', idleTimeout: '30m' })]);
    expect(outRules[0]?.sessionPersistence).toEqual({ sessionName: 's', idleTimeout: '30m' });
    expect(result.reports.find((r) => r.field.endsWith('idleTimeout'))?.message).toMatch(/900 to 1800 s.*v1\.6 removed the field/);
    // What a v1.6.1 API server says of the converted route.
    const out = result.documents.find((d) => (d as Obj).kind === 'HTTPRoute');
    expect(convertedProblems(out)).toEqual([expect.stringMatching(/sessionPersistence: must NOT have additional properties "idleTimeout"/)]);
  });

  it("gateway-api main's cookie {name, path, lifetimeType} and header {name} shapes are read as the runtime reads them", () => {
    expect(run([rule({ type: 'Cookie', absoluteTimeout: '2h', cookie: { name: 'JSESSIONID', path: '/shop', lifetimeType: 'Permanent' } })]).result.reports.filter((r) => r.level !== 'action')).toEqual([]);
    expect(run([rule({ type: 'Header', header: { name: 'X-Session' } })]).result.reports.filter((r) => r.level !== 'action')).toEqual([]);
    // main's CEL: header.name is required with type Header.
    const noName = run([rule({ type: 'Header', header: {} })]);
    expect(noName.result.reports.filter((r) => r.level === 'unmapped').map((r) => r.message)).toEqual([expect.stringMatching(/header.name is required.*KongPlugin's settings/)]);
  });

  it('sub-second durations are reported as rounded; 0s, nonsense, bad names and mixed shapes are unmapped (the plugin falls back to the KongPlugin)', () => {
    const sub = run([rule({ sessionName: 's', absoluteTimeout: '1500ms' })]);
    expect(sub.result.reports.filter((r) => r.level === 'differs').map((r) => r.message)).toEqual(['1500ms: the plugin counts whole seconds, 2 s']);
    for (const sp of [
      { sessionName: 's', absoluteTimeout: '0s' },
      { sessionName: 's', idleTimeout: '5 minutes' },
      { sessionName: 'cart session' },
      { sessionName: 's', type: 'Query' },
      { sessionName: 's', cookieConfig: { lifetimeType: 'Permanent' } },
      { sessionName: 's', cookie: { name: 'c' } },
    ]) {
      const { result, plugins } = run([rule(sp)]);
      expect(plugins, JSON.stringify(sp)).toHaveLength(1); // still attached: the rule's backends stay the endpoint set
      expect(result.reports.filter((r) => r.level === 'unmapped').map((r) => r.field), JSON.stringify(sp)).toEqual(['spec.rules[0].sessionPersistence']);
    }
  });

  it('a rule without a Service backend, or without backends: no plugin, the route as read; a non-Service beside a Service is ignored', () => {
    const bucket = rule({ sessionName: 's' }, { backendRefs: [{ group: 'example.com', kind: 'Bucket', name: 'b' }] });
    const none = rule({ sessionName: 's' }, { backendRefs: [] });
    const { result, plugins, outRules } = run([bucket, none]);
    expect(plugins).toEqual([]);
    expect(outRules.map((r) => r.filters)).toEqual([undefined, undefined]);
    expect(result.reports.map((r) => r.level)).toEqual(['unmapped', 'ignored']);
    expect(result.changed).toEqual([false, false]); // the Service and the route, as read
    const mixed = run([rule({ sessionName: 's' }, { backendRefs: [{ name: 'web', port: 80 }, { group: 'example.com', kind: 'Bucket', name: 'b' }] })]);
    expect(mixed.plugins).toHaveLength(1);
    expect(mixed.result.reports.filter((r) => r.level === 'ignored').map((r) => r.field)).toEqual(['spec.rules[0].backendRefs[1]']);
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
