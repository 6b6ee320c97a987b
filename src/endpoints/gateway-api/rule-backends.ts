/**
 * Which Services (ports, weights) KIC routes an HTTPRoute rule to, and which rules share one Kong
 * service. Answers to KIC 3.x `subtranslator/backendref.go` (backendRefsToKongStateBackends),
 * `gatewayapi/references.go` (ReferenceGrants), `translate_upstreams.go` (findPort, EndpointSlice
 * port by the Service port's name) and `subtranslator/httproute.go` (grouping). Pure: no I/O.
 */
import type { ServiceRef } from '../kubernetes/service-ref.js';
import {
  defaultBackendRef,
  GATEWAY_GROUP,
  routeNamespace,
  routeRules,
  type BackendRefLike,
  type DefaultedBackendRef,
  type HTTPRouteLike,
  type ReferenceGrantLike,
  type ServiceLike,
} from './httproute.js';
import { combinedServiceName, hostnameRuleServiceName, parseKicServiceName, ruleServiceName } from './kic-names.js';

export interface RuleBackend {
  /** Port is the Service port's name (`''` when unnamed): EndpointSlice ports carry that name. */
  readonly ref: ServiceRef;
  /** The backendRef weight (CRD default 1). 0 keeps existing sessions and takes no new ones. */
  readonly weight: number;
  /** `<namespace>/<service>:<backendRef port number>`: one entry per key (duplicates summed). */
  readonly key: string;
}

export type BackendProblemReason =
  | 'unsupported-kind' // not a core Service: KIC skips it
  | 'service-not-found' // KIC skips it; all skipped -> KIC answers 500
  | 'not-permitted' // cross-namespace without a matching ReferenceGrant
  | 'no-port' // no port: KIC finds no Service port (CEL forbids this for Services)
  | 'port-not-found' // the Service has no port with that number
  | 'external-name' // KIC targets the external name: no pods to pin to
  | 'invalid-weight'; // outside the CRD's 0..1000000 (only raw YAML can hold one)

export interface BackendProblem {
  readonly backendRef: BackendRefLike;
  readonly reason: BackendProblemReason;
  readonly message: string;
}

export interface RuleBackends {
  readonly backends: readonly RuleBackend[];
  readonly problems: readonly BackendProblem[];
}

export type ServiceLookup = (namespace: string, name: string) => ServiceLike | undefined;

/** The backends of rule `index` of `route`, or why there is no such rule. */
export function ruleBackends(
  route: HTTPRouteLike,
  index: number,
  grants: readonly ReferenceGrantLike[],
  lookup: ServiceLookup,
): ({ readonly ok: true } & RuleBackends) | { readonly ok: false; readonly reason: string } {
  const rule = routeRules(route)[index];
  if (!rule) return { ok: false, reason: `HTTPRoute ${routeNamespace(route)}/${route.metadata.name} has no rule ${index}` };
  return { ok: true, ...backendsOf(routeNamespace(route), rule.backendRefs ?? [], grants, lookup) };
}

/** KIC's checks, in KIC's order: kind, existence, group, ReferenceGrant, then the port. */
export function backendsOf(
  fromNamespace: string,
  backendRefs: readonly BackendRefLike[],
  grants: readonly ReferenceGrantLike[],
  lookup: ServiceLookup,
): RuleBackends {
  const byKey = new Map<string, RuleBackend>();
  const problems: BackendProblem[] = [];
  const problem = (backendRef: BackendRefLike, reason: BackendProblemReason, message: string) => problems.push({ backendRef, reason, message });

  for (const raw of backendRefs) {
    const ref = defaultBackendRef(raw);
    const namespace = ref.namespace ?? fromNamespace;
    const what = `${ref.group === '' ? '' : `${ref.group}/`}${ref.kind} ${namespace}/${ref.name}`;
    if (ref.kind !== 'Service') {
      problem(raw, 'unsupported-kind', `${what}: only Services are backends under KIC`);
      continue;
    }
    const service = lookup(namespace, ref.name);
    if (!service) {
      problem(raw, 'service-not-found', `${what} does not exist`);
      continue;
    }
    if (ref.group !== '' && ref.group !== 'core') {
      problem(raw, 'unsupported-kind', `${what}: only core Services are backends under KIC`);
      continue;
    }
    if (!referencePermitted(fromNamespace, ref, grants)) {
      problem(raw, 'not-permitted', `${what}: no ReferenceGrant in ${namespace} lets HTTPRoutes of ${fromNamespace} refer to it`);
      continue;
    }
    if (!Number.isInteger(ref.weight) || ref.weight < 0 || ref.weight > 1_000_000) {
      problem(raw, 'invalid-weight', `${what}: weight ${JSON.stringify(ref.weight)} is not an integer from 0 to 1000000`);
      continue;
    }
    if (ref.port === undefined) {
      problem(raw, 'no-port', `${what}: the backendRef has no port`);
      continue;
    }
    if (service.spec?.type === 'ExternalName') {
      problem(raw, 'external-name', `${what} is an ExternalName Service: it has no pods`);
      continue;
    }
    const port = service.spec?.ports?.find((p) => p.port === ref.port);
    if (!port) {
      problem(raw, 'port-not-found', `${what} has no port ${ref.port}`);
      continue;
    }
    const key = `${namespace}/${ref.name}:${ref.port}`;
    const seen = byKey.get(key);
    // The same Service port twice: KIC merges equal targets and sums their weights.
    byKey.set(key, {
      ref: { namespace, service: ref.name, port: port.name ?? '' },
      weight: (seen?.weight ?? 0) + ref.weight,
      key,
    });
  }
  return { backends: [...byKey.values()], problems };
}

/**
 * KIC's ReferenceGrant check: same-namespace refs always pass; otherwise a grant in the
 * backend's namespace whose `from` is exactly {gateway group, HTTPRoute, route namespace} and
 * whose `to` has the ref's group and kind, and its name or none.
 */
export function referencePermitted(fromNamespace: string, ref: DefaultedBackendRef, grants: readonly ReferenceGrantLike[]): boolean {
  if (ref.namespace === undefined || ref.namespace === fromNamespace) return true;
  return grants.some(
    (g) =>
      g.metadata.namespace === ref.namespace &&
      (g.spec?.from ?? []).some((f) => f.group === GATEWAY_GROUP && f.kind === 'HTTPRoute' && f.namespace === fromNamespace) &&
      (g.spec?.to ?? []).some((t) => t.group === ref.group && t.kind === ref.kind && (t.name === undefined || t.name === ref.name)),
  );
}

// ---------------------------------------------------------------------------------------------
// Which rules share one Kong service

/**
 * - `per-route`: KIC 3.4+ (both routers) and 3.0-3.3 traditional: rules of one HTTPRoute with
 *   equal backendRefs (as a multiset, filters included) share `httproute.<ns>.<name>.<first rule>`;
 * - `per-hostname`: KIC 3.0-3.3 expressions router: one service per (hostname, rule);
 * - `combined`: --combined-services-from-different-httproutes (3.4+): rules of all HTTPRoutes of
 *   a namespace with the same {namespace, name, port, weight} multiset share one service.
 */
export type KicServiceMode = 'per-route' | 'per-hostname' | 'combined';

export interface RuleRef {
  readonly route: HTTPRouteLike;
  readonly rule: number;
}

/** Service name -> its rules; the first rule is the one KIC takes backends and grants from. */
export function kicServiceGroups(routes: readonly HTTPRouteLike[], mode: KicServiceMode): ReadonlyMap<string, readonly RuleRef[]> {
  const groups = new Map<string, RuleRef[]>();
  const add = (name: string, r: RuleRef) => {
    const g = groups.get(name);
    if (g) g.push(r);
    else groups.set(name, [r]);
  };
  for (const route of routes) {
    const ns = routeNamespace(route);
    const name = route.metadata.name;
    const rules = routeRules(route);
    if (mode === 'per-route') {
      const firstByKey = new Map<string, number>();
      rules.forEach((rule, i) => {
        const key = backendRefsKey(rule.backendRefs ?? []);
        const first = firstByKey.get(key) ?? i;
        firstByKey.set(key, first);
        add(ruleServiceName(ns, name, first), { route, rule: i });
      });
    } else if (mode === 'per-hostname') {
      const hostnames = route.spec?.hostnames?.length ? route.spec.hostnames : [undefined];
      for (const h of hostnames) rules.forEach((_, i) => add(hostnameRuleServiceName(ns, name, h, i), { route, rule: i }));
    } else {
      rules.forEach((rule, i) => add(combinedServiceName(ns, (rule.backendRefs ?? []).map(defaultBackendRef)).name, { route, rule: i }));
    }
  }
  // KIC sorts each group by the string `<ns>/<name>.<rule>` (so `.10` sorts before `.2`); the
  // name was taken before (per-route: the smallest index), the backends after (the first here).
  for (const g of groups.values()) g.sort((a, b) => compare(ruleKey(a), ruleKey(b)));
  return groups;
}

export interface KicServiceMatch {
  readonly mode: KicServiceMode;
  readonly serviceName: string;
  readonly rules: readonly RuleRef[];
}

/**
 * The rule groups a Kong service host names, found by building KIC's names for the HTTPRoutes
 * of the host's namespace (so dotted names and digests need no guessing). Several matches
 * mean the name is ambiguous between KIC versions or modes; none means no such rule (yet).
 */
export function findKicService(host: string | null | undefined, routes: readonly HTTPRouteLike[]): readonly KicServiceMatch[] {
  const parsed = parseKicServiceName(host);
  if (!parsed || !host) return [];
  const inNamespace = routes.filter((r) => routeNamespace(r) === parsed.namespace);
  const out: KicServiceMatch[] = [];
  for (const mode of ['per-route', 'combined', 'per-hostname'] as const) {
    const rules = kicServiceGroups(inNamespace, mode).get(host);
    if (rules) out.push({ mode, serviceName: host, rules });
  }
  return out;
}

/** The backends KIC gives a Kong service: those of its first rule, checked from that route. */
export function serviceBackends(match: KicServiceMatch, grants: readonly ReferenceGrantLike[], lookup: ServiceLookup): RuleBackends {
  const first = match.rules[0];
  if (!first) return { backends: [], problems: [] };
  return backendsOf(routeNamespace(first.route), routeRules(first.route)[first.rule]?.backendRefs ?? [], grants, lookup);
}

function ruleKey(r: RuleRef): string {
  return `${routeNamespace(r.route)}/${r.route.metadata.name}.${r.rule}`;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** KIC's getSortedItemsString over the defaulted refs: equal multisets give equal keys. */
function backendRefsKey(refs: readonly BackendRefLike[]): string {
  return refs
    .map((r) => canonicalJson(defaultBackendRef(r)))
    .sort()
    .join(';');
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => compare(a, b));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
