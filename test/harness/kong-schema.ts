/**
 * What Kong does with a plugin's configuration before the plugin server ever sees it,
 * for the subset of Kong's Lua schema language a kong-pdk plugin can use:
 *
 * 1. at start-up, the plugin's schema is checked against Kong's metaschema (unknown field
 *    attributes, wrong attribute types, missing `elements`/`keys`/`values`/`fields`,
 *    invalid defaults: Kong refuses to start) and records are made required unless they
 *    say otherwise (Entity.new_subschema: `make_records_required`);
 * 2. on the Admin API (or declarative config), the config is completed like
 *    `process_auto_fields(input, "insert")`: absent fields get a copy of their `default`,
 *    else null when not required; required records without default are expanded;
 * 3. it is validated like `Schema:validate`: types, then the validators in Kong's order,
 *    first failure wins; errors are a table keyed by field name (arrays: by index), which
 *    the Admin API returns as HTTP 400 `{code: 2, name: "schema violation", fields, message}`.
 *
 * Types: string, number, integer, boolean, array, set, map, record. Validators: eq, ne,
 * one_of, not_one_of, gt, between, timestamp, uuid, is_regex (PCRE2, as Kong), len_eq,
 * len_min, len_max (strings: bytes), starts_with, match, not_match,
 * match_all, match_none, match_any (Lua patterns), contains. `referenceable` strings that
 * look like `{vault://...}` skip the validators (nothing is resolved). A record's
 * entity_checks: mutually_exclusive_sets. Not supported (refused loudly): foreign, function,
 * json types, custom_validator, other entity checks, shorthand_fields,
 * mutually_exclusive_subsets.
 */
import { luaMatches } from './lua-pattern.js';
import { pcreCompiles } from './pcre.js';

export type FieldDef = { readonly type: string } & { readonly [attr: string]: unknown };
export type FieldList = ReadonlyArray<Readonly<Record<string, FieldDef>>>;

/** The `Schema` of a `--dump-all-plugins` entry: `{name, fields: [{config: {...}}]}`. */
export interface PluginSchemaDump {
  readonly name: string;
  readonly fields: FieldList;
}

export type SchemaErrors = { [field: string]: SchemaErrorValue };
export type SchemaErrorValue = string | SchemaErrors | Array<SchemaErrorValue | null>;

const MSG = {
  ARRAY: 'expected an array',
  SET: 'expected a set',
  MAP: 'expected a map',
  RECORD: 'expected a record',
  STRING: 'expected a string',
  NUMBER: 'expected a number',
  BOOLEAN: 'expected a boolean',
  INTEGER: 'expected an integer',
  REQUIRED: 'required field missing',
  UNKNOWN: 'unknown field',
  UUID: 'expected a valid UUID',
  TIMESTAMP: 'expected a valid timestamp',
} as const;

/** HTTP 400 from the Admin API: `fields` is Kong's error table, e.g. `{config: {x: "..."}}`. */
export class KongSchemaError extends Error {
  override name = 'KongSchemaError';
  readonly code = 2;
  readonly status = 400;
  constructor(readonly fields: SchemaErrors) {
    super(schemaViolationMessage(fields));
  }
  /** The Admin API response body. */
  toJSON(): { code: number; name: string; message: string; fields: SchemaErrors } {
    return { code: 2, name: 'schema violation', message: this.message, fields: this.fields };
  }
}

/** Kong refuses to start: the plugin's schema does not pass the metaschema. */
export class KongMetaSchemaError extends Error {
  override name = 'KongMetaSchemaError';
  constructor(
    readonly plugin: string,
    readonly errors: SchemaErrors,
  ) {
    super(`error loading plugin schemas: on plugin '${plugin}': ${schemaViolationMessage(errors)}`);
  }
}

/** The harness meets a schema feature it does not emulate: it refuses rather than guesses. */
export class UnsupportedSchemaError extends Error {
  override name = 'UnsupportedSchemaError';
}

function sortedKeys(o: object): string[] {
  return Object.keys(o).sort();
}

function schemaViolationMessage(errors: SchemaErrors): string {
  const buf: string[] = [];
  for (const name of sortedKeys(errors)) {
    const e = errors[name];
    if (e !== null && typeof e === 'object') {
      const sub = e as Record<string, unknown>;
      for (const k of sortedKeys(sub)) {
        const v = sub[k];
        if (v === null || v === undefined) continue;
        const key = Array.isArray(e) ? String(Number(k) + 1) : k;
        buf.push(`${name}.${key}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
      }
    } else {
      buf.push(`${name}: ${String(e)}`);
    }
  }
  return buf.length === 1 ? `schema violation (${buf[0]})` : `${buf.length} schema violations (${buf.join('; ')})`;
}

// ---------------------------------------------------------------------------------------
// Helpers

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/** A Lua table from JSON: arrays and objects both are. */
function isTable(v: unknown): boolean {
  return v !== null && typeof v === 'object' && !(v instanceof Uint8Array);
}

/** Lua's is_sequence on a decoded JSON value: an array, or an empty object. */
function isSequence(v: unknown): v is unknown[] | Record<string, never> {
  return Array.isArray(v) || (isPlainObject(v) && Object.keys(v).length === 0);
}

/** A Lua table's pairs(): arrays have keys 1..n. */
function tablePairs(v: unknown): Array<[string | number, unknown]> {
  if (Array.isArray(v)) return v.map((x, i) => [i + 1, x]);
  return Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
}

function deepCopy<T>(v: T): T {
  return v === undefined ? v : (structuredClone(v) as T);
}

function fieldEntries(list: unknown): Array<[string, FieldDef]> {
  if (!Array.isArray(list)) return [];
  const out: Array<[string, FieldDef]> = [];
  for (const item of list) {
    if (!isPlainObject(item)) continue;
    const keys = Object.keys(item);
    const k = keys[0];
    if (k === undefined) continue;
    out.push([k, item[k] as FieldDef]);
  }
  return out;
}

/** Lua's tostring for what validators print. */
function luaToString(v: unknown): string {
  if (v === null || v === undefined) return 'nil';
  if (typeof v === 'number') {
    if (Number.isInteger(v)) return String(v);
    return String(v);
  }
  if (typeof v === 'string') return v;
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  return 'table';
}

function luaLength(v: unknown, type: string): number {
  if (typeof v === 'string') return Buffer.byteLength(v, 'utf8');
  if (Array.isArray(v)) return v.length;
  if (type === 'map' && isPlainObject(v)) return Object.keys(v).length;
  return 0;
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** kong.pdk.vault is_reference */
export function isVaultReference(v: unknown): boolean {
  return typeof v === 'string' && v.startsWith('{vault://') && v.endsWith('}');
}

// ---------------------------------------------------------------------------------------
// Validators, in Kong's Schema.validators_order

type Validator = (value: unknown, arg: unknown, field: FieldDef) => string | null;

const VALIDATORS: Array<[string, Validator]> = [
  ['eq', (v, wanted) => (v === wanted ? null : `value must be ${wanted === null ? 'null' : luaToString(wanted)}`)],
  ['ne', (v, wanted) => (v !== wanted ? null : `value must not be ${wanted === null ? 'null' : luaToString(v)}`)],
  [
    'not_one_of',
    (v, options) =>
      (options as unknown[]).includes(v) ? `must not be one of: ${(options as unknown[]).map(luaToString).join(', ')}` : null,
  ],
  [
    'one_of',
    (v, options) =>
      (options as unknown[]).includes(v) ? null : `expected one of: ${(options as unknown[]).map(luaToString).join(', ')}`,
  ],
  ['gt', (v, limit) => ((v as number) > (limit as number) ? null : `value must be greater than ${luaToString(limit)}`)],
  ['timestamp', (v) => ((v as number) > 0 ? null : MSG.TIMESTAMP)],
  ['uuid', (v) => (typeof v === 'string' && v.length === 36 && UUID_RE.test(v) ? null : MSG.UUID)],
  ['is_regex', (v) => (pcreCompiles(v as string) ? null : `not a valid regex: ${luaToString(v)}`)],
  [
    'between',
    (v, limits) => {
      const [lo, hi] = limits as [number, number];
      return (v as number) < lo || (v as number) > hi ? `value should be between ${Math.trunc(lo)} and ${Math.trunc(hi)}` : null;
    },
  ],
  ['len_eq', (v, n, f) => (luaLength(v, f.type) === n ? null : `length must be ${n as number}`)],
  ['len_min', (v, n, f) => (luaLength(v, f.type) >= (n as number) ? null : `length must be at least ${n as number}`)],
  ['len_max', (v, n, f) => (luaLength(v, f.type) <= (n as number) ? null : `length must be at most ${n as number}`)],
  ['starts_with', (v, s) => ((v as string).startsWith(s as string) ? null : `should start with: ${s as string}`)],
  ['not_match', (v, p) => (luaMatches(v as string, p as string) ? `invalid value: ${v as string}` : null)],
  [
    'match_none',
    (v, list) => {
      for (const item of list as Array<{ pattern: string; err?: string }>) {
        if (luaMatches(v as string, item.pattern)) return item.err ?? `invalid value: ${v as string}`;
      }
      return null;
    },
  ],
  ['match', (v, p) => (luaMatches(v as string, p as string) ? null : `invalid value: ${v as string}`)],
  [
    'match_all',
    (v, list) => {
      for (const item of list as Array<{ pattern: string; err?: string }>) {
        if (!luaMatches(v as string, item.pattern)) return item.err ?? `invalid value: ${v as string}`;
      }
      return null;
    },
  ],
  [
    'match_any',
    (v, arg) => {
      const { patterns, err } = arg as { patterns: string[]; err?: string };
      return patterns.some((p) => luaMatches(v as string, p)) ? null : (err ?? `invalid value: ${v as string}`);
    },
  ],
  [
    'contains',
    (v, wanted) => ((v as unknown[]).includes(wanted) ? null : `expected to contain: ${luaToString(wanted)}`),
  ],
];

const UNSUPPORTED_ATTRIBUTES = ['custom_validator', 'mutually_exclusive_subsets', 'shorthand_fields'];

// ---------------------------------------------------------------------------------------
// Entity checks of a record (Schema.entity_checkers, run_entity_check)

type EntityCheck = (record: Record<string, unknown>, arg: Record<string, unknown>, errors: SchemaErrors) => string | null;

/** Kong's is_nonempty: nil, null, an empty table and "" are empty. */
function isNonEmpty(v: unknown): boolean {
  if (v === null || v === undefined || v === '') return false;
  if (isTable(v)) return Array.isArray(v) ? v.length > 0 : Object.keys(v as object).length > 0;
  return true;
}

const quotedList = (names: readonly string[]): string => names.map((n) => `'${n}'`).join(', ');

const ENTITY_CHECKS: Record<string, EntityCheck> = {
  // run_with_missing_fields; skipped when one of its fields already has an error.
  mutually_exclusive_sets: (record, arg, errors) => {
    const set1 = arg.set1 as string[];
    const set2 = arg.set2 as string[];
    if ([...set1, ...set2].some((f) => errors[f] !== undefined)) return null;
    const in1 = set1.filter((f) => isNonEmpty(record[f]));
    const in2 = set2.filter((f) => isNonEmpty(record[f]));
    return in1.length && in2.length ? `these sets are mutually exclusive: (${quotedList(in1)}), (${quotedList(in2)})` : null;
  },
};

/** The checker of an entity_checks entry, or UnsupportedSchemaError. */
function entityCheckOf(entry: unknown): [EntityCheck, Record<string, unknown>] {
  const name = isPlainObject(entry) ? Object.keys(entry)[0] : undefined;
  const check = name === undefined ? undefined : ENTITY_CHECKS[name];
  if (!check) throw new UnsupportedSchemaError(`harness: entity check '${String(name)}' is not emulated`);
  return [check, (entry as Record<string, Record<string, unknown>>)[name as string] as Record<string, unknown>];
}

/** Runs a record's entity checks; their messages go to errors["@entity"], as Kong's do. */
function runEntityChecks(record: FieldDef, input: Record<string, unknown>, errors: SchemaErrors): void {
  if (!Array.isArray(record.entity_checks)) return;
  for (const entry of record.entity_checks) {
    const [check, arg] = entityCheckOf(entry);
    const e = check(input, arg, errors);
    if (e !== null) ((errors['@entity'] ??= []) as string[]).push(e);
  }
}

// ---------------------------------------------------------------------------------------
// process_auto_fields (insert)

function handleMissingField(field: FieldDef): unknown {
  if (field.default !== undefined) return deepCopy(field.default);
  if (field.required !== true) return null;
  if (field.type === 'record') return processAutoFields(field, {});
  return undefined;
}

function adjustField(field: FieldDef, value: unknown): unknown {
  if (field.type === 'record') {
    if (value !== null && (value !== undefined || field.required === true)) {
      if (value === undefined) value = handleMissingField(field);
      if (isPlainObject(value)) return processAutoFields(field, value);
      if (Array.isArray(value) && value.length === 0) return processAutoFields(field, {});
    }
  } else if (isTable(value)) {
    let sub: FieldDef | undefined;
    if (field.type === 'array') {
      if (isSequence(value) && !Array.isArray(value)) value = [];
      sub = field.elements as FieldDef | undefined;
    } else if (field.type === 'set') {
      if (isSequence(value)) {
        const arr = Array.isArray(value) ? value : [];
        const seen: unknown[] = [];
        for (const x of arr) if (!seen.includes(x)) seen.push(x);
        value = seen;
      }
      sub = field.elements as FieldDef | undefined;
    } else if (field.type === 'map') {
      sub = field.values as FieldDef | undefined;
    }
    if (sub) {
      if (Array.isArray(value)) value = value.map((x) => adjustField(sub, x));
      else if (isPlainObject(value)) {
        const o: Record<string, unknown> = {};
        for (const [k, x] of Object.entries(value)) o[k] = adjustField(sub, x);
        value = o;
      }
    }
  }
  if (value === undefined) return handleMissingField(field);
  return value;
}

function processAutoFields(record: FieldDef, data: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...data };
  for (const [name, field] of fieldEntries(record.fields)) {
    const v = adjustField(field, out[name]);
    if (v === undefined) delete out[name];
    else out[name] = v;
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// validate

function validateRecord(record: FieldDef, input: Record<string, unknown>): SchemaErrors | null {
  const errors: SchemaErrors = {};
  const fields = new Map(fieldEntries(record.fields));
  for (const [k, v] of Object.entries(input)) {
    if (v === undefined) continue;
    const field = fields.get(k);
    if (!field) {
      errors[k] = MSG.UNKNOWN;
      continue;
    }
    const err = validateField(field, v);
    if (err !== null) errors[k] = err;
  }
  for (const [name, field] of fields) {
    if (field.required === true && (input[name] === null || input[name] === undefined)) errors[name] = MSG.REQUIRED;
  }
  runEntityChecks(record, input, errors);
  return Object.keys(errors).length ? errors : null;
}

function validateElements(field: FieldDef, value: unknown[]): SchemaErrorValue | null {
  const elements = { ...(field.elements as FieldDef), required: true } as FieldDef;
  const errs: Array<SchemaErrorValue | null> = [];
  let ok = true;
  value.forEach((x, i) => {
    const e = validateField(elements, x);
    if (e !== null) {
      ok = false;
      errs[i] = e;
    }
  });
  if (ok) return null;
  for (let i = 0; i < errs.length; i++) if (errs[i] === undefined) errs[i] = null;
  return errs;
}

/** Kong's Schema:validate_field; null when valid. */
export function validateField(field: FieldDef, value: unknown): SchemaErrorValue | null {
  for (const attr of UNSUPPORTED_ATTRIBUTES) {
    if (field[attr] !== undefined) throw new UnsupportedSchemaError(`harness: schema attribute '${attr}' is not emulated`);
  }
  const err = typeof field.err === 'string' ? field.err : undefined;
  if (value === null || value === undefined) {
    if (field.ne === null) return err ?? 'value must not be null';
    if (field.eq !== undefined && field.eq !== null) return `value must be ${luaToString(field.eq)}`;
    if (field.required === true) return MSG.REQUIRED;
    return null;
  }
  if (field.eq === null) return err ?? 'value must be null';

  switch (field.type) {
    case 'array': {
      if (!isSequence(value)) return MSG.ARRAY;
      const e = validateElements(field, Array.isArray(value) ? value : []);
      if (e !== null) return e;
      break;
    }
    case 'set': {
      if (!isSequence(value)) return MSG.SET;
      const e = validateElements(field, Array.isArray(value) ? value : []);
      if (e !== null) return e;
      break;
    }
    case 'map': {
      if (!isTable(value)) return MSG.MAP;
      const keys = { ...(field.keys as FieldDef), required: true } as FieldDef;
      const values = { ...(field.values as FieldDef), required: true } as FieldDef;
      for (const [k, v] of tablePairs(value)) {
        const ek = validateField(keys, k);
        if (ek !== null) return ek;
        const ev = validateField(values, v);
        if (ev !== null) return ev;
      }
      break;
    }
    case 'record': {
      if (!isTable(value)) return MSG.RECORD;
      const obj: Record<string, unknown> = Array.isArray(value)
        ? Object.fromEntries(value.map((x, i) => [String(i + 1), x]))
        : (value as Record<string, unknown>);
      const copy = processAutoFields(field, obj);
      const e = validateRecord(field, copy);
      if (e !== null) return e;
      break;
    }
    case 'integer':
      if (!(typeof value === 'number' && Number.isInteger(value))) return MSG.INTEGER;
      break;
    case 'number':
      if (typeof value !== 'number') return MSG.NUMBER;
      break;
    case 'boolean':
      if (typeof value !== 'boolean') return MSG.BOOLEAN;
      break;
    case 'string':
      if (typeof value !== 'string') return MSG.STRING;
      if (field.referenceable === true && isVaultReference(value)) return null;
      break;
    case 'any':
      break;
    case 'foreign':
    case 'function':
    case 'json':
      throw new UnsupportedSchemaError(`harness: schema type '${field.type}' is not emulated`);
    default:
      return `invalid type: ${field.type}`;
  }

  // Strings: empty strings are not accepted by default.
  const effective: FieldDef = field.type === 'string' && field.len_min === undefined ? { ...field, len_min: 1 } : field;
  for (const [name, fn] of VALIDATORS) {
    const arg = effective[name];
    if (arg === undefined) continue;
    const e = fn(value, arg, effective);
    if (e !== null) return err ?? e;
  }
  return null;
}

// ---------------------------------------------------------------------------------------
// Metaschema (Kong refuses to start on violations)

const VALID_TYPES = new Set(['array', 'set', 'string', 'number', 'boolean', 'integer', 'foreign', 'map', 'record', 'function', 'json']);

/** Field attributes Kong's metaschema knows, with a check of their value. */
const ATTRIBUTE_CHECKS: Record<string, (v: unknown) => string | null> = {
  type: () => null,
  required: (v) => (typeof v === 'boolean' ? null : MSG.BOOLEAN),
  reference: (v) => (typeof v === 'string' ? null : MSG.STRING),
  description: (v) =>
    typeof v !== 'string'
      ? MSG.STRING
      : Buffer.byteLength(v) < 10
        ? 'length must be at least 10'
        : Buffer.byteLength(v) > 500
          ? 'length must be at most 500'
          : null,
  examples: (v) => (Array.isArray(v) ? null : MSG.ARRAY),
  auto: (v) => (typeof v === 'boolean' ? null : MSG.BOOLEAN),
  unique: (v) => (typeof v === 'boolean' ? null : MSG.BOOLEAN),
  unique_across_ws: (v) => (typeof v === 'boolean' ? null : MSG.BOOLEAN),
  on_delete: (v) => (['restrict', 'cascade', 'null'].includes(v as string) ? null : 'expected one of: restrict, cascade, null'),
  default: () => null, // checked against the field itself below
  abstract: (v) => (typeof v === 'boolean' ? null : MSG.BOOLEAN),
  generate_admin_api: (v) => (typeof v === 'boolean' ? null : MSG.BOOLEAN),
  immutable: (v) => (typeof v === 'boolean' ? null : MSG.BOOLEAN),
  err: (v) => (typeof v === 'string' ? null : MSG.STRING),
  encrypted: (v) => (typeof v === 'boolean' ? null : MSG.BOOLEAN),
  referenceable: (v) => (typeof v === 'boolean' ? null : MSG.BOOLEAN),
  json_schema: (v) => (isPlainObject(v) ? null : MSG.RECORD),
  transient: (v) => (typeof v === 'boolean' ? null : MSG.BOOLEAN),
  deprecation: (v) => (isPlainObject(v) ? null : MSG.RECORD),
  between: (v) => (Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'number') ? null : 'expected an array of 2 numbers'),
  eq: () => null,
  ne: () => null,
  gt: (v) => (typeof v === 'number' ? null : MSG.NUMBER),
  len_eq: (v) => (Number.isInteger(v) ? null : MSG.INTEGER),
  len_min: (v) => (Number.isInteger(v) ? null : MSG.INTEGER),
  len_max: (v) => (Number.isInteger(v) ? null : MSG.INTEGER),
  match: (v) => (typeof v === 'string' ? null : MSG.STRING),
  not_match: (v) => (typeof v === 'string' ? null : MSG.STRING),
  match_all: (v) => (Array.isArray(v) && v.every((x) => isPlainObject(x) && typeof x.pattern === 'string') ? null : MSG.ARRAY),
  match_none: (v) => (Array.isArray(v) && v.every((x) => isPlainObject(x) && typeof x.pattern === 'string') ? null : MSG.ARRAY),
  match_any: (v) => (isPlainObject(v) && Array.isArray(v.patterns) ? null : MSG.RECORD),
  starts_with: (v) => (typeof v === 'string' ? null : MSG.STRING),
  one_of: (v) => (Array.isArray(v) ? null : MSG.ARRAY),
  not_one_of: (v) => (Array.isArray(v) ? null : MSG.ARRAY),
  contains: () => null,
  is_regex: (v) => (typeof v === 'boolean' ? null : MSG.BOOLEAN),
  timestamp: (v) => (typeof v === 'boolean' ? null : MSG.BOOLEAN),
  uuid: (v) => (typeof v === 'boolean' ? null : MSG.BOOLEAN),
  custom_validator: () => 'expected a function',
  mutually_exclusive_subsets: (v) => (Array.isArray(v) ? null : MSG.ARRAY),
  elements: (v) => (isPlainObject(v) ? null : "'elements' must be a table"),
  keys: (v) => (isPlainObject(v) ? null : "'keys' must be a table"),
  values: (v) => (isPlainObject(v) ? null : "'values' must be a table"),
  fields: (v) => (Array.isArray(v) ? null : MSG.ARRAY),
  entity_checks: (v) => (Array.isArray(v) ? null : MSG.ARRAY),
  shorthand_fields: (v) => (Array.isArray(v) ? null : MSG.ARRAY),
};

const REQUIRED_ATTRIBUTES: Record<string, string[]> = {
  array: ['elements'],
  set: ['elements'],
  map: ['keys', 'values'],
  record: ['fields'],
  json: ['json_schema'],
};

const ATTRIBUTE_TYPES: Record<string, string[]> = {
  between: ['integer', 'number'],
  len_eq: ['array', 'set', 'string', 'map'],
  match: ['string'],
  one_of: ['string', 'number', 'integer'],
  contains: ['array', 'set'],
  is_regex: ['string'],
  timestamp: ['number', 'integer'],
  uuid: ['string'],
  unique: ['string', 'number', 'integer', 'foreign'],
  unique_across_ws: ['string', 'number', 'integer', 'foreign'],
  abstract: ['string', 'number', 'integer', 'record', 'array', 'set', 'map'],
  json_schema: ['json'],
  transient: ['string', 'number', 'integer', 'array', 'set', 'boolean'],
};

function checkFieldDef(name: string, field: unknown, errors: SchemaErrors): void {
  if (!isPlainObject(field)) {
    errors[name] = `'${name}' must be a table`;
    return;
  }
  // The field definition as a record of the metaschema: unknown attributes, attribute types.
  const attrErrors: SchemaErrors = {};
  for (const [attr, v] of Object.entries(field)) {
    const check = ATTRIBUTE_CHECKS[attr];
    if (!check) {
      attrErrors[attr] = MSG.UNKNOWN;
      continue;
    }
    const e = check(v);
    if (e) attrErrors[attr] = e;
  }
  if (field.type === undefined) {
    errors[name] = 'missing type declaration';
    return;
  }
  if (typeof field.type !== 'string' || !VALID_TYPES.has(field.type)) {
    attrErrors.type = `expected one of: ${[...VALID_TYPES].join(', ')}`;
  }
  if (Object.keys(attrErrors).length) {
    errors[name] = attrErrors;
    return;
  }
  const type = field.type as string;
  for (const req of REQUIRED_ATTRIBUTES[type] ?? []) {
    if (field[req] === undefined) errors[name] = `field of type '${type}' must declare '${req}'`;
  }
  for (const attr of Object.keys(field)) {
    const allowed = ATTRIBUTE_TYPES[attr];
    if (allowed && !allowed.includes(type)) errors[name] = `field of type '${type}' cannot have attribute '${attr}'`;
  }
  if (errors[name] !== undefined) return;
  for (const nested of ['elements', 'keys', 'values'] as const) {
    if (field[nested] !== undefined) checkFieldDef(name, field[nested], errors);
  }
  if (errors[name] !== undefined) return;
  if (type === 'record') {
    checkFieldList(field.fields, errors);
    checkEntityChecks(name, field, errors);
  }
  if (field.default !== undefined && field.default !== null) {
    const e = validateField(field as FieldDef, field.default);
    if (e !== null) errors[name] = { default: e };
  }
}

/** A record's entity_checks: known checkers whose field lists name fields of the record. */
function checkEntityChecks(name: string, record: Record<string, unknown>, errors: SchemaErrors): void {
  if (record.entity_checks === undefined) return;
  const names = new Set(fieldEntries(record.fields).map(([k]) => k));
  for (const entry of record.entity_checks as unknown[]) {
    const [, arg] = entityCheckOf(entry);
    const listed = Object.values(arg).flatMap((v) => (Array.isArray(v) ? v : [v]));
    const unknown = listed.find((f) => typeof f !== 'string' || !names.has(f));
    if (unknown !== undefined) errors[name] = { entity_checks: `invalid field name: ${String(unknown)}` };
  }
}

function checkFieldList(list: unknown, errors: SchemaErrors): void {
  if (!Array.isArray(list)) {
    errors.fields = "'fields' must be a table";
    return;
  }
  for (const item of list) {
    if (!isPlainObject(item)) {
      errors.fields = 'each entry in fields must be a sub-table';
      return;
    }
    const keys = Object.keys(item);
    if (keys.length === 0) {
      errors.fields = 'field entry table is empty';
      return;
    }
    if (keys.length !== 1) {
      errors.fields = 'length must be 1';
      return;
    }
    const k = keys[0] as string;
    checkFieldDef(k, item[k], errors);
  }
}

/**
 * Kong's start-up check of a plugin schema (MetaSubSchema). Throws KongMetaSchemaError
 * (Kong would not start) or UnsupportedSchemaError (the harness cannot emulate it).
 */
export function checkPluginSchema(schema: unknown, pluginName = 'plugin'): void {
  const errors: SchemaErrors = {};
  if (!isPlainObject(schema)) throw new KongMetaSchemaError(pluginName, { '@entity': 'expected a table' });
  if (typeof schema.name !== 'string') errors.name = MSG.REQUIRED;
  checkFieldList(schema.fields, errors);
  if (Object.keys(errors).length) throw new KongMetaSchemaError(pluginName, errors);
  const config = configField(schema as unknown as PluginSchemaDump);
  if (!config) throw new KongMetaSchemaError(pluginName, { fields: "plugin schema has no 'config' record" });
  const walk = (f: FieldDef): void => {
    for (const attr of UNSUPPORTED_ATTRIBUTES) {
      if (f[attr] !== undefined) throw new UnsupportedSchemaError(`harness: schema attribute '${attr}' is not emulated`);
    }
    if (['foreign', 'function', 'json'].includes(f.type)) {
      throw new UnsupportedSchemaError(`harness: schema type '${f.type}' is not emulated`);
    }
    for (const nested of ['elements', 'keys', 'values'] as const) if (isPlainObject(f[nested])) walk(f[nested] as FieldDef);
    for (const [, sub] of fieldEntries(f.fields)) walk(sub);
  };
  walk(config);
}

function configField(schema: PluginSchemaDump): FieldDef | undefined {
  for (const [k, f] of fieldEntries(schema.fields)) if (k === 'config') return f;
  return undefined;
}

/** Entity.new_subschema's make_records_required: records are required unless they say not. */
function makeRecordsRequired(field: FieldDef): FieldDef {
  const out: Record<string, unknown> = { ...field };
  if (out.required === undefined) out.required = true;
  if (Array.isArray(field.fields)) {
    out.fields = fieldEntries(field.fields).map(([k, f]) => ({ [k]: f.type === 'record' ? makeRecordsRequired(f) : f }));
  }
  return out as FieldDef;
}

/** The `config` record of a dumped plugin schema, as Kong uses it (records required). */
export function pluginConfigRecord(schema: PluginSchemaDump): FieldDef {
  const config = configField(schema);
  if (!config || config.type !== 'record') throw new UnsupportedSchemaError("plugin schema has no 'config' record");
  return makeRecordsRequired(config);
}

/**
 * What the Admin API stores for a plugin's `config`: defaults filled (absent optional
 * fields become null), validated. Throws KongSchemaError with `fields = {config: {...}}`.
 */
export function processPluginConfig(schema: PluginSchemaDump, input: unknown = {}): Record<string, unknown> {
  const record = pluginConfigRecord(schema);
  if (input === null || input === undefined) input = {};
  if (!isPlainObject(input)) throw new KongSchemaError({ config: MSG.RECORD });
  const filled = processAutoFields(record, input);
  const errors = validateRecord(record, filled);
  if (errors) throw new KongSchemaError({ config: errors });
  return filled;
}

/**
 * Kong at runtime reads plugins with `nulls = false` (row_to_entity after
 * process_auto_fields "select"): every null in the stored config is dropped, recursively,
 * so the plugin server receives unset fields as absent keys, not as JSON null.
 */
export function removeNulls<T>(value: T): T {
  if (Array.isArray(value)) return value.map((x) => removeNulls(x)) as T;
  if (isPlainObject(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== null && v !== undefined) out[k] = removeNulls(v);
    return out as T;
  }
  return value;
}
