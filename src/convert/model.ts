/**
 * What every converter shares: the plain-object helpers, the report a conversion makes, and
 * the plugin config it produces. Pure: no I/O.
 */

export type Obj = Record<string, unknown>;

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The value at a path of nested objects, or undefined. */
export function at(v: unknown, ...path: string[]): unknown {
  let cur = v;
  for (const key of path) cur = isObj(cur) ? cur[key] : undefined;
  return cur;
}

/**
 * One line of the report, on stderr.
 * - `unmapped`: a source field (or a whole resource) this plugin cannot carry; `--strict` fails on it;
 * - `differs`: mapped, but the behaviour is not the same; the operator should know;
 * - `ignored`: a field that had no effect in the source either (invalid value, or overridden there);
 * - `action`: something to do by hand (a Secret to create, a server to start on another directory).
 */
export type ReportLevel = 'unmapped' | 'differs' | 'ignored' | 'action';

export interface Report {
  readonly level: ReportLevel;
  /** `Ingress demo/shop`, `HTTPRoute demo/cart rule 1`... */
  readonly source: string;
  /** The source field (annotation, spec path), or '' for the resource as a whole. */
  readonly field: string;
  readonly message: string;
}

/** A legacy cookie the plugin should honour during the switch (part 2 of issue 12). */
export interface LegacyCookie {
  readonly format: 'ingress-nginx';
  readonly mode: 'balanced' | 'persistent';
  readonly name: string;
}

/** The plugin config a conversion emits: only fields it sets, `secrets` always from a Secret. */
export interface ConvertedConfig {
  transport?: 'cookie' | 'header' | 'cookie-and-header';
  header_name?: string;
  cookie_name?: string;
  cookie_path?: string;
  cookie_domain?: string;
  cookie_max_age?: number;
  cookie_http_only?: boolean;
  cookie_secure?: boolean;
  cookie_same_site?: 'Strict' | 'Lax' | 'None';
  cookie_same_site_none_exempt_user_agents?: string[];
  kubernetes_namespace?: string;
  kubernetes_service?: string;
  kubernetes_port?: string;
  balancer?: 'least-sessions' | 'round-robin' | 'two-choices';
  absolute_timeout?: number;
  idle_timeout?: number;
  change_on_failure?: boolean;
  accept_legacy_cookies?: LegacyCookie[];
}

export interface ConvertOptions {
  /** Name of the Secret (one per namespace) whose key `secrets` holds the JSON array of signing secrets. */
  readonly secretName: string;
  /** Set `spec.ingressClassName` of converted Ingresses to this (e.g. `kong`). */
  readonly ingressClass?: string;
  /**
   * Append this to the names of converted Ingresses: the originals stay as they are (served
   * by ingress-nginx) next to the copies for Kong, for a cut-over without a gap.
   */
  readonly nameSuffix?: string;
  /**
   * Where an Ingress's KongPlugin goes: on the Ingress (its Kong routes; the default), or on
   * each backend Service (its Kong service, like ingress-nginx's per-backend cookie).
   */
  readonly attach: 'ingress' | 'service';
  /** Emit `accept_legacy_cookies` for ingress-nginx cookie affinity (default true). */
  readonly legacyCookies: boolean;
  /** ingress-nginx's `--annotations-prefix` (default `nginx.ingress.kubernetes.io`). */
  readonly annotationPrefix: string;
  /** The namespace of documents that name none (kubectl's current namespace). */
  readonly namespace: string;
}

export const DEFAULT_OPTIONS: ConvertOptions = {
  secretName: 'sticky-session-secrets',
  attach: 'ingress',
  legacyCookies: true,
  annotationPrefix: 'nginx.ingress.kubernetes.io',
  namespace: 'default',
};

/** Names the plugin schema accepts (src/config/schema.ts, Lua patterns written as JS). */
export const COOKIE_NAME = /^[A-Za-z0-9_.-]+$/;
export const HEADER_NAME = /^[A-Za-z0-9_-]+$/;
export const COOKIE_DOMAIN = /^\.?[A-Za-z0-9.-]+$/;
export const SECONDS_PER_YEAR = 31_536_000;

export function describe(doc: Obj): string {
  const meta = isObj(doc.metadata) ? doc.metadata : {};
  return `${String(doc.kind)} ${String(meta.namespace ?? 'default')}/${String(meta.name)}`;
}

export function namespaceOf(doc: Obj): string {
  const ns = at(doc, 'metadata', 'namespace');
  return typeof ns === 'string' && ns !== '' ? ns : 'default';
}

export function nameOf(doc: Obj): string {
  return String(at(doc, 'metadata', 'name'));
}

/** `apiVersion/kind`, e.g. `networking.k8s.io/v1/Ingress`. */
export function kindOf(doc: Obj): string {
  return `${String(doc.apiVersion)}/${String(doc.kind)}`;
}

/** Seconds, rounded up (a timeout never shrinks to 0, which means "none" here). */
export function ceilSeconds(ms: number): number {
  return Math.ceil(ms / 1000);
}
