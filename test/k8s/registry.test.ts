import { afterEach, beforeEach, expect, it } from 'vitest';
import { acquireKubernetesSource, EndpointSliceWatcher } from '../../src/endpoints/kubernetes/index.js';
import { sources } from '../../src/endpoints/registry.js';
import { startKubeApiServer, type KubeApiServer } from '../harness/kube-apiserver.js';
import { endpointSlice, podEndpoint, READY } from '../harness/kube-slices.js';
import { eventually, sleep } from './eventually.js';

let server: KubeApiServer;

beforeEach(async () => {
  server = await startKubeApiServer({ bookmarkIntervalMs: 50 });
  server.apply(endpointSlice({ name: 'cart-a', service: 'cart', endpoints: [podEndpoint('cart-1', '192.0.2.1', READY)] }));
});

afterEach(async () => {
  await server.stop();
});

const cart = { namespace: 'shop', service: 'cart', port: 'http' } as const;

it('shares one watch per Service between holders and stops it when the last one releases', async () => {
  const options = { kubeConfig: server.kubeConfig(), backoff: { initialMs: 20, maxMs: 150 } };
  const first = acquireKubernetesSource(cart, options);
  const second = acquireKubernetesSource(cart, options);
  expect(second.value).toBe(first.value);
  expect(first.value).toBeInstanceOf(EndpointSliceWatcher);
  expect(sources.keys()).toContain('k8s:shop/cart:http');

  await eventually(() => expect(first.value.current()?.ready).toHaveLength(1));
  await eventually(() => expect(server.openWatches).toBe(1));
  await sleep(100);
  expect(server.requests).toMatchObject({ list: 1, watch: 1 });

  first.release();
  first.release(); // a lease releases once
  await sleep(100);
  expect(server.openWatches).toBe(1);
  expect(sources.keys()).toContain('k8s:shop/cart:http');

  second.release();
  expect(sources.keys()).not.toContain('k8s:shop/cart:http');
  await eventually(() => expect(server.openConnections).toBe(0), 1_000);
});

it('shares the watch between a port given as a string ("8080", as config gives it) and as a number', async () => {
  const options = { kubeConfig: server.kubeConfig() };
  const fromConfig = acquireKubernetesSource({ ...cart, port: '8080' }, options);
  const fromHost = acquireKubernetesSource({ ...cart, port: 8080 }, options);
  try {
    expect(fromConfig.value).toBe(fromHost.value);
    await eventually(() => expect(fromConfig.value.current()?.ready[0]?.port).toBe(8080));
  } finally {
    fromConfig.release();
    fromHost.release();
  }
  await eventually(() => expect(server.openConnections).toBe(0), 1_000);
});

it('keeps another port of the same Service as a view of its own, over the same watch of the namespace', async () => {
  const options = { kubeConfig: server.kubeConfig() };
  const http = acquireKubernetesSource(cart, options);
  const byNumber = acquireKubernetesSource({ ...cart, port: 8080 }, options);
  try {
    expect(byNumber.value).not.toBe(http.value);
    expect(byNumber.value.key).toBe('k8s:shop/cart:8080');
    await eventually(() => expect(byNumber.value.current()?.ready).toHaveLength(1));
    await eventually(() => expect(http.value.current()?.ready).toHaveLength(1));
    await sleep(100);
    expect(server.openWatches).toBe(1);
    expect(server.requests).toMatchObject({ list: 1, watch: 1 });
  } finally {
    http.release();
    byNumber.release();
  }
  await eventually(() => expect(server.openConnections).toBe(0), 1_000);
});
