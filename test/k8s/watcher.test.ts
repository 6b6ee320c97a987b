import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EndpointSnapshot } from '../../src/endpoints/types.js';
import { EndpointSliceWatcher, type EndpointSliceWatcherOptions } from '../../src/endpoints/kubernetes/watcher.js';
import type { ServicePort } from '../../src/endpoints/kubernetes/service-ref.js';
import { startKubeApiServer, type KubeApiServer } from '../harness/kube-apiserver.js';
import { DRAINING, endpointSlice, podEndpoint, READY } from '../harness/kube-slices.js';
import { eventually, sleep } from './eventually.js';

// Short delays so failures recover within a test; production defaults are 250 ms..30 s, 30 s, 5 min.
const FAST: EndpointSliceWatcherOptions = {
  backoff: { initialMs: 20, maxMs: 150 },
  requestTimeoutMs: 300,
  watchIdleTimeoutMs: 2_000,
  watchTimeoutSeconds: 60,
};

let server: KubeApiServer;
const watchers: EndpointSliceWatcher[] = [];

beforeEach(async () => {
  server = await startKubeApiServer({ bookmarkIntervalMs: 50 });
});

afterEach(async () => {
  for (const w of watchers.splice(0)) w.close();
  await server.stop();
});

function watchCart(port: ServicePort = 'http', options: EndpointSliceWatcherOptions = {}): EndpointSliceWatcher {
  const watcher = new EndpointSliceWatcher(
    { namespace: 'shop', service: 'cart', port },
    { kubeConfig: server.kubeConfig(), ...FAST, ...options },
  );
  watchers.push(watcher);
  return watcher;
}

/** Pod names per condition: what a test usually wants to see of a view. */
function view(snapshot: EndpointSnapshot | undefined) {
  // Names sorted: the view's own order (slices by name, endpoints as listed) is not under test here.
  return snapshot && { ready: snapshot.ready.map((e) => e.name).sort(), draining: snapshot.draining.map((e) => e.name).sort() };
}

function cartSlice(name: string, ...endpoints: ReturnType<typeof podEndpoint>[]) {
  return endpointSlice({ name, service: 'cart', endpoints });
}

async function synced(watcher: EndpointSliceWatcher): Promise<EndpointSnapshot> {
  return eventually(() => watcher.current() ?? false);
}

describe('EndpointSliceWatcher', () => {
  it('syncs the slices of its Service only, then keeps a watch open', async () => {
    server.apply(cartSlice('cart-a', podEndpoint('cart-1', '192.0.2.1', READY), podEndpoint('cart-2', '192.0.2.2', DRAINING)));
    server.apply(endpointSlice({ name: 'orders-a', service: 'orders', endpoints: [podEndpoint('orders-1', '192.0.2.10', READY)] }));
    server.apply(endpointSlice({ name: 'cart-a', namespace: 'staging', service: 'cart', endpoints: [podEndpoint('cart-s', '192.0.2.20', READY)] }));

    const watcher = watchCart();
    expect(watcher.key).toBe('k8s:shop/cart:http');
    expect(watcher.current()).toBeUndefined();
    expect(watcher.status().synced).toBe(false);

    const snapshot = await synced(watcher);
    expect(snapshot.version).toBe(1);
    expect(view(snapshot)).toEqual({ ready: ['cart-1'], draining: ['cart-2'] });
    expect(snapshot.byId.get('uid-cart-1')).toEqual({ id: 'uid-cart-1', name: 'cart-1', host: '192.0.2.1', port: 8080, condition: 'ready', weight: 1 });
    await eventually(() => expect(server.openWatches).toBe(1));
    expect(watcher.status()).toMatchObject({ synced: true, watching: true, lists: 1, restarts: 0, lastError: undefined });
  });

  it('publishes an empty view for a Service without slices', async () => {
    const watcher = watchCart();
    expect(view(await synced(watcher))).toEqual({ ready: [], draining: [] });
  });

  it('propagates adds, modifications and deletes, one new snapshot each, and tells listeners', async () => {
    server.apply(cartSlice('cart-a', podEndpoint('cart-1', '192.0.2.1', READY)));
    const watcher = watchCart();
    await synced(watcher);
    const seen: EndpointSnapshot[] = [];
    watcher.onChange((s) => seen.push(s));

    server.apply(cartSlice('cart-b', podEndpoint('cart-2', '192.0.2.2', READY)));
    await eventually(() => expect(view(watcher.current())).toEqual({ ready: ['cart-1', 'cart-2'], draining: [] }));

    server.apply(cartSlice('cart-a', podEndpoint('cart-1', '192.0.2.1', DRAINING)));
    await eventually(() => expect(view(watcher.current())).toEqual({ ready: ['cart-2'], draining: ['cart-1'] }));

    server.delete('shop', 'cart-a');
    await eventually(() => expect(view(watcher.current())).toEqual({ ready: ['cart-2'], draining: [] }));

    expect(seen.map((s) => s.version)).toEqual([2, 3, 4]);
    expect(seen.at(-1)).toBe(watcher.current());
  });

  it('publishes nothing when a change leaves the endpoints as they were', async () => {
    server.apply(cartSlice('cart-a', podEndpoint('cart-1', '192.0.2.1', READY)));
    const watcher = watchCart();
    const first = await synced(watcher);
    let calls = 0;
    watcher.onChange(() => calls++);

    // Only the node name changes: a new resourceVersion, the same view.
    server.apply(cartSlice('cart-a', { ...podEndpoint('cart-1', '192.0.2.1', READY), nodeName: 'node-2' }));
    server.apply(cartSlice('cart-b', podEndpoint('cart-2', '192.0.2.2', READY)));
    await eventually(() => expect(watcher.current()?.ready).toHaveLength(2));
    expect(watcher.current()?.version).toBe(first.version + 1);
    expect(calls).toBe(1);
  });

  it('keeps a pod that moves between slices in the view between the two updates', async () => {
    server.apply(cartSlice('cart-a', podEndpoint('cart-1', '192.0.2.1', READY), podEndpoint('cart-2', '192.0.2.2', READY)));
    server.apply(cartSlice('cart-b', podEndpoint('cart-3', '192.0.2.3', READY)));
    const watcher = watchCart();
    await synced(watcher);
    const seen: EndpointSnapshot[] = [];
    watcher.onChange((s) => seen.push(s));

    // Update 1: the controller adds cart-2 to cart-b (and cart-4 arrives, so the step is visible).
    server.apply(cartSlice('cart-b', podEndpoint('cart-3', '192.0.2.3', READY), podEndpoint('cart-2', '192.0.2.2', READY), podEndpoint('cart-4', '192.0.2.4', READY)));
    const intermediate = await eventually(() => {
      const s = watcher.current();
      return s?.byId.has('uid-cart-4') ? s : false;
    });
    expect(view(intermediate)).toEqual({ ready: ['cart-1', 'cart-2', 'cart-3', 'cart-4'], draining: [] });

    // Update 2: it removes cart-2 from cart-a.
    server.apply(cartSlice('cart-a', podEndpoint('cart-1', '192.0.2.1', READY)));
    server.apply(cartSlice('cart-c', podEndpoint('cart-5', '192.0.2.5', READY))); // marks the end
    await eventually(() => expect(watcher.current()?.byId.has('uid-cart-5')).toBe(true));

    for (const s of seen) expect(s.ready.filter((e) => e.name === 'cart-2')).toHaveLength(1);
    expect(view(watcher.current())).toEqual({ ready: ['cart-1', 'cart-2', 'cart-3', 'cart-4', 'cart-5'], draining: [] });
  });

  it('asks for bookmarks and resumes from their resourceVersion (no relist after a compaction)', async () => {
    server.apply(cartSlice('cart-a', podEndpoint('cart-1', '192.0.2.1', READY)));
    const watcher = watchCart();
    await synced(watcher);
    await eventually(() => expect(server.openWatches).toBe(1));

    // Other Services move the global resourceVersion; only bookmarks carry it to this watch.
    for (let i = 0; i < 5; i++) server.apply(endpointSlice({ name: 'orders-a', service: 'orders', endpoints: [podEndpoint(`orders-${i}`, `192.0.2.${50 + i}`, READY)] }));
    const syncedAt = watcher.status().lastSyncAt ?? 0;
    await eventually(() => expect(watcher.status().lastSyncAt).toBeGreaterThan(syncedAt));
    await sleep(120); // a bookmark sent after the last write

    server.compactHistory();
    server.dropWatches();
    server.apply(cartSlice('cart-b', podEndpoint('cart-2', '192.0.2.2', READY)));
    await eventually(() => expect(view(watcher.current())).toEqual({ ready: ['cart-1', 'cart-2'], draining: [] }));
    expect(watcher.status().lists).toBe(1);
  });

  it.each(['event', 'http'] as const)('relists after 410 Gone (%s) and shows what changed meanwhile', async (expiredAs) => {
    server.expiredWatchAs = expiredAs;
    server.apply(cartSlice('cart-a', podEndpoint('cart-1', '192.0.2.1', READY), podEndpoint('cart-2', '192.0.2.2', READY)));
    const watcher = watchCart();
    await synced(watcher);

    await server.stop();
    server.apply(cartSlice('cart-a', podEndpoint('cart-2', '192.0.2.2', DRAINING), podEndpoint('cart-3', '192.0.2.3', READY)));
    server.compactHistory();
    await server.start();

    await eventually(() => expect(view(watcher.current())).toEqual({ ready: ['cart-3'], draining: ['cart-2'] }));
    expect(watcher.status().lists).toBe(2);
    expect(server.requests.list).toBe(2);
  });

  it('recovers from an API server restart (watch resumed from an old resourceVersion gets 410)', async () => {
    server.apply(cartSlice('cart-a', podEndpoint('cart-1', '192.0.2.1', READY)));
    const watcher = watchCart();
    await synced(watcher);
    await eventually(() => expect(server.openWatches).toBe(1));

    server.restart();
    await eventually(() => expect(watcher.status().lists).toBe(2));
    server.apply(cartSlice('cart-a', podEndpoint('cart-1', '192.0.2.1', READY), podEndpoint('cart-2', '192.0.2.2', READY)));
    await eventually(() => expect(view(watcher.current())).toEqual({ ready: ['cart-1', 'cart-2'], draining: [] }));
    expect(watcher.status().restarts).toBeGreaterThanOrEqual(1);
  });

  it('resumes a dropped watch without losing the update made while it was cut', async () => {
    server.apply(cartSlice('cart-a', podEndpoint('cart-1', '192.0.2.1', READY)));
    const watcher = watchCart();
    await synced(watcher);
    await eventually(() => expect(server.openWatches).toBe(1));

    server.dropWatches();
    server.apply(cartSlice('cart-a', podEndpoint('cart-1', '192.0.2.1', DRAINING), podEndpoint('cart-2', '192.0.2.2', READY)));
    await eventually(() => expect(view(watcher.current())).toEqual({ ready: ['cart-2'], draining: ['cart-1'] }));
    expect(watcher.status().lists).toBe(1); // replayed from history, no relist
    expect(watcher.status().lastError?.message).toBeDefined();
  });

  it('backs off on 5xx, keeps serving the last view, then recovers', async () => {
    server.apply(cartSlice('cart-a', podEndpoint('cart-1', '192.0.2.1', READY)));
    const watcher = watchCart();
    const before = await synced(watcher);
    await eventually(() => expect(server.openWatches).toBe(1));
    const watches = server.requests.watch;

    server.failNext(4, 500);
    server.dropWatches();
    server.apply(cartSlice('cart-a', podEndpoint('cart-1', '192.0.2.1', READY), podEndpoint('cart-2', '192.0.2.2', READY)));
    await eventually(() => expect(server.requests.watch).toBeGreaterThanOrEqual(watches + 2));
    expect(watcher.current()).toBe(before);
    expect(watcher.status().lastError?.message).toMatch(/500/);

    await eventually(() => expect(view(watcher.current())).toEqual({ ready: ['cart-1', 'cart-2'], draining: [] }));
    expect(server.requests.watch).toBeGreaterThanOrEqual(watches + 5);
  });

  it('gives up on hung requests, keeps serving the last view, then recovers', async () => {
    server.apply(cartSlice('cart-a', podEndpoint('cart-1', '192.0.2.1', READY)));
    const watcher = watchCart();
    const before = await synced(watcher);
    await eventually(() => expect(server.openWatches).toBe(1));
    const watches = server.requests.watch;

    server.hang(true);
    server.dropWatches();
    // Each hung watch is abandoned after requestTimeoutMs and tried again.
    await eventually(() => expect(server.requests.watch).toBeGreaterThanOrEqual(watches + 3));
    expect(watcher.current()).toBe(before);
    expect(watcher.status().lastError?.message).toMatch(/no answer/);

    server.hang(false);
    server.apply(cartSlice('cart-b', podEndpoint('cart-2', '192.0.2.2', READY)));
    await eventually(() => expect(view(watcher.current())).toEqual({ ready: ['cart-1', 'cart-2'], draining: [] }));
  });

  it('restarts a watch that stays silent too long', async () => {
    server.bookmarkIntervalMs = 0; // a server that never sends bookmarks
    server.apply(cartSlice('cart-a', podEndpoint('cart-1', '192.0.2.1', READY)));
    const watcher = watchCart('http', { watchIdleTimeoutMs: 150 });
    await synced(watcher);
    await eventually(() => expect(server.requests.watch).toBeGreaterThanOrEqual(3));
    expect(watcher.status().lists).toBe(1);
    server.apply(cartSlice('cart-b', podEndpoint('cart-2', '192.0.2.2', READY)));
    await eventually(() => expect(watcher.current()?.ready).toHaveLength(2));
  });

  describe('a watch the server ends cleanly, without a single event (no bookmarks)', () => {
    // A minute of backoff: any wait for it would outlast every check below.
    const SLOW_BACKOFF: EndpointSliceWatcherOptions = { backoff: { initialMs: 60_000, maxMs: 60_000, random: () => 0.99 } };

    it('after it was held open (a quiet Service, timeoutSeconds): watches again at once', async () => {
      server.bookmarkIntervalMs = 0;
      server.apply(cartSlice('cart-a', podEndpoint('cart-1', '192.0.2.1', READY)));
      const watcher = watchCart('http', SLOW_BACKOFF);
      await synced(watcher);
      for (let round = 0; round < 2; round++) {
        await eventually(() => expect(server.openWatches).toBe(1));
        const watches = server.requests.watch;
        await sleep(1_100); // open longer than a "short watch"
        server.endWatches();
        await eventually(() => expect(server.requests.watch).toBe(watches + 1)); // not a minute later
      }
      server.apply(cartSlice('cart-b', podEndpoint('cart-2', '192.0.2.2', READY)));
      await eventually(() => expect(view(watcher.current())).toEqual({ ready: ['cart-1', 'cart-2'], draining: [] }));
      expect(watcher.status().lists).toBe(1);
    });

    it('at once after it opened: backs off rather than spinning', async () => {
      server.bookmarkIntervalMs = 0;
      server.apply(cartSlice('cart-a', podEndpoint('cart-1', '192.0.2.1', READY)));
      const watcher = watchCart('http', SLOW_BACKOFF);
      await synced(watcher);
      await eventually(() => expect(server.openWatches).toBe(1));
      const watches = server.requests.watch;
      server.endWatches();
      await sleep(300);
      expect(server.requests.watch).toBe(watches);
      expect(watcher.current()?.ready).toHaveLength(1);
    });
  });

  it('starts while the API server is unreachable: undefined view, no throw, syncs once it is up', async () => {
    server.apply(cartSlice('cart-a', podEndpoint('cart-1', '192.0.2.1', READY)));
    await server.stop();
    const watcher = watchCart();
    await eventually(() => expect(watcher.status().lastError).toBeDefined());
    expect(watcher.current()).toBeUndefined();
    await sleep(100);
    expect(watcher.current()).toBeUndefined();

    await server.start();
    expect(view(await synced(watcher))).toEqual({ ready: ['cart-1'], draining: [] });
  });

  it('retries a failing first list', async () => {
    server.apply(cartSlice('cart-a', podEndpoint('cart-1', '192.0.2.1', READY)));
    server.failNext(3, 503);
    const watcher = watchCart();
    expect(view(await synced(watcher))).toEqual({ ready: ['cart-1'], draining: [] });
    expect(watcher.status().lists).toBe(1);
    expect(watcher.status().lastError?.message).toMatch(/503/);
    expect(server.requests.list).toBe(4);
  });

  it('lists page by page', async () => {
    for (const i of [1, 2, 3]) server.apply(cartSlice(`cart-${i}`, podEndpoint(`cart-${i}`, `192.0.2.${i}`, READY)));
    const watcher = watchCart('http', { listPageSize: 1 });
    expect(view(await synced(watcher))?.ready).toEqual(['cart-1', 'cart-2', 'cart-3']);
    expect(server.requests.list).toBe(3);
  });

  it('chooses the port by number and by "the only port"', async () => {
    server.apply(endpointSlice({ name: 'cart-a', service: 'cart', ports: [{ port: 3000 }], endpoints: [podEndpoint('cart-1', '192.0.2.1', READY)] }));
    const byNumber = watchCart(3000);
    const only = watchCart(null);
    expect((await synced(byNumber)).ready[0]?.port).toBe(3000);
    expect((await synced(only)).ready[0]?.port).toBe(3000);
    expect(only.key).toBe('k8s:shop/cart:*');
  });

  it('close() aborts the watch, leaves no connection and sends no further request', async () => {
    server.apply(cartSlice('cart-a', podEndpoint('cart-1', '192.0.2.1', READY)));
    const watcher = watchCart();
    await synced(watcher);
    await eventually(() => expect(server.openWatches).toBe(1));
    let calls = 0;
    watcher.onChange(() => calls++);

    watcher.close();
    watcher.close(); // idempotent
    // At once, not after a keep-alive timeout: every request's connection is closed with it.
    await eventually(() => expect(server.openConnections).toBe(0), 1_000);
    const requests = { ...server.requests };
    server.apply(cartSlice('cart-b', podEndpoint('cart-2', '192.0.2.2', READY)));
    await sleep(400); // longer than the largest backoff
    expect(server.requests).toEqual(requests);
    expect(server.openConnections).toBe(0);
    expect(calls).toBe(0);
    expect(watcher.current()?.ready).toHaveLength(1); // the last view stays readable
  });

  it('close() while a request hangs or while backing off leaves nothing behind', async () => {
    server.hang(true);
    const hung = watchCart();
    await eventually(() => expect(server.requests.list).toBe(1));
    hung.close();
    await eventually(() => expect(server.openConnections).toBe(0));
    server.hang(false);

    await server.stop();
    const backingOff = watchCart('http', { backoff: { initialMs: 5_000, maxMs: 5_000, random: () => 0.99 } });
    await eventually(() => expect(backingOff.status().lastError).toBeDefined());
    const timersBefore = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    backingOff.close();
    const timersAfter = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    expect(timersAfter).toBeLessThan(timersBefore); // the backoff timer is gone
  });

  it('loads credentials from KUBECONFIG by default', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'kubeconfig-'));
    const saved = process.env.KUBECONFIG;
    try {
      process.env.KUBECONFIG = server.writeKubeconfig(dir);
      server.apply(cartSlice('cart-a', podEndpoint('cart-1', '192.0.2.1', READY)));
      const watcher = new EndpointSliceWatcher({ namespace: 'shop', service: 'cart', port: 'http' }, { ...FAST });
      watchers.push(watcher);
      expect(view(await synced(watcher))).toEqual({ ready: ['cart-1'], draining: [] });
    } finally {
      if (saved === undefined) delete process.env.KUBECONFIG;
      else process.env.KUBECONFIG = saved;
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reports a plain-http kubeconfig without insecure-skip-tls-verify as an error, without throwing', async () => {
    const watcher = watchCart('http', { kubeConfig: server.kubeConfig({ insecureSkipTlsVerify: false }) });
    await eventually(() => expect(watcher.status().lastError?.message).toMatch(/HTTP protocol is not allowed/));
    expect(watcher.current()).toBeUndefined();
    expect(server.requests.list).toBe(0);
  });

  it('keeps other listeners informed when one throws, and unsubscribes', async () => {
    const watcher = watchCart();
    const seen: number[] = [];
    watcher.onChange(() => {
      throw new Error('listener bug');
    });
    const unsubscribe = watcher.onChange((s) => seen.push(s.version));
    await synced(watcher);
    expect(seen).toEqual([1]);
    unsubscribe();
    server.apply(cartSlice('cart-a', podEndpoint('cart-1', '192.0.2.1', READY)));
    await eventually(() => expect(watcher.current()?.version).toBe(2));
    expect(seen).toEqual([1]);
  });
});
