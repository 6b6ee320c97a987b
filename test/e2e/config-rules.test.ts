/**
 * No config that Kong accepts may break a route. Through the real plugin server (started as
 * the image starts it) behind the Kong emulator, whose Admin API validates against the
 * schema the server dumps, as Kong does:
 * - every rule Kong's schema language can express is refused up front, naming the field;
 * - each rule only the plugin can check (one test each) leaves the route to Kong: 200 from
 *   Kong's balancer, no cookie, the error naming the field in the log, the metrics and
 *   the status view.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KongEmulator, KongSchemaError } from '../harness/kong-emulator.js';
import { http, parseMetrics, sample } from '../observability/helpers.js';
import { freePort } from '../support/free-port.js';

const SECRET = 'e2e-secret-0123456789abcdef0123456789';
const SERVICE = { id: '0e3c1c3e-2222-4c4c-9a9a-000000000002', name: 'shop', host: 'shop.internal', port: 80, protocol: 'http' };
const A = '192.0.2.10:8080';

let kong: KongEmulator;
let failover: KongEmulator;
let metricsPort: number;

beforeAll(async () => {
  metricsPort = await freePort();
  [kong, failover] = await Promise.all([
    KongEmulator.start({ useDockerfile: true, env: { STICKY_SESSION_METRICS_PORT: String(metricsPort) } }),
    KongEmulator.start({ pluginsDir: 'plugins-failover' }),
  ]);
});

afterAll(async () => {
  await Promise.all([kong?.stop(), failover?.stop()]);
});

/** The Admin API's answer to a plugin with this config: the error fields, or undefined if stored. */
function refusal(emulator: KongEmulator, config: Record<string, unknown>): string | undefined {
  try {
    const id = emulator.addPlugin({ service: SERVICE.id, config: { secrets: [SECRET], ...config } }).id;
    emulator.removePlugin(id);
    return undefined;
  } catch (e) {
    expect(e).toBeInstanceOf(KongSchemaError);
    return JSON.stringify((e as KongSchemaError).fields);
  }
}

describe('rules in the schema: Kong refuses the config, naming the field', () => {
  it.each([
    ['a misspelled option', 'echo-3:80 drainig', /targets.*expected \\"host:port\\"/],
    ['no port', 'echo-3', /targets.*expected \\"host:port\\"/],
    ['port 0', 'echo-3:0', /targets.*port must be 1-65535/],
    ['port 65536', 'echo-3:65536', /targets.*port must be 1-65535/],
    ['port of six digits', '[2001:db8::1]:100000', /targets.*expected \\"host:port\\"/],
    ['weight 0', 'echo-3:80 weight=0', /targets.*weight must be 1-1000/],
    ['weight 1001', 'echo-3:80 draining weight=1001', /targets.*weight must be 1-1000/],
  ])('targets: %s ("%s")', (_what, target, says) => {
    expect(refusal(kong, { targets: [A, target] })).toMatch(says);
  });

  it.each(['echo-3:80', ' echo-3:80  weight=5   draining ', 'echo-3:80 draining weight=1000', '[2001:db8::1]:65535', '10.0.0.1:1'])(
    'targets: accepts "%s"',
    (target) => {
      expect(refusal(kong, { targets: [A, target] })).toBeUndefined();
    },
  );

  it('targets and kubernetes_* together', () => {
    expect(refusal(kong, { targets: [A], kubernetes_service: 'cart' })).toBe(
      JSON.stringify({ config: { '@entity': ["these sets are mutually exclusive: ('targets'), ('kubernetes_service')"] } }),
    );
    expect(refusal(kong, { targets: [], kubernetes_service: 'cart', kubernetes_namespace: 'shop' })).toBeUndefined();
  });

  it('a user-agent pattern that is no regular expression (PCRE, as Kong compiles it)', () => {
    expect(refusal(kong, { targets: [A], cookie_same_site_none_exempt_user_agents: ['Chrome/5[1-9'] })).toMatch(
      /cookie_same_site_none_exempt_user_agents.*not a valid regex/,
    );
  });

  it('change_on_failure and its fields on the access-only plugin: unknown fields', () => {
    for (const field of ['change_on_failure', 'failure_statuses', 'failure_timeout']) {
      const value = field === 'change_on_failure' ? true : field === 'failure_statuses' ? [502] : 5;
      expect(refusal(kong, { targets: [A], [field]: value })).toBe(JSON.stringify({ config: { [field]: 'unknown field' } }));
    }
  });

  it('the failover plugin has the same name and takes change_on_failure', () => {
    expect(failover.info.Name).toBe(kong.info.Name);
    expect(refusal(failover, { targets: [A], change_on_failure: true, failure_statuses: [503] })).toBeUndefined();
    expect(refusal(failover, { targets: [A], failure_statuses: [404] })).toMatch(/failure_statuses.*between 500 and 599/);
  });
});

describe('rules only the plugin can check: the route is left to Kong', () => {
  async function metric(field: string, service: string): Promise<number | undefined> {
    const m = parseMetrics((await http(`http://127.0.0.1:${metricsPort}/metrics`)).body);
    return m.get(sample('sticky_session_config_errors', { field, service }));
  }

  async function statusErrors(): Promise<Array<{ service: string; field: string; message: string; instances: number }>> {
    return JSON.parse((await http(`http://127.0.0.1:${metricsPort}/status`)).body).configErrors;
  }

  it.each([
    ['an IPv4 address out of range', { targets: [A, '192.0.2.300:8080'] }, 'targets[2]', /"192\.0\.2\.300" is not a valid IPv4 address/],
    ['an IPv6 address that is none', { targets: [A, '[1:2:3:4:5:6:7:8:9]:80'] }, 'targets[2]', /is not an IPv6 address/],
    ['the same target twice', { targets: [A, ' 192.0.2.10:8080 draining'] }, 'targets[2]', /listed twice/],
    ['a vault reference Kong did not resolve', { secrets: ['{vault://env/sticky-secret}'], targets: [A] }, 'secrets[1]', /vault reference/],
    [
      'a user-agent pattern PCRE takes and JavaScript does not',
      { targets: [A], cookie_same_site: 'None', cookie_same_site_none_exempt_user_agents: ['Chrome/5[1-9]', 'Safari++'] },
      'cookie_same_site_none_exempt_user_agents[2]',
      /not a JavaScript regular expression/,
    ],
  ])('%s', async (_what, config, field, says) => {
    // A Kong service of its own, so the instances of other cases do not count here.
    const serviceId = randomUUID();
    const service = `service:${serviceId}`;
    const plugin = kong.addPlugin({ service: serviceId, config: { secrets: [SECRET], ...config } });
    try {
      for (let i = 0; i < 3; i++) {
        const r = await kong.request({ service: { ...SERVICE, id: serviceId } }, { plugin: plugin.id });
        // As if the plugin were absent: Kong's balancer, no cookie, the event finished.
        expect(r.status).toBe(200);
        expect(r.eventFinished).toBe(true);
        expect(r.target).toBeUndefined();
        expect(r.responseHeaders['set-cookie']).toBeUndefined();
      }
      const lines = kong
        .serverLog()
        .split('\n')
        .filter((l) => l.includes(`"service":"${service}"`) && l.includes(`"field":"${field}"`));
      expect(lines.length).toBeGreaterThanOrEqual(1);
      // Logged at error level when the instance starts, not once per request.
      expect(lines.length).toBeLessThan(3);
      const line = JSON.parse(lines[0]!.slice(lines[0]!.indexOf('{'))) as { level: number; msg: string };
      expect(line.level).toBe(50);
      expect(line.msg).toContain(`invalid config.${field}`);
      expect(line.msg).toMatch(says);
      expect(await metric(field, service)).toBe(1);
      expect(await statusErrors()).toContainEqual(expect.objectContaining({ service, field, instances: 1, message: expect.stringMatching(says) }));
    } finally {
      kong.removePlugin(plugin.id);
    }
  });
});
