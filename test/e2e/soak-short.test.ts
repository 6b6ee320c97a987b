/**
 * The soak in small, for CI (issue 6): the same driver as `npm run soak`
 * (test/harness/scenario-rolling-update.ts), 300 sessions through one rolling update of
 * 3 pods, two plugin-server replicas with two workers each. Zero violations of every kind,
 * and the plugin servers' own decision counters match the requests as judged.
 */
import { describe, expect, it } from 'vitest';
import { formatReport, runRollingUpdates, totalViolations } from '../harness/scenario-rolling-update.js';

describe('soak (short)', () => {
  it('300 sessions through a rolling update: zero violations', async () => {
    const report = await runRollingUpdates({ sessions: 300, rounds: 1, dwellMs: 200, probes: 4, seed: 42 });
    const table = formatReport(report);
    expect(totalViolations(report), table).toBe(0);
    expect(report.sessions, table).toBe(300);
    expect(report.rounds).toBe(1);
    expect(report.repins.gone, table).toBeGreaterThan(0);
    expect(report.repins.other, table).toBe(0);
    expect(report.pinnedDraining, table).toBeGreaterThan(0);
    expect(report.probes.compared, table).toBeGreaterThan(0);
    expect(report.metrics?.agree, report.metrics?.detail).toBe(true);
  }, 30_000);
});
