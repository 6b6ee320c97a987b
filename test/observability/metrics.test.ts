/**
 * Scripted traffic through real plugin instances (fake Kong PDK), then the listener is
 * scraped over HTTP: counters must match the decisions taken, gauges the endpoint views
 * and session tables, /status and `sticky-session status` the same numbers.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { sources } from '../../src/endpoints/registry.js';
import { parseTarget, StaticSource } from '../../src/endpoints/static.js';
import { makeSnapshot, type EndpointSnapshot, type EndpointSource, type SourceStatus } from '../../src/endpoints/types.js';
import { log } from '../../src/log.js';
import { observabilityAddress, stopObservability } from '../../src/observability/index.js';
import type { StatusView } from '../../src/observability/status.js';
import { defaultUrl, runCli } from '../../src/cli/status.js';
import { TokenCodec } from '../../src/token.js';
import { http, parseMetrics, plugin, sample, send, SECRET } from './helpers.js';

const A = '192.0.2.10:8080';
const B = '192.0.2.11:8080';
const C = '192.0.2.12:8080';
const staticKey = (targets: string[]) => new StaticSource(targets.map(parseTarget)).key;
const A1 = staticKey([A, B, C]);
const A2 = staticKey([`${A} draining`, B]);

/** A Kubernetes source as the watcher shows it, driven by the test (not synced at first). */
class ScriptedWatch implements EndpointSource {
  readonly key = 'k8s:shop/cart:http';
  snapshot: EndpointSnapshot | undefined;
  lastSyncAt: number | undefined;
  restarts = 2;
  current() {
    return this.snapshot;
  }
  onChange() {
    return () => {};
  }
  close() {}
  status(): SourceStatus {
    return { synced: this.snapshot !== undefined, lastSyncAt: this.lastSyncAt, restarts: this.restarts };
  }
}

let base = '';
/** Where each session of service svc-a went, by its first token. */
const pinnedTo = new Map<string, string>();
const watch = new ScriptedWatch();

beforeAll(async () => {
  vi.spyOn(log, 'warn').mockImplementation(() => undefined);
  vi.spyOn(log, 'info').mockImplementation(() => undefined);
  process.env.STICKY_SESSION_METRICS_PORT = '0';
  delete process.env.STICKY_SESSION_METRICS_ADDRESS;

  // svc-a: three sessions on three ready targets; two come back.
  const a1 = plugin({ service_id: 'svc-a', targets: [A, B, C] });
  const address = await observabilityAddress();
  if (!address) throw new Error('listener did not start');
  base = `http://${address.address}:${address.port}`;
  for (let i = 0; i < 3; i++) {
    const k = await send(a1);
    pinnedTo.set(k.token()!, k.target()!);
  }
  expect(new Set(pinnedTo.values())).toEqual(new Set([A, B, C]));
  const byTarget = new Map([...pinnedTo].map(([token, target]) => [target, token]));
  for (const t of [A, B]) expect((await send(a1, byTarget.get(t))).target()).toBe(t);

  // Rolling update: A terminating (still serving), C gone. Kong starts a new instance.
  const a2 = plugin({ service_id: 'svc-a', targets: [`${A} draining`, B] });
  expect((await send(a2, byTarget.get(A))).target()).toBe(A); // pinned_draining
  expect((await send(a2, byTarget.get(B))).target()).toBe(B); // pinned
  expect((await send(a2, byTarget.get(C))).target()).toBe(B); // repinned: gone
  expect((await send(a2, 'not-a-token')).target()).toBe(B); // new: malformed
  const foreign = new TokenCodec({ secrets: ['another-secret-0123456789abcdef-0123456'], binding: 'service:svc-a' }).issue(B, Date.now() / 1000);
  expect((await send(a2, foreign.token)).target()).toBe(B); // new: bad-signature

  // svc-s, strict: its endpoint disappears and the session is refused.
  const s1 = plugin({ service_id: 'svc-s', targets: [A, B], strict: true });
  const first = await send(s1);
  const s2 = plugin({ service_id: 'svc-s', targets: [first.target() === A ? B : A], strict: true });
  expect((await send(s2, first.token())).exitStatus()).toBe(503);

  // svc-k on a watched Service: fail open until the first sync.
  const lease = sources.acquire(watch.key, () => watch);
  void lease; // held for the whole file
  const k = plugin({ service_id: 'svc-k', kubernetes_namespace: 'shop', kubernetes_service: 'cart', kubernetes_port: 'http' });
  expect((await send(k)).target()).toBeUndefined();
  expect((await send(k)).target()).toBeUndefined();
  watch.snapshot = makeSnapshot(1, [
    { id: 'uid-1', name: 'cart-1', host: '192.0.2.21', port: 8080, condition: 'ready', weight: 1 },
    { id: 'uid-2', name: 'cart-2', host: '192.0.2.22', port: 8080, condition: 'draining', weight: 1 },
  ]);
  watch.lastSyncAt = Date.now() - 3_000;
  expect((await send(k)).target()).toBe('192.0.2.21:8080');
});

afterAll(async () => {
  await stopObservability();
  delete process.env.STICKY_SESSION_METRICS_PORT;
});

describe('GET /metrics', () => {
  let metrics: Map<string, number>;
  let text: string;
  beforeAll(async () => {
    const res = await http(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    text = res.body;
    metrics = parseMetrics(text);
  });

  const decisions = (service: string, outcome: string, reason: string) =>
    metrics.get(sample('sticky_session_decisions_total', { service, outcome, reason }));

  it('counts every decision by outcome and reason', () => {
    const a = 'service:svc-a';
    expect(decisions(a, 'new', 'none')).toBe(3);
    expect(decisions(a, 'pinned', 'none')).toBe(3);
    expect(decisions(a, 'pinned_draining', 'none')).toBe(1);
    expect(decisions(a, 'repinned', 'gone')).toBe(1);
    expect(decisions(a, 'new', 'malformed')).toBe(1);
    expect(decisions(a, 'new', 'bad-signature')).toBe(1);
    expect(decisions(a, 'new', 'expired')).toBe(0);
    expect(decisions(a, 'rejected', 'strict')).toBe(0);
    expect(decisions('service:svc-s', 'new', 'none')).toBe(1);
    expect(decisions('service:svc-s', 'rejected', 'strict')).toBe(1);
    expect(decisions('service:svc-k', 'fail_open', 'not-synced')).toBe(2);
    expect(decisions('service:svc-k', 'new', 'none')).toBe(1);
    // 10 + 2 + 3 requests, each counted once.
    const total = [...metrics].filter(([k]) => k.startsWith('sticky_session_decisions_total{')).reduce((n, [, v]) => n + v, 0);
    expect(total).toBe(15);
    expect(text).toContain('# TYPE sticky_session_decisions_total counter');
  });

  it('counts token rejections by kind', () => {
    const r = (reason: string) => metrics.get(sample('sticky_session_token_rejections_total', { service: 'service:svc-a', reason }));
    expect([r('malformed'), r('bad-signature'), r('expired'), r('idle')]).toEqual([1, 1, 0, 0]);
    expect(metrics.get(sample('sticky_session_token_rejections_total', { service: 'service:svc-k', reason: 'malformed' }))).toBe(0);
  });

  it('reports active sessions per endpoint of each view', () => {
    const s = (source: string, endpoint: string, pod = endpoint) => metrics.get(sample('sticky_session_active_sessions', { source, endpoint, pod }));
    // Before the update: one session each.
    expect([s(A1, A), s(A1, B), s(A1, C)]).toEqual([1, 1, 1]);
    // After: A keeps its session; B has its own, the re-pinned one and two new ones.
    expect([s(A2, A), s(A2, B)]).toEqual([1, 4]);
    expect(s(A2, C)).toBeUndefined();
    expect(s(watch.key, 'uid-1', 'cart-1')).toBe(1);
    expect(s(watch.key, 'uid-2', 'cart-2')).toBe(0);
  });

  it('reports endpoints per condition per source', () => {
    const e = (source: string, condition: string) => metrics.get(sample('sticky_session_endpoints', { source, condition }));
    expect([e(A1, 'ready'), e(A1, 'draining')]).toEqual([3, 0]);
    expect([e(A2, 'ready'), e(A2, 'draining')]).toEqual([1, 1]);
    expect([e(watch.key, 'ready'), e(watch.key, 'draining')]).toEqual([1, 1]);
  });

  it('reports the watch of each Service, not of static targets', () => {
    expect(metrics.get(sample('sticky_session_watch_restarts_total', { source: watch.key }))).toBe(2);
    expect(metrics.get(sample('sticky_session_watch_synced', { source: watch.key }))).toBe(1);
    expect(metrics.get(sample('sticky_session_watch_last_sync_timestamp_seconds', { source: watch.key }))).toBe(watch.lastSyncAt! / 1000);
    expect(metrics.get(sample('sticky_session_watch_synced', { source: A1 }))).toBeUndefined();
    expect(text).toContain('# TYPE sticky_session_watch_restarts_total counter');
  });

  it('prefixes every metric, process metrics included', () => {
    expect(metrics.has('sticky_session_process_cpu_user_seconds_total')).toBe(true);
    expect(metrics.has('sticky_session_nodejs_eventloop_lag_seconds')).toBe(true);
    for (const key of metrics.keys()) expect(key).toMatch(/^sticky_session_/);
  });

  it('gives a watch that never synced a last-sync time of 0, so an alert on its age fires', async () => {
    const saved = watch.lastSyncAt;
    watch.lastSyncAt = undefined;
    try {
      const now = parseMetrics((await http(`${base}/metrics`)).body);
      expect(now.get(sample('sticky_session_watch_last_sync_timestamp_seconds', { source: watch.key }))).toBe(0);
    } finally {
      watch.lastSyncAt = saved;
    }
  });

  it('exports no gauge named like a counter (promtool: "non-counter metrics should not have _total suffix")', () => {
    for (const line of text.split('\n')) {
      const m = /^# TYPE (\S+) (\S+)$/.exec(line);
      if (m && m[1]!.endsWith('_total')) expect(`${m[1]} ${m[2]}`).toBe(`${m[1]} counter`);
    }
    expect(metrics.has('sticky_session_nodejs_active_handles_total')).toBe(false);
    expect([...metrics.keys()].some((k) => k.startsWith('sticky_session_nodejs_active_handles{'))).toBe(true);
  });

  it('drops every series of a source once its last holder lets go (instance closed, as on CloseInstance)', async () => {
    const orders = new ScriptedWatch();
    Object.defineProperty(orders, 'key', { value: 'k8s:shop/orders:http' });
    orders.snapshot = makeSnapshot(1, [{ id: 'uid-o1', name: 'orders-1', host: '192.0.2.31', port: 8080, condition: 'ready', weight: 1 }]);
    orders.lastSyncAt = Date.now();
    const lease = sources.acquire(orders.key, () => orders);
    const p = plugin({ service_id: 'svc-o', kubernetes_namespace: 'shop', kubernetes_service: 'orders', kubernetes_port: 'http' });
    lease.release(); // the instance holds it now
    expect((await send(p)).target()).toBe('192.0.2.31:8080');
    const ofOrders = (m: Map<string, number>) => [...m.keys()].filter((k) => k.includes('source="k8s:shop/orders:http"'));
    const held = ofOrders(parseMetrics((await http(`${base}/metrics`)).body));
    for (const name of ['active_sessions', 'endpoints', 'watch_synced', 'watch_restarts_total', 'watch_last_sync_timestamp_seconds']) {
      expect(held.some((k) => k.startsWith(`sticky_session_${name}{`)), name).toBe(true);
    }
    p.close();
    expect(ofOrders(parseMetrics((await http(`${base}/metrics`)).body))).toEqual([]);
    // The decisions it counted stay: counters of a Kong service do not go back.
    expect(metrics.get(sample('sticky_session_decisions_total', { service: 'service:svc-k', outcome: 'new', reason: 'none' }))).toBe(1);
  });

  it('follows the views: a watch that loses its sync drops its gauges but keeps its counters', async () => {
    const saved = watch.snapshot;
    watch.snapshot = undefined;
    watch.restarts = 3;
    try {
      const now = parseMetrics((await http(`${base}/metrics`)).body);
      expect(now.get(sample('sticky_session_watch_synced', { source: watch.key }))).toBe(0);
      expect(now.get(sample('sticky_session_watch_restarts_total', { source: watch.key }))).toBe(3);
      expect(now.get(sample('sticky_session_endpoints', { source: watch.key, condition: 'ready' }))).toBeUndefined();
      expect(now.get(sample('sticky_session_decisions_total', { service: 'service:svc-k', outcome: 'new', reason: 'none' }))).toBe(1);
    } finally {
      watch.snapshot = saved;
      watch.restarts = 2;
    }
  });
});

describe('GET /status', () => {
  it('shows each source with its endpoints, conditions and session counts', async () => {
    const res = await http(`${base}/status`);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    const view = JSON.parse(res.body) as StatusView;
    expect(view.pid).toBe(process.pid);
    const byKey = new Map(view.services.map((s) => [s.source, s]));
    expect(byKey.get(A2)).toEqual({
      source: A2,
      kind: 'static',
      bindings: ['service:svc-a'],
      synced: true,
      lastSyncAt: null,
      lastSyncAgeSeconds: null,
      restarts: 0,
      lastError: null,
      problem: null,
      version: 1,
      endpoints: [
        { id: A, name: A, host: '192.0.2.10', port: 8080, condition: 'draining', activeSessions: 1 },
        { id: B, name: B, host: '192.0.2.11', port: 8080, condition: 'ready', activeSessions: 4 },
      ],
    });
    expect(byKey.get(A1)!.endpoints.map((e) => e.activeSessions)).toEqual([1, 1, 1]);
    const k = byKey.get(watch.key)!;
    expect(k).toMatchObject({ kind: 'kubernetes', bindings: ['service:svc-k'], synced: true, restarts: 2, version: 1 });
    expect(Date.parse(k.lastSyncAt!)).toBe(watch.lastSyncAt);
    expect(k.endpoints).toEqual([
      { id: 'uid-1', name: 'cart-1', host: '192.0.2.21', port: 8080, condition: 'ready', activeSessions: 1 },
      { id: 'uid-2', name: 'cart-2', host: '192.0.2.22', port: 8080, condition: 'draining', activeSessions: 0 },
    ]);
    // Five sources: svc-a before and after, svc-s before and after, the watched Service.
    expect(view.services).toHaveLength(5);
  });

  it('never shows a token or a secret', async () => {
    const body = (await http(`${base}/status`)).body + (await http(`${base}/metrics`)).body;
    expect(body).not.toContain(SECRET);
    for (const token of pinnedTo.keys()) expect(body).not.toContain(token);
  });
});

describe('the listener', () => {
  it('is bound to loopback by default', async () => {
    expect((await observabilityAddress())?.address).toBe('127.0.0.1');
  });

  it('serves only GET /metrics and GET /status', async () => {
    expect((await http(`${base}/`)).status).toBe(404);
    expect((await http(`${base}/metrics/x`)).status).toBe(404);
    expect((await http(`${base}/status?pretty=1`)).status).toBe(200);
    const post = await http(`${base}/metrics`, 'POST');
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe('GET');
    expect((await http(`${base}/status`, 'DELETE')).status).toBe(405);
  });
});

describe('sticky-session status (CLI)', () => {
  const CLI = join(resolve(import.meta.dirname, '../..'), 'dist/cli.js');
  const run = promisify(execFile);

  async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
    let out = '';
    let err = '';
    const code = await runCli(argv, {}, { out: (t) => (out += t), err: (t) => (err += t) });
    return { code, out, err };
  }

  /** A port nothing listens on. */
  async function closedPort(): Promise<number> {
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const { port } = s.address() as { port: number };
    await new Promise((r) => s.close(r));
    return port;
  }

  it('prints each source with its endpoints as a table', async () => {
    const r = await cli('status', '--url', base);
    expect(r).toMatchObject({ code: 0, err: '' });
    const blocks = r.out.trimEnd().split('\n\n');
    expect(blocks).toHaveLength(5);
    expect(blocks.find((b) => b.startsWith(`${A2} `))).toBe(
      [
        `${A2}  (static targets, view v1)`,
        '  Kong: service:svc-a',
        '  POD              CONDITION  ADDRESS          SESSIONS',
        '  192.0.2.10:8080  draining   192.0.2.10:8080  1',
        '  192.0.2.11:8080  ready      192.0.2.11:8080  4',
        '  2 endpoints (1 ready, 1 draining), 5 active sessions',
      ].join('\n'),
    );
    const k = blocks.find((b) => b.startsWith(`${watch.key} `))!.split('\n');
    expect(k[0]).toMatch(/^k8s:shop\/cart:http {2}\(synced, last sync \d+\.\d s ago, 2 watch restarts, view v1\)$/);
    expect(k.slice(2, 5)).toEqual([
      '  POD     CONDITION  ADDRESS          SESSIONS',
      '  cart-1  ready      192.0.2.21:8080  1',
      '  cart-2  draining   192.0.2.22:8080  0',
    ]);
  });

  it('--json prints the status view itself', async () => {
    const r = await cli('status', `--url=${base}/status`, '--json');
    expect(r.code).toBe(0);
    expect((JSON.parse(r.out) as StatusView).services).toHaveLength(5);
  });

  it('fails with a clear message and no output when nothing listens', async () => {
    const port = await closedPort();
    const r = await cli('status', '--url', `http://127.0.0.1:${port}`);
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err).toContain(`cannot read the sticky-session status at http://127.0.0.1:${port}/status: ECONNREFUSED`);
    expect(r.err).toContain('STICKY_SESSION_METRICS_PORT');
  });

  it('refuses unknown commands and arguments (exit 2)', async () => {
    expect((await cli()).code).toBe(2);
    expect((await cli('stats')).code).toBe(2);
    expect((await cli('status', '--urll', base)).code).toBe(2);
    expect((await cli('--help')).code).toBe(0);
  });

  it('takes its default URL from the listener env', () => {
    expect(defaultUrl({})).toBe('http://127.0.0.1:9542');
    expect(defaultUrl({ STICKY_SESSION_METRICS_PORT: '9100', STICKY_SESSION_METRICS_ADDRESS: '0.0.0.0' })).toBe('http://127.0.0.1:9100');
    expect(defaultUrl({ STICKY_SESSION_METRICS_ADDRESS: '::' })).toBe('http://[::1]:9542');
    expect(defaultUrl({ STICKY_SESSION_METRICS_ADDRESS: '10.1.2.3' })).toBe('http://10.1.2.3:9542');
  });

  it('runs as the npm bin, dist/cli.js (after `npx tsc -p .`), and exits non-zero when it cannot connect', async () => {
    if (!existsSync(CLI)) throw new Error('dist/cli.js missing: run `npx tsc -p .` first');
    const port = await closedPort();
    const [ok, failed] = await Promise.all([
      run(process.execPath, [CLI, 'status', '--url', base]),
      run(process.execPath, [CLI, 'status', '--url', `http://127.0.0.1:${port}`]).catch((e: unknown) => e as { code: number; stdout: string; stderr: string }),
    ]);
    expect(ok.stdout).toContain('  Kong: service:svc-a');
    expect(failed).toMatchObject({ code: 1, stdout: '' });
    expect((failed as { stderr: string }).stderr).toMatch(/cannot read the sticky-session status/);
  });
});
