/**
 * Part 3 (endpoint scale) and part 5 in-process (watch propagation), through the real
 * watcher and @kubernetes/client-node against the in-test API server, in this process:
 *   - a Service with 5,000 endpoints in 50 EndpointSlices;
 *   - one endpoint changing condition: time for the event to become the view (the watcher's
 *     own figure, lastApplyMs: event decoded -> snapshot published), and that plus the first
 *     decision on the new view (which brings the token ref index up to date);
 *   - a full relist (410 Gone after an API server restart): time to become the view;
 *   - propagation: API server writes the change -> a decision reflects it (in-process: the
 *     API server, client-node and the watcher share this process and its event loop).
 * Decision time at 5,000 vs 3 endpoints is measured by core.ts.
 *
 *   npm run bench:endpoints [-- --runs 3 --rounds 200]
 */
import { decide } from '../../src/affinity/decide.js';
import { EndpointSliceWatcher } from '../../src/endpoints/kubernetes/watcher.js';
import type { EndpointSnapshot } from '../../src/endpoints/types.js';
import { startKubeApiServer } from '../harness/kube-apiserver.js';
import { DRAINING, endpointSlice, podEndpoint, READY } from '../harness/kube-slices.js';
import { freshState, policy, releaseStates } from './core.js';
import { fmt, isMain, median, numberOption, percentile, printTable, printTargets, report, verdict, type TargetRow } from './report.js';
import { checkIncrementalEndpoints } from './selfcheck.js';

export const SLICES = 50;
export const PER_SLICE = 100;

/** Slice `s` of the 5,000-endpoint Service `service`; pod `drainingPod` (if any) terminating. */
export function sliceOf(s: number, drainingPod?: number, service = 'cart', conditions = DRAINING) {
  return endpointSlice({
    name: `${service}-${String(s).padStart(2, '0')}`,
    service,
    endpoints: Array.from({ length: PER_SLICE }, (_, i) => {
      const n = s * PER_SLICE + i;
      // 198.18.0.0/15: the benchmarking range, room for every pod.
      return podEndpoint(`${service}-${n}`, `198.18.${n >> 8}.${n & 255}`, n === drainingPod ? conditions : READY);
    }),
  });
}

async function until(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

export interface EndpointScaleRun {
  /** Median and p99 over the rounds of this run (ms). */
  readonly updateApplyMs: number;
  readonly updateApplyP99Ms: number;
  readonly updateWithIndexMs: number;
  readonly relistMs: number;
  readonly propagationP50Ms: number;
  readonly propagationP99Ms: number;
  readonly samples: number;
}

export async function benchEndpointsOnce(rounds = 200): Promise<EndpointScaleRun> {
  const server = await startKubeApiServer({ bookmarkIntervalMs: 60_000, historyLimit: 10_000 });
  for (let s = 0; s < SLICES; s++) server.apply(sliceOf(s));
  const watcher = new EndpointSliceWatcher({ namespace: 'shop', service: 'cart', port: 'http' }, { kubeConfig: server.kubeConfig() });
  const state = freshState();
  try {
    await until(() => watcher.current()?.byId.size === SLICES * PER_SLICE, 'first sync');
    const now = Date.now() / 1000;
    const target = 1234;
    const targetId = `uid-cart-${target}`;
    // A session pinned to the pod that will flip between ready and draining.
    const token = state.codec.issue(targetId, now).token;

    // Each change is timed from the API server's write to the first decision that sees it.
    const applyMs: number[] = [];
    const withIndexMs: number[] = [];
    const propagation: number[] = [];
    let seenAt = 0;
    let expectDraining = false;
    let seen: EndpointSnapshot | undefined;
    const off = watcher.onChange((snap: EndpointSnapshot) => {
      if ((snap.byId.get(targetId)?.condition === 'draining') === expectDraining) {
        seenAt = performance.now();
        seen = snap;
      }
    });
    decide(token, watcher.current(), state, policy, now); // index the first view
    for (let r = 0; r < rounds; r++) {
      expectDraining = r % 2 === 0;
      seenAt = 0;
      const emittedAt = performance.now();
      server.apply(sliceOf(Math.floor(target / PER_SLICE), expectDraining ? target : undefined));
      await until(() => seenAt !== 0, 'endpoint change');
      // The first decision on the new view brings the token ref index up to date: part of the update.
      const t0 = performance.now();
      const d = decide(token, seen, state, policy, now);
      const decideMs = performance.now() - t0;
      if (d.kind !== 'pin' || d.endpoint.condition !== (expectDraining ? 'draining' : 'ready')) throw new Error(`decision did not see the change: ${JSON.stringify(d)}`);
      propagation.push(seenAt - emittedAt + decideMs);
      applyMs.push(watcher.status().lastApplyMs ?? NaN);
      withIndexMs.push((watcher.status().lastApplyMs ?? NaN) + decideMs);
    }
    off();

    // Full relists: an API server restart forgets history, the resumed watch gets 410.
    const relists: number[] = [];
    for (let r = 0; r < 5; r++) {
      const before = watcher.status().lists;
      server.restart();
      await until(() => watcher.status().lists > before && watcher.status().lastRelistMs !== undefined, `relist ${JSON.stringify(watcher.status())}`);
      relists.push(watcher.status().lastRelistMs ?? NaN);
    }

    return {
      updateApplyMs: median(applyMs),
      updateApplyP99Ms: percentile(applyMs, 99),
      updateWithIndexMs: median(withIndexMs),
      relistMs: median(relists),
      propagationP50Ms: percentile(propagation, 50),
      propagationP99Ms: percentile(propagation, 99),
      samples: propagation.length,
    };
  } finally {
    watcher.close();
    releaseStates();
    await server.stop();
  }
}

export interface EndpointScaleResult extends EndpointScaleRun {
  readonly runs: number;
}

/** `runs` runs of `rounds` changes each; every figure is the median of the runs' figures. */
export async function benchEndpoints(runs = 3, rounds = 200): Promise<EndpointScaleResult> {
  const results: EndpointScaleRun[] = [];
  for (let i = 0; i < runs; i++) results.push(await benchEndpointsOnce(rounds));
  const m = (k: keyof EndpointScaleRun) => median(results.map((r) => r[k]));
  return {
    runs,
    updateApplyMs: m('updateApplyMs'),
    updateApplyP99Ms: m('updateApplyP99Ms'),
    updateWithIndexMs: m('updateWithIndexMs'),
    relistMs: m('relistMs'),
    propagationP50Ms: m('propagationP50Ms'),
    propagationP99Ms: m('propagationP99Ms'),
    samples: results.reduce((n, r) => n + r.samples, 0),
  };
}

export function endpointTargets(r: EndpointScaleResult): TargetRow[] {
  return [
    { part: '3', what: 'one endpoint update -> view (watcher lastApplyMs)', measured: fmt.ms(r.updateApplyMs), target: '< 1 ms', verdict: verdict(r.updateApplyMs < 1) },
    { part: '3', what: 'one endpoint update -> view + first decision (ref index)', measured: fmt.ms(r.updateWithIndexMs), target: '< 1 ms', verdict: verdict(r.updateWithIndexMs < 1) },
    { part: '3', what: 'full relist of 5,000 endpoints -> view', measured: fmt.ms(r.relistMs), target: '< 50 ms', verdict: verdict(r.relistMs < 50) },
  ];
}

export function propagationInProcessTargets(r: EndpointScaleResult): TargetRow[] {
  return [
    { part: '5', what: 'watch propagation p99, in-process watcher', measured: fmt.ms(r.propagationP99Ms, 2), target: '< 50 ms', verdict: verdict(r.propagationP99Ms < 50) },
  ];
}

export function printEndpoints(r: EndpointScaleResult): void {
  printTable(
    `Part 3: a Service of ${fmt.int(SLICES * PER_SLICE)} endpoints in ${SLICES} EndpointSlices (median of ${r.runs} runs, ${fmt.int(r.samples)} changes in all)`,
    ['measure', 'median', 'p99'],
    [
      ['one endpoint update: event -> view published', fmt.ms(r.updateApplyMs), fmt.ms(r.updateApplyP99Ms)],
      ['  + first decision on the new view (ref index patched)', fmt.ms(r.updateWithIndexMs), ''],
      ['full relist (410 Gone): list received -> view', fmt.ms(r.relistMs), ''],
      ['propagation, in-process: API server write -> decision', fmt.ms(r.propagationP50Ms, 2), fmt.ms(r.propagationP99Ms, 2)],
    ],
  );
}

if (isMain(import.meta)) {
  const checks = checkIncrementalEndpoints(100);
  console.log(`selfcheck: incremental endpoint view agrees with the full computation (${checks} checks)`);
  const result = await benchEndpoints(numberOption('runs', 3), numberOption('rounds', 200));
  printEndpoints(result);
  const rows = [...endpointTargets(result), ...propagationInProcessTargets(result)];
  printTargets('Part 3 targets (and part 5, in-process)', rows);
  report(rows);
}
