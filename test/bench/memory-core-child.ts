/**
 * Part 4 (i), run by memory.ts as a child process of its own with plain `node --expose-gc`
 * (Node strips the types; no tsx loader thread in the process): the decision core from the
 * BUILT code (dist/, `npx tsc -p .` first), 1,000,000 distinct new sessions on the state a
 * plugin server builds for a service, memory after a full GC every 10%.
 * Sends its result over IPC. Only erasable TypeScript here.
 */
const dist = (p: string): string => new URL(`../../dist/${p}`, import.meta.url).href;
const { decide } = await import(dist('affinity/decide.js'));
const { acquireAffinityState } = await import(dist('affinity/state.js'));
const { makeSnapshot } = await import(dist('endpoints/types.js'));

interface Sample {
  sessions: number;
  rss: number;
  heapUsed: number;
  heapTotal: number;
}

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');
const measure = (sessions: number): Sample => {
  gc();
  const m = process.memoryUsage();
  return { sessions, rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal };
};

const sessions = Number(process.argv[2] ?? 1_000_000);
const endpoints = Array.from({ length: 3 }, (_, i) => ({ id: `pod-uid-${i}`, name: `pod-${i}`, host: `192.0.2.${i}`, port: 8080, condition: 'ready', weight: 1 }));
const snapshot = makeSnapshot(1, endpoints);
const policy = { strict: false, noReadyEndpoint: 'draining', absoluteTimeout: 0, idleTimeout: 0, refreshAfter: 0 };
const baseline = measure(0);
const state = acquireAffinityState({
  binding: 'service:0e3c1c3e-1111-4c4c-9a9a-000000000001',
  secrets: ['bench-secret-0123456789abcdef-0123456789'],
  sourceKey: 'static:bench',
  strategy: 'least-sessions',
  sessionTtlMs: 1800 * 1000,
  failureHoldMs: null,
}).value;
const now = Date.now() / 1000;
const samples: Sample[] = [];
const t0 = performance.now();
for (let i = 1; i <= sessions; i++) {
  if (decide(undefined, snapshot, state, policy, now).kind !== 'new') throw new Error('expected a new session');
  if (i % (sessions / 10) === 0) samples.push(measure(i));
}
const seconds = (performance.now() - t0) / 1000;
const final = measure(sessions);
process.send?.({ kind: 'in-process', result: { sessions, samples, baseline, final, seconds, sessionsHeld: state.sessions.size } }, () => process.disconnect?.());
