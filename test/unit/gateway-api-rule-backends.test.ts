import { describe, expect, it } from 'vitest';
import type { HTTPRouteLike, ReferenceGrantLike, ServiceLike } from '../../src/endpoints/gateway-api/httproute.js';
import { combinedServiceName } from '../../src/endpoints/gateway-api/kic-names.js';
import {
  findKicService,
  kicServiceGroups,
  ruleBackends,
  serviceBackends,
  type ServiceLookup,
} from '../../src/endpoints/gateway-api/rule-backends.js';

// Services as `kubectl get svc -o json` shows them (only the fields read).
const services: ServiceLike[] = [
  { metadata: { namespace: 'shop', name: 'cart' }, spec: { type: 'ClusterIP', ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }] } },
  { metadata: { namespace: 'shop', name: 'cart-canary' }, spec: { ports: [{ name: 'http', port: 80, targetPort: 'web' }] } },
  { metadata: { namespace: 'shop', name: 'legacy' }, spec: { ports: [{ port: 8080, targetPort: 8080 }] } },
  { metadata: { namespace: 'shop', name: 'payments-ext' }, spec: { type: 'ExternalName', ports: [{ name: 'https', port: 443 }] } },
  { metadata: { namespace: 'billing', name: 'invoices' }, spec: { ports: [{ name: 'grpc-web', port: 9000 }, { name: 'metrics', port: 9100 }] } },
];
const lookup: ServiceLookup = (ns, name) => services.find((s) => s.metadata.namespace === ns && s.metadata.name === name);

// A canary split as users write it: weights on the refs, the CRD fills in group/kind.
const canary: HTTPRouteLike = {
  metadata: { namespace: 'shop', name: 'cart' },
  spec: {
    hostnames: ['shop.example.com'],
    rules: [
      {
        matches: [{ path: { type: 'PathPrefix', value: '/cart' } }],
        backendRefs: [
          { name: 'cart', port: 80, weight: 90 },
          { name: 'cart-canary', port: 80, weight: 10 },
        ],
        sessionPersistence: { sessionName: 'cart-session', type: 'Cookie' },
      },
    ],
  },
};

type GrantSpec = NonNullable<ReferenceGrantLike['spec']>;
// A ReferenceGrant in billing letting shop's HTTPRoutes refer to `to`, as users write them.
const billingGrant = (
  to: GrantSpec['to'],
  from: GrantSpec['from'] = [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: 'shop' }],
  namespace = 'billing',
): ReferenceGrantLike => ({
  metadata: { namespace, name: 'shop-routes' },
  spec: { from, to },
});

describe('ruleBackends: KIC backendRefsToKongStateBackends (subtranslator/backendref.go) + findPort (translate_upstreams.go)', () => {
  it('a weighted split: Service port *names* (EndpointSlices match by name, translate_upstreams.go l.330) and weights', () => {
    expect(ruleBackends(canary, 0, [], lookup)).toEqual({
      ok: true,
      backends: [
        { ref: { namespace: 'shop', service: 'cart', port: 'http' }, weight: 90, key: 'shop/cart:80' },
        { ref: { namespace: 'shop', service: 'cart-canary', port: 'http' }, weight: 10, key: 'shop/cart-canary:80' },
      ],
      problems: [],
    });
  });

  it('weight unset is the CRD default 1; weight 0 is kept (existing sessions stay, no new ones); unnamed port is ""', () => {
    const route: HTTPRouteLike = {
      metadata: { namespace: 'shop', name: 'r' },
      spec: { rules: [{ backendRefs: [{ name: 'legacy', port: 8080 }, { name: 'cart', port: 80, weight: 0 }] }] },
    };
    const r = ruleBackends(route, 0, [], lookup);
    expect(r.ok && r.backends).toEqual([
      { ref: { namespace: 'shop', service: 'legacy', port: '' }, weight: 1, key: 'shop/legacy:8080' },
      { ref: { namespace: 'shop', service: 'cart', port: 'http' }, weight: 0, key: 'shop/cart:80' },
    ]);
  });

  it('a missing Service is skipped, the others still serve (backendref.go l.54-63: logged, not fatal)', () => {
    const route: HTTPRouteLike = {
      metadata: { namespace: 'shop', name: 'r' },
      spec: { rules: [{ backendRefs: [{ name: 'gone', port: 80 }, { name: 'cart', port: 80 }] }] },
    };
    const r = ruleBackends(route, 0, [], lookup);
    expect(r.ok && r.backends.map((b) => b.key)).toEqual(['shop/cart:80']);
    expect(r.ok && r.problems).toEqual([{ backendRef: { name: 'gone', port: 80 }, reason: 'service-not-found', message: 'Service shop/gone does not exist' }]);
  });

  it('kinds other than core Service are problems (util.IsBackendRefGroupKindSupported: only core/Service)', () => {
    const route: HTTPRouteLike = {
      metadata: { namespace: 'shop', name: 'r' },
      spec: {
        rules: [
          {
            backendRefs: [
              { group: 'multicluster.x-k8s.io', kind: 'ServiceImport', name: 'cart', port: 80 },
              { group: 'example.com', kind: 'Service', name: 'cart', port: 80 },
              { group: 'core', kind: 'Service', name: 'cart', port: 80 },
            ],
          },
        ],
      },
    };
    const r = ruleBackends(route, 0, [], lookup);
    expect(r.ok && r.problems.map((p) => p.reason)).toEqual(['unsupported-kind', 'unsupported-kind']);
    expect(r.ok && r.backends.map((b) => b.key)).toEqual(['shop/cart:80']);
  });

  describe('cross-namespace refs and ReferenceGrants (gatewayapi/references.go)', () => {
    const route: HTTPRouteLike = {
      metadata: { namespace: 'shop', name: 'invoices' },
      spec: { rules: [{ backendRefs: [{ name: 'invoices', namespace: 'billing', port: 9000 }] }] },
    };

    it('no grant: not permitted', () => {
      const r = ruleBackends(route, 0, [], lookup);
      expect(r.ok && r.problems.map((p) => p.reason)).toEqual(['not-permitted']);
    });

    it('a grant to every Service of the namespace, or to this one by name', () => {
      for (const to of [[{ group: '', kind: 'Service' }], [{ group: '', kind: 'Service', name: 'invoices' }]]) {
        const r = ruleBackends(route, 0, [billingGrant(to)], lookup);
        expect(r.ok && r.backends).toEqual([{ ref: { namespace: 'billing', service: 'invoices', port: 'grpc-web' }, weight: 1, key: 'billing/invoices:9000' }]);
      }
    });

    it.each([
      ['to another Service', billingGrant([{ group: '', kind: 'Service', name: 'other' }])],
      ['from another namespace', billingGrant([{ group: '', kind: 'Service' }], [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: 'blog' }])],
      ['from GRPCRoutes', billingGrant([{ group: '', kind: 'Service' }], [{ group: 'gateway.networking.k8s.io', kind: 'GRPCRoute', namespace: 'shop' }])],
      ['in the route\'s namespace instead of the backend\'s', billingGrant([{ group: '', kind: 'Service' }], undefined, 'shop')],
    ])('a grant %s does not permit it', (_, grant) => {
      const r = ruleBackends(route, 0, [grant], lookup);
      expect(r.ok && r.problems.map((p) => p.reason)).toEqual(['not-permitted']);
    });

    it('a namespace written out but equal to the route\'s needs no grant', () => {
      const local: HTTPRouteLike = { metadata: { namespace: 'shop', name: 'r' }, spec: { rules: [{ backendRefs: [{ name: 'cart', namespace: 'shop', port: 80 }] }] } };
      expect(ruleBackends(local, 0, [], lookup)).toMatchObject({ ok: true, problems: [] });
    });
  });

  it('ports: missing on the ref, missing on the Service, ExternalName (no pods)', () => {
    const route: HTTPRouteLike = {
      metadata: { namespace: 'shop', name: 'r' },
      spec: { rules: [{ backendRefs: [{ name: 'cart' }, { name: 'cart', port: 8443 }, { name: 'payments-ext', port: 443 }] }] },
    };
    const r = ruleBackends(route, 0, [], lookup);
    expect(r.ok && r.problems.map((p) => [p.reason, p.message])).toEqual([
      ['no-port', 'Service shop/cart: the backendRef has no port'],
      ['port-not-found', 'Service shop/cart has no port 8443'],
      ['external-name', 'Service shop/payments-ext is an ExternalName Service: it has no pods'],
    ]);
  });

  it('the same Service port twice is one backend with the weights summed (KIC updateTargetMap, issue #5761)', () => {
    const route: HTTPRouteLike = {
      metadata: { namespace: 'shop', name: 'r' },
      spec: { rules: [{ backendRefs: [{ name: 'cart', port: 80, weight: 3 }, { name: 'cart', port: 80, weight: 2 }] }] },
    };
    const r = ruleBackends(route, 0, [], lookup);
    expect(r.ok && r.backends).toEqual([{ ref: { namespace: 'shop', service: 'cart', port: 'http' }, weight: 5, key: 'shop/cart:80' }]);
  });

  it('a weight the CRD would refuse (raw YAML) is a problem, not a negative share', () => {
    const route: HTTPRouteLike = { metadata: { namespace: 'shop', name: 'r' }, spec: { rules: [{ backendRefs: [{ name: 'cart', port: 80, weight: -5 }] }] } };
    const r = ruleBackends(route, 0, [], lookup);
    expect(r.ok && r.problems.map((p) => p.reason)).toEqual(['invalid-weight']);
  });

  it('no such rule is data', () => {
    expect(ruleBackends(canary, 3, [], lookup)).toEqual({ ok: false, reason: 'HTTPRoute shop/cart has no rule 3' });
  });
});

describe('kicServiceGroups: which rules share a Kong service (subtranslator/httproute.go groupRulesFromHTTPRoutesByKongServiceName)', () => {
  // Rules 0 and 2 have the same refs (order and an explicit default weight do not matter once
  // the CRD has defaulted them); rule 1 differs; rule 3 has a per-backendRef filter.
  const shop: HTTPRouteLike = {
    metadata: { namespace: 'shop', name: 'web.v2' },
    spec: {
      hostnames: ['shop.example.com', '*.shop.example.com'],
      rules: [
        { matches: [{ path: { value: '/a' } }], backendRefs: [{ name: 'cart', port: 80 }, { name: 'legacy', port: 8080 }] },
        { matches: [{ path: { value: '/b' } }], backendRefs: [{ name: 'cart', port: 80 }] },
        { matches: [{ path: { value: '/c' } }], backendRefs: [{ name: 'legacy', port: 8080, weight: 1 }, { name: 'cart', port: 80 }] },
        {
          matches: [{ path: { value: '/d' } }],
          backendRefs: [{ name: 'cart', port: 80, filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { add: [{ name: 'x-v', value: '2' }] } }] }],
        },
      ],
    },
  };

  it('per-route (3.4+, and 3.0-3.3 traditional): equal backendRef multisets share the first rule\'s service', () => {
    const groups = kicServiceGroups([shop], 'per-route');
    expect([...groups].map(([name, rules]) => [name, rules.map((r) => r.rule)])).toEqual([
      ['httproute.shop.web.v2.0', [0, 2]],
      ['httproute.shop.web.v2.1', [1]],
      ['httproute.shop.web.v2.3', [3]],
    ]);
  });

  it('per-hostname (3.0-3.3 expressions router): one service per hostname and rule', () => {
    const names = [...kicServiceGroups([shop], 'per-hostname').keys()];
    expect(names).toHaveLength(8);
    expect(names).toContain('httproute.shop.web.v2.shop.example.com.0');
    expect(names).toContain('httproute.shop.web.v2._.shop.example.com.3');
  });

  it('combined: rules of different HTTPRoutes in one namespace with the same {ns,name,port,weight} share; sorted by "<ns>/<name>.<rule>"', () => {
    const rules = (n: number, refs: { name: string; port: number }[]) => Array.from({ length: n }, () => ({ backendRefs: refs }));
    const a: HTTPRouteLike = { metadata: { namespace: 'shop', name: 'a' }, spec: { rules: rules(11, [{ name: 'cart', port: 80 }]) } };
    const b: HTTPRouteLike = { metadata: { namespace: 'shop', name: 'b' }, spec: { rules: [{ backendRefs: [{ name: 'cart', port: 80, weight: 1 }] }] } };
    const other: HTTPRouteLike = { metadata: { namespace: 'blog', name: 'a' }, spec: { rules: [{ backendRefs: [{ name: 'cart', namespace: 'shop', port: 80 }] }] } };
    const groups = kicServiceGroups([b, other, a], 'combined');
    const shared = groups.get('httproute.shop.svc.shop.cart.80.1');
    // "shop/a.10" < "shop/a.2": KIC's string sort, the backends come from that first rule.
    expect(shared?.map((r) => `${r.route.metadata.name}.${r.rule}`).slice(0, 3)).toEqual(['a.0', 'a.1', 'a.10']);
    expect(shared).toHaveLength(12);
    expect(groups.get('httproute.blog.svc.shop.cart.80.1')).toHaveLength(1);
  });
});

describe('findKicService + serviceBackends: from the Kong service host to the Services', () => {
  it('a per-rule host; a rule folded into an earlier one has no service of its own', () => {
    const routes: HTTPRouteLike[] = [
      canary,
      { metadata: { namespace: 'shop', name: 'twice' }, spec: { rules: [{ backendRefs: [{ name: 'cart', port: 80 }] }, { backendRefs: [{ name: 'cart', port: 80 }] }] } },
    ];
    const [match, ...more] = findKicService('httproute.shop.cart.0', routes);
    expect(more).toEqual([]);
    expect(match?.mode).toBe('per-route');
    expect(serviceBackends(match!, [], lookup).backends.map((b) => b.key)).toEqual(['shop/cart:80', 'shop/cart-canary:80']);
    expect(findKicService('httproute.shop.twice.1', routes)).toEqual([]);
    expect(findKicService('httproute.shop.twice.0', routes)[0]?.rules.map((r) => r.rule)).toEqual([0, 1]);
  });

  it('a dotted HTTPRoute name needs no guessing: names are built from the routes', () => {
    const route: HTTPRouteLike = { metadata: { namespace: 'shop', name: 'web.v2' }, spec: { rules: [{ backendRefs: [{ name: 'cart', port: 80 }] }] } };
    expect(findKicService('httproute.shop.web.v2.0', [route]).map((m) => m.mode)).toEqual(['per-route']);
  });

  it('a digest host is resolved by recomputing every rule\'s combined name', () => {
    const many = Array.from({ length: 16 }, (_, i) => ({ name: `cart-shard-with-a-long-name-${i}`, port: 80, weight: 1 }));
    const route: HTTPRouteLike = { metadata: { namespace: 'shop', name: 'shards' }, spec: { rules: [{ backendRefs: [{ name: 'cart', port: 80 }] }, { backendRefs: many }] } };
    const host = combinedServiceName('shop', many).name;
    expect(host).toMatch(/_combined\.[0-9a-f]{64}$/);
    const [match] = findKicService(host, [route]);
    expect(match).toMatchObject({ mode: 'combined', serviceName: host });
    expect(match?.rules.map((r) => r.rule)).toEqual([1]);
  });

  it('a combined group takes backends and grants from its first rule\'s route', () => {
    const route: HTTPRouteLike = { metadata: { namespace: 'shop', name: 'inv' }, spec: { rules: [{ backendRefs: [{ name: 'invoices', namespace: 'billing', port: 9000 }] }] } };
    const [match] = findKicService('httproute.shop.svc.billing.invoices.9000.1', [route]);
    expect(serviceBackends(match!, [], lookup).problems.map((p) => p.reason)).toEqual(['not-permitted']);
    expect(serviceBackends(match!, [billingGrant([{ group: '', kind: 'Service' }])], lookup).backends.map((b) => b.key)).toEqual(['billing/invoices:9000']);
  });

  it('hosts that are not KIC\'s, or of another namespace, match nothing', () => {
    expect(findKicService('cart.shop.80.svc', [canary])).toEqual([]);
    expect(findKicService('httproute.blog.cart.0', [canary])).toEqual([]);
  });
});
