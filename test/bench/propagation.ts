/**
 * Part 5 through the REAL plugin server: watch propagation from the API server to the
 * decisions Kong gets.
 *
 * The fake API server (test/harness/kube-apiserver.ts) serves a Service of 5,000 endpoints
 * in 50 EndpointSlices; the plugin server is started as the image starts it, with KUBECONFIG
 * pointing at that API server, and watches the Service itself. A client pinned to pod P
 * keeps sending its cookie (worker 0, back to back) while other workers send pinned
 * traffic of other clients. Each round the API server writes P's slice with P stopped
 * (not serving) or ready again; the time from that write to the first response that
 * reflects it (re-pinned away from P / pinned to P again) is one sample. The probe is the
 * decision itself (the target Kong is told), not the status page, so the figure includes
 * client-node, the watcher, the view, the token index and the PDK round trips; its
 * resolution is one probe request (~0.3-1 ms).
 *
 *   npm run bench:propagation [-- --rounds 100 --runs 3 --load-workers 2]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KongEmulator, type RequestResult } from '../harness/kong-emulator.js';
import { startKubeApiServer } from '../harness/kube-apiserver.js';
import { READY, STOPPED } from '../harness/kube-slices.js';
import { PER_SLICE, SLICES, sliceOf } from './endpoints.js';
import { SECRET, SERVICE } from './proxy.js';
import { fmt, isMain, median, numberOption, percentile, printTable, printTargets, report, sleep, verdict, type TargetRow } from './report.js';

export interface PropagationResult {
  readonly runs: number;
  readonly rounds: number;
  readonly loadWorkers: number;
  /** Median over runs of each run's percentile (ms). */
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Background requests/s while measuring. */
  readonly loadPerSec: number;
}

const target = (r: RequestResult) => (r.target ? `${r.target.host}:${r.target.port}` : undefined);
const cookieOf = (r: RequestResult) => r.responseHeaders['set-cookie']?.[0]?.split(';')[0];

export async function benchPropagation(opts: { runs?: number; rounds?: number; loadWorkers?: number; log?: (line: string) => void } = {}): Promise<PropagationResult> {
  const runs = opts.runs ?? 3;
  const rounds = opts.rounds ?? 100;
  const loadWorkers = opts.loadWorkers ?? 2;
  const say = opts.log ?? (() => {});
  const api = await startKubeApiServer({ bookmarkIntervalMs: 60_000, historyLimit: 10_000 });
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-prop-'));
  let kong: KongEmulator | undefined;
  let stopLoad = false;
  try {
    for (let s = 0; s < SLICES; s++) api.apply(sliceOf(s));
    // The image's KONG_NGINX_MAIN_ENV declares KUBECONFIG.
    kong = await KongEmulator.start({ useDockerfile: true, workers: 1 + loadWorkers, env: { KUBECONFIG: api.writeKubeconfig(dir) } });
    const k = kong;
    k.addPlugin({ service: SERVICE.id, config: { secrets: [SECRET], kubernetes_namespace: 'shop', kubernetes_service: 'cart', kubernetes_port: 'http' } });
    const send = (worker: number, cookie?: string) => k.request({ service: SERVICE, ...(cookie ? { headers: { cookie } } : {}) }, { worker, log: false });

    // Synced when a request gets pinned (before that the plugin fails open: no target).
    const deadline = Date.now() + 30_000;
    let first: RequestResult;
    for (;;) {
      first = await send(0);
      if (first.target) break;
      if (Date.now() > deadline) throw new Error(`plugin server never synced: ${k.serverLog().slice(-2000)}`);
      await sleep(50);
    }
    // P: wherever the probing client's session landed.
    const cookie = cookieOf(first)!;
    const pinned = target(first)!;
    const [a, b] = pinned.split(':')[0]!.split('.').slice(2).map(Number) as [number, number];
    const pod = a * 256 + b;
    const slice = Math.floor(pod / PER_SLICE);
    say(`  probing client pinned to pod cart-${pod} (${pinned}), slice ${slice}`);

    // Background: other clients, pinned, back to back on the other workers.
    const others: string[] = [];
    for (let i = 0; i < 200; i++) others.push(cookieOf(await send(1 + (i % Math.max(1, loadWorkers))))!);
    let loadRequests = 0;
    const load = Promise.all(
      Array.from({ length: loadWorkers }, async (_, w) => {
        for (let i = 0; !stopLoad; i++) {
          await send(1 + w, others[(i * 31 + w) % others.length]);
          loadRequests++;
        }
      }),
    );

    const p50s: number[] = [];
    const p99s: number[] = [];
    let max = 0;
    const loadStart = performance.now();
    const loadAtStart = loadRequests;
    for (let run = 0; run < runs; run++) {
      const samples: number[] = [];
      for (let r = 0; r < rounds; r++) {
        const stop = r % 2 === 0;
        await sleep(10 + Math.random() * 30); // no phase lock with the probe loop
        const written = performance.now();
        api.apply(sliceOf(slice, pod, 'cart', stop ? STOPPED : READY));
        for (let probes = 0; ; probes++) {
          const res = await send(0, cookie);
          const at = target(res);
          if (at !== undefined && (stop ? at !== pinned : at === pinned)) {
            samples.push(performance.now() - written);
            break;
          }
          if (performance.now() - written > 10_000) throw new Error(`change not seen after 10 s (round ${r}, ${probes} probes, target ${at})`);
        }
      }
      p50s.push(percentile(samples, 50));
      p99s.push(percentile(samples, 99));
      max = Math.max(max, ...samples);
      say(`  run ${run + 1}: p50 ${fmt.ms(p50s.at(-1)!, 2)}, p99 ${fmt.ms(p99s.at(-1)!, 2)}, max ${fmt.ms(Math.max(...samples), 2)}`);
    }
    const loadPerSec = (loadRequests - loadAtStart) / ((performance.now() - loadStart) / 1000);
    return { runs, rounds, loadWorkers, p50Ms: median(p50s), p99Ms: median(p99s), maxMs: max, loadPerSec };
  } finally {
    stopLoad = true;
    await kong?.stop();
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

export function printPropagation(r: PropagationResult): void {
  printTable(
    `Part 5: watch propagation through the real plugin server: API server write -> the decision Kong gets (${SLICES * PER_SLICE} endpoints, ${r.runs} runs of ${r.rounds} changes, ${r.loadWorkers} workers of pinned traffic alongside at ${fmt.rate(r.loadPerSec)})`,
    ['p50', 'p99', 'max'],
    [[fmt.ms(r.p50Ms, 2), fmt.ms(r.p99Ms, 2), fmt.ms(r.maxMs, 2)]],
  );
}

export function propagationTargets(r: PropagationResult): TargetRow[] {
  return [{ part: '5', what: 'watch propagation p99, real plugin server (decision probe)', measured: fmt.ms(r.p99Ms, 2), target: '< 50 ms', verdict: verdict(r.p99Ms < 50) }];
}

if (isMain(import.meta)) {
  const result = await benchPropagation({
    runs: numberOption('runs', 3),
    rounds: numberOption('rounds', 100),
    loadWorkers: numberOption('load-workers', 2),
    log: (line) => process.stderr.write(line + '\n'),
  });
  printPropagation(result);
  const rows = propagationTargets(result);
  printTargets('Part 5 targets (through the plugin server)', rows);
  report(rows);
}
