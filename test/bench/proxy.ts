/**
 * Part 1: added cost per proxied request, through the REAL kong-js-pluginserver and the Kong
 * emulator (test/harness/kong-emulator.ts), side by side:
 *   (a) noop      a plugin whose access phase does nothing          (test/fixtures/noop)
 *   (b) floor     read one cookie, setTarget: the protocol floor     (test/fixtures/floor)
 *   (h) floor + Host: (b) plus the Host work of a plugin that calls set_target (read
 *                 $upstream_host, set Host back): the floor (c), (d), (e) are compared with
 *                                                                    (test/fixtures/floor-host)
 *   (c) pinned    sticky-session, valid token, ready pod (common path)
 *   (d) new       sticky-session, no token: a new session is issued
 *   (e) new, cookie_secure set: as (d) with the Secure attribute configured instead of
 *                 read from the request (one PDK call less); not a target, for comparison
 * Every request is on a route with preserve_host (KIC's default), where the Host work costs
 * most: two PDK calls per routed request for every plugin but (a) and (b).
 * sticky-session is served exactly as the image serves it (Dockerfile commands and env),
 * with static targets, so (c) and (d) do not depend on Kubernetes.
 *
 * N concurrent emulated nginx workers (1, 2, 8), each with its own connection pool, send
 * requests back to back (closed loop) for a fixed time; every cell is run `runs` times,
 * the variants interleaved in a rotating order within each run, so (c) and (d) are compared
 * with the (b) of the same run. Figures are medians over the runs; ratios are per run,
 * then the median. Round trips per request (socket request/response pairs Kong makes for
 * the access phase) and the plugin server's CPU time per request are printed beside them.
 *
 *   npm run bench:proxy [-- --seconds 3 --runs 3 --workers 1,2,8]
 *   npm run bench:proxy -- --node-options "--max-semi-space-size=2"    # V8 flags for all three servers
 *   npm run bench:proxy -- --profile d --workers 8 --seconds 5          # CPU profile of a variant's server
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KongEmulator, type RequestResult } from '../harness/kong-emulator.js';
import type { EmulatedRequest } from '../harness/pdk.js';
import { profileServer, saveProfile, summarizeProfile, withNodeOptions } from './profile.js';
import { fmt, isMain, median, numberOption, option, percentileSorted, printTable, printTargets, report, verdict, type TargetRow } from './report.js';

export const SECRET = 'bench-secret-0123456789abcdef0123456789';
export const SERVICE = { id: '0e3c1c3e-1111-4c4c-9a9a-00000000be4c', name: 'shop', host: 'shop.internal', port: 80, protocol: 'http' };
export const TARGETS = ['192.0.2.10:8080', '192.0.2.11:8080', '192.0.2.12:8080'];
const COOKIE = 'sticky_session';

type VariantKey = 'a' | 'b' | 'h' | 'c' | 'd' | 'e';
const KEYS: readonly VariantKey[] = ['a', 'b', 'h', 'c', 'd', 'e'];
/** The route every request matched: preserve_host, as KIC sets it. */
export const ROUTE = { id: '0e3c1c3e-1111-4c4c-9a9a-00000000be4f', name: 'shop', preserve_host: true };
const CLIENT_HOST = 'shop.example';
export const SERVICE_E = { ...SERVICE, id: '0e3c1c3e-1111-4c4c-9a9a-00000000be4e', name: 'shop-e' };

interface Variant {
  readonly key: VariantKey;
  readonly label: string;
  readonly kong: KongEmulator;
  /** Plugin entity, when the emulator has several. */
  readonly plugin?: string;
  /** The request a worker sends next. */
  readonly next: (worker: number, i: number) => EmulatedRequest;
  /** Throws when the result is not what this variant must produce. */
  readonly check: (r: RequestResult) => void;
}

interface Cell {
  readonly requests: number;
  readonly seconds: number;
  readonly perSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly roundTrips: number;
  /** Plugin-server CPU time per request (user + system), µs. */
  readonly serverCpuUs: number;
}

/** utime + stime of a process, in seconds, from /proc/<pid>/stat. */
function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // CLK_TCK is 100 on Linux
  } catch {
    return NaN;
  }
}

/** `workers` closed loops for `ms`; latencies of every request. */
async function drive(v: Variant, workers: number, ms: number): Promise<Cell> {
  // A typed buffer, not an array of boxed numbers: the measuring process should not add
  // garbage collections of its own to the latencies it measures.
  let latencies = new Float64Array(1 << 17);
  let count = 0;
  const roundTrips: number[] = [];
  const cpu0 = cpuSeconds(v.kong.serverPid);
  const started = performance.now();
  const end = started + ms;
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      for (let i = 0; performance.now() < end; i++) {
        const req = v.next(w, i);
        const t0 = performance.now();
        const r = await v.kong.request(req, { worker: w, log: false, ...(v.plugin ? { plugin: v.plugin } : {}) });
        if (count === latencies.length) {
          const grown = new Float64Array(count * 2);
          grown.set(latencies);
          latencies = grown;
        }
        latencies[count++] = performance.now() - t0;
        if (i % 64 === 0) {
          v.check(r);
          roundTrips.push(r.roundTrips);
        }
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const cpu = cpuSeconds(v.kong.serverPid) - cpu0;
  const sorted = latencies.subarray(0, count).sort();
  return {
    requests: count,
    seconds,
    perSec: count / seconds,
    p50Ms: percentileSorted(sorted, 50),
    p99Ms: percentileSorted(sorted, 99),
    roundTrips: median(roundTrips),
    serverCpuUs: (cpu / count) * 1e6,
  };
}

export interface ProxyResult {
  readonly seconds: number;
  readonly runs: number;
  readonly workers: readonly number[];
  readonly labels: Record<VariantKey, string>;
  /** [workers][variant] -> median cell. */
  readonly cells: Record<number, Record<VariantKey, Cell>>;
  /** [workers] -> median over runs of per-run ratios vs (h), the floor with the Host work; b: (b) vs (h). */
  readonly ratios: Record<number, { bThroughput: number; bP99: number; cThroughput: number; cP99: number; dThroughput: number; dP99: number; eThroughput: number; eP99: number }>;
  /** PDK calls per request of each variant, as the emulator answered them. */
  readonly pdkCalls: Record<VariantKey, string[]>;
}

export async function startVariants(maxWorkers: number, nodeOptions?: string): Promise<{ variants: Variant[]; stop: () => Promise<void> }> {
  // One plugin server per workload, like (a) and (b): the pinned path is measured in a
  // process serving returning clients, not one whose heap (d)'s new sessions keep growing.
  const [noop, floor, floorHost, sticky, stickyNew] = await Promise.all([
    KongEmulator.start(withNodeOptions({ pluginsDir: 'test/fixtures/noop', workers: maxWorkers }, nodeOptions)),
    KongEmulator.start(withNodeOptions({ pluginsDir: 'test/fixtures/floor', workers: maxWorkers }, nodeOptions)),
    KongEmulator.start(withNodeOptions({ pluginsDir: 'test/fixtures/floor-host', workers: maxWorkers }, nodeOptions)),
    KongEmulator.start(withNodeOptions({ useDockerfile: true, workers: maxWorkers }, nodeOptions)),
    KongEmulator.start(withNodeOptions({ useDockerfile: true, workers: maxWorkers }, nodeOptions)),
  ]);
  const stop = async () => {
    await Promise.all([noop, floor, floorHost, sticky, stickyNew].map((k) => k.stop()));
  };
  try {
    noop.addPlugin({ service: SERVICE.id });
    floor.addPlugin({ service: SERVICE.id, config: { cookie_name: COOKIE, target_host: '192.0.2.10', target_port: 8080 } });
    floorHost.addPlugin({ service: SERVICE.id, config: { cookie_name: COOKIE, target_host: '192.0.2.10', target_port: 8080 } });
    const pluginC = sticky.addPlugin({ service: SERVICE.id, config: { secrets: [SECRET], targets: TARGETS } }).id;
    const pluginD = stickyNew.addPlugin({ service: SERVICE.id, config: { secrets: [SECRET], targets: TARGETS } }).id;
    const pluginE = stickyNew.addPlugin({ service: SERVICE_E.id, config: { secrets: [SECRET], targets: TARGETS, cookie_secure: false } }).id;

    // Returning clients: 1,000 sessions issued by the plugin itself, each seen once before.
    const tokens: string[] = [];
    for (let i = 0; i < 1000; i++) {
      const r = await sticky.request({ service: SERVICE, route: ROUTE, host: CLIENT_HOST }, { worker: i % maxWorkers, log: false, plugin: pluginC });
      const cookie = r.responseHeaders['set-cookie']?.[0]?.split(';')[0];
      if (!r.target || !cookie?.startsWith(`${COOKIE}=`)) throw new Error(`sticky-session issued no session: ${JSON.stringify(r.logs)}`);
      tokens.push(cookie);
    }
    const cookieOf = (w: number, i: number) => tokens[(w * 7919 + i) % tokens.length]!;
    const targetSet = (r: RequestResult) => {
      if (!r.target || r.status !== 200 || r.error) throw new Error(`no target set: ${JSON.stringify({ status: r.status, error: r.error, logs: r.logs })}`);
    };
    /** (h), (c), (d), (e): the upstream gets the client's Host, as Kong sends it without a plugin. */
    const hostKept = (r: RequestResult) => {
      targetSet(r);
      if (r.upstreamHost !== CLIENT_HOST) throw new Error(`the upstream got Host ${r.upstreamHost}, not ${CLIENT_HOST}`);
    };
    const req = (headers?: Record<string, string>, service: typeof SERVICE = SERVICE): EmulatedRequest => ({ service, route: ROUTE, host: CLIENT_HOST, ...(headers ? { headers } : {}) });
    const variants: Variant[] = [
      {
        key: 'a',
        label: '(a) no-op plugin',
        kong: noop,
        next: (w, i) => req({ cookie: cookieOf(w, i) }),
        check: (r) => {
          if (r.target || r.status !== 200 || r.error) throw new Error('noop misbehaved');
        },
      },
      { key: 'b', label: '(b) floor: get cookie + setTarget', kong: floor, next: (w, i) => req({ cookie: cookieOf(w, i) }), check: targetSet },
      { key: 'h', label: '(h) floor + Host: (b) + get_var, set_header', kong: floorHost, next: (w, i) => req({ cookie: cookieOf(w, i) }), check: hostKept },
      {
        key: 'c',
        label: '(c) sticky-session, valid token',
        kong: sticky,
        plugin: pluginC,
        next: (w, i) => req({ cookie: cookieOf(w, i) }),
        check: (r) => {
          hostKept(r);
          if (r.responseHeaders['set-cookie']) throw new Error('a valid token got a new cookie');
        },
      },
      {
        key: 'd',
        label: '(d) sticky-session, new session',
        kong: stickyNew,
        plugin: pluginD,
        next: () => req(),
        check: (r) => {
          hostKept(r);
          if (!r.responseHeaders['set-cookie']) throw new Error('a new session got no cookie');
        },
      },
      {
        key: 'e',
        label: '(e) as (d), cookie_secure configured',
        kong: stickyNew,
        plugin: pluginE,
        next: () => req(undefined, SERVICE_E),
        check: (r) => {
          hostKept(r);
          if (!r.responseHeaders['set-cookie']) throw new Error('a new session got no cookie');
        },
      },
    ];
    return { variants, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

export interface ProxyOptions {
  seconds?: number;
  runs?: number;
  workers?: readonly number[];
  /** NODE_OPTIONS for every plugin server (an experiment: the image sets none). */
  nodeOptions?: string;
  log?: (line: string) => void;
}

export async function benchProxy(opts: ProxyOptions = {}): Promise<ProxyResult> {
  const seconds = opts.seconds ?? 3;
  const runs = opts.runs ?? 3;
  const workerCounts = opts.workers ?? [1, 2, 8];
  const say = opts.log ?? (() => {});
  const { variants, stop } = await startVariants(Math.max(...workerCounts), opts.nodeOptions);
  try {
    const pdkCalls = {} as Record<VariantKey, string[]>;
    for (const v of variants) {
      const r = await v.kong.request(v.next(0, 0), { worker: 0, log: false, ...(v.plugin ? { plugin: v.plugin } : {}) });
      pdkCalls[v.key] = r.pdkCalls.map((c) => c.method);
    }
    const cells: ProxyResult['cells'] = {};
    const ratios: ProxyResult['ratios'] = {};
    for (const n of workerCounts) {
      for (const v of variants) await drive(v, n, 500); // warm-up: JIT, pools, instances
      const perRun: Array<Record<VariantKey, Cell>> = [];
      for (let run = 0; run < runs; run++) {
        const got = {} as Record<VariantKey, Cell>;
        // Rotate the order every run so that drift does not favour one variant.
        for (let k = 0; k < variants.length; k++) {
          const v = variants[(k + run) % variants.length]!;
          got[v.key] = await drive(v, n, seconds * 1000);
          say(`  workers=${n} run=${run + 1} ${v.label}: ${fmt.rate(got[v.key].perSec)} p99 ${fmt.ms(got[v.key].p99Ms)}`);
        }
        perRun.push(got);
      }
      const med = (key: VariantKey, f: keyof Cell) => median(perRun.map((r) => r[key][f]));
      const cell = (key: VariantKey): Cell => ({
        requests: med(key, 'requests'),
        seconds: med(key, 'seconds'),
        perSec: med(key, 'perSec'),
        p50Ms: med(key, 'p50Ms'),
        p99Ms: med(key, 'p99Ms'),
        roundTrips: med(key, 'roundTrips'),
        serverCpuUs: med(key, 'serverCpuUs'),
      });
      cells[n] = { a: cell('a'), b: cell('b'), h: cell('h'), c: cell('c'), d: cell('d'), e: cell('e') };
      const vsH = (key: VariantKey, f: 'perSec' | 'p99Ms') => median(perRun.map((r) => r[key][f] / r.h[f]));
      ratios[n] = {
        bThroughput: vsH('b', 'perSec'),
        bP99: vsH('b', 'p99Ms'),
        cThroughput: vsH('c', 'perSec'),
        cP99: vsH('c', 'p99Ms'),
        dThroughput: vsH('d', 'perSec'),
        dP99: vsH('d', 'p99Ms'),
        eThroughput: vsH('e', 'perSec'),
        eP99: vsH('e', 'p99Ms'),
      };
    }
    const labels = Object.fromEntries(variants.map((v) => [v.key, v.label])) as Record<VariantKey, string>;
    return { seconds, runs, workers: workerCounts, labels, cells, ratios, pdkCalls };
  } finally {
    await stop();
  }
}

/** CPU profile of the plugin server of variant `key` under `workers` closed loops for `seconds`. */
export async function profileVariant(key: VariantKey, workers: number, seconds: number, nodeOptions?: string): Promise<{ file: string; summary: string; cell: Cell }> {
  const { variants, stop } = await startVariants(workers, `${nodeOptions ?? ''} --inspect=127.0.0.1:0`.trim());
  try {
    const v = variants.find((x) => x.key === key);
    if (!v) throw new Error(`no variant ${key} (${KEYS.join(', ')})`);
    await drive(v, workers, 1000);
    let cell: Cell | undefined;
    const profile = await profileServer(v.kong, async () => {
      cell = await drive(v, workers, seconds * 1000);
    });
    const file = path.join(os.tmpdir(), `sticky-session-bench-${key}-${workers}w-${process.pid}.cpuprofile`);
    saveProfile(profile, file);
    return { file, summary: summarizeProfile(profile), cell: cell! };
  } finally {
    await stop();
  }
}

export function printProxy(r: ProxyResult): void {
  const rows: string[][] = [];
  for (const n of r.workers) {
    const c = r.cells[n]!;
    const q = r.ratios[n]!;
    const vs: Record<VariantKey, string> = {
      a: '',
      b: `${fmt.ratio(q.bThroughput)} / ${fmt.ratio(q.bP99)}`,
      h: '1 / 1',
      c: `${fmt.ratio(q.cThroughput)} / ${fmt.ratio(q.cP99)}`,
      d: `${fmt.ratio(q.dThroughput)} / ${fmt.ratio(q.dP99)}`,
      e: `${fmt.ratio(q.eThroughput)} / ${fmt.ratio(q.eP99)}`,
    };
    for (const key of KEYS) {
      const x = c[key];
      rows.push([String(n), r.labels[key], fmt.rate(x.perSec), fmt.ms(x.p50Ms), fmt.ms(x.p99Ms), vs[key], String(x.roundTrips), fmt.us(x.serverCpuUs)]);
    }
  }
  printTable(
    `Part 1: through the real plugin server and the Kong emulator, closed loop, ${r.seconds} s per cell, median of ${r.runs} interleaved runs`,
    ['workers', 'variant', 'requests/s', 'p50', 'p99', 'vs (h): rate / p99', 'round trips', 'server CPU/req'],
    rows,
  );
  console.log('\nEvery request on a preserve_host route. "vs (h)": median over runs of the ratio within each run. Round trips: socket request/response pairs of the access phase.');
  console.log('PDK calls per request (access phase):');
  for (const key of KEYS) console.log(`  ${r.labels[key]}: ${r.pdkCalls[key].join(', ') || '(none)'}`);
}

export function proxyTargets(r: ProxyResult): TargetRow[] {
  const rows: TargetRow[] = [];
  const pct = (x: number) => fmt.ratio(x);
  // Round trips dominate a request's cost (see server CPU/req), so a variant making more of
  // them than (h) stays near (h)'s rate times their ratio, whatever its own code costs.
  const withTripRatio = (ratio: number, key: 'd' | 'e', n: number) => {
    const { h, [key]: v } = r.cells[n]!;
    return `${pct(ratio)} (round trips ${h.roundTrips}/${v.roundTrips} = ${fmt.ratio(h.roundTrips / v.roundTrips)})`;
  };
  for (const n of r.workers) {
    const q = r.ratios[n]!;
    rows.push(
      { part: '1', what: `${n} worker(s): (c) throughput / (h)`, measured: pct(q.cThroughput), target: '>= 0.90', verdict: verdict(q.cThroughput >= 0.9) },
      { part: '1', what: `${n} worker(s): (c) p99 / (h)`, measured: pct(q.cP99), target: '<= 1.10', verdict: verdict(q.cP99 <= 1.1) },
      { part: '1', what: `${n} worker(s): (d) throughput / (h)`, measured: withTripRatio(q.dThroughput, 'd', n), target: '>= 0.75', verdict: verdict(q.dThroughput >= 0.75) },
      { part: '1', what: `${n} worker(s): (d) p99 / (h)`, measured: pct(q.dP99), target: '<= 1.25', verdict: verdict(q.dP99 <= 1.25) },
      { part: '1', what: `${n} worker(s): (e) = (d) with cookie_secure set, throughput / (h)`, measured: withTripRatio(q.eThroughput, 'e', n), target: '(info)', verdict: 'info' },
    );
  }
  return rows;
}

if (isMain(import.meta)) {
  const workers = (option('workers') ?? '1,2,8').split(',').map(Number);
  const nodeOptions = option('node-options');
  const profile = option('profile');
  if (profile) {
    const r = await profileVariant(profile as VariantKey, Math.max(...workers), numberOption('seconds', 5), nodeOptions);
    console.log(`plugin server of (${profile}), ${Math.max(...workers)} workers: ${fmt.rate(r.cell.perSec)}, p99 ${fmt.ms(r.cell.p99Ms)}, server CPU ${fmt.us(r.cell.serverCpuUs)}/request (inspector attached)`);
    console.log(`profile: ${r.file}\n${r.summary}`);
  } else {
    if (nodeOptions) console.log(`NODE_OPTIONS for every plugin server: ${nodeOptions}`);
    const result = await benchProxy({
      seconds: numberOption('seconds', 3),
      runs: numberOption('runs', 3),
      workers,
      ...(nodeOptions ? { nodeOptions } : {}),
      log: (line) => process.stderr.write(line + '\n'),
    });
    printProxy(result);
    const rows = proxyTargets(result);
    printTargets('Part 1 targets (ratios: median over runs of the same-run ratio)', rows);
    report(rows);
  }
}
