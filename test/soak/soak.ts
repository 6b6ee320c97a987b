/**
 * The reliability soak (issue 6): the Kong emulator drives thousands of sessions through
 * repeated rolling updates of a 3-pod Deployment (new pod ready, old pod terminating and
 * serving, then not serving, then deleted) with two plugin-server replicas sharing one
 * secret, and prints a table: requests, sessions, re-pins by reason, and violations
 * (existing session moved off a serving pod; new session on a terminating pod; request to a
 * deleted pod after the watcher saw the deletion; replicas disagreeing). Exit status 1 on
 * any violation, 2 when the run itself failed (or overran its deadline).
 *
 *   npm run soak                                   # 3000 sessions, 5 rolling updates
 *   npm run soak -- --sessions 500 --rounds 2
 *   npm run soak:long                              # 10 minutes
 *
 * Flags: --sessions N, --rounds N (rolling updates, at least), --duration 90s|10m|600000
 * (keep rolling until this much time has passed), --dwell MS (traffic after each change),
 * --probes N (paired probes per change), --concurrency N, --style explicit|kic,
 * --pods N, --seed N, --repo-dir DIR (serve another checkout's build, to try the soak
 * itself on a broken plugin), --verbose.
 *
 * Bounded: everything listens on 127.0.0.1 (fake API server, plugin-server sockets,
 * metrics listeners); the run stops by itself and is killed at a deadline.
 */
import { parseArgs } from 'node:util';
import { formatReport, runRollingUpdates, STEPS_PER_POD, totalViolations, type ConfigStyle } from '../harness/scenario-rolling-update.js';

function duration(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new Error(`--duration: not a duration: ${text} (try 90s, 10m or 600000)`);
  const n = Number(m[1]);
  return n * ({ ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const)[(m[2] ?? 'ms') as 'ms' | 's' | 'm' | 'h'];
}

function positive(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name}: not a non-negative integer: ${text}`);
  return n;
}

// The fake API server can write an event to a watch response it has just ended (the watch's
// timeoutSeconds, 300-600 s, runs out during a long soak): that is the stand-in's problem,
// not the plugin's; the watcher resumes from its resourceVersion and gets the event again.
process.on('uncaughtException', (err: NodeJS.ErrnoException) => {
  if (err.code === 'ERR_STREAM_WRITE_AFTER_END' && /kube-apiserver/.test(err.stack ?? '')) {
    process.stderr.write('soak: fake API server wrote to a watch it had just ended (ignored)\n');
    return;
  }
  process.stderr.write(`soak failed: ${err.stack ?? err.message}\n`);
  process.exit(2);
});

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      sessions: { type: 'string' },
      rounds: { type: 'string' },
      duration: { type: 'string' },
      dwell: { type: 'string' },
      probes: { type: 'string' },
      concurrency: { type: 'string' },
      style: { type: 'string' },
      pods: { type: 'string' },
      seed: { type: 'string' },
      'repo-dir': { type: 'string' },
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write('usage: npm run soak -- [--sessions 3000] [--rounds 5] [--duration 10m] [--dwell 250] [--probes 4] [--concurrency 48] [--style explicit|kic] [--pods 3] [--seed N] [--repo-dir DIR] [--verbose]\n');
    return 0;
  }
  const style = (values.style ?? 'explicit') as ConfigStyle;
  if (style !== 'explicit' && style !== 'kic') throw new Error(`--style: explicit or kic, not ${values.style}`);
  const sessions = positive('sessions', values.sessions, 3000);
  const rounds = positive('rounds', values.rounds, 5);
  const durationMs = duration(values.duration);
  const dwellMs = positive('dwell', values.dwell, 250);
  const pods = positive('pods', values.pods, 3);
  const seed = positive('seed', values.seed, Date.now() % 1_000_000);

  // The deadline: what the run should take, doubled, plus start-up; then it is cut short.
  const plannedMs = Math.max(durationMs ?? 0, rounds * pods * STEPS_PER_POD * (dwellMs + 100));
  const deadlineMs = 2 * plannedMs + 120_000;
  const deadline = setTimeout(() => {
    process.stderr.write(`soak: still running after ${Math.round(deadlineMs / 1000)} s: giving up\n`);
    process.exit(2);
  }, deadlineMs);
  deadline.unref();

  const log = values.verbose ? (line: string) => process.stderr.write(`${line}\n`) : undefined;
  process.stderr.write(
    `soak: ${sessions} sessions, ${rounds} rolling updates${durationMs ? ` (at least ${durationMs / 1000} s)` : ''}, ${style} config, seed ${seed}\n`,
  );
  const report = await runRollingUpdates({
    sessions,
    rounds,
    pods,
    style,
    seed,
    dwellMs,
    ...(durationMs !== undefined ? { durationMs } : {}),
    ...(values.probes !== undefined ? { probes: positive('probes', values.probes, 4) } : {}),
    ...(values.concurrency !== undefined ? { concurrency: positive('concurrency', values.concurrency, 48) } : {}),
    ...(values['repo-dir'] ? { repoDir: values['repo-dir'] } : {}),
    ...(log ? { log } : {}),
  });
  clearTimeout(deadline);
  process.stdout.write(`${formatReport(report)}\n`);
  const metricsDisagree = report.metrics !== undefined && !report.metrics.agree;
  return totalViolations(report) > 0 || metricsDisagree ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`soak failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(2);
  },
);
