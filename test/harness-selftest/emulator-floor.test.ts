/**
 * The emulator against the real plugin server with the "protocol floor" fixture: instance
 * life cycle per worker, round trips, cookie semantics, connection reuse, restarts, and two
 * emulated Kong replicas side by side.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KongEmulator } from '../harness/kong-emulator.js';

const FLOOR = 'test/fixtures/floor';

let kong: KongEmulator;

beforeAll(async () => {
  kong = await KongEmulator.start({ pluginsDir: FLOOR, workers: 2 });
});

afterAll(async () => {
  await kong?.stop();
});

describe('dump', () => {
  it('uses the first plugin of --dump-all-plugins, as Kong 3.9+ does', () => {
    expect(kong.info).toMatchObject({ Name: 'floor', Version: '0.1.0', Phases: ['access'], Priority: 800 });
    expect(kong.info.Schema.fields[0]).toMatchObject({ config: { type: 'record' } });
    expect(Array.isArray(kong.dump) && kong.dump.length).toBe(1);
  });

  it('runs the Dockerfile start command with the fixture directory', () => {
    expect(kong.commands.start).toContain(process.execPath);
    expect(kong.commands.start).toContain('kong-js-pluginserver --plugins-directory');
    expect(kong.commands.start).toMatch(/test\/fixtures\/floor /);
    expect(kong.commands.socket.startsWith(kong.prefixDir)).toBe(true);
    expect(kong.commands.socket.length).toBeLessThan(100);
  });
});

describe('instances, round trips and connections', () => {
  let pluginId: string;

  it('starts an instance on the first request, then reuses it: 3 round trips on the floor', async () => {
    pluginId = kong.addPlugin({ config: { cookie_name: 's', target_port: 9001 } }).id;
    const first = await kong.request({ headers: { cookie: 's=abc' } });
    expect(first.status).toBe(200);
    expect(first.target).toEqual({ host: '10.0.0.7', port: 9001 });
    expect(first.rpc.map((r) => r.method)).toEqual(['plugin.StartInstance', 'plugin.HandleEvent', 'plugin.Step', 'plugin.Step']);
    expect(first.roundTrips).toBe(4);
    expect(first.eventFinished).toBe(true);
    expect(first.pdkCalls.map((c) => c.method)).toEqual(['kong.nginx.get_var', 'kong.service.set_target']);
    const firstId = first.instanceId;

    const second = await kong.request({ headers: { cookie: 's=abc' } });
    expect(second.rpc.map((r) => r.method)).toEqual(['plugin.HandleEvent', 'plugin.Step', 'plugin.Step']);
    expect(second.roundTrips).toBe(3);
    expect(second.instanceId).toBe(firstId);
    // msgids count up per worker, one request per connection, the connection is reused
    expect(second.rpc.map((r) => r.msgid)).toEqual([5, 6, 7]);
    expect(kong.poolStats(0).connects).toBe(1);
    expect(kong.poolStats(0).reuses).toBeGreaterThanOrEqual(6);
  });

  it('sends the config Kong sends: defaults, Kong\'s own keys, unset ids absent', () => {
    const conf = kong.configFor();
    expect(conf).toMatchObject({
      cookie_name: 's',
      target_host: '10.0.0.7',
      target_port: 9001,
      __plugin_id: pluginId,
      // DAO:cache_key(name, route, service, consumer, nil, ws_id)
      __key__: `plugins:floor:::::${conf.__ws_id as string}`,
    });
    expect(typeof conf.__seq__).toBe('number');
    expect(conf).not.toHaveProperty('route_id');
    expect(conf).not.toHaveProperty('service_id');
  });

  it('gives each nginx worker its own instance of the same plugin', async () => {
    const w0 = await kong.request({}, { worker: 0 });
    const w1 = await kong.request({}, { worker: 1 });
    expect(w1.rpc[0]?.method).toBe('plugin.StartInstance');
    expect(w1.instanceId).not.toBe(w0.instanceId);
    expect(kong.instances(0)[0]?.instanceId).toBe(w0.instanceId);
    expect(kong.instances(1)[0]?.instanceId).toBe(w1.instanceId);
    expect(w1.rpc[0]?.msgid).toBe(1); // worker 1 has its own msgid counter
  });

  it('on a config change starts a new instance, then closes the old one', async () => {
    const before = kong.instances(0)[0]?.instanceId as number;
    kong.updatePlugin(pluginId, { config: { target_port: 9002 } });
    const r = await kong.request({}, { worker: 0 });
    expect(r.rpc.map((x) => x.method)).toEqual([
      'plugin.StartInstance',
      'plugin.CloseInstance',
      'plugin.HandleEvent',
      'plugin.Step',
      'plugin.Step',
    ]);
    expect(r.rpc[1]?.error).toBeUndefined(); // the old instance existed and was closed
    expect(r.instanceId).not.toBe(before);
    expect(r.target).toEqual({ host: '10.0.0.7', port: 9002 });
    expect(kong.serverLog()).toContain(`instance #${r.instanceId} of floor started`);
  });

  it('starts new instances after any reload, even with this plugin unchanged (new __seq__)', async () => {
    const seq = kong.configFor().__seq__ as number;
    kong.reloadConfig();
    expect(kong.configFor().__seq__).toBeGreaterThan(seq);
    const r = await kong.request({}, { worker: 0 });
    expect(r.rpc.slice(0, 2).map((x) => x.method)).toEqual(['plugin.StartInstance', 'plugin.CloseInstance']);
  });

  it('lets concurrent first requests of a worker share one StartInstance (the claim wait)', async () => {
    kong.reloadConfig();
    const results = await Promise.all(Array.from({ length: 4 }, () => kong.request({}, { worker: 1 })));
    const starts = results.flatMap((r) => r.rpc).filter((x) => x.method === 'plugin.StartInstance');
    expect(starts).toHaveLength(1);
    expect(new Set(results.map((r) => r.instanceId)).size).toBe(1);
    for (const r of results) expect(r.target).toBeDefined();
  });

  it('runs concurrent requests of one worker on separate connections', async () => {
    await kong.request({}, { worker: 0 });
    const results = await Promise.all(Array.from({ length: 8 }, () => kong.request({ headers: { cookie: 's=x' } }, { worker: 0 })));
    for (const r of results) {
      expect(r.roundTrips).toBe(3);
      expect(r.pdkCalls[0]?.result).toBe('x');
    }
    expect(kong.poolStats(0).connects).toBeGreaterThan(1);
  });
});

describe('$cookie_<name> through kong.nginx.get_var', () => {
  const cookieOf = async (headers: Record<string, string | string[]>) => {
    const r = await kong.request({ headers });
    const call = r.pdkCalls[0];
    expect(call?.method).toBe('kong.nginx.get_var');
    expect(call?.args).toEqual(['cookie_s']);
    return call && 'result' in call ? call.result : '<nil>';
  };

  it('finds the first cookie of that name across Cookie headers, name case-insensitive', async () => {
    expect(await cookieOf({ cookie: 'a=1; s=one' })).toBe('one');
    expect(await cookieOf({ cookie: 's=first; s=second' })).toBe('first');
    expect(await cookieOf({ Cookie: ['a=1', 's=in-second-header'] })).toBe('in-second-header');
    expect(await cookieOf({ cookie: ['s=h1', 's=h2'] })).toBe('h1');
    expect(await cookieOf({ cookie: 'S=upper' })).toBe('upper');
    expect(await cookieOf({ cookie: 'ss=1; s=2' })).toBe('2');
  });

  it('answers nil (no Data on the wire) when absent', async () => {
    expect(await cookieOf({ cookie: 'a=1' })).toBe('<nil>');
    expect(await cookieOf({})).toBe('<nil>');
  });
});

describe('plugin server restart', () => {
  it('recovers from "no plugin instance" after a restart, in every worker', async () => {
    await kong.request({}, { worker: 0 });
    await kong.request({}, { worker: 1 });
    const pid = kong.serverPid;
    await kong.restartServer();
    expect(kong.serverPid).not.toBe(pid);
    expect(kong.serverSpawns).toBe(2);

    const r = await kong.request({ headers: { cookie: 's=after' } }, { worker: 0 });
    expect(r.rpc[0]).toMatchObject({ method: 'plugin.HandleEvent', error: expect.stringMatching(/no plugin instance/) });
    expect(r.rpc.slice(1).map((x) => x.method)).toEqual(['plugin.StartInstance', 'plugin.HandleEvent', 'plugin.Step', 'plugin.Step']);
    expect(r.logs).toContainEqual(expect.objectContaining({ level: 'warn', message: expect.stringMatching(/no plugin instance/) }));
    expect(r.status).toBe(200);
    expect(r.target).toBeDefined();
    expect(r.pdkCalls[0]?.result).toBe('after');

    // the reset was broadcast: worker 1 starts a fresh instance without hitting the error
    const w1 = await kong.request({}, { worker: 1 });
    expect(w1.rpc.map((x) => x.method)).toEqual(['plugin.StartInstance', 'plugin.HandleEvent', 'plugin.Step', 'plugin.Step']);
    expect(kong.kongLog().some((e) => e.message.startsWith("external pluginserver 'sticky-session' terminated"))).toBe(true);
  });
});

describe('what the upstream gets', () => {
  it('after set_target, Host is the target host without port, even with preserve_host', async () => {
    const hosts: string[] = [];
    const upstream = (req: { hostHeader: string; headers: ReadonlyArray<readonly [string, string]> }) => {
      hosts.push(req.hostHeader);
      expect(req.headers.filter(([n]) => n.toLowerCase() === 'host')).toEqual([['Host', req.hostHeader]]);
      return { status: 204 };
    };
    const service = { id: 'svc', host: 'shop.default.8080.svc', port: 8080 };
    const r = await kong.request({ host: 'shop.example', service, route: { id: 'r', preserve_host: true } }, { upstream });
    expect(r.status).toBe(204);
    await kong.request({ host: 'shop.example', service, route: { id: 'r', preserve_host: false } }, { upstream });
    expect(hosts).toEqual(['10.0.0.7', '10.0.0.7']);
  });
});

describe('plugin server down', () => {
  const logged = (r: { logs: ReadonlyArray<{ level: string; message: string }> }) => r.logs.map((l) => [l.level, l.message]);

  it('fails open with a connect error once the server is gone, then recovers once Kong respawned it', async () => {
    await kong.request({}, { worker: 0 });
    expect(kong.poolStats(0).idle).toBeGreaterThan(0);
    await kong.killServer();
    // nginx dropped the pooled connections the dead server closed: the next call connects anew
    expect(kong.poolStats(0).idle).toBe(0);
    const down = await kong.request({}, { worker: 0 });
    expect(down.status).toBe(200);
    expect(down.target).toBeUndefined();
    // SIGKILL leaves the socket file (refused) until the respawning server replaces it (absent)
    expect(down.error).toMatch(/^(connection refused|no such file or directory)$/);
    expect(down.rpc).toEqual([{ method: 'plugin.HandleEvent', msgid: expect.any(Number), error: down.error }]);
    // mp_rpc: Rpc:call logs the failed connect, handle_event logs the error it returned
    expect(logged(down)).toEqual([
      ['err', `trying to connect: ${down.error as string}`],
      ['err', down.error],
    ]);
    await kong.waitForServer();
    const up = await kong.request({}, { worker: 0 });
    expect(up.target).toBeDefined();
    expect(up.rpc[0]?.error).toMatch(/no plugin instance/);
  });

  it('reads "no data" when the server dies while a pooled connection waits for its answer', async () => {
    const warm = await kong.request({}, { worker: 0 });
    expect(warm.target).toBeDefined();
    const before = kong.poolStats(0);
    expect(before.idle).toBeGreaterThan(0);
    // A stopped server still accepts the request into its socket buffer but never answers.
    process.kill(kong.serverPid as number, 'SIGSTOP');
    const pending = kong.request({}, { worker: 0 });
    for (let i = 0; i < 200 && kong.poolStats(0).busy === 0; i++) await new Promise((r) => setTimeout(r, 5));
    expect(kong.poolStats(0)).toMatchObject({ busy: 1, connects: before.connects, reuses: before.reuses + 1 });
    await kong.killServer();
    const cut = await pending;
    expect(cut.status).toBe(200);
    expect(cut.target).toBeUndefined();
    expect(cut.hung).toBeUndefined();
    expect(cut.rpc).toEqual([{ method: 'plugin.HandleEvent', msgid: expect.any(Number), error: 'no data' }]);
    expect(logged(cut)).toEqual([['err', 'no data']]);
    await kong.waitForServer();
    expect((await kong.request({}, { worker: 0 })).target).toBeDefined();
  });
});

describe('two Kong replicas', () => {
  it('run two plugin servers side by side, each with its own prefix and instances', async () => {
    const other = await KongEmulator.start({ pluginsDir: FLOOR });
    try {
      expect(other.prefixDir).not.toBe(kong.prefixDir);
      expect(other.serverPid).not.toBe(kong.serverPid);
      other.addPlugin({ config: { cookie_name: 's', target_port: 7000 } });
      // The first emulator's server was just respawned by the test above: let it settle.
      for (let i = 0; i < 50 && (await kong.request({ headers: { cookie: 's=1' } })).target?.port !== 9002; i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      const [a, b] = await Promise.all([kong.request({ headers: { cookie: 's=1' } }), other.request({ headers: { cookie: 's=1' } })]);
      expect(a.target?.port).toBe(9002);
      expect(b.target?.port).toBe(7000);
      expect(b.instanceId).toBe(0);
    } finally {
      await other.stop();
    }
  });
});
