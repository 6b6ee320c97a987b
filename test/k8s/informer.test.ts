/**
 * The shared object caches (src/endpoints/kubernetes/informer.ts) against the in-test API
 * server through the real client-node: any kind, one namespace or all of them, changes
 * routed by namespace and label, one list-and-watch per kind and scope however many hold it.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  acquireObjectCache,
  ENDPOINT_SLICES,
  HTTP_ROUTES,
  objectCacheKeys,
  REFERENCE_GRANTS,
  SERVICES,
  type KubeObject,
  type ObjectCacheOptions,
  type ObjectChange,
} from '../../src/endpoints/kubernetes/index.js';
import type { Lease } from '../../src/shared.js';
import { HTTP_ROUTE_KIND, REFERENCE_GRANT_KIND, SERVICE_KIND, startKubeApiServer, type KubeApiServer } from '../harness/kube-apiserver.js';
import { endpointSlice, podEndpoint, READY } from '../harness/kube-slices.js';
import { eventually, sleep } from './eventually.js';

interface Route extends KubeObject {
  readonly spec: { readonly hostnames?: string[]; readonly rules?: unknown[] };
}

let server: KubeApiServer;
let options: ObjectCacheOptions;
const leases: Lease<unknown>[] = [];

beforeEach(async () => {
  server = await startKubeApiServer({ bookmarkIntervalMs: 50 });
  options = { kubeConfig: server.kubeConfig(), backoff: { initialMs: 20, maxMs: 150 }, answerTimeoutMs: 300, watchTimeoutSeconds: 60 };
});

afterEach(async () => {
  for (const lease of leases.splice(0)) lease.release();
  await server.stop();
});

function acquire<T extends KubeObject>(...args: Parameters<typeof acquireObjectCache>) {
  const lease = acquireObjectCache<T>(...args);
  leases.push(lease);
  return lease;
}

const route = (namespace: string, name: string, host: string, labels?: Record<string, string>) => ({
  metadata: { name, namespace, ...(labels ? { labels } : {}) },
  spec: { hostnames: [host], rules: [{ backendRefs: [{ name: 'cart', port: 80 }] }] },
});

const names = (objects: readonly KubeObject[]) => objects.map((o) => `${o.metadata?.namespace}/${o.metadata?.name}`).sort();

describe('acquireObjectCache', () => {
  it('lists and watches HTTPRoutes of all namespaces on the cluster-wide path', async () => {
    server.applyObject(HTTP_ROUTE_KIND, route('shop', 'cart', 'cart.example'));
    server.applyObject(HTTP_ROUTE_KIND, route('blog', 'posts', 'blog.example'));
    const cache = acquire<Route>(HTTP_ROUTES, {}, options).value;
    expect(cache.synced()).toBe(false);
    await eventually(() => cache.synced());
    expect(names(cache.list())).toEqual(['blog/posts', 'shop/cart']);
    expect(names(cache.list('shop'))).toEqual(['shop/cart']);
    expect(cache.get('shop', 'cart')?.spec.hostnames).toEqual(['cart.example']);
    await eventually(() => expect(server.watchesByResource()).toEqual({ 'httproutes.gateway.networking.k8s.io *': 1 }));

    const changes: string[] = [];
    cache.onChange((c) => changes.push(`${c.type} ${c.object?.metadata?.name ?? ''}`));
    server.applyObject(HTTP_ROUTE_KIND, route('shop', 'cart', 'shop.example'));
    server.deleteObject(HTTP_ROUTE_KIND, 'blog', 'posts');
    await eventually(() => expect(changes).toEqual(['MODIFIED cart', 'DELETED posts']));
    expect(cache.get('shop', 'cart')?.spec.hostnames).toEqual(['shop.example']);
    expect(cache.get('blog', 'posts')).toBeUndefined();
    expect(cache.status()).toMatchObject({ synced: true, watching: true, lists: 1, restarts: 0, objects: 1 });
  });

  it('serves each kind from its own path (core Services, v1beta1 ReferenceGrants), one namespace at a time', async () => {
    server.applyObject(SERVICE_KIND, { metadata: { name: 'cart', namespace: 'shop' }, spec: { ports: [{ name: 'http', port: 80 }] } });
    server.applyObject(SERVICE_KIND, { metadata: { name: 'posts', namespace: 'blog' }, spec: { ports: [] } });
    server.applyObject(REFERENCE_GRANT_KIND, { metadata: { name: 'from-gw', namespace: 'shop' }, spec: { from: [], to: [] } });
    const services = acquire(SERVICES, { namespace: 'shop' }, options).value;
    const grants = acquire(REFERENCE_GRANTS, { namespace: 'shop' }, options).value;
    await eventually(() => services.synced() && grants.synced());
    expect(names(services.list())).toEqual(['shop/cart']);
    expect(names(grants.list())).toEqual(['shop/from-gw']);
    await eventually(() => expect(server.watchesByResource()).toEqual({ 'services shop': 1, 'referencegrants.gateway.networking.k8s.io shop': 1 }));
  });

  it('one list-and-watch per kind and scope, whatever the number of holders; the last release stops it', async () => {
    const first = acquire(ENDPOINT_SLICES, { namespace: 'shop' }, options);
    const second = acquire(ENDPOINT_SLICES, { namespace: 'shop' }, { ...options, kubeConfig: server.kubeConfig() });
    const other = acquire(ENDPOINT_SLICES, { namespace: 'blog' }, options);
    expect(second.value).toBe(first.value); // same API server and credentials, another KubeConfig object
    expect(other.value).not.toBe(first.value);
    await eventually(() => expect(server.openWatches).toBe(2));
    expect(objectCacheKeys().filter((k) => k.startsWith('endpointslices.discovery.k8s.io/v1@'))).toHaveLength(2);

    first.release();
    other.release();
    await sleep(100);
    expect(server.watchesByResource()).toEqual({ 'endpointslices.discovery.k8s.io shop': 1 });
    second.release();
    await eventually(() => expect(server.openConnections).toBe(0), 1_000);
    expect(objectCacheKeys()).toEqual([]);
  });

  it('routes changes by namespace and label value; a relabelled object leaves one selection and joins another', async () => {
    server.apply(endpointSlice({ name: 'cart-a', service: 'cart', endpoints: [podEndpoint('cart-1', '192.0.2.1', READY)] }));
    const cache = acquire(ENDPOINT_SLICES, { namespace: 'shop' }, options).value;
    const label = (value: string) => ({ key: 'kubernetes.io/service-name', value });
    const seen = { cart: [] as string[], orders: [] as string[], all: [] as string[] };
    const record = (into: string[]) => (c: ObjectChange<KubeObject>) => into.push(`${c.type} ${c.object?.metadata?.name ?? ''}`);
    cache.onChange(record(seen.cart), { namespace: 'shop', label: label('cart') });
    cache.onChange(record(seen.orders), { namespace: 'shop', label: label('orders') });
    cache.onChange(record(seen.all));
    await eventually(() => cache.synced());
    expect(names(cache.list('shop', label('cart')))).toEqual(['shop/cart-a']);

    server.apply(endpointSlice({ name: 'orders-a', service: 'orders', endpoints: [podEndpoint('orders-1', '192.0.2.5', READY)] }));
    server.apply(endpointSlice({ name: 'cart-a', service: 'cart', endpoints: [podEndpoint('cart-1', '192.0.2.2', READY)] }));
    server.apply(endpointSlice({ name: 'cart-a', service: 'orders', endpoints: [podEndpoint('cart-1', '192.0.2.2', READY)] }));
    await eventually(() => expect(seen.all).toHaveLength(4));
    expect(seen.all).toEqual(['RELISTED ', 'ADDED orders-a', 'MODIFIED cart-a', 'MODIFIED cart-a']);
    expect(seen.cart).toEqual(['RELISTED ', 'MODIFIED cart-a', 'DELETED cart-a']);
    expect(seen.orders).toEqual(['RELISTED ', 'ADDED orders-a', 'ADDED cart-a']);
    expect(names(cache.list('shop', label('orders')))).toEqual(['shop/cart-a', 'shop/orders-a']);
    expect(cache.list('shop', label('cart'))).toEqual([]);
  });

  it('relists after 410 Gone and tells every listener RELISTED; keeps its objects while the API server is away', async () => {
    server.applyObject(SERVICE_KIND, { metadata: { name: 'cart', namespace: 'shop' }, spec: {} });
    const cache = acquire(SERVICES, { namespace: 'shop' }, options).value;
    await eventually(() => cache.synced());
    const changes: string[] = [];
    cache.onChange((c) => changes.push(c.type));

    await server.stop();
    await sleep(200);
    expect(names(cache.list())).toEqual(['shop/cart']);
    expect(cache.status().lastError).toBeDefined();
    server.applyObject(SERVICE_KIND, { metadata: { name: 'orders', namespace: 'shop' }, spec: {} });
    server.compactHistory();
    await server.start();
    await eventually(() => expect(names(cache.list())).toEqual(['shop/cart', 'shop/orders']));
    expect(changes).toEqual(['RELISTED']);
    expect(cache.status().lists).toBe(2);
  });

  it('gives up a request the API server does not answer after answerTimeoutMs, and keeps trying with backoff', async () => {
    const cache = acquire(HTTP_ROUTES, { namespace: 'shop' }, { ...options, answerTimeoutMs: 200, backoff: { initialMs: 400, maxMs: 400 } }).value;
    await eventually(() => cache.synced());
    await eventually(() => expect(server.openWatches).toBe(1));
    server.hang(true);
    server.dropWatches();
    const started = performance.now();
    const before = server.requests.watch;
    await sleep(2_000);
    // Each attempt waits 200 ms for an answer; a new one starts at most 400 ms after the last began.
    const attempts = server.requests.watch - before;
    expect(attempts).toBeGreaterThanOrEqual(4);
    expect(attempts).toBeLessThanOrEqual(Math.ceil((performance.now() - started) / 200) + 1);
    expect(cache.status().lastError?.message).toMatch(/no answer from the API server within 200 ms/);

    server.hang(false);
    server.applyObject(HTTP_ROUTE_KIND, route('shop', 'cart', 'cart.example'));
    await eventually(() => expect(cache.get('shop', 'cart')).toBeDefined(), 2_000);
  });
});
