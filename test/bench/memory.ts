/**
 * Part 4: memory.
 *   (i)   In-process, in a child process of its own: decide() for 1,000,000 distinct new
 *         sessions (a token issued and remembered, a session counted, each) on the state a
 *         plugin server builds; heap and RSS after a full GC, sampled along the way.
 *   (ii)  The REAL plugin server (served as the image serves it, metrics listener on, so
 *         its heap can be read too) driven through the Kong emulator with 8 workers:
 *         `--sessions` distinct new sessions (default 1,000,000, as issue 5 asks; the
 *         verification cache and the session table are full after 50,000 each), RSS from
 *         /proc/<pid>/status.
 *   (iii) Then a steady run on that same process, `--minutes` long (default 1): half
 *         returning clients, half new sessions; RSS and heap sampled every `--every`
 *         seconds (default 10), and the slope over the run (least squares).
 *
 *   npm run bench:memory [-- --sessions 1000000 --minutes 1]
 *   npm run bench:soak-memory -- --minutes 10          # (iii) alone, 30 s samples
 */
import { execFileSync, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { KongEmulator } from '../harness/kong-emulator.js';
import { withNodeOptions } from './profile.js';
import { SECRET, SERVICE, TARGETS } from './proxy.js';
import { flag, fmt, isMain, numberOption, option, printTable, printTargets, report, rssOf, slope, verdict, type TargetRow } from './report.js';
import { freePort } from '../support/free-port.js';

const MB = 2 ** 20;

// --- (i) in-process ----------------------------------------------------------------------

export interface InProcessSample {
  readonly sessions: number;
  readonly rss: number;
  readonly heapUsed: number;
  readonly heapTotal: number;
}

export interface InProcessResult {
  readonly sessions: number;
  readonly samples: readonly InProcessSample[];
  readonly baseline: InProcessSample;
  readonly final: InProcessSample;
  readonly seconds: number;
  /** Sessions the session table holds at the end (its bound). */
  readonly sessionsHeld: number;
}

/** (i): memory-core-child.ts in a plain Node process of its own, on the built code (dist/). */
export function benchInProcess(sessions = 1_000_000): Promise<InProcessResult> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(new URL('./memory-core-child.ts', import.meta.url)), [String(sessions)], {
      execArgv: ['--expose-gc', ...(process.env.BENCH_CHILD_FLAGS ?? '').split(' ').filter(Boolean)],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let result: InProcessResult | undefined;
    child.on('message', (m: { kind?: string; result?: InProcessResult }) => {
      if (m.kind === 'in-process') result = m.result;
    });
    child.on('error', reject);
    child.on('exit', (code) => (result ? resolve(result) : reject(new Error(`in-process memory child exited ${code}`))));
  });
}

// --- where the idle footprint comes from ----------------------------------------------------

export interface LoadCost {
  readonly what: string;
  readonly rss: number;
  readonly heapUsed: number;
}

/**
 * RSS of fresh plain Node processes (after a full GC) that load, step by step, what the
 * plugin server loads: kong-pdk (whose lib/mod.js would register ts-node, the TypeScript
 * compiler, but for the image's `--require dist/skip-ts-node.cjs`), the plugin (dist/),
 * @kubernetes/client-node once a Kubernetes source opens, prom-client when metrics are on.
 */
export function loadCosts(): LoadCost[] {
  const repo = fileURLToPath(new URL('../../', import.meta.url));
  const pdk = "require(repo + 'dist/skip-ts-node.cjs'); require('kong-pdk/lib/mod.js');";
  const plugin = `${pdk} await import(pathToFileURL(repo + 'dist/handler.js').href);`;
  const steps: Array<[string, string]> = [
    ['node alone', ''],
    ['+ kong-pdk, ts-node skipped (as the image starts it)', pdk],
    ['+ the plugin (dist/handler.js and its imports): static targets', plugin],
    ['+ @kubernetes/client-node (loaded when a Kubernetes source opens)', `${plugin} await import('@kubernetes/client-node');`],
    ['+ prom-client (metrics on)', `${plugin} await import('@kubernetes/client-node'); await import('prom-client');`],
    ['(kong-pdk with ts-node registered: without skip-ts-node.cjs)', "require('kong-pdk/lib/mod.js');"],
  ];
  return steps.map(([what, load]) => {
    const script = [
      "import { createRequire } from 'node:module';",
      "import { pathToFileURL } from 'node:url';",
      `const repo = ${JSON.stringify(repo)};`,
      'const require = createRequire(repo + "package.json");',
      load,
      'gc(); const m = process.memoryUsage(); process.stdout.write(JSON.stringify({ rss: m.rss, heapUsed: m.heapUsed }));',
    ].join('\n');
    const out = execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { cwd: repo, encoding: 'utf8' });
    const m = JSON.parse(out) as { rss: number; heapUsed: number };
    return { what, rss: m.rss, heapUsed: m.heapUsed };
  });
}

// --- (ii) and (iii): the real plugin server ------------------------------------------------

/** Heap used by the plugin server, from its own metrics (prom-client's default metrics). */
async function heapUsedOf(metricsPort: number): Promise<number | undefined> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const m = /^sticky_session_nodejs_heap_size_used_bytes (\S+)$/m.exec(text);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

export interface MemorySample {
  readonly seconds: number;
  readonly requests: number;
  readonly sessions: number;
  readonly rss: number;
  readonly heapUsed: number | undefined;
}

export interface ServerMemoryResult {
  readonly startRss: number;
  readonly sessions: number;
  readonly fill: readonly MemorySample[];
  readonly afterSessions: MemorySample;
  readonly steady: readonly MemorySample[];
  readonly steadyMinutes: number;
  /** MB per minute over the whole steady run. */
  readonly rssSlope: number;
  readonly heapSlope: number;
  /** MB per minute over its second half: V8 still grows its heap for minutes after the caches are full. */
  readonly rssSlopeLate: number;
  readonly maxRss: number;
}

export class ServerUnderLoad {
  private constructor(
    readonly kong: KongEmulator,
    readonly metricsPort: number,
    private readonly workers: number,
  ) {}

  /**
   * `nodeOptions`: NODE_OPTIONS for the plugin server (an experiment: the image sets none;
   * passed the way a deployment would, with an `env NODE_OPTIONS` directive).
   */
  static async start(workers = 8, nodeOptions?: string): Promise<ServerUnderLoad> {
    const metricsPort = await freePort();
    // The image's KONG_NGINX_MAIN_ENV declares STICKY_SESSION_METRICS_PORT.
    const kong = await KongEmulator.start(withNodeOptions({ useDockerfile: true, workers, env: { STICKY_SESSION_METRICS_PORT: String(metricsPort) } }, nodeOptions));
    kong.addPlugin({ service: SERVICE.id, config: { secrets: [SECRET], targets: TARGETS } });
    return new ServerUnderLoad(kong, metricsPort, workers);
  }

  get pid(): number {
    const pid = this.kong.serverPid;
    if (pid === undefined) throw new Error('plugin server not running');
    return pid;
  }

  async sample(started: number, requests: number, sessions: number): Promise<MemorySample> {
    return { seconds: (performance.now() - started) / 1000, requests, sessions, rss: rssOf(this.pid) ?? NaN, heapUsed: await heapUsedOf(this.metricsPort) };
  }

  /** Recently issued tokens, for returning clients. */
  private readonly recent: string[] = [];
  requests = 0;
  sessions = 0;

  /**
   * Closed loop on every worker until `stop()` says so; `returning` is the share of
   * requests that come back with a recent token (the rest start new sessions).
   */
  async run(stop: () => boolean, returning: number): Promise<void> {
    let rnd = 12345;
    const next = () => ((rnd = (Math.imul(rnd, 1103515245) + 12345) >>> 0) / 2 ** 32);
    await Promise.all(
      Array.from({ length: this.workers }, async (_, w) => {
        while (!stop()) {
          const back = this.recent.length > 0 && next() < returning;
          const cookie = back ? this.recent[Math.floor(next() * this.recent.length)] : undefined;
          const r = await this.kong.request({ service: SERVICE, ...(cookie ? { headers: { cookie } } : {}) }, { worker: w, log: false });
          this.requests++;
          if (!r.target) throw new Error(`request not pinned: ${JSON.stringify({ status: r.status, error: r.error })}`);
          const set = r.responseHeaders['set-cookie']?.[0];
          if (set) {
            this.sessions++;
            const c = set.split(';')[0]!;
            if (this.recent.length < 10_000) this.recent.push(c);
            else this.recent[this.sessions % 10_000] = c;
          }
        }
      }),
    );
  }

  stop(): Promise<void> {
    return this.kong.stop();
  }
}

/** Linear regression slope of `pick` over the samples, per minute, in MB. */
function slopePerMinute(samples: readonly MemorySample[], pick: (s: MemorySample) => number | undefined): number {
  const pts = samples.filter((s) => pick(s) !== undefined);
  return slope(pts.map((s) => s.seconds / 60), pts.map((s) => pick(s)! / MB));
}

export async function benchServerMemory(
  opts: { sessions?: number; minutes?: number; everySeconds?: number; nodeOptions?: string; log?: (line: string) => void } = {},
): Promise<ServerMemoryResult> {
  const sessions = opts.sessions ?? 1_000_000;
  const minutes = opts.minutes ?? 1;
  const every = (opts.everySeconds ?? 10) * 1000;
  const say = opts.log ?? (() => {});
  const server = await ServerUnderLoad.start(8, opts.nodeOptions);
  try {
    // Let the first instance start and the metrics listener come up.
    await server.kong.request({ service: SERVICE }, { worker: 0, log: false });
    const t0 = performance.now();
    const startRss = rssOf(server.pid) ?? NaN;
    const fill: MemorySample[] = [];
    let nextSample = Math.min(sessions, 50_000);
    let maxRss = startRss;
    // (ii) distinct new sessions only.
    const sampler = async () => {
      while (server.sessions < sessions) {
        await new Promise((r) => setTimeout(r, 200));
        if (server.sessions >= nextSample) {
          const s = await server.sample(t0, server.requests, server.sessions);
          fill.push(s);
          maxRss = Math.max(maxRss, s.rss);
          say(`  ${fmt.int(s.sessions)} sessions: RSS ${fmt.mb(s.rss)}, heap ${s.heapUsed ? fmt.mb(s.heapUsed) : '?'} (${s.seconds.toFixed(0)} s)`);
          nextSample = Math.min(sessions, nextSample + Math.max(50_000, sessions / 10));
        }
      }
    };
    await Promise.all([server.run(() => server.sessions >= sessions, 0), sampler()]);
    const afterSessions = await server.sample(t0, server.requests, server.sessions);
    maxRss = Math.max(maxRss, afterSessions.rss);

    // (iii) steady run on the same process.
    const steady: MemorySample[] = [];
    const s0 = performance.now();
    const end = s0 + minutes * 60_000;
    steady.push(await server.sample(s0, server.requests, server.sessions));
    const steadySampler = async () => {
      for (let k = 1; s0 + k * every <= end + 1; k++) {
        await new Promise((r) => setTimeout(r, Math.max(0, s0 + k * every - performance.now())));
        const s = await server.sample(s0, server.requests, server.sessions);
        steady.push(s);
        maxRss = Math.max(maxRss, s.rss);
        say(`  steady ${s.seconds.toFixed(0)} s: RSS ${fmt.mb(s.rss)}, heap ${s.heapUsed ? fmt.mb(s.heapUsed) : '?'}, ${fmt.int(s.sessions)} sessions, ${fmt.int(s.requests)} requests`);
      }
    };
    await Promise.all([server.run(() => performance.now() >= end, 0.5), steadySampler()]);
    return {
      startRss,
      sessions: afterSessions.sessions,
      fill,
      afterSessions,
      steady,
      steadyMinutes: minutes,
      rssSlope: slopePerMinute(steady, (s) => s.rss),
      heapSlope: slopePerMinute(steady, (s) => s.heapUsed),
      rssSlopeLate: slopePerMinute(steady.slice(Math.floor(steady.length / 2)), (s) => s.rss),
      maxRss,
    };
  } finally {
    await server.stop();
  }
}

// --- report ------------------------------------------------------------------------------

export function printLoadCosts(costs: readonly LoadCost[]): void {
  printTable(
    'Part 4: idle footprint, what the plugin server loads (fresh node processes, after GC)',
    ['loaded', 'RSS', 'heap used'],
    costs.map((c) => [c.what, fmt.mb(c.rss), fmt.mb(c.heapUsed)]),
  );
}

export function printMemory(inproc: InProcessResult | undefined, server: ServerMemoryResult | undefined): void {
  if (inproc) {
    printTable(
      `Part 4 (i): decision core alone (built code, plain node, process of its own), ${fmt.int(inproc.sessions)} distinct new sessions at ${fmt.int(inproc.sessions / inproc.seconds)}/s; after a full GC; ${fmt.int(inproc.sessionsHeld)} sessions held at the end`,
      ['sessions', 'RSS', 'heap used', 'heap total'],
      [inproc.baseline, ...inproc.samples].map((s) => [fmt.int(s.sessions), fmt.mb(s.rss), fmt.mb(s.heapUsed), fmt.mb(s.heapTotal)]),
    );
  }
  if (server) {
    printTable(
      `Part 4 (ii): the real plugin server (image commands and env, metrics on), ${fmt.int(server.sessions)} distinct new sessions through the emulator, 8 workers`,
      ['after', 'sessions', 'RSS (/proc)', 'heap used (metrics)'],
      [
        ['start', '0', fmt.mb(server.startRss), ''],
        ...server.fill.map((s) => [`${s.seconds.toFixed(0)} s`, fmt.int(s.sessions), fmt.mb(s.rss), s.heapUsed ? fmt.mb(s.heapUsed) : '?']),
      ],
    );
    printTable(
      `Part 4 (iii): steady run on the same process, ${server.steadyMinutes} min, half returning clients, half new sessions`,
      ['at', 'requests', 'sessions', 'RSS', 'heap used'],
      server.steady.map((s) => [`${s.seconds.toFixed(0)} s`, fmt.int(s.requests), fmt.int(s.sessions), fmt.mb(s.rss), s.heapUsed ? fmt.mb(s.heapUsed) : '?']),
    );
    console.log(
      `\nslope over the steady run: RSS ${server.rssSlope.toFixed(2)} MB/min (second half ${server.rssSlopeLate.toFixed(2)} MB/min), heap used ${server.heapSlope.toFixed(2)} MB/min (sampled between collections: noisy)`,
    );
  }
}

export function memoryTargets(inproc: InProcessResult | undefined, server: ServerMemoryResult | undefined): TargetRow[] {
  const rows: TargetRow[] = [];
  if (inproc) {
    const at100k = inproc.samples[0]!;
    // Bounded: after a full GC, the live heap at the end is what it was after the first tenth.
    const bounded = inproc.final.heapUsed <= at100k.heapUsed + MB;
    rows.push(
      { part: '4', what: `decision core live heap: ${fmt.int(at100k.sessions)} -> ${fmt.int(inproc.sessions)} sessions (own process, after GC)`, measured: `${fmt.mb(at100k.heapUsed)} -> ${fmt.mb(inproc.final.heapUsed)}`, target: 'no growth (bounded)', verdict: verdict(bounded) },
      { part: '4', what: `decision core process RSS after ${fmt.int(inproc.sessions)} sessions (V8 default heap sizing)`, measured: fmt.mb(inproc.final.rss), target: '(info)', verdict: 'info' },
    );
  }
  if (server) {
    const long = server.steadyMinutes >= 5;
    rows.push(
      { part: '4', what: `plugin server RSS after ${fmt.int(server.sessions)} sessions`, measured: fmt.mb(server.afterSessions.rss), target: '< 150 MB', verdict: verdict(server.afterSessions.rss < 150 * MB) },
      { part: '4', what: 'plugin server peak RSS, whole run', measured: fmt.mb(server.maxRss), target: '< 150 MB', verdict: verdict(server.maxRss < 150 * MB) },
      {
        part: '4',
        what: `RSS slope, second half of a ${server.steadyMinutes} min steady run${long ? '' : ' (too short for a verdict: bench:soak-memory -- --minutes 10)'}`,
        measured: `${server.rssSlopeLate.toFixed(2)} MB/min`,
        target: long ? '<= 1 MB/min' : '(info)',
        verdict: long ? verdict(server.rssSlopeLate <= 1) : 'info',
      },
    );
  }
  return rows;
}

if (isMain(import.meta)) {
  const soakOnly = flag('soak');
  const log = (line: string) => process.stderr.write(line + '\n');
  const inproc = soakOnly ? undefined : await benchInProcess(numberOption('in-process-sessions', 1_000_000));
  const server = await benchServerMemory({
    sessions: numberOption('sessions', soakOnly ? 100_000 : 1_000_000),
    minutes: numberOption('minutes', 1),
    everySeconds: numberOption('every', soakOnly ? 30 : 10),
    ...(option('node-options') ? { nodeOptions: option('node-options')! } : {}),
    log,
  });
  if (!soakOnly) printLoadCosts(loadCosts());
  printMemory(inproc, server);
  const rows = memoryTargets(inproc, server);
  printTargets('Part 4 targets', rows);
  report(rows);
}
