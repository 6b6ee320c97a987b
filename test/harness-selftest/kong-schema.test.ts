import { describe, expect, it } from 'vitest';
import {
  checkPluginSchema,
  KongMetaSchemaError,
  KongSchemaError,
  processPluginConfig,
  removeNulls,
  UnsupportedSchemaError,
  type FieldList,
  type PluginSchemaDump,
} from '../harness/kong-schema.js';

// The fixture is plain JS (no .d.ts may sit in a plugins directory: the server would load it).
const fixtureUrl = new URL('../fixtures/misbehaving/misbehaving.js', import.meta.url).href;
const { Schema: misbehavingSchema } = (await import(fixtureUrl)) as { Schema: FieldList };

/** What kong-pdk's GetPluginInfo wraps a plugin's Schema into. */
function wrap(fields: FieldList, name = 'p'): PluginSchemaDump {
  return { name, fields: [{ config: { type: 'record', fields } }] };
}

const schema = wrap(misbehavingSchema, 'misbehaving');

function errorsOf(config: Record<string, unknown>): unknown {
  try {
    processPluginConfig(schema, config);
  } catch (err) {
    expect(err).toBeInstanceOf(KongSchemaError);
    return (err as KongSchemaError).fields;
  }
  throw new Error('config was accepted');
}

describe('Admin API config processing', () => {
  it('fills defaults, sets unset optional fields to null and expands nested records', () => {
    expect(processPluginConfig(schema, {})).toEqual({
      mode: 'ok',
      target_host: '10.0.0.7',
      target_port: 8080,
      delay_ms: 0,
      probe: null,
      label: null,
      tags: null,
      weights: null,
      limits: { max: 1.5, unit: 's', note: null },
      secret: null,
      owner_id: null,
      path_prefix: null,
    });
    expect(processPluginConfig(schema, { limits: { unit: 'ms' }, tags: ['a', 'b', 'a'] })).toMatchObject({
      limits: { max: 1.5, unit: 'ms', note: null },
      tags: ['a', 'b'],
    });
  });

  it('reports violations per field, like the Admin API 400', () => {
    expect(errorsOf({ mode: 'nope' })).toEqual({ config: { mode: expect.stringMatching(/^expected one of: ok, throw, /) } });
    expect(errorsOf({ target_port: 0 })).toEqual({ config: { target_port: 'value should be between 1 and 65535' } });
    expect(errorsOf({ target_port: 80.5 })).toEqual({ config: { target_port: 'expected an integer' } });
    expect(errorsOf({ target_port: '80' })).toEqual({ config: { target_port: 'expected an integer' } });
    expect(errorsOf({ target_host: null })).toEqual({ config: { target_host: 'required field missing' } });
    expect(errorsOf({ bogus: 1 })).toEqual({ config: { bogus: 'unknown field' } });
    expect(errorsOf({ label: 'bad label!' })).toEqual({ config: { label: 'invalid value: bad label!' } });
    expect(errorsOf({ label: '' })).toEqual({ config: { label: 'length must be at least 1' } });
    expect(errorsOf({ label: 'x'.repeat(17) })).toEqual({ config: { label: 'length must be at most 16' } });
    expect(errorsOf({ tags: ['a', 'z'] })).toEqual({ config: { tags: [null, 'expected one of: a, b, c'] } });
    expect(errorsOf({ tags: 'a' })).toEqual({ config: { tags: 'expected a set' } });
    expect(errorsOf({ weights: { x: 0 } })).toEqual({ config: { weights: 'value must be greater than 0' } });
    expect(errorsOf({ limits: { unit: 'h' } })).toEqual({ config: { limits: { unit: 'expected one of: s, ms' } } });
    expect(errorsOf({ limits: null })).toEqual({ config: { limits: 'required field missing' } });
    expect(errorsOf({ secret: 'short' })).toEqual({ config: { secret: 'length must be at least 8' } });
    expect(errorsOf({ owner_id: 'nope' })).toEqual({ config: { owner_id: 'expected a valid UUID' } });
    expect(errorsOf({ path_prefix: 'x' })).toEqual({ config: { path_prefix: 'should start with: /' } });
    expect(errorsOf({ probe: [1] })).toEqual({ config: { probe: ['expected a string'] } });
    expect(errorsOf({ mode: 'nope', target_port: 0 })).toEqual({
      config: { mode: expect.any(String), target_port: 'value should be between 1 and 65535' },
    });
  });

  it('builds Kong\'s message', () => {
    try {
      processPluginConfig(schema, { target_port: 0 });
      throw new Error('accepted');
    } catch (err) {
      expect((err as Error).message).toBe('schema violation (config.target_port: value should be between 1 and 65535)');
      expect((err as KongSchemaError).toJSON()).toMatchObject({ code: 2, name: 'schema violation' });
    }
  });

  it('accepts vault references in referenceable fields without resolving them', () => {
    expect(processPluginConfig(schema, { secret: '{vault://env/my-secret}' }).secret).toBe('{vault://env/my-secret}');
    expect(errorsOf({ owner_id: '{vault://env/x}' })).toEqual({ config: { owner_id: 'expected a valid UUID' } });
  });

  it('accepts valid values of every kind', () => {
    const c = processPluginConfig(schema, {
      mode: 'probe',
      label: 'a-b_c',
      tags: ['c'],
      weights: { x: 2 },
      secret: 'long-enough',
      owner_id: '123e4567-e89b-12d3-a456-426614174000',
      path_prefix: '/api',
      probe: ['request.getHeader cookie'],
    });
    expect(c.mode).toBe('probe');
  });

  it('drops nulls recursively the way Kong reads plugins at runtime', () => {
    expect(removeNulls({ a: null, b: { c: null, d: 1 }, e: [1, 2] })).toEqual({ b: { d: 1 }, e: [1, 2] });
  });
});

describe('metaschema (Kong refuses to start)', () => {
  it('accepts the fixtures\' schemas', () => {
    expect(() => checkPluginSchema(schema, 'misbehaving')).not.toThrow();
  });

  it.each([
    [[{ x: { type: 'strin' } }], /x/],
    [[{ x: { type: 'string', min: 1 } }], /unknown field/],
    [[{ x: { type: 'array' } }], /must declare 'elements'/],
    [[{ x: { type: 'string', between: [1, 2] } }], /cannot have attribute 'between'/],
    [[{ x: { type: 'integer', default: 'a' } }], /expected an integer/],
    [[{ x: { type: 'string', one_of: ['a'], default: 'b' } }], /expected one of: a/],
    [[{ x: { type: 'string', description: 'short' } }], /at least 10/],
    [[{ x: { type: 'record', fields: [{ y: { type: 'nope' } }] } }], /y/],
    [[{ x: { required: true } }], /missing type declaration/],
  ])('refuses %j', (fields, message) => {
    expect(() => checkPluginSchema(wrap(fields as unknown as FieldList), 'p')).toThrow(KongMetaSchemaError);
    expect(() => checkPluginSchema(wrap(fields as unknown as FieldList), 'p')).toThrow(message);
  });

  it('refuses what the harness cannot emulate instead of guessing', () => {
    expect(() => checkPluginSchema(wrap([{ x: { type: 'json', json_schema: { inline: {} } } }] as unknown as FieldList))).toThrow(
      UnsupportedSchemaError,
    );
  });
});

describe('entity checks of a record (Kong runs them when it validates the record)', () => {
  const sets: PluginSchemaDump = {
    name: 'p',
    fields: [
      {
        config: {
          type: 'record',
          fields: [{ a: { type: 'array', elements: { type: 'string' } } }, { b: { type: 'string' } }, { c: { type: 'integer', between: [1, 2] } }],
          entity_checks: [{ mutually_exclusive_sets: { set1: ['a'], set2: ['b', 'c'] } }],
        },
      },
    ],
  };

  function check(config: Record<string, unknown>): unknown {
    try {
      processPluginConfig(sets, config);
      return 'accepted';
    } catch (err) {
      return (err as KongSchemaError).fields;
    }
  }

  it('mutually_exclusive_sets: one set or the other, and empty values count as unset (is_nonempty)', () => {
    expect(check({ a: ['x'], b: 'y', c: 1 })).toEqual({ config: { '@entity': ["these sets are mutually exclusive: ('a'), ('b', 'c')"] } });
    expect(check({ a: ['x'] })).toBe('accepted');
    expect(check({ b: 'y', c: 2 })).toBe('accepted');
    expect(check({ a: [], b: 'y' })).toBe('accepted');
  });

  it('mutually_exclusive_sets is not run when one of its fields is invalid', () => {
    expect(check({ a: ['x'], c: 3 })).toEqual({ config: { c: 'value should be between 1 and 2' } });
  });

  it('the metaschema refuses checks that name no field of the record, and checks it does not emulate', () => {
    const named = (entity_checks: unknown): PluginSchemaDump => ({
      name: 'p',
      fields: [{ config: { type: 'record', fields: [{ a: { type: 'string' } }], entity_checks } }],
    });
    expect(() => checkPluginSchema(named([{ mutually_exclusive_sets: { set1: ['a'], set2: ['z'] } }]))).toThrow(/invalid field name: z/);
    expect(() => checkPluginSchema(named([{ at_least_one_of: ['a'] }]))).toThrow(UnsupportedSchemaError);
  });
});

describe('is_regex: compiled by PCRE2, as Kong does', () => {
  const re = wrap([{ r: { type: 'string', is_regex: true } }]);
  it.each([
    ['Chrome/5[1-9]', true],
    ['(?i)chrome', true], // PCRE inline flags (JavaScript refuses them)
    ['Safari++', true], // possessive quantifier (JavaScript refuses it)
    ['Chrome/5[1-9', false],
    ['(?<=a+)b', false], // variable-length lookbehind (JavaScript accepts it)
  ])('%s: %s', (pattern, valid) => {
    if (valid) expect(processPluginConfig(re, { r: pattern })).toEqual({ r: pattern });
    else expect(() => processPluginConfig(re, { r: pattern })).toThrow(/not a valid regex/);
  });
});
