/**
 * The part of a Kong declarative config (kong/kong.yml, `_format_version: "3.0"`) the dev
 * gateway serves: the first service, its first route, and the sticky-session plugin that
 * applies to them. Also Kong's router for that one route (paths, methods, hosts) and the
 * upstream URI it builds (strip_path, service path; path_handling v0).
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { parse as parseYaml } from 'yaml';
import type { RouteEntity, ServiceEntity } from './kong-emulator.js';

export const PLUGIN_NAME = 'sticky-session';

/** A problem with the file itself (YAML, structure); plugin config errors come from Kong's schema. */
export class DevConfigError extends Error {
  override name = 'DevConfigError';
}

export interface DevRoute extends RouteEntity {
  id: string;
  name?: string;
  paths: string[];
  methods: string[] | null;
  hosts: string[] | null;
  strip_path: boolean;
  preserve_host: boolean;
}

export interface DevService extends ServiceEntity {
  id: string;
  name?: string;
  host: string;
  port: number;
  protocol: string;
  path?: string;
}

export interface DevKongConfig {
  service: DevService;
  /** null: the service has no route, Kong answers 404 to everything. */
  route: DevRoute | null;
  plugin: {
    id: string;
    /** As written in the file (Kong's schema fills in the rest). */
    config: Record<string, unknown>;
    /** What the plugin is attached to (Kong's plugin scoping). */
    scope: { service: string | null; route: string | null };
  };
  /** host:port of every target in config.targets (lower-case host, IPv6 without brackets). */
  targets: Array<{ host: string; port: number }>;
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function list(v: unknown, what: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new DevConfigError(`${what}: expected a list`);
  return v;
}

/**
 * Kong (3.x) gives declarative entities without an `id` a deterministic one (a UUID v5
 * over the entity's identity), so ids and thus the tokens bound to a service survive
 * `kong reload`. Same idea here, and stable across restarts of the dev gateway too.
 */
export function stableId(...parts: string[]): string {
  const h = createHash('sha1').update(`sticky-session-dev:${parts.join(':')}`).digest();
  h[6] = ((h[6] as number) & 0x0f) | 0x50;
  h[8] = ((h[8] as number) & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

const DEFAULT_PORTS: Record<string, number> = { http: 80, https: 443, grpc: 80, grpcs: 443 };

function parseService(s: Obj, index: number): DevService {
  const name = typeof s.name === 'string' ? s.name : undefined;
  const where = `services[${index + 1}]${name ? ` (${name})` : ''}`;
  let protocol = typeof s.protocol === 'string' ? s.protocol : 'http';
  let host = typeof s.host === 'string' ? s.host : undefined;
  let port = typeof s.port === 'number' ? s.port : undefined;
  let path = typeof s.path === 'string' ? s.path : undefined;
  if (typeof s.url === 'string') {
    let u: URL;
    try {
      u = new URL(s.url);
    } catch {
      throw new DevConfigError(`${where}.url: not a URL: ${s.url}`);
    }
    protocol = u.protocol.replace(/:$/, '');
    host = u.hostname.replace(/^\[(.*)\]$/, '$1');
    port = u.port ? Number(u.port) : undefined;
    path = u.pathname !== '/' ? u.pathname : undefined;
  }
  if (!host) throw new DevConfigError(`${where}: needs url or host`);
  const service: DevService = {
    id: typeof s.id === 'string' ? s.id : stableId('service', name ?? String(index)),
    host,
    port: port ?? DEFAULT_PORTS[protocol] ?? 80,
    protocol,
  };
  if (name !== undefined) service.name = name;
  if (path !== undefined) service.path = path;
  return service;
}

function stringList(v: unknown, what: string): string[] | null {
  if (v === undefined || v === null) return null;
  const l = list(v, what);
  if (!l.every((x) => typeof x === 'string')) throw new DevConfigError(`${what}: expected a list of strings`);
  return l as string[];
}

function parseRoute(r: Obj, serviceName: string, index: number): DevRoute {
  const name = typeof r.name === 'string' ? r.name : undefined;
  const where = `route ${name ?? index + 1} of service ${serviceName}`;
  const route: DevRoute = {
    id: typeof r.id === 'string' ? r.id : stableId('route', name ?? `${serviceName}/${index}`),
    paths: stringList(r.paths, `${where}: paths`) ?? [],
    methods: stringList(r.methods, `${where}: methods`)?.map((m) => m.toUpperCase()) ?? null,
    hosts: stringList(r.hosts, `${where}: hosts`)?.map((h) => h.toLowerCase()) ?? null,
    strip_path: r.strip_path !== false,
    preserve_host: r.preserve_host === true,
  };
  if (name !== undefined) route.name = name;
  return route;
}

/** "host:port[ options]" -> the address part, as the plugin's static source reads it. */
export function targetAddress(spec: string): { host: string; port: number } | null {
  const first = spec.trim().split(/\s+/)[0] ?? '';
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(first);
  if (!m) return null;
  return { host: (m[1] ?? m[2] ?? '').toLowerCase(), port: Number(m[3]) };
}

export function addressKey(host: string, port: number): string {
  const h = host.toLowerCase();
  return isIP(h) === 6 ? `[${h}]:${port}` : `${h}:${port}`;
}

/** Parses the file's text; throws DevConfigError (or the YAML parser's error). */
export function parseKongConfig(text: string): DevKongConfig {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new DevConfigError(`not valid YAML: ${(err as Error).message}`);
  }
  if (!isObj(doc)) throw new DevConfigError('expected a YAML mapping (Kong declarative config)');
  const services = list(doc.services, 'services');
  const first = services[0];
  if (!isObj(first)) throw new DevConfigError('services: the dev gateway serves the first service; there is none');
  const service = parseService(first, 0);
  const serviceName = service.name ?? service.id;

  // Routes nested under the service, or top-level routes naming it.
  const nestedRoutes = list(first.routes, `service ${serviceName}: routes`).filter(isObj);
  const topRoutes = list(doc.routes, 'routes')
    .filter(isObj)
    .filter((r) => r.service === service.name || r.service === service.id || (isObj(r.service) && (r.service.name === service.name || r.service.id === service.id)));
  const routeObjs = [...nestedRoutes, ...topRoutes];
  const route = routeObjs[0] ? parseRoute(routeObjs[0], serviceName, 0) : null;

  // The sticky-session plugin: on the route, on the service, or global (Kong's precedence).
  const isOurs = (p: unknown): p is Obj => isObj(p) && p.name === PLUGIN_NAME && p.enabled !== false;
  const refs = (v: unknown, e: { id: string; name?: string } | null): boolean =>
    e !== null && (v === e.id || (e.name !== undefined && v === e.name) || (isObj(v) && (v.id === e.id || (e.name !== undefined && v.name === e.name))));
  const routePlugin =
    (routeObjs[0] ? list(routeObjs[0].plugins, 'route plugins').find(isOurs) : undefined) ??
    list(doc.plugins, 'plugins').filter(isOurs).find((p) => refs(p.route, route));
  const servicePlugin =
    list(first.plugins, `service ${serviceName}: plugins`).find(isOurs) ??
    list(doc.plugins, 'plugins').filter(isOurs).find((p) => p.route === undefined && refs(p.service, service));
  const globalPlugin = list(doc.plugins, 'plugins')
    .filter(isOurs)
    .find((p) => p.route === undefined && p.service === undefined && p.consumer === undefined);
  let plugin: DevKongConfig['plugin'];
  const pick = routePlugin ?? servicePlugin ?? globalPlugin;
  if (!pick) throw new DevConfigError(`no ${PLUGIN_NAME} plugin on service ${serviceName}, its route or globally`);
  const config = pick.config === undefined || pick.config === null ? {} : pick.config;
  if (!isObj(config)) throw new DevConfigError(`${PLUGIN_NAME} plugin: config must be a mapping`);
  if (pick === routePlugin && route) {
    plugin = { id: typeof pick.id === 'string' ? pick.id : stableId('plugin', PLUGIN_NAME, 'route', route.id), config, scope: { service: null, route: route.id } };
  } else if (pick === servicePlugin) {
    plugin = { id: typeof pick.id === 'string' ? pick.id : stableId('plugin', PLUGIN_NAME, 'service', service.id), config, scope: { service: service.id, route: null } };
  } else {
    plugin = { id: typeof pick.id === 'string' ? pick.id : stableId('plugin', PLUGIN_NAME, 'global'), config, scope: { service: null, route: null } };
  }

  const targets: DevKongConfig['targets'] = [];
  const rawTargets = config.targets;
  if (Array.isArray(rawTargets)) {
    for (const t of rawTargets) {
      if (typeof t !== 'string') continue; // the schema reports it
      const a = targetAddress(t);
      if (a && !targets.some((x) => x.host === a.host && x.port === a.port)) targets.push(a);
    }
  }
  return { service, route, plugin, targets };
}

// -----------------------------------------------------------------------------------------
// Kong's router for one route

export interface RouteMatch {
  /** The part of the path the route matched (stripped when strip_path). */
  prefix: string;
}

function hostMatches(pattern: string, host: string): boolean {
  if (pattern.startsWith('*.')) return host.endsWith(pattern.slice(1));
  if (pattern.endsWith('.*')) return host.startsWith(pattern.slice(0, -1));
  return host === pattern;
}

/** Kong's match of one route (traditional_compatible): null = 404 "no Route matched". */
export function matchRoute(route: DevRoute, method: string, hostHeader: string, path: string): RouteMatch | null {
  if (route.methods && !route.methods.includes(method.toUpperCase())) return null;
  if (route.hosts) {
    const h = hostHeader.toLowerCase();
    const bare = h.replace(/:\d+$/, '');
    if (!route.hosts.some((p) => hostMatches(p, p.includes(':') ? h : bare))) return null;
  }
  if (route.paths.length === 0) return { prefix: '' };
  let best: RouteMatch | null = null;
  for (const p of route.paths) {
    if (p.startsWith('~')) {
      let re: RegExp;
      try {
        re = new RegExp(`^(?:${p.slice(1)})`);
      } catch {
        continue;
      }
      const m = re.exec(path);
      if (m && (!best || m[0].length > best.prefix.length)) best = { prefix: m[0] };
    } else if (path.startsWith(p) && (!best || p.length > best.prefix.length)) {
      best = { prefix: p };
    }
  }
  return best;
}

/** The URI Kong sends upstream (path_handling v0): service path + path after the stripped prefix, query kept. */
export function upstreamUri(service: DevService, route: DevRoute | null, match: RouteMatch | null, requestUri: string): string {
  const q = requestUri.indexOf('?');
  const path = q >= 0 ? requestUri.slice(0, q) : requestUri;
  const query = q >= 0 ? requestUri.slice(q) : '';
  const postfix = route?.strip_path !== false && match ? path.slice(match.prefix.length) : path;
  const base = service.path ?? '/';
  let uri: string;
  if (base === '/') uri = postfix.startsWith('/') ? postfix : `/${postfix}`;
  else if (base.endsWith('/')) uri = base + postfix.replace(/^\//, '');
  else if (postfix === '') uri = base;
  else uri = postfix.startsWith('/') ? base + postfix : `${base}/${postfix}`;
  return uri + query;
}
