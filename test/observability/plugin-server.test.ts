/**
 * The real kong-js-pluginserver with metrics turned on: its stdout (which Kong parses)
 * carries nothing of ours, the listener starts inside it, and a request played over the
 * real protocol shows up in /metrics and /status. Runs the compiled plugin: `npx tsc -p .` first.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { decode, encode } from '@msgpack/msgpack';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, parseMetrics, sample, SECRET } from './helpers.js';
import { kongConfig } from '../support/kong-config.js';

const ROOT = resolve(import.meta.dirname, '../..');
const SERVER = join(ROOT, 'node_modules/kong-pdk/bin/kong-js-pluginserver');
const PLUGINS = join(ROOT, 'plugins');

let dump: Promise<{ code: number | null; stdout: string }>;

beforeAll(() => {
  const handler = join(ROOT, 'dist/handler.js');
  if (!existsSync(handler) || !readFileSync(handler, 'utf8').includes('ensureObservability')) {
    throw new Error('dist/ is not built with observability: run `npx tsc -p .` first');
  }
  // Runs while the server below starts and is tested: each costs a Node start-up.
  const p = run(['--dump-all-plugins'], { STICKY_SESSION_METRICS_PORT: '0', STICKY_SESSION_LOG_LEVEL: 'debug' });
  dump = new Promise((r) => p.child.on('close', (code) => r({ code, stdout: p.out() })));
});

function run(args: string[], extraEnv: Record<string, string>): { child: ChildProcess; out: () => string; err: () => string } {
  const child = spawn(process.execPath, [SERVER, '--plugins-directory', PLUGINS, ...args], {
    // As nginx starts it: only what KONG_NGINX_MAIN_ENV lets through.
    env: { PATH: process.env.PATH, ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c));
  return { child, out: () => out, err: () => err };
}

describe('a running plugin server with metrics on', () => {
  let server: ReturnType<typeof run>;
  let prefix: string;
  let base = '';
  let socket: Socket;
  let msgid = 0;
  let pending = Buffer.alloc(0);
  let waiting: ((v: unknown) => void) | undefined;

  /** One Kong RPC call over the socket, as Kong's mp_rpc makes it. */
  function call(method: string, arg: unknown): Promise<unknown> {
    const id = ++msgid;
    return new Promise((resolveCall, reject) => {
      waiting = (msg) => {
        const [type, rid, error, result] = msg as [number, number, unknown, unknown];
        if (type !== 1 || rid !== id) reject(new Error(`unexpected reply ${JSON.stringify(msg)}`));
        else if (error) reject(new Error(String(error)));
        else resolveCall(result);
      };
      socket.write(encode([0, id, method, [arg]]));
    });
  }

  beforeAll(async () => {
    prefix = mkdtempSync(join(tmpdir(), 'sticky-obs-'));
    server = run(['--kong-prefix', prefix, '--sock-name', 'ps.sock'], { STICKY_SESSION_METRICS_PORT: '0', STICKY_SESSION_LOG_LEVEL: 'info' });
    const sock = join(prefix, 'ps.sock');
    for (let i = 0; i < 200 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 25));
    socket = await new Promise<Socket>((ok, fail) => {
      const s = connect(sock, () => ok(s)).on('error', fail);
    });
    socket.on('data', (chunk) => {
      pending = Buffer.concat([pending, chunk]);
      try {
        const msg = decode(pending);
        pending = Buffer.alloc(0);
        waiting?.(msg);
      } catch (e) {
        if (!(e instanceof RangeError)) throw e; // incomplete: wait for more
      }
    });

    const config = {
      ...kongConfig({ secrets: [SECRET], targets: ['192.0.2.10:8080', '192.0.2.11:8080 draining'], service_id: 'svc-e2e' }),
      __plugin_id: 'p1',
      __seq__: 1,
    };
    const started = (await call('plugin.StartInstance', { Name: 'sticky-session', Config: JSON.stringify(config) })) as { Id: number };

    // The listener logs where it listens, on stderr.
    for (let i = 0; i < 200 && !/"port":\d+/.test(server.err()); i++) await new Promise((r) => setTimeout(r, 25));
    const line = server.err().split('\n').find((l) => l.includes('metrics and status listening'));
    const listening = JSON.parse(line!) as { address: string; port: number };
    base = `http://${listening.address}:${listening.port}`;

    // One request's access phase, answering each PDK call as Kong would.
    let reply = (await call('plugin.HandleEvent', { InstanceId: started.Id, EventName: 'access' })) as { Data: unknown; EventId: number };
    const answers: Record<string, unknown> = { 'kong.request.get_forwarded_scheme': 'http' };
    while (reply.Data !== 'ret') {
      const { Method } = reply.Data as { Method: string };
      reply = (await call('plugin.Step', { EventId: reply.EventId, Data: answers[Method] ?? null })) as typeof reply;
    }
  }, 20_000);

  afterAll(async () => {
    socket?.destroy();
    if (server.child.exitCode === null) {
      server.child.kill('SIGTERM');
      await new Promise((r) => server.child.on('close', r));
    }
    rmSync(prefix, { recursive: true, force: true });
  });

  it('listens on loopback and counts the request', async () => {
    expect(base).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const m = parseMetrics((await http(`${base}/metrics`)).body);
    expect(m.get(sample('sticky_session_decisions_total', { service: 'service:svc-e2e', outcome: 'new', reason: 'none' }))).toBe(1);
    const active = [...m].filter(([k]) => k.startsWith('sticky_session_active_sessions{') && k.includes('endpoint="192.0.2.10:8080"'));
    expect(active.map(([, v]) => v)).toEqual([1]);
  });

  it('shows the instance\'s source in /status', async () => {
    const view = JSON.parse((await http(`${base}/status`)).body) as { services: Array<{ bindings: string[]; endpoints: Array<{ condition: string; activeSessions: number }> }> };
    expect(view.services).toHaveLength(1);
    expect(view.services[0]!.bindings).toEqual(['service:svc-e2e']);
    expect(view.services[0]!.endpoints.map((e) => [e.condition, e.activeSessions])).toEqual([
      ['ready', 1],
      ['draining', 0],
    ]);
  });

  it('writes nothing to stdout; every line, kong-pdk\'s included, is pino JSON on stderr', () => {
    // kong-pdk's own logger (node-color-log) wrote coloured lines to stdout; the plugin
    // routes it into pino (src/kong/pdk-logger.ts) as it loads.
    expect(server.out()).toBe('');
    expect(server.err()).not.toContain('\x1b');
    const lines = server.err().split('\n').filter((l) => l !== '');
    for (const l of lines) expect(JSON.parse(l)).toMatchObject({ name: 'sticky-session' });
    expect(server.err()).toMatch(/^\{"level":30,.*"name":"sticky-session".*"msg":"sticky-session metrics and status listening/m);
    expect(server.err()).toMatch(/^\{"level":30,.*"from":"kong-pdk","msg":"instance #0 of sticky-session started"/m);
  });
});

describe('--dump-all-plugins (Kong\'s query_cmd) with metrics on', () => {
  it('writes exactly the plugin info JSON to stdout', async () => {
    const { code, stdout } = await dump;
    expect(code).toBe(0);
    const info = JSON.parse(stdout) as Array<{ Name: string; Schema: { fields: Array<{ config: { fields: Array<Record<string, unknown>> } }> } }>;
    expect(stdout).toBe(`${JSON.stringify(info)}\n`);
    expect(info[0]!.Name).toBe('sticky-session');
    const fields = info[0]!.Schema.fields[0]!.config.fields;
    expect(fields.find((f) => 'log_level' in f)).toEqual({ log_level: { type: 'string', one_of: ['debug', 'info', 'warn', 'error'] } });
  });
});
