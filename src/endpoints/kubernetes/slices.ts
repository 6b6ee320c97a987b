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
  return mergeSlices(Array.from(slices, (s) => mapSlice(s, port)));
}

/** One slice read for one port: what endpointsFromSlices needs of it, computed once. */
interface MappedSlice {
  readonly name: string;
  /** FAMILY_RANK of its address type; undefined: unknown type, the slice is ignored. */
  readonly family: number | undefined;
  readonly fqdn: boolean;
  /** It lists endpoints (any, mapped or not): for the missing-port warning. */
  readonly hasEndpoints: boolean;
  /** The port found for the wanted one; undefined: none, the slice contributes nothing. */
  readonly port: number | undefined;
  /** Its serving endpoints on that port, in the slice's order (a pod listed twice: twice). */
  readonly candidates: readonly Candidate[];
}

const NO_CANDIDATES: readonly Candidate[] = [];

function mapSlice(slice: EndpointSliceLike, wanted: ServicePort): MappedSlice {
  const family = FAMILY_RANK.get(slice.addressType);
  const name = slice.metadata?.name ?? '';
  const base = { name, family, fqdn: slice.addressType === 'FQDN', hasEndpoints: (slice.endpoints?.length ?? 0) > 0 };
  if (family === undefined) return { ...base, port: undefined, candidates: NO_CANDIDATES };
  const port = slicePort(slice.ports, wanted);
  if (port === undefined) return { ...base, port, candidates: NO_CANDIDATES };
  const candidates: Candidate[] = [];
  for (const e of slice.endpoints ?? []) {
    const candidate = toCandidate(slice, e, port);
    if (candidate) candidates.push(candidate);
  }
  return { ...base, port, candidates };
}

/** endpointsFromSlices over slices already mapped (any order). */
function mergeSlices(mapped: readonly MappedSlice[]): Endpoint[] {
  const known = mapped.filter((s) => s.family !== undefined).sort((a, b) => compareStrings(a.name, b.name));
  const hasIpSlices = known.some((s) => !s.fqdn);
  const best = new Map<string, Candidate>();
  for (const slice of known) {
    if ((slice.fqdn && hasIpSlices) || slice.port === undefined) continue;
    for (const candidate of slice.candidates) {
      const held = best.get(candidate.endpoint.id);
      if (!held || compareCandidates(candidate, held) < 0) best.set(candidate.endpoint.id, candidate);
    }
  }
  return Array.from(best.values(), (c) => c.endpoint);
}

/** What changed in the endpoint list since the last collect(): id -> new endpoint, undefined if removed. */
export type EndpointChanges = ReadonlyMap<string, Endpoint | undefined>;

/**
 * endpointsFromSlices kept current one slice at a time, for the watcher: a watch event
 * re-maps only the slice it carries, and collect() tells which endpoints changed, so the
 * view and the token index are patched instead of rebuilt (a Service of 5,000 endpoints
 * in 50 slices: one slice of 100 per event, not 5,000 endpoints).
 *
 * collect() gives exactly what endpointsFromSlices gives for the slices held. The quick
 * way is taken when every pod is in one slice only and there is no FQDN slice (the
 * EndpointSlice controller's steady state); a pod listed twice (moving between slices) or
 * an FQDN slice takes the full merge, as does the first collect after clear().
 * Endpoints that did not change keep their object: a snapshot and its successor share them.
 */
export class SliceEndpoints {
  private readonly slices = new Map<string, MappedSlice>();
  /** Slice names in compareStrings order. */
  private names: string[] = [];
  /** Endpoint id -> number of slices (usable or not, with the port) listing it, counted per listing. */
  private readonly listings = new Map<string, number>();
  /** Ids listed more than once. */
  private duplicates = 0;
  private fqdnSlices = 0;
  /** Slices changed since the last collect(), as they were then (undefined: absent). */
  private readonly changedSince = new Map<string, MappedSlice | undefined>();
  /** The last collect() was the plain concatenation of the slices' candidates. */
  private plain = false;

  constructor(private readonly port: ServicePort) {}

  /** Adds or replaces a slice (by name). */
  set(slice: EndpointSliceLike): void {
    const previous = this.slices.get(slice.metadata?.name ?? '');
    const mapped = reuseUnchanged(mapSlice(slice, this.port), previous);
    this.replace(mapped.name, previous, mapped);
  }

  delete(name: string): void {
    const previous = this.slices.get(name);
    if (previous) this.replace(name, previous, undefined);
  }

  /** Forgets every slice: the next collect() merges in full. */
  clear(): void {
    for (const name of [...this.slices.keys()]) this.delete(name);
    this.plain = false;
  }

  /**
   * The caller did not take the last collect() as its view (it was equal to the one it
   * has, but not made of the same objects): the next collect() reports no changes, so
   * the caller's next view is built in full.
   */
  rebase(): void {
    this.plain = false;
  }

  /** Names of slices that have endpoints but no port matching, sorted (see slicesMissingPort). */
  missingPort(): string[] {
    return this.names.filter((n) => {
      const s = this.slices.get(n)!;
      return s.family !== undefined && s.hasEndpoints && s.port === undefined;
    });
  }

  /**
   * The endpoints now, and what changed since the previous collect() (undefined: not
   * known, e.g. after a full merge; compare in full).
   */
  collect(): { endpoints: Endpoint[]; changes: EndpointChanges | undefined } {
    const changedSince = new Map(this.changedSince);
    this.changedSince.clear();
    if (this.duplicates > 0 || this.fqdnSlices > 0) {
      this.plain = false;
      return { endpoints: mergeSlices([...this.slices.values()]), changes: undefined };
    }
    const endpoints: Endpoint[] = [];
    for (const name of this.names) {
      for (const c of this.slices.get(name)!.candidates) endpoints.push(c.endpoint);
    }
    const wasPlain = this.plain;
    this.plain = true;
    if (!wasPlain) return { endpoints, changes: undefined };
    // Every id is in one slice only, before and after: a slice's changes are the view's.
    // Removals first: a pod that moved from one changed slice to another is an addition.
    const changes = new Map<string, Endpoint | undefined>();
    const added: Endpoint[] = [];
    for (const [name, before] of changedSince) {
      const now = new Map<string, Endpoint>();
      for (const c of this.slices.get(name)?.candidates ?? NO_CANDIDATES) now.set(c.endpoint.id, c.endpoint);
      for (const c of before?.candidates ?? NO_CANDIDATES) {
        const e = now.get(c.endpoint.id);
        if (e === undefined) changes.set(c.endpoint.id, undefined);
        else if (e === c.endpoint) now.delete(c.endpoint.id);
      }
      added.push(...now.values());
    }
    for (const e of added) changes.set(e.id, e);
    return { endpoints, changes };
  }

  private replace(name: string, previous: MappedSlice | undefined, next: MappedSlice | undefined): void {
    if (!this.changedSince.has(name)) this.changedSince.set(name, previous);
    if (previous) {
      this.count(previous, -1);
      if (previous.fqdn && previous.family !== undefined) this.fqdnSlices--;
    }
    if (next) {
      this.count(next, 1);
      if (next.fqdn && next.family !== undefined) this.fqdnSlices++;
      this.slices.set(name, next);
      if (!previous) this.names.splice(insertionPoint(this.names, name), 0, name);
    } else {
      this.slices.delete(name);
      this.names.splice(this.names.indexOf(name), 1);
    }
  }

  private count(slice: MappedSlice, delta: 1 | -1): void {
    for (const c of slice.candidates) {
      const id = c.endpoint.id;
      const before = this.listings.get(id) ?? 0;
      const after = before + delta;
      if (after > 0) this.listings.set(id, after);
      else this.listings.delete(id);
      if (before <= 1 && after > 1) this.duplicates++;
      else if (before > 1 && after <= 1) this.duplicates--;
    }
  }
}

/** Gives the candidates of `next` whose endpoint equals, field for field, one of `previous` that endpoint object. */
function reuseUnchanged(next: MappedSlice, previous: MappedSlice | undefined): MappedSlice {
  if (!previous || previous.candidates.length === 0 || next.candidates.length === 0) return next;
  const old = new Map<string, Endpoint>();
  for (const c of previous.candidates) old.set(c.endpoint.id, c.endpoint);
  const candidates = next.candidates.map((c) => {
    const o = old.get(c.endpoint.id);
    return o && o !== c.endpoint && sameEndpoint(o, c.endpoint) ? { ...c, endpoint: o } : c;
  });
  return { ...next, candidates };
}

function insertionPoint(sorted: readonly string[], name: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareStrings(sorted[mid]!, name) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
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
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i];
    if (x !== y && (y === undefined || !sameEndpoint(x, y))) return false;
  }
  return true;
}

function sameEndpoint(x: Endpoint, y: Endpoint): boolean {
  return (
    x.id === y.id &&
    x.name === y.name &&
    x.host === y.host &&
    x.port === y.port &&
    x.condition === y.condition &&
    x.weight === y.weight
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
