/**
 * Issue 16: the plugin under KIC's Gateway API translation, end to end through the real plugin
 * server (started as the image starts it), the Kong emulator playing the Kong services and
 * routes KIC makes of an HTTPRoute, and the test API server holding the HTTPRoute, Services,
 * ReferenceGrants and EndpointSlices. The KongPlugin carries only `secrets`.
 *
 * What Gateway API's session-persistence conformance tests check (kubernetes-sigs/gateway-api
 * PRs #4350 and #4954: a Set-Cookie on the first response, no Expires or Max-Age for a Session
 * lifetime, one of them for Permanent, 10 requests with the cookie reach one pod), and what
 * GEP-1619 describes without a suite: a 70/30 split over many sessions, per-rule scoping (/a
 * and /b), Header type.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kicRoute, kicService, httpRoute, referenceGrant, service, type RuleInput } from '../harness/kic-gateway-api.js';
import { KongEmulator, type RequestResult } from '../harness/kong-emulator.js';
import { HTTP_ROUTE_KIND, REFERENCE_GRANT_KIND, SERVICE_KIND, startKubeApiServer, type KubeApiServer } from '../harness/kube-apiserver.js';
import { endpointSlice, podEndpoint, READY } from '../harness/kube-slices.js';
import type { EmulatedRequest } from '../harness/pdk.js';
import { http, parseMetrics, sample } from '../observability/helpers.js';
import { freePort } from '../support/free-port.js';
import type { StatusView } from '../../src/observability/status.js';
import { runCli } from '../../src/cli/status.js';

const SECRET = 'gateway-api-e2e-secret-0123456789abcdef';
const NS = 'shop';

/** Pods of web-v1 are 192.0.2.1x, of web-v2 192.0.2.2x, of the other namespace's 192.0.2.3x. */
const V1 = ['192.0.2.11', '192.0.2.12', '192.0.2.13'];
const V2 = ['192.0.2.21', '192.0.2.22', '192.0.2.23'];
const backendOf = (r: RequestResult) => (r.target ? (r.target.host.startsWith('192.0.2.1') ? 'v1' : r.target.host.startsWith('192.0.2.2') ? 'v2' : 'other') : 'none');

const RULES: RuleInput[] = [
  // 0: the conformance test's Session lifetime, over a 70/30 split
  {
    path: '/a',
    backendRefs: [
      { name: 'web-v1', port: 80, weight: 70 },
      { name: 'web-v2', port: 80, weight: 30 },
    ],
    sessionPersistence: { sessionName: 'shop-a', type: 'Cookie', cookieConfig: { lifetimeType: 'Session' } },
  },
  // 1: Permanent, no name (one of its own is made)
  { path: '/b', backendRefs: [{ name: 'web-v1', port: 80 }], sessionPersistence: { type: 'Cookie', absoluteTimeout: '1h', cookieConfig: { lifetimeType: 'Permanent' } } },
  // 2: Header
  { path: '/h', backendRefs: [{ name: 'web-v2', port: 80 }], sessionPersistence: { type: 'Header', sessionName: 'X-Shop-Session' } },
  // 3: no sessionPersistence: the KongPlugin's settings
  { path: '/n', backendRefs: [{ name: 'web-v1', port: 80 }] },
];

describe('HTTPRoutes under KIC, zero-config', () => {
  let api: KubeApiServer;
  let kong: KongEmulator;
  let dir: string;
  let metricsPort: number;
  /** The KongPlugin referenced from the HTTPRoute: bound by KIC to each Kong route of it. */
  const plugins = new Map<number, string>();

  const send = (rule: number, req: EmulatedRequest = {}, worker = 0) =>
    kong.request({ service: kicService(NS, 'web', rule), route: kicRoute(NS, 'web', rule), path: RULES[rule]?.path ?? '/', ...req }, { worker, plugin: plugins.get(rule) as string });
  const cookieOf = (r: RequestResult, name: string) => r.responseHeaders['set-cookie']?.find((c) => c.startsWith(`${name}=`));
  const pair = (setCookie: string | undefined) => setCookie?.split(';')[0] as string;

  async function synced(rule: number): Promise<void> {
    for (let i = 0; i < 200; i++) {
      if ((await send(rule)).target) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`rule ${rule} never synced`);
  }

  beforeAll(async () => {
    api = await startKubeApiServer();
    api.applyObject(SERVICE_KIND, service(NS, 'web-v1'));
    api.applyObject(SERVICE_KIND, service(NS, 'web-v2'));
    api.apply(endpointSlice({ name: 'web-v1-a', service: 'web-v1', endpoints: V1.map((ip, i) => podEndpoint(`web-v1-${i}`, ip, READY)) }));
    api.apply(endpointSlice({ name: 'web-v2-a', service: 'web-v2', endpoints: V2.map((ip, i) => podEndpoint(`web-v2-${i}`, ip, READY)) }));
    api.applyObject(HTTP_ROUTE_KIND, httpRoute(NS, 'web', RULES));
    dir = mkdtempSync(join(tmpdir(), 'gateway-api-e2e-'));
    metricsPort = await freePort();
    kong = await KongEmulator.start({ useDockerfile: true, workers: 2, env: { KUBECONFIG: api.writeKubeconfig(dir), STICKY_SESSION_METRICS_PORT: String(metricsPort) } });
    RULES.forEach((_, i) => plugins.set(i, kong.addPlugin({ route: kicRoute(NS, 'web', i).id as string, config: { secrets: [SECRET], cookie_name: 'kp' } }).id));
    for (const rule of RULES.keys()) await synced(rule);
  });

  afterAll(async () => {
    await kong?.stop();
    await api?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('Session lifetime (conformance): a Set-Cookie on the first response, no Expires or Max-Age, 10 requests reach one pod', async () => {
    for (let client = 0; client < 5; client++) {
      const first = await send(0);
      const set = cookieOf(first, 'shop-a');
      expect(set).toBeDefined();
      expect(first.responseHeaders['set-cookie']?.[0]).toBe(set);
      expect(set).not.toMatch(/Expires=|Max-Age=/i);
      for (let i = 0; i < 10; i++) {
        const next = await send(0, { headers: { cookie: pair(set) } }, i % 2);
        expect(next.status).toBe(200);
        expect(next.target).toEqual(first.target);
        expect(next.responseHeaders['set-cookie']).toBeUndefined();
      }
    }
  });

  it('Permanent lifetime (conformance): Max-Age and Expires from absoluteTimeout; the rule gets a cookie name of its own', async () => {
    const first = await send(1);
    const set = first.responseHeaders['set-cookie']?.[0] as string;
    expect(set).toMatch(/^kp_[0-9a-f]{8}=[A-Za-z0-9_-]+; Path=\/; Max-Age=3600; Expires=[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT; HttpOnly; SameSite=Lax$/);
    const expires = Date.parse(/Expires=([^;]+)/.exec(set)?.[1] as string);
    expect(Math.abs(expires - (Date.now() + 3600_000))).toBeLessThan(5_000);
    for (let i = 0; i < 10; i++) expect((await send(1, { headers: { cookie: pair(set) } }, i % 2)).target).toEqual(first.target);
  });

  it('a 70/30 split over 100 sessions: new sessions go to each backend by its weight', async () => {
    const counts = { v1: 0, v2: 0, other: 0, none: 0 };
    for (let i = 0; i < 100; i++) counts[backendOf(await send(0, {}, i % 2))]++;
    expect(counts.v1 + counts.v2).toBe(100);
    // Smooth weighted round robin per process: exact but for sessions of other tests in flight.
    expect(Math.abs(counts.v1 - 70)).toBeLessThanOrEqual(2);
  });

  it('per-rule scoping (GEP-1619): sessions of /a and /b never share a cookie or a token', async () => {
    const a = await send(0);
    const b = await send(1);
    const cookieA = pair(cookieOf(a, 'shop-a'));
    const cookieB = pair(b.responseHeaders['set-cookie']?.[0]);
    expect(cookieA.split('=')[0]).not.toBe(cookieB.split('=')[0]);
    // Both cookies travel together (Path=/): each rule reads its own and keeps its pod.
    const both = `${cookieA}; ${cookieB}`;
    for (let i = 0; i < 5; i++) {
      const ra = await send(0, { headers: { cookie: both } });
      const rb = await send(1, { headers: { cookie: both } });
      expect(ra.target).toEqual(a.target);
      expect(rb.target).toEqual(b.target);
      expect(ra.responseHeaders['set-cookie']).toBeUndefined();
      expect(rb.responseHeaders['set-cookie']).toBeUndefined();
    }
    // /a's token under /b's cookie name is foreign to /b: a new session there.
    const foreign = await send(1, { headers: { cookie: `${cookieB.split('=')[0]}=${cookieA.split('=')[1]}` } });
    expect(foreign.responseHeaders['set-cookie']?.[0]).toMatch(/^kp_[0-9a-f]{8}=/);
  });

  it('Header type: the token travels in the named header, no cookie', async () => {
    const first = await send(2);
    expect(first.responseHeaders['set-cookie']).toBeUndefined();
    const token = first.responseHeaders['x-shop-session']?.[0] as string;
    expect(token).toMatch(/^[A-Za-z0-9_-]{40,}$/);
    for (let i = 0; i < 10; i++) {
      const next = await send(2, { headers: { 'x-shop-session': token } }, i % 2);
      expect(next.target).toEqual(first.target);
      expect(next.responseHeaders['x-shop-session']).toBeUndefined();
    }
  });

  it('a rule without sessionPersistence: the KongPlugin config applies', async () => {
    const first = await send(3);
    expect(first.responseHeaders['set-cookie']?.[0]).toMatch(/^kp=[A-Za-z0-9_-]+; Path=\/; HttpOnly; SameSite=Lax$/);
  });

  it('sessionPersistence changes apply live, with no KongPlugin change', async () => {
    const before = await send(0);
    expect(cookieOf(before, 'shop-a')).toBeDefined();
    const changed = RULES.map((r, i) => (i === 0 ? { ...r, sessionPersistence: { sessionName: 'shop-a2', absoluteTimeout: '10m', cookieConfig: { lifetimeType: 'Permanent' } } } : r));
    api.applyObject(HTTP_ROUTE_KIND, httpRoute(NS, 'web', changed));
    let after: RequestResult | undefined;
    for (let i = 0; i < 100 && !after; i++) {
      const r = await send(0);
      if (cookieOf(r, 'shop-a2')) after = r;
      else await new Promise((res) => setTimeout(res, 20));
    }
    expect(cookieOf(after as RequestResult, 'shop-a2')).toMatch(/Max-Age=600; Expires=/);
    api.applyObject(HTTP_ROUTE_KIND, httpRoute(NS, 'web', RULES));
    for (let i = 0; i < 100; i++) {
      if (cookieOf(await send(0), 'shop-a')) return;
      await new Promise((res) => setTimeout(res, 20));
    }
    throw new Error('the rule never went back to shop-a');
  });

  it('metrics and the status view show sessions and decisions per backend Service', async () => {
    const before = parseMetrics((await http(`http://127.0.0.1:${metricsPort}/metrics`)).body);
    const made: string[] = [];
    for (let i = 0; i < 20; i++) made.push(pair(cookieOf(await send(0), 'shop-a')));
    for (const cookie of made) await send(0, { headers: { cookie } });
    const m = parseMetrics((await http(`http://127.0.0.1:${metricsPort}/metrics`)).body);
    // Decisions count per plugin instance's Kong route; the view is the rule's.
    const service = `httproute:${NS}/web/0`;
    const named = { service: `route:${kicRoute(NS, 'web', 0).id as string}`, service_name: `httproute.${NS}.web.0` };
    const delta = (backend: string, outcome: string) => {
      const key = sample('sticky_session_backend_decisions_total', { ...named, backend, outcome });
      return (m.get(key) ?? 0) - (before.get(key) ?? 0);
    };
    expect(delta('shop/web-v1:80', 'new') + delta('shop/web-v2:80', 'new')).toBe(20);
    expect(delta('shop/web-v1:80', 'new')).toBe(14);
    expect(delta('shop/web-v1:80', 'pinned') + delta('shop/web-v2:80', 'pinned')).toBe(20);
    expect(m.get(sample('sticky_session_backend_weight', { source: service, backend: 'shop/web-v1:80' }))).toBe(70);
    expect(m.get(sample('sticky_session_backend_weight', { source: service, backend: 'shop/web-v2:80' }))).toBe(30);
    expect(m.get(sample('sticky_session_backend_sessions', { source: service, backend: 'shop/web-v2:80' }))).toBeGreaterThanOrEqual(6);

    const status = JSON.parse((await http(`http://127.0.0.1:${metricsPort}/status`)).body) as StatusView;
    const rule = status.services.find((s) => s.source === service);
    expect(rule).toMatchObject({ kind: 'httproute', synced: true });
    expect(rule?.backends?.map((b) => [b.backend, b.weight, b.ready])).toEqual([
      ['shop/web-v1:80', 70, 3],
      ['shop/web-v2:80', 30, 3],
    ]);
    expect(rule?.endpoints.filter((e) => e.backend === 'shop/web-v2:80').map((e) => e.host).sort()).toEqual(V2);

    // sticky-session status, as an operator reads it.
    let printed = '';
    expect(await runCli(['status', '--url', `http://127.0.0.1:${metricsPort}`], {}, { out: (t) => (printed += t), err: () => {} })).toBe(0);
    expect(printed).toMatch(/^  backend shop\/web-v1:80: weight 70, 3 ready, 0 draining, \d+ active sessions$/m);
    expect(printed).toMatch(/^  backend shop\/web-v2:80: weight 30, 3 ready, 0 draining, \d+ active sessions$/m);
  });

  it('a global plugin serves each Kong service with its own view: a Service, a rule, never one for the other', async () => {
    const global = kong.addPlugin({ config: { secrets: [SECRET], cookie_name: 'g' } }).id;
    const ingressV2 = { id: '0e3c1c3e-5555-4c4c-9a9a-000000000003', name: 'shop.web-v2.80', host: 'web-v2.shop.80.svc', port: 80, protocol: 'http' };
    const viaGlobal = (service: Record<string, unknown>, route: Record<string, unknown> | null, cookie?: string) =>
      kong.request({ service, route, headers: cookie ? { cookie } : {} }, { plugin: global, worker: 0 });
    // Rule 1's Kong service (rules 1 and 3 have the same backendRefs: KIC names their service after rule 1).
    const rule1 = kicService(NS, 'web', 1);
    let r = await viaGlobal(ingressV2, null);
    for (let i = 0; i < 200 && !r.target; i++) r = await viaGlobal(ingressV2, null);
    let q = await viaGlobal(rule1, null);
    for (let i = 0; i < 200 && !q.target; i++) q = await viaGlobal(rule1, null);
    for (let i = 0; i < 10; i++) {
      expect(backendOf(await viaGlobal(ingressV2, null))).toBe('v2');
      expect(backendOf(await viaGlobal(rule1, null))).toBe('v1');
    }
    const ingressCookie = pair(r.responseHeaders['set-cookie']?.[0]);
    expect(ingressCookie).toMatch(/^g=/);
    // Each request asks for its Kong service (a global instance serves them all).
    const pinned = await viaGlobal(ingressV2, null, ingressCookie);
    expect(pinned.pdkCalls[0]?.method).toBe('kong.router.get_service');
    expect(pinned.target).toEqual(r.target);
    // The rule's own cookie (Permanent, a name of its own); the Service's token under it is no token there.
    const ruleCookieName = pair(q.responseHeaders['set-cookie']?.[0]).split('=')[0] as string;
    expect(ruleCookieName).toMatch(/^g_[0-9a-f]{8}$/);
    const cross = await viaGlobal(rule1, null, `${ruleCookieName}=${ingressCookie.slice(2)}`);
    expect(backendOf(cross)).toBe('v1');
    expect(cross.responseHeaders['set-cookie']?.[0]).toMatch(new RegExp(`^${ruleCookieName}=`));
    kong.removePlugin(global);
  });

  it('round trips are those of an Ingress-bound instance, pinned and new alike; the rule is learnt once per instance', async () => {
    // The same KongPlugin on the Kong route KIC makes of an Ingress to web-v1 (service host <svc>.<ns>.<port>.svc).
    const ingressService = { id: '0e3c1c3e-5555-4c4c-9a9a-000000000001', name: 'shop.web-v1.80', host: 'web-v1.shop.80.svc', port: 80, protocol: 'http' };
    const ingressRoute = { id: '0e3c1c3e-5555-4c4c-9a9a-000000000002', name: 'shop.web.web.example.80', preserve_host: true };
    const ingress = kong.addPlugin({ route: ingressRoute.id, config: { secrets: [SECRET], cookie_name: 'shop-a' } }).id;
    const viaIngress = (cookie?: string) => kong.request({ service: ingressService, route: ingressRoute, headers: cookie ? { cookie } : {} }, { plugin: ingress });
    let ingressFirst = await viaIngress();
    for (let i = 0; i < 200 && !ingressFirst.target; i++) ingressFirst = await viaIngress();

    const methods = (r: RequestResult) => r.pdkCalls.map((c) => c.method);
    await send(0); // adding a plugin restarts the instances (a new __seq__): let the rule's learn again
    const ruleFirst = await send(0);
    const rulePinned = await send(0, { headers: { cookie: pair(cookieOf(ruleFirst, 'shop-a')) } });
    const ingressNew = await viaIngress();
    const ingressPinned = await viaIngress(pair(cookieOf(ingressNew, 'shop-a')));
    expect(methods(rulePinned)).toEqual(methods(ingressPinned));
    expect(methods(ruleFirst)).toEqual(methods(ingressNew));
    expect(rulePinned.roundTrips).toBe(ingressPinned.roundTrips);
    expect(ruleFirst.roundTrips).toBe(ingressNew.roundTrips);
    // preserve_host route: token read, $upstream_host read, set_target, Host written back; a new session adds the scheme and the Set-Cookie.
    expect(methods(rulePinned)).toEqual(['kong.nginx.get_var', 'kong.nginx.get_var', 'kong.service.set_target', 'kong.service.request.set_header']);
    expect(ruleFirst.roundTrips).toBe(rulePinned.roundTrips + 2);

    // A new instance of the rule (the KongPlugin changed): its first request asks for its Kong service and route, once.
    kong.updatePlugin(plugins.get(0) as string, { config: { secrets: [SECRET], cookie_name: 'kp2' } });
    const fresh = await send(0);
    expect(methods(fresh).slice(0, 2)).toEqual(['kong.router.get_service', 'kong.router.get_route']);
    expect(methods(fresh).slice(2)).toEqual(methods(ruleFirst));
    const after = await send(0, { headers: { cookie: pair(cookieOf(fresh, 'shop-a')) } });
    expect(methods(after)).toEqual(methods(rulePinned));
    kong.updatePlugin(plugins.get(0) as string, { config: { secrets: [SECRET], cookie_name: 'kp' } });
    kong.removePlugin(ingress);
  });
});

describe('backendRefs across namespaces, and removed', () => {
  let api: KubeApiServer;
  let kong: KongEmulator;
  let dir: string;
  let plugin: string;
  const OTHER = ['192.0.2.31', '192.0.2.32'];
  const rules = (withOther: boolean): RuleInput[] => [
    {
      path: '/',
      backendRefs: [{ name: 'web-v1', port: 80, weight: 50 }, ...(withOther ? [{ name: 'legacy', namespace: 'other', port: 80, weight: 50 }] : [])],
      sessionPersistence: { sessionName: 'x' },
    },
  ];
  const send = (req: EmulatedRequest = {}) => kong.request({ service: kicService(NS, 'mixed', 0), route: kicRoute(NS, 'mixed', 0), ...req }, { plugin });

  beforeAll(async () => {
    api = await startKubeApiServer();
    api.applyObject(SERVICE_KIND, service(NS, 'web-v1'));
    api.applyObject(SERVICE_KIND, service('other', 'legacy'));
    api.apply(endpointSlice({ name: 'web-v1-a', service: 'web-v1', endpoints: V1.map((ip, i) => podEndpoint(`web-v1-${i}`, ip, READY)) }));
    api.apply(endpointSlice({ name: 'legacy-a', namespace: 'other', service: 'legacy', endpoints: OTHER.map((ip, i) => podEndpoint(`legacy-${i}`, ip, READY, 'other')) }));
    api.applyObject(HTTP_ROUTE_KIND, httpRoute(NS, 'mixed', rules(true)));
    dir = mkdtempSync(join(tmpdir(), 'gateway-api-e2e-'));
    kong = await KongEmulator.start({ useDockerfile: true, workers: 1, env: { KUBECONFIG: api.writeKubeconfig(dir) } });
    plugin = kong.addPlugin({ route: kicRoute(NS, 'mixed', 0).id as string, config: { secrets: [SECRET] } }).id;
    for (let i = 0; i < 200 && !(await send()).target; i++) await new Promise((r) => setTimeout(r, 25));
  });

  afterAll(async () => {
    await kong?.stop();
    await api?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function backendsSeen(n: number): Promise<Set<string>> {
    const seen = new Set<string>();
    for (let i = 0; i < n; i++) seen.add(backendOf(await send()));
    return seen;
  }

  async function until(check: () => Promise<boolean>): Promise<void> {
    for (let i = 0; i < 200; i++) {
      if (await check()) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error('never');
  }

  it('a cross-namespace backendRef counts only where a ReferenceGrant allows it, live', async () => {
    expect(await backendsSeen(10)).toEqual(new Set(['v1']));
    api.applyObject(REFERENCE_GRANT_KIND, referenceGrant('other', 'from-shop', NS, 'legacy'));
    await until(async () => (await backendsSeen(4)).has('other'));
    expect(await backendsSeen(10)).toEqual(new Set(['v1', 'other']));
  });

  it('a backendRef removed from the rule: its sessions re-pin with a new cookie; the others stay', async () => {
    const sessions: Array<{ cookie: string; backend: string; target: RequestResult['target'] }> = [];
    for (let i = 0; i < 10; i++) {
      const r = await send();
      sessions.push({ cookie: r.responseHeaders['set-cookie']?.[0]?.split(';')[0] as string, backend: backendOf(r), target: r.target });
    }
    expect(new Set(sessions.map((s) => s.backend))).toEqual(new Set(['v1', 'other']));
    api.applyObject(HTTP_ROUTE_KIND, httpRoute(NS, 'mixed', rules(false)));
    await until(async () => (await backendsSeen(4)).size === 1);
    for (const s of sessions) {
      const r = await send({ headers: { cookie: s.cookie } });
      expect(backendOf(r)).toBe('v1');
      if (s.backend === 'v1') {
        expect(r.target).toEqual(s.target);
        expect(r.responseHeaders['set-cookie']).toBeUndefined();
      } else {
        const renewed = r.responseHeaders['set-cookie']?.[0]?.split(';')[0];
        expect(renewed).toMatch(/^x=/);
        expect(renewed).not.toBe(s.cookie);
      }
    }
  });
});
