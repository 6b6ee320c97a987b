import { describe, expect, it } from 'vitest';
import {
  combinedServiceName,
  hostnameRuleServiceName,
  identifyKicRoute,
  kicRouteNameReadings,
  kicServiceNameReadings,
  parseKicRouteTags,
  parseKicServiceName,
  ruleServiceName,
  sha256Hex,
} from '../../src/endpoints/gateway-api/kic-names.js';

// KIC's own test fixture (subtranslator/httproute_test.go, TestGetKongServiceNameByBackendRefs,
// ~l.831-972 at KIC main 1fa68f86): a 251-character Service name and the digest KIC expects.
const LONG = `service-with-a-very-${'long-'.repeat(41)}name-having-251-characters`;
const KIC_LONG_DIGEST = 'd39c14b023c01526d6d7a9b4aaf61dbd8daf53eb7241f933daec622ea59e2da9';

describe('combinedServiceName: KIC getKongServiceNameByBackendRefs (subtranslator/httproute.go l.500-541)', () => {
  it('one backend without port or weight: just <ns>.<name> (KIC test "single backend")', () => {
    expect(combinedServiceName('default', [{ kind: 'Service', name: 'service-1' }]).name).toBe('httproute.default.svc.default.service-1');
  });

  it('backends sorted as strings, namespace filled from the route (KIC test "multiple backends")', () => {
    const { name } = combinedServiceName('default', [
      { name: 'service-1', port: 80 },
      { name: 'service-2', port: 8080 },
      { name: 'service-2', namespace: 'another-namespace', port: 80 },
    ]);
    expect(name).toBe('httproute.default.svc.another-namespace.service-2.80_default.service-1.80_default.service-2.8080');
  });

  it('weights follow ports; byte order puts "1080" before "80" (KIC test "multiple backends with weights")', () => {
    const { name } = combinedServiceName('default', [
      { name: 'service-1', port: 80, weight: 75 },
      { name: 'service-1', port: 1080, weight: 25 },
    ]);
    expect(name).toBe('httproute.default.svc.default.service-1.1080.25_default.service-1.80.75');
  });

  it('no backendRefs: httproute.<ns>.svc._ (a host cannot end with a dot)', () => {
    expect(combinedServiceName('shop', []).name).toBe('httproute.shop.svc._');
  });

  it('past 511 characters: first backend + _combined.<sha256 of the full name>, KIC\'s own digest', () => {
    const r = combinedServiceName('default', [
      { name: LONG, port: 80, weight: 75 },
      { name: LONG, port: 8080, weight: 25 },
    ]);
    expect(LONG).toHaveLength(251);
    expect(r.full).toHaveLength(555);
    expect(sha256Hex(r.full)).toBe(KIC_LONG_DIGEST);
    expect(r.name).toBe(`httproute.default.svc.default.${LONG}.80.75_combined.${KIC_LONG_DIGEST}`);
  });

  it('exactly 511 characters stays untrimmed, 512 is trimmed', () => {
    const prefix = 'httproute.default.svc.default.';
    const at = (len: number) => combinedServiceName('default', [{ name: 'a'.repeat(len - prefix.length - 5), port: 80, weight: 1 }]);
    expect(at(511).name).toHaveLength(511);
    expect(at(511).name).toBe(at(511).full);
    expect(at(512).name).toMatch(/_combined\.[0-9a-f]{64}$/);
  });
});

describe('ruleServiceName / hostnameRuleServiceName', () => {
  it('3.4+ and 3.0-3.3 traditional: httproute.<ns>.<name>.<rule> (httproute.go l.157)', () => {
    expect(ruleServiceName('shop', 'cart', 2)).toBe('httproute.shop.cart.2');
  });

  it('3.0-3.3 expressions: * becomes _, no hostname is _ (httproute_atc.go KongServiceNameFromSplitHTTPRouteMatch)', () => {
    expect(hostnameRuleServiceName('shop', 'cart', '*.example.com', 0)).toBe('httproute.shop.cart._.example.com.0');
    expect(hostnameRuleServiceName('shop', 'cart', undefined, 1)).toBe('httproute.shop.cart._.1');
    expect(hostnameRuleServiceName('shop', 'cart', 'shop.example.com', 1)).toBe('httproute.shop.cart.shop.example.com.1');
  });
});

describe('kicServiceNameReadings / parseKicServiceName', () => {
  it('the usual rule host', () => {
    expect(kicServiceNameReadings('httproute.default.echo.0')).toEqual([{ kind: 'rule', namespace: 'default', name: 'echo', rule: 0 }]);
    expect(parseKicServiceName('httproute.shop.cart-api.12')).toEqual({ kind: 'rule', namespace: 'shop', name: 'cart-api', rule: 12 });
  });

  it('a dotted HTTPRoute name: the 3.4+ reading first, 3.0-3.3 hostname splits after', () => {
    expect(kicServiceNameReadings('httproute.shop.web.v2.3')).toEqual([
      { kind: 'rule', namespace: 'shop', name: 'web.v2', rule: 3 },
      { kind: 'rule', namespace: 'shop', name: 'web', hostname: 'v2', rule: 3 },
    ]);
  });

  it('3.0-3.3 expressions hosts: `_` is unambiguous (names never hold `_`)', () => {
    expect(kicServiceNameReadings('httproute.default.echo._.1')).toEqual([{ kind: 'rule', namespace: 'default', name: 'echo', hostname: '_', rule: 1 }]);
    expect(kicServiceNameReadings('httproute.default.a.b._.example.com.0')).toEqual([
      { kind: 'rule', namespace: 'default', name: 'a.b', hostname: '_.example.com', rule: 0 },
    ]);
  });

  it('3.0-3.3 expressions with a plain hostname: every split is offered, longest hostname first', () => {
    const readings = kicServiceNameReadings(hostnameRuleServiceName('default', 'echo', 'shop.example.com', 2));
    expect(readings[0]).toEqual({ kind: 'rule', namespace: 'default', name: 'echo.shop.example.com', rule: 2 });
    expect(readings).toContainEqual({ kind: 'rule', namespace: 'default', name: 'echo', hostname: 'shop.example.com', rule: 2 });
    expect(readings).toHaveLength(4);
  });

  it('combined names parse back into their backends, in KIC\'s byte order ("-" sorts before ".")', () => {
    const host = combinedServiceName('default', [
      { name: 'echo', port: 80, weight: 90 },
      { name: 'echo-canary', port: 8080, weight: 10 },
    ]).name;
    expect(kicServiceNameReadings(host)).toEqual([
      {
        kind: 'combined',
        namespace: 'default',
        backends: [
          { namespace: 'default', service: 'echo-canary', port: 8080, weight: 10 },
          { namespace: 'default', service: 'echo', port: 80, weight: 90 },
        ],
      },
    ]);
  });

  it('one combined backend is also a valid per-rule name of an HTTPRoute called svc.<...>: both readings', () => {
    const readings = kicServiceNameReadings('httproute.default.svc.default.echo.80.1');
    expect(readings[0]).toEqual({ kind: 'combined', namespace: 'default', backends: [{ namespace: 'default', service: 'echo', port: 80, weight: 1 }] });
    expect(readings[1]).toEqual({ kind: 'rule', namespace: 'default', name: 'svc.default.echo.80', rule: 1 });
  });

  it('httproute.<ns>.svc._ is the combined service of rules without backendRefs', () => {
    expect(parseKicServiceName('httproute.default.svc._')).toEqual({ kind: 'combined', namespace: 'default', backends: [] });
  });

  it('the digest form keeps the first backend and the sha256', () => {
    const host = `httproute.default.svc.default.${LONG}.80.75_combined.${KIC_LONG_DIGEST}`;
    expect(parseKicServiceName(host)).toEqual({
      kind: 'combined-digest',
      namespace: 'default',
      first: { namespace: 'default', service: LONG, port: 80, weight: 75 },
      digest: KIC_LONG_DIGEST,
    });
  });

  it('a lone trailing number is the weight (the CRD always sets it; port is optional only off Services)', () => {
    expect(parseKicServiceName('httproute.default.svc.default.bucket.1_default.echo.80.1')).toEqual({
      kind: 'combined',
      namespace: 'default',
      backends: [
        { namespace: 'default', service: 'bucket', weight: 1 },
        { namespace: 'default', service: 'echo', port: 80, weight: 1 },
      ],
    });
  });

  it('unsorted backend lists are not KIC names', () => {
    expect(kicServiceNameReadings('httproute.default.svc.default.b.80.1_default.a.80.1')).toEqual([]);
  });

  it.each([
    ['KIC Ingress host', 'echo.default.80.svc'],
    ['no rule', 'httproute.default.echo'],
    ['leading zero', 'httproute.default.echo.01'],
    ['upper case namespace', 'httproute.Default.echo.0'],
    ['empty', ''],
    ['null', null],
    ['grpcroute', 'grpcroute.default.echo.0'],
  ])('%s: no reading', (_, host) => {
    expect(kicServiceNameReadings(host)).toEqual([]);
    expect(parseKicServiceName(host)).toBeUndefined();
  });
});

describe('Kong route names and tags', () => {
  // KIC util.GenerateTagsForObject (internal/util/k8s.go): name, namespace, kind, uid, group,
  // version, then k8s-named-route-rule (3.4+), then konghq.com/tags user tags.
  const tags = (name: string, ...extra: string[]) => [
    `k8s-name:${name}`,
    'k8s-namespace:shop',
    'k8s-kind:HTTPRoute',
    'k8s-uid:8a4f6c1e-2b1d-4f7a-9c3e-5d6b7a8c9d0e',
    'k8s-group:gateway.networking.k8s.io',
    'k8s-version:v1',
    ...extra,
  ];

  it('traditional: httproute.<ns>.<name>.<rule>.<match> (httproute.go translateToKongRouteName)', () => {
    expect(kicRouteNameReadings('httproute.shop.cart.1.0')).toEqual([{ namespace: 'shop', name: 'cart', rule: 1, match: 0 }]);
  });

  it('expressions: httproute.<ns>.<name>.<hostname|_>.<rule>.<match> (httproute_atc.go l.479)', () => {
    expect(kicRouteNameReadings('httproute.shop.cart._.1.2')).toEqual([{ namespace: 'shop', name: 'cart', hostname: '_', rule: 1, match: 2 }]);
  });

  it('tags name the HTTPRoute, named rules included', () => {
    expect(parseKicRouteTags(tags('cart', 'k8s-named-route-rule:checkout', 'team-a'))).toEqual({
      namespace: 'shop',
      name: 'cart',
      uid: '8a4f6c1e-2b1d-4f7a-9c3e-5d6b7a8c9d0e',
      ruleNames: ['checkout'],
    });
  });

  it('tags of a Kubernetes Service (what KIC puts on the Kong service) are not an HTTPRoute', () => {
    expect(parseKicRouteTags(['k8s-name:echo', 'k8s-namespace:shop', 'k8s-kind:Service', 'k8s-version:v1'])).toBeUndefined();
    expect(parseKicRouteTags(null)).toBeUndefined();
  });

  it('a dotted name: the tags settle what the route name alone cannot', () => {
    const routeName = 'httproute.shop.web.v2.shop.example.com.3.1';
    expect(kicRouteNameReadings(routeName).length).toBeGreaterThan(1);
    expect(identifyKicRoute(routeName, tags('web.v2'))).toEqual({
      namespace: 'shop',
      name: 'web.v2',
      uid: '8a4f6c1e-2b1d-4f7a-9c3e-5d6b7a8c9d0e',
      ruleNames: [],
      rule: 3,
      match: 1,
      hostname: 'shop.example.com',
    });
  });

  it('without tags: the most likely reading; with tags that disagree: the tags and no rule', () => {
    expect(identifyKicRoute('httproute.shop.cart.2.0', undefined)).toEqual({ namespace: 'shop', name: 'cart', rule: 2, match: 0, ruleNames: [] });
    expect(identifyKicRoute('my-own-route', tags('cart'))).toMatchObject({ namespace: 'shop', name: 'cart' });
    expect(identifyKicRoute('my-own-route', tags('cart'))).not.toHaveProperty('rule');
    expect(identifyKicRoute('my-own-route', undefined)).toBeUndefined();
  });
});
