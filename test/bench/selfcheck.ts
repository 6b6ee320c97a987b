/**
 * Before any figure is trusted: the fast paths the benches measure must give what the
 * plain ones give. Random EndpointSlice histories (pods moving between slices, listed
 * twice, condition flips, ports missing, FQDN and unknown slices, slices deleted) through
 *   - SliceEndpoints (per-slice, incremental)  vs  endpointsFromSlices (all slices at once);
 *   - makeSnapshot derived from its predecessor vs makeSnapshot from scratch;
 *   - RefIndex patched forward and back        vs  RefIndex rebuilt;
 * and TokenCodec's MACs against createHmac. Throws on the first difference.
 *
 *   npx tsx test/bench/selfcheck.ts [--rounds 300]
 */
import { createHmac } from 'node:crypto';
import { RefIndex } from '../../src/affinity/ref-index.js';
import { endpointsFromSlices, sameEndpoints, SliceEndpoints, type EndpointSliceLike } from '../../src/endpoints/kubernetes/slices.js';
import { makeSnapshot, type Endpoint, type EndpointSnapshot } from '../../src/endpoints/types.js';
import { TokenCodec } from '../../src/token.js';
import { isMain, numberOption } from './report.js';
import { seededRandomInt } from '../support/seeded-random.js';


const CONDITIONS = [
  { ready: true, serving: true, terminating: false },
  { ready: false, serving: true, terminating: true },
  { ready: false, serving: false, terminating: true },
  {},
];

function randomSlice(rnd: (n: number) => number, name: string, pods: number, allowOdd: boolean): EndpointSliceLike {
  const types = allowOdd ? ['IPv4', 'IPv4', 'IPv4', 'IPv6', 'FQDN', 'Weird'] : ['IPv4'];
  const addressType = types[rnd(types.length)]!;
  const count = rnd(6);
  const endpoints = Array.from({ length: count }, () => {
    const pod = rnd(pods);
    const host = addressType === 'IPv6' ? `2001:db8::${pod.toString(16)}` : addressType === 'FQDN' ? `pod-${pod}.example` : `192.0.2.${pod % 250}`;
    return {
      addresses: [host],
      conditions: CONDITIONS[rnd(CONDITIONS.length)]!,
      targetRef: rnd(10) === 0 ? null : { uid: `uid-${pod}`, name: `pod-${pod}` },
    };
  });
  const ports = rnd(8) === 0 ? [{ name: 'metrics', port: 9090, protocol: 'TCP' }] : [{ name: 'http', port: 8080 + rnd(2), protocol: 'TCP' }];
  return { metadata: { name }, addressType, endpoints, ports };
}

function checkSnapshot(derived: EndpointSnapshot, full: EndpointSnapshot, where: string): void {
  const fail = (what: string) => {
    throw new Error(`selfcheck: derived snapshot differs (${what}) at ${where}`);
  };
  if (derived.byId.size !== full.byId.size) fail('size');
  const a = [...derived.byId.entries()];
  const b = [...full.byId.entries()];
  if (a.some(([k, v], i) => b[i]![0] !== k || b[i]![1] !== v)) fail('order or objects');
  for (const [id, e] of full.byId) if (derived.byId.get(id) !== e || !derived.byId.has(id)) fail(`get ${id}`);
  if (derived.byId.get('no-such-id') !== undefined) fail('get absent');
  if (!sameEndpoints(derived.ready, full.ready) || derived.ready.some((e, i) => e !== full.ready[i])) fail('ready');
  if (!sameEndpoints(derived.draining, full.draining) || derived.draining.some((e, i) => e !== full.draining[i])) fail('draining');
  const seen: string[] = [];
  derived.byId.forEach((v, k, m) => {
    if (v.id !== k || m !== derived.byId) fail('forEach');
    seen.push(k);
  });
  if (seen.join() !== [...full.byId.keys()].join()) fail('forEach order');
}

function checkRefs(index: RefIndex, codec: TokenCodec, snapshot: EndpointSnapshot, gone: readonly Endpoint[], where: string): void {
  for (let k = 0; k < codec.keyCount; k++) {
    for (const e of snapshot.byId.values()) {
      if (index.lookup(snapshot, k, codec.ref(e.id, k)) !== e) throw new Error(`selfcheck: ref index misses ${e.id} at ${where}`);
    }
    for (const e of gone) {
      if (!snapshot.byId.has(e.id) && index.lookup(snapshot, k, codec.ref(e.id, k)) !== undefined) {
        throw new Error(`selfcheck: ref index still finds removed ${e.id} at ${where}`);
      }
    }
  }
}

/** Snapshots derived from their predecessor (the fast path) in the last checkIncrementalEndpoints run. */
export let derivedSnapshots = 0;

export function checkIncrementalEndpoints(rounds = 200, seed = 1): number {
  let checks = 0;
  derivedSnapshots = 0;
  for (let round = 0; round < rounds; round++) {
    const rnd = seededRandomInt(seed + round);
    const allowOdd = round % 3 === 0;
    // Many pods: mostly one slice per pod (the fast path); few: pods listed twice (the full merge).
    const pods = round % 2 ? 4 + rnd(40) : 2000;
    const names = Array.from({ length: 1 + rnd(8) }, (_, i) => `s-${String.fromCharCode(97 + rnd(26))}${i}`);
    const raw = new Map<string, EndpointSliceLike>();
    const inc = new SliceEndpoints('http');
    const codec = new TokenCodec({ secrets: ['selfcheck-secret-0123456789abcdef-0123', 'selfcheck-old-secret-0123456789abcdef'], binding: 'g', cacheSize: 4 });
    const refs = new RefIndex(codec);
    let snapshot: EndpointSnapshot | undefined;
    let list: readonly Endpoint[] = [];
    let previousSnapshot: EndpointSnapshot | undefined;
    for (let step = 0; step < 60; step++) {
      const op = rnd(10);
      const name = names[rnd(names.length)]!;
      if (op === 0) {
        raw.delete(name);
        inc.delete(name);
      } else if (op === 1 && step % 20 === 19) {
        raw.clear();
        inc.clear();
      } else {
        const slice = randomSlice(rnd, name, pods, allowOdd);
        raw.set(name, slice);
        inc.set(slice);
      }
      const where = `round ${round} step ${step}`;
      const { endpoints, changes } = inc.collect();
      const expected = endpointsFromSlices(raw.values(), 'http');
      if (!sameEndpoints(endpoints, expected)) throw new Error(`selfcheck: SliceEndpoints differs from endpointsFromSlices at ${where}`);
      if (inc.missingPort().join() !== [...raw.values()].filter((s) => s.addressType !== 'Weird' && (s.endpoints?.length ?? 0) > 0 && s.ports?.[0]?.name !== 'http').map((s) => s.metadata!.name).sort().join()) {
        throw new Error(`selfcheck: missingPort differs at ${where}`);
      }
      checks++;
      // What the watcher does with it.
      if (snapshot && sameEndpoints(list, endpoints)) {
        if (endpoints.some((e, i) => e !== list[i])) inc.rebase();
        continue;
      }
      const previous = snapshot && changes ? { snapshot, changes } : undefined;
      if (previous) derivedSnapshots++;
      const next = makeSnapshot(step + 1, endpoints, previous);
      checkSnapshot(next, makeSnapshot(step + 1, endpoints), where);
      if (snapshot) {
        // Every endpoint that is not reported changed is the same object as before.
        for (const e of next.byId.values()) {
          if (previous && !previous.changes.has(e.id) && snapshot.byId.get(e.id) !== e) throw new Error(`selfcheck: unreported change of ${e.id} at ${where}`);
        }
      }
      const gone = snapshot ? [...snapshot.byId.values()] : [];
      previousSnapshot = snapshot;
      snapshot = next;
      list = endpoints;
      checkRefs(refs, codec, snapshot, gone, where);
      // A request still deciding on the previous view, then one on the new view again.
      if (previousSnapshot) {
        checkRefs(refs, codec, previousSnapshot, [...snapshot.byId.values()], `${where} (back)`);
        checkRefs(refs, codec, snapshot, gone, `${where} (forth)`);
      }
      checks++;
    }
  }
  return checks;
}

/** TokenCodec's MACs are HMAC-SHA256 as createHmac computes it, for keys of every length class. */
export function checkTokenMacs(): number {
  let checks = 0;
  for (const len of [32, 63, 64, 65, 127, 300]) {
    const secret = 'k'.repeat(len - 1) + 'é';
    const binding = `service:${len}`;
    const codec = new TokenCodec({ secrets: [secret], binding, cacheSize: 4 });
    for (const id of ['a', 'pod-uid-1', 'x'.repeat(200), 'ünïcode']) {
      const expected = createHmac('sha256', Buffer.from(secret, 'utf8'))
        .update(Buffer.concat([Buffer.from(`ref\0${binding}\0`, 'utf8'), Buffer.from(id, 'utf8')]))
        .digest()
        .subarray(0, 8)
        .toString('latin1');
      if (codec.ref(id) !== expected) throw new Error(`selfcheck: ref MAC differs from createHmac (key length ${len})`);
      const { token } = codec.issue(id, 1_700_000_000);
      const raw = Buffer.from(token, 'base64url');
      const mac = createHmac('sha256', Buffer.from(secret, 'utf8'))
        .update(Buffer.concat([Buffer.from(`tok\0${binding}\0`, 'utf8'), raw.subarray(0, 21)]))
        .digest()
        .subarray(0, 16);
      if (!mac.equals(raw.subarray(21))) throw new Error(`selfcheck: token MAC differs from createHmac (key length ${len})`);
      const fresh = new TokenCodec({ secrets: [secret], binding, cacheSize: 4 });
      if (!fresh.verify(token).ok) throw new Error('selfcheck: issued token does not verify');
      checks += 3;
    }
  }
  return checks;
}

if (isMain(import.meta)) {
  const t0 = performance.now();
  const n = checkIncrementalEndpoints(numberOption('rounds', 300)) + checkTokenMacs();
  console.log(`selfcheck: ${n} checks (${derivedSnapshots} derived snapshots) passed in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
