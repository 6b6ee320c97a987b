/**
 * nameService: the handler names a binding once it learns the Kong service's name; from then
 * on that binding's decision counts and decision lines carry `service_name` beside `service`.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { Decision } from '../../src/affinity/decision.js';
import { logDecision, nameService, observeDecision, serviceName } from '../../src/observability/index.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { parseMetrics, sample } from './helpers.js';

const NOT_SYNCED: Decision = { kind: 'passthrough', reason: 'not-synced' };
const BINDING = 'service:5f1c0000-aaaa-4bbb-8ccc-000000000001';
const OTHER = 'service:5f1c0000-aaaa-4bbb-8ccc-000000000002';

describe('nameService', () => {
  it('labels the binding\'s counters with service_name from then on; unnamed bindings have none', async () => {
    const metrics = createMetrics();
    observeDecision(NOT_SYNCED, BINDING);
    observeDecision(NOT_SYNCED, OTHER);
    const fail = (m: Map<string, number>, labels: Record<string, string>) =>
      m.get(sample('sticky_session_decisions_total', { ...labels, outcome: 'fail_open', reason: 'not-synced' }));

    const before = parseMetrics(await metrics.scrape());
    expect(fail(before, { service: BINDING })).toBe(1);

    nameService(BINDING, 'shop');
    expect(serviceName(BINDING)).toBe('shop');
    observeDecision(NOT_SYNCED, BINDING);
    const after = parseMetrics(await metrics.scrape());
    // The same counter, now with the name: no series of the binding stays without it.
    expect(fail(after, { service: BINDING, service_name: 'shop' })).toBe(2);
    expect(fail(after, { service: BINDING })).toBeUndefined();
    expect(fail(after, { service: OTHER })).toBe(1);
    expect(after.get(sample('sticky_session_token_rejections_total', { service: BINDING, service_name: 'shop', reason: 'malformed' }))).toBe(0);

    // Renamed in Kong: the new name replaces the old one; an empty name forgets it.
    nameService(BINDING, 'store');
    expect(fail(parseMetrics(await metrics.scrape()), { service: BINDING, service_name: 'store' })).toBe(2);
    nameService(BINDING, '');
    expect(fail(parseMetrics(await metrics.scrape()), { service: BINDING })).toBe(2);
  });

  it('puts service_name on the binding\'s decision lines', () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'debug' }, { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) });
    logDecision(logger, NOT_SYNCED, OTHER, undefined);
    nameService(OTHER, 'orders');
    logDecision(logger, NOT_SYNCED, OTHER, undefined);
    expect(lines.map((l) => [l.service, l.service_name])).toEqual([
      [OTHER, undefined],
      [OTHER, 'orders'],
    ]);
  });
});
