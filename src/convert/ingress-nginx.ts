/**
 * ingress-nginx cookie affinity (annotations on an Ingress) to a sticky-session KongPlugin
 * attached to that Ingress. Semantics read from ingress-nginx's annotation parser
 * (internal/ingress/annotations/sessionaffinity) and its Lua balancer (balancer/sticky*.lua).
 */
import type { ConvertContext } from './context.js';
import { pluginName, PLUGINS_ANNOTATION, withPluginAnnotation } from './emit.js';
import {
  at,
  COOKIE_DOMAIN,
  COOKIE_NAME,
  describe,
  isObj,
  nameOf,
  namespaceOf,
  SECONDS_PER_YEAR,
  type ConvertedConfig,
  type Obj,
} from './model.js';

export const INGRESS_NGINX_DEFAULT_COOKIE = 'INGRESSCOOKIE';

/**
 * User-Agents that ingress-nginx's `session-cookie-conditional-samesite-none` serves without
 * SameSite=None (util/same_site.lua, after Chromium's list of incompatible clients), as
 * JavaScript regular expressions; its last rule is one conjunction (Safari on macOS 10.14).
 */
export const INGRESS_NGINX_SAMESITE_NONE_EXEMPT = [
  'Chrome/4',
  'Chrome/5',
  'Chrome/6',
  'CPU iPhone OS 12',
  'iPad; CPU OS 12',
  '^(?=.*Macintosh)(?=.*Intel Mac OS X 10_14)(?=.*Safari)(?!.*Chrome)',
];

/** The annotations this converter knows (after the prefix). */
const AFFINITY_KEYS = [
  'affinity',
  'affinity-mode',
  'affinity-canary-behavior',
  'session-cookie-name',
  'session-cookie-path',
  'session-cookie-domain',
  'session-cookie-samesite',
  'session-cookie-conditional-samesite-none',
  'session-cookie-expires',
  'session-cookie-max-age',
  'session-cookie-secure',
  'session-cookie-change-on-failure',
];
const HASH_KEYS = ['upstream-hash-by', 'upstream-hash-by-subset', 'upstream-hash-by-subset-size'];

/** ingress-nginx's check of expires / max-age: an integer, possibly negative. */
const INTEGER = /^(0|-?[1-9][0-9]*)$/;

/** Does this Ingress carry any annotation this converter reads? */
export function hasIngressNginxAffinity(doc: Obj, prefix: string): boolean {
  const annotations = at(doc, 'metadata', 'annotations');
  if (!isObj(annotations)) return false;
  return Object.keys(annotations).some((k) => k.startsWith(`${prefix}/`) && isAffinityKey(k.slice(prefix.length + 1)));
}

function isAffinityKey(key: string): boolean {
  return AFFINITY_KEYS.includes(key) || HASH_KEYS.includes(key) || key.startsWith('session-cookie-');
}

/** Converts one Ingress; returns the document to emit in its place. */
export function convertIngress(doc: Obj, ctx: ConvertContext): Obj {
  const prefix = ctx.options.annotationPrefix;
  const source = describe(doc);
  const annotations = isObj(at(doc, 'metadata', 'annotations')) ? (at(doc, 'metadata', 'annotations') as Obj) : {};
  const key = (k: string): string => `${prefix}/${k}`;
  const get = (k: string): string | undefined => {
    const v = annotations[key(k)];
    // Annotations are strings; an unquoted `true` read from YAML is the same annotation.
    return v === undefined || v === null ? undefined : String(v).trim();
  };
  const done = new Set<string>();
  const use = (k: string): string | undefined => {
    done.add(k);
    return get(k);
  };

  const affinity = use('affinity');
  const cookieAffinity = affinity === 'cookie';
  if (affinity !== undefined && !cookieAffinity) {
    ctx.report('ignored', source, key('affinity'), `"${affinity}" is not "cookie", the only affinity ingress-nginx has: it ignores the annotation too`);
  }
  const hashBy = use('upstream-hash-by');

  let config: ConvertedConfig | undefined;
  if (cookieAffinity) {
    config = cookieConfig(doc, ctx, source, key, use);
    if (hashBy !== undefined) {
      ctx.report('ignored', source, key('upstream-hash-by'), 'ignored by ingress-nginx too when affinity is "cookie" (its balancer picks the sticky one first)');
    }
    for (const k of ['upstream-hash-by-subset', 'upstream-hash-by-subset-size']) {
      if (use(k) !== undefined) ctx.report('ignored', source, key(k), 'ignored by ingress-nginx too when affinity is "cookie"');
    }
  } else if (hashBy !== undefined) {
    config = hashConfig(hashBy, ctx, source, key, use);
  }

  // Whatever is left was not read: no effect without cookie affinity, or unknown here.
  for (const k of Object.keys(annotations)) {
    if (!k.startsWith(`${prefix}/`)) continue;
    const short = k.slice(prefix.length + 1);
    if (!isAffinityKey(short) || done.has(short)) continue;
    if (AFFINITY_KEYS.includes(short) || HASH_KEYS.includes(short)) {
      ctx.report('ignored', source, k, config ? 'has no effect here' : 'has no effect without affinity "cookie" (ingress-nginx ignores it too)');
    } else {
      ctx.report('unmapped', source, k, 'not an ingress-nginx annotation this converter knows (removed from ingress-nginx, or misspelt); left on the Ingress, where Kong ignores it');
    }
  }
  if (!config) return doc;

  if (get('canary') === 'true') {
    ctx.report('unmapped', source, key('canary'), 'a canary Ingress: Kong has no canary by annotation; the plugin is attached, the canary split is not converted');
  }
  for (const backend of resourceBackends(doc)) {
    ctx.report('unmapped', source, backend, 'a resource backend, not a Service: the plugin pins to the pods of a Service, so requests there are left to Kong');
  }

  if (ctx.options.attach === 'service') return attachToServices(doc, config, ctx, source, key, get('session-cookie-path'));

  const backends = [...new Set(serviceBackends(doc))];
  if (backends.length > 1) {
    ctx.report(
      'differs',
      source,
      'spec.rules',
      `${backends.length} backends (${backends.join(', ')}): KIC makes a Kong route of each, and a token is bound to its route, so a client that goes from one backend to another under the same cookie (Path=${config.cookie_path ?? '/'}) starts a new session each time; ingress-nginx hashed one cookie per backend. --attach service gives each backend Service its own KongPlugin and cookie path`,
    );
  }
  const namespace = namespaceOf(doc);
  // An earlier run's output (its KongPlugin in the input): replace that plugin, keep the name.
  const attachedNames = String(at(doc, 'metadata', 'annotations', PLUGINS_ANNOTATION) ?? '').split(',').map((n) => n.trim());
  const earlier = ctx.earlierPlugin(namespace, attachedNames);
  const name = ctx.addPlugin(namespace, earlier?.name ?? pluginName(nameOf(doc), 'sticky-session'), config, earlier?.origin ?? source);
  const out = withPluginAnnotation(doc, name);
  ctx.report(
    'differs',
    source,
    PLUGINS_ANNOTATION,
    `KongPlugin ${name} attached to this Ingress, so to each Kong route KIC makes of it: a session token is bound to its Kong route (ingress-nginx's cookie was bound to the Service backend)`,
  );
  return finishIngress(out, doc, ctx, source, earlier !== undefined);
}

/** What every converted Ingress gets: ports by name, its class, its new name. */
function finishIngress(converted: Obj, doc: Obj, ctx: ConvertContext, source: string, convertedBefore = false): Obj {
  let out = namePorts(converted, ctx, source);
  if (ctx.options.ingressClass !== undefined) out = withIngressClass(out, ctx.options.ingressClass, ctx, source);
  // An earlier run's copy already has its name.
  if (ctx.options.nameSuffix && !convertedBefore) {
    out = out === doc ? structuredClone(doc) : out;
    (out.metadata as Obj).name = `${nameOf(doc)}${ctx.options.nameSuffix}`;
    ctx.report('differs', source, 'metadata.name', `written as a new Ingress ${nameOf(out)}: ${nameOf(doc)} stays as it is, served by ingress-nginx, until you delete it`);
  }
  return out;
}

/**
 * `--attach service`: a KongPlugin per backend Service, on the Service, naming it, with the
 * cookie path of that backend's own Ingress paths (ingress-nginx's cookie was per backend and
 * per location). A token is then bound to the Kong service, valid on every route to it.
 */
function attachToServices(doc: Obj, config: ConvertedConfig, ctx: ConvertContext, source: string, key: (k: string) => string, configuredPath: string | undefined): Obj {
  const namespace = namespaceOf(doc);
  const services = [...new Set(serviceBackends(doc).map((b) => b.split(':')[0] as string))];
  const paths = new Map(services.map((svc) => [svc, cookiePath(doc, ctx, source, key, configuredPath, svc)]));
  const samePath = new Set(paths.values()).size < services.length;
  for (const svc of services) {
    const own: ConvertedConfig = { ...config, cookie_path: paths.get(svc) as string, kubernetes_namespace: namespace, kubernetes_service: svc };
    if (samePath && own.cookie_name) {
      // Two backends' cookies of one name and one path would overwrite each other at every switch.
      own.cookie_name = `${own.cookie_name}-${svc}`.slice(0, 200);
      ctx.report('differs', source, key('session-cookie-name'), `backend ${svc}: cookie ${own.cookie_name}, as another backend of this Ingress has the same cookie path (the legacy cookie is still read as ${String(config.accept_legacy_cookies?.[0]?.name ?? config.cookie_name)})`);
    }
    const attached = ctx.attachToService(namespace, svc, own, source);
    if (attached.conflict) {
      ctx.report('unmapped', source, `service ${svc}`, `Service ${namespace}/${svc} already gets KongPlugin ${attached.name} with other settings (${attached.conflict}); Kong runs one sticky-session per Kong service, so this Ingress's settings are not applied to it`);
    } else if (!attached.inInput) {
      ctx.report('action', source, `service ${svc}`, `Service ${namespace}/${svc} is not in the input: attach KongPlugin ${attached.name} with kubectl -n ${namespace} annotate service ${svc} konghq.com/plugins=${attached.name} (if it has a konghq.com/plugins list already, add the name to it: --overwrite replaces the list)`);
    }
  }
  ctx.report('differs', source, PLUGINS_ANNOTATION, `--attach service: the KongPlugins are on the backend Services (${services.join(', ')}), not on this Ingress: a session token is bound to the Kong service, valid on every route to it`);
  return finishIngress(doc, doc, ctx, source);
}

/** `affinity: cookie` and its session-cookie-* annotations. */
function cookieConfig(doc: Obj, ctx: ConvertContext, source: string, key: (k: string) => string, use: (k: string) => string | undefined): ConvertedConfig {
  const config: ConvertedConfig = { transport: 'cookie' };

  // Name: INGRESSCOOKIE unless set. The same name lets the plugin read the old cookie and
  // replace it with its own at the first request through Kong.
  let cookieName = use('session-cookie-name') || INGRESS_NGINX_DEFAULT_COOKIE;
  if (!COOKIE_NAME.test(cookieName)) {
    ctx.report('unmapped', source, key('session-cookie-name'), `"${cookieName}" has characters the plugin refuses in a cookie name (letters, digits, "_", "-", "." only); ${INGRESS_NGINX_DEFAULT_COOKIE} used instead`);
    cookieName = INGRESS_NGINX_DEFAULT_COOKIE;
  }
  config.cookie_name = cookieName;

  const configuredPath = use('session-cookie-path');
  // Attached to Services, each backend gets the path of its own Ingress paths (convertIngress).
  if (ctx.options.attach === 'ingress') config.cookie_path = cookiePath(doc, ctx, source, key, configuredPath, undefined);

  const domain = use('session-cookie-domain');
  if (domain) {
    if (COOKIE_DOMAIN.test(domain)) config.cookie_domain = domain;
    else ctx.report('unmapped', source, key('session-cookie-domain'), `"${domain}" is not a domain the plugin accepts; no Domain attribute (the cookie stays host-only)`);
  }

  // ingress-nginx writes the value as given and sends no SameSite when unset.
  const sameSite = use('session-cookie-samesite');
  const conditional = use('session-cookie-conditional-samesite-none');
  if (sameSite) {
    const canonical = ({ none: 'None', lax: 'Lax', strict: 'Strict' } as const)[sameSite.toLowerCase() as 'none' | 'lax' | 'strict'];
    if (canonical) config.cookie_same_site = canonical;
    else ctx.report('ignored', source, key('session-cookie-samesite'), `"${sameSite}" is none of None, Lax, Strict: ingress-nginx refuses it too; SameSite=Lax`);
    if (canonical === 'None') {
      ctx.report('differs', source, key('session-cookie-samesite'), 'SameSite=None always comes with Secure here (browsers drop a SameSite=None cookie without it; ingress-nginx sent it only on HTTPS or with session-cookie-secure)');
    }
    if (canonical === 'None' && conditional === 'true') {
      config.cookie_same_site_none_exempt_user_agents = [...INGRESS_NGINX_SAMESITE_NONE_EXEMPT];
      if (sameSite !== 'None') {
        ctx.report('differs', source, key('session-cookie-conditional-samesite-none'), `ingress-nginx compares the SameSite value with "None" exactly, so with "${sameSite}" it exempted no browser; the plugin exempts the same browsers it would for "None"`);
      }
    } else if (conditional !== undefined) {
      ctx.report('ignored', source, key('session-cookie-conditional-samesite-none'), conditional === 'true' ? 'has an effect only with session-cookie-samesite "None"' : `"${conditional}": off, as in ingress-nginx`);
    }
  } else {
    ctx.report('differs', source, key('session-cookie-samesite'), 'unset: ingress-nginx sent no SameSite attribute; the plugin sends SameSite=Lax, which browsers assume for a cookie without one');
    if (conditional !== undefined) ctx.report('ignored', source, key('session-cookie-conditional-samesite-none'), 'has an effect only with session-cookie-samesite "None"');
  }

  // Secure: ingress-nginx omits `secure: false` from its Lua config, so "false" and unset both
  // mean "Secure on HTTPS", which is the plugin's unset cookie_secure.
  const secure = use('session-cookie-secure');
  if (secure === 'true') config.cookie_secure = true;
  else if (secure !== undefined && secure !== 'false') ctx.report('ignored', source, key('session-cookie-secure'), `"${secure}" is not a boolean: ingress-nginx ignores it too (Secure on HTTPS)`);

  config.cookie_http_only = true; // ingress-nginx's cookie is always HttpOnly.

  const maxAge = seconds(use('session-cookie-max-age'), ctx, source, key('session-cookie-max-age'));
  const expires = seconds(use('session-cookie-expires'), ctx, source, key('session-cookie-expires'));
  const lifetime = maxAge ?? expires;
  if (maxAge !== undefined && expires !== undefined && maxAge !== expires) {
    ctx.report('differs', source, key('session-cookie-expires'), `browsers obey Max-Age over Expires (RFC 6265), so the cookie lived ${maxAge} s; the plugin sends only Max-Age=${maxAge}`);
  } else if (maxAge === undefined && expires !== undefined) {
    ctx.report('differs', source, key('session-cookie-expires'), 'sent as Max-Age (same lifetime) instead of an Expires date');
  }
  if (lifetime !== undefined) {
    const from = key(maxAge !== undefined ? 'session-cookie-max-age' : 'session-cookie-expires');
    if (lifetime <= 0) {
      ctx.report('unmapped', source, from, `${lifetime}: ingress-nginx sent a cookie that expires at once (no affinity at all); the plugin sends a browser-session cookie`);
    } else if (lifetime > SECONDS_PER_YEAR) {
      config.cookie_max_age = SECONDS_PER_YEAR;
      ctx.report('differs', source, from, `${lifetime} s is more than the plugin's limit of a year: Max-Age=${SECONDS_PER_YEAR}`);
    } else {
      config.cookie_max_age = lifetime;
    }
  }

  // New sessions: ingress-nginx hashes a random key onto its pods (balanced: sessions move when
  // pods are added; persistent: they never move). The plugin keeps each session on its pod while
  // the pod serves, and sends new ones to the pod with the fewest.
  const modeValue = use('affinity-mode');
  let mode: 'balanced' | 'persistent' = 'balanced';
  if (modeValue === 'persistent' || modeValue === 'balanced') mode = modeValue;
  else if (modeValue !== undefined) ctx.report('ignored', source, key('affinity-mode'), `"${modeValue}" is neither balanced nor persistent: ingress-nginx uses balanced, and so does the legacy-cookie reader`);
  config.balancer = 'least-sessions';
  ctx.report(
    'differs',
    source,
    key('affinity-mode'),
    mode === 'balanced'
      ? 'balanced: ingress-nginx moved about (n-c)/n of the sessions when pods were added; the plugin moves none while their pod serves, and fills new pods with new sessions (balancer: least-sessions)'
      : 'persistent: sessions stay on their pod, as in ingress-nginx; new sessions go to the pod with the fewest (balancer: least-sessions) instead of a hash',
  );

  const canary = use('affinity-canary-behavior');
  if (canary !== undefined) {
    ctx.report('unmapped', source, key('affinity-canary-behavior'), `"${canary}": canary Ingresses are ingress-nginx's own; Kong has no canary by annotation, so there is no canary stickiness to keep`);
  }

  const changeOnFailure = use('session-cookie-change-on-failure');
  if (changeOnFailure === 'true') {
    config.change_on_failure = true;
    ctx.report(
      'differs',
      source,
      key('session-cookie-change-on-failure'),
      "ingress-nginx re-picked a pod within the failing request (nginx's next upstream); the plugin marks the pod failing after a 502/504 (failure_statuses) for failure_timeout seconds and moves the session on the next request",
    );
  } else if (changeOnFailure !== undefined && changeOnFailure !== 'false') {
    ctx.report('ignored', source, key('session-cookie-change-on-failure'), `"${changeOnFailure}" is not a boolean: off, as in ingress-nginx`);
  }

  if (ctx.options.legacyCookies) {
    config.accept_legacy_cookies = [{ format: 'ingress-nginx', mode, name: cookieName, ...persistentBackend(doc, mode, ctx, source, key) }];
    ctx.report(
      'action',
      source,
      key('session-cookie-name'),
      `accept_legacy_cookies: clients with an ingress-nginx ${cookieName} cookie keep their pod and get the plugin's token; remove it once sticky_session_legacy_cookie_decisions_total{result="pinned"} stays at 0 (docs/migrating.md, cut-over)`,
    );
  } else {
    ctx.report('differs', source, key('session-cookie-name'), 'without accept_legacy_cookies (--no-legacy-cookies), every client with an ingress-nginx cookie starts a new session on the switch');
  }
  return config;
}

/** ingress-nginx sets the cookie's Path to the matched Ingress path unless told otherwise. */
function cookiePath(doc: Obj, ctx: ConvertContext, source: string, key: (k: string) => string, configured: string | undefined, service: string | undefined): string {
  if (configured) {
    if (configured.startsWith('/')) return configured;
    ctx.report('unmapped', source, key('session-cookie-path'), `"${configured}" does not start with "/": Path=/ instead`);
    return '/';
  }
  const of = service === undefined ? '' : ` (backend ${service})`;
  const annotations = at(doc, 'metadata', 'annotations') as Obj;
  const prefix = ctx.options.annotationPrefix;
  const regex = String(annotations[`${prefix}/use-regex`] ?? '') === 'true' || annotations[`${prefix}/rewrite-target`] !== undefined;
  const paths = [...new Set(ingressPaths(doc, service))];
  if (regex) {
    ctx.report('differs', source, key('session-cookie-path'), `unset${of} with regular-expression paths (use-regex or rewrite-target), where ingress-nginx asks for it and would put the pattern in the cookie: Path=/`);
    return '/';
  }
  if (paths.length === 1) {
    if (paths[0] !== '/') ctx.report('differs', source, key('session-cookie-path'), `unset${of}: ingress-nginx used the matched Ingress path; the plugin is told it: Path=${paths[0]}`);
    return paths[0] as string;
  }
  const common = commonPath(paths);
  ctx.report(
    'differs',
    source,
    key('session-cookie-path'),
    `unset${of}: ingress-nginx set each cookie's Path to the Ingress path it matched (${paths.join(', ')}); one plugin sets Path=${common}, the paths' common prefix`,
  );
  return common;
}

/**
 * The paths of an Ingress as ingress-nginx's locations see them (`/` for the default backend),
 * of every backend or of the backend Service named.
 */
function ingressPaths(doc: Obj, service?: string): string[] {
  const paths: string[] = [];
  const serves = (backend: unknown): boolean => service === undefined || at(backend, 'service', 'name') === service;
  if (isObj(at(doc, 'spec', 'defaultBackend')) && serves(at(doc, 'spec', 'defaultBackend'))) paths.push('/');
  const rules = at(doc, 'spec', 'rules');
  for (const rule of Array.isArray(rules) ? rules : []) {
    const list = at(rule, 'http', 'paths');
    for (const p of Array.isArray(list) ? list : []) {
      if (serves(at(p, 'backend'))) paths.push(isObj(p) && typeof p.path === 'string' && p.path !== '' ? p.path : '/');
    }
  }
  return paths.length > 0 ? paths : ['/'];
}

/** The longest path, on segment boundaries, that every path starts with. */
export function commonPath(paths: readonly string[]): string {
  const split = paths.map((p) => p.split('/').filter(Boolean));
  const first = split[0] ?? [];
  let n = 0;
  while (n < first.length && split.every((s) => s[n] === first[n])) n++;
  return `/${first.slice(0, n).join('/')}`;
}

/**
 * KIC names the Kong service host after the backend's port (`<svc>.<ns>.<port>.svc`), and the
 * plugin finds that port in the EndpointSlices by name, or by number among target ports: a
 * multi-port Service reached by number would match nothing. When the input has the Service,
 * refer to its port by name instead (the same port).
 */
function namePorts(input: Obj, ctx: ConvertContext, source: string): Obj {
  const doc = structuredClone(input);
  let changed = false;
  const namespace = namespaceOf(doc);
  const backends: Array<[string, unknown]> = [['spec.defaultBackend', at(doc, 'spec', 'defaultBackend', 'service')]];
  const rules = at(doc, 'spec', 'rules');
  (Array.isArray(rules) ? rules : []).forEach((rule, i) => {
    const list = at(rule, 'http', 'paths');
    (Array.isArray(list) ? list : []).forEach((p, j) => backends.push([`spec.rules[${i}].http.paths[${j}].backend`, at(p, 'backend', 'service')]));
  });
  for (const [where, backend] of backends) {
    if (!isObj(backend) || !isObj(backend.port) || typeof backend.port.number !== 'number') continue;
    const service = ctx.service(namespace, String(backend.name));
    const ports = at(service, 'spec', 'ports');
    if (!service) {
      ctx.report('differs', source, `${where}.service.port`, `Service ${String(backend.name)} is not in the input: if it has several ports, refer to this one by name (port.name), or the plugin finds no port ${String(backend.port.number)} among the target ports of its EndpointSlices`);
      continue;
    }
    if (!Array.isArray(ports) || ports.length < 2) continue;
    const port = ports.find((p) => isObj(p) && p.port === (backend.port as Obj).number);
    if (isObj(port) && typeof port.name === 'string' && port.name !== '') {
      ctx.report('differs', source, `${where}.service.port`, `number ${String(backend.port.number)} written as name "${port.name}" (the same port): the plugin finds a multi-port Service's port in its EndpointSlices by name`);
      backend.port = { name: port.name };
      changed = true;
    }
  }
  return changed ? doc : input;
}

/** The Service backends of an Ingress as `name:port`. */
/**
 * Persistent mode salts its cookies with ingress-nginx's backend name,
 * `<namespace>-<service>-<port>` with the port as this Ingress names it (controller/util.go
 * upstreamName). The plugin would derive it from the Kong service host, whose port is a
 * number, and the conversion may name ports: so it is written out for an Ingress of one
 * backend. With several, each Kong route has its own backend and the plugin derives each.
 */
function persistentBackend(doc: Obj, mode: string, ctx: ConvertContext, source: string, key: (k: string) => string): { backend?: string } {
  if (mode !== 'persistent') return {};
  const backends = [...new Set(serviceBackends(doc))];
  if (backends.length === 1) {
    const [service, port] = backends[0]!.split(':') as [string, string];
    return { backend: `${namespaceOf(doc)}-${service}-${port}` };
  }
  ctx.report(
    'differs',
    source,
    key('affinity-mode'),
    `persistent cookies of ${backends.length} backends: the plugin derives each backend name from the Kong service host (<namespace>-<service>-<port number>); a backend the Ingress named by port name needs its own KongPlugin with accept_legacy_cookies[].backend (--attach service)`,
  );
  return {};
}

function serviceBackends(doc: Obj): string[] {
  const services = [at(doc, 'spec', 'defaultBackend', 'service')];
  const rules = at(doc, 'spec', 'rules');
  for (const rule of Array.isArray(rules) ? rules : []) {
    const list = at(rule, 'http', 'paths');
    for (const p of Array.isArray(list) ? list : []) services.push(at(p, 'backend', 'service'));
  }
  return services.filter(isObj).map((s) => `${String(s.name)}:${String(at(s, 'port', 'name') ?? at(s, 'port', 'number'))}`);
}

function resourceBackends(doc: Obj): string[] {
  const out: string[] = [];
  if (isObj(at(doc, 'spec', 'defaultBackend', 'resource'))) out.push('spec.defaultBackend.resource');
  const rules = at(doc, 'spec', 'rules');
  (Array.isArray(rules) ? rules : []).forEach((rule, i) => {
    const list = at(rule, 'http', 'paths');
    (Array.isArray(list) ? list : []).forEach((p, j) => {
      if (isObj(at(p, 'backend', 'resource'))) out.push(`spec.rules[${i}].http.paths[${j}].backend.resource`);
    });
  });
  return out;
}

/** `upstream-hash-by` without cookie affinity: only a cookie's hash is session affinity. */
function hashConfig(hashBy: string, ctx: ConvertContext, source: string, key: (k: string) => string, use: (k: string) => string | undefined): ConvertedConfig | undefined {
  const subset = use('upstream-hash-by-subset');
  const subsetSize = use('upstream-hash-by-subset-size');
  const cookie = /^\$cookie_([A-Za-z0-9_]+)$/.exec(hashBy);
  if (!cookie) {
    ctx.report(
      'unmapped',
      source,
      key('upstream-hash-by'),
      `"${hashBy}" hashes on something other than a cookie: that is load distribution by key, not a session; not converted (Kong's own consistent hashing does it: KongUpstreamPolicy algorithm consistent-hashing with hashOn)`,
    );
    return undefined;
  }
  // Never take the application's cookie name: the plugin would overwrite the application's cookie.
  ctx.report(
    'differs',
    source,
    key('upstream-hash-by'),
    `ingress-nginx hashed the application's cookie ${cookie[1]} onto a pod; the plugin pins with its own cookie sticky_session (the application's cookie is left alone), so each client starts one new session`,
  );
  if (subset !== undefined) ctx.report('unmapped', source, key('upstream-hash-by-subset'), 'subsets of pods per key have no equivalent: each session is pinned to one pod');
  if (subsetSize !== undefined) ctx.report(subset === 'true' ? 'unmapped' : 'ignored', source, key('upstream-hash-by-subset-size'), 'no subsets here: each session is pinned to one pod');
  return { transport: 'cookie', cookie_name: 'sticky_session', cookie_path: '/', balancer: 'least-sessions' };
}

function withIngressClass(doc: Obj, ingressClass: string, ctx: ConvertContext, source: string): Obj {
  const out = structuredClone(doc);
  const spec = isObj(out.spec) ? out.spec : (out.spec = {});
  const before = spec.ingressClassName;
  spec.ingressClassName = ingressClass;
  const annotations = at(out, 'metadata', 'annotations');
  if (isObj(annotations) && annotations['kubernetes.io/ingress.class'] !== undefined) {
    ctx.report('differs', source, 'kubernetes.io/ingress.class', `removed: the API server refuses it next to spec.ingressClassName (now "${ingressClass}")`);
    delete annotations['kubernetes.io/ingress.class'];
  } else if (before !== undefined && before !== ingressClass) {
    ctx.report('differs', source, 'spec.ingressClassName', `"${String(before)}" replaced by "${ingressClass}": ingress-nginx stops serving this Ingress once it is applied`);
  }
  return out;
}

/** expires / max-age as ingress-nginx accepts them (an integer); anything else it ignores. */
function seconds(value: string | undefined, ctx: ConvertContext, source: string, field: string): number | undefined {
  if (value === undefined || value === '') return undefined;
  if (INTEGER.test(value)) return Number(value);
  ctx.report('ignored', source, field, `"${value}" is not a number of seconds: ingress-nginx ignores it too`);
  return undefined;
}
