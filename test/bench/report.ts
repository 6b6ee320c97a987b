/**
 * Small helpers shared by the benchmarks: statistics, aligned tables on stdout, verdicts,
 * the machine description, command-line options, and the hand-over of a part's results to
 * the runner (bench.ts) when a part runs as its child process.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Nearest-rank percentile (p in [0, 100]) of values sorted ascending. */
export function percentileSorted(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function percentile(values: readonly number[], p: number): number {
  return percentileSorted(Float64Array.from(values).sort(), p);
}

export function printTable(title: string, header: readonly string[], rows: ReadonlyArray<readonly (string | number)[]>): void {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]) => '| ' + r.map((c, i) => c.padEnd(widths[i]!)).join(' | ') + ' |';
  console.log(`\n${title}\n`);
  console.log(line(cells[0]!));
  console.log('|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|');
  for (const r of cells.slice(1)) console.log(line(r));
}

export const fmt = {
  rate: (n: number) => `${Math.round(n).toLocaleString('en-US')}/s`,
  int: (n: number) => Math.round(n).toLocaleString('en-US'),
  ms: (n: number, digits = 3) => `${n.toFixed(digits)} ms`,
  us: (n: number) => `${n.toFixed(1)} µs`,
  mb: (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MB`,
  pct: (n: number) => `${(n * 100).toFixed(1)}%`,
  ratio: (n: number) => n.toFixed(3),
};

export type Verdict = 'PASS' | 'MISS' | 'info';

export const verdict = (ok: boolean): Verdict => (ok ? 'PASS' : 'MISS');

/** One checked target: what was measured against what was asked. */
export interface TargetRow {
  readonly part: string;
  readonly what: string;
  readonly measured: string;
  readonly target: string;
  readonly verdict: Verdict;
}

export function printTargets(title: string, rows: readonly TargetRow[]): void {
  printTable(
    title,
    ['measure', 'median', 'target', 'result'],
    rows.map((r) => [r.what, r.measured, r.target, r.verdict]),
  );
}

/** The machine, as the README table states it. */
export function machine(): { cpu: string; cores: number; node: string; os: string; memory: string; load: string } {
  let cpu = os.cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m?.[1]) cpu = m[1].trim();
  } catch {
    // not Linux: os.cpus() it is
  }
  return {
    cpu,
    cores: os.availableParallelism(),
    node: process.version,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    memory: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    load: os.loadavg().map((l) => l.toFixed(2)).join(' '),
  };
}

export function printMachine(): void {
  const m = machine();
  console.log(`machine: ${m.cpu}, ${m.cores} cores, ${m.memory} RAM, ${m.os}; Node ${m.node}; load average ${m.load}`);
}

/** `--name value` / `--name=value` / `--flag` from argv. */
export function option(name: string, argv: readonly string[] = process.argv.slice(2)): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === `--${name}`) {
      const next = argv[i + 1];
      return next === undefined || next.startsWith('--') ? 'true' : next;
    }
    if (a.startsWith(`--${name}=`)) return a.slice(name.length + 3);
  }
  return undefined;
}

export function numberOption(name: string, fallback: number): number {
  const v = option(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} wants a positive number, got ${v}`);
  return n;
}

export function flag(name: string): boolean {
  return option(name) !== undefined;
}

/** Hands a part's verdicts to the runner (bench.ts) when run as its child process. */
export function report(rows: readonly TargetRow[]): void {
  process.send?.({ kind: 'targets', rows });
}

/** True when this module is the entry point (`tsx test/bench/<part>.ts`), not imported. */
export function isMain(meta: ImportMeta): boolean {
  const entry = process.argv[1];
  return entry !== undefined && meta.filename !== undefined && (meta.filename === entry || meta.filename.replace(/\.ts$/, '') === entry.replace(/\.ts$/, ''));
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Resident set size of a process in bytes, from /proc/<pid>/status (VmRSS), or undefined. */
export function rssOf(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Least-squares slope of y over x. */
export function slope(xs: readonly number[], ys: readonly number[]): number {
  const n = xs.length;
  if (n < 2) return NaN;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? NaN : num / den;
}
