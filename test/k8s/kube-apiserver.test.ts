/**
 * The stand-in API server against client-node's own clients: if these pass, the watcher
 * tests exercise the real protocol rather than a private dialect.
 */
import { CoreV1Api, CustomObjectsApi, DiscoveryV1Api, Watch, type V1EndpointSlice, type V1Service } from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HTTP_ROUTE_KIND, KubeApiServerError, SERVICE_KIND, startKubeApiServer, type EndpointSliceInput, type KubeApiServer } from '../harness/kube-apiserver.js';
import { endpointSlice, podEndpoint, READY } from '../harness/kube-slices.js';
import { eventually } from './eventually.js';

let server: KubeApiServer;
let api: DiscoveryV1Api;
const selector = 'kubernetes.io/service-name=cart';
const path = '/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices';

beforeEach(async () => {
  server = await startKubeApiServer({ bookmarkIntervalMs: 50 });
  api = server.kubeConfig().makeApiClient(DiscoveryV1Api);
});

afterEach(async () => {
  await server.stop();
});

const cartSlice = (name: string, ip: string) => endpointSlice({ name, service: 'cart', endpoints: [podEndpoint(name, ip, READY)] });
/** The harness's plain JSON, typed as client-node's model for its typed API. */
const forApi = (slice: EndpointSliceInput) => slice as unknown as V1EndpointSlice;

describe('fake kube-apiserver with client-node', () => {
  it('creates, reads, replaces, lists and deletes EndpointSlices with server-filled metadata', async () => {
    const created = await api.createNamespacedEndpointSlice({ namespace: 'shop', body: forApi(cartSlice('cart-a', '192.0.2.1')) });
    expect(created.metadata).toMatchObject({ name: 'cart-a', namespace: 'shop', generation: 1 });
    expect(created.metadata?.uid).toBeTruthy();
    expect(created.metadata?.creationTimestamp).toBeInstanceOf(Date);
    expect(Number(created.metadata?.resourceVersion)).toBeGreaterThan(0);

    const read = await api.readNamespacedEndpointSlice({ namespace: 'shop', name: 'cart-a' });
    const replaced = await api.replaceNamespacedEndpointSlice({
      namespace: 'shop',
      name: 'cart-a',
      body: { ...read, endpoints: [{ addresses: ['192.0.2.2'] }] },
    });
    expect(replaced.metadata?.generation).toBe(2);
    expect(Number(replaced.metadata?.resourceVersion)).toBeGreaterThan(Number(created.metadata?.resourceVersion));
    await expect(
      api.replaceNamespacedEndpointSlice({ namespace: 'shop', name: 'cart-a', body: read }), // stale resourceVersion
    ).rejects.toMatchObject({ code: 409 });

    await api.createNamespacedEndpointSlice({ namespace: 'shop', body: forApi(endpointSlice({ name: 'orders-a', service: 'orders', endpoints: [] })) });
    const list = await api.listNamespacedEndpointSlice({ namespace: 'shop', labelSelector: selector });
    expect(list.items.map((s) => s.metadata?.name)).toEqual(['cart-a']);
    expect(list.metadata?.resourceVersion).toBe(server.resourceVersion);

    await api.deleteNamespacedEndpointSlice({ namespace: 'shop', name: 'cart-a' });
    await expect(api.readNamespacedEndpointSlice({ namespace: 'shop', name: 'cart-a' })).rejects.toMatchObject({ code: 404 });
  });

  it('refuses loopback addresses like a real API server: 422 over HTTP, an exception from apply()', async () => {
    const error = await api
      .createNamespacedEndpointSlice({ namespace: 'shop', body: forApi(cartSlice('cart-a', '127.0.0.1')) })
      .catch((e: { code: number; body: string }) => e);
    expect(error).toMatchObject({ code: 422 });
    expect(JSON.parse((error as { body: string }).body)).toMatchObject({ kind: 'Status', reason: 'Invalid', code: 422 });
    expect(() => server.apply(endpointSlice({ name: 'x', service: 'cart', endpoints: [podEndpoint('x', '127.0.0.2')] }))).toThrow(KubeApiServerError);
    expect(() => server.apply(endpointSlice({ name: 'x', service: 'cart', addressType: 'IPv6', endpoints: [podEndpoint('x', '::1')] }))).toThrow(/loopback/);
    expect(() => server.apply(endpointSlice({ name: 'x', service: 'cart', endpoints: [podEndpoint('x', '192.0.2.300')] }))).toThrow(/valid IPv4/);
  });

  it('pages lists with limit/continue', async () => {
    for (const i of [1, 2, 3]) server.apply(cartSlice(`cart-${i}`, `192.0.2.${i}`));
    const first = await api.listNamespacedEndpointSlice({ namespace: 'shop', labelSelector: selector, limit: 2 });
    expect(first.items).toHaveLength(2);
    expect(first.metadata?._continue).toBeTruthy();
    const rest = await api.listNamespacedEndpointSlice({ namespace: 'shop', labelSelector: selector, limit: 2, _continue: first.metadata?._continue });
    expect(rest.items.map((s) => s.metadata?.name)).toEqual(['cart-3']);
    expect(rest.metadata?._continue).toBeFalsy();
  });

  it('answers unknown paths with a 404 Status and wrong credentials with 401', async () => {
    const notFound = await fetch(`${server.url}/api/v1/namespaces/shop/pods`, { headers: { authorization: 'Bearer test-token' } });
    expect(notFound.status).toBe(404);
    expect(await notFound.json()).toMatchObject({ kind: 'Status', code: 404, reason: 'NotFound' });
    const unauthorized = await fetch(`${server.url}${path}`);
    expect(unauthorized.status).toBe(401);
  });

  it("streams replayed and live events, and bookmarks when asked, to client-node's Watch", async () => {
    server.apply(cartSlice('cart-a', '192.0.2.1'));
    const from = server.resourceVersion;
    server.apply(cartSlice('cart-b', '192.0.2.2'));
    const events: string[] = [];
    let done: unknown = 'open';
    const controller = await new Watch(server.kubeConfig()).watch(
      path,
      { labelSelector: selector, resourceVersion: from, allowWatchBookmarks: true },
      (type, object: V1EndpointSlice) => events.push(`${type} ${object.metadata?.name ?? ''}`),
      (err) => (done = err),
    );
    server.apply(cartSlice('cart-a', '192.0.2.3'));
    server.delete('shop', 'cart-b');
    server.apply(endpointSlice({ name: 'orders-a', service: 'orders', endpoints: [] })); // not selected
    await eventually(() => expect(events).toContain('BOOKMARK '));
    expect(events.filter((e) => e !== 'BOOKMARK ')).toEqual(['ADDED cart-b', 'MODIFIED cart-a', 'DELETED cart-b']);
    controller.abort();
    await eventually(() => expect(done).not.toBe('open'));
  });

  it('sends a relabelled slice as DELETED to watches that no longer select it', async () => {
    server.apply(cartSlice('cart-a', '192.0.2.1'));
    const events: string[] = [];
    const controller = await new Watch(server.kubeConfig()).watch(path, { labelSelector: selector, resourceVersion: server.resourceVersion }, (type, o: V1EndpointSlice) => events.push(`${type} ${o.metadata?.name}`), () => {});
    server.apply(endpointSlice({ name: 'cart-a', service: 'checkout', endpoints: [podEndpoint('cart-a', '192.0.2.1', READY)] }));
    await eventually(() => expect(events).toEqual(['DELETED cart-a']));
    controller.abort();
  });

  it('expires old resourceVersions with an ERROR event carrying a 410 Status, or with HTTP 410', async () => {
    server.apply(cartSlice('cart-a', '192.0.2.1'));
    const old = server.resourceVersion;
    server.apply(cartSlice('cart-a', '192.0.2.2'));
    server.compactHistory();

    const events: { type: string; object: unknown }[] = [];
    let ended: unknown = 'open';
    await new Watch(server.kubeConfig()).watch(path, { resourceVersion: old }, (type, object) => events.push({ type, object }), (err) => (ended = err));
    await eventually(() => expect(ended).toBeNull()); // then the server closes the stream
    expect(events).toEqual([
      {
        type: 'ERROR',
        object: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', reason: 'Expired', code: 410, message: expect.stringMatching(/^too old resource version: \d+ \(\d+\)$/) },
      },
    ]);

    server.expiredWatchAs = 'http';
    let httpError: unknown;
    await new Watch(server.kubeConfig()).watch(path, { resourceVersion: old }, () => {}, (err) => (httpError = err));
    await eventually(() => expect(httpError).toMatchObject({ statusCode: 410 }));
  });

  it('needs insecure-skip-tls-verify in the kubeconfig for plain http (client-node 2.x)', async () => {
    const strict = server.kubeConfig({ insecureSkipTlsVerify: false }).makeApiClient(DiscoveryV1Api);
    await expect(strict.listNamespacedEndpointSlice({ namespace: 'shop' })).rejects.toThrow(/HTTP protocol is not allowed when skipTLSVerify is not set or false/);
    expect(server.requests.list).toBe(0);
  });

  it('injects failures, hangs and downtime', async () => {
    server.failNext(1, 503);
    await expect(api.listNamespacedEndpointSlice({ namespace: 'shop' })).rejects.toMatchObject({ code: 503 });
    await expect(api.listNamespacedEndpointSlice({ namespace: 'shop' })).resolves.toBeDefined();

    server.hang(true);
    const hung = fetch(`${server.url}${path}`, { headers: { authorization: 'Bearer test-token' }, signal: AbortSignal.timeout(100) });
    await expect(hung).rejects.toThrow();
    server.hang(false);

    await server.stop();
    await expect(api.listNamespacedEndpointSlice({ namespace: 'shop' })).rejects.toThrow();
    await server.start();
    await expect(api.listNamespacedEndpointSlice({ namespace: 'shop' })).resolves.toBeDefined();
    expect(server.requests.list).toBe(4); // the one sent while stopped never arrived
  });

  it('serves core/v1 Services and Gateway API objects to client-node, namespaced and across namespaces', async () => {
    const core = server.kubeConfig().makeApiClient(CoreV1Api);
    const custom = server.kubeConfig().makeApiClient(CustomObjectsApi);
    await core.createNamespacedService({ namespace: 'shop', body: { metadata: { name: 'cart', labels: { app: 'cart' } }, spec: { ports: [{ name: 'http', port: 80 }] } } as V1Service });
    server.applyObject(SERVICE_KIND, { metadata: { name: 'posts', namespace: 'blog' }, spec: { ports: [] } });
    expect((await core.listNamespacedService({ namespace: 'shop' })).items.map((s) => s.metadata?.name)).toEqual(['cart']);
    expect((await core.listServiceForAllNamespaces({ labelSelector: 'app=cart' })).items.map((s) => s.metadata?.name)).toEqual(['cart']);
    expect((await core.readNamespacedService({ namespace: 'shop', name: 'cart' })).spec?.ports?.[0]?.port).toBe(80);

    const route = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'cart' }, spec: { rules: [] } };
    await custom.createNamespacedCustomObject({ group: 'gateway.networking.k8s.io', version: 'v1', namespace: 'shop', plural: 'httproutes', body: route });
    const listed = (await custom.listClusterCustomObject({ group: 'gateway.networking.k8s.io', version: 'v1', plural: 'httproutes' })) as { kind: string; items: { metadata: { namespace: string } }[] };
    expect(listed.kind).toBe('HTTPRouteList');
    expect(listed.items.map((i) => i.metadata.namespace)).toEqual(['shop']);
    expect(server.getObject(HTTP_ROUTE_KIND, 'shop', 'cart')?.metadata.generation).toBe(1);

    // A watch of one kind sees only that kind's events.
    const events: string[] = [];
    const controller = await new Watch(server.kubeConfig()).watch('/api/v1/services', { resourceVersion: server.resourceVersion }, (type, o: V1Service) => events.push(`${type} ${o.metadata?.namespace}/${o.metadata?.name}`), () => {});
    server.apply(cartSlice('cart-a', '192.0.2.1'));
    server.applyObject(HTTP_ROUTE_KIND, { ...route, metadata: { name: 'cart', namespace: 'shop' }, spec: { rules: [{}] } });
    server.deleteObject(SERVICE_KIND, 'blog', 'posts');
    await eventually(() => expect(events).toEqual(['DELETED blog/posts']));
    controller.abort();
    expect(server.requests.other).toBe(0);
  });
});
