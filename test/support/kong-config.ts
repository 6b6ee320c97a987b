import type { PluginConfig } from '../../src/config/schema.js';

/**
 * A plugin config as Kong's Admin API stores it: every schema default filled in, unset
 * optional fields null. Tests override what they are about.
 */
export function kongConfig(over: Partial<PluginConfig> = {}): PluginConfig {
  return {
    secrets: ['test-secret-0123456789abcdef0123456789'],
    transport: 'cookie',
    header_name: 'X-Sticky-Session',
    cookie_name: 'sticky_session',
    cookie_path: '/',
    cookie_domain: null,
    cookie_max_age: 0,
    cookie_http_only: true,
    cookie_secure: null,
    cookie_same_site: 'Lax',
    cookie_same_site_none_exempt_user_agents: null,
    targets: null,
    kubernetes_namespace: null,
    kubernetes_service: null,
    kubernetes_port: null,
    balancer: 'least-sessions',
    no_ready_endpoint: 'draining',
    strict: false,
    absolute_timeout: 0,
    idle_timeout: 0,
    idle_refresh_percent: 50,
    change_on_failure: false,
    failure_statuses: [502, 504],
    failure_timeout: 10,
    log_level: null,
    accept_legacy_cookies: null,
    service_id: null,
    route_id: null,
    ...over,
  };
}
