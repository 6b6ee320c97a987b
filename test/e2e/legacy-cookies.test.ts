/**
 * Issue 12, part 2: cutting over from ingress-nginx without moving anyone, end to end through
 * the real plugin server (started as the image starts it) and the Kong emulator. A client
 * carrying ingress-nginx's affinity cookie reaches exactly the pod ingress-nginx would have
 * chosen, gets our token on that response, and then sticks with our token.
 *
 * Where each expected pod comes from (never from our implementation):
 * - balanced mode: test/unit/vectors/ingress-nginx-chash.json, written by lua-resty-balancer's
 *   own chash.lua + chash.c under LuaJIT (commands in
 *   test/unit/vectors/derive-ingress-nginx-chash.lua);
 * - persistent mode: md5sum of `<backend name><address:port>` (util/nodemap.lua), e.g.
 *     $ printf '%s' 'default-web-80192.0.2.10:8080' | md5sum   -> 02545ee56210c88259698b995e2f57fe
 *     $ printf '%s' 'default-web-80192.0.2.11:8080' | md5sum   -> 3d8f889eaf1d382a75e90a23fc8b8b46
 *     $ printf '%s' 'default-web-80192.0.2.12:8080' | md5sum   -> 1598fd91658b9ed1e12b48199a7c7c12
 *     $ printf '%s' 'default-web-80192.0.2.13:8080' | md5sum   -> 47172463ecc2c69eef806ebd4ea745b6
 *     $ printf '%s' 'shop-cart-http192.0.2.10:8080' | md5sum   -> 7b03b6e4acaffb57fbfe61756d3364b1
 *     $ printf '%s' 'shop-cart-http192.0.2.11:8080' | md5sum   -> 7643248f4fba5b41dd7c641a61a8870f
 *     $ printf '%s' 'shop-cart-http192.0.2.12:8080' | md5sum   -> 2998c46d88366086c12500ced9c01068
 *   and the backend key ingress-nginx appends after "|" (sticky.lua: md5(md5(name) .. name)):
 *     $ printf '%s' 'f76aa3d0c925ed949fc1ed09c5bb1b31default-web-80' | md5sum -> 6cde5721ec2c7e2bce07cff7d0e4ac37
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KongEmulator, type RequestResult } from '../harness/kong-emulator.js';
import { startKubeApiServer, type KubeApiServer } from '../harness/kube-apiserver.js';
import { DRAINING, endpointSlice, podEndpoint, READY } from '../harness/kube-slices.js';
import type { EmulatedRequest } from '../harness/pdk.js';
import { freePort } from '../support/free-port.js';
import { http, parseMetrics, sample } from '../observability/helpers.js';

const SECRET = 'legacy-e2e-secret-0123456789abcdef0123';
const A = '192.0.2.10:8080';
const B = '192.0.2.11:8080';
const C = '192.0.2.12:8080';
const BACKEND_KEY = '6cde5721ec2c7e2bce07cff7d0e4ac37';
const PERSISTENT: Record<string, string> = {
  [A]: '02545ee56210c88259698b995e2f57fe',
  [B]: '3d8f889eaf1d382a75e90a23fc8b8b46',
  [C]: '1598fd91658b9ed1e12b48199a7c7c12',
  '192.0.2.13:8080': '47172463ecc2c69eef806ebd4ea745b6',
};

interface ChashVectors {
  rings: Record<string, { nodes: string[]; keys: Record<string, string> }>;
}
const chash = JSON.parse(readFileSync(new URL('../unit/vectors/ingress-nginx-chash.json', import.meta.url), 'utf8')) as ChashVectors;
/** The first `n` keys (of ingress-nginx's form) that the real chash puts on `node` in `ring`. */
function keysOn(ring: string, node: string, n: number): string[] {
  const keys = Object.entries(chash.rings[ring]!.keys).filter(([k, v]) => v === node && k.includes('.')).map(([k]) => k);
  expect(keys.length).toBeGreaterThanOrEqual(n);
  return keys.slice(0, n);
}

const target = (r: RequestResult) => r.target && `${r.target.host}:${r.target.port}`;
const ourCookie = (r: RequestResult) => r.responseHeaders['set-cookie']?.find((c) => c.startsWith('sticky='))?.split(';')[0];
const calls = (r: RequestResult) => r.pdkCalls.map((c) => c.method.replace(/^kong\./, ''));
/** Reads of a legacy cookie's nginx variable in one request. */
const legacyReads = (r: RequestResult, name = 'INGRESSCOOKIE') =>
  r.pdkCalls.filter((c) => c.method === 'kong.nginx.get_var' && c.args[0] === `cookie_${name}`).length;

describe('static targets', () => {
  const SERVICE = { id: '0e3c1c3e-3333-4c4c-9a9a-000000000001', name: 'web', host: 'web.internal', port: 80, protocol: 'http' };
  let kong: KongEmulator;
  let plugin: string;
  let metricsPort: number;
  const send = (req: EmulatedRequest = {}, worker = 0) => kong.request({ service: SERVICE, ...req }, { worker, plugin });
  const configure = (config: Record<string, unknown>) => kong.updatePlugin(plugin, { config: { secrets: [SECRET], cookie_name: 'sticky', ...config } });

  beforeAll(async () => {
    metricsPort = await freePort();
    kong = await KongEmulator.start({ useDockerfile: true, workers: 2, env: { STICKY_SESSION_METRICS_PORT: String(metricsPort) } });
    plugin = kong.addPlugin({ service: SERVICE.id, config: { secrets: [SECRET], cookie_name: 'sticky', targets: [A, B, C] } }).id;
  });

  afterAll(async () => {
    await kong?.stop();
  });

  it('balanced (ingress-nginx\'s default): each client reaches the pod of its key on the real chash ring, then sticks with our token', async () => {
    configure({ targets: [A, B, C], accept_legacy_cookies: [{ format: 'ingress-nginx' }] });
    for (const node of [A, B, C]) {
      // Five new clients whose keys all sit on one pod: the balancer alone would spread them.
      for (const [i, key] of keysOn('three', node, 5).entries()) {
        const legacy = `INGRESSCOOKIE=${key}|${BACKEND_KEY}`;
        const first = await send({ headers: { cookie: legacy } }, i % 2);
        expect(target(first)).toBe(node);
        const token = ourCookie(first);
        expect(token).toMatch(/^sticky=[A-Za-z0-9_-]{50}$/);
        // The legacy cookie is left as it is: ours is the only Set-Cookie.
        expect(first.responseHeaders['set-cookie']).toHaveLength(1);
        // Next request: our token pins it; the legacy cookie is not even read.
        const next = await send({ headers: { cookie: `${legacy}; ${token}` } }, (i + 1) % 2);
        expect(target(next)).toBe(node);
        expect(next.responseHeaders['set-cookie']).toBeUndefined();
        expect(legacyReads(first)).toBe(1);
        expect(legacyReads(next)).toBe(0);
      }
    }
  });

  it('persistent: the salted MD5 names the pod; a draining pod keeps its client; a removed pod\'s cookie is no cookie', async () => {
    configure({
      targets: [A, `${B} draining`, C],
      accept_legacy_cookies: [{ format: 'ingress-nginx', mode: 'persistent', name: 'route', backend: 'default-web-80' }],
    });
    for (const node of [A, B, C]) {
      const r = await send({ headers: { cookie: `route=${PERSISTENT[node]}|${BACKEND_KEY}` } });
      expect(target(r)).toBe(node); // B is terminating but still serving: its session stays
      const again = await send({ headers: { cookie: ourCookie(r)! } }, 1);
      expect(target(again)).toBe(node);
      expect(again.responseHeaders['set-cookie']).toBeUndefined();
    }
    // 192.0.2.13 is not a target: a plain new session on a ready pod, with our token.
    for (let i = 0; i < 6; i++) {
      const r = await send({ headers: { cookie: `route=${PERSISTENT['192.0.2.13:8080']}|${BACKEND_KEY}` } });
      expect([A, C]).toContain(target(r));
      expect(ourCookie(r)).toBeDefined();
    }
    // Another backend's cookie (another salt) names nothing either.
    const other = await send({ headers: { cookie: 'route=7b03b6e4acaffb57fbfe61756d3364b1' } });
    expect([A, C]).toContain(target(other));
  });

  it('our valid token wins over a legacy cookie naming another pod', async () => {
    configure({ targets: [A, B, C], accept_legacy_cookies: [{ format: 'ingress-nginx', mode: 'persistent', backend: 'default-web-80' }] });
    const mine = await send({ headers: { cookie: `INGRESSCOOKIE=${PERSISTENT[A]}` } });
    expect(target(mine)).toBe(A);
    const r = await send({ headers: { cookie: `INGRESSCOOKIE=${PERSISTENT[C]}; ${ourCookie(mine)!}` } });
    expect(target(r)).toBe(A);
    expect(r.responseHeaders['set-cookie']).toBeUndefined();
  });

  it('persistent without backend on static targets: a config error, the instance stands aside (Kong balances)', async () => {
    configure({ targets: [A, B, C], accept_legacy_cookies: [{ format: 'ingress-nginx', mode: 'persistent' }] });
    for (let i = 0; i < 4; i++) {
      const r = await send({ headers: { cookie: `INGRESSCOOKIE=${PERSISTENT[C]}` } }, i % 2);
      expect(r.status).toBe(200);
      expect(r.target).toBeUndefined();
      expect(r.responseHeaders['set-cookie']).toBeUndefined();
    }
    expect(kong.serverLog()).toMatch(/invalid config\.accept_legacy_cookies\[1\]\.backend: persistent mode with static targets/);
  });

  it('costs one get_var per request without a valid token, none with one (README round-trip table)', async () => {
    // Without legacy cookies first: the baseline of a new session and of a pinned request.
    configure({ targets: [A, B, C], cookie_secure: false, accept_legacy_cookies: null });
    await send(); // new instance for the new config
    const baselineNew = await send();
    const baselinePinned = await send({ headers: { cookie: ourCookie(baselineNew)! } });

    configure({ targets: [A, B, C], cookie_secure: false, accept_legacy_cookies: [{ format: 'ingress-nginx' }] });
    await send();
    const [key] = keysOn('three', B, 1);
    // A new session, with or without a legacy cookie: one more call, right after our own cookie's read.
    const withLegacy = [baselineNew.pdkCalls[0]!.method, 'kong.nginx.get_var', ...baselineNew.pdkCalls.slice(1).map((c) => c.method)];
    const legacy = await send({ headers: { cookie: `INGRESSCOOKIE=${key}` } });
    expect(target(legacy)).toBe(B);
    expect(legacy.pdkCalls.map((c) => c.method)).toEqual(withLegacy);
    expect(legacy.pdkCalls[1]!.args).toEqual(['cookie_INGRESSCOOKIE']);
    expect(legacy.roundTrips).toBe(baselineNew.roundTrips + 1);
    const fresh = await send();
    expect(fresh.pdkCalls.map((c) => c.method)).toEqual(withLegacy);
    expect(fresh.roundTrips).toBe(baselineNew.roundTrips + 1);
    // A valid token of ours: the legacy cookie is not read, nothing more is paid.
    const pinned = await send({ headers: { cookie: `INGRESSCOOKIE=${key}; ${ourCookie(legacy)!}` } });
    expect(target(pinned)).toBe(B);
    expect(legacyReads(pinned)).toBe(0);
    expect(calls(pinned)).toEqual(calls(baselinePinned));
    expect(pinned.roundTrips).toBe(baselinePinned.roundTrips);
    configure({ targets: [A, B, C], cookie_secure: null, accept_legacy_cookies: null });
  });

  it('counts legacy-cookie decisions in the metrics', async () => {
    const res = await http(`http://127.0.0.1:${metricsPort}/metrics`);
    const m = parseMetrics(res.body);
    const legacy = (mode: string, result: string) =>
      m.get(sample('sticky_session_legacy_cookie_decisions_total', { service: `service:${SERVICE.id}`, service_name: SERVICE.name, format: 'ingress-nginx', mode, result }));
    // balanced: 15 clients in the first test, 1 in the round-trip test.
    expect(legacy('balanced', 'pinned')).toBe(16);
    // persistent: 3 + 1 pinned; 6 + 1 cookies that named nothing (the instance that stood aside read none).
    expect(legacy('persistent', 'pinned')).toBe(4);
    expect(legacy('persistent', 'no-match')).toBe(7);
    expect(m.get(sample('sticky_session_decisions_total', { service: `service:${SERVICE.id}`, service_name: SERVICE.name, outcome: 'new', reason: 'legacy' }))).toBe(20);
  });

  it('under our own cookie name: the old value is read once, pins, and our token replaces it in the browser', async () => {
    configure({ targets: [A, B, C], cookie_name: 'INGRESSCOOKIE', accept_legacy_cookies: [{ format: 'ingress-nginx' }] });
    const [key] = keysOn('three', C, 1);
    const first = await send({ headers: { cookie: `INGRESSCOOKIE=${key}|${BACKEND_KEY}` } });
    expect(target(first)).toBe(C);
    // One read of the cookie for both meanings, no second get_var.
    expect(first.pdkCalls.filter((c) => c.method === 'kong.nginx.get_var' && c.args[0] === 'cookie_INGRESSCOOKIE')).toHaveLength(1);
    const replaced = first.responseHeaders['set-cookie']![0]!.split(';')[0]!;
    expect(replaced).toMatch(/^INGRESSCOOKIE=[A-Za-z0-9_-]{50}$/);
    const next = await send({ headers: { cookie: replaced } }, 1);
    expect(target(next)).toBe(C);
    expect(next.responseHeaders['set-cookie']).toBeUndefined();
  });
});

describe('a watched Kubernetes Service', () => {
  const SERVICE = { id: '0e3c1c3e-3333-4c4c-9a9a-000000000002', name: 'cart', host: 'cart.internal', port: 80, protocol: 'http' };
  let api: KubeApiServer;
  let kong: KongEmulator;
  let dir: string;

  beforeAll(async () => {
    api = await startKubeApiServer();
    // 192.0.2.11 is terminating but still serving (Ready=false), so ingress-nginx's ring no
    // longer holds it, and neither does ours.
    api.apply(
      endpointSlice({
        name: 'cart-abc',
        service: 'cart',
        endpoints: [podEndpoint('cart-a', '192.0.2.10', READY), podEndpoint('cart-b', '192.0.2.11', DRAINING), podEndpoint('cart-c', '192.0.2.12', READY)],
      }),
    );
    dir = mkdtempSync(join(tmpdir(), 'legacy-e2e-'));
    kong = await KongEmulator.start({ useDockerfile: true, workers: 1, env: { KUBECONFIG: api.writeKubeconfig(dir) } });
  });

  afterAll(async () => {
    await kong?.stop();
    await api?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function synced(plugin: string): Promise<void> {
    for (let i = 0; i < 100; i++) {
      if ((await kong.request({ service: SERVICE }, { plugin })).target) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('the Service never synced');
  }

  it('persistent: the backend name is derived from the Service (<namespace>-<service>-<port>)', async () => {
    const plugin = kong.addPlugin({
      service: SERVICE.id,
      config: {
        secrets: [SECRET],
        kubernetes_namespace: 'shop',
        kubernetes_service: 'cart',
        kubernetes_port: 'http',
        accept_legacy_cookies: [{ format: 'ingress-nginx', mode: 'persistent' }],
      },
    }).id;
    await synced(plugin);
    const expected: Array<[string, string]> = [
      ['7b03b6e4acaffb57fbfe61756d3364b1', A],
      ['7643248f4fba5b41dd7c641a61a8870f', B], // draining, still serving: stays
      ['2998c46d88366086c12500ced9c01068', C],
    ];
    for (const [key, node] of expected) {
      const r = await kong.request({ service: SERVICE, headers: { cookie: `INGRESSCOOKIE=${key}|whatever` } }, { plugin });
      expect(target(r)).toBe(node);
      expect(r.responseHeaders['set-cookie']?.[0]).toMatch(/^sticky_session=/);
    }
    kong.removePlugin(plugin);
  });

  it('balanced: the ring holds the ready pods only, as ingress-nginx\'s does', async () => {
    const plugin = kong.addPlugin({
      service: SERVICE.id,
      config: { secrets: [SECRET], kubernetes_namespace: 'shop', kubernetes_service: 'cart', kubernetes_port: 'http', accept_legacy_cookies: [{ format: 'ingress-nginx' }] },
    }).id;
    await synced(plugin);
    // Keys the full ring puts on 192.0.2.11 go where the ring without it puts them.
    const minus = chash.rings['three-minus-11']!.keys;
    for (const key of keysOn('three', B, 4)) {
      const r = await kong.request({ service: SERVICE, headers: { cookie: `INGRESSCOOKIE=${key}|${BACKEND_KEY}` } }, { plugin });
      expect(target(r)).toBe(minus[key]);
    }
    for (const node of [A, C]) {
      for (const key of keysOn('three-minus-11', node, 3)) {
        const r = await kong.request({ service: SERVICE, headers: { cookie: `INGRESSCOOKIE=${key}` } }, { plugin });
        expect(target(r)).toBe(node);
      }
    }
    kong.removePlugin(plugin);
  });
});
