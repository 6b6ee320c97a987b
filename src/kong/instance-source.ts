import type { AffinityState } from '../affinity/decide.js';
import type { ResolvedConfig, SessionSettings } from '../config/resolve.js';
import { sessionSettingsOf } from '../config/session-persistence.js';
import { log } from '../log.js';
import { nameService } from '../observability/index.js';
import { openGatewayRuleSource, openKubernetesSource, openStaticSource, resolveServiceRef } from '../endpoints/open.js';
import { identifyKicRoute, parseKicServiceName } from '../endpoints/gateway-api/kic-names.js';
import type { GatewayRuleIdentity, GatewayRuleSource, RuleReading } from '../endpoints/gateway-api/rule-source.js';
import type { ServiceRef } from '../endpoints/kubernetes/service-ref.js';
import type { EndpointSource } from '../endpoints/types.js';
import type { KongPdk } from './pdk.js';
import type { Lease } from '../shared.js';

export interface ReadySource {
  readonly source: EndpointSource;
  readonly state: AffinityState;
  /** The Kubernetes Service it watches; undefined for static targets and HTTPRoute rules. */
  readonly service?: ServiceRef | undefined;
  /** How the token travels and lives for this request: the KongPlugin's, or the rule's sessionPersistence over it. */
  settings(): SessionSettings;
}

/** Opens the affinity state of a source; `tokenBinding` overrides what tokens are bound to. */
export type AcquireState = (sourceKey: string, tokenBinding?: string) => Lease<AffinityState>;

/**
 * The endpoint source and affinity state of one plugin instance, both process-wide and
 * shared. Static targets and explicit Kubernetes coordinates open at instance start. The
 * Kong service is asked for (one PDK call) on the instance's first request, when its name is
 * wanted for metrics and logs or its host names the Service or the HTTPRoute rule (KIC); a
 * route-bound instance under an HTTPRoute also asks for its Kong route once, whose name and
 * tags name the rule exactly.
 */
export class InstanceSource {
  private ready: ReadySource | undefined;
  private readonly leases: Array<Lease<unknown>> = [];
  /** After a Kong service host that names no Service, ask again only after a while. */
  private retryAt = 0;
  /** The Kong service was asked for, or its name is not wanted: ask only for a service host (KIC). */
  private serviceSeen: boolean;
  private closed = false;

  constructor(
    private readonly cfg: ResolvedConfig,
    learnServiceName: boolean,
    private readonly acquireState: AcquireState,
  ) {
    this.serviceSeen = !learnServiceName;
    const s = cfg.source;
    if (s.kind === 'static') this.open(openStaticSource(s.endpoints));
    else if (s.namespace && s.service) this.resolve(null);
  }

  get(kong: KongPdk): ReadySource | undefined | Promise<ReadySource | undefined> {
    if (this.closed) return undefined;
    if (this.serviceSeen && (this.ready || Date.now() < this.retryAt)) return this.ready;
    // Each request asks in its own event: sharing one pending answer would tie every
    // concurrent request to the first one's event, and hang them all if it never finished.
    return this.askService(kong);
  }

  /** The source if it is open, without opening it. */
  peek(): ReadySource | undefined {
    return this.ready;
  }

  close(): void {
    this.closed = true;
    this.ready = undefined;
    for (const lease of this.leases.splice(0)) lease.release();
  }

  /**
   * The Kong service this request is for, asked once per instance: its name labels the
   * binding's metrics and decision lines, and under KIC its host names the Kubernetes Service
   * or the HTTPRoute rule.
   */
  private async askService(kong: KongPdk): Promise<ReadySource | undefined> {
    const service = await kong.router.getService();
    if (!this.serviceSeen) {
      this.serviceSeen = true;
      if (service?.name) nameService(this.cfg.binding, service.name);
    }
    if (this.ready || this.closed) return this.ready;
    const host = service?.host ?? null;
    const s = this.cfg.source;
    if (s.kind === 'kubernetes' && !s.namespace && !s.service && parseKicServiceName(host)) {
      return this.openRule({ host: host as string, rule: await this.routeRule(kong) });
    }
    return this.resolve(host);
  }

  /** The HTTPRoute rule a route-bound instance's Kong route names (KIC route name and tags). */
  private async routeRule(kong: KongPdk): Promise<GatewayRuleIdentity['rule']> {
    if (!this.cfg.binding.startsWith('route:')) return undefined;
    const route = await kong.router.getRoute();
    const id = identifyKicRoute(route?.name, route?.tags);
    return id?.rule === undefined ? undefined : { namespace: id.namespace, name: id.name, index: id.rule };
  }

  /** Opens the view of the HTTPRoute rule (a concurrent first request may have done it already). */
  private openRule(identity: GatewayRuleIdentity): ReadySource | undefined {
    if (this.ready || this.closed) return this.ready;
    const lease = openGatewayRuleSource(identity);
    const source = lease.value as GatewayRuleSource;
    // Tokens are bound to the rule: the matches of one rule share sessions, two rules never do.
    const state = this.acquireState(source.key, source.key);
    this.leases.push(lease, state);
    const cfg = this.cfg;
    let reading: RuleReading | undefined;
    let settings: SessionSettings = cfg;
    this.ready = {
      source,
      state: state.value,
      settings() {
        const now = source.rule();
        if (now !== reading) {
          reading = now;
          const policy = now?.sessionPolicy;
          settings = policy?.ok ? sessionSettingsOf(cfg, policy.policy, source.key) : cfg;
        }
        return settings;
      },
    };
    log.info({ service: cfg.binding, source: source.key, host: identity.host }, 'serving an HTTPRoute rule');
    return this.ready;
  }

  /** Opens the watch of the Service named by the config, or else by the Kong service host. */
  private resolve(serviceHost: string | null): ReadySource | undefined {
    const s = this.cfg.source;
    if (s.kind !== 'kubernetes') return this.ready;
    const resolved = resolveServiceRef(
      { kubernetes_namespace: s.namespace, kubernetes_service: s.service, kubernetes_port: s.port },
      serviceHost,
    );
    if (!resolved.ok) {
      this.retryAt = Date.now() + 30_000;
      log.error({ service: this.cfg.binding, host: serviceHost }, `${resolved.reason}; requests are proxied by Kong meanwhile`);
      return undefined;
    }
    this.open(openKubernetesSource(resolved.ref), resolved.ref);
    return this.ready;
  }

  private open(sourceLease: Lease<EndpointSource>, service?: ServiceRef): void {
    const state = this.acquireState(sourceLease.value.key);
    this.leases.push(sourceLease, state);
    const cfg = this.cfg;
    this.ready = { source: sourceLease.value, state: state.value, service, settings: () => cfg };
  }
}
