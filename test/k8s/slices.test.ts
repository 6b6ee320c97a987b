import { describe, expect, it } from 'vitest';
import {
  endpointCondition,
  endpointsFromSlices,
  sameEndpoints,
  slicePort,
  slicesMissingPort,
  type EndpointSliceLike,
} from '../../src/endpoints/kubernetes/slices.js';
import { DRAINING, endpointSlice, podEndpoint, READY, STOPPED } from '../harness/kube-slices.js';

const slice = (s: Parameters<typeof endpointSlice>[0]) => endpointSlice(s) as EndpointSliceLike;

describe('endpointCondition', () => {
  it.each([
    // conditions as stored (absent fields stay absent)       -> view
    [undefined, 'ready'],
    [{}, 'ready'],
    [{ ready: true }, 'ready'],
    [{ ready: false }, undefined],
    [{ ready: true, serving: true, terminating: false }, 'ready'],
    [{ ready: false, serving: true, terminating: false }, undefined],
    [{ ready: false, serving: true, terminating: true }, 'draining'],
    [{ ready: false, serving: false, terminating: true }, undefined],
    [{ terminating: true }, 'draining'], // serving defaults to ready, ready to true
    [{ ready: false, terminating: true }, undefined], // serving defaults to ready = false
    [{ serving: true, terminating: true }, 'draining'],
    [{ serving: false, terminating: true }, undefined],
    [{ ready: true, terminating: true }, 'draining'],
    [{ ready: true, serving: false }, 'ready'],
    [{ ready: null, serving: null, terminating: null }, 'ready'],
  ] as const)('%j -> %s', (conditions, expected) => {
    expect(endpointCondition(conditions)).toBe(expected);
  });
});

describe('slicePort', () => {
  const named = [
    { name: 'http', port: 8080, protocol: 'TCP' },
    { name: 'metrics', port: 9090, protocol: 'TCP' },
    { name: 'dns', port: 53, protocol: 'UDP' },
  ];
  it.each([
    ['http', 8080],
    ['metrics', 9090],
    ['grpc', undefined],
    ['dns', undefined], // UDP: Kong proxies TCP
    [9090, 9090],
    [8080, 8080],
    [80, undefined], // several ports: a number must match one
    [null, undefined], // several ports: "the only port" is ambiguous
  ] as const)('multi-port slice, wanted %j -> %j', (wanted, expected) => {
    expect(slicePort(named, wanted)).toBe(expected);
  });

  it.each([
    [[{ port: 8080 }], '', 8080], // a single unnamed port has no name
    [[{ name: '', port: 8080 }], '', 8080],
    [[{ port: 8080 }], null, 8080],
    [[{ port: 8080 }], 8080, 8080],
    [[{ port: 8080 }], 80, 8080], // KIC names the Service port; the slice has the target port
    [[{ port: 8080 }], 'http', undefined],
    [[{ name: 'http', port: 8080, protocol: 'TCP' }, { name: 'http-udp', port: 8080, protocol: 'UDP' }], null, 8080],
    [[], null, undefined],
    [undefined, null, undefined],
    [[{ name: 'http' }], 'http', undefined], // no port number: nothing to connect to
  ] as const)('%j wanted %j -> %j', (ports, wanted, expected) => {
    expect(slicePort(ports, wanted)).toBe(expected);
  });
});

describe('endpointsFromSlices', () => {
  it('maps pods to endpoints: identity is the pod uid, name the pod, host the first address, weight 1', () => {
    const endpoints = endpointsFromSlices(
      [slice({ name: 'cart-a', service: 'cart', endpoints: [{ ...podEndpoint('cart-1', '192.0.2.1', READY), addresses: ['192.0.2.1', '192.0.2.99'] }] })],
      'http',
    );
    expect(endpoints).toEqual([{ id: 'uid-cart-1', name: 'cart-1', host: '192.0.2.1', port: 8080, condition: 'ready', weight: 1 }]);
  });

  it('keeps ready and draining endpoints, drops the ones that serve nothing, in slice order', () => {
    const endpoints = endpointsFromSlices(
      [
        slice({
          name: 'cart-a',
          service: 'cart',
          endpoints: [
            podEndpoint('c', '192.0.2.3', STOPPED),
            podEndpoint('b', '192.0.2.2', DRAINING),
            podEndpoint('a', '192.0.2.1'), // conditions absent: ready
            podEndpoint('d', '192.0.2.4', { ready: false }),
          ],
        }),
      ],
      'http',
    );
    expect(endpoints.map((e) => [e.name, e.condition])).toEqual([
      ['b', 'draining'],
      ['a', 'ready'],
    ]);
  });

  it('merges several slices', () => {
    const endpoints = endpointsFromSlices(
      [
        slice({ name: 'cart-a', service: 'cart', endpoints: [podEndpoint('p1', '192.0.2.1', READY)] }),
        slice({ name: 'cart-b', service: 'cart', endpoints: [podEndpoint('p2', '192.0.2.2', READY), podEndpoint('p3', '192.0.2.3', DRAINING)] }),
      ],
      'http',
    );
    expect(endpoints.map((e) => e.name)).toEqual(['p1', 'p2', 'p3']);
  });

  it('keeps a pod listed in two slices once, preferring ready over draining, whatever the order', () => {
    const a = slice({ name: 'cart-a', service: 'cart', endpoints: [podEndpoint('p1', '192.0.2.1', DRAINING)] });
    const b = slice({ name: 'cart-b', service: 'cart', endpoints: [podEndpoint('p1', '192.0.2.1', READY)] });
    for (const order of [[a, b], [b, a]]) {
      const endpoints = endpointsFromSlices(order, 'http');
      expect(endpoints).toHaveLength(1);
      expect(endpoints[0]?.condition).toBe('ready');
    }
  });

  it('picks the same copy of a moved pod whatever the order (slice name, then address)', () => {
    const a = slice({ name: 'cart-a', service: 'cart', endpoints: [podEndpoint('p1', '192.0.2.1', READY)] });
    const b = slice({ name: 'cart-b', service: 'cart', ports: [{ name: 'http', port: 8081 }], endpoints: [podEndpoint('p1', '192.0.2.1', READY)] });
    expect(endpointsFromSlices([a, b], 'http')).toEqual(endpointsFromSlices([b, a], 'http'));
    expect(endpointsFromSlices([b, a], 'http')[0]?.port).toBe(8080);
  });

  it('reads IPv6 slices', () => {
    const endpoints = endpointsFromSlices(
      [slice({ name: 'cart-v6', service: 'cart', addressType: 'IPv6', endpoints: [podEndpoint('p1', '2001:db8::1', READY)] })],
      'http',
    );
    expect(endpoints.map((e) => e.host)).toEqual(['2001:db8::1']);
  });

  it('prefers the IPv4 address of a dual-stack pod', () => {
    const endpoints = endpointsFromSlices(
      [
        slice({ name: 'cart-a-v6', service: 'cart', addressType: 'IPv6', endpoints: [podEndpoint('p1', '2001:db8::1', READY)] }),
        slice({ name: 'cart-b-v4', service: 'cart', endpoints: [podEndpoint('p1', '192.0.2.1', READY)] }),
      ],
      'http',
    );
    expect(endpoints.map((e) => e.host)).toEqual(['192.0.2.1']);
  });

  it('identifies an endpoint without targetRef by its address', () => {
    const endpoints = endpointsFromSlices(
      [
        slice({
          name: 'external',
          service: 'cart',
          endpoints: [{ addresses: ['192.0.2.7'] }, { addresses: ['192.0.2.8'], hostname: 'db-0' }],
        }),
      ],
      'http',
    );
    expect(endpoints.map((e) => [e.id, e.name])).toEqual([
      ['addr:192.0.2.7', '192.0.2.7'],
      ['addr:192.0.2.8', 'db-0'],
    ]);
  });

  it('a new pod reusing an old address is a different endpoint', () => {
    const before = endpointsFromSlices([slice({ name: 's', service: 'cart', endpoints: [podEndpoint('old', '192.0.2.1', READY)] })], 'http');
    const after = endpointsFromSlices([slice({ name: 's', service: 'cart', endpoints: [podEndpoint('new', '192.0.2.1', READY)] })], 'http');
    expect(before[0]?.id).not.toBe(after[0]?.id);
  });

  it('uses FQDN slices only when there is no IPv4/IPv6 slice; ignores unknown address types', () => {
    const fqdn = slice({ name: 'cart-fqdn', service: 'cart', addressType: 'FQDN', endpoints: [{ addresses: ['cart-0.example.com'] }] });
    const ipv4 = slice({ name: 'cart-a', service: 'cart', endpoints: [podEndpoint('p1', '192.0.2.1', READY)] });
    const odd = { ...slice({ name: 'cart-x', service: 'cart', endpoints: [podEndpoint('p9', '192.0.2.9', READY)] }), addressType: 'Unix' };
    expect(endpointsFromSlices([fqdn], 'http').map((e) => e.host)).toEqual(['cart-0.example.com']);
    expect(endpointsFromSlices([fqdn, ipv4, odd], 'http').map((e) => e.host)).toEqual(['192.0.2.1']);
  });

  it('chooses the port by name, by number, or the only one', () => {
    const twoPorts = slice({
      name: 'cart-a',
      service: 'cart',
      ports: [{ name: 'http', port: 8080 }, { name: 'admin', port: 9000 }],
      endpoints: [podEndpoint('p1', '192.0.2.1', READY)],
    });
    expect(endpointsFromSlices([twoPorts], 'admin')[0]?.port).toBe(9000);
    expect(endpointsFromSlices([twoPorts], 8080)[0]?.port).toBe(8080);
    expect(endpointsFromSlices([twoPorts], null)).toEqual([]);
    const unnamed = slice({ name: 'cart-b', service: 'cart', ports: [{ port: 3000 }], endpoints: [podEndpoint('p1', '192.0.2.1', READY)] });
    expect(endpointsFromSlices([unnamed], null)[0]?.port).toBe(3000);
    expect(endpointsFromSlices([unnamed], '')[0]?.port).toBe(3000);
  });

  it('skips endpoints without addresses and slices without endpoints', () => {
    const endpoints = endpointsFromSlices(
      [
        slice({ name: 'a', service: 'cart', endpoints: [{ addresses: [] }] }),
        { addressType: 'IPv4', endpoints: null, ports: [{ port: 80 }] },
        { addressType: 'IPv4', ports: [{ port: 80 }] },
      ],
      null,
    );
    expect(endpoints).toEqual([]);
  });

  it('names the slices whose endpoints lack the wanted port', () => {
    const slices = [
      slice({ name: 'cart-b', service: 'cart', ports: [{ name: 'web', port: 80 }], endpoints: [podEndpoint('p1', '192.0.2.1')] }),
      slice({ name: 'cart-a', service: 'cart', endpoints: [podEndpoint('p2', '192.0.2.2')] }),
      slice({ name: 'cart-empty', service: 'cart', ports: [{ name: 'web', port: 80 }], endpoints: [] }),
    ];
    expect(slicesMissingPort(slices, 'http')).toEqual(['cart-b']);
    expect(slicesMissingPort(slices, 'web')).toEqual(['cart-a']);
  });
});

describe('sameEndpoints', () => {
  const e = { id: 'u1', name: 'p1', host: '192.0.2.1', port: 80, condition: 'ready' as const, weight: 1 };
  it('compares field by field, in order', () => {
    expect(sameEndpoints([e], [{ ...e }])).toBe(true);
    expect(sameEndpoints([e], [{ ...e, condition: 'draining' }])).toBe(false);
    expect(sameEndpoints([e], [{ ...e, host: '192.0.2.2' }])).toBe(false);
    expect(sameEndpoints([e], [])).toBe(false);
    expect(sameEndpoints([], [])).toBe(true);
  });
});
