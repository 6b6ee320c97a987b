/**
 * ingress-nginx `balanced` affinity, its default (balancer/sticky_balanced.lua): the cookie's
 * key is a random string, placed on lua-resty-balancer's consistent-hash ring (resty/chash.lua
 * over chash.c) of the backend's endpoints. The ring is rebuilt here the same way, so a key
 * lands on the endpoint ingress-nginx would pick for it.
 *
 * Which endpoints: ingress-nginx's ring holds the endpoints its controller lists, the ready
 * ones (Ready absent or true; terminating ones are Ready=false), so ours is built from the
 * view's `ready` endpoints, never the draining ones. With the same EndpointSlices both
 * gateways then map every key alike, also while both take traffic during the cut-over. On
 * the first pod change the ring changes as ingress-nginx's does: a pod that starts
 * terminating or goes away hands its keys to the next points of the ring, a new ready pod
 * takes about 1/n of all keys. That moves legacy clients exactly as ingress-nginx would have
 * moved them; clients that already came through Kong hold our token, which wins, and keep
 * their pod through its drain.
 *
 * The ring, as chash.lua and chash.c build it (weight w: 160*w points per node; ingress-nginx
 * gives every endpoint weight 1):
 *   point[0] = crc32(node ‖ le32(0)), point[i] = crc32(node ‖ le32(point[i-1]))
 * (chash.lua seeds chash_point_init with crc32(node) ^ 0xffffffff, the CRC register after
 * `node`; each point continues it with the previous point's 4 bytes, little-endian, and
 * finishes it). Points are sorted by value; a key goes to the first point >= crc32(key),
 * wrapping to the first point (chash.lua _find_id). crc32 is nginx's ngx_crc32_short, the
 * IEEE CRC-32, which is zlib's.
 *
 * What cannot be reproduced: two points of different nodes with the same value. Which node
 * owns that arc then depends on the order of Lua's `pairs()` over the node table (ids and the
 * sort's insertion order follow it), which LuaJIT does not define and which can differ between
 * nginx workers. We give the arc to the node whose name sorts first. Expected number of such
 * ties: about (160n)^2 / 2^33 per ring (0.00005 for 3 pods, 0.015 for 50), each owning about
 * 1/(160n) of the keys.
 *
 * Cost: 160 CRCs per node, remembered per node name across views; per view, one sort of the
 * points (160 per ready endpoint), on the first lookup after the view changed; a lookup is a
 * CRC and a binary search.
 */
import { crc32 } from 'node:zlib';
import type { Endpoint, EndpointSnapshot } from '../endpoints/types.js';
import { nodeName } from './ingress-nginx.js';

/** chash.lua CONSISTENT_POINTS: points per unit of weight. */
export const POINTS_PER_WEIGHT = 160;

/** Node rank bits in a packed point: hash * 2^RANK_BITS + rank, exact in a double. */
const RANK_BITS = 2 ** 20;

/** The first `count` points of a node, in generation order. */
export function nodePoints(node: string, count: number): Uint32Array {
  const base = crc32(node);
  const points = new Uint32Array(count);
  const prev = Buffer.alloc(4);
  for (let i = 0; i < count; i++) {
    const h = crc32(prev, base);
    points[i] = h;
    prev.writeUInt32LE(h, 0);
  }
  return points;
}

export interface Ring {
  /** Node names, sorted. */
  readonly nodes: readonly string[];
  /** Sorted points, each hash * 2^20 + the rank of its node in `nodes`. */
  readonly points: Float64Array;
}

/**
 * Builds the ring of `nodes` (name -> weight). `pointsOf` may return remembered points
 * (at least 160 * weight of them, in generation order).
 */
export function buildRing(
  nodes: ReadonlyMap<string, number>,
  pointsOf: (node: string, count: number) => Uint32Array = nodePoints,
): Ring {
  const names = [...nodes.keys()].sort();
  if (names.length >= RANK_BITS) throw new Error('too many nodes for one ring');
  let total = 0;
  for (const n of names) total += nodes.get(n)! * POINTS_PER_WEIGHT;
  const packed = new Float64Array(total);
  let at = 0;
  names.forEach((name, rank) => {
    const count = nodes.get(name)! * POINTS_PER_WEIGHT;
    const pts = pointsOf(name, count);
    for (let i = 0; i < count; i++) packed[at++] = pts[i]! * RANK_BITS + rank;
  });
  packed.sort();
  return { nodes: names, points: packed };
}

/** The node a key lands on; undefined for an empty ring. */
export function ringFind(ring: Ring, key: string): string | undefined {
  const n = ring.points.length;
  if (n === 0) return undefined;
  const target = crc32(key) * RANK_BITS;
  // First point whose hash >= the key's hash (the rank never lowers a point below it).
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ring.points[mid]! < target) lo = mid + 1;
    else hi = mid;
  }
  const point = ring.points[lo === n ? 0 : lo]!;
  return ring.nodes[point % RANK_BITS];
}

/** The ring of a view's ready endpoints, rebuilt when the view changes. */
export class BalancedRing {
  private indexed: EndpointSnapshot | undefined;
  private ring: Ring = { nodes: [], points: new Float64Array(0) };
  private byNode = new Map<string, Endpoint>();
  /** node name -> its 160 points; only the current view's names are kept. */
  private pointsByNode = new Map<string, Uint32Array>();

  /** The ready endpoint of `snapshot` that ingress-nginx would send `key` to. */
  find(snapshot: EndpointSnapshot, key: string): Endpoint | undefined {
    if (snapshot !== this.indexed) this.rebuild(snapshot);
    const node = ringFind(this.ring, key);
    return node === undefined ? undefined : this.byNode.get(node);
  }

  private rebuild(snapshot: EndpointSnapshot): void {
    const byNode = new Map<string, Endpoint>();
    const weights = new Map<string, number>();
    for (const e of snapshot.ready) {
      const node = nodeName(e);
      if (byNode.has(node)) continue; // the controller lists an address:port once
      byNode.set(node, e);
      weights.set(node, 1); // util.get_nodes: every endpoint weighs 1
    }
    const remembered = this.pointsByNode;
    const kept = new Map<string, Uint32Array>();
    this.ring = buildRing(weights, (node, count) => {
      const pts = remembered.get(node) ?? nodePoints(node, count);
      kept.set(node, pts);
      return pts;
    });
    this.pointsByNode = kept;
    this.byNode = byNode;
    this.indexed = snapshot;
  }
}
