import { describe, expect, it } from 'vitest';
import type { KongPdk } from '../../src/kong/pdk.js';
import { setTargetKeepingHost } from '../../src/kong/upstream-host.js';

/**
 * Kong's side of the three calls, with what they do to $upstream_host as Kong's Lua does
 * (service.lua set_target, service/request.lua set_header): the calls are recorded, and
 * `upstreamHost` is what access.after would find afterwards.
 */
function fakeKong(upstreamHost: string) {
  const state = { upstreamHost, calls: [] as string[] };
  const kong = {
    nginx: {
      getVar: async (name: string) => {
        state.calls.push(`get_var ${name}`);
        return name === 'upstream_host' ? state.upstreamHost : null;
      },
    },
    service: {
      setTarget: async (host: string, port: number) => {
        state.calls.push(`set_target ${host}:${port}`);
        state.upstreamHost = host;
      },
      request: {
        setHeader: async (name: string, value: string) => {
          state.calls.push(`set_header ${name}=${value}`);
          if (name.toLowerCase() === 'host') state.upstreamHost = value;
        },
      },
    },
  } as unknown as KongPdk;
  return { kong, state };
}

describe('setTargetKeepingHost', () => {
  it('a preserve_host route: the client Host the router put in $upstream_host is put back after set_target', async () => {
    const { kong, state } = fakeKong('Shop.Example:8000');
    await setTargetKeepingHost(kong, '192.0.2.10', 8080);
    expect(state.calls).toEqual(['get_var upstream_host', 'set_target 192.0.2.10:8080', 'set_header Host=Shop.Example:8000']);
    expect(state.upstreamHost).toBe('Shop.Example:8000');
  });

  it('a Host a plugin before ours set (request-transformer) is kept too, on any route', async () => {
    const { kong, state } = fakeKong('internal.shop');
    await setTargetKeepingHost(kong, '192.0.2.10', 8080);
    expect(state.upstreamHost).toBe('internal.shop');
  });

  it('nothing to keep: no write, set_target\'s host stays (Kong would add a non-default port)', async () => {
    const { kong, state } = fakeKong('');
    await setTargetKeepingHost(kong, '192.0.2.10', 8080);
    expect(state.calls).toEqual(['get_var upstream_host', 'set_target 192.0.2.10:8080']);
    expect(state.upstreamHost).toBe('192.0.2.10');
  });
});
