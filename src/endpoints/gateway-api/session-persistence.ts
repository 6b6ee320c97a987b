/**
 * An HTTPRoute rule's `sessionPersistence` (GEP-1619, experimental channel) as a typed policy.
 * Reads every shape: v1.1-v1.5 (sessionName, absoluteTimeout, idleTimeout, type, cookieConfig),
 * v1.6 (the same without idleTimeout) and main since PR #4873/#5046 (cookie {name, path,
 * lifetimeType}, header {name}). Checks what the CRDs' CEL rules check, plus what a cookie or
 * header needs to be written safely. Bad input is data: `{ ok: false, reason }`. Pure: no I/O.
 */
import { parseGatewayDuration } from './duration.js';
import type { HTTPRouteMatchLike, HTTPRouteRuleLike } from './httproute.js';

interface Timeouts {
  /** Whole seconds, rounded up (Max-Age is whole seconds; rounding up never cuts a session short). */
  readonly absoluteTimeoutS?: number;
  /** v1.1-v1.5 only: the session ends after this long without a request. */
  readonly idleTimeoutS?: number;
}

/** Unset `name`: GEP-1619 says a unique name SHOULD be generated; the caller picks it. */
export type SessionPolicy =
  | (Timeouts & { readonly type: 'cookie'; readonly name?: string; readonly lifetime: 'session'; readonly cookiePath?: string })
  | (Omit<Timeouts, 'absoluteTimeoutS'> & {
      readonly type: 'cookie';
      readonly name?: string;
      /** Max-Age / Expires come from the absolute timeout, which is then required. */
      readonly lifetime: 'permanent';
      readonly absoluteTimeoutS: number;
      readonly cookiePath?: string;
    })
  | (Timeouts & { readonly type: 'header'; readonly name?: string });

/** `v1`: Gateway API v1.1-v1.6 field names; `main`: after #4873; `either`: no field tells them apart. */
export type SessionPersistenceShape = 'v1' | 'main' | 'either';

export type SessionPolicyResult =
  | { readonly ok: true; readonly policy: SessionPolicy; readonly shape: SessionPersistenceShape; readonly ignored: readonly string[] }
  | { readonly ok: false; readonly reason: string };

const V1_ONLY = ['sessionName', 'cookieConfig', 'idleTimeout'] as const;
const MAIN_ONLY = ['cookie', 'header'] as const;
const KNOWN = new Set<string>(['absoluteTimeout', 'type', ...V1_ONLY, ...MAIN_ONLY]);
// RFC 7230 token: what a cookie or header name may be (the pattern of main's cookie/header name).
const TOKEN = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/;
// Anything that would end the Path attribute or the header line.
const UNSAFE_PATH = /[;\u0000-\u001f\u007f]/;

type Obj = Record<string, unknown>;

/** The policy a rule asks for; undefined when the rule has no `sessionPersistence`. */
export function ruleSessionPolicy(rule: HTTPRouteRuleLike): SessionPolicyResult | undefined {
  return rule.sessionPersistence === undefined ? undefined : parseSessionPersistence(rule.sessionPersistence);
}

export function parseSessionPersistence(value: unknown): SessionPolicyResult {
  if (!isObj(value)) return fail(`sessionPersistence must be an object, got ${describe(value)}`);
  const v1 = V1_ONLY.filter((k) => value[k] !== undefined);
  const main = MAIN_ONLY.filter((k) => value[k] !== undefined);
  if (v1.length > 0 && main.length > 0) {
    return fail(`sessionPersistence mixes Gateway API v1.x fields (${v1.join(', ')}) with the newer ones (${main.join(', ')}); use one shape`);
  }
  const shape: SessionPersistenceShape = v1.length > 0 ? 'v1' : main.length > 0 ? 'main' : 'either';
  const ignored = Object.keys(value).filter((k) => !KNOWN.has(k) && value[k] !== undefined);

  const type = value.type ?? 'Cookie';
  if (type !== 'Cookie' && type !== 'Header') return fail(`sessionPersistence.type must be Cookie or Header, got ${describe(type)}`);

  const timeouts: { absoluteTimeoutS?: number; idleTimeoutS?: number } = {};
  for (const [field, key] of [['absoluteTimeout', 'absoluteTimeoutS'], ['idleTimeout', 'idleTimeoutS']] as const) {
    if (value[field] === undefined) continue;
    const ms = parseGatewayDuration(value[field]);
    if (ms === undefined) return fail(`sessionPersistence.${field} ${describe(value[field])} is not a Gateway API duration such as 1h30m, 10s or 500ms`);
    if (ms === 0) return fail(`sessionPersistence.${field} is zero: a session that ends as it starts`);
    timeouts[key] = Math.ceil(ms / 1000);
  }

  return shape === 'main' ? fromMain(value, type, timeouts, ignored) : fromV1(value, type, timeouts, shape, ignored);
}

function fromV1(value: Obj, type: 'Cookie' | 'Header', timeouts: Timeouts, shape: SessionPersistenceShape, ignored: string[]): SessionPolicyResult {
  const name = value.sessionName;
  if (name !== undefined) {
    if (typeof name !== 'string' || name.length > 128) return fail(`sessionPersistence.sessionName must be a string of at most 128 characters, got ${describe(name)}`);
    if (!TOKEN.test(name)) return fail(`sessionPersistence.sessionName ${JSON.stringify(name)} cannot be a ${type.toLowerCase()} name (letters, digits and !#$%&'*+-.^_\`|~ only)`);
  }
  const named = name === undefined ? {} : { name };
  if (type === 'Header') {
    // v1.1-v1.4 let cookieConfig sit beside type Header (v1.5 refuses it): it means nothing there.
    return { ok: true, shape, policy: { type: 'header', ...named, ...timeouts }, ignored: value.cookieConfig === undefined ? ignored : [...ignored, 'cookieConfig'] };
  }
  const config = value.cookieConfig;
  if (config !== undefined && !isObj(config)) return fail(`sessionPersistence.cookieConfig must be an object, got ${describe(config)}`);
  return cookiePolicy(config?.lifetimeType, 'cookieConfig', named, undefined, timeouts, shape, ignored);
}

function fromMain(value: Obj, type: 'Cookie' | 'Header', timeouts: Timeouts, ignored: string[]): SessionPolicyResult {
  const { cookie, header } = value;
  if (type === 'Header') {
    if (cookie !== undefined) return fail('sessionPersistence.cookie must be unset when type is Header');
    if (!isObj(header) || header.name === undefined) return fail('sessionPersistence.header.name is required when type is Header');
    const name = checkName(header.name, 'header.name');
    if (typeof name !== 'string') return name;
    return { ok: true, shape: 'main', policy: { type: 'header', name, ...timeouts }, ignored };
  }
  if (header !== undefined) return fail('sessionPersistence.header must be unset when type is Cookie');
  if (!isObj(cookie)) return fail(`sessionPersistence.cookie must be an object, got ${describe(cookie)}`);
  let named = {};
  if (cookie.name !== undefined) {
    const name = checkName(cookie.name, 'cookie.name');
    if (typeof name !== 'string') return name;
    named = { name };
  }
  let path: string | undefined;
  if (cookie.path !== undefined) {
    if (typeof cookie.path !== 'string' || cookie.path.length > 1024) return fail(`sessionPersistence.cookie.path must be a string of at most 1024 characters, got ${describe(cookie.path)}`);
    if (!cookie.path.startsWith('/')) return fail(`sessionPersistence.cookie.path ${JSON.stringify(cookie.path)} must start with / (browsers ignore any other Path)`);
    if (UNSAFE_PATH.test(cookie.path)) return fail(`sessionPersistence.cookie.path ${JSON.stringify(cookie.path)} holds ';' or a control character`);
    path = cookie.path;
  }
  return cookiePolicy(cookie.lifetimeType, 'cookie', named, path, timeouts, 'main', ignored);
}

function cookiePolicy(
  lifetimeType: unknown,
  field: 'cookie' | 'cookieConfig',
  named: { name?: string },
  cookiePath: string | undefined,
  timeouts: Timeouts,
  shape: SessionPersistenceShape,
  ignored: readonly string[],
): SessionPolicyResult {
  const lifetime = lifetimeType ?? 'Session';
  const path = cookiePath === undefined ? {} : { cookiePath };
  if (lifetime === 'Session') return { ok: true, shape, policy: { type: 'cookie', ...named, lifetime: 'session', ...path, ...timeouts }, ignored };
  if (lifetime !== 'Permanent') return fail(`sessionPersistence.${field}.lifetimeType must be Session or Permanent, got ${describe(lifetime)}`);
  const { absoluteTimeoutS, ...rest } = timeouts;
  if (absoluteTimeoutS === undefined) return fail('sessionPersistence.absoluteTimeout is required when the cookie lifetimeType is Permanent (it sets Max-Age)');
  return { ok: true, shape, policy: { type: 'cookie', ...named, lifetime: 'permanent', absoluteTimeoutS, ...path, ...rest }, ignored };
}

function checkName(name: unknown, field: string): string | { ok: false; reason: string } {
  if (typeof name !== 'string' || name.length < 1 || name.length > 256 || !TOKEN.test(name)) {
    return fail(`sessionPersistence.${field} must be 1-256 of letters, digits and !#$%&'*+-.^_\`|~, got ${describe(name)}`);
  }
  return name;
}

// ---------------------------------------------------------------------------------------------
// Cookie Path

/** GEP-1619 on main (#5046): "Implementations MUST default the cookie Path to /". */
export const DEFAULT_COOKIE_PATH = '/';

export function policyCookiePath(policy: SessionPolicy & { type: 'cookie' }): string {
  return policy.cookiePath ?? DEFAULT_COOKIE_PATH;
}

/**
 * The path rule of GEP-1619 up to v1.6.1, dropped on main (#4713): the cookie Path follows the
 * route match that was taken: all paths -> `/`; a prefix or exact path -> that path; a regex ->
 * its longest literal prefix up to a `/` (`/p1/p2/.*\/p3` -> `/p1/p2`). Kept for anyone who wants
 * per-match cookies; the default stays `/`.
 */
export function legacyMatchCookiePath(match: HTTPRouteMatchLike | undefined): string {
  const path = match?.path;
  const value = path?.value ?? '/';
  if (!value.startsWith('/') || UNSAFE_PATH.test(value)) return DEFAULT_COOKIE_PATH;
  const type = path?.type ?? 'PathPrefix';
  if (type === 'RegularExpression') {
    const literal = value.slice(0, firstRegexSpecial(value));
    return trimSlash(literal.slice(0, literal.lastIndexOf('/') + 1));
  }
  return trimSlash(value);
}

function firstRegexSpecial(s: string): number {
  const i = s.search(/[\\^$.|?*+()[\]{}]/);
  return i < 0 ? s.length : i;
}

function trimSlash(p: string): string {
  const t = p.replace(/\/+$/, '');
  return t === '' ? '/' : t;
}

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  return v === undefined ? 'nothing' : JSON.stringify(v);
}

function fail(reason: string): { ok: false; reason: string } {
  return { ok: false, reason };
}
