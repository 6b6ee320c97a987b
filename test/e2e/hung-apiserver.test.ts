/**
 * Issue 17, part 1: a hung API server, through the Kong emulator and the real plugin server
 * (two replicas, two workers each, as the image starts them, default timeouts and backoff).
 *
 * The API server stops answering (requests accepted, never answered: a partition that
 * leaves TCP connections open, a hung load balancer), the watches are dropped, it stays
 * hung long enough for any long request timeout to bite (33 s: past one 30 s timeout, in
 * the middle of the next), then it answers again, without resetting the requests it had
 * hung, and a pod goes not-serving. Required: every replica applies that change within
 * 5 s of the release, and until then the last known view keeps serving: no request waits
 * on the API server, no session moves.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STOPPED } from '../harness/kube-slices.js';
import { now, RollingUpdateScenario, sleep, Traffic, type RequestRecord } from '../harness/scenario-rolling-update.js';

const CALL_TIMEOUT_MS = 3000;
const HUNG_MS = 33_000;
const APPLIED_WITHIN_MS = 5_000;

describe('a hung API server', () => {
  let scenario: RollingUpdateScenario;
  let traffic: Traffic;
  const m = {
    during: [] as RequestRecord[],
    after: [] as RequestRecord[],
    viewsDuring: [] as string[],
    requestsWhileHung: 0,
    appliedAfterMs: [] as number[],
    stoppedPod: '',
    decidedAfterMs: Infinity,
  };

  beforeAll(async () => {
    scenario = await RollingUpdateScenario.start({ style: 'explicit', keepRecords: true, callTimeoutMs: CALL_TIMEOUT_MS, seed: 17 });
    traffic = new Traffic(scenario, { sessions: 400, arrivalMs: HUNG_MS + 10_000, requests: [3, 10], thinkMs: [100, 300], longShare: 0.5, concurrency: 12 }).start();
    await scenario.waitSeen();
    await sleep(1_000);
    const pod = scenario.livePods()[0]!;
    m.stoppedPod = pod.uid;
    // A client pinned to that pod, to probe the decision itself once the change is written.
    const probe = scenario.newSession(false);
    for (let i = 0; probe.pin !== pod.uid; i++) {
      if (i > 200) throw new Error('no session landed on the first pod');
      probe.cookie = undefined;
      await scenario.request(probe, { replica: 0, worker: 0 });
    }

    const hungAt = now();
    const requestsBefore = { ...scenario.api.requests };
    scenario.api.hang(true);
    scenario.api.dropWatches();
    const watchingBefore = scenario.records.length;
    while (now() - hungAt < HUNG_MS) {
      await sleep(3_000);
      for (const replica of scenario.replicas) {
        const view = await replica.view();
        m.viewsDuring.push(view ? [...view].map(([id, e]) => `${id}:${e.condition}`).sort().join(' ') : 'none');
      }
    }
    m.requestsWhileHung = scenario.api.requests.list + scenario.api.requests.watch - requestsBefore.list - requestsBefore.watch;
    m.during = scenario.records.slice(watchingBefore);

    // Answering again (the requests it hung stay hung), then the pod stops serving.
    scenario.api.hang(false);
    const releasedAt = now();
    scenario.setConditions(pod, STOPPED);
    const afterMark = scenario.records.length;
    await Promise.all(
      scenario.replicas.map(async (replica) => {
        for (;;) {
          const view = await replica.view();
          if (view && !view.has(pod.uid)) return void m.appliedAfterMs.push(now() - releasedAt);
          if (now() - releasedAt > 60_000) return void m.appliedAfterMs.push(Infinity);
          await sleep(20);
        }
      }),
    );
    // The decision: the probe's cookie, pinned to the stopped pod, is re-pinned.
    for (;;) {
      const r = await scenario.request(probe, { replica: 0, worker: 1, probe: true });
      if (r.target !== undefined && r.target !== pod.uid && r.setCookie !== undefined) {
        m.decidedAfterMs = now() - releasedAt;
        break;
      }
      if (now() - releasedAt > 60_000) break;
      await sleep(20);
    }
    await sleep(1_000);
    m.after = scenario.records.slice(afterMark);
  }, HUNG_MS + 90_000);

  afterAll(async () => {
    await traffic?.stop();
    await scenario?.stop();
  });

  it(`applies a change made after the API server answers again within ${APPLIED_WITHIN_MS / 1000} s, on every replica`, () => {
    process.stderr.write(`hung API server: applied ${m.appliedAfterMs.map((x) => x.toFixed(0)).join(', ')} ms after the release, decided ${m.decidedAfterMs.toFixed(0)} ms; ${m.requestsWhileHung} list/watch requests while hung\n`);
    expect(m.appliedAfterMs).toHaveLength(scenario.replicas.length);
    for (const ms of m.appliedAfterMs) expect(ms, JSON.stringify(m.appliedAfterMs)).toBeLessThan(APPLIED_WITHIN_MS);
    // And the plugin decides by it: the session of the stopped pod is re-pinned.
    expect(m.decidedAfterMs).toBeLessThan(APPLIED_WITHIN_MS);
  });

  it('kept the last known view while hung: every replica, every look, the view it had before', () => {
    const before = m.viewsDuring[0];
    expect(before).toMatch(/ready/);
    expect(new Set(m.viewsDuring)).toEqual(new Set([before]));
  });

  it('served every request meanwhile without waiting on the API server, and moved no session', () => {
    expect(m.during.length).toBeGreaterThan(100);
    expect(m.during.filter((r) => r.violations.length > 0), scenario.violationSamples()).toEqual([]);
    for (const r of m.during) expect(r.end - r.start).toBeLessThan(CALL_TIMEOUT_MS);
    expect(m.during.filter((r) => r.outcome === 'repinned' || r.outcome === 'fail-open' || r.outcome === 'error')).toEqual([]);
  });

  it('kept asking the API server during the hang, with backoff: a request every few seconds per replica, not a burst', () => {
    // Two replicas, one watch each of namespace shop: over 33 s, more than one attempt
    // each (not one 30 s timeout), and no more than one per ~0.5 s each.
    expect(m.requestsWhileHung).toBeGreaterThanOrEqual(2 * scenario.replicas.length);
    expect(m.requestsWhileHung).toBeLessThan((scenario.replicas.length * HUNG_MS) / 500);
  });

  it('afterwards sends nothing to the stopped pod', () => {
    const seenAt = m.decidedAfterMs;
    expect(Number.isFinite(seenAt)).toBe(true);
    expect(m.after.length).toBeGreaterThan(10);
    expect(m.after.filter((r) => r.violations.length > 0), scenario.violationSamples()).toEqual([]);
  });
});
