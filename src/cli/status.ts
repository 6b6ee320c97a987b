import { isIPv6 } from 'node:net';
import type { ServiceStatus, StatusView } from '../observability/status.js';

/**
 * `sticky-session status`: reads GET /status of a running plugin server and prints it as a
 * table. Runs as its own process (never inside the plugin server), so it may write to stdout.
 */
export interface CliIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
}

const USAGE = `usage: sticky-session status [--url http://127.0.0.1:9542] [--json]
       sticky-session convert [-f FILE]... [--strict] ...   (see sticky-session convert --help)

Shows each endpoint source of a running plugin server (watched Service or static targets),
its endpoints, their conditions and active sessions. The default URL comes from
STICKY_SESSION_METRICS_ADDRESS and STICKY_SESSION_METRICS_PORT (default 127.0.0.1:9542).
`;

/** Runs the CLI; returns the exit code (0 ok, 1 cannot read the status, 2 usage). */
export async function runCli(argv: readonly string[], env: NodeJS.ProcessEnv, io: CliIo): Promise<number> {
  const args = [...argv];
  const command = args.shift();
  if (command === '--help' || command === '-h' || command === 'help') {
    io.out(USAGE);
    return 0;
  }
  if (command !== 'status') {
    io.err(command === undefined ? USAGE : `unknown command "${command}"\n\n${USAGE}`);
    return 2;
  }
  let url = defaultUrl(env);
  let json = false;
  while (args.length > 0) {
    const arg = args.shift() as string;
    if (arg === '--json') json = true;
    else if (arg === '--url' && args.length > 0) url = args.shift() as string;
    else if (arg.startsWith('--url=')) url = arg.slice('--url='.length);
    else {
      io.err(`unknown argument "${arg}"\n\n${USAGE}`);
      return 2;
    }
  }

  let target: URL;
  try {
    target = statusUrl(url);
  } catch {
    io.err(`not a URL: "${url}"\n`);
    return 2;
  }

  let body: string;
  try {
    const res = await fetch(target, { signal: AbortSignal.timeout(5_000), headers: { accept: 'application/json' } });
    body = await res.text();
    if (!res.ok) {
      io.err(`${target.href} answered ${res.status} ${res.statusText}: ${body.trim().slice(0, 200)}\n`);
      return 1;
    }
  } catch (err) {
    io.err(
      `cannot read the sticky-session status at ${target.href}: ${reason(err)}\n` +
        'Is the plugin server running with STICKY_SESSION_METRICS_PORT set (and declared in KONG_NGINX_MAIN_ENV)? ' +
        'Pass --url to point elsewhere.\n',
    );
    return 1;
  }

  let view: StatusView;
  try {
    view = JSON.parse(body) as StatusView;
    if (!Array.isArray(view.services)) throw new Error('no "services" array');
  } catch (err) {
    io.err(`${target.href} did not answer a sticky-session status: ${reason(err)}\n`);
    return 1;
  }
  io.out(json ? `${JSON.stringify(view, null, 2)}\n` : formatStatus(view));
  return 0;
}

export function defaultUrl(env: NodeJS.ProcessEnv): string {
  let host = env.STICKY_SESSION_METRICS_ADDRESS?.trim() || '127.0.0.1';
  // A listener on every address is reachable on loopback.
  if (host === '0.0.0.0') host = '127.0.0.1';
  if (host === '::') host = '::1';
  const port = Number(env.STICKY_SESSION_METRICS_PORT?.trim()) || 9542;
  return `http://${isIPv6(host) ? `[${host}]` : host}:${port}`;
}

/** The /status URL for a base URL (or a URL that already names /status). */
function statusUrl(url: string): URL {
  const u = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? url : `http://${url}`);
  if (!u.pathname.endsWith('/status')) u.pathname = `${u.pathname.replace(/\/+$/, '')}/status`;
  return u;
}

export function formatStatus(view: StatusView, now = Date.now()): string {
  const lines: string[] = [];
  // Older plugin servers answer without the field.
  for (const e of view.configErrors ?? []) {
    lines.push(`CONFIG ERROR ${e.service} (${e.instances} instance${e.instances === 1 ? '' : 's'}, since ${ago(Date.parse(e.since), now)}): ${e.message}`);
    lines.push('  the plugin stands aside for it: Kong balances these requests, no session is kept');
  }
  if (view.configErrors?.length) lines.push('');
  if (view.services.length === 0) {
    lines.push('No endpoint sources yet: no plugin instance has started in this plugin server (or none has taken a request).');
  }
  for (const s of view.services) {
    lines.push(headline(s, now));
    if (s.bindings.length > 0) lines.push(`  Kong: ${s.bindings.join(', ')}`);
    if (s.lastError) lines.push(`  last error ${ago(Date.parse(s.lastError.at), now)}: ${s.lastError.message}`);
    // Older plugin servers answer without the field.
    if (s.problem) lines.push(`  problem: ${s.problem}`);
    if (s.endpoints.length === 0) {
      lines.push(s.synced ? '  no serving endpoints' : '  endpoints not known yet: requests fail open to Kong\'s balancer');
    } else {
      const rows = [
        ['POD', 'CONDITION', 'ADDRESS', 'SESSIONS'],
        ...s.endpoints.map((e) => [e.name, e.condition, `${e.host.includes(':') ? `[${e.host}]` : e.host}:${e.port}`, String(e.activeSessions)]),
      ];
      const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
      for (const r of rows) lines.push(`  ${r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')}`.trimEnd());
      const ready = s.endpoints.filter((e) => e.condition === 'ready').length;
      const sessions = s.endpoints.reduce((n, e) => n + e.activeSessions, 0);
      lines.push(`  ${s.endpoints.length} endpoints (${ready} ready, ${s.endpoints.length - ready} draining), ${sessions} active sessions`);
    }
    // A traffic split: where new sessions go (weight) and where sessions are, per backend Service.
    for (const b of s.backends ?? []) {
      lines.push(`  backend ${b.backend}: weight ${b.weight}, ${b.ready} ready, ${b.draining} draining, ${b.activeSessions} active sessions`);
    }
    lines.push('');
  }
  return `${lines.join('\n').trimEnd()}\n`;
}

function headline(s: ServiceStatus, now: number): string {
  const facts: string[] = [];
  if (!s.synced) facts.push('NOT SYNCED');
  else if (s.kind === 'static') facts.push('static targets');
  else facts.push('synced');
  if (s.lastSyncAt) facts.push(`last sync ${ago(Date.parse(s.lastSyncAt), now)}`);
  if (s.kind === 'kubernetes') facts.push(`${s.restarts} watch restart${s.restarts === 1 ? '' : 's'}`);
  if (s.version !== null) facts.push(`view v${s.version}`);
  return `${s.source}  (${facts.join(', ')})`;
}

function ago(at: number, now: number): string {
  const seconds = Math.max(0, (now - at) / 1000);
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  return `${(seconds / 3600).toFixed(1)} h ago`;
}

function reason(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // fetch wraps the socket error: ECONNREFUSED and friends are in its cause.
  const cause = (err as Error & { cause?: unknown }).cause;
  if (cause instanceof Error) return (cause as NodeJS.ErrnoException).code ?? cause.message;
  return err.name === 'TimeoutError' ? 'no answer within 5 s' : err.message;
}
