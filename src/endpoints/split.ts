/**
 * The endpoint view of a traffic split: several backends (Gateway API backendRefs), each with
 * a weight and endpoints of its own, as one snapshot. Sessions pin pods, so a pod keeps its
 * sessions whatever its backend's weight; the weights only steer new sessions (`backends`).
 * Pure: no I/O.
 */
import { makeSnapshot, type BackendShare, type Endpoint, type EndpointSnapshot } from './types.js';

export interface SplitBackend {
  /** `<namespace>/<service>:<port>`. */
  readonly key: string;
  readonly weight: number;
  /** Its serving endpoints (ready and draining), in its own view's order. */
  readonly endpoints: readonly Endpoint[];
}

/** Endpoints tagged with their backend, kept per source object so unchanged pods stay the same objects. */
const tagged = new WeakMap<Endpoint, Endpoint>();

function tag(e: Endpoint, backend: string): Endpoint {
  if (e.backend === backend) return e;
  const known = tagged.get(e);
  if (known?.backend === backend) return known;
  const t = { ...e, backend };
  tagged.set(e, t);
  return t;
}

/**
 * One view of every backend's endpoints, in backend order. A pod listed by two backends (two
 * Services selecting it) belongs to the first: one pod, one endpoint.
 */
export function makeSplitSnapshot(version: number, backends: readonly SplitBackend[]): EndpointSnapshot {
  const seen = new Set<string>();
  const all: Endpoint[] = [];
  const shares: BackendShare[] = [];
  for (const b of backends) {
    const ready: Endpoint[] = [];
    for (const e of b.endpoints) {
      if (seen.has(e.id)) continue;
      seen.add(e.id);
      const t = tag(e, b.key);
      all.push(t);
      if (t.condition === 'ready') ready.push(t);
    }
    shares.push({ key: b.key, weight: b.weight, ready });
  }
  return { ...makeSnapshot(version, all), backends: shares };
}
