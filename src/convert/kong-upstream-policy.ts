/**
 * KongUpstreamPolicy affinity (KIC) to sticky-session KongPlugins on the Services that use
 * the policy (`konghq.com/upstream-policy`):
 * - `algorithm: sticky-sessions` + `stickySessions {cookie, cookiePath}`: Kong Enterprise 3.11+;
 * - `hashOn.cookie` (+ `cookiePath`): open-source consistent hashing on a cookie Kong sets.
 * The policy stays, without what the plugin replaces; its other settings keep their meaning
 * for the requests Kong's own balancer still routes.
 */
import type { ConvertContext } from './context.js';
import { pluginName } from './emit.js';
import { at, COOKIE_NAME, describe, isObj, nameOf, namespaceOf, type ConvertedConfig, type Obj } from './model.js';

export const UPSTREAM_POLICY_ANNOTATION = 'konghq.com/upstream-policy';

/** Returns the policy to emit in place of `doc`. */
export function convertUpstreamPolicy(doc: Obj, ctx: ConvertContext): Obj {
  const source = describe(doc);
  const spec = isObj(doc.spec) ? doc.spec : {};
  const sticky = isObj(spec.stickySessions) ? spec.stickySessions : undefined;
  const hashOn = isObj(spec.hashOn) ? spec.hashOn : undefined;

  let cookie: unknown;
  let path: unknown;
  let from: string;
  if (sticky) {
    cookie = sticky.cookie;
    path = sticky.cookiePath;
    from = 'spec.stickySessions';
  } else if (hashOn && hashOn.cookie !== undefined) {
    cookie = hashOn.cookie;
    path = hashOn.cookiePath;
    from = 'spec.hashOn';
  } else {
    if (spec.algorithm === 'sticky-sessions') {
      ctx.report('unmapped', source, 'spec.algorithm', 'sticky-sessions without stickySessions names no cookie (and Kong open source refuses the algorithm); not converted');
    }
    return doc; // No cookie affinity: nothing of ours.
  }

  const config: ConvertedConfig = { transport: 'cookie' };
  if (typeof cookie === 'string' && COOKIE_NAME.test(cookie)) config.cookie_name = cookie;
  else ctx.report('unmapped', source, `${from}.cookie`, `${JSON.stringify(cookie)} is not a cookie name the plugin accepts; sticky_session used`);
  // KIC's and Kong's default path is "/".
  if (path === undefined || (typeof path === 'string' && path.startsWith('/'))) config.cookie_path = (path as string | undefined) ?? '/';
  else ctx.report('unmapped', source, `${from}.cookiePath`, `${JSON.stringify(path)} does not start with "/": Path=/`);
  config.balancer = 'least-sessions';

  const out = structuredClone(doc);
  const outSpec = out.spec as Obj;
  if (sticky) {
    ctx.report(
      'differs',
      source,
      'spec.stickySessions',
      "Kong's cookie was a session cookie with no server-side limit, its content Kong's own: existing sessions cannot be read, so each client starts one new session at the switch",
    );
    delete outSpec.stickySessions;
    if (outSpec.algorithm === 'sticky-sessions') {
      delete outSpec.algorithm;
      ctx.report('differs', source, 'spec.algorithm', 'sticky-sessions (Kong Enterprise 3.11+) removed: Kong open source refuses it; the default round-robin balances only what the plugin leaves to Kong');
    }
    // `hashOn.input: none` is what stickySessions requires; it means nothing without it.
    if (isObj(outSpec.hashOn) && outSpec.hashOn.input === 'none' && Object.keys(outSpec.hashOn).length === 1) {
      delete outSpec.hashOn;
      ctx.report('ignored', source, 'spec.hashOn.input', '"none" is only what stickySessions requires; removed with it');
    }
  } else {
    ctx.report(
      'differs',
      source,
      'spec.hashOn.cookie',
      "Kong hashed a random cookie onto a ring, so ~1/N of the sessions moved at every scale event; the plugin keeps each on its pod while the pod serves. Kong's cookies cannot be read: each client starts one new session at the switch",
    );
    delete outSpec.hashOn;
    if (outSpec.algorithm === 'consistent-hashing') {
      delete outSpec.algorithm;
      ctx.report('differs', source, 'spec.algorithm', 'consistent-hashing removed with its hashOn: the default round-robin balances only what the plugin leaves to Kong');
    }
  }
  if (outSpec.hashOnFallback !== undefined) {
    ctx.report('unmapped', source, 'spec.hashOnFallback', 'a fallback hash has no meaning for the plugin, which pins every request it can; removed with hashOn');
    delete outSpec.hashOnFallback;
  }
  if (outSpec.healthchecks !== undefined) {
    ctx.report('differs', source, 'spec.healthchecks', "kept, but they steer only Kong's balancer: requests the plugin pins go straight to the pod (set_target), which the plugin picks from the EndpointSlice conditions (ready, serving) instead");
  }
  if (outSpec.slots !== undefined) ctx.report('differs', source, 'spec.slots', "kept: it sizes Kong's balancer ring, used only for requests the plugin does not pin");
  if (Object.keys(outSpec).length === 0) {
    ctx.report('differs', source, 'spec', 'nothing left: you may delete this policy and the konghq.com/upstream-policy annotations that name it');
  }

  // One plugin per Service, naming the Service: KIC's Kong service host names it for Ingress
  // backends, not for HTTPRoute backends (httproute.<ns>.svc...), so the config says it.
  const namespace = namespaceOf(doc);
  const services = ctx
    .allServices()
    .filter((s) => namespaceOf(s) === namespace && at(s, 'metadata', 'annotations', UPSTREAM_POLICY_ANNOTATION) === nameOf(doc));
  for (const service of services) {
    const attached = ctx.attachToService(namespace, nameOf(service), { ...config, kubernetes_namespace: namespace, kubernetes_service: nameOf(service) }, source);
    if (attached.conflict) {
      ctx.report('unmapped', source, `service ${nameOf(service)}`, `Service ${namespace}/${nameOf(service)} already gets KongPlugin ${attached.name} with other settings (${attached.conflict}); this policy's are not applied to it`);
    }
  }
  if (services.length === 0) {
    const name = ctx.addPlugin(namespace, pluginName(nameOf(doc), 'sticky-session'), config, source);
    ctx.report(
      'action',
      source,
      '',
      `no Service in the input names this policy (${UPSTREAM_POLICY_ANNOTATION}): add KongPlugin ${name} to each one that does: kubectl -n ${namespace} annotate service <name> konghq.com/plugins=${name} (an existing konghq.com/plugins list: append to it)`,
    );
  }
  return out;
}
