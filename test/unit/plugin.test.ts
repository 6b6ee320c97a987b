import { afterEach, describe, expect, it, vi } from 'vitest';
import type { KongPdk } from '../../src/kong/pdk.js';
import { log } from '../../src/log.js';
import { configErrors } from '../../src/observability/config-errors.js';
import { decisionCounts, DECISION_SLOTS } from '../../src/observability/decisions.js';
import { StickySessionFailoverPlugin, StickySessionPlugin } from '../../src/kong/plugin.js';
import { kongConfig } from '../support/kong-config.js';

const SECRET = 'plugin-secret-0123456789abcdef0123456789';
let seq = 0;

/** A config as Kong sends it, for a Kong service of its own. */
function config(over: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...kongConfig({ secrets: [SECRET], targets: ['192.0.2.10:8080'] }), service_id: `plugin-test-${++seq}`, ...over };
}

/** A Kong that fails the test if the plugin makes any PDK call. */
const untouchable = new Proxy({}, {
  get(_t, name) {
    throw new Error(`PDK used: kong.${String(name)}`);
  },
}) as KongPdk;

/** A Kong that answers only what a routed request needs, and records the target. */
function routingKong(): KongPdk & { target?: string } {
  const kong: KongPdk & { target?: string } = {
    nginx: { getVar: async () => null },
    service: { setTarget: async (host: string, port: number) => void (kong.target = `${host}:${port}`) },
    request: { getForwardedScheme: async () => 'http', getHeader: async () => null },
    response: { addHeader: async () => undefined },
  } as unknown as KongPdk & { target?: string };
  return kong;
}

function failOpenCount(service: string): number {
  const slot = DECISION_SLOTS.findIndex((s) => s.outcome === 'fail_open' && s.reason === 'config-error');
  return decisionCounts().get(service)?.[slot] ?? 0;
}

afterEach(() => {
  vi.restoreAllMocks();
  vi.useRealTimers();
});

describe('a config the plugin cannot use', () => {
  it('never throws to kong-pdk: the instance stands aside, makes no PDK call and counts the request as left to Kong', async () => {
    const errors = vi.spyOn(log, 'error');
    const cfg = config({ targets: ['192.0.2.10:8080', '192.0.2.300:80'] });
    const p = new StickySessionPlugin(cfg);
    const service = `service:${cfg.service_id as string}`;
    expect(configErrors()).toContainEqual(expect.objectContaining({ service, field: 'targets[2]', message: expect.stringMatching(/not a valid IPv4/) }));
    expect(errors).toHaveBeenCalledTimes(1);
    expect(errors.mock.calls[0]![0]).toEqual({ service, field: 'targets[2]' });

    await p.access(untouchable);
    await p.access(untouchable);
    expect(failOpenCount(service)).toBe(2);
    p.close();
    expect(configErrors().some((e) => e.service === service)).toBe(false);
  });

  it('repeats the error at most every 10 s, at error level', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const errors = vi.spyOn(log, 'error');
    const p = new StickySessionPlugin(config({ secrets: ['{vault://env/sticky}'] }));
    for (let i = 0; i < 5; i++) await p.access(untouchable);
    expect(errors).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(10_000);
    for (let i = 0; i < 5; i++) await p.access(untouchable);
    expect(errors).toHaveBeenCalledTimes(2);
    expect(String(errors.mock.calls[1]![1])).toMatch(/invalid config\.secrets\[1\]: vault reference.*Kong balances/);
    p.close();
  });

  it('change_on_failure: refused by the access-only plugin (no log phase), taken by the failover plugin', async () => {
    const access = new StickySessionPlugin(config({ change_on_failure: true }));
    const failover = new StickySessionFailoverPlugin(config({ change_on_failure: true }));
    expect(configErrors()).toContainEqual(expect.objectContaining({ field: 'change_on_failure' }));
    const kong = routingKong();
    await failover.access(kong);
    expect(kong.target).toBe('192.0.2.10:8080');
    await access.access(untouchable);
    access.close();
    failover.close();
  });

  it('the plugins kong-pdk loads have the phases they should: access; access and log', () => {
    const phases = (c: object): string[] =>
      ['certificate', 'rewrite', 'log', 'access', 'preread', 'response'].filter((ph) => ph in (c as { prototype: object }).prototype);
    expect(phases(StickySessionPlugin)).toEqual(['access']);
    expect(phases(StickySessionFailoverPlugin)).toEqual(['log', 'access']);
  });
});

describe('an instance that cannot start for another reason', () => {
  it('stands aside too, with the error as its message and no field', async () => {
    const p = new StickySessionPlugin(null);
    const listed = configErrors().find((e) => e.message.includes('expected an object'));
    expect(listed).toMatchObject({ service: 'global', field: '', message: 'sticky-session: invalid config: expected an object' });
    await p.access(untouchable);
    p.close();
  });
});
