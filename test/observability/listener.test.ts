/** The listener's settings and failure modes: env parsing, loopback default, a port in use. */
import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { log } from '../../src/log.js';
import { ensureObservability, observabilityAddress, observabilityConfig, stopObservability } from '../../src/observability/index.js';
import { ObservabilityListener } from '../../src/observability/server.js';
import { http } from './helpers.js';

afterEach(async () => {
  await stopObservability();
  vi.restoreAllMocks();
});

/** A port some other process holds. */
async function occupiedPort(): Promise<{ port: number; server: Server }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as { port: number }).port, server };
}

describe('observabilityConfig', () => {
  it('is off unless STICKY_SESSION_METRICS_PORT is set', () => {
    expect(observabilityConfig({})).toBeUndefined();
    expect(observabilityConfig({ STICKY_SESSION_METRICS_PORT: '' })).toBeUndefined();
    expect(observabilityConfig({ STICKY_SESSION_METRICS_ADDRESS: '0.0.0.0' })).toBeUndefined();
  });

  it('binds to loopback unless told otherwise', () => {
    expect(observabilityConfig({ STICKY_SESSION_METRICS_PORT: '9542' })).toEqual({ port: 9542, address: '127.0.0.1' });
    expect(observabilityConfig({ STICKY_SESSION_METRICS_PORT: ' 9100 ', STICKY_SESSION_METRICS_ADDRESS: '0.0.0.0' })).toEqual({
      port: 9100,
      address: '0.0.0.0',
    });
  });

  it('turns metrics off with a warning on a bad port', () => {
    const warn = vi.spyOn(log, 'warn').mockImplementation(() => undefined);
    for (const bad of ['http', '-1', '65536', '80.5', '1e3']) {
      expect(observabilityConfig({ STICKY_SESSION_METRICS_PORT: bad })).toBeUndefined();
    }
    expect(warn).toHaveBeenCalledTimes(5);
  });
});

describe('ensureObservability', () => {
  it('starts one listener, whatever the number of calls', async () => {
    vi.spyOn(log, 'info').mockImplementation(() => undefined);
    ensureObservability({ STICKY_SESSION_METRICS_PORT: '0' });
    const first = await observabilityAddress();
    ensureObservability({ STICKY_SESSION_METRICS_PORT: '0' });
    expect(await observabilityAddress()).toEqual(first);
    expect(first?.address).toBe('127.0.0.1');
    expect((await http(`http://127.0.0.1:${first!.port}/status`)).status).toBe(200);
  });

  it('does nothing when metrics are off', async () => {
    ensureObservability({});
    expect(await observabilityAddress()).toBeUndefined();
  });

  it('logs a port in use and carries on', async () => {
    const { port, server } = await occupiedPort();
    const warn = vi.spyOn(log, 'warn').mockImplementation(() => undefined);
    try {
      expect(() => ensureObservability({ STICKY_SESSION_METRICS_PORT: String(port) })).not.toThrow();
      expect(await observabilityAddress()).toBeUndefined();
      expect(warn).toHaveBeenCalledWith(expect.objectContaining({ port, address: '127.0.0.1' }), expect.stringMatching(/port in use/));
    } finally {
      server.close();
    }
  });
});

describe('ObservabilityListener', () => {
  it('takes its port once the process holding it lets go', async () => {
    const { port, server } = await occupiedPort();
    vi.spyOn(log, 'warn').mockImplementation(() => undefined);
    const info = vi.spyOn(log, 'info').mockImplementation(() => undefined);
    const listener = new ObservabilityListener({ port, address: '127.0.0.1', retryMs: 50 });
    try {
      expect(await listener.ready).toBeUndefined();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      for (let i = 0; i < 100 && !listener.address(); i++) await new Promise((r) => setTimeout(r, 20));
      expect(listener.address()?.port).toBe(port);
      expect(info).toHaveBeenCalledWith(expect.objectContaining({ port }), expect.stringMatching(/listening/));
      expect((await http(`http://127.0.0.1:${port}/status`)).status).toBe(200);
    } finally {
      await listener.close();
    }
  });

  it('gives up on an address it can never bind, without throwing', async () => {
    const warn = vi.spyOn(log, 'warn').mockImplementation(() => undefined);
    // 192.0.2.0/24 is reserved for documentation: no interface of this machine has it.
    const listener = new ObservabilityListener({ port: 0, address: '192.0.2.1', retryMs: 10 });
    expect(await listener.ready).toBeUndefined();
    expect(warn).toHaveBeenCalledWith(expect.objectContaining({ address: '192.0.2.1' }), expect.stringMatching(/not started/));
    await listener.close();
  });
});
