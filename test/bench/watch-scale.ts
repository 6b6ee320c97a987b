/**
 * Issue 17, part 2: a thousand watched Services, through the REAL plugin server.
 *
 * The test API server holds `--services` Services (default 1,000) of 3 pods each, one
 * EndpointSlice per Service, spread over `--namespaces` namespaces (default 4). The plugin
 * server is started as the image starts it (KUBECONFIG, status port) and gets one plugin
 * entity per Service, each started by a first request (as 1,000 plugin instances would be).
 * Reported, counted at the API server's side:
 *   - connections open to the API server once synced (and the most at any moment), and
 *     watches open: what one Kong pod costs the API server;
 *   - time from the first StartInstance until GET /status shows every Service synced (and
 *     from the last StartInstance);
 *   - RSS of the plugin-server process, synced and after the propagation rounds;
 *   - propagation: one Service's pinned pod stopped / ready again while the other 999 stay
 *     quiet; the time from the API server write to the first decision that reflects it
 *     (a probe request with a cookie pinned to that pod), p50 and p99;
 *   - what the API server sent: list items, watch events and bytes.
 *
 *   npm run bench:watch-scale [-- --services 1000 --namespaces 4 --rounds 100 --scope namespace|cluster]
 *   (--repo-dir DIR runs the plugin server of another checkout, built: to measure a former design)
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KongEmulator, type RequestResult } from '../harness/kong-emulator.js';
import { startKubeApiServer, type KubeApiServer } from '../harness/kube-apiserver.js';
import { endpointSlice, podEndpoint, READY, STOPPED, type Conditions } from '../harness/kube-slices.js';
import { freePort } from '../support/free-port.js';
import { fmt, isMain, numberOption, option, percentile, printTable, printTargets, report, rssOf, sleep, verdict, type TargetRow } from './report.js';

const SECRET = 'bench-secret-0123456789abcdef0123456789';
const PODS = 3;

export interface WatchScaleResult {
  readonly services: number;
  readonly namespaces: number;
  /** STICKY_SESSION_WATCH_SCOPE: one list-and-watch per kind and namespace, or per kind for the cluster. */
  readonly scope: 'namespace' | 'cluster';
  readonly rounds: number;
  /** Connections to the API server open once every Service is synced, and the most at once. */
  readonly connections: number;
  readonly peakConnections: number;
  readonly watches: number;
  /** First StartInstance -> every Service synced (ms); last StartInstance -> synced. */
  readonly syncMs: number;
  readonly syncAfterLastStartMs: number;
  readonly rssSyncedBytes: number;
  readonly rssAfterBytes: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly listItems: number;
  readonly watchEvents: number;
  readonly sentBytes: number;
}

interface Svc {
  readonly index: number;
  readonly name: string;
  readonly namespace: string;
  readonly entity: { id: string; name: string; host: string; port: number; protocol: string };
  pluginId: string;
}

/** Pod p of Service s, on 198.18.0.0/15 (the benchmarking range). */
const podIp = (s: number, p: number) => {
  const n = s * PODS + p + 1;
  return `198.${18 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;
};

function sliceFor(svc: Svc, conditions: Conditions[] = []) {
  return endpointSlice({
    name: `${svc.name}-a`,
    service: svc.name,
    namespace: svc.namespace,
    endpoints: Array.from({ length: PODS }, (_, p) => podEndpoint(`${svc.name}-${p}`, podIp(svc.index, p), conditions[p] ?? READY, svc.namespace)),
  });
}

const target = (r: RequestResult) => (r.target ? `${r.target.host}:${r.target.port}` : undefined);
const cookieOf = (r: RequestResult) => r.responseHeaders['set-cookie']?.[0]?.split(';')[0];

async function statusOf(port: number): Promise<{ services: { source: string; synced: boolean }[] } | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/status`, { signal: AbortSignal.timeout(5_000) });
    return res.ok ? ((await res.json()) as { services: { source: string; synced: boolean }[] }) : undefined;
  } catch {
    return undefined;
  }
}

export async function benchWatchScale(
  opts: { services?: number; namespaces?: number; rounds?: number; scope?: 'namespace' | 'cluster'; repoDir?: string; log?: (line: string) => void } = {},
): Promise<WatchScaleResult> {
  const count = opts.services ?? 1000;
  const namespaces = opts.namespaces ?? 4;
  const rounds = opts.rounds ?? 100;
  const say = opts.log ?? (() => {});
  const api: KubeApiServer = await startKubeApiServer({ bookmarkIntervalMs: 60_000, historyLimit: 10_000 });
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-watch-scale-'));
  let kong: KongEmulator | undefined;
  try {
    const services: Svc[] = Array.from({ length: count }, (_, i) => ({
      index: i,
      name: `svc-${String(i).padStart(4, '0')}`,
      namespace: `ns-${i % namespaces}`,
      entity: { id: randomUUID(), name: `svc-${i}`, host: `svc-${i}.internal`, port: 80, protocol: 'http' },
      pluginId: '',
    }));
    for (const svc of services) api.apply(sliceFor(svc));
    const statusPort = await freePort();
    kong = await KongEmulator.start({
      useDockerfile: true,
      workers: 1,
      callTimeoutMs: 10_000,
      ...(opts.repoDir ? { repoDir: opts.repoDir } : {}),
      env: {
        KUBECONFIG: api.writeKubeconfig(dir),
        STICKY_SESSION_METRICS_PORT: String(statusPort),
        ...(opts.scope ? { STICKY_SESSION_WATCH_SCOPE: opts.scope } : {}),
      },
    });
    const k = kong;
    for (const svc of services) {
      svc.pluginId = k.addPlugin({
        service: svc.entity.id,
        config: { secrets: [SECRET], kubernetes_namespace: svc.namespace, kubernetes_service: svc.name, kubernetes_port: 'http' },
      }).id;
    }
    const send = (svc: Svc, cookie?: string) =>
      k.request({ service: svc.entity, ...(cookie ? { headers: { cookie } } : {}) }, { plugin: svc.pluginId, log: false });

    // Every instance started by a first request (8 in flight), then wait for every view.
    say(`  starting ${count} plugin instances (${namespaces} namespaces)`);
    const t0 = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < services.length) await send(services[next++]!);
      }),
    );
    const lastStart = performance.now();
    for (;;) {
      const status = await statusOf(statusPort);
      const synced = status?.services.filter((s) => s.synced && s.source.startsWith('k8s:')).length ?? 0;
      if (synced === count) break;
      if (performance.now() - t0 > 120_000) throw new Error(`only ${synced} of ${count} Services synced after 120 s: ${k.serverLog().slice(-2000)}`);
      await sleep(50);
    }
    const syncedAt = performance.now();
    say(`  all synced ${fmt.ms(syncedAt - t0, 0)} after the first instance started (${fmt.ms(syncedAt - lastStart, 0)} after the last)`);
    await sleep(1_000); // watches opened after the lists settle
    const connections = api.openConnections;
    const watches = api.openWatches;
    const rssSyncedBytes = rssOf(k.serverPid!) ?? NaN;

    // Propagation: one Service in the middle; the other count - 1 stay quiet.
    const svc = services[Math.floor(count / 2)]!;
    let first: RequestResult;
    for (let tries = 0; ; tries++) {
      first = await send(svc);
      if (first.target) break;
      if (tries > 200) throw new Error('the probed Service never pinned');
      await sleep(20);
    }
    const cookie = cookieOf(first)!;
    const pinned = target(first)!;
    const pod = Array.from({ length: PODS }, (_, p) => `${podIp(svc.index, p)}:8080`).indexOf(pinned);
    say(`  probing ${svc.namespace}/${svc.name}, pinned to pod ${pod} (${pinned})`);
    const samples: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const stop = r % 2 === 0;
      await sleep(10 + Math.random() * 30); // no phase lock with the probe loop
      const conditions: Conditions[] = [];
      conditions[pod] = stop ? STOPPED : READY;
      const written = performance.now();
      api.apply(sliceFor(svc, conditions));
      for (let probes = 0; ; probes++) {
        const at = target(await send(svc, cookie));
        if (at !== undefined && (stop ? at !== pinned : at === pinned)) {
          samples.push(performance.now() - written);
          break;
        }
        if (performance.now() - written > 10_000) throw new Error(`change not seen after 10 s (round ${r}, ${probes} probes, target ${at})`);
      }
    }
    const rssAfterBytes = rssOf(k.serverPid!) ?? NaN;
    return {
      services: count,
      namespaces,
      scope: opts.scope ?? 'namespace',
      rounds,
      connections,
      peakConnections: api.sent.peakConnections,
      watches,
      syncMs: syncedAt - t0,
      syncAfterLastStartMs: syncedAt - lastStart,
      rssSyncedBytes,
      rssAfterBytes,
      p50Ms: percentile(samples, 50),
      p99Ms: percentile(samples, 99),
      maxMs: Math.max(...samples),
      listItems: api.sent.listItems,
      watchEvents: api.sent.watchEvents,
      sentBytes: api.sent.listBytes + api.sent.watchBytes,
    };
  } finally {
    await kong?.stop();
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

export function printWatchScale(r: WatchScaleResult): void {
  printTable(
    `Watch scale through the real plugin server: ${fmt.int(r.services)} Services of ${PODS} pods in ${r.namespaces} namespaces (watched per ${r.scope === 'cluster' ? 'cluster' : 'namespace'}), one plugin instance each; ${r.rounds} changes of one Service while the others are quiet`,
    ['API-server connections (peak)', 'watches', 'all synced (after last start)', 'RSS synced / after', 'propagation p50', 'p99', 'max', 'API server sent'],
    [
      [
        `${r.connections} (${r.peakConnections})`,
        String(r.watches),
        `${fmt.ms(r.syncMs, 0)} (${fmt.ms(r.syncAfterLastStartMs, 0)})`,
        `${fmt.mb(r.rssSyncedBytes)} / ${fmt.mb(r.rssAfterBytes)}`,
        fmt.ms(r.p50Ms, 2),
        fmt.ms(r.p99Ms, 2),
        fmt.ms(r.maxMs, 2),
        `${fmt.int(r.listItems)} list items, ${fmt.int(r.watchEvents)} watch events, ${fmt.mb(r.sentBytes)}`,
      ],
    ],
  );
}

export function watchScaleTargets(r: WatchScaleResult): TargetRow[] {
  const rss = Math.max(r.rssSyncedBytes, r.rssAfterBytes);
  return [
    { part: 'watch', what: `API-server connections per process at ${fmt.int(r.services)} Services`, measured: String(r.connections), target: '<= 5', verdict: verdict(r.connections <= 5) },
    { part: 'watch', what: `every Service synced (from the first instance start)`, measured: fmt.ms(r.syncMs, 0), target: '<= 5000 ms', verdict: verdict(r.syncMs <= 5000) },
    { part: 'watch', what: 'plugin-server RSS', measured: fmt.mb(rss), target: '< 250 MB', verdict: verdict(rss < 250 * 2 ** 20) },
    { part: 'watch', what: `propagation p99, one Service of ${fmt.int(r.services)} (decision probe)`, measured: fmt.ms(r.p99Ms, 2), target: '< 50 ms', verdict: verdict(r.p99Ms < 50) },
  ];
}

if (isMain(import.meta)) {
  const repoDir = option('repo-dir');
  const result = await benchWatchScale({
    services: numberOption('services', 1000),
    namespaces: numberOption('namespaces', 4),
    rounds: numberOption('rounds', 100),
    scope: option('scope') === 'cluster' ? 'cluster' : 'namespace',
    ...(repoDir ? { repoDir: path.resolve(repoDir) } : {}),
    log: (line) => process.stderr.write(line + '\n'),
  });
  printWatchScale(result);
  const rows = watchScaleTargets(result);
  printTargets('Watch-scale targets (through the plugin server)', rows);
  report(rows);
}
