import type { AffinityPolicy } from '../affinity/decide.js';
import type { StrategyName } from '../balancer/strategy.js';
import type { CookieAttributes } from '../cookie.js';
import { parseTarget } from '../endpoints/static.js';
import type { Endpoint } from '../endpoints/types.js';
import { LEGACY_FORMATS, LEGACY_MODES, type LegacyCookieConfig } from '../legacy/index.js';
import { LOG_LEVELS, type LogLevel } from '../log.js';
import type { PluginConfig } from './schema.js';

/**
 * What an instance needs, checked and precomputed once at instance start so the request
 * path does no parsing. Kong's schema has already applied types and defaults; this adds
 * the checks a schema cannot express. A bad value throws a ConfigError naming the field:
 * nothing half-applies, and the instance stands aside (config/refusal.ts) rather than fail.
 */
export interface ResolvedConfig extends SessionSettings {
  readonly secrets: readonly string[];
  /** What tokens are bound to: the Kong service (or route) the plugin runs for. */
  readonly binding: string;
  readonly sameSiteNoneExempt: readonly RegExp[];
  readonly source: SourceConfig;
  readonly strategy: StrategyName;
  /** idle_refresh_percent: how far into the idle timeout a pinned token is re-issued. */
  readonly idleRefreshPercent: number;
  /** Change on failure, when on: statuses that mark an endpoint, and for how long. */
  readonly failover: { readonly statuses: ReadonlySet<number>; readonly holdMs: number } | null;
  /** Level of this instance's decision log lines; null: the process's level. */
  readonly logLevel: LogLevel | null;
  /** Legacy cookies honoured for clients without a valid token, in order; empty: off. */
  readonly legacyCookies: readonly LegacyCookieConfig[];
}

/**
 * How a session's token travels and lives. From the KongPlugin's config, or from an HTTPRoute
 * rule's sessionPersistence over it (config/session-persistence.ts).
 */
export interface SessionSettings {
  readonly readCookie: boolean;
  readonly readHeader: boolean;
  /** Header that carries the token (request lookups ignore case, as Kong's do). */
  readonly headerName: string;
  readonly cookie: CookieAttributes;
  /** nginx variable that holds the affinity cookie. */
  readonly cookieVar: string;
  readonly policy: AffinityPolicy;
}

export type SourceConfig =
  | { readonly kind: 'static'; readonly endpoints: readonly Endpoint[] }
  | {
      readonly kind: 'kubernetes';
      /** Explicit coordinates; any missing part comes from the Kong service host (KIC). */
      readonly namespace: string | null;
      readonly service: string | null;
      readonly port: string | null;
    };

export class ConfigError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(field ? `sticky-session: invalid config.${field}: ${message}` : `sticky-session: invalid config: ${message}`);
    this.name = 'ConfigError';
  }
}

/** What tokens are bound to, read from the fields Kong adds; also for a config that is refused. */
export function bindingOf(raw: unknown): string {
  const c = (typeof raw === 'object' && raw !== null ? raw : {}) as Partial<PluginConfig>;
  return c.service_id ? `service:${c.service_id}` : c.route_id ? `route:${c.route_id}` : 'global';
}

export interface ResolveOptions {
  /** The plugin server runs the log phase (plugins-failover/), so change on failure can work. */
  readonly logPhase: boolean;
}

export function resolveConfig(raw: unknown, opts: ResolveOptions = { logPhase: true }): ResolvedConfig {
  if (typeof raw !== 'object' || raw === null) throw new ConfigError('', 'expected an object');
  const c = raw as PluginConfig;
  // The access-only schema has no such field, so Kong refuses it; this is for a config that
  // reached the plugin some other way.
  if (c.change_on_failure && !opts.logPhase) {
    throw new ConfigError('change_on_failure', 'needs the log phase: start the plugin server with --plugins-directory <install>/plugins-failover');
  }

  const secrets = c.secrets;
  if (!Array.isArray(secrets) || secrets.length === 0) throw new ConfigError('secrets', 'at least one secret is required');
  secrets.forEach((s, i) => {
    // An unresolved vault reference would silently become the key.
    if (typeof s === 'string' && s.startsWith('{vault://')) throw new ConfigError(`secrets[${i + 1}]`, 'vault reference was not resolved by Kong');
    if (typeof s !== 'string' || s.length < 32) throw new ConfigError(`secrets[${i + 1}]`, 'must be a string of at least 32 characters');
  });

  const transport = c.transport ?? 'cookie';
  const idleTimeout = c.idle_timeout ?? 0;
  const refreshPercent = c.idle_refresh_percent ?? 50;

  const exempt = (c.cookie_same_site_none_exempt_user_agents ?? []).map((p, i) => {
    try {
      return compileUserAgentPattern(p);
    } catch (e) {
      throw new ConfigError(
        `cookie_same_site_none_exempt_user_agents[${i + 1}]`,
        `Kong checked it as PCRE, but it is not a JavaScript regular expression: ${(e as Error).message}`,
      );
    }
  });

  return {
    secrets: [...secrets],
    binding: bindingOf(c),
    readCookie: transport !== 'header',
    readHeader: transport !== 'cookie',
    headerName: c.header_name ?? 'X-Sticky-Session',
    cookie: {
      name: c.cookie_name ?? 'sticky_session',
      path: c.cookie_path ?? '/',
      domain: c.cookie_domain ?? null,
      maxAge: c.cookie_max_age ?? 0,
      httpOnly: c.cookie_http_only ?? true,
      secure: c.cookie_secure ?? null,
      sameSite: c.cookie_same_site ?? 'Lax',
    },
    cookieVar: `cookie_${c.cookie_name ?? 'sticky_session'}`,
    sameSiteNoneExempt: exempt,
    source: resolveSource(c),
    strategy: c.balancer ?? 'least-sessions',
    idleRefreshPercent: refreshPercent,
    policy: {
      strict: c.strict ?? false,
      noReadyEndpoint: c.no_ready_endpoint ?? 'draining',
      absoluteTimeout: c.absolute_timeout ?? 0,
      idleTimeout,
      refreshAfter: refreshAfter(idleTimeout, refreshPercent),
    },
    failover: c.change_on_failure
      ? { statuses: new Set(c.failure_statuses ?? [502, 504]), holdMs: (c.failure_timeout ?? 10) * 1000 }
      : null,
    logLevel: resolveLogLevel(c.log_level),
    legacyCookies: resolveLegacyCookies(c),
  };
}

/** When a pinned token is re-issued: at least a second in (a 0 would re-issue it on every request). */
export function refreshAfter(idleTimeout: number, refreshPercent: number): number {
  return idleTimeout > 0 ? Math.max(1, Math.floor((idleTimeout * refreshPercent) / 100)) : 0;
}

/**
 * Kong validates these patterns as PCRE; the plugin runs them as JavaScript RegExp. PCRE's
 * leading inline flags, common in user-agent lists, become RegExp flags; what else only
 * PCRE knows (possessive quantifiers, atomic groups...) throws.
 */
function compileUserAgentPattern(pattern: string): RegExp {
  const flags = /^\(\?([ims]+)\)/.exec(pattern);
  return flags ? new RegExp(pattern.slice(flags[0].length), [...new Set(flags[1])].join('')) : new RegExp(pattern);
}

/**
 * accept_legacy_cookies, checked. Persistent mode salts with the ingress-nginx backend name:
 * with static targets there is no Service to derive it from, so `backend` must be given.
 */
function resolveLegacyCookies(c: PluginConfig): LegacyCookieConfig[] {
  const staticTargets = (c.targets?.length ?? 0) > 0;
  return (c.accept_legacy_cookies ?? []).map((e, i) => {
    const field = `accept_legacy_cookies[${i + 1}]`;
    if (!(LEGACY_FORMATS as readonly unknown[]).includes(e.format)) throw new ConfigError(`${field}.format`, `expected one of ${LEGACY_FORMATS.join(', ')}`);
    const mode = e.mode ?? 'balanced';
    if (!(LEGACY_MODES as readonly unknown[]).includes(mode)) throw new ConfigError(`${field}.mode`, `expected one of ${LEGACY_MODES.join(', ')}`);
    const name = e.name ?? 'INGRESSCOOKIE';
    if (mode === 'persistent' && !e.backend && staticTargets) {
      throw new ConfigError(`${field}.backend`, 'persistent mode with static targets needs the ingress-nginx backend name (<namespace>-<service>-<port>)');
    }
    return { format: e.format, mode, name, cookieVar: `cookie_${name}`, backend: e.backend || null };
  });
}

function resolveLogLevel(level: unknown): LogLevel | null {
  if (level == null) return null;
  if (!(LOG_LEVELS as readonly unknown[]).includes(level)) throw new ConfigError('log_level', `expected one of ${LOG_LEVELS.join(', ')}`);
  return level as LogLevel;
}

function resolveSource(c: PluginConfig): SourceConfig {
  const k8s = c.kubernetes_namespace ?? c.kubernetes_service ?? c.kubernetes_port;
  if (c.targets && c.targets.length > 0) {
    if (k8s != null) throw new ConfigError('targets', 'give either targets or kubernetes_*, not both');
    const endpoints = c.targets.map((t, i) => {
      try {
        return parseTarget(t);
      } catch (e) {
        throw new ConfigError(`targets[${i + 1}]`, (e as Error).message);
      }
    });
    const seen = new Set<string>();
    endpoints.forEach((e, i) => {
      if (seen.has(e.id)) throw new ConfigError(`targets[${i + 1}]`, `"${e.id}" is listed twice`);
      seen.add(e.id);
    });
    return { kind: 'static', endpoints };
  }
  return {
    kind: 'kubernetes',
    namespace: c.kubernetes_namespace ?? null,
    service: c.kubernetes_service ?? null,
    port: c.kubernetes_port ?? null,
  };
}
