/**
 * Issue 3: a rolling update through the Kong emulator. Two Kong replicas (two real plugin
 * servers, one secret) with two nginx workers each follow the EndpointSlices of shop/cart
 * in a fake API server while sessions keep sending requests; Deployment v1 (3 pods) is
 * replaced by v2 pod by pod: new pod created, ready; old pod terminating and serving, then
 * not serving, then deleted. Every request is judged against what its replica had SEEN
 * (GET /status), see test/harness/scenario-rolling-update.ts:
 * - zero requests of an existing session leave a serving pod;
 * - zero new sessions land on a terminating pod;
 * - no request goes to a deleted (or not serving) pod after its replica saw it go;
 * - replicas that have seen the same view decide alike for the same cookie (paired probes).
 * Both ways of naming the Service: kubernetes_* fields, and KIC's Kong service host.
 * And before the first sync (API server unreachable) the plugin fails open.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  formatReport,
  RollingUpdateScenario,
  totalViolations,
  Traffic,
  type RequestRecord,
  type ScenarioReport,
} from '../harness/scenario-rolling-update.js';

describe.each(['explicit', 'kic'] as const)('%s config: unreachable API server at start, then a rolling update v1 -> v2 of 3 pods under traffic', (style) => {
  let scenario: RollingUpdateScenario;
  let report: ScenarioReport;
  let records: RequestRecord[];
  /** Requests sent before the API server was reachable. */
  let unsynced: RequestRecord[];
  let unsyncedStatus: Array<{ synced: boolean | undefined; lastError: string | undefined }>;
  const stepLabels: string[] = [];

  beforeAll(async () => {
    scenario = await RollingUpdateScenario.start({ style, apiDownAtStart: true, keepRecords: true, seed: style === 'kic' ? 7 : 3 });

    // 1. Before the first sync: every replica and worker, a new client and one with a cookie
    //    issued elsewhere (a token from another gateway for the same Service).
    const client = scenario.newSession(false);
    unsynced = [];
    for (const replica of scenario.replicas) {
      for (let worker = 0; worker < 2; worker++) {
        unsynced.push(await scenario.send(client, { replica: replica.index, worker }));
        unsynced.push(await scenario.send(client, { replica: replica.index, worker, cookie: FOREIGN_TOKEN, pin: 'uid-unknown' }));
      }
    }
    unsyncedStatus = await Promise.all(
      scenario.replicas.map(async (r) => {
        const svc = await r.service();
        return { synced: svc?.synced, lastError: svc?.lastError?.message };
      }),
    );

    // 2. The API server comes up: both replicas sync by themselves.
    await scenario.api.start();
    await scenario.waitSeen();

    // 3. The rolling update: 160 sessions arrive over it (15 changes x ~0.25 s); some stay to the end.
    const traffic = new Traffic(scenario, { sessions: 160, arrivalMs: 3500, requests: [3, 12], thinkMs: [15, 60], longShare: 0.3, concurrency: 32 }).start();
    await scenario.rollingUpdate({ dwellMs: 220, probes: 6, onStep: (label) => void stepLabels.push(label) });
    await traffic.allStarted();
    await traffic.stop();
    // Every session still holding a cookie asks once more on the final view, on both replicas.
    await scenario.probe(40);
    report = await scenario.report();
    records = scenario.records;
  }, 60_000);

  afterAll(async () => {
    await scenario?.stop();
  });

  it('fails open before the first sync: no target, no Set-Cookie, no hang', () => {
    expect(unsynced).toHaveLength(8);
    for (const r of unsynced) {
      expect(r.outcome).toBe('fail-open');
      expect(r.target).toBeUndefined();
      expect(r.setCookie).toBeUndefined();
      expect(r.status).toBe(200);
      expect(r.end - r.start).toBeLessThan(1000);
      expect(r.violations).toEqual([]);
    }
    // The replicas know they are not synced, and why.
    for (const s of unsyncedStatus) {
      expect(s.synced).toBe(false);
      expect(s.lastError).toBeTruthy();
    }
  });

  it('breaks none of the rules: no session moved off a serving pod, no new session on a terminating pod, nothing sent to a removed pod, replicas agree', () => {
    const table = formatReport(report);
    expect(totalViolations(report), table).toBe(0);
    expect(report.violations).toEqual({ moved: 0, newOnTerminating: 0, deletedPod: 0, disagree: 0, other: 0 });
    // The plugin servers' own counters tell the same story as the judged requests.
    expect(report.metrics?.agree, report.metrics?.detail).toBe(true);
  });

  it('went through every step of the update, each seen by both replicas', () => {
    expect(stepLabels).toHaveLength(15);
    expect(stepLabels.filter((l) => l.includes('-> draining'))).toHaveLength(3);
    expect(stepLabels.filter((l) => l.includes('-> not serving'))).toHaveLength(3);
    expect(stepLabels.filter((l) => l.startsWith('delete cart-v1-'))).toHaveLength(3);
    expect(scenario.livePods().map((p) => p.name).sort()).toEqual(['cart-v2-0', 'cart-v2-1', 'cart-v2-2']);
    for (const replica of scenario.replicas) expect(replica.lastSeen).toBe(scenario.latestChange.index);
  });

  it('exercised what it judges: draining pods kept their sessions, re-pins happened only for sessions of removed pods', () => {
    expect(report.requests).toBeGreaterThan(700);
    expect(report.sessions).toBe(160);
    // Existing sessions were served by a terminating, still serving pod...
    const drainingHits = records.filter((r) => r.outcome === 'pinned-draining');
    expect(drainingHits.length).toBeGreaterThan(0);
    for (const r of drainingHits) expect(r.target).toMatch(/^uid-cart-v1-/);
    // ...and re-pinned once it stopped serving: only sessions of v1 pods, onto a pod ready then.
    const repins = records.filter((r) => r.outcome === 'repinned');
    expect(report.repins.gone).toBeGreaterThan(0);
    expect(report.repins.other).toBe(0);
    for (const r of repins) {
      expect(r.sentPin).toMatch(/^uid-cart-v1-/);
      const views = viewsOf(r);
      // The pod was out of (one of) the views the replica may have used; the new one was ready.
      expect(views.some((v) => !v.has(r.sentPin!))).toBe(true);
      expect(views.some((v) => v.get(r.target!)?.condition === 'ready')).toBe(true);
    }
  });

  it('sent new sessions to ready pods only, also while an old pod was draining', () => {
    const fresh = records.filter((r) => r.outcome === 'new');
    expect(fresh.length).toBeGreaterThan(100);
    let duringDrain = 0;
    for (const r of fresh) {
      const views = viewsOf(r);
      expect(views.some((v) => v.get(r.target!)?.condition === 'ready')).toBe(true);
      if (views.every((v) => [...v.values()].some((e) => e.condition === 'draining'))) duringDrain++;
    }
    expect(duringDrain).toBeGreaterThan(0);
  });

  it('ends with every request on the final view on v2, and both replicas agreeing on every cookie', () => {
    const last = scenario.latestChange.index;
    const final = records.filter((r) => r.views[0] === last && r.target !== undefined);
    expect(final.length).toBeGreaterThan(0);
    for (const r of final) expect(r.target).toMatch(/^uid-cart-v2-/);
    expect(report.probes.compared).toBeGreaterThan(50);
  });

  it('never blocked a request, and failed open only before the first sync', () => {
    for (const r of records) expect(r.violations).toEqual([]);
    expect(report.failOpen).toBe(8);
    for (const r of records.filter((x) => x.outcome === 'fail-open')) {
      const firstSeen = scenario.replicas[r.replica]!.seenAt(0)!;
      expect(r.start).toBeLessThan(firstSeen);
    }
    expect(report.latencyMs.max).toBeLessThan(2000);
  });

  function viewsOf(r: RequestRecord) {
    return scenario.changes.slice(r.views[0], r.views[1] + 1).map((c) => c.view);
  }
});

/** A well-formed token signed with another secret (as another gateway would issue). */
const FOREIGN_TOKEN = 'AWsF2eFrBdnhqCkU5zT6DdpOPhdrEuLwuZkbLuxG92C_n6xLlQ';
