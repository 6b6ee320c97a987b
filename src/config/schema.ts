import { LOG_LEVELS, type LogLevel } from '../log.js';
import { STRATEGY_NAMES, type StrategyName } from '../balancer/strategy.js';
import { LEGACY_FORMATS, LEGACY_MODES, type LegacyFormat, type LegacyMode } from '../legacy/index.js';

/**
 * The plugin's configuration contract, in Kong's schema language. kong-pdk wraps it into
 * `{ name, fields: [{ config: { type: "record", fields: Schema } }] }`; Kong validates it
 * at the Admin API (and in declarative config) and fills defaults before any instance
 * starts. What a schema cannot say is checked in resolve.ts when an instance starts.
 *
 * Only attributes of Kong's metaschema are used (no `description`: Kong 3.x rejects it).
 */

const SECONDS_PER_YEAR = 31_536_000;


/**
 * A static target: "host:port" or "[ipv6]:port", then optionally "weight=N" and/or
 * "draining". Lua patterns have no alternation, so the accepted forms are listed; the ranges
 * are refused by patterns of their own, each with its message. What patterns cannot say
 * (IPv4 octets, IPv6 syntax, duplicates) is checked when the instance starts (config/resolve.ts).
 */
const TARGET_FORMS = ((): string[] => {
  const hosts = ['[%w][%w%.%-]*', '%[[%x:%.]+%]'];
  const options = ['', '%s+weight=%d%d?%d?%d?', '%s+draining', '%s+weight=%d%d?%d?%d?%s+draining', '%s+draining%s+weight=%d%d?%d?%d?'];
  return hosts.flatMap((host) => options.map((opt) => `^%s*${host}:%d%d?%d?%d?%d?${opt}%s*$`));
})();

/**
 * A number as the last thing of a target or followed by a space: a port (never followed by
 * "]", which ends an IPv6 address) or a weight.
 */
const numberIs = (prefix: string, digits: readonly string[], err: string): Array<{ pattern: string; err: string }> =>
  digits.flatMap((d) => ['$', '%s'].map((end) => ({ pattern: `${prefix}${d}${end}`, err })));

const TARGET = {
  type: 'string',
  len_min: 3,
  match_none: [
    ...numberIs(':', ['0+', '[7-9]%d%d%d%d', '6[6-9]%d%d%d', '65[6-9]%d%d', '655[4-9]%d', '6553[6-9]'], 'port must be 1-65535'),
    ...numberIs('weight=', ['0+', '1%d%d[1-9]', '1%d[1-9]%d', '1[1-9]%d%d', '[2-9]%d%d%d'], 'weight must be 1-1000'),
  ],
  match_any: { patterns: TARGET_FORMS, err: 'expected "host:port" or "[ipv6]:port", optionally followed by "weight=N" and/or "draining"' },
} as const;

/** Fields of both plugin variants. */
const COMMON_FIELDS = [
  // The first secret signs, all of them verify: rotate by prepending a new one.
  { secrets: { type: 'array', required: true, len_min: 1, elements: { type: 'string', len_min: 32, referenceable: true } } },

  // Where the token travels: a cookie (browsers), a header (API, mobile and LLM clients), or both.
  { transport: { type: 'string', required: true, default: 'cookie', one_of: ['cookie', 'header', 'cookie-and-header'] } },
  { header_name: { type: 'string', required: true, default: 'X-Sticky-Session', match: '^[%w%-_]+$' } },

  { cookie_name: { type: 'string', required: true, default: 'sticky_session', match: '^[%w%-_%.]+$' } },
  { cookie_path: { type: 'string', required: true, default: '/', starts_with: '/' } },
  { cookie_domain: { type: 'string', match: '^%.?[%w%-%.]+$' } },
  // 0: a browser-session cookie (no Max-Age).
  { cookie_max_age: { type: 'integer', required: true, default: 0, between: [0, SECONDS_PER_YEAR] } },
  { cookie_http_only: { type: 'boolean', required: true, default: true } },
  // Unset: Secure when the client came over HTTPS. SameSite=None always adds Secure.
  { cookie_secure: { type: 'boolean' } },
  { cookie_same_site: { type: 'string', required: true, default: 'Lax', one_of: ['Strict', 'Lax', 'None'] } },
  // User-Agent regular expressions of clients that reject SameSite=None cookies; they get the
  // cookie without it. Kong checks them as PCRE, the plugin compiles them as JavaScript.
  { cookie_same_site_none_exempt_user_agents: { type: 'array', elements: { type: 'string', len_min: 1, is_regex: true } } },

  // Endpoint source: static targets (TARGET above), or the EndpointSlices of a Kubernetes
  // Service. Under KIC the three kubernetes_* come from the Kong service host
  // <service>.<namespace>.<port>.svc when unset.
  { targets: { type: 'array', elements: TARGET } },
  { kubernetes_namespace: { type: 'string', match: '^[a-z0-9][a-z0-9%-]*$' } },
  { kubernetes_service: { type: 'string', match: '^[a-z0-9][a-z0-9%-]*$' } },
  { kubernetes_port: { type: 'string', match: '^[%w%-]+$' } },

  { balancer: { type: 'string', required: true, default: 'least-sessions', one_of: [...STRATEGY_NAMES] } },
  // With no ready endpoint left: new sessions go to a serving, terminating endpoint, or get 503.
  { no_ready_endpoint: { type: 'string', required: true, default: 'draining', one_of: ['draining', 'reject'] } },
  // A pinned session whose endpoint is gone gets 503 instead of a new endpoint.
  { strict: { type: 'boolean', required: true, default: false } },

  // Seconds; 0 = no limit. Sessions past either limit start over on a new endpoint.
  { absolute_timeout: { type: 'integer', required: true, default: 0, between: [0, SECONDS_PER_YEAR] } },
  { idle_timeout: { type: 'integer', required: true, default: 0, between: [0, SECONDS_PER_YEAR] } },
  // With idle_timeout: re-issue the token once this share of the idle window has passed.
  { idle_refresh_percent: { type: 'integer', required: true, default: 50, between: [1, 100] } },

  // Log level of this instance's decision lines (debug); unset: the process level
  // (STICKY_SESSION_LOG_LEVEL, default info). `debug` logs one line per request.
  { log_level: { type: 'string', one_of: [...LOG_LEVELS] } },

  // Migration window: also honour the affinity cookie of the system this plugin replaces,
  // for clients without a valid token of ours (they then get one). Unset: off.
  // backend: the ingress-nginx backend name (persistent mode's salt); unset: derived from the
  // Service as <namespace>-<service>-<port>. Static targets in persistent mode need it.
  {
    accept_legacy_cookies: {
      type: 'array',
      elements: {
        type: 'record',
        fields: [
          { format: { type: 'string', required: true, one_of: [...LEGACY_FORMATS] } },
          { mode: { type: 'string', required: true, default: 'balanced', one_of: [...LEGACY_MODES] } },
          { name: { type: 'string', required: true, default: 'INGRESSCOOKIE', match: '^[%w%-_%.]+$' } },
          { backend: { type: 'string', len_min: 1 } },
        ],
      },
    },
  },
] as const;

/**
 * Change on failure: a response with one of these statuses marks its endpoint as failing for
 * failure_timeout seconds; its sessions move. Only in the schema of the plugin server started
 * on plugins-failover/, whose log phase reads the status: on the default one Kong refuses
 * these fields up front, and users who do not turn it on never pay for a log event per request.
 */
const FAILOVER_FIELDS = [
  { change_on_failure: { type: 'boolean', required: true, default: false } },
  { failure_statuses: { type: 'array', required: true, default: [502, 504], elements: { type: 'integer', between: [500, 599] } } },
  { failure_timeout: { type: 'integer', required: true, default: 10, between: [1, 3600] } },
] as const;

/** The plugin's schema as plugins/ dumps it (access phase only). */
export const Schema = COMMON_FIELDS;

/** The schema of plugins-failover/: the same plugin with the change-on-failure fields. */
export const FailoverSchema = [...COMMON_FIELDS, ...FAILOVER_FIELDS] as const;

/**
 * Checks across fields, for the config record (Kong runs a record's entity_checks when it
 * validates it). kong-pdk builds that record itself, so src/kong/schema-dump.ts adds them to
 * the dumped schema.
 */
export const ConfigEntityChecks = [
  { mutually_exclusive_sets: { set1: ['targets'], set2: ['kubernetes_namespace', 'kubernetes_service', 'kubernetes_port'] } },
] as const;

/** One accept_legacy_cookies entry as Kong sends it. */
export interface LegacyCookieEntry {
  format: LegacyFormat;
  mode: LegacyMode;
  name: string;
  backend: string | null;
}

/** The configuration as Kong sends it: every field present, unset ones as null. */
export interface PluginConfig {
  secrets: string[];
  transport: 'cookie' | 'header' | 'cookie-and-header';
  header_name: string;
  cookie_name: string;
  cookie_path: string;
  cookie_domain: string | null;
  cookie_max_age: number;
  cookie_http_only: boolean;
  cookie_secure: boolean | null;
  cookie_same_site: 'Strict' | 'Lax' | 'None';
  cookie_same_site_none_exempt_user_agents: string[] | null;
  targets: string[] | null;
  kubernetes_namespace: string | null;
  kubernetes_service: string | null;
  kubernetes_port: string | null;
  balancer: StrategyName;
  no_ready_endpoint: 'draining' | 'reject';
  strict: boolean;
  absolute_timeout: number;
  idle_timeout: number;
  idle_refresh_percent: number;
  /** Present only on the plugins-failover/ variant. */
  change_on_failure?: boolean;
  failure_statuses?: number[];
  failure_timeout?: number;
  /** Optional here only so configs written before the field existed still type-check. */
  log_level?: LogLevel | null;
  /** Optional here only so configs written before the field existed still type-check. */
  accept_legacy_cookies?: LegacyCookieEntry[] | null;
  // Added by Kong.
  service_id?: string | null;
  route_id?: string | null;
  __plugin_id?: string;
  __seq__?: number;
}
