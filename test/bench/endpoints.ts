/**
 * Endpoint scale and watch propagation (issue 5, parts 3 and 5), through the real watcher
 * and @kubernetes/client-node against the in-test API server:
 *   - a Service with 5,000 endpoints in 50 EndpointSlices;
 *   - one endpoint changing condition: time for the event to become the view, and for the
 *     first decision after it (which rebuilds the token ref index);
 *   - a full relist (410 Gone after an API server restart): time to become the view;
 *   - propagation: API server emits a change -> a decision reflects it.
 */
import { decide } from '../../src/affinity/decide.js';
import { EndpointSliceWatcher } from '../../src/endpoints/kubernetes/watcher.js';
import type { EndpointSnapshot } from '../../src/endpoints/types.js';
import { startKubeApiServer } from '../harness/kube-apiserver.js';
import { DRAINING, endpointSlice, podEndpoint, READY } from '../harness/kube-slices.js';
import { freshState, policy } from './core.js';
import { median } from './report.js';

const SLICES = 50;
const PER_SLICE = 100;

function sliceOf(s: number, drainingPod?: number) {
  return endpointSlice({
    name: `cart-${s}`,
    service: 'cart',
    endpoints: Array.from({ length: PER_SLICE }, (_, i) => {
      const n = s * PER_SLICE + i;
      // 198.18.0.0/15: the benchmarking range, room for every pod.
      return podEndpoint(`cart-${n}`, `198.18.${n >> 8}.${n & 255}`, n === drainingPod ? DRAINING : READY);
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

export interface EndpointScaleResult {
  updateApplyMs: number;
  updateWithIndexMs: number;
  relistMs: number;
  propagationP50Ms: number;
  propagationP99Ms: number;
  samples: number;
}

export async function benchEndpoints(rounds = 200): Promise<EndpointScaleResult> {
  const server = await startKubeApiServer({ bookmarkIntervalMs: 60_000 });
  for (let s = 0; s < SLICES; s++) server.apply(sliceOf(s));
  const watcher = new EndpointSliceWatcher({ namespace: 'shop', service: 'cart', port: 'http' }, { kubeConfig: server.kubeConfig() });
  const state = freshState();
  try {
    await until(() => watcher.current()?.byId.size === SLICES * PER_SLICE, 'first sync');
    const now = Date.now() / 1000;
    const first = decide(undefined, watcher.current(), state, policy, now);
    if (first.kind !== 'new') throw new Error('no session');
    const token = first.token;

    // One endpoint flips between ready and draining, `rounds` times; each change is timed
    // from the API server's write to the first decision that sees it.
    const applyMs: number[] = [];
    const withIndexMs: number[] = [];
    const propagation: number[] = [];
    let emittedAt = 0;
    let seenAt = 0;
    let expectDraining = false;
    const target = 1234;
    const targetId = `uid-cart-${target}`;
    let seen: EndpointSnapshot | undefined;
    const off = watcher.onChange((snap: EndpointSnapshot) => {
      if ((snap.byId.get(targetId)?.condition === 'draining') === expectDraining) {
        seenAt = performance.now();
        seen = snap;
      }
    });
    for (let r = 0; r < rounds; r++) {
      expectDraining = r % 2 === 0;
      seenAt = 0;
      emittedAt = performance.now();
      server.apply(sliceOf(Math.floor(target / PER_SLICE), expectDraining ? target : undefined));
      await until(() => seenAt !== 0, 'endpoint change');
      // The first decision on the new view rebuilds the token ref index: part of the update.
      const t0 = performance.now();
      decide(token, seen, state, policy, now);
      const decideMs = performance.now() - t0;
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

    propagation.sort((a, b) => a - b);
    return {
      updateApplyMs: median(applyMs),
      updateWithIndexMs: median(withIndexMs),
      relistMs: median(relists),
      propagationP50Ms: median(propagation),
      propagationP99Ms: propagation[Math.floor(propagation.length * 0.99)] ?? NaN,
      samples: propagation.length,
    };
  } finally {
    watcher.close();
    await server.stop();
  }
}
