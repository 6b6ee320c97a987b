import { describe, expect, it } from 'vitest';
import {
  canonicalServiceRef,
  parseServiceHost,
  parseServicePort,
  resolveServiceRef,
  serviceRefKey,
} from '../../src/endpoints/kubernetes/service-ref.js';

describe('parseServiceHost', () => {
  it.each([
    ['cart.shop.80.svc', { namespace: 'shop', service: 'cart', port: 80 }],
    ['cart.shop.http.svc', { namespace: 'shop', service: 'cart', port: 'http' }],
    ['cart-v2.shop-prod.grpc-web.svc', { namespace: 'shop-prod', service: 'cart-v2', port: 'grpc-web' }],
    ['Cart.Shop.HTTP.SVC', { namespace: 'shop', service: 'cart', port: 'http' }],
  ])('%s -> %j', (host, ref) => {
    expect(parseServiceHost(host)).toEqual(ref);
  });

  it.each([
    'cart.shop.svc',
    'cart.shop.svc.cluster.local',
    'cart.shop.80.svc.cluster.local',
    'cart.shop.80.svc.',
    'cart.shop.0.svc',
    'cart.shop.65536.svc',
    'cart.shop.-http.svc',
    'cart.shop.very-long-port-name.svc',
    'cart_x.shop.80.svc',
    '.shop.80.svc',
    'example.com',
    '192.0.2.1',
    '',
    null,
    undefined,
  ])('%j -> undefined', (host) => {
    expect(parseServiceHost(host)).toBeUndefined();
  });
});

describe('parseServicePort', () => {
  it.each([
    [80, 80],
    ['80', 80],
    ['http', 'http'],
    ['h2c', 'h2c'],
    [null, null],
    [undefined, null],
    ['', null],
    [0, undefined],
    [70000, undefined],
    [8.5, undefined],
    ['HTTP', undefined],
    ['a--b', undefined],
    ['1234-', undefined],
  ])('%j -> %j', (input, expected) => {
    expect(parseServicePort(input)).toBe(expected);
  });
});

describe('resolveServiceRef', () => {
  const none = { kubernetes_namespace: null, kubernetes_service: null, kubernetes_port: null };

  it('takes everything from a KIC service host when the config names nothing', () => {
    expect(resolveServiceRef(none, 'cart.shop.80.svc')).toEqual({ ok: true, ref: { namespace: 'shop', service: 'cart', port: 80 } });
  });

  it('takes everything from the config when it names namespace and service; port null = the only port', () => {
    expect(resolveServiceRef({ ...none, kubernetes_namespace: 'shop', kubernetes_service: 'cart' }, 'upstream.example.com')).toEqual({
      ok: true,
      ref: { namespace: 'shop', service: 'cart', port: null },
    });
  });

  it('lets config fields override the host field by field when they agree on the Service', () => {
    expect(resolveServiceRef({ ...none, kubernetes_port: 'http' }, 'cart.shop.80.svc')).toEqual({
      ok: true,
      ref: { namespace: 'shop', service: 'cart', port: 'http' },
    });
    expect(resolveServiceRef({ ...none, kubernetes_service: 'cart', kubernetes_port: '8080' }, 'cart.shop.80.svc')).toEqual({
      ok: true,
      ref: { namespace: 'shop', service: 'cart', port: 8080 },
    });
  });

  it('ignores the host when the config names another Service (its namespace and port belong to that one)', () => {
    expect(resolveServiceRef({ ...none, kubernetes_service: 'orders' }, 'cart.shop.80.svc')).toMatchObject({ ok: false });
    expect(resolveServiceRef({ ...none, kubernetes_namespace: 'billing', kubernetes_service: 'orders' }, 'cart.shop.80.svc')).toEqual({
      ok: true,
      ref: { namespace: 'billing', service: 'orders', port: null },
    });
  });

  it('says what is missing when nothing names a Service', () => {
    const result = resolveServiceRef(none, 'upstream.example.com');
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toMatch(/kubernetes_namespace and kubernetes_service/);
  });

  it('refuses invalid values with a reason', () => {
    expect(resolveServiceRef({ ...none, kubernetes_port: 'Not A Port' }, 'cart.shop.80.svc')).toMatchObject({ ok: false });
    expect(resolveServiceRef({ ...none, kubernetes_namespace: 'Shop!', kubernetes_service: 'cart' })).toMatchObject({ ok: false });
  });
});

describe('serviceRefKey', () => {
  it('is k8s:<namespace>/<service>:<port>', () => {
    expect(serviceRefKey({ namespace: 'shop', service: 'cart', port: 'http' })).toBe('k8s:shop/cart:http');
    expect(serviceRefKey({ namespace: 'shop', service: 'cart', port: 80 })).toBe('k8s:shop/cart:80');
    expect(serviceRefKey({ namespace: 'shop', service: 'cart', port: null })).toBe('k8s:shop/cart:*');
  });
});

describe('canonicalServiceRef', () => {
  it('turns digit strings into port numbers and empty into null, so both spellings share one key', () => {
    const ref = { namespace: 'shop', service: 'cart' };
    expect(canonicalServiceRef({ ...ref, port: '80' })).toEqual({ ...ref, port: 80 });
    expect(canonicalServiceRef({ ...ref, port: '' })).toEqual({ ...ref, port: null });
    expect(canonicalServiceRef({ ...ref, port: 'http' })).toEqual({ ...ref, port: 'http' });
    expect(canonicalServiceRef({ ...ref, port: 'Bad Port' })).toEqual({ ...ref, port: 'Bad Port' });
    expect(serviceRefKey({ ...ref, port: '80' })).toBe(serviceRefKey({ ...ref, port: 80 }));
  });
});
