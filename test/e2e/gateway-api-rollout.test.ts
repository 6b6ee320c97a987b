/**
 * Issue 16, part 6: a canary's weights shift 90/10 -> 50/50 -> 0/100 while one backend rolls
 * its pods, through the real plugin server (2 workers), with clients that keep their cookies
 * as a browser would. After every change the plugin has seen (read from /status), every client
 * sends a request, and:
 * - no response goes to a pod outside the serving set (ready, or terminating and serving);
 * - a weight change moves no session: a client whose pod still serves keeps it, with no cookie;
 * - no new session goes to a weight-0 backend;
 * - every client moved off its pod (the pod stopped serving) gets a new cookie.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpRoute, kicRoute, kicService, service, type RuleInput } from '../harness/kic-gateway-api.js';
import { KongEmulator, type RequestResult } from '../harness/kong-emulator.js';
import { HTTP_ROUTE_KIND, SERVICE_KIND, startKubeApiServer, type KubeApiServer } from '../harness/kube-apiserver.js';
import { DRAINING, endpointSlice, podEndpoint, READY, type Conditions } from '../harness/kube-slices.js';
import { http } from '../observability/helpers.js';
import { freePort } from '../support/free-port.js';
import type { StatusView } from '../../src/observability/status.js';

const SECRET = 'gateway-api-rollout-secret-0123456789abc';
const NS = 'shop';
const RULE_KEY = `httproute:${NS}/web/0`;

interface Pod {
  readonly name: string;
  readonly ip: string;
  conditions: Conditions;
}

/** The pods of each backend as the API server holds them. */
const pods: Record<'v1' | 'v2', Pod[]> = {
  v1: [0, 1, 2].map((i) => ({ name: `web-v1-${i}`, ip: `192.0.2.${10 + i}`, conditions: READY })),
  v2: [0, 1, 2].map((i) => ({ name: `web-v2-${i}`, ip: `192.0.2.${20 + i}`, conditions: READY })),
};
const backendOfIp = (ip: string) => (pods.v1.some((p) => p.ip === ip) || ip.startsWith('192.0.2.1') ? 'v1' : 'v2');

const rule = (w1: number, w2: number): RuleInput[] => [
  {
    path: '/',
    backendRefs: [
      { name: 'web-v1', port: 80, weight: w1 },
      { name: 'web-v2', port: 80, weight: w2 },
    ],
    sessionPersistence: { sessionName: 'shop', type: 'Cookie' },
  },
];

interface Client {
  cookie: string | undefined;
  ip: string | undefined;
}

describe('a canary shifting weights while a backend rolls its pods', () => {
  let api: KubeApiServer;
  let kong: KongEmulator;
  let dir: string;
  let metricsPort: number;
  let plugin: string;
  let weights: [number, number] = [90, 10];
  const clients: Client[] = Array.from({ length: 60 }, () => ({ cookie: undefined, ip: undefined }));
  const tally = { requests: 0, moved: 0, newSessions: { v1: 0, v2: 0 } };
  /** Clients on a pod when it stopped serving: each must move once, and only those. */
  let expectedMoves = 0;

  const publish = (backend: 'v1' | 'v2') =>
    api.apply(endpointSlice({ name: `web-${backend}-a`, service: `web-${backend}`, endpoints: pods[backend].map((p) => podEndpoint(p.name, p.ip, p.conditions)) }));

  const serving = () => new Set([...pods.v1, ...pods.v2].filter((p) => p.conditions.serving !== false).map((p) => p.ip));

  /** Waits until the plugin's view of the rule is what the API server now holds. */
  async function seen(): Promise<void> {
    const want = JSON.stringify({
      hosts: [...serving()].sort(),
      weights: [`${NS}/web-v1:80`, weights[0], `${NS}/web-v2:80`, weights[1]],
    });
    let got = '';
    for (let i = 0; i < 400; i++) {
      const view = JSON.parse((await http(`http://127.0.0.1:${metricsPort}/status`)).body) as StatusView;
      const rule = view.services.find((s) => s.source === RULE_KEY);
      got = JSON.stringify({ hosts: (rule?.endpoints ?? []).map((e) => e.host).sort(), weights: (rule?.backends ?? []).flatMap((b) => [b.backend, b.weight]) });
      if (got === want) return;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`the plugin never saw ${want}; it sees ${got}`);
  }

  /** Every client sends one request; the invariants are checked on each answer. */
  async function round(): Promise<void> {
    const live = serving();
    await Promise.all(
      clients.map(async (c, i) => {
        const r: RequestResult = await kong.request(
          { service: kicService(NS, 'web', 0), route: kicRoute(NS, 'web', 0), headers: c.cookie ? { cookie: c.cookie } : {} },
          { plugin, worker: i % 2 },
        );
        tally.requests++;
        const ip = r.target?.host;
        expect(ip, 'routed').toBeDefined();
        expect(live.has(ip as string), `${ip} is serving`).toBe(true);
        const set = r.responseHeaders['set-cookie']?.[0]?.split(';')[0];
        const wasServing = c.ip !== undefined && live.has(c.ip);
        if (wasServing) {
          // Its pod still serves: whatever the weights did, the session stays, with no new cookie.
          expect(ip).toBe(c.ip);
          expect(set).toBeUndefined();
        } else {
          // A new session, or a re-pin off a pod that stopped serving: a new cookie, never to weight 0.
          expect(set).toMatch(/^shop=/);
          expect(set).not.toBe(c.cookie);
          const b = backendOfIp(ip as string);
          expect(weights[b === 'v1' ? 0 : 1], `new session on ${b}`).toBeGreaterThan(0);
          if (c.ip === undefined) tally.newSessions[b]++;
          if (c.ip !== undefined) tally.moved++;
          c.cookie = set;
          c.ip = ip;
        }
      }),
    );
  }

  async function shift(w1: number, w2: number): Promise<void> {
    weights = [w1, w2];
    api.applyObject(HTTP_ROUTE_KIND, httpRoute(NS, 'web', rule(w1, w2)));
    await seen();
    await round();
  }

  /** Rolls one v1 pod: its replacement comes up, it terminates (still serving), then it stops. */
  async function roll(i: number): Promise<void> {
    const old = pods.v1[i] as Pod;
    pods.v1.push({ name: `web-v1-${i}-new`, ip: `192.0.2.${13 + i}`, conditions: READY });
    old.conditions = DRAINING;
    publish('v1');
    await seen();
    await round();
    expectedMoves += clients.filter((c) => c.ip === old.ip).length;
    pods.v1.splice(pods.v1.indexOf(old), 1);
    publish('v1');
    await seen();
    await round();
  }

  beforeAll(async () => {
    api = await startKubeApiServer();
    api.applyObject(SERVICE_KIND, service(NS, 'web-v1'));
    api.applyObject(SERVICE_KIND, service(NS, 'web-v2'));
    publish('v1');
    publish('v2');
    api.applyObject(HTTP_ROUTE_KIND, httpRoute(NS, 'web', rule(90, 10)));
    dir = mkdtempSync(join(tmpdir(), 'gateway-rollout-'));
    metricsPort = await freePort();
    // Watched cluster-wide here (the other Gateway API tests watch per namespace, the default).
    kong = await KongEmulator.start({
      useDockerfile: true,
      workers: 2,
      env: { KUBECONFIG: api.writeKubeconfig(dir), STICKY_SESSION_METRICS_PORT: String(metricsPort), STICKY_SESSION_WATCH_SCOPE: 'cluster' },
    });
    plugin = kong.addPlugin({ route: kicRoute(NS, 'web', 0).id as string, config: { secrets: [SECRET] } }).id;
    // The first request opens the rule's view.
    await kong.request({ service: kicService(NS, 'web', 0), route: kicRoute(NS, 'web', 0) }, { plugin });
    await seen();
  });

  afterAll(async () => {
    await kong?.stop();
    await api?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('90/10 -> 50/50 -> 0/100 with a rolling update of v1 in between: sessions move only off pods that stop serving', async () => {
    await round();
    const first = { ...tally.newSessions };
    // 60 clients plus the probe: 90/10 within one session of exact.
    expect(Math.abs(first.v2 - 6)).toBeLessThanOrEqual(1);

    await roll(0);
    await shift(50, 50);
    await roll(1);
    await shift(0, 100);
    await roll(2);
    await round();

    // Only the sessions of the three rolled pods moved, each once (none at a weight change).
    expect(expectedMoves).toBeGreaterThan(20);
    expect(tally.moved).toBe(expectedMoves);
    // v1 at weight 0 when its last old pod stopped: those sessions all went to v2, none to v1's new pod.
    expect(clients.filter((c) => c.ip === '192.0.2.15')).toEqual([]);
    expect(tally.requests).toBe(60 * 10);
    // One watch per kind for the whole cluster (STICKY_SESSION_WATCH_SCOPE=cluster).
    expect(api.watchesByResource()).toEqual({
      'endpointslices.discovery.k8s.io *': 1,
      'httproutes.gateway.networking.k8s.io *': 1,
      'services *': 1,
    });
  });
});
