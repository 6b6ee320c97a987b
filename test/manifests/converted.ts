/**
 * Validation of what `sticky-session convert` writes, with the checkers of validate.ts plus the
 * kinds only a conversion emits: Gateway API kinds (the v1.6.1 experimental-channel schema of
 * gateway-api.ts) and KongUpstreamPolicy (the fields and rules of KIC's CRD that a converted
 * policy can touch).
 */
import { resolveConfig } from '../../src/config/resolve.js';
import { FailoverSchema, Schema } from '../../src/config/schema.js';
import { checkPluginSchema, processPluginConfig, removeNulls, type PluginSchemaDump } from '../harness/kong-schema.js';
import { gatewayApiProblems, isGatewayApi } from './gateway-api.js';
import { isObj, KONGPLUGIN_KEY, kindKey, manifestProblems, pluginConfigProblems, type Obj } from './validate.js';

/** A stand-in for the Secret's value: what `openssl rand -base64 32` prints is 44 characters. */
export const TEST_SECRETS = ['c3RpY2t5LXNlc3Npb24tdGVzdC1rZXktMDEyMzQ1Njc4OQ=='];

/**
 * `accept_legacy_cookies` is added to the plugin's schema by the legacy-cookie work (issue 12
 * part 2). Until src/config/schema.ts has it, the config is checked without it and its shape here.
 */
export const SCHEMA_HAS_LEGACY_COOKIES = Schema.some((f) => 'accept_legacy_cookies' in f);

const KUP_SPEC_FIELDS = new Set(['algorithm', 'hashOn', 'hashOnFallback', 'healthchecks', 'slots', 'stickySessions']);
const KUP_ALGORITHMS = ['round-robin', 'consistent-hashing', 'least-connections', 'latency', 'sticky-sessions'];

export function legacyCookieProblems(value: unknown): string[] {
  if (!Array.isArray(value) || value.length === 0) return ['accept_legacy_cookies: not a non-empty array'];
  return value.flatMap((v, i) => {
    if (!isObj(v)) return [`accept_legacy_cookies[${i}]: not an object`];
    const problems: string[] = [];
    if (Object.keys(v).sort().join() !== 'format,mode,name') problems.push(`accept_legacy_cookies[${i}]: fields ${Object.keys(v).join()}`);
    if (v.format !== 'ingress-nginx') problems.push(`accept_legacy_cookies[${i}].format ${String(v.format)}`);
    if (v.mode !== 'balanced' && v.mode !== 'persistent') problems.push(`accept_legacy_cookies[${i}].mode ${String(v.mode)}`);
    if (typeof v.name !== 'string' || !/^[A-Za-z0-9_.-]+$/.test(v.name)) problems.push(`accept_legacy_cookies[${i}].name ${String(v.name)}`);
    return problems;
  });
}

/** The schema plugins-failover/ dumps: the only one with change_on_failure. */
const FAILOVER_PLUGIN_SCHEMA: PluginSchemaDump = { name: 'sticky-session', fields: [{ config: { type: 'record', fields: FailoverSchema } }] };
checkPluginSchema(FAILOVER_PLUGIN_SCHEMA, FAILOVER_PLUGIN_SCHEMA.name);

/** pluginConfigProblems (validate.ts) for a plugin server started on plugins-failover/. */
export function failoverConfigProblems(config: unknown): string[] {
  let stored: Record<string, unknown>;
  try {
    stored = processPluginConfig(FAILOVER_PLUGIN_SCHEMA, config);
  } catch (e) {
    return [`Kong would refuse the config: ${(e as Error).message}`];
  }
  try {
    resolveConfig({ ...removeNulls(stored), service_id: '6b1b3f5e-0c1a-4c2e-9a57-3f1d2b9c8e01' }, { logPhase: true });
  } catch (e) {
    return [`an instance would not start: ${(e as Error).message}`];
  }
  return [];
}

/** Problems of one converted document (empty: fine). */
export function convertedProblems(doc: unknown): string[] {
  if (!isObj(doc)) return ['document is not an object'];
  const key = kindKey(doc);
  if (key === KONGPLUGIN_KEY) {
    const problems = manifestProblems(doc);
    // KIC applies configPatches as JSON patches "add"; the Secret holds a JSON array.
    const config: Obj = { ...(doc.config as Obj) };
    for (const patch of (doc.configPatches as Obj[] | undefined) ?? []) {
      if (patch.path !== '/secrets') problems.push(`configPatches: unexpected path ${String(patch.path)}`);
      config.secrets = TEST_SECRETS;
    }
    if (!SCHEMA_HAS_LEGACY_COOKIES && config.accept_legacy_cookies !== undefined) {
      problems.push(...legacyCookieProblems(config.accept_legacy_cookies));
      delete config.accept_legacy_cookies;
    }
    // change_on_failure is in the schema of the plugins-failover/ server only (the report says so).
    return [...problems, ...(config.change_on_failure === true ? failoverConfigProblems(config) : pluginConfigProblems(config))];
  }
  if (isGatewayApi(doc)) return gatewayApiProblems(doc);
  if (key === 'configuration.konghq.com/v1beta1/KongUpstreamPolicy') {
    const spec = isObj(doc.spec) ? doc.spec : {};
    const problems = Object.keys(spec).filter((k) => !KUP_SPEC_FIELDS.has(k)).map((k) => `${key}: spec.${k}: unknown field`);
    if (spec.algorithm !== undefined && !KUP_ALGORITHMS.includes(String(spec.algorithm))) problems.push(`${key}: spec.algorithm ${String(spec.algorithm)}`);
    // CRD rule: stickySessions needs algorithm sticky-sessions and hashOn.input none.
    if (spec.stickySessions !== undefined && (spec.algorithm !== 'sticky-sessions' || (spec.hashOn as Obj | undefined)?.input !== 'none')) {
      problems.push(`${key}: stickySessions without algorithm sticky-sessions and hashOn.input none`);
    }
    return problems;
  }
  return manifestProblems(doc);
}
