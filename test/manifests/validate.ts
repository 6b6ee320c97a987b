/**
 * Checkers for the Kubernetes material in kong/kubernetes/. Each returns a list of problems
 * (empty = fine) rather than throwing, so the negative tests can show that they bite.
 *
 * - core kinds: kubernetes-models (types, required fields, enums of the OpenAPI schema),
 *   plus a strict field walk over @kubernetes/client-node's generated models, because
 *   kubernetes-models lets unknown fields through and `kubectl apply --validate=strict`
 *   (kubectl's default) does not;
 * - KongPlugin: the JSON Schema in kongplugin.schema.json, written from Kong's CRD;
 * - plugin configs: Kong's schema handling of the plugin's own Schema (test/harness), then
 *   the checks an instance makes at start (src/config/resolve.ts).
 *
 * YAML is read as YAML 1.1, as kubectl, Helm and KIC do (sigs.k8s.io/yaml): `on`, `off`,
 * `yes`, `no` are booleans there, and a test reading YAML 1.2 would see strings.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ErrorObject } from 'ajv';
import { parseAllDocuments } from 'yaml';
// The generated models alone (what `import '@kubernetes/client-node'` would load in a second).
import * as clientModels from '@kubernetes/client-node/dist/gen/models/all.js';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { Ingress } from 'kubernetes-models/networking.k8s.io/v1/Ingress';
import { ClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import { ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { resolveConfig } from '../../src/config/resolve.js';
import { Schema } from '../../src/config/schema.js';
import { checkPluginSchema, processPluginConfig, removeNulls, type PluginSchemaDump } from '../harness/kong-schema.js';

export const REPO_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const MANIFESTS_DIR = path.join(REPO_DIR, 'kong', 'kubernetes');

export type Obj = Record<string, unknown>;

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Every document of a YAML stream as plain data; empty documents are dropped. */
export function parseYamlDocuments(text: string, where: string): unknown[] {
  const out: unknown[] = [];
  parseAllDocuments(text, { version: '1.1', uniqueKeys: true }).forEach((doc, i) => {
    const problems = [...doc.errors, ...doc.warnings];
    if (problems.length > 0) throw new Error(`${where} document ${i + 1}: ${problems.map((e) => e.message).join('; ')}`);
    const value: unknown = doc.toJS({ maxAliasCount: 0 });
    if (value !== null && value !== undefined) out.push(value);
  });
  return out;
}

export function readYamlDocuments(file: string): unknown[] {
  return parseYamlDocuments(readFileSync(file, 'utf8'), path.relative(REPO_DIR, file));
}

/** The YAML between `# BEGIN <marker>` and `# END <marker>`, with the comment signs removed. */
export function commentedBlock(text: string, marker: string): string {
  const lines = text.split('\n');
  const begin = lines.findIndex((l) => l.trim() === `# BEGIN ${marker}`);
  const end = lines.findIndex((l) => l.trim() === `# END ${marker}`);
  if (begin < 0 || end < begin) throw new Error(`no commented block "${marker}"`);
  return lines
    .slice(begin + 1, end)
    .map((l) => {
      if (l.trim() === '#') return '';
      if (!l.startsWith('# ')) throw new Error(`line in commented block "${marker}" does not start with "# ": ${l}`);
      return l.slice(2);
    })
    .join('\n');
}

// ---------------------------------------------------------------------------------------
// Core kinds

interface CoreModel {
  new (data: never): { validate(): void };
}

/** Every core kind these manifests may use; anything else is refused, not skipped. */
const CORE_KINDS: Readonly<Record<string, { readonly model: CoreModel; readonly namespaced: boolean }>> = {
  'v1/Namespace': { model: Namespace, namespaced: false },
  'v1/ServiceAccount': { model: ServiceAccount, namespaced: true },
  'v1/Secret': { model: Secret, namespaced: true },
  'v1/Service': { model: Service, namespaced: true },
  'apps/v1/Deployment': { model: Deployment, namespaced: true },
  'networking.k8s.io/v1/Ingress': { model: Ingress, namespaced: true },
  'rbac.authorization.k8s.io/v1/ClusterRole': { model: ClusterRole, namespaced: false },
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': { model: ClusterRoleBinding, namespaced: false },
  'rbac.authorization.k8s.io/v1/Role': { model: Role, namespaced: true },
  'rbac.authorization.k8s.io/v1/RoleBinding': { model: RoleBinding, namespaced: true },
};

export const KONGPLUGIN_KEY = 'configuration.konghq.com/v1/KongPlugin';

export function kindKey(doc: unknown): string {
  return isObj(doc) ? `${String(doc.apiVersion)}/${String(doc.kind)}` : '<not an object>';
}

interface AttributeType {
  readonly baseName: string;
  readonly type: string;
}

type ModelClass = { getAttributeTypeMap(): AttributeType[] };

function clientModel(type: string): ModelClass | undefined {
  const c = (clientModels as Record<string, unknown>)[type];
  return typeof c === 'function' && 'getAttributeTypeMap' in c ? (c as unknown as ModelClass) : undefined;
}

/**
 * Fields that the Kubernetes API does not know, found by walking the value along the types
 * of @kubernetes/client-node's models (generated from the API's OpenAPI document). Type
 * mismatches are left to kubernetes-models.
 */
export function unknownFields(value: unknown, type: string, at: string): string[] {
  if (value === null || value === undefined) return [];
  const array = /^Array<(.+)>$/.exec(type);
  if (array) {
    return Array.isArray(value) ? value.flatMap((v, i) => unknownFields(v, array[1] as string, `${at}[${i}]`)) : [];
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    return isObj(value) ? Object.entries(value).flatMap(([k, v]) => unknownFields(v, map[1] as string, `${at}.${k}`)) : [];
  }
  const model = clientModel(type);
  if (!model || !isObj(value)) return [];
  const fields = new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  return Object.entries(value).flatMap(([k, v]) => {
    const t = fields.get(k);
    return t === undefined ? [`${at}.${k}: unknown field (${type} has no "${k}")`] : unknownFields(v, t, `${at}.${k}`);
  });
}

function coreProblems(doc: Obj): string[] {
  const key = kindKey(doc);
  const kind = CORE_KINDS[key];
  if (!kind) return [`${key}: no validator for this kind (add it to CORE_KINDS, or do not use it)`];
  const problems: string[] = [];
  try {
    new kind.model(doc as never).validate();
  } catch (e) {
    problems.push(`${key}: ${(e as Error).message}`);
  }
  const version = String(doc.apiVersion).split('/').pop() as string;
  const modelName = `${version.charAt(0).toUpperCase()}${version.slice(1)}${String(doc.kind)}`;
  if (!clientModel(modelName)) problems.push(`${key}: no client-node model ${modelName} for the strict field check`);
  problems.push(...unknownFields(doc, modelName, key));
  return problems;
}

// ---------------------------------------------------------------------------------------
// KongPlugin

// strictSchema: an unknown keyword in the schema is an error, not a silently ignored rule.
const ajv = new Ajv({ allErrors: true, strictSchema: true, strictTypes: false, strictRequired: false, strictTuples: false });
const kongPluginSchema: unknown = JSON.parse(readFileSync(new URL('./kongplugin.schema.json', import.meta.url), 'utf8'));
const validateKongPluginSchema = ajv.compile(kongPluginSchema as object);

/** The `$comment` of the schema node at a JSON pointer such as `#/allOf/0`. */
function schemaComment(pointer: string): string | undefined {
  let node: unknown = kongPluginSchema;
  for (const part of pointer.replace(/^#\/?/, '').split('/').filter(Boolean)) node = isObj(node) ? node[part] : Array.isArray(node) ? node[Number(part)] : undefined;
  return isObj(node) && typeof node.$comment === 'string' ? node.$comment : undefined;
}

function ajvProblems(errors: readonly ErrorObject[] | null | undefined): string[] {
  return (errors ?? []).map((e) => {
    // A failed `not` only says "must NOT be valid": name the CRD rule it stands for.
    const rule = e.keyword === 'not' ? schemaComment(e.schemaPath.replace(/\/not$/, '')) : undefined;
    return `KongPlugin${e.instancePath || ''}: ${e.message ?? e.keyword}${rule ? ` (${rule})` : ` ${JSON.stringify(e.params)}`}`;
  });
}

export function kongPluginProblems(doc: unknown): string[] {
  return validateKongPluginSchema(doc) ? [] : ajvProblems(validateKongPluginSchema.errors);
}

// ---------------------------------------------------------------------------------------
// Any manifest

/** Problems of one manifest document: its kind's validator, explicit name and namespace. */
export function manifestProblems(doc: unknown): string[] {
  if (!isObj(doc)) return ['document is not an object'];
  const key = kindKey(doc);
  const metadata = isObj(doc.metadata) ? doc.metadata : {};
  const problems: string[] = [];
  if (typeof metadata.name !== 'string' || metadata.name === '') problems.push(`${key}: metadata.name missing`);
  if (key === KONGPLUGIN_KEY) {
    // Namespaced: say where, so `kubectl apply -f` does not depend on the current context.
    if (typeof metadata.namespace !== 'string') problems.push(`${key}: metadata.namespace missing`);
    return [...problems, ...kongPluginProblems(doc)];
  }
  const kind = CORE_KINDS[key];
  if (kind?.namespaced && typeof metadata.namespace !== 'string') problems.push(`${key}: metadata.namespace missing`);
  if (kind && !kind.namespaced && metadata.namespace !== undefined) problems.push(`${key}: cluster-scoped, yet has a namespace`);
  return [...problems, ...coreProblems(doc)];
}

// ---------------------------------------------------------------------------------------
// The plugin's own configuration

/** The plugin's schema as kong-pdk hands it to Kong (`--dump-all-plugins`). */
export const PLUGIN_SCHEMA: PluginSchemaDump = {
  name: 'sticky-session',
  fields: [{ config: { type: 'record', fields: Schema } }],
};
checkPluginSchema(PLUGIN_SCHEMA, PLUGIN_SCHEMA.name);

/**
 * Would Kong accept this as the plugin's `config` (types, one_of, between, match, unknown
 * fields...), and would an instance then start with it? Kong adds service_id for a plugin
 * on a service, as KIC's Service annotation makes it.
 */
export function pluginConfigProblems(config: unknown): string[] {
  let stored: Record<string, unknown>;
  try {
    stored = processPluginConfig(PLUGIN_SCHEMA, config);
  } catch (e) {
    return [`Kong would refuse the config: ${(e as Error).message}`];
  }
  try {
    resolveConfig({ ...removeNulls(stored), service_id: '6b1b3f5e-0c1a-4c2e-9a57-3f1d2b9c8e01' });
  } catch (e) {
    return [`an instance would not start: ${(e as Error).message}`];
  }
  return [];
}

/** A Secret key's value as KIC reads a configFrom Secret: JSON first, else YAML. */
export function secretValue(secret: Obj, key: string): string | undefined {
  const stringData = isObj(secret.stringData) ? secret.stringData : {};
  const data = isObj(secret.data) ? secret.data : {};
  // The API server merges stringData over data.
  if (typeof stringData[key] === 'string') return stringData[key];
  if (typeof data[key] === 'string') return Buffer.from(data[key], 'base64').toString('utf8');
  return undefined;
}

export function parseConfigLikeKic(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    const docs = parseYamlDocuments(text, 'Secret value');
    if (docs.length !== 1) throw new Error(`expected one YAML document, found ${docs.length}`);
    return docs[0];
  }
}

// ---------------------------------------------------------------------------------------
// RBAC

const WANTED_VERBS = ['list', 'watch'];

function sameSet(a: unknown, b: readonly string[]): boolean {
  return Array.isArray(a) && a.length === b.length && b.every((x) => a.includes(x));
}

/**
 * What the plugin server reads, one rule per API group: EndpointSlices (endpoint views),
 * Services and the Gateway API's HTTPRoutes and ReferenceGrants (Gateway API sources).
 */
export const WANTED_RULES: ReadonlyArray<{ readonly apiGroup: string; readonly resources: readonly string[] }> = [
  { apiGroup: 'discovery.k8s.io', resources: ['endpointslices'] },
  { apiGroup: '', resources: ['services'] },
  { apiGroup: 'gateway.networking.k8s.io', resources: ['httproutes', 'referencegrants'] },
];

/** A (Cluster)Role must grant list/watch on exactly WANTED_RULES, nothing else. */
export function rbacRoleProblems(role: Obj): string[] {
  const name = `${String(role.kind)} ${String(isObj(role.metadata) ? role.metadata.name : '?')}`;
  const problems: string[] = [];
  if (role.aggregationRule !== undefined) problems.push(`${name}: aggregationRule pulls in other roles' rules`);
  const rules = Array.isArray(role.rules) ? role.rules : [];
  if (rules.length !== WANTED_RULES.length) problems.push(`${name}: expected ${WANTED_RULES.length} rules, found ${rules.length}`);
  const found = new Set<string>();
  for (const [i, rule] of rules.entries()) {
    if (!isObj(rule)) {
      problems.push(`${name}: rule ${i} is not an object`);
      continue;
    }
    const wanted = WANTED_RULES.find((w) => sameSet(rule.apiGroups, [w.apiGroup]));
    if (!wanted) problems.push(`${name}: rule ${i} apiGroups ${JSON.stringify(rule.apiGroups)}`);
    else if (found.has(wanted.apiGroup)) problems.push(`${name}: rule ${i} repeats apiGroup ${JSON.stringify(wanted.apiGroup)}`);
    else found.add(wanted.apiGroup);
    if (wanted && !sameSet(rule.resources, wanted.resources)) problems.push(`${name}: rule ${i} resources ${JSON.stringify(rule.resources)}`);
    if (!sameSet(rule.verbs, WANTED_VERBS)) problems.push(`${name}: rule ${i} verbs ${JSON.stringify(rule.verbs)}, want ${WANTED_VERBS}`);
    if (rule.resourceNames !== undefined) problems.push(`${name}: rule ${i} has resourceNames (list/watch by label cannot use them)`);
    if (rule.nonResourceURLs !== undefined) problems.push(`${name}: rule ${i} has nonResourceURLs`);
  }
  for (const w of WANTED_RULES) if (!found.has(w.apiGroup)) problems.push(`${name}: no rule for apiGroup ${JSON.stringify(w.apiGroup)}`);
  return problems;
}

export interface ServiceAccountRef {
  readonly name: string;
  readonly namespace: string;
}

/** The binding gives `role` to exactly the ServiceAccount `sa`. */
export function rbacBindingProblems(binding: Obj, role: Obj, sa: ServiceAccountRef): string[] {
  const name = `${String(binding.kind)} ${String(isObj(binding.metadata) ? binding.metadata.name : '?')}`;
  const problems: string[] = [];
  const ref = isObj(binding.roleRef) ? binding.roleRef : {};
  const roleMeta = isObj(role.metadata) ? role.metadata : {};
  if (ref.apiGroup !== 'rbac.authorization.k8s.io' || ref.kind !== role.kind || ref.name !== roleMeta.name) {
    problems.push(`${name}: roleRef ${JSON.stringify(ref)} does not name ${String(role.kind)} ${String(roleMeta.name)}`);
  }
  if (binding.kind === 'RoleBinding') {
    const bindingNs = isObj(binding.metadata) ? binding.metadata.namespace : undefined;
    if (bindingNs !== roleMeta.namespace) problems.push(`${name}: in namespace ${String(bindingNs)}, its Role in ${String(roleMeta.namespace)}`);
  }
  const subjects = Array.isArray(binding.subjects) ? binding.subjects : [];
  const exact =
    subjects.length === 1 &&
    isObj(subjects[0]) &&
    subjects[0].kind === 'ServiceAccount' &&
    subjects[0].name === sa.name &&
    subjects[0].namespace === sa.namespace;
  if (!exact) problems.push(`${name}: subjects ${JSON.stringify(subjects)}, want only ServiceAccount ${sa.namespace}/${sa.name}`);
  return problems;
}

// ---------------------------------------------------------------------------------------
// Strategic merge (the part `kubectl patch` does for Deployments)

/** Lists of a PodSpec that a strategic-merge patch merges by `name` (patchMergeKey). */
const MERGE_BY_NAME = new Set(['containers', 'initContainers', 'env', 'volumes', 'volumeMounts']);

export function strategicMerge(base: unknown, patch: unknown, key = ''): unknown {
  if (Array.isArray(base) && Array.isArray(patch) && MERGE_BY_NAME.has(key)) {
    const out = base.map((x) => structuredClone(x) as unknown);
    for (const item of patch) {
      const i = out.findIndex((x) => isObj(x) && isObj(item) && x.name === item.name);
      if (i >= 0) out[i] = strategicMerge(out[i], item);
      else out.push(structuredClone(item));
    }
    return out;
  }
  if (isObj(base) && isObj(patch)) {
    const out: Obj = { ...base };
    for (const [k, v] of Object.entries(patch)) {
      if (v === null) delete out[k];
      else out[k] = k in base ? strategicMerge(base[k], v, k) : structuredClone(v);
    }
    return out;
  }
  return structuredClone(patch);
}

// ---------------------------------------------------------------------------------------
// Kong's env

/** The names in an nginx_main_env value ("A; env B; env C" becomes `env A; env B; env C;`). */
export function nginxMainEnvNames(value: string): string[] {
  return value
    .replace(/;\s*$/, '')
    .split(/;\s*env\s+/)
    .map((s) => s.trim().split('=')[0] as string)
    .filter(Boolean);
}
