/**
 * EndpointSlices of one Service -> the endpoints of the view. Pure: no I/O.
 *
 * One endpoint per pod (targetRef.uid): the EndpointSlice controller may list a pod in two
 * slices for a moment while it moves it, so the same pod is merged, never doubled.
 */
import type { Endpoint, EndpointCondition } from '../types.js';
import type { ServicePort } from './service-ref.js';

/**
 * The parts of a `discovery.k8s.io/v1` EndpointSlice read here. client-node's
 * `V1EndpointSlice` and the raw JSON of a watch event both fit.
 */
export interface EndpointSliceLike {
  readonly metadata?: { readonly name?: string };
  readonly addressType: string;
  readonly endpoints?: readonly SliceEndpoint[] | null;
  readonly ports?: readonly SlicePort[] | null;
}

export interface SliceEndpoint {
  readonly addresses: readonly string[];
  readonly conditions?: EndpointConditions | null;
  readonly hostname?: string | null;
  readonly targetRef?: { readonly uid?: string | null; readonly name?: string | null } | null;
}

/** As the API server stores them: not defaulted, any of them may be absent. */
export interface EndpointConditions {
  readonly ready?: boolean | null;
  readonly serving?: boolean | null;
  readonly terminating?: boolean | null;
}

export interface SlicePort {
  readonly name?: string | null;
  readonly port?: number | null;
  readonly protocol?: string | null;
}

/**
 * Reads conditions the way the API documents them: absent `ready` is ready, absent
 * `serving` is the value of `ready`, absent `terminating` is false. Undefined: the
 * endpoint serves nothing and stays out of the view.
 */
export function endpointCondition(conditions: EndpointConditions | null | undefined): EndpointCondition | undefined {
  const ready = conditions?.ready ?? true;
  const serving = conditions?.serving ?? ready;
  const terminating = conditions?.terminating ?? false;
  if (!terminating) return ready ? 'ready' : undefined;
  return serving ? 'draining' : undefined;
}

/**
 * The TCP port of a slice that carries `wanted`: by name (absent name is `''`), or by
 * number; `null` takes the only port. A number that matches no port of a single-port
 * slice takes that port: KIC names the Service port (80) while slices carry the target
 * port (8080), and a single-port slice means a single-port Service.
 */
export function slicePort(ports: readonly SlicePort[] | null | undefined, wanted: ServicePort): number | undefined {
  const tcp = (ports ?? []).filter(
    (p): p is SlicePort & { port: number } => typeof p.port === 'number' && (p.protocol ?? 'TCP') === 'TCP',
  );
  const only = tcp.length === 1 ? tcp[0]?.port : undefined;
  if (wanted === null) return only;
  if (typeof wanted === 'string') return tcp.find((p) => (p.name ?? '') === wanted)?.port;
  return tcp.find((p) => p.port === wanted)?.port ?? only;
}

// IPv4 before IPv6 for a dual-stack pod; FQDN slices only count when nothing else exists.
const FAMILY_RANK: ReadonlyMap<string, number> = new Map([
  ['IPv4', 0],
  ['IPv6', 1],
  ['FQDN', 2],
]);
const CONDITION_RANK: Readonly<Record<EndpointCondition, number>> = { ready: 0, draining: 1 };

interface Candidate {
  readonly endpoint: Endpoint;
  readonly family: number;
  readonly slice: string;
}

/**
 * Endpoints of the Service on the chosen port, in a deterministic order: slices by name,
 * endpoints as the slice lists them (every replica reading the same slices gets the same
 * order; sorting 5,000 ids per watch event would cost more than the rest of an update). Identity is the pod uid, else
 * `addr:<address>` (slices written by hand have no targetRef). A pod found in several
 * slices is kept once: ready before draining, then IPv4, then by slice name and address.
 * Slices of an unknown address type are ignored; FQDN slices are used only when the
 * Service has no IPv4/IPv6 slice (the EndpointSlice controller never writes FQDN ones).
 */
export function endpointsFromSlices(slices: Iterable<EndpointSliceLike>, port: ServicePort): Endpoint[] {
  const known = [...slices]
    .filter((s) => FAMILY_RANK.has(s.addressType))
    .sort((a, b) => compareStrings(a.metadata?.name ?? '', b.metadata?.name ?? ''));
  const hasIpSlices = known.some((s) => s.addressType !== 'FQDN');
  const usable = known.filter((s) => s.addressType !== 'FQDN' || !hasIpSlices);

  const best = new Map<string, Candidate>();
  for (const slice of usable) {
    const portNumber = slicePort(slice.ports, port);
    if (portNumber === undefined) continue;
    for (const e of slice.endpoints ?? []) {
      const candidate = toCandidate(slice, e, portNumber);
      if (!candidate) continue;
      const held = best.get(candidate.endpoint.id);
      if (!held || compareCandidates(candidate, held) < 0) best.set(candidate.endpoint.id, candidate);
    }
  }
  return Array.from(best.values(), (c) => c.endpoint);
}

/** Names of slices that have endpoints but no port matching `port`, for a warning. */
export function slicesMissingPort(slices: Iterable<EndpointSliceLike>, port: ServicePort): string[] {
  return [...slices]
    .filter((s) => FAMILY_RANK.has(s.addressType) && (s.endpoints?.length ?? 0) > 0)
    .filter((s) => slicePort(s.ports, port) === undefined)
    .map((s) => s.metadata?.name ?? '')
    .sort(compareStrings);
}

/** True when both lists hold the same endpoints in the same order, field for field. */
export function sameEndpoints(a: readonly Endpoint[], b: readonly Endpoint[]): boolean {
  return (
    a.length === b.length &&
    a.every((x, i) => {
      const y = b[i];
      return (
        y !== undefined &&
        x.id === y.id &&
        x.name === y.name &&
        x.host === y.host &&
        x.port === y.port &&
        x.condition === y.condition &&
        x.weight === y.weight
      );
    })
  );
}

function toCandidate(slice: EndpointSliceLike, e: SliceEndpoint, port: number): Candidate | undefined {
  const condition = endpointCondition(e.conditions);
  const host = e.addresses[0];
  if (condition === undefined || !host) return undefined;
  const uid = e.targetRef?.uid;
  return {
    endpoint: {
      id: uid ? uid : `addr:${host}`,
      name: e.targetRef?.name || e.hostname || host,
      host,
      port,
      condition,
      weight: 1,
    },
    family: FAMILY_RANK.get(slice.addressType) ?? Number.MAX_SAFE_INTEGER,
    slice: slice.metadata?.name ?? '',
  };
}

function compareCandidates(a: Candidate, b: Candidate): number {
  return (
    CONDITION_RANK[a.endpoint.condition] - CONDITION_RANK[b.endpoint.condition] ||
    a.family - b.family ||
    compareStrings(a.slice, b.slice) ||
    compareStrings(a.endpoint.host, b.endpoint.host)
  );
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
