/**
 * The log phase (Kong's timer after the response), the upstream callback, the noop round
 * trip, and how start-up fails when the dump is not what Kong can use.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KongEmulator, type UpstreamRequest } from '../harness/kong-emulator.js';
import { PluginInfoError } from '../harness/plugin-server.js';

describe('log phase', () => {
  let kong: KongEmulator;
  let plain: string;
  let touching: string;

  beforeAll(async () => {
    kong = await KongEmulator.start({ pluginsDir: 'test/fixtures/logphase' });
    plain = kong.addPlugin({}).id;
    touching = kong.addPlugin({ config: { touch_live: true } }).id;
  });
  afterAll(async () => {
    await kong?.stop();
  });

  it('runs after the response, on the data Kong saved: status, ctx, serialize', async () => {
    const seen: UpstreamRequest[] = [];
    const r = await kong.request(
      { headers: { cookie: 's=1' } },
      {
        plugin: plain,
        upstream: (req) => {
          seen.push(req);
          return { status: 502, headers: { 'X-Up': 'yes' } };
        },
      },
    );
    expect(seen).toHaveLength(1);
    expect(seen[0]?.target).toEqual({ host: '10.0.0.9', port: 8080 });
    expect(r.status).toBe(502);
    expect(r.upstream).toEqual({ status: 502, headers: { 'X-Up': 'yes' } });
    expect(r.ctxShared).toEqual({ picked: 'pod-a' });
    expect(r.phases.access?.roundTrips).toBe(5); // StartInstance, HandleEvent, 3 Steps
    const log = r.log;
    expect(log?.phase).toBe('log');
    expect(log?.eventFinished).toBe(true);
    expect(log?.pdkCalls.map((c) => c.method)).toEqual([
      'kong.response.get_status',
      'kong.ctx.shared.get',
      'kong.nginx.get_ctx',
      'kong.log.serialize',
      'kong.request.get_header',
      'kong.log.info',
    ]);
    const info = log?.logs.find((l) => l.source === 'plugin' && l.level === 'info');
    expect(JSON.parse(info?.message as string)).toEqual({
      status: 502,
      picked: 'pod-a',
      n: 7,
      cookie: 's=1',
      upstream_status: '502',
      tries: [expect.objectContaining({ ip: '10.0.0.9', port: 8080, code: 502 })],
      response_status: 502,
    });
  });

  it('a live-request PDK call in the log timer fails: the handler never finishes', async () => {
    const r = await kong.request({}, { plugin: touching });
    expect(r.status).toBe(200); // the response was sent long before
    expect(r.log?.luaError).toBe('API disabled in the current context');
    expect(r.log?.eventFinished).toBe(false);
    expect(r.log?.pdkCalls.at(-1)?.method).toBe('kong.request.get_method');
    expect(r.log?.logs.some((l) => l.message === 'unreachable')).toBe(false);
    expect(r.logs).toContainEqual(expect.objectContaining({ message: expect.stringMatching(/^lua entry thread aborted/) }));
  });

  it('access() alone skips the log phase', async () => {
    const r = await kong.access({}, { plugin: plain });
    expect(r.log).toBeUndefined();
    expect(r.target).toEqual({ host: '10.0.0.9', port: 8080 });
  });

  it('a failing upstream is a 502 that the log phase sees', async () => {
    const r = await kong.request(
      {},
      {
        plugin: plain,
        upstream: () => {
          throw new Error('connect refused');
        },
      },
    );
    expect(r.status).toBe(502);
    const info = r.log?.logs.find((l) => l.source === 'plugin');
    expect(JSON.parse(info?.message as string)).toMatchObject({ status: 502, upstream_status: '502' });
  });
});

describe('noop', () => {
  let kong: KongEmulator;
  beforeAll(async () => {
    kong = await KongEmulator.start({ pluginsDir: 'test/fixtures/noop' });
    kong.addPlugin();
  });
  afterAll(async () => {
    await kong?.stop();
  });

  it('costs one round trip per request once its instance runs', async () => {
    expect((await kong.request()).roundTrips).toBe(2);
    const r = await kong.request();
    expect(r.roundTrips).toBe(1);
    expect(r.rpc).toEqual([expect.objectContaining({ method: 'plugin.HandleEvent' })]);
    expect(r.pdkCalls).toEqual([]);
    expect(r.target).toBeUndefined();
    expect(r.status).toBe(200);
  });

  it('without set_target, Host follows preserve_host or the service host and port', async () => {
    const hosts: string[] = [];
    const upstream = (req: UpstreamRequest) => {
      hosts.push(req.hostHeader);
      return { status: 200 };
    };
    const service = { id: 's', host: 'backend.internal', port: 8080 };
    await kong.request({ host: 'Shop.Example:8000', service, route: { id: 'r', preserve_host: true } }, { upstream });
    await kong.request({ host: 'shop.example', service, route: { id: 'r', preserve_host: false } }, { upstream });
    await kong.request({ host: 'shop.example', service: { id: 's', host: 'backend.internal', port: 80 } }, { upstream });
    expect(hosts).toEqual(['Shop.Example:8000', 'backend.internal:8080', 'backend.internal']);
  });

  it('stop() removes the prefix directory and keeps the server log', async () => {
    const dir = kong.prefixDir;
    await kong.stop();
    expect(() => writeFileSync(path.join(dir, 'x'), '')).toThrow();
    expect(kong.serverLog()).toContain('server started at');
    expect(kong.kongLog().some((e) => e.message.includes('terminated: signal SIGTERM'))).toBe(true);
    await expect(kong.request()).rejects.toThrow(/stopped/);
  });
});

describe('start-up fails loudly when the dump is not usable', () => {
  const dirs: string[] = [];
  const pluginsDir = (files: Record<string, string>): string => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'kemu-plugins-'));
    dirs.push(dir);
    for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
    return dir;
  };
  const cjsPlugin = (version = '0.1.0') =>
    `class Plugin { constructor(c) { this.c = c } async access() {} }\nmodule.exports = { Plugin, Version: '${version}', Priority: 1, Schema: [] };\n`;

  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('takes only the first plugin of a directory with two', async () => {
    const kong = await KongEmulator.start({ pluginsDir: pluginsDir({ 'alpha.cjs': cjsPlugin(), 'beta.cjs': cjsPlugin() }) });
    try {
      expect(kong.info.Name).toBe('alpha');
      expect((kong.dump as unknown[]).length).toBe(2);
    } finally {
      await kong.stop();
    }
  });

  it('a loading warning on stdout breaks the dump (duplicate plugin name)', async () => {
    const dir = pluginsDir({ 'dup.cjs': cjsPlugin(), 'dup.js': cjsPlugin() });
    await expect(KongEmulator.start({ pluginsDir: dir })).rejects.toThrow(/failed decoding plugin info[\s\S]*already loaded/);
  });

  it('refuses a Version Kong would refuse', async () => {
    const dir = pluginsDir({ 'vee.cjs': cjsPlugin('1.0') });
    await expect(KongEmulator.start({ pluginsDir: dir })).rejects.toThrow(/VERSION field does not follow the "x.y.z" format/);
  });

  it('refuses an empty dump and non-JSON output', async () => {
    // The start command does not matter here: the query decides first.
    const commands = (query: string) => (prefix: string) => ({ start: 'sleep 30', socket: path.join(prefix, 's.sock'), query });
    await expect(KongEmulator.start({ commands: commands("echo '[]'") })).rejects.toThrow(PluginInfoError);
    await expect(KongEmulator.start({ commands: commands("echo '[]'") })).rejects.toThrow(/lists no plugin/);
    await expect(KongEmulator.start({ commands: commands('echo "server started"; echo "[]"') })).rejects.toThrow(
      /failed decoding plugin info/,
    );
  });
});
