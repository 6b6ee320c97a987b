/**
 * `sticky-session convert`: Kubernetes documents in, the documents to apply for this plugin
 * under KIC out, plus a report of every source field that is mapped differently or not at all.
 * Pure: the CLI adapter (src/cli/convert.ts) reads and writes.
 */
import { ConvertContext } from './context.js';
import { convertHttpRoute } from './gateway-api.js';
import { convertIngress, hasIngressNginxAffinity } from './ingress-nginx.js';
import { convertUpstreamPolicy } from './kong-upstream-policy.js';
import { at, describe, isObj, kindOf, type ConvertOptions, type Report } from './model.js';

export { DEFAULT_OPTIONS, type ConvertOptions, type Report, type ReportLevel } from './model.js';

export interface ConvertResult {
  /** KongPlugins first, then every input document in input order (converted or as read). */
  readonly documents: unknown[];
  readonly reports: Report[];
  /** For each document: made or changed by the conversion (false: passed through as read). */
  readonly changed: boolean[];
  /** How many source resources were converted. */
  readonly converted: number;
}

const GATEWAY_GROUPS = ['gateway.networking.k8s.io', 'gateway.networking.x-k8s.io'];

export function convert(inputs: readonly unknown[], options: ConvertOptions): ConvertResult {
  const ctx = new ConvertContext(options, inputs);
  const initial = [...ctx.outputs];
  let converted = 0;
  inputs.forEach((_, i) => {
    // The copy, with the namespace kubectl would use when the input names none.
    const doc = ctx.outputs[i];
    if (!isObj(doc)) return;
    const before = ctx.plugins.length;
    const kind = kindOf(doc);
    const group = String(doc.apiVersion).split('/')[0] as string;
    if (kind === 'networking.k8s.io/v1/Ingress') {
      if (hasIngressNginxAffinity(doc, options.annotationPrefix)) ctx.outputs[i] = convertIngress(doc, ctx);
    } else if (group === 'configuration.konghq.com' && doc.kind === 'KongUpstreamPolicy') {
      ctx.outputs[i] = convertUpstreamPolicy(doc, ctx);
    } else if (group === 'gateway.networking.k8s.io' && doc.kind === 'HTTPRoute') {
      ctx.outputs[i] = convertHttpRoute(doc, ctx);
    } else if (GATEWAY_GROUPS.includes(group)) {
      reportOtherGatewayKinds(doc, ctx);
    } else if (kind === 'extensions/v1beta1/Ingress' || kind === 'networking.k8s.io/v1beta1/Ingress') {
      if (hasIngressNginxAffinity(doc, options.annotationPrefix)) {
        ctx.report('unmapped', describe(doc), 'apiVersion', `${String(doc.apiVersion)} is gone since Kubernetes 1.22: convert the Ingress to networking.k8s.io/v1 first; not converted`);
      }
    }
    if (ctx.plugins.length > before || ctx.outputs[i] !== doc) converted++;
  });
  const changed = ctx.outputs.map((d, i) => d !== initial[i]);
  return {
    // Documents the conversion did not touch go out exactly as read.
    documents: [...ctx.plugins, ...ctx.outputs.map((d, i) => (changed[i] ? d : inputs[i]))],
    changed: [...ctx.plugins.map(() => true), ...changed],
    reports: ctx.reports,
    converted,
  };
}

/** Session persistence on Gateway API kinds other than an HTTPRoute rule: reported, passed through. */
function reportOtherGatewayKinds(doc: Record<string, unknown>, ctx: ConvertContext): void {
  const source = describe(doc);
  if (doc.kind === 'GRPCRoute') {
    const rules = at(doc, 'spec', 'rules');
    (Array.isArray(rules) ? rules : []).forEach((rule, i) => {
      if (isObj(rule) && rule.sessionPersistence !== undefined) {
        ctx.report('unmapped', source, `spec.rules[${i}].sessionPersistence`, 'gRPC clients keep no cookies and the plugin has no gRPC test coverage yet; not converted');
      }
    });
  } else if (isObj(doc.spec) && doc.spec.sessionPersistence !== undefined) {
    // BackendLBPolicy (GEP-1619's first form) and (X)BackendTrafficPolicy (GEP-3388).
    ctx.report(
      'unmapped',
      source,
      'spec.sessionPersistence',
      'session persistence set for whole backends by a policy: not converted; put it on the HTTPRoute rules that reach those Services (a rule setting wins over the policy anyway) and convert them',
    );
  }
}
