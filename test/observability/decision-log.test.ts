/**
 * Decision lines as they reach stderr (pino's destination stream, captured): one per
 * request when an instance's log_level (or the process level) says debug, with service,
 * source, pod and affinity status, and never a token or a secret.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { log } from '../../src/log.js';
import { plugin, send, SECRET } from './helpers.js';

const TARGETS = ['192.0.2.10:8080', '192.0.2.11:8080'];
let lines: Array<Record<string, unknown>> = [];
let raw = '';
let savedLevel = '';

beforeAll(() => {
  const stream = (log as unknown as Record<symbol, { write(s: string): boolean }>)[pino.symbols.streamSym]!;
  vi.spyOn(stream, 'write').mockImplementation((s: string) => {
    raw += s;
    lines.push(JSON.parse(s) as Record<string, unknown>);
    return true;
  });
  // The process level at its default (STICKY_SESSION_LOG_LEVEL unset): only log_level turns decision lines on.
  savedLevel = log.level;
  log.level = 'info';
});
afterAll(() => {
  log.level = savedLevel;
  vi.restoreAllMocks();
});

const decisions = () => lines.filter((l) => l.msg === 'decision');

describe('decision lines', () => {
  it('log_level debug: one line per decision, with service, source, pod and affinity status', async () => {
    lines = [];
    const p = plugin({ service_id: 'svc-log', targets: TARGETS, log_level: 'debug' });
    const first = await send(p);
    const token = first.token()!;
    await send(p, token);
    await send(p, 'garbage-token-value');
    const again = plugin({ service_id: 'svc-log', targets: [TARGETS.find((t) => t !== first.target())!], log_level: 'debug' });
    const moved = await send(again, token);

    const got = decisions();
    expect(got).toHaveLength(4);
    for (const l of got) {
      expect(l).toMatchObject({ level: 20, name: 'sticky-session', service: 'service:svc-log', pid: process.pid });
      expect(l.source).toMatch(/^static:[0-9a-f]{16}$/);
    }
    expect(got.map((l) => [l.decision, l.outcome, l.affinity])).toEqual([
      ['new', 'new', 'none'],
      ['pin', 'pinned', 'pinned'],
      ['new', 'new', 'malformed'],
      ['repin', 'repinned', 'gone'],
    ]);
    expect(got[0]).toMatchObject({ pod: first.target(), endpoint: first.target(), condition: 'ready' });
    expect(got[3]).toMatchObject({ pod: moved.target() });
    expect(got[3]!.source).not.toBe(got[0]!.source);

    // Neither the tokens sent nor those issued, nor the secret, appear anywhere.
    for (const t of [token, moved.token()!, SECRET]) expect(raw).not.toContain(t);
  });

  it('log_level info or above: no decision lines, whatever the traffic', async () => {
    lines = [];
    for (const level of ['info', 'warn', 'error'] as const) {
      const p = plugin({ service_id: `svc-quiet-${level}`, targets: TARGETS, log_level: level });
      await send(p, (await send(p)).token());
    }
    expect(decisions()).toEqual([]);
  });

  it('no log_level: the process level (info by default) decides', async () => {
    lines = [];
    const p = plugin({ service_id: 'svc-default', targets: TARGETS });
    await send(p);
    expect(decisions()).toEqual([]);
  });

  it('fail open is a decision too', async () => {
    lines = [];
    // A Kong service host that names no Service: nothing to route with, Kong balances.
    const p = plugin({ service_id: 'svc-open', log_level: 'debug' });
    vi.spyOn(log, 'error').mockImplementation(() => undefined);
    await send(p);
    expect(decisions()).toEqual([expect.objectContaining({ decision: 'passthrough', outcome: 'fail_open', affinity: 'not-synced', service: 'service:svc-open' })]);
  });
});
