/**
 * The view of one HTTPRoute rule (src/endpoints/gateway-api/rule-source.ts) in-process,
 * against the in-test API server through the real client-node: KIC's service names resolved
 * from the HTTPRoutes, every change followed live (HTTPRoute, Service, EndpointSlices), and
 * nothing held once it is closed.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GatewayRuleSource, type GatewayRuleIdentity } from '../../src/endpoints/gateway-api/rule-source.js';
import { combinedServiceName } from '../../src/endpoints/gateway-api/kic-names.js';
import { objectCacheKeys, type ObjectCacheOptions } from '../../src/endpoints/kubernetes/index.js';
import { sources } from '../../src/endpoints/registry.js';
import type { EndpointSnapshot } from '../../src/endpoints/types.js';
import { httpRoute, referenceGrant, service } from '../harness/kic-gateway-api.js';
import { HTTP_ROUTE_KIND, REFERENCE_GRANT_KIND, SERVICE_KIND, startKubeApiServer, type KubeApiServer } from '../harness/kube-apiserver.js';
import { endpointSlice, podEndpoint, READY } from '../harness/kube-slices.js';
import { eventually } from './eventually.js';

let server: KubeApiServer;
let options: ObjectCacheOptions;
const open: GatewayRuleSource[] = [];

beforeEach(async () => {
  server = await startKubeApiServer({ bookmarkIntervalMs: 50 });
  options = { kubeConfig: server.kubeConfig(), backoff: { initialMs: 20, maxMs: 150 }, answerTimeoutMs: 300 };
  for (const [name, ips] of [['web-v1', ['192.0.2.11', '192.0.2.12']], ['web-v2', ['192.0.2.21']]] as const) {
    server.applyObject(SERVICE_KIND, service('shop', name));
    server.apply(endpointSlice({ name: `${name}-a`, service: name, endpoints: ips.map((ip, i) => podEndpoint(`${name}-${i}`, ip, READY)) }));
  }
});

afterEach(async () => {
  for (const s of open.splice(0)) s.close();
  await server.stop();
});

function source(identity: GatewayRuleIdentity): GatewayRuleSource {
  const s = new GatewayRuleSource(identity, { objects: options, watcher: options });
  open.push(s);
  return s;
}

const shares = (v: EndpointSnapshot | undefined) => v?.backends?.map((b) => `${b.key} w${b.weight}: ${b.ready.map((e) => e.host).join(',')}`);

const SPLIT = [
  { path: '/', backendRefs: [{ name: 'web-v1', port: 80, weight: 90 }, { name: 'web-v2', port: 80, weight: 10 }], sessionPersistence: { sessionName: 'a' } },
  { path: '/b', backendRefs: [{ name: 'web-v2', port: 80 }] },
];

describe('GatewayRuleSource', () => {
  it('builds the view of the rule its Kong route names, and follows HTTPRoute, Service and EndpointSlice changes', async () => {
    server.applyObject(HTTP_ROUTE_KIND, httpRoute('shop', 'web', SPLIT));
    const s = source({ host: 'httproute.shop.web.0', rule: { namespace: 'shop', name: 'web', index: 0 } });
    await eventually(() => s.current() !== undefined);
    expect(shares(s.current())).toEqual(['shop/web-v1:80 w90: 192.0.2.11,192.0.2.12', 'shop/web-v2:80 w10: 192.0.2.21']);
    expect(s.rule()?.ruleKey).toBe('httproute:shop/web/0');
    expect(s.rule()?.sessionPolicy).toMatchObject({ ok: true, policy: { type: 'cookie', name: 'a' } });

    // A weight change: a new view, same endpoint objects.
    const before = s.current()!;
    server.applyObject(HTTP_ROUTE_KIND, httpRoute('shop', 'web', [{ ...SPLIT[0]!, backendRefs: [{ name: 'web-v1', port: 80, weight: 50 }, { name: 'web-v2', port: 80, weight: 50 }] }]));
    await eventually(() => shares(s.current())?.[0]?.includes('w50') === true);
    expect(s.current()!.byId.get('uid-web-v1-0')).toBe(before.byId.get('uid-web-v1-0'));

    // A pod of web-v2 added.
    server.apply(endpointSlice({ name: 'web-v2-a', service: 'web-v2', endpoints: [podEndpoint('web-v2-0', '192.0.2.21', READY), podEndpoint('web-v2-1', '192.0.2.22', READY)] }));
    await eventually(() => shares(s.current())?.[1] === 'shop/web-v2:80 w50: 192.0.2.21,192.0.2.22');

    // The Service loses port 80: KIC leaves that backend out, and so does the view.
    server.applyObject(SERVICE_KIND, service('shop', 'web-v2', 8081));
    await eventually(() => shares(s.current())?.length === 1);
    expect(s.current()!.byId.has('uid-web-v2-0')).toBe(false);
  });

  it('resolves the rule from the Kong service host alone: per rule, rules that share a service, combined and digest forms', async () => {
    server.applyObject(HTTP_ROUTE_KIND, httpRoute('shop', 'web', [...SPLIT, { path: '/c', backendRefs: [{ name: 'web-v2', port: 80 }] }]));
    // Rules 1 and 2 have the same backendRefs: KIC makes one service, named after rule 1.
    const shared = source({ host: 'httproute.shop.web.1' });
    const combined = source({ host: combinedServiceName('shop', [{ name: 'web-v1', port: 80, weight: 90 }, { name: 'web-v2', port: 80, weight: 10 }]).name });
    await eventually(() => shared.current() !== undefined && combined.current() !== undefined);
    expect(shares(shared.current())).toEqual(['shop/web-v2:80 w1: 192.0.2.21']);
    expect(shared.rule()?.ruleKey).toBe('httproute:shop/web/1');
    expect(combined.key).toBe('kic-service:httproute.shop.svc.shop.web-v1.80.90_shop.web-v2.80.10');
    expect(shares(combined.current())).toEqual(['shop/web-v1:80 w90: 192.0.2.11,192.0.2.12', 'shop/web-v2:80 w10: 192.0.2.21']);

    // KIC 3.0-3.3 with the expressions router: a service per hostname and rule (`_` for none).
    const expressions = source({ host: 'httproute.shop.web._.0' });
    await eventually(() => expressions.current() !== undefined);
    expect(expressions.rule()?.ruleKey).toBe('httproute:shop/web/0');
    server.applyObject(HTTP_ROUTE_KIND, httpRoute('shop', 'hosted', [SPLIT[1]!], ['shop.example.com', '*.shop.example']));
    const wildcard = source({ host: 'httproute.shop.hosted._.shop.example.0' });
    await eventually(() => wildcard.current() !== undefined);
    expect(wildcard.rule()?.ruleKey).toBe('httproute:shop/hosted/0');
    expect(shares(wildcard.current())).toEqual(['shop/web-v2:80 w1: 192.0.2.21']);

    // Past 511 characters KIC names it by digest: found by building KIC's names for the namespace's rules.
    // Real names (a namespace and Services of 50 characters, 5 backends; a rule holds at most 16).
    const ns = `team-${'a'.repeat(45)}`;
    const names = [0, 1, 2, 3, 4].map((i) => `svc-${'b'.repeat(44)}-${i}`);
    names.forEach((name, i) => {
      server.applyObject(SERVICE_KIND, service(ns, name));
      server.apply(endpointSlice({ name: `${name}-a`, namespace: ns, service: name, endpoints: [podEndpoint(`p${i}`, `192.0.2.${40 + i}`, READY, ns)] }));
    });
    const refs = names.map((name, i) => ({ name, port: 80, weight: i + 1 }));
    server.applyObject(HTTP_ROUTE_KIND, httpRoute(ns, 'many', [{ backendRefs: refs.slice(0, 1) }, { backendRefs: refs }]));
    const digestName = combinedServiceName(ns, refs).name;
    expect(digestName).toMatch(/_combined\.[0-9a-f]{64}$/);
    const digest = source({ host: digestName });
    await eventually(() => digest.current() !== undefined);
    expect(digest.rule()?.ruleKey).toBe(`httproute:${ns}/many/1`);
    expect(digest.current()?.backends?.map((b) => b.weight)).toEqual([1, 2, 3, 4, 5]);

    // The same Service port twice in a rule: one backend, weights summed (as KIC sums its targets).
    server.applyObject(HTTP_ROUTE_KIND, httpRoute('shop', 'twice', [{ backendRefs: [{ name: 'web-v2', port: 80, weight: 1 }, { name: 'web-v2', port: 80, weight: 2 }] }]));
    const twice = source({ host: 'httproute.shop.twice.0', rule: { namespace: 'shop', name: 'twice', index: 0 } });
    await eventually(() => twice.current() !== undefined);
    expect(shares(twice.current())).toEqual(['shop/web-v2:80 w3: 192.0.2.21']);
  });

  it('no such rule: no view (Kong balances); it appears when the HTTPRoute does', async () => {
    const s = source({ host: 'httproute.shop.web.0', rule: { namespace: 'shop', name: 'web', index: 0 } });
    await new Promise((r) => setTimeout(r, 300));
    expect(s.current()).toBeUndefined();
    server.applyObject(HTTP_ROUTE_KIND, httpRoute('shop', 'web', SPLIT));
    await eventually(() => s.current() !== undefined);
  });

  it('a backendRef to another namespace counts with a ReferenceGrant; once it is gone, that namespace is no longer watched', async () => {
    server.applyObject(SERVICE_KIND, service('other', 'legacy'));
    server.apply(endpointSlice({ name: 'legacy-a', namespace: 'other', service: 'legacy', endpoints: [podEndpoint('legacy-0', '192.0.2.51', READY, 'other')] }));
    const rules = (withOther: boolean) => [{ backendRefs: [{ name: 'web-v2', port: 80 }, ...(withOther ? [{ name: 'legacy', namespace: 'other', port: 80 }] : [])] }];
    server.applyObject(HTTP_ROUTE_KIND, httpRoute('shop', 'mixed', rules(true)));
    const s = source({ host: 'httproute.shop.mixed.0', rule: { namespace: 'shop', name: 'mixed', index: 0 } });
    await eventually(() => s.current() !== undefined);
    expect(shares(s.current())).toEqual(['shop/web-v2:80 w1: 192.0.2.21']);
    // Said where operators look (GET /status, sticky-session status), not only in the log.
    expect(s.status().problem).toMatch(/^backendRef Service other\/legacy: no ReferenceGrant in other lets HTTPRoutes of shop refer to it \(not-permitted\)/);
    server.applyObject(REFERENCE_GRANT_KIND, referenceGrant('other', 'from-shop', 'shop'));
    await eventually(() => shares(s.current())?.length === 2);
    expect(s.status().problem).toBeUndefined();
    // Its Services, ReferenceGrants and EndpointSlices.
    expect(objectCacheKeys().filter((k) => k.includes('@other#'))).toHaveLength(3);

    server.applyObject(HTTP_ROUTE_KIND, httpRoute('shop', 'mixed', rules(false)));
    await eventually(() => shares(s.current())?.length === 1);
    expect(objectCacheKeys().filter((k) => k.includes('@other#'))).toEqual([]);
  });

  it('holds nothing once closed: no cache, no Service view', async () => {
    server.applyObject(HTTP_ROUTE_KIND, httpRoute('shop', 'web', SPLIT));
    const s = source({ host: 'httproute.shop.web.0', rule: { namespace: 'shop', name: 'web', index: 0 } });
    await eventually(() => s.current() !== undefined);
    expect(objectCacheKeys().length).toBeGreaterThanOrEqual(2);
    expect(sources.keys()).toEqual(expect.arrayContaining(['k8s:shop/web-v1:http', 'k8s:shop/web-v2:http']));
    s.close();
    expect(objectCacheKeys()).toEqual([]);
    expect(sources.keys()).toEqual([]);
  });
});
