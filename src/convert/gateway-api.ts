/**
 * Gateway API `sessionPersistence` on an HTTPRoute rule (GEP-1619) to a sticky-session
 * KongPlugin attached to that rule only, with an ExtensionRef filter (KIC puts the plugin on the
 * Kong routes of the rule). Reads the field names of every version since v1.1:
 * - v1.1 to v1.5: sessionName, absoluteTimeout, idleTimeout, type, cookieConfig.lifetimeType;
 * - v1.6: the same without idleTimeout;
 * - later: absoluteTimeout, type, cookie {name, path, lifetimeType}, header {name}.
 */
import type { ConvertContext } from './context.js';
import { parseGatewayDuration } from '../endpoints/gateway-api/duration.js';
import { pluginName } from './emit.js';
import {
  at,
  ceilSeconds,
  COOKIE_NAME,
  describe,
  HEADER_NAME,
  isObj,
  nameOf,
  namespaceOf,
  SECONDS_PER_YEAR,
  type ConvertedConfig,
  type Obj,
} from './model.js';

const KNOWN = new Set(['sessionName', 'absoluteTimeout', 'idleTimeout', 'type', 'cookieConfig', 'cookie', 'header']);

export const EXTENSION_REF_GROUP = 'configuration.konghq.com';

/** Returns the HTTPRoute to emit in place of `doc`. */
export function convertHttpRoute(doc: Obj, ctx: ConvertContext): Obj {
  const rules = at(doc, 'spec', 'rules');
  if (!Array.isArray(rules) || !rules.some((r) => isObj(r) && r.sessionPersistence !== undefined)) return doc;
  const out = structuredClone(doc);
  const outRules = at(out, 'spec', 'rules') as unknown[];
  let converted = 0;
  outRules.forEach((rule, i) => {
    if (!isObj(rule) || !isObj(rule.sessionPersistence)) return;
    const label = typeof rule.name === 'string' && rule.name !== '' ? rule.name : String(i);
    const source = `${describe(doc)} rule ${label}`;
    const field = `spec.rules[${i}].sessionPersistence`;
    const plugin = convertRule(doc, rule, label, source, field, ctx);
    if (!plugin) return;
    const filters = Array.isArray(rule.filters) ? rule.filters : (rule.filters = []);
    filters.push({ type: 'ExtensionRef', extensionRef: { group: EXTENSION_REF_GROUP, kind: 'KongPlugin', name: plugin } });
    delete rule.sessionPersistence;
    converted++;
  });
  // Nothing converted (every rule reported): the route goes out as read.
  return converted > 0 ? out : doc;
}

/** The KongPlugin name made for the rule, or undefined when it is not converted (reported). */
function convertRule(route: Obj, rule: Obj, label: string, source: string, field: string, ctx: ConvertContext): string | undefined {
  const sp = rule.sessionPersistence as Obj;
  const backends = Array.isArray(rule.backendRefs) ? rule.backendRefs.filter(isObj) : [];
  const services = backends.filter((b) => (b.group ?? '') === '' && (b.kind ?? 'Service') === 'Service');
  if (backends.length !== 1 || services.length !== 1) {
    ctx.report(
      'unmapped',
      source,
      field,
      backends.length === 0
        ? 'the rule has no backendRefs: nothing to pin to; left on the rule, not converted'
        : services.length !== backends.length
          ? 'a backend that is not a Service: the plugin pins to the pods of one Service; left on the rule, not converted'
          : `${backends.length} backends (a traffic split): the plugin pins to the pods of one Service; left on the rule, not converted (one rule per Service converts)`,
    );
    return undefined;
  }
  const backend = services[0] as Obj;
  const routeNs = namespaceOf(route);
  const backendNs = typeof backend.namespace === 'string' ? backend.namespace : routeNs;
  const backendName = String(backend.name);

  for (const k of Object.keys(sp)) if (!KNOWN.has(k)) ctx.report('unmapped', source, `${field}.${k}`, 'a field this converter does not know (a newer Gateway API?); not converted');

  const type = sp.type ?? 'Cookie';
  const config: ConvertedConfig = {};
  // GEP-1619: a unique name SHOULD be generated when none is given.
  const generated = `sp_${routeNs}_${nameOf(route)}_${label}`.replace(/[^A-Za-z0-9_.-]/g, '_');
  if (type === 'Header') {
    config.transport = 'header';
    const header = at(sp, 'header', 'name') ?? sp.sessionName;
    const where = at(sp, 'header', 'name') !== undefined ? `${field}.header.name` : `${field}.sessionName`;
    if (typeof header === 'string' && HEADER_NAME.test(header)) config.header_name = header;
    else if (header === undefined) ctx.report('differs', source, where, 'no name given: the plugin\'s header X-Sticky-Session');
    else ctx.report('unmapped', source, where, `${JSON.stringify(header)} is not a header name the plugin accepts (letters, digits, "_", "-"): X-Sticky-Session`);
    for (const k of ['cookieConfig', 'cookie']) if (sp[k] !== undefined) ctx.report('ignored', source, `${field}.${k}`, 'a cookie setting with type Header: the API refuses it, nothing to carry');
  } else if (type === 'Cookie') {
    config.transport = 'cookie';
    const cookie = at(sp, 'cookie', 'name') ?? sp.sessionName;
    const where = at(sp, 'cookie', 'name') !== undefined ? `${field}.cookie.name` : `${field}.sessionName`;
    if (typeof cookie === 'string' && COOKIE_NAME.test(cookie)) config.cookie_name = cookie;
    else if (cookie === undefined) {
      config.cookie_name = generated;
      ctx.report('differs', source, where, `no name given: ${generated}, unique to this rule as GEP-1619 asks`);
    } else {
      config.cookie_name = generated;
      ctx.report('unmapped', source, where, `${JSON.stringify(cookie)} has characters the plugin refuses in a cookie name (letters, digits, "_", "-", "." only): ${generated}`);
    }
    const path = at(sp, 'cookie', 'path');
    if (typeof path === 'string' && path.startsWith('/')) config.cookie_path = path;
    else {
      if (path !== undefined) ctx.report('unmapped', source, `${field}.cookie.path`, `${JSON.stringify(path)} does not start with "/": Path=/`);
      config.cookie_path = '/'; // GEP-1619's default.
    }
    if (sp.header !== undefined) ctx.report('ignored', source, `${field}.header`, 'a header setting with type Cookie: the API refuses it, nothing to carry');
  } else {
    ctx.report('unmapped', source, `${field}.type`, `${JSON.stringify(type)} is neither Cookie nor Header; not converted`);
    return undefined;
  }

  const lifetimeField = at(sp, 'cookie', 'lifetimeType') !== undefined ? `${field}.cookie.lifetimeType` : `${field}.cookieConfig.lifetimeType`;
  const lifetime = at(sp, 'cookie', 'lifetimeType') ?? at(sp, 'cookieConfig', 'lifetimeType') ?? 'Session';
  const absolute = timeout(sp.absoluteTimeout, `${field}.absoluteTimeout`, source, ctx);
  if (absolute !== undefined) config.absolute_timeout = absolute;
  if (type === 'Cookie') {
    if (lifetime === 'Permanent') {
      // The cookie lives as long as the session may: Max-Age = absoluteTimeout (required by the API).
      if (absolute !== undefined) config.cookie_max_age = absolute;
      else ctx.report('unmapped', source, lifetimeField, 'Permanent without a usable absoluteTimeout (the API requires one): a browser-session cookie');
    } else if (lifetime === 'Session') {
      config.cookie_max_age = 0;
    } else {
      ctx.report('unmapped', source, lifetimeField, `${JSON.stringify(lifetime)} is neither Session nor Permanent: a browser-session cookie`);
    }
  }

  const idle = timeout(sp.idleTimeout, `${field}.idleTimeout`, source, ctx);
  if (idle !== undefined) {
    config.idle_timeout = idle;
    ctx.report(
      'differs',
      source,
      `${field}.idleTimeout`,
      `the plugin keeps no server state: it re-issues the token once idle_refresh_percent (50%) of the window has passed, so a session ends after ${Math.ceil(idle / 2)} to ${idle} s without requests, not exactly ${idle} s`,
    );
  }

  // HTTPRoute backends get a Kong service host KIC names httproute.<ns>.svc...: the plugin
  // cannot read the Service from it, so the config names it.
  config.kubernetes_namespace = backendNs;
  config.kubernetes_service = backendName;
  const port = backend.port;
  const service = ctx.service(backendNs, backendName);
  const servicePorts = Array.isArray(at(service, 'spec', 'ports')) ? (at(service, 'spec', 'ports') as unknown[]).filter(isObj) : [];
  const named = servicePorts.find((p) => p.port === port && typeof p.name === 'string' && p.name !== '');
  if (named) config.kubernetes_port = String(named.name);
  else if (typeof port === 'number') {
    config.kubernetes_port = String(port);
    if (!service) {
      ctx.report('differs', source, `${field.replace(/\.sessionPersistence$/, "")}.backendRefs[0].port`, `Service ${backendNs}/${backendName} is not in the input: kubernetes_port ${port} finds the port only if the Service has one port; for a multi-port Service set it to the port's name`);
    }
  }
  ctx.report(
    'differs',
    source,
    field,
    'KongPlugin attached to this rule (ExtensionRef filter): a session token is bound to the Kong route KIC makes of the rule, as GEP-1619 scopes persistence to the rule',
  );
  return ctx.addPlugin(routeNs, pluginName(nameOf(route), label, 'sticky-session'), config, source);
}

/** A GEP-2257 duration as whole seconds for the plugin, or undefined (reported) when unusable. */
function timeout(value: unknown, field: string, source: string, ctx: ConvertContext): number | undefined {
  if (value === undefined) return undefined;
  const ms = parseGatewayDuration(value);
  if (ms === undefined) {
    ctx.report('unmapped', source, field, `${JSON.stringify(value)} is not a Gateway API duration (GEP-2257); no limit`);
    return undefined;
  }
  if (ms === 0) {
    ctx.report('unmapped', source, field, '0s: for the plugin 0 means no limit, and a session that ends at once is no session; no limit');
    return undefined;
  }
  let s = ceilSeconds(ms);
  if (s * 1000 !== ms) ctx.report('differs', source, field, `${String(value)}: the plugin counts whole seconds, ${s} s`);
  if (s > SECONDS_PER_YEAR) {
    ctx.report('differs', source, field, `${String(value)} is more than the plugin's limit of a year: ${SECONDS_PER_YEAR} s`);
    s = SECONDS_PER_YEAR;
  }
  return s;
}
