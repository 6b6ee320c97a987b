/**
 * What an operator sees of the plugin server as the image starts it (the Dockerfile's
 * commands and environment, driven by the Kong emulator): its lines in Kong's log, and
 * metrics that follow the live configuration when Kong replaces an instance.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kongServerCommands } from '../harness/dockerfile.js';
import { KongEmulator } from '../harness/kong-emulator.js';
import { queryPluginInfo } from '../harness/plugin-server.js';
import { http, parseMetrics } from './helpers.js';

const SECRET = 'image-server-secret-0123456789abcdef-0123';
const SERVICE = { id: '0e3c1c3e-3333-4c4c-9a9a-000000000003', name: 'shop', host: 'shop.internal', port: 80, protocol: 'http' };
const OLD_TARGETS = ['192.0.2.30:8080', '192.0.2.31:8080'];
const NEW_TARGETS = ['192.0.2.40:8080', '192.0.2.41:8080 draining'];
const WORKERS = 2;

let kong: KongEmulator;
let plugin: string;
let base: string;

/** Where the listener says it listens (STICKY_SESSION_METRICS_PORT=0 takes any free port). */
async function metricsBase(): Promise<string> {
  for (let i = 0; i < 400; i++) {
    for (const line of kong.serverLog({ raw: true }).split('\n')) {
      if (!line.includes('metrics and status listening')) continue;
      const { address, port } = JSON.parse(line) as { address: string; port: number };
      return `http://${address}:${port}`;
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`the metrics listener never said where it listens\n${kong.serverLog({ raw: true })}`);
}

async function scrape(): Promise<Map<string, number>> {
  const answer = await http(`${base}/metrics`);
  expect(answer.status).toBe(200);
  return parseMetrics(answer.body);
}

/** The `pod` or `endpoint` labels of the per-pod series, and the sources of every series. */
function seen(m: Map<string, number>): { endpoints: string[]; sources: string[] } {
  const endpoints = new Set<string>();
  const sources = new Set<string>();
  for (const key of m.keys()) {
    const endpoint = /endpoint="([^"]*)"/.exec(key)?.[1];
    if (endpoint !== undefined) endpoints.add(endpoint);
    const source = /source="([^"]*)"/.exec(key)?.[1];
    if (source !== undefined) sources.add(source);
  }
  return { endpoints: [...endpoints].sort(), sources: [...sources].sort() };
}

beforeAll(async () => {
  kong = await KongEmulator.start({ useDockerfile: true, workers: WORKERS, env: { STICKY_SESSION_METRICS_PORT: '0' } });
  plugin = kong.addPlugin({ service: SERVICE.id, config: { secrets: [SECRET], targets: OLD_TARGETS } }).id;
  for (let w = 0; w < WORKERS; w++) await kong.request({ service: SERVICE }, { worker: w, plugin });
  base = await metricsBase();
}, 30_000);

afterAll(async () => {
  await kong?.stop();
});

describe('a replaced plugin config (Kong: StartInstance for the new one, CloseInstance for the old)', () => {
  it('exports only the live config\'s pods at once, without waiting for garbage collection', async () => {
    const before = seen(await scrape());
    expect(before.endpoints).toEqual(OLD_TARGETS);
    expect(before.sources).toHaveLength(1);

    kong.updatePlugin(plugin, { config: { targets: NEW_TARGETS } });
    const rpc: string[] = [];
    for (let w = 0; w < WORKERS; w++) {
      const r = await kong.request({ service: SERVICE }, { worker: w, plugin });
      expect(r.target?.host).toBe('192.0.2.40');
      rpc.push(...r.rpc.map((x) => x.method));
    }
    expect(rpc.filter((x) => x === 'plugin.CloseInstance')).toHaveLength(WORKERS);

    const m = await scrape();
    const after = seen(m);
    expect(after.endpoints).toEqual(['192.0.2.40:8080', '192.0.2.41:8080']);
    expect(after.sources).toHaveLength(1);
    expect(after.sources).not.toEqual(before.sources);
    const active = [...m].filter(([k]) => k.startsWith('sticky_session_active_sessions{')).map(([k, v]) => [/endpoint="([^"]*)"/.exec(k)![1], v]);
    expect(active.sort()).toEqual([
      ['192.0.2.40:8080', WORKERS],
      ['192.0.2.41:8080', 0],
    ]);
    const status = JSON.parse((await http(`${base}/status`)).body) as { services: Array<{ source: string }> };
    expect(status.services.map((s) => s.source)).toEqual(after.sources);
  });
});

describe('the plugin server\'s lines in Kong\'s log', () => {
  it('carry no terminal escape codes: every line is pino JSON, kong-pdk\'s own included', () => {
    const raw = kong.serverLog({ raw: true });
    expect(raw).not.toContain('\x1b');
    const lines = raw.split('\n').filter((l) => l !== '');
    const parsed = lines.map((l) => JSON.parse(l) as { name: string; from?: string; msg: string });
    expect(parsed.every((l) => l.name === 'sticky-session')).toBe(true);
    // kong-pdk's messages (its listener, each StartInstance) come through as JSON too.
    const fromPdk = parsed.filter((l) => l.from === 'kong-pdk').map((l) => l.msg);
    expect(fromPdk).toContain(`server started at ${kong.commands.socket}`);
    expect(fromPdk.filter((m) => /^instance #\d+ of sticky-session started$/.test(m)).length).toBeGreaterThanOrEqual(2 * WORKERS);
  });

  it('and the query command (kong-pdk at -v, so its debug lines too) writes the plugin info alone on stdout, no escape codes anywhere', async () => {
    const { query } = kongServerCommands({ prefixDir: '/tmp' });
    const verbose = `${query} -v -v`;
    const q = await queryPluginInfo(verbose, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', STICKY_SESSION_LOG_LEVEL: 'debug' } });
    expect(q.stdout).toBe(`${JSON.stringify(q.dump)}\n`);
    expect(q.stderr).not.toContain('\x1b');
    expect(q.stderr).toMatch(/"from":"kong-pdk","msg":"loaded plugin \\"sticky-session\\" from /);
  });
});

/** promtool from Debian's `prometheus` package (.ci/run installs it); absent on most dev machines. */
const PROMTOOL = spawnSync('promtool', ['--version'], { encoding: 'utf8' }).status === 0 ? 'promtool' : undefined;

describe('the exposition as Prometheus reads it', () => {
  // CI must run it: .ci/run installs promtool. Elsewhere it runs where promtool is installed.
  it.skipIf(!PROMTOOL && !process.env.CI)('passes `promtool check metrics` without a warning', async () => {
    expect(PROMTOOL, 'promtool not found: apt-get install prometheus (.ci/run does)').toBeDefined();
    const exposition = (await http(`${base}/metrics`)).body;
    // Every family this plugin adds is there, the watch ones aside (static targets here).
    for (const name of ['decisions_total', 'token_rejections_total', 'active_sessions', 'endpoints', 'process_cpu_seconds_total', 'nodejs_active_handles']) {
      expect(exposition).toContain(`# TYPE sticky_session_${name} `);
    }
    const check = spawnSync(PROMTOOL!, ['check', 'metrics'], { input: exposition, encoding: 'utf8' });
    expect({ status: check.status, out: `${check.stdout}${check.stderr}`.trim() }).toEqual({ status: 0, out: '' });
  });
});
