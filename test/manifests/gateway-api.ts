/**
 * Gateway API resources (HTTPRoute v1, Gateway v1, GatewayClass v1, ReferenceGrant v1beta1)
 * checked as a kube-apiserver with the v1.6.1 experimental-channel CRDs installed would check
 * them on create, and `kubectl apply --validate=strict` before it. Returns problem lists, like
 * validate.ts.
 *
 * The schema is gateway-api-v1.6.1-experimental.schema.json, the CRDs' openAPIV3Schema
 * (extract-gateway-api-schema.ts says where from). `@kubernetes-models/gateway-api` 2.0.0 is
 * not enough: it models v1.5's sessionPersistence (idleTimeout, gone in v1.6), lets unknown
 * fields through and has no CEL rule. What the API server does, in its order:
 * - defaulting: every `default` of the schema is filled in first (a backendRef's weight 1,
 *   group "" and kind Service, a path match's PathPrefix "/"...), since rules read them;
 * - the structural schema: types, enums, patterns, bounds, required; a field the schema does
 *   not name is an error (strict field validation) except under x-kubernetes-preserve-unknown-fields;
 * - x-kubernetes-list-type map/set: no two entries with the same keys;
 * - every x-kubernetes-validations CEL rule, evaluated with @marcbachmann/cel-js on the
 *   defaulted object (integers as CEL ints, `namespace` as `__namespace__`, as Kubernetes
 *   escapes it); transition rules (oldSelf) only run on update, so not here;
 * - metadata: name (and namespace for namespaced kinds) set, no field ObjectMeta lacks.
 */
import { readFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { Environment } from '@marcbachmann/cel-js';
import { Ajv, type ErrorObject, type SchemaValidateFunction, type ValidateFunction } from 'ajv';
import { isObj, kindKey, type Obj, unknownFields } from './validate.js';

export const GATEWAY_API_SCHEMA_FILE = new URL('./gateway-api-v1.6.1-experimental.schema.json', import.meta.url);
const bundle = JSON.parse(readFileSync(GATEWAY_API_SCHEMA_FILE, 'utf8')) as { $comment: string; $defs: Record<string, Obj> };

export const GATEWAY_API_KINDS: Readonly<Record<string, { readonly namespaced: boolean }>> = {
  'gateway.networking.k8s.io/v1/HTTPRoute': { namespaced: true },
  'gateway.networking.k8s.io/v1/Gateway': { namespaced: true },
  'gateway.networking.k8s.io/v1/GatewayClass': { namespaced: false },
  'gateway.networking.k8s.io/v1beta1/ReferenceGrant': { namespaced: true },
};

// ---------------------------------------------------------------------------------------
// CEL

const RESERVED = new Set(['true', 'false', 'null', 'in', 'as', 'break', 'const', 'continue', 'else', 'for', 'function', 'if', 'import', 'let', 'loop', 'package', 'namespace', 'return', 'var', 'void', 'while']);

const cel = new Environment({ unlistedVariablesAreDyn: true, homogeneousAggregateLiterals: false });

interface CelRule {
  readonly rule: string;
  readonly message?: string;
}

const compiled = new Map<string, (ctx: Obj) => unknown>();

/**
 * cel-js 8 refuses `has()` on a field of an indexed element (`has(self.matches[0].path)`,
 * valid CEL, in four HTTPRoute rules): written as the equivalent key test on that map.
 */
export function celCompatible(rule: string): string {
  return rule.replace(/has\(([^()]*\[[^\]]*\][^()]*)\.(\w+)\)/g, "('$2' in $1)");
}

/** The program of a CEL rule (cached); throws when cel-js cannot parse it. */
export function compileCelRule(rule: string): (ctx: Obj) => unknown {
  return celProgram(rule);
}

function celProgram(rule: string): (ctx: Obj) => unknown {
  let program = compiled.get(rule);
  if (!program) {
    program = cel.parse(celCompatible(rule)) as unknown as (ctx: Obj) => unknown;
    compiled.set(rule, program);
  }
  return program;
}

/** A value as CEL sees it under Kubernetes: integers are ints, reserved field names escaped. */
function celValue(v: unknown): unknown {
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  if (Array.isArray(v)) return v.map(celValue);
  if (isObj(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [RESERVED.has(k) ? `__${k}__` : k, celValue(x)]));
  return v;
}

/** Whether a rule is a transition rule (compares with the stored object: update only). */
export function isTransitionRule(rule: string): boolean {
  return /\boldSelf\b/.test(rule);
}

/** Every CEL rule text in a schema. */
export function celRules(schema: unknown): string[] {
  const out: string[] = [];
  const walk = (n: unknown): void => {
    if (Array.isArray(n)) n.forEach(walk);
    else if (isObj(n)) {
      for (const [k, v] of Object.entries(n)) {
        if (k === 'x-kubernetes-validations' && Array.isArray(v)) for (const r of v) if (isObj(r)) out.push(String(r.rule));
        walk(v);
      }
    }
  };
  walk(schema);
  return out;
}

function celKeyword(rules: CelRule[], data: unknown): boolean {
  const errors: Array<Partial<ErrorObject>> = [];
  const self = celValue(data);
  for (const { rule, message } of rules) {
    if (isTransitionRule(rule)) continue;
    let result: unknown;
    try {
      result = celProgram(rule)({ self });
    } catch (e) {
      // Kubernetes reports an evaluation error (a field read without has()) as a failure.
      errors.push({ keyword: 'x-kubernetes-validations', message: `${message ?? rule} (rule could not be evaluated: ${(e as Error).message.split('\n')[0]})`, params: { rule } });
      continue;
    }
    if (result !== true) errors.push({ keyword: 'x-kubernetes-validations', message: message ?? `failed rule: ${rule}`, params: { rule } });
  }
  celKeyword.errors = errors;
  return errors.length === 0;
}
celKeyword.errors = [] as Array<Partial<ErrorObject>>;

// ---------------------------------------------------------------------------------------
// List types

function listTypeKeyword(listType: string, data: unknown, parentSchema?: Obj): boolean {
  if (!Array.isArray(data) || (listType !== 'map' && listType !== 'set')) return true;
  const keys = listType === 'map' && Array.isArray(parentSchema?.['x-kubernetes-list-map-keys']) ? (parentSchema['x-kubernetes-list-map-keys'] as string[]) : undefined;
  const seen = new Set<string>();
  const errors: Array<Partial<ErrorObject>> = [];
  for (const item of data) {
    const id = JSON.stringify(keys ? keys.map((k) => (isObj(item) ? item[k] : undefined)) : item);
    if (seen.has(id)) errors.push({ keyword: 'x-kubernetes-list-type', message: `duplicate entry ${keys ? `with ${keys.join(', ')} = ` : ''}${id} in a list of type ${listType}`, params: { listType } });
    seen.add(id);
  }
  listTypeKeyword.errors = errors;
  return errors.length === 0;
}
listTypeKeyword.errors = [] as Array<Partial<ErrorObject>>;

// ---------------------------------------------------------------------------------------
// Schema preparation: what the API server's strict field validation adds

/** The schema with `additionalProperties: false` on every object that lists its properties. */
export function strictSchema(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(strictSchema);
  if (!isObj(node)) return node;
  const out: Obj = {};
  for (const [k, v] of Object.entries(node)) {
    // `properties` maps field names to schemas: recurse into the schemas, not the names.
    out[k] = k === 'properties' && isObj(v) ? Object.fromEntries(Object.entries(v).map(([f, s]) => [f, strictSchema(s)])) : strictSchema(v);
  }
  if (isObj(node.properties) && node.additionalProperties === undefined && node['x-kubernetes-preserve-unknown-fields'] !== true) out.additionalProperties = false;
  return out;
}

/** Fills in the schema's defaults, as the API server does before validating (structural defaulting). */
export function applyDefaults(schema: unknown, data: unknown): unknown {
  if (!isObj(schema)) return data;
  if (Array.isArray(data) && isObj(schema.items)) return data.map((d) => applyDefaults(schema.items, d));
  if (!isObj(data)) return data;
  const out: Obj = { ...data };
  if (isObj(schema.properties)) {
    for (const [k, s] of Object.entries(schema.properties)) {
      if (!isObj(s)) continue;
      if (out[k] === undefined && s.default !== undefined) out[k] = structuredClone(s.default);
      if (out[k] !== undefined) out[k] = applyDefaults(s, out[k]);
    }
  } else if (isObj(schema.additionalProperties)) {
    for (const [k, v] of Object.entries(out)) out[k] = applyDefaults(schema.additionalProperties, v);
  }
  return out;
}

const ajv = new Ajv({ allErrors: true, strictSchema: true, strictTypes: false, strictRequired: false, strictTuples: false });
ajv.addFormat('int32', { type: 'number', validate: (n: number) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 });
ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isSafeInteger(n) });
ajv.addFormat('date-time', (s: string) => /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(s) && !Number.isNaN(Date.parse(s)));
ajv.addFormat('ipv4', (s: string) => isIPv4(s));
ajv.addFormat('ipv6', (s: string) => isIPv6(s));
ajv.addKeyword({ keyword: 'x-kubernetes-validations', schemaType: 'array', validate: celKeyword as SchemaValidateFunction, errors: true });
ajv.addKeyword({ keyword: 'x-kubernetes-list-type', schemaType: 'string', validate: listTypeKeyword as SchemaValidateFunction, errors: true });
// Read by the list-type keyword, or markers with no check of their own.
for (const keyword of ['x-kubernetes-list-map-keys', 'x-kubernetes-map-type', 'x-kubernetes-preserve-unknown-fields', 'x-kubernetes-int-or-string']) ajv.addKeyword({ keyword });

const validators = new Map<string, { readonly schema: Obj; readonly validate: ValidateFunction }>(
  Object.keys(GATEWAY_API_KINDS).map((key) => {
    const schema = bundle.$defs[key];
    if (!isObj(schema)) throw new Error(`${key}: not in ${GATEWAY_API_SCHEMA_FILE.pathname}`);
    return [key, { schema, validate: ajv.compile(strictSchema(schema) as object) }];
  }),
);

/** Where the schema comes from (its `$comment`). */
export const GATEWAY_API_SCHEMA_SOURCE = bundle.$comment;

/** The schema of a kind as extracted from its CRD. */
export function gatewayApiSchema(key: string): Obj | undefined {
  return validators.get(key)?.schema;
}

// ---------------------------------------------------------------------------------------

function kindLabel(doc: Obj): string {
  const meta = isObj(doc.metadata) ? doc.metadata : {};
  return `${String(doc.kind)} ${meta.namespace !== undefined ? `${String(meta.namespace)}/` : ''}${String(meta.name)}`;
}

/** Problems of one Gateway API document (empty: the API server would take it). */
export function gatewayApiProblems(doc: unknown): string[] {
  if (!isObj(doc)) return ['document is not an object'];
  const key = kindKey(doc);
  const kind = GATEWAY_API_KINDS[key];
  const v = validators.get(key);
  if (!kind || !v) return [`${key}: not a Gateway API kind this validator knows (${Object.keys(GATEWAY_API_KINDS).join(', ')})`];
  const label = kindLabel(doc);
  const problems: string[] = [];
  const meta = isObj(doc.metadata) ? doc.metadata : {};
  if (typeof meta.name !== 'string' || meta.name === '') problems.push(`${label}: metadata.name missing`);
  if (kind.namespaced && typeof meta.namespace !== 'string') problems.push(`${label}: metadata.namespace missing`);
  if (!kind.namespaced && meta.namespace !== undefined) problems.push(`${label}: cluster-scoped, yet has a namespace`);
  problems.push(...unknownFields(doc.metadata, 'V1ObjectMeta', `${label} metadata`));
  const defaulted = applyDefaults(v.schema, structuredClone(doc));
  if (!v.validate(defaulted)) {
    for (const e of v.validate.errors ?? []) {
      const extra = e.keyword === 'additionalProperties' ? ` "${String((e.params as { additionalProperty?: string }).additionalProperty)}"` : e.keyword === 'enum' ? ` ${JSON.stringify((e.params as { allowedValues?: unknown }).allowedValues)}` : '';
      problems.push(`${label}${e.instancePath || ''}: ${e.message ?? e.keyword}${extra}`);
    }
  }
  return problems;
}

/** A document is a Gateway API object (by its API group), whatever its kind and version. */
export function isGatewayApi(doc: unknown): boolean {
  return isObj(doc) && typeof doc.apiVersion === 'string' && doc.apiVersion.startsWith('gateway.networking.k8s.io/');
}
