/**
 * The emulator against the real plugin server with a plugin that misbehaves on purpose:
 * each case checks that the request ends the way Kong ends it, and what the socket saw.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KongEmulator, KongSchemaError, type PluginEntity } from '../harness/kong-emulator.js';

let kong: KongEmulator;
const plugins: Record<string, PluginEntity> = {};

const MODES = [
  'ok',
  'throw',
  'throw-after-pdk',
  'hang',
  'bad-port',
  'float-port',
  'string-port',
  'exit',
  'unknown-method',
  'wrong-phase',
  'add-headers',
  'echo-config',
  'env',
  'constructor-throw',
] as const;

beforeAll(async () => {
  kong = await KongEmulator.start({
    pluginsDir: 'test/fixtures/misbehaving',
    env: { KUBECONFIG: '/etc/kube/config', NOT_DECLARED: 'hidden' },
  });
  // Every plugin entity is added first: each addition is a config change, and a config
  // change restarts every instance.
  for (const mode of MODES) plugins[mode] = kong.addPlugin({ config: { mode, label: mode.replace(/[^a-z]/g, '').slice(0, 16) } });
  plugins.slow = kong.addPlugin({ config: { mode: 'slow', delay_ms: 600 } });
  plugins.probe = kong.addPlugin({
    config: {
      mode: 'probe',
      probe: [
        'nginx.getVar cookie_s',
        'nginx.getVar cookie_missing',
        'request.getHeader cookie',
        'request.getHeader x-missing',
        'request.getHeaders',
        'request.getForwardedScheme',
        'router.getService',
        'router.getRoute',
        'client.getIp',
      ],
    },
  });
});

afterAll(async () => {
  await kong?.stop();
});

const run = (mode: keyof typeof plugins, req = {}, opts = {}) => kong.request(req, { plugin: plugins[mode]?.id as string, ...opts });

describe('handlers that fail', () => {
  it('baseline: ok pins the target and finishes the event', async () => {
    const r = await run('ok');
    expect(r.status).toBe(200);
    expect(r.target).toEqual({ host: '10.0.0.7', port: 8080 });
    expect(r.eventFinished).toBe(true);
    expect(r.error).toBeUndefined();
  });

  it('a thrown handler: the server logs it, answers "ret", Kong proxies without a target', async () => {
    const r = await run('throw');
    expect(r.status).toBe(200);
    expect(r.target).toBeUndefined();
    expect(r.error).toBeUndefined();
    expect(r.eventFinished).toBe(true);
    expect(r.rpc.map((x) => x.method)).toEqual(['plugin.StartInstance', 'plugin.HandleEvent']);
    expect(kong.serverLog()).toMatch(/unhandled exception in misbehaving\.access on instance #\d+: Error: boom/);

    const after = await run('throw-after-pdk');
    expect(after.pdkCalls.map((c) => c.method)).toEqual(['kong.request.get_header']);
    expect(after.eventFinished).toBe(true);
    expect(after.status).toBe(200);
    expect(kong.serverLog()).toContain('Error: boom after pdk');
  });

  it('a hung handler is reported as hung within the call timeout, and the request proxies', async () => {
    const started = Date.now();
    const r = await run('hang', {}, { timeoutMs: 300 });
    expect(Date.now() - started).toBeLessThan(2000);
    expect(r.hung).toBe(true);
    expect(r.error).toBe('no data');
    expect(r.eventFinished).toBe(false);
    expect(r.status).toBe(200);
    expect(r.target).toBeUndefined();
    // the worker is still usable afterwards
    expect((await run('ok')).target).toBeDefined();
  });

  it('a late answer after the timeout neither reaches the next call nor crashes the server', async () => {
    const r = await run('slow', {}, { timeoutMs: 200 });
    expect(r.hung).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 600));
    const next = await run('ok');
    expect(next.target).toEqual({ host: '10.0.0.7', port: 8080 });
    expect(next.error).toBeUndefined();
    expect(kong.serverSpawns).toBe(1);
  });

  it('set_target with a port Kong refuses: 500, and the event is never finished', async () => {
    for (const mode of ['bad-port', 'float-port', 'string-port'] as const) {
      const r = await run(mode);
      expect(r.status, mode).toBe(500);
      expect(r.body).toBe('{"message":"An unexpected error occurred"}');
      expect(r.target).toBeUndefined();
      expect(r.eventFinished).toBe(false);
      // the set_target request came in the HandleEvent answer; no Step was sent for it
      expect(r.rpc.at(-1)?.method).toBe('plugin.HandleEvent');
      expect(r.pdkCalls).toHaveLength(1);
      expect(r.pdkCalls[0]).toMatchObject({ method: 'kong.service.set_target', luaError: expect.any(String) });
    }
    const r = await run('bad-port');
    expect(r.luaError).toBe('port must be an integer between 0 and 65535: given 70000');
    expect(r.logs).toContainEqual(expect.objectContaining({ level: 'err', message: r.luaError }));
    expect((await run('float-port')).luaError).toBe('port must be an integer');
    expect((await run('string-port')).luaError).toBe('port must be an integer');
  });

  it('kong.response.exit ends the request with its status; Kong sends no further Step', async () => {
    const r = await run('exit');
    expect(r.status).toBe(503);
    expect(r.exit).toEqual({ status: 503, body: { message: 'draining' }, headers: { 'Retry-After': '5' } });
    expect(r.body).toBe('{"message":"draining"}');
    expect(r.responseHeaders['retry-after']).toEqual(['5']);
    expect(r.responseHeaders['content-type']).toEqual(['application/json; charset=utf-8']);
    expect(r.pdkCalls).toHaveLength(1);
    expect(r.pdkCalls[0]).toMatchObject({ method: 'kong.response.exit', exited: true });
    expect(r.rpc.at(-1)?.method).toBe('plugin.HandleEvent');
    expect(r.eventFinished).toBe(false);
    expect(r.target).toBeUndefined();
  });

  it('an unknown PDK method: Kong logs it and steps with nil; the handler carries on', async () => {
    const r = await run('unknown-method');
    expect(r.pdkCalls[0]).toMatchObject({ method: 'kong.nope.do_something', args: [1], unknown: true });
    expect(r.pdkCalls[0]).not.toHaveProperty('result');
    expect(r.logs).toContainEqual(
      expect.objectContaining({ level: 'err', message: 'could not find pdk method: kong.nope.do_something', source: 'kong' }),
    );
    expect(r.target).toEqual({ host: '10.0.0.7', port: 8080 });
    expect(r.eventFinished).toBe(true);
  });

  it('a PDK function called in the wrong phase is a Lua error: 500', async () => {
    const r = await run('wrong-phase');
    expect(r.status).toBe(500);
    expect(r.luaError).toMatch(/^function cannot be called in access phase/);
  });

  it('a constructor that throws fails StartInstance: Kong errors, 500, and keeps no instance', async () => {
    const r = await run('constructor-throw');
    expect(r.status).toBe(500);
    expect(r.rpc).toEqual([expect.objectContaining({ method: 'plugin.StartInstance', error: 'refusing this config' })]);
    expect(r.logs).toContainEqual(expect.objectContaining({ level: 'err', message: 'starting instance: refusing this config' }));
    expect(kong.instances().some((i) => i.plugin === plugins['constructor-throw']?.id)).toBe(false);
    // tried again on the next request
    expect((await run('constructor-throw')).rpc[0]?.method).toBe('plugin.StartInstance');
  });
});

describe('what the plugin sees', () => {
  it('repeated response headers stay separate; set_header replaces', async () => {
    const r = await run('add-headers');
    expect(r.responseHeaders['set-cookie']).toEqual(['a=1; Path=/', 'b=2; Path=/']);
    expect(r.responseHeaders['x-one']).toEqual(['second']);
  });

  it('PDK answers as JS receives them: nil is undefined, multimaps are arrays', async () => {
    const r = await run('probe', {
      scheme: 'https',
      host: 'shop.example',
      headers: { cookie: ['s=abc; t=1', 'u=2'] },
      clientIp: '192.0.2.10',
      service: { id: 'svc-1', name: 'shop', host: 'shop.default.80.svc', port: 80 },
      route: { id: 'route-1', name: 'shop' },
    });
    expect(r.status).toBe(200);
    const seen = JSON.parse(r.body as string) as unknown[];
    expect(seen).toEqual([
      { value: 'abc' },
      { undefined: true },
      { value: 's=abc; t=1; u=2' },
      { undefined: true },
      { value: { cookie: ['s=abc; t=1', 'u=2'], host: ['shop.example'] } },
      { value: 'https' },
      { value: expect.objectContaining({ id: 'svc-1', host: 'shop.default.80.svc', port: 80, protocol: 'http' }) },
      // the whole route entity, the schema's defaults included (preserve_host: Kong's default)
      { value: expect.objectContaining({ id: 'route-1', name: 'shop', preserve_host: false, strip_path: true }) },
      { value: '192.0.2.10' },
    ]);
    expect(r.rpc.find((x) => x.method === 'plugin.StepMultiMap')).toBeDefined();
    expect(r.rpc.find((x) => x.method === 'plugin.StepService')).toBeDefined();
    expect(r.rpc.find((x) => x.method === 'plugin.StepRoute')).toBeDefined();
  });

  it('receives the config with unset fields absent (Kong reads plugins with nulls=false)', async () => {
    const r = await run('echo-config');
    const config = JSON.parse(r.body as string) as Record<string, unknown>;
    expect(config).toMatchObject({
      mode: 'echo-config',
      delay_ms: 0,
      limits: { max: 1.5, unit: 's' },
      __plugin_id: plugins['echo-config']?.id,
      __seq__: expect.any(Number),
    });
    for (const k of ['probe', 'tags', 'secret', 'route_id', 'service_id', 'consumer_id', 'plugin_instance_name']) {
      expect(config).not.toHaveProperty(k);
    }
    expect(config.limits).not.toHaveProperty('note');

    kong.setUnsetConfigFields('null');
    try {
      const withNulls = JSON.parse((await run('echo-config')).body as string) as Record<string, unknown>;
      expect(withNulls).toMatchObject({ probe: null, tags: null, route_id: null, limits: { note: null } });
    } finally {
      kong.setUnsetConfigFields('absent');
    }
  });

  it("sees only TZ and KONG_NGINX_MAIN_ENV's variables, from cwd /", async () => {
    process.env.KEMU_TEST_MARKER = 'should-not-leak';
    const r = await run('env');
    delete process.env.KEMU_TEST_MARKER;
    const { env, cwd } = JSON.parse(r.body as string) as { env: Record<string, string>; cwd: string };
    expect(cwd).toBe('/');
    expect(env.KUBECONFIG).toBe('/etc/kube/config');
    expect(env).not.toHaveProperty('NOT_DECLARED');
    expect(env).not.toHaveProperty('KEMU_TEST_MARKER');
    expect(env).not.toHaveProperty('NODE_ENV'); // the image sets it, nginx drops it
    expect(env).not.toHaveProperty('HOME');
  });
});

describe('configuration through the Admin API emulation', () => {
  it('refuses bad config with field-named errors before any instance starts', () => {
    const attempt = (config: Record<string, unknown>) => {
      try {
        kong.addPlugin({ config });
      } catch (err) {
        expect(err).toBeInstanceOf(KongSchemaError);
        return (err as KongSchemaError).fields;
      }
      throw new Error('accepted');
    };
    const count = kong.plugins().length;
    expect(attempt({ mode: 'sideways' })).toEqual({ config: { mode: expect.stringMatching(/^expected one of: ok, throw/) } });
    expect(attempt({ target_port: 70000 })).toEqual({ config: { target_port: 'value should be between 1 and 65535' } });
    expect(attempt({ target_host: null })).toEqual({ config: { target_host: 'required field missing' } });
    expect(attempt({ limits: { unit: 'h' }, delay_ms: -1 })).toEqual({
      config: { limits: { unit: 'expected one of: s, ms' }, delay_ms: 'value should be between 0 and 60000' },
    });
    expect(kong.plugins()).toHaveLength(count);
  });

  it('updatePlugin merges records and validates like PATCH', () => {
    const e = kong.addPlugin({ config: { mode: 'ok', limits: { unit: 'ms' } } });
    const updated = kong.updatePlugin(e.id, { config: { limits: { max: 3 } } });
    expect(updated.config.limits).toEqual({ max: 3, unit: 'ms', note: null });
    expect(() => kong.updatePlugin(e.id, { config: { target_port: 0 } })).toThrow(KongSchemaError);
    kong.removePlugin(e.id);
  });
});
