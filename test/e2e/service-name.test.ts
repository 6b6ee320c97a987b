/**
 * Metrics and decision lines name the Kong service by name where Kong has one (issue 11
 * part 4), learnt with one router.get_service per instance, only when something reads it,
 * through the real plugin server started as the image starts it.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KongEmulator } from '../harness/kong-emulator.js';
import { http, parseMetrics, sample } from '../observability/helpers.js';
import { freePort } from '../support/free-port.js';

const SECRET = 'e2e-name-secret-0123456789abcdef0123456789';
const A = '192.0.2.10:8080';

let withMetrics: KongEmulator;
let quiet: KongEmulator;
let metricsPort: number;

beforeAll(async () => {
  metricsPort = await freePort();
  [withMetrics, quiet] = await Promise.all([
    KongEmulator.start({ useDockerfile: true, workers: 2, env: { STICKY_SESSION_METRICS_PORT: String(metricsPort) } }),
    KongEmulator.start({ useDockerfile: true, workers: 1 }),
  ]);
});

afterAll(async () => {
  await Promise.all([withMetrics?.stop(), quiet?.stop()]);
});

const methods = (r: { pdkCalls: ReadonlyArray<{ method: string }> }) => r.pdkCalls.map((c) => c.method);

describe('the Kong service name', () => {
  it('is asked once per instance (each nginx worker) and labels the decision counts', async () => {
    const service = { id: randomUUID(), name: 'cart', host: 'cart.internal', port: 80, protocol: 'http' };
    const id = withMetrics.addPlugin({ service: service.id, config: { secrets: [SECRET], targets: [A] } }).id;
    for (const worker of [0, 1]) {
      const first = await withMetrics.request({ service }, { plugin: id, worker });
      expect(methods(first)[0]).toBe('kong.router.get_service');
      expect(first.target).toBeDefined();
      const again = await withMetrics.request({ service }, { plugin: id, worker });
      expect(methods(again)).not.toContain('kong.router.get_service');
    }
    const m = parseMetrics((await http(`http://127.0.0.1:${metricsPort}/metrics`)).body);
    const labels = { service: `service:${service.id}`, service_name: 'cart', outcome: 'new', reason: 'none' };
    expect(m.get(sample('sticky_session_decisions_total', labels))).toBe(4);
    withMetrics.removePlugin(id);
  });

  it('is not asked where nothing reads it (metrics off, no decision lines), nor by a global instance', async () => {
    const service = { id: randomUUID(), name: 'cart', host: 'cart.internal', port: 80, protocol: 'http' };
    const scoped = quiet.addPlugin({ service: service.id, config: { secrets: [SECRET], targets: [A] } }).id;
    expect(methods(await quiet.request({ service }, { plugin: scoped }))).not.toContain('kong.router.get_service');
    quiet.removePlugin(scoped);
    const global = withMetrics.addPlugin({ config: { secrets: [SECRET], targets: [A] } }).id;
    expect(methods(await withMetrics.request({ service }, { plugin: global }))).not.toContain('kong.router.get_service');
    withMetrics.removePlugin(global);
  });

  it('is in the decision lines of an instance that writes them', async () => {
    const service = { id: randomUUID(), name: 'orders', host: 'orders.internal', port: 80, protocol: 'http' };
    const id = quiet.addPlugin({ service: service.id, config: { secrets: [SECRET], targets: [A], log_level: 'debug' } }).id;
    const first = await quiet.request({ service }, { plugin: id });
    expect(methods(first)[0]).toBe('kong.router.get_service');
    await new Promise((r) => setTimeout(r, 200));
    const line = quiet
      .serverLog()
      .split('\n')
      .find((l) => l.includes(`"service":"service:${service.id}"`) && l.includes('"decision"'));
    expect(line).toBeDefined();
    expect(JSON.parse(line!.slice(line!.indexOf('{')))).toMatchObject({ service_name: 'orders', decision: 'new' });
    quiet.removePlugin(id);
  });
});
