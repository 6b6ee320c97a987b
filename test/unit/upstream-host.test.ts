import { describe, expect, it } from 'vitest';
import type { KongPdk } from '../../src/kong-pdk.js';
import { hostToRestore, preserveHostOf, UpstreamHost } from '../../src/upstream-host.js';

/** The PDK calls UpstreamHost makes, answered from a route and $upstream_host; each is recorded. */
function fakeKong(opts: { route?: { id: string; preserve_host?: boolean } | null; upstreamHost?: string | null }) {
  const calls: string[] = [];
  const kong = {
    router: {
      getRoute: async () => {
        calls.push('router.getRoute');
        return opts.route ?? null;
      },
    },
    nginx: {
      getVar: async (name: string) => {
        calls.push(`nginx.getVar ${name}`);
        return name === 'upstream_host' ? (opts.upstreamHost ?? null) : null;
      },
    },
    service: {
      request: {
        setHeader: async (name: string, value: string) => {
          calls.push(`service.request.setHeader ${name}=${value}`);
        },
      },
    },
  } as unknown as KongPdk;
  return { kong, calls };
}

/** One routed request: the Host work around set_target, as the handler does it. */
async function routed(h: UpstreamHost, kong: KongPdk): Promise<void> {
  const host = await h.beforeTarget(kong);
  await h.afterTarget(kong, host);
}

describe('hostToRestore', () => {
  it('is what the router (or a plugin before us) put in $upstream_host; empty means Kong decides', () => {
    expect(hostToRestore('shop.example:8000')).toBe('shop.example:8000');
    expect(hostToRestore('')).toBeUndefined();
    expect(hostToRestore(null)).toBeUndefined();
    expect(hostToRestore(undefined)).toBeUndefined();
  });
});

describe('preserveHostOf', () => {
  it("reads the route's preserve_host, only for the route the instance is bound to", () => {
    expect(preserveHostOf({ id: 'r1', preserve_host: true }, 'r1')).toBe(true);
    expect(preserveHostOf({ id: 'r1', preserve_host: false }, 'r1')).toBe(false);
    expect(preserveHostOf({ id: 'r1' }, 'r1')).toBe(false);
    expect(preserveHostOf({ id: 'r2', preserve_host: true }, 'r1')).toBeUndefined();
    expect(preserveHostOf(null, 'r1')).toBeUndefined();
  });
});

describe('UpstreamHost', () => {
  it('service-bound or global: reads $upstream_host on every request, writes it back when set', async () => {
    const h = new UpstreamHost(null);
    for (let i = 0; i < 2; i++) {
      const preserved = fakeKong({ upstreamHost: 'Shop.Example:8000' });
      await routed(h, preserved.kong);
      expect(preserved.calls).toEqual(['nginx.getVar upstream_host', 'service.request.setHeader Host=Shop.Example:8000']);
      const plain = fakeKong({ upstreamHost: '' });
      await routed(h, plain.kong);
      expect(plain.calls).toEqual(['nginx.getVar upstream_host']);
    }
  });

  it('route-bound, preserve_host=false: asks for the route once, then does nothing', async () => {
    const h = new UpstreamHost('r1');
    const first = fakeKong({ route: { id: 'r1', preserve_host: false }, upstreamHost: '' });
    await routed(h, first.kong);
    expect(first.calls).toEqual(['router.getRoute']);
    const next = fakeKong({ route: { id: 'r1', preserve_host: false }, upstreamHost: '' });
    await routed(h, next.kong);
    expect(next.calls).toEqual([]);
  });

  it('route-bound, preserve_host=true: asks for the route once, then reads and writes Host on every request', async () => {
    const h = new UpstreamHost('r1');
    const first = fakeKong({ route: { id: 'r1', preserve_host: true }, upstreamHost: 'shop.example' });
    await routed(h, first.kong);
    expect(first.calls).toEqual(['router.getRoute', 'nginx.getVar upstream_host', 'service.request.setHeader Host=shop.example']);
    const next = fakeKong({ route: { id: 'r1', preserve_host: true }, upstreamHost: 'other.example:8443' });
    await routed(h, next.kong);
    expect(next.calls).toEqual(['nginx.getVar upstream_host', 'service.request.setHeader Host=other.example:8443']);
    // A client without a Host on a preserve_host route: Kong computes the Host itself.
    const empty = fakeKong({ route: { id: 'r1', preserve_host: true }, upstreamHost: '' });
    await routed(h, empty.kong);
    expect(empty.calls).toEqual(['nginx.getVar upstream_host']);
  });

  it('route-bound, concurrent first requests each ask in their own event', async () => {
    const h = new UpstreamHost('r1');
    const a = fakeKong({ route: { id: 'r1', preserve_host: true }, upstreamHost: 'a.example' });
    const b = fakeKong({ route: { id: 'r1', preserve_host: true }, upstreamHost: 'b.example' });
    await Promise.all([routed(h, a.kong), routed(h, b.kong)]);
    expect(a.calls).toEqual(['router.getRoute', 'nginx.getVar upstream_host', 'service.request.setHeader Host=a.example']);
    expect(b.calls).toEqual(['router.getRoute', 'nginx.getVar upstream_host', 'service.request.setHeader Host=b.example']);
  });

  it('route-bound, but Kong names no route or another one: nothing cached, $upstream_host decides', async () => {
    const h = new UpstreamHost('r1');
    const none = fakeKong({ route: null, upstreamHost: 'shop.example' });
    await routed(h, none.kong);
    expect(none.calls).toEqual(['router.getRoute', 'nginx.getVar upstream_host', 'service.request.setHeader Host=shop.example']);
    const other = fakeKong({ route: { id: 'r2', preserve_host: false }, upstreamHost: '' });
    await routed(h, other.kong);
    expect(other.calls).toEqual(['router.getRoute', 'nginx.getVar upstream_host']);
  });
});
