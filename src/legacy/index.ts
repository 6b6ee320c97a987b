/**
 * Legacy cookies: during a migration window, the affinity cookie another system issued
 * (`accept_legacy_cookies`) pins a client that has no valid token of ours to the endpoint
 * that system would have chosen, if it still serves; the client then gets our token.
 *
 * The core only sees the endpoint a legacy cookie selects (decide()'s `legacy` argument).
 * This module turns a cookie value into that endpoint: always one of the current view's
 * serving endpoints, or nothing (the cookie then counts as no cookie). One implementation
 * per format and mode, each caching what it builds per endpoint view.
 */
import type { Endpoint, EndpointSnapshot } from '../endpoints/types.js';
import type { ServiceRef } from '../endpoints/kubernetes/service-ref.js';
import { log } from '../log.js';
import { BalancedRing } from './ingress-nginx-balanced.js';
import { PersistentMap } from './ingress-nginx-persistent.js';
import { backendName, upstreamKey } from './ingress-nginx.js';

export const LEGACY_FORMATS = ['ingress-nginx'] as const;
export type LegacyFormat = (typeof LEGACY_FORMATS)[number];
export const LEGACY_MODES = ['balanced', 'persistent'] as const;
export type LegacyMode = (typeof LEGACY_MODES)[number];

/** One `accept_legacy_cookies` entry, checked (config/resolve.ts). */
export interface LegacyCookieConfig {
  readonly format: LegacyFormat;
  readonly mode: LegacyMode;
  /** Cookie name. */
  readonly name: string;
  /** nginx variable holding that cookie. */
  readonly cookieVar: string;
  /** ingress-nginx backend name (persistent mode's salt); null: derived from the Service. */
  readonly backend: string | null;
}

export interface LegacyCookie {
  readonly config: LegacyCookieConfig;
  /**
   * The serving endpoint of `snapshot` that this cookie value selects; undefined when it
   * selects none. `service` is the watched Kubernetes Service, if any.
   */
  resolve(value: string, snapshot: EndpointSnapshot, service: ServiceRef | undefined): Endpoint | undefined;
}

/** What an instance's legacy cookies say for one request. */
export interface LegacyMatch {
  readonly cookie: LegacyCookieConfig;
  readonly endpoint: Endpoint;
}

export function createLegacyCookie(config: LegacyCookieConfig, binding: string): LegacyCookie {
  return config.mode === 'balanced' ? new IngressNginxBalanced(config) : new IngressNginxPersistent(config, binding);
}

class IngressNginxBalanced implements LegacyCookie {
  private readonly ring = new BalancedRing();
  constructor(readonly config: LegacyCookieConfig) {}

  resolve(value: string, snapshot: EndpointSnapshot): Endpoint | undefined {
    const key = upstreamKey(value);
    return key === undefined ? undefined : this.ring.find(snapshot, key);
  }
}

/** Persistent-mode entries whose salt could not be known, already logged (once per process). */
const saltless = new Set<string>();

class IngressNginxPersistent implements LegacyCookie {
  private map: { readonly salt: string; readonly map: PersistentMap } | undefined;

  constructor(
    readonly config: LegacyCookieConfig,
    private readonly binding: string,
  ) {}

  resolve(value: string, snapshot: EndpointSnapshot, service: ServiceRef | undefined): Endpoint | undefined {
    const salt = this.config.backend ?? (service && backendName(service));
    if (salt === undefined) {
      this.saltUnknown();
      return undefined;
    }
    const key = upstreamKey(value);
    if (key === undefined) return undefined;
    if (this.map?.salt !== salt) this.map = { salt, map: new PersistentMap(salt) };
    return this.map.map.find(snapshot, key);
  }

  /** Static targets without `backend` are refused in config/resolve.ts; this is a Service's port. */
  private saltUnknown(): void {
    const id = `${this.binding}|${this.config.name}`;
    if (saltless.has(id)) return;
    saltless.add(id);
    log.error(
      { service: this.binding, cookie: this.config.name },
      'accept_legacy_cookies: persistent mode needs the ingress-nginx backend name, and the Service port is not named: set backend; these legacy cookies never match meanwhile',
    );
  }
}
