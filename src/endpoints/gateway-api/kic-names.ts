/**
 * The Kong service and route names KIC 3.0-3.5 gives HTTPRoute rules, read and written.
 * Answers to KIC `internal/dataplane/translator/subtranslator/httproute.go` (3.4+, and
 * `getKongServiceNameByBackendRefs` for --combined-services-from-different-httproutes),
 * `httproute_atc.go` (expressions router) and, for 3.0, `internal/dataplane/parser/translators/`.
 * See /work/notes/kic-gateway-api.md. Pure: no I/O (sha256 is a computation).
 *
 * Ambiguity: namespaces are DNS labels (no dots) but HTTPRoute names and 3.0-3.3 hostnames are
 * dotted, so `httproute.<ns>.a.b.c.0` is name `a.b.c` (3.4+), or name `a.b` with hostname `c`, or
 * name `a` with hostname `b.c` (3.0-3.3 expressions). A `_` label can only be a hostname (`_` for
 * none, `_.x` for `*.x`): names never hold `_`. And `httproute.<ns>.svc.x.y.80.1` is a combined
 * name or the rule 1 of an HTTPRoute called `svc.x.y.80`. So readers return every reading, most
 * likely first; rule-backends.ts settles it against the HTTPRoutes that exist.
 */
import { createHash } from 'node:crypto';
import type { BackendRefLike } from './httproute.js';

/** One backend as the combined name spells it: `<namespace>.<service>[.<port>][.<weight>]`. */
export interface CombinedBackend {
  readonly namespace: string;
  readonly service: string;
  readonly port?: number;
  readonly weight?: number;
}

export type KicServiceName =
  /** `httproute.<ns>.<name>.<rule>`; 3.0-3.3 expressions router: `httproute.<ns>.<name>.<hostname|_>.<rule>`. */
  | { readonly kind: 'rule'; readonly namespace: string; readonly name: string; readonly rule: number; readonly hostname?: string }
  /** `httproute.<ns>.svc.<b1>_<b2>...` (sorted); `httproute.<ns>.svc._` for a rule without backendRefs. */
  | { readonly kind: 'combined'; readonly namespace: string; readonly backends: readonly CombinedBackend[] }
  /** `httproute.<ns>.svc.<b1>_combined.<sha256 of the full name>`: the full name was over 511 chars. */
  | { readonly kind: 'combined-digest'; readonly namespace: string; readonly first: CombinedBackend; readonly digest: string };

/** KIC's limit: `maxKongServiceNameLength = 512 - 1` (subtranslator_vars.go). */
export const MAX_KONG_SERVICE_NAME = 511;

const PREFIX = 'httproute';
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const SUBDOMAIN_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const INDEX = /^(0|[1-9][0-9]{0,4})$/;
const DIGITS = /^[0-9]+$/;
const DIGEST = /^(.+)_combined\.([0-9a-f]{64})$/;

/** Every reading of a Kong service name (= host) KIC may have built, most likely first; [] if none. */
export function kicServiceNameReadings(host: string | null | undefined): readonly KicServiceName[] {
  if (!host) return [];
  const labels = host.split('.');
  if (labels[0] !== PREFIX || labels.length < 3 || !DNS_LABEL.test(labels[1] as string)) return [];
  const namespace = labels[1] as string;
  const out: KicServiceName[] = [];
  if (labels[2] === 'svc' && labels.length > 3) {
    const combined = readCombined(namespace, host.slice(`${PREFIX}.${namespace}.svc.`.length));
    if (combined) out.push(combined);
  }
  const last = labels[labels.length - 1] as string;
  if (INDEX.test(last)) {
    for (const r of nameAndHostnameReadings(labels.slice(2, -1))) out.push({ kind: 'rule', namespace, rule: Number(last), ...r });
  }
  return out;
}

/** The most likely reading, or undefined when the host is not one KIC builds for HTTPRoutes. */
export function parseKicServiceName(host: string | null | undefined): KicServiceName | undefined {
  return kicServiceNameReadings(host)[0];
}

function readCombined(namespace: string, rest: string): KicServiceName | undefined {
  if (rest === '_') return { kind: 'combined', namespace, backends: [] };
  const digest = DIGEST.exec(rest);
  if (digest) {
    const first = readBackend(digest[1] as string);
    return first ? { kind: 'combined-digest', namespace, first, digest: digest[2] as string } : undefined;
  }
  const parts = rest.split('_');
  // KIC sorts the elements: an unsorted list is not one of its names.
  for (let i = 1; i < parts.length; i++) if ((parts[i - 1] as string) > (parts[i] as string)) return undefined;
  const backends: CombinedBackend[] = [];
  for (const part of parts) {
    const b = readBackend(part);
    if (!b) return undefined;
    backends.push(b);
  }
  return { kind: 'combined', namespace, backends };
}

/**
 * `<ns>.<name>[.<port>][.<weight>]`. Two trailing numbers are port and weight; one is read as
 * the weight, because the CRD always fills in the weight while the port is only optional for
 * kinds other than Service (which KIC does not route to anyway).
 */
function readBackend(text: string): CombinedBackend | undefined {
  const labels = text.split('.');
  const namespace = labels[0] as string;
  if (!DNS_LABEL.test(namespace) || labels.length < 2) return undefined;
  let numbers = 0;
  while (numbers < 2 && labels.length - 1 - numbers > 1 && DIGITS.test(labels[labels.length - 1 - numbers] as string)) numbers++;
  const nameLabels = labels.slice(1, labels.length - numbers);
  if (!nameLabels.every((l) => SUBDOMAIN_LABEL.test(l))) return undefined;
  const service = nameLabels.join('.');
  const tail = labels.slice(labels.length - numbers).map(Number);
  if (numbers === 2) {
    const [port, weight] = tail as [number, number];
    return port >= 1 && port <= 65535 ? { namespace, service, port, weight } : undefined;
  }
  return numbers === 1 ? { namespace, service, weight: tail[0] as number } : { namespace, service };
}

/**
 * The (name, hostname) splits of the labels between the namespace and the rule index.
 * 3.4+ reading (whole name) first, then 3.0-3.3 hostname readings, longest hostname first.
 */
function nameAndHostnameReadings(middle: readonly string[]): { name: string; hostname?: string }[] {
  if (middle.length === 0) return [];
  const underscore = middle.findIndex((l) => l === '_');
  if (underscore >= 0) {
    // `_` starts the hostname: `_` alone (no hostname) or `_.<labels>` (a wildcard).
    const name = middle.slice(0, underscore);
    const host = middle.slice(underscore);
    if (!validName(name) || !(host.length === 1 || validHostLabels(host.slice(1)))) return [];
    return [{ name: name.join('.'), hostname: host.join('.') }];
  }
  const out: { name: string; hostname?: string }[] = [];
  if (validName(middle)) out.push({ name: middle.join('.') });
  for (let k = 1; k < middle.length; k++) {
    const name = middle.slice(0, k);
    const host = middle.slice(k);
    if (validName(name) && validHostLabels(host)) out.push({ name: name.join('.'), hostname: host.join('.') });
  }
  return out;
}

function validName(labels: readonly string[]): boolean {
  return labels.length > 0 && labels.join('.').length <= 253 && labels.every((l) => SUBDOMAIN_LABEL.test(l));
}

function validHostLabels(labels: readonly string[]): boolean {
  return labels.length > 0 && labels.every((l) => SUBDOMAIN_LABEL.test(l));
}

// ---------------------------------------------------------------------------------------------
// Writing names, as KIC does

/** 3.0-3.3 traditional router and 3.4+: the service of a rule group, named after its first rule. */
export function ruleServiceName(namespace: string, name: string, rule: number): string {
  return `${PREFIX}.${namespace}.${name}.${rule}`;
}

/** 3.0-3.3 expressions router: one service per (hostname, rule); `*` becomes `_`, none is `_`. */
export function hostnameRuleServiceName(namespace: string, name: string, hostname: string | undefined, rule: number): string {
  return `${PREFIX}.${namespace}.${name}.${kicHostnameLabel(hostname)}.${rule}`;
}

export function kicHostnameLabel(hostname: string | undefined): string {
  return hostname ? hostname.replaceAll('*', '_') : '_';
}

export interface CombinedName {
  /** The Kong service name KIC uses. */
  readonly name: string;
  /** The name before trimming; its sha256 is the digest when `name` was trimmed. */
  readonly full: string;
}

/**
 * The --combined-services-from-different-httproutes name of a rule, exactly as KIC's
 * `getKongServiceNameByBackendRefs`: per backendRef `<ns>.<name>`, `.<port>` if set, `.<weight>`
 * if set (give it defaulted refs: the API server always sets weight); sorted; joined with `_`;
 * past 511 chars the first element plus `_combined.<hex sha256(full name)>`.
 */
export function combinedServiceName(routeNamespace: string, backendRefs: readonly BackendRefLike[]): CombinedName {
  if (backendRefs.length === 0) {
    const name = `${PREFIX}.${routeNamespace}.svc._`;
    return { name, full: name };
  }
  const elements = backendRefs.map((b) => {
    let s = `${b.namespace ?? routeNamespace}.${b.name}`;
    if (b.port !== undefined) s += `.${b.port}`;
    if (b.weight !== undefined) s += `.${b.weight}`;
    return s;
  });
  // Go's sort.Strings is byte order; these are ASCII, where JS's default sort agrees.
  elements.sort();
  const full = `${PREFIX}.${routeNamespace}.svc.${elements.join('_')}`;
  if (full.length <= MAX_KONG_SERVICE_NAME) return { name: full, full };
  return { name: `${PREFIX}.${routeNamespace}.svc.${elements[0]}_combined.${sha256Hex(full)}`, full };
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

// ---------------------------------------------------------------------------------------------
// Routes

export interface KicRouteName {
  readonly namespace: string;
  readonly name: string;
  readonly rule: number;
  readonly match: number;
  /** Expressions router only: the hostname label (`_` for none, `_.x` for `*.x`). */
  readonly hostname?: string;
}

/**
 * Readings of `httproute.<ns>.<name>.<rule>.<match>` (traditional; 3.0-3.3 names a rule group
 * without matches `.0.0` whatever its index) and `httproute.<ns>.<name>.<hostname|_>.<rule>.<match>`
 * (expressions). The rule and match are those of the first match merged into the Kong route.
 */
export function kicRouteNameReadings(routeName: string | null | undefined): readonly KicRouteName[] {
  if (!routeName) return [];
  const labels = routeName.split('.');
  if (labels[0] !== PREFIX || labels.length < 5 || !DNS_LABEL.test(labels[1] as string)) return [];
  const [rule, match] = labels.slice(-2) as [string, string];
  if (!INDEX.test(rule) || !INDEX.test(match)) return [];
  return nameAndHostnameReadings(labels.slice(2, -2)).map((r) => ({
    namespace: labels[1] as string,
    rule: Number(rule),
    match: Number(match),
    ...r,
  }));
}

export interface KicRouteTags {
  readonly namespace: string;
  readonly name: string;
  readonly uid?: string;
  /** `k8s-named-route-rule:` tags (KIC 3.4+): names of the rules whose matches the route carries. */
  readonly ruleNames: readonly string[];
}

/** The HTTPRoute a Kong route's tags name (KIC `util.GenerateTagsForObject`); undefined otherwise. */
export function parseKicRouteTags(tags: readonly string[] | null | undefined): KicRouteTags | undefined {
  if (!tags) return undefined;
  const one = (prefix: string) => tags.find((t) => t.startsWith(prefix))?.slice(prefix.length);
  const kind = one('k8s-kind:');
  const group = one('k8s-group:');
  const namespace = one('k8s-namespace:');
  const name = one('k8s-name:');
  if (kind !== 'HTTPRoute' || (group !== undefined && group !== 'gateway.networking.k8s.io')) return undefined;
  if (!namespace || !name) return undefined;
  const uid = one('k8s-uid:');
  const ruleNames = tags.filter((t) => t.startsWith('k8s-named-route-rule:')).map((t) => t.slice('k8s-named-route-rule:'.length));
  return { namespace, name, ...(uid ? { uid } : {}), ruleNames };
}

export interface KicRouteIdentity {
  readonly namespace: string;
  readonly name: string;
  /** Absent when the route name does not agree with the tags (renamed, or not KIC's). */
  readonly rule?: number;
  readonly match?: number;
  readonly hostname?: string;
  readonly ruleNames: readonly string[];
}

/**
 * The HTTPRoute (and rule) a Kong route comes from. The tags give namespace and name without
 * ambiguity; the route name then only has to be split after that known prefix.
 */
export function identifyKicRoute(routeName: string | null | undefined, tags: readonly string[] | null | undefined): KicRouteIdentity | undefined {
  const fromTags = parseKicRouteTags(tags);
  const readings = kicRouteNameReadings(routeName);
  if (fromTags) {
    const r = readings.find((x) => x.namespace === fromTags.namespace && x.name === fromTags.name);
    return r ? { ...fromTags, rule: r.rule, match: r.match, ...(r.hostname !== undefined ? { hostname: r.hostname } : {}) } : fromTags;
  }
  const r = readings[0];
  return r ? { ...r, ruleNames: [] } : undefined;
}
