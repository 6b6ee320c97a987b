/**
 * `npm run bench`: every part of the performance issue, one child process per part (so
 * that no part's heap, JIT state or sockets weigh on another), in this order:
 *
 *   selfcheck    fast paths agree with the plain ones (endpoint view, ref index, MACs)
 *   core         part 2: decisions/s on one core; part 3: decision time at 5,000 endpoints
 *   endpoints    part 3: update / relist of a 5,000-endpoint Service; part 5 in-process
 *   round-trips  PDK round trips per request for every contract row
 *   proxy        part 1: (a) noop, (b) floor, (h) floor + Host work, (c) pinned, (d) new, 1/2/8 workers
 *   memory       part 4: RSS after many sessions, and a short steady run
 *   propagation  part 5: API server write -> decision, through the real plugin server
 *   watch-scale  1,000 watched Services: API-server connections, sync time, RSS, propagation
 *
 * Each part prints its own tables; the summary of every target comes last, with the
 * machine. `--only core,proxy` runs some parts; `--quick` shortens every part (for trying
 * the tooling, not for figures). Plugin-server and watcher logs (pino JSON on stderr) go
 * to a file, named at the end. Needs dist/ (the npm script builds it first).
 */
import { fork } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { flag, machine, option, printTable, type TargetRow } from './report.js';

interface Part {
  readonly name: string;
  readonly file: string;
  readonly args: readonly string[];
  readonly quickArgs: readonly string[];
}

const PARTS: readonly Part[] = [
  { name: 'selfcheck', file: 'selfcheck.ts', args: ['--rounds', '300'], quickArgs: ['--rounds', '50'] },
  { name: 'core', file: 'core.ts', args: ['--runs', '5'], quickArgs: ['--runs', '1'] },
  { name: 'endpoints', file: 'endpoints.ts', args: ['--runs', '3', '--rounds', '200'], quickArgs: ['--runs', '1', '--rounds', '50'] },
  { name: 'round-trips', file: 'round-trips.ts', args: [], quickArgs: [] },
  { name: 'proxy', file: 'proxy.ts', args: ['--seconds', '3', '--runs', '5', '--workers', '1,2,8'], quickArgs: ['--seconds', '1', '--runs', '1', '--workers', '1,8'] },
  {
    name: 'memory',
    file: 'memory.ts',
    args: ['--in-process-sessions', '1000000', '--sessions', '1000000', '--minutes', '1', '--every', '10'],
    quickArgs: ['--in-process-sessions', '200000', '--sessions', '20000', '--minutes', '0.25', '--every', '5'],
  },
  { name: 'propagation', file: 'propagation.ts', args: ['--runs', '3', '--rounds', '100'], quickArgs: ['--runs', '1', '--rounds', '20'] },
  { name: 'watch-scale', file: 'watch-scale.ts', args: ['--services', '1000', '--rounds', '100'], quickArgs: ['--services', '200', '--rounds', '20'] },
];

const here = path.dirname(fileURLToPath(import.meta.url));
const logFile = path.join(os.tmpdir(), `sticky-session-bench-${process.pid}.log`);
const logs = createWriteStream(logFile);

function runPart(part: Part, quick: boolean): Promise<{ rows: TargetRow[]; seconds: number; code: number | null }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = fork(path.join(here, part.file), quick ? part.quickArgs : part.args, {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
    });
    const rows: TargetRow[] = [];
    child.on('message', (m: { kind?: string; rows?: TargetRow[] }) => {
      if (m.kind === 'targets' && m.rows) rows.push(...m.rows);
    });
    // Progress lines through, JSON log lines of the code under test to the log file.
    createInterface({ input: child.stderr! }).on('line', (line) => {
      if (line.startsWith('{')) logs.write(`[${part.name}] ${line}\n`);
      else process.stderr.write(`${line}\n`);
    });
    child.on('error', reject);
    child.on('exit', (code) => resolve({ rows, seconds: (performance.now() - started) / 1000, code }));
  });
}

const only = option('only')?.split(',');
const quick = flag('quick');
const m = machine();
console.log(`sticky-session bench${quick ? ' (--quick: shortened, not for figures)' : ''}`);
console.log(`machine: ${m.cpu}, ${m.cores} cores, ${m.memory} RAM, ${m.os}`);
console.log(`node: ${m.node}; load average at start: ${m.load}; ${new Date().toISOString()}`);

const all: TargetRow[] = [];
const timings: string[][] = [];
let failed = false;
const started = performance.now();
for (const part of PARTS) {
  if (only && !only.includes(part.name)) continue;
  console.log(`\n=== ${part.name} ===`);
  const loadBefore = os.loadavg()[0]!.toFixed(2);
  const r = await runPart(part, quick);
  all.push(...r.rows);
  timings.push([part.name, `${r.seconds.toFixed(0)} s`, loadBefore, os.loadavg()[0]!.toFixed(2), r.code === 0 ? 'ok' : `exit ${r.code}`]);
  if (r.code !== 0) failed = true;
}

console.log('\n=== summary ===');
printTable('Parts (1-min load average before and after: other work on the machine skews figures)', ['part', 'time', 'load before', 'load after', 'status'], timings);
printTable(
  'Every target',
  ['part', 'measure', 'median', 'target', 'result'],
  all.map((r) => [r.part, r.what, r.measured, r.target, r.verdict]),
);
const missed = all.filter((r) => r.verdict === 'MISS').length;
console.log(`\n${all.filter((r) => r.verdict === 'PASS').length} PASS, ${missed} MISS; total ${((performance.now() - started) / 60_000).toFixed(1)} min`);
console.log(`machine: ${m.cpu}, ${m.cores} cores; node ${m.node}; logs of the code under test: ${logFile}`);
logs.end();
process.exitCode = failed ? 1 : 0;
