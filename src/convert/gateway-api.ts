/**
 * Gateway API `sessionPersistence` on an HTTPRoute rule (GEP-1619). The plugin reads the rule
 * at run time (notes: design of issue 16): its backendRefs and weights are the endpoint set, its
 * sessionPersistence the session settings, live. So the conversion leaves sessionPersistence on
 * the rule, as is, and attaches to the rule a KongPlugin that carries only the signing secrets,
 * by an ExtensionRef filter (KIC puts the plugin on the Kong routes of that rule only). A rule
 * with a traffic split converts the same way. The report says what the plugin does differently
 * from GEP-1619, field by field, with the runtime's own reading of the field
 * (src/endpoints/gateway-api/session-persistence.ts): every shape since v1.1 (sessionName,
 * absoluteTimeout, idleTimeout, type, cookieConfig.lifetimeType; v1.6 without idleTimeout;
 * gateway-api main's cookie {name, path, lifetimeType}, header {name}).
 */
import { parseSessionPersistence } from '../endpoints/gateway-api/session-persistence.js';
import type { ConvertContext } from './context.js';
import { parseGatewayDuration } from '../endpoints/gateway-api/duration.js';
import { pluginName } from './emit.js';
import { at, describe, isObj, nameOf, namespaceOf, type Obj } from './model.js';

export const EXTENSION_REF_GROUP = 'configuration.konghq.com';

/** The ClusterRole of kong/kubernetes/rbac.yaml, which grants what the plugin reads for a rule. */
export const GATEWAY_API_RBAC = 'ClusterRole sticky-session-endpointslices-reader';

/** Returns the HTTPRoute to emit in place of `doc`. */
export function convertHttpRoute(doc: Obj, ctx: ConvertContext): Obj {
  const rules = at(doc, 'spec', 'rules');
  if (!Array.isArray(rules) || !rules.some((r) => isObj(r) && r.sessionPersistence !== undefined)) return doc;
  const out = structuredClone(doc);
  const outRules = at(out, 'spec', 'rules') as unknown[];
  let converted = 0;
  outRules.forEach((rule, i) => {
    if (!isObj(rule) || rule.sessionPersistence === undefined) return;
    const label = typeof rule.name === 'string' && rule.name !== '' ? rule.name : String(i);
    const plugin = convertRule(doc, rule, label, `${describe(doc)} rule ${label}`, `spec.rules[${i}]`, ctx);
    if (!plugin) return;
    const filters = Array.isArray(rule.filters) ? rule.filters : (rule.filters = []);
    // Converting an earlier output again: its filter is there already.
    const attached = filters.some((f) => isObj(f) && f.type === 'ExtensionRef' && at(f, 'extensionRef', 'group') === EXTENSION_REF_GROUP && at(f, 'extensionRef', 'kind') === 'KongPlugin' && at(f, 'extensionRef', 'name') === plugin);
    if (!attached) filters.push({ type: 'ExtensionRef', extensionRef: { group: EXTENSION_REF_GROUP, kind: 'KongPlugin', name: plugin } });
    converted++;
  });
  if (converted === 0) return doc; // every rule reported: the route goes out as read
  if (!ctx.reports.some((r) => r.source === GATEWAY_API_RBAC)) {
    ctx.report(
      'action',
      GATEWAY_API_RBAC,
      '',
      "the plugin reads each rule it serves (HTTPRoutes), its backend Services and ReferenceGrants, besides EndpointSlices: the ServiceAccount Kong runs under needs list/watch on them, as kong/kubernetes/rbac.yaml grants (an older copy of it grants EndpointSlices only: re-apply it)",
    );
  }
  return out;
}

/**
 * The KongPlugin made for the rule, or undefined when there is nothing to pin (reported). One
 * KongPlugin per rule, though all carry the same secrets: KIC merges the matches of rules with
 * the same backends *and the same filters* into one Kong route named after the first rule, so
 * a shared plugin would let one rule's sessionPersistence stand for another's.
 */
function convertRule(route: Obj, rule: Obj, label: string, source: string, ruleField: string, ctx: ConvertContext): string | undefined {
  const field = `${ruleField}.sessionPersistence`;
  const backends = Array.isArray(rule.backendRefs) ? rule.backendRefs : [];
  const isService = (b: unknown): boolean => isObj(b) && (b.group ?? '') === '' && (b.kind ?? 'Service') === 'Service';
  if (backends.length === 0) {
    ctx.report('ignored', source, field, 'the rule has no backendRefs: no pod to pin to; left as is, no KongPlugin');
    return undefined;
  }
  if (!backends.some(isService)) {
    ctx.report('unmapped', source, field, 'no backendRef is a Service: KIC routes only to Services, the plugin pins only to their pods; left as is, no KongPlugin');
    return undefined;
  }
  backends.forEach((b, j) => {
    if (!isService(b)) ctx.report('ignored', source, `${ruleField}.backendRefs[${j}]`, 'not a Service: KIC does not route to it, and the plugin pins no session to it');
  });

  const sp = rule.sessionPersistence;
  const parsed = parseSessionPersistence(sp);
  if (!parsed.ok) {
    ctx.report(
      'unmapped',
      source,
      field,
      `${parsed.reason}: the plugin cannot use it, and runs this rule with the KongPlugin's settings instead (cookie sticky_session, no timeouts), logging a config error of the rule; fix the field`,
    );
  } else {
    const headerWithCookie = isObj(sp) && sp.type === 'Header' && sp.cookieConfig !== undefined;
    for (const k of parsed.ignored) {
      if (!(headerWithCookie && k === 'cookieConfig')) ctx.report('unmapped', source, `${field}.${k}`, 'a field the plugin does not know (a newer Gateway API?): not honoured');
    }
    if (headerWithCookie) {
      ctx.report('ignored', source, `${field}.cookieConfig`, 'a cookie setting with type Header (Gateway API v1.5 and later refuse it): nothing to honour');
    }
    const { policy } = parsed;
    const nameField = parsed.shape === 'main' ? `${field}.${policy.type}.name` : `${field}.sessionName`;
    // A cookie without a name gets one of its own per rule (<cookie_name>_<8 hex>), as GEP-1619
    // asks (src/config/session-persistence.ts): nothing to report. A header has no such rule.
    if (policy.name === undefined && policy.type === 'header') {
      ctx.report('differs', source, nameField, "no name: the KongPlugin's header_name (X-Sticky-Session), the same for every rule that names none (tokens stay bound to their rule)");
    }
    if (policy.type === 'cookie' && policy.cookiePath === undefined) {
      const paths = matchPaths(rule).filter((p) => p !== '/');
      if (paths.length > 0) {
        ctx.report(
          'differs',
          source,
          field,
          `cookie Path=/ (the KongPlugin's cookie_path, gateway-api main's default), not the matched path (${paths.join(', ')}) that GEP-1619 up to v1.6 derives: the browser sends the cookie on every path of the host`,
        );
      }
    }
    if (policy.idleTimeoutS !== undefined) {
      ctx.report(
        'differs',
        source,
        `${field}.idleTimeout`,
        `the plugin keeps no server state: it re-issues the token once idle_refresh_percent (50%) of the window has passed, so a session ends after ${Math.ceil(policy.idleTimeoutS / 2)} to ${policy.idleTimeoutS} s without requests, not exactly ${policy.idleTimeoutS} s. Gateway API v1.6 removed the field: a v1.6 API server refuses it (kubectl's strict validation) or drops it; there, set idle_timeout in the KongPlugin instead`,
      );
    }
    if (isObj(sp)) {
      for (const k of ['absoluteTimeout', 'idleTimeout']) {
        const ms = parseGatewayDuration(sp[k]);
        if (ms !== undefined && ms % 1000 !== 0) ctx.report('differs', source, `${field}.${k}`, `${String(sp[k])}: the plugin counts whole seconds, ${Math.ceil(ms / 1000)} s`);
      }
    }
  }
  return ctx.addPlugin(namespaceOf(route), pluginName(nameOf(route), label, 'sticky-session'), {}, source);
}

/** The path values of a rule's matches (a rule without matches matches every path: `/`). */
function matchPaths(rule: Obj): string[] {
  const matches = Array.isArray(rule.matches) ? rule.matches : [];
  if (matches.length === 0) return ['/'];
  return matches.map((m) => at(m, 'path', 'value')).map((v) => (typeof v === 'string' ? v : '/'));
}
