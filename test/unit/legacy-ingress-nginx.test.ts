/**
 * ingress-nginx affinity cookies (accept_legacy_cookies), against vectors derived from the
 * published algorithms, never from our implementation.
 *
 * Persistent mode (util/nodemap.lua create_map: `hash_map[ngx.md5(salt .. endpoint)] = endpoint`,
 * salt = the backend name, sticky_persistent.lua; endpoint = "address:port", util.lua
 * get_nodes; IPv6 addresses in brackets, balancer.lua format_ipv6_endpoints). ngx.md5 is the
 * lowercase hex MD5, as md5sum prints it. Derived with coreutils, for example:
 *   $ printf '%s' 'default-web-80192.0.2.10:8080' | md5sum
 *   02545ee56210c88259698b995e2f57fe  -
 * (each vector below gives its input string; the same command derives its value). The
 * cookie ingress-nginx sets is `<key>|<backend key>` (sticky.lua set_cookie), the backend key
 * being ngx.md5(ngx.md5(name) .. name):
 *   $ printf '%s' 'default-web-80' | md5sum                                    f76aa3d0c925ed949fc1ed09c5bb1b31
 *   $ printf '%s' 'f76aa3d0c925ed949fc1ed09c5bb1b31default-web-80' | md5sum    6cde5721ec2c7e2bce07cff7d0e4ac37
 *
 * Balanced mode: test/unit/vectors/ingress-nginx-chash.json was written by running
 * lua-resty-balancer's own chash.lua and chash.c (commit 1cd4363c, the version ingress-nginx
 * builds) under LuaJIT: the exact commands are at the top of
 * test/unit/vectors/derive-ingress-nginx-chash.lua. It also reproduces upstream's published
 * t/chash.t TEST 1 (weights 10/2/1, keys 1..100000: 77075 / 14743 / 8182, 2080 points).
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { makeSnapshot, type Endpoint, type EndpointCondition } from '../../src/endpoints/types.js';
import { backendName, nodeName, upstreamKey } from '../../src/legacy/ingress-nginx.js';
import { BalancedRing, buildRing, nodePoints, POINTS_PER_WEIGHT, ringFind } from '../../src/legacy/ingress-nginx-balanced.js';
import { PersistentMap, persistentKey } from '../../src/legacy/ingress-nginx-persistent.js';
import { createLegacyCookie, type LegacyCookieConfig } from '../../src/legacy/index.js';

interface ChashVectors {
  upstreamTest1: { server1: number; server2: number; server3: number; points: number };
  rings: Record<string, { nodes: string[]; points: number; keys: Record<string, string> }>;
}
const vectors = JSON.parse(readFileSync(new URL('./vectors/ingress-nginx-chash.json', import.meta.url), 'utf8')) as ChashVectors;

function ep(hostPort: string, condition: EndpointCondition = 'ready', id = `uid-${hostPort}`): Endpoint {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(hostPort)!;
  return { id, name: `pod-${hostPort}`, host: m[1]!, port: Number(m[2]), condition, weight: 1 };
}

describe('ingress-nginx cookie basics', () => {
  it('reads the key the way sticky.lua does: the first non-empty piece between "|"', () => {
    expect(upstreamKey('02545ee56210c88259698b995e2f57fe|6cde5721ec2c7e2bce07cff7d0e4ac37')).toBe('02545ee56210c88259698b995e2f57fe');
    expect(upstreamKey('1733300037.919.4001.104729')).toBe('1733300037.919.4001.104729');
    expect(upstreamKey('|abc|def')).toBe('abc'); // gmatch("([^|]+)") skips empty pieces
    expect(upstreamKey('||')).toBeUndefined();
    expect(upstreamKey('')).toBeUndefined();
  });

  it('names endpoints "address:port", IPv6 in brackets', () => {
    expect(nodeName({ host: '192.0.2.10', port: 8080 })).toBe('192.0.2.10:8080');
    expect(nodeName({ host: '2001:db8::7', port: 80 })).toBe('[2001:db8::7]:80');
  });

  it('names backends <namespace>-<service>-<port> (controller/util.go upstreamName), port as named', () => {
    expect(backendName({ namespace: 'default', service: 'web', port: 80 })).toBe('default-web-80');
    expect(backendName({ namespace: 'shop', service: 'cart', port: 'http' })).toBe('shop-cart-http');
    expect(backendName({ namespace: 'shop', service: 'cart', port: null })).toBeUndefined();
  });
});

describe('persistent mode: md5(backend name + address:port)', () => {
  // [salt, node, md5sum of salt+node]
  const md5sum: Array<[string, string, string]> = [
    ['default-web-80', '192.0.2.10:8080', '02545ee56210c88259698b995e2f57fe'],
    ['default-web-80', '192.0.2.11:8080', '3d8f889eaf1d382a75e90a23fc8b8b46'],
    ['default-web-80', '192.0.2.12:8080', '1598fd91658b9ed1e12b48199a7c7c12'],
    ['shop-cart-http', '192.0.2.10:8080', '7b03b6e4acaffb57fbfe61756d3364b1'],
    ['shop-cart-8080', '[2001:db8::7]:8080', '05099f2d659cd64fdd278f1070e4dade'],
    // The salt and endpoint of ingress-nginx's own test/util/nodemap_test.lua.
    ['access-router-production-web-80', '10.184.7.40:8080', 'ce8f959dcbe10d546cb8a4cc705e10f0'],
  ];
  it.each(md5sum)('key of %s + %s', (salt, node, key) => {
    expect(persistentKey(salt, node)).toBe(key);
  });

  const a = ep('192.0.2.10:8080');
  const b = ep('192.0.2.11:8080', 'draining');
  const c = ep('192.0.2.12:8080');
  const s = makeSnapshot(1, [a, b, c]);

  it('finds the serving endpoint a key names, ready or draining', () => {
    const map = new PersistentMap('default-web-80');
    expect(map.find(s, '02545ee56210c88259698b995e2f57fe')).toBe(a);
    expect(map.find(s, '3d8f889eaf1d382a75e90a23fc8b8b46')).toBe(b);
    expect(map.find(s, '1598fd91658b9ed1e12b48199a7c7c12')).toBe(c);
  });

  it('a key of another backend, a removed endpoint or garbage names nothing', () => {
    const map = new PersistentMap('default-web-80');
    expect(map.find(s, '7b03b6e4acaffb57fbfe61756d3364b1')).toBeUndefined(); // shop-cart-http's
    expect(map.find(makeSnapshot(2, [a, c]), '3d8f889eaf1d382a75e90a23fc8b8b46')).toBeUndefined();
    expect(map.find(s, '02545EE56210C88259698B995E2F57FE')).toBeUndefined(); // a Lua table lookup: exact
    expect(map.find(s, 'garbage')).toBeUndefined();
  });

  it('is rebuilt when the view changes, not per lookup', () => {
    const map = new PersistentMap('default-web-80');
    const moved = { ...a, host: '192.0.2.12' }; // another pod now holds 192.0.2.12
    expect(map.find(s, '02545ee56210c88259698b995e2f57fe')).toBe(a);
    const s2 = makeSnapshot(2, [moved]);
    expect(map.find(s2, '02545ee56210c88259698b995e2f57fe')).toBeUndefined();
    expect(map.find(s2, '1598fd91658b9ed1e12b48199a7c7c12')).toBe(moved);
  });
});

describe('balanced mode: lua-resty-balancer chash ring', () => {
  it('reproduces lua-resty-balancer t/chash.t TEST 1 (published: 77075 / 14743 / 8182, 2080 points)', () => {
    const ring = buildRing(new Map([['server1', 10], ['server2', 2], ['server3', 1]]));
    expect(ring.points.length).toBe(vectors.upstreamTest1.points);
    expect(ring.points.length).toBe(2080);
    const counts: Record<string, number> = {};
    for (let i = 1; i <= 100_000; i++) {
      const n = ringFind(ring, String(i))!;
      counts[n] = (counts[n] ?? 0) + 1;
    }
    expect(counts).toEqual({ server1: 77075, server2: 14743, server3: 8182 });
    expect(counts).toEqual({ server1: vectors.upstreamTest1.server1, server2: vectors.upstreamTest1.server2, server3: vectors.upstreamTest1.server3 });
  });

  for (const [name, r] of Object.entries(vectors.rings)) {
    it(`ring "${name}" (${r.nodes.join(', ')}): every key lands where the real chash puts it`, () => {
      const ring = buildRing(new Map(r.nodes.map((n) => [n, 1])));
      expect(ring.points.length).toBe(r.points);
      expect(Object.keys(r.keys).length).toBeGreaterThan(300);
      for (const [key, node] of Object.entries(r.keys)) expect([key, ringFind(ring, key)]).toEqual([key, node]);
    });
  }

  it('BalancedRing maps keys onto the view\'s ready endpoints only, as ingress-nginx does', () => {
    const three = vectors.rings['three']!;
    const endpoints = three.nodes.map((n) => ep(n));
    const all = makeSnapshot(1, endpoints);
    const ring = new BalancedRing();
    for (const [key, node] of Object.entries(three.keys)) expect(ring.find(all, key)?.id).toBe(`uid-${node}`);

    // 192.0.2.11 starts terminating (still serving): ingress-nginx's ring drops it (Ready=false),
    // and so does ours: its keys go where the ring without it sends them.
    const minus = vectors.rings['three-minus-11']!;
    const draining = makeSnapshot(2, [endpoints[0]!, { ...endpoints[1]!, condition: 'draining' }, endpoints[2]!]);
    for (const [key, node] of Object.entries(minus.keys)) expect(ring.find(draining, key)?.id).toBe(`uid-${node}`);
    // Keys of the other pods do not move.
    for (const [key, node] of Object.entries(three.keys)) {
      if (node !== '192.0.2.11:8080') expect(ring.find(draining, key)?.id).toBe(`uid-${node}`);
    }

    // Scale-out: a new ready pod takes its share of keys, as in ingress-nginx.
    const plus = vectors.rings['three-plus-13']!;
    const scaled = makeSnapshot(3, [...endpoints, ep('192.0.2.13:8080')]);
    for (const [key, node] of Object.entries(plus.keys)) expect(ring.find(scaled, key)?.id).toBe(`uid-${node}`);
  });

  it('IPv6 endpoints are named in brackets on the ring', () => {
    const mixed = vectors.rings['mixed']!;
    const s = makeSnapshot(1, mixed.nodes.map((n) => ep(n)));
    const ring = new BalancedRing();
    for (const [key, node] of Object.entries(mixed.keys)) expect(ring.find(s, key)?.id).toBe(`uid-${node}`);
  });

  it('an empty ring (no ready endpoint) selects nothing', () => {
    const ring = new BalancedRing();
    expect(ring.find(makeSnapshot(1, [ep('192.0.2.10:8080', 'draining')]), 'a')).toBeUndefined();
    expect(ringFind(buildRing(new Map()), 'a')).toBeUndefined();
  });

  it('points follow chash.c: crc32 chained over the previous point, little-endian', () => {
    // Spec check written from chash.c alone (no ring): point i continues the CRC of the node
    // name with the previous point's four bytes; the first with four zero bytes.
    const pts = nodePoints('server1', 3);
    const le = (n: number) => Buffer.from([n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24]);
    expect(pts[0]).toBe(crc32Ref(Buffer.concat([Buffer.from('server1'), le(0)])));
    expect(pts[1]).toBe(crc32Ref(Buffer.concat([Buffer.from('server1'), le(pts[0]!)])));
    expect(pts[2]).toBe(crc32Ref(Buffer.concat([Buffer.from('server1'), le(pts[1]!)])));
    expect(POINTS_PER_WEIGHT).toBe(160);
  });
});

/** IEEE CRC-32 bit by bit from its definition, independent of zlib. */
function crc32Ref(buf: Buffer): number {
  let c = 0xffffffff;
  for (const byte of buf) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

describe('legacy cookie entries', () => {
  const cfg = (over: Partial<LegacyCookieConfig> = {}): LegacyCookieConfig => ({
    format: 'ingress-nginx',
    mode: 'persistent',
    name: 'INGRESSCOOKIE',
    cookieVar: 'cookie_INGRESSCOOKIE',
    backend: null,
    ...over,
  });
  const a = ep('192.0.2.10:8080');
  const s = makeSnapshot(1, [a, ep('192.0.2.11:8080'), ep('192.0.2.12:8080')]);
  const cookie = '02545ee56210c88259698b995e2f57fe|6cde5721ec2c7e2bce07cff7d0e4ac37';

  it('persistent: the backend name comes from the Service when not given', () => {
    const legacy = createLegacyCookie(cfg(), 'service:x');
    expect(legacy.resolve(cookie, s, { namespace: 'default', service: 'web', port: 80 })).toBe(a);
    expect(legacy.resolve(cookie, s, { namespace: 'default', service: 'web', port: 'http' })).toBeUndefined();
  });

  it('persistent: an explicit backend wins', () => {
    const legacy = createLegacyCookie(cfg({ backend: 'default-web-80' }), 'service:x');
    expect(legacy.resolve(cookie, s, undefined)).toBe(a);
    expect(legacy.resolve(cookie, s, { namespace: 'shop', service: 'cart', port: 'http' })).toBe(a);
  });

  it('balanced: the key before "|" is placed on the ring', () => {
    const three = vectors.rings['three']!;
    const legacy = createLegacyCookie(cfg({ mode: 'balanced' }), 'service:x');
    const snapshot = makeSnapshot(1, three.nodes.map((n) => ep(n)));
    for (const [key, node] of Object.entries(three.keys).slice(0, 20)) {
      expect(legacy.resolve(`${key}|6cde5721ec2c7e2bce07cff7d0e4ac37`, snapshot, undefined)?.id).toBe(`uid-${node}`);
    }
    expect(legacy.resolve('|', snapshot, undefined)).toBeUndefined();
  });
});
