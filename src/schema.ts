import { STRATEGY_NAMES, type StrategyName } from './balancer/strategy.js';

/**
 * The plugin's configuration contract, in Kong's schema language. kong-pdk wraps it into
 * `{ name, fields: [{ config: { type: "record", fields: Schema } }] }`; Kong validates it
 * at the Admin API (and in declarative config) and fills defaults before any instance
 * starts. What a schema cannot say is checked in config.ts when an instance starts.
 *
 * Only attributes of Kong's metaschema are used (no `description`: Kong 3.x rejects it).
 */

const SECONDS_PER_YEAR = 31_536_000;

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const Schema = [
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
  // User-Agent regular expressions of clients that reject SameSite=None cookies; they get the cookie without it.
  { cookie_same_site_none_exempt_user_agents: { type: 'array', elements: { type: 'string', len_min: 1 } } },

  // Endpoint source. Static targets: "host:port", optionally followed by "weight=N" and/or "draining".
  { targets: { type: 'array', elements: { type: 'string', len_min: 3 } } },
  // Kubernetes: the Service whose EndpointSlices are watched. Under KIC all three come from the
  // Kong service host <service>.<namespace>.<port>.svc when unset.
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

  // Change on failure: a response with one of these statuses marks its endpoint as failing
  // for failure_timeout seconds; its sessions move. Needs the log phase: start the plugin
  // server on plugins-failover/ instead of plugins/ (README), so users who do not turn it
  // on never pay for a log event per request.
  { change_on_failure: { type: 'boolean', required: true, default: false } },
  { failure_statuses: { type: 'array', required: true, default: [502, 504], elements: { type: 'integer', between: [500, 599] } } },
  { failure_timeout: { type: 'integer', required: true, default: 10, between: [1, 3600] } },

  // Log level of this instance's decision lines (debug); unset: the process level
  // (STICKY_SESSION_LOG_LEVEL, default info). `debug` logs one line per request.
  { log_level: { type: 'string', one_of: [...LOG_LEVELS] } },
] as const;

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
  change_on_failure: boolean;
  failure_statuses: number[];
  failure_timeout: number;
  /** Optional here only so configs written before the field existed still type-check. */
  log_level?: LogLevel | null;
  // Added by Kong.
  service_id?: string | null;
  route_id?: string | null;
  __plugin_id?: string;
  __seq__?: number;
}
