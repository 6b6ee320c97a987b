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

/** What a Kong service host resolved to: a source and the leases it holds, or (not yet) when to ask again. */
type Resolution = { readonly ready: ReadySource; readonly leases: ReadonlyArray<Lease<unknown>> } | { readonly retryAt: number };

/**
 * The endpoint source and affinity state of one plugin instance, both process-wide and
 * shared. Static targets and explicit Kubernetes coordinates open at instance start. The
 * Kong service is asked for (one PDK call) on the instance's first request, when its name is
 * wanted for metrics and logs or its host names the Service or the HTTPRoute rule (KIC); a
 * route-bound instance under an HTTPRoute also asks for its Kong route once, whose name and
 * tags name the rule exactly.
 *
 * A global instance serves every Kong service: when its source comes from the service host,
 * it asks for the Kong service on every request and keeps one source per host, each with
 * tokens of its own, so that no request is sent to another service's pods.
 */
export class InstanceSource {
  private ready: ReadySource | undefined;
  /** After a Kong service host that names no Service, ask again only after a while. */
  private retryAt = 0;
  /** A global instance learning from the host: one resolution per Kong service host. */
  private readonly byHost: Map<string, Resolution> | undefined;
  private readonly leases: Array<Lease<unknown>> = [];
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
    if (s.kind === 'static') this.adopt(this.openSource(openStaticSource(s.endpoints)));
    else if (s.namespace && s.service) this.adopt(this.resolveService(null));
    else if (cfg.binding === 'global') this.byHost = new Map();
  }

  get(kong: KongPdk): ReadySource | undefined | Promise<ReadySource | undefined> {
    if (this.closed) return undefined;
    if (this.byHost) return this.forService(kong);
    if (this.serviceSeen && (this.ready || Date.now() < this.retryAt)) return this.ready;
    // Each request asks in its own event: sharing one pending answer would tie every
    // concurrent request to the first one's event, and hang them all if it never finished.
    return this.askService(kong);
  }

  /** The source that served the last request, without opening one. */
  peek(): ReadySource | undefined {
    return this.ready;
  }

  close(): void {
    this.closed = true;
    this.ready = undefined;
    this.byHost?.clear();
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
    const resolution = await this.resolveHost(kong, service?.host ?? null);
    // A concurrent first request may have opened it meanwhile.
    if (this.ready || this.closed) release(resolution);
    else if ('ready' in resolution) this.adopt(resolution);
    else this.retryAt = resolution.retryAt;
    return this.ready;
  }

  /** A global instance: the source of this request's Kong service (one get_service per request). */
  private async forService(kong: KongPdk): Promise<ReadySource | undefined> {
    const byHost = this.byHost as Map<string, Resolution>;
    const host = (await kong.router.getService())?.host ?? '';
    let resolution = byHost.get(host);
    if (!resolution || ('retryAt' in resolution && Date.now() >= resolution.retryAt)) {
      const fresh = await this.resolveHost(kong, host || null, `global:${host}`);
      if (this.closed) {
        release(fresh);
        return undefined;
      }
      // A concurrent request of the same host may have opened it meanwhile.
      resolution = byHost.get(host);
      if (resolution && 'ready' in resolution) release(fresh);
      else {
        byHost.set(host, (resolution = fresh));
        if ('ready' in fresh) this.leases.push(...fresh.leases);
      }
    }
    this.ready = 'ready' in resolution ? resolution.ready : undefined;
    return this.ready;
  }

  /** Opens what the Kong service host names: an HTTPRoute rule (KIC's httproute.*) or a Service. */
  private async resolveHost(kong: KongPdk, host: string | null, tokenBinding?: string): Promise<Resolution> {
    if (parseKicServiceName(host)) return this.openRule({ host: host as string, rule: await this.routeRule(kong) });
    return this.resolveService(host, tokenBinding);
  }

  /** The HTTPRoute rule a route-bound instance's Kong route names (KIC route name and tags). */
  private async routeRule(kong: KongPdk): Promise<GatewayRuleIdentity['rule']> {
    if (!this.cfg.binding.startsWith('route:')) return undefined;
    const route = await kong.router.getRoute();
    const id = identifyKicRoute(route?.name, route?.tags);
    return id?.rule === undefined ? undefined : { namespace: id.namespace, name: id.name, index: id.rule };
  }

  /** Opens the view of the HTTPRoute rule; tokens are bound to the rule (its matches share sessions, two rules never do). */
  private openRule(identity: GatewayRuleIdentity): Resolution {
    const lease = openGatewayRuleSource(identity);
    const source = lease.value as GatewayRuleSource;
    const state = this.acquireState(source.key, source.key);
    const cfg = this.cfg;
    let reading: RuleReading | undefined;
    let settings: SessionSettings = cfg;
    log.info({ service: cfg.binding, source: source.key, host: identity.host }, 'serving an HTTPRoute rule');
    const ready: ReadySource = {
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
    return { ready, leases: [lease, state] };
  }

  /** Opens the watch of the Service named by the config, or else by the Kong service host. */
  private resolveService(serviceHost: string | null, tokenBinding?: string): Resolution {
    const s = this.cfg.source;
    const retryAt = Date.now() + 30_000;
    if (s.kind !== 'kubernetes') return { retryAt };
    const resolved = resolveServiceRef(
      { kubernetes_namespace: s.namespace, kubernetes_service: s.service, kubernetes_port: s.port },
      serviceHost,
    );
    if (!resolved.ok) {
      log.error({ service: this.cfg.binding, host: serviceHost }, `${resolved.reason}; requests are proxied by Kong meanwhile`);
      return { retryAt };
    }
    return this.openSource(openKubernetesSource(resolved.ref), resolved.ref, tokenBinding);
  }

  private openSource(sourceLease: Lease<EndpointSource>, service?: ServiceRef, tokenBinding?: string): Resolution {
    const state = this.acquireState(sourceLease.value.key, tokenBinding);
    const cfg = this.cfg;
    return { ready: { source: sourceLease.value, state: state.value, service, settings: () => cfg }, leases: [sourceLease, state] };
  }

  /** Makes a resolution the instance's source (until it closes); one that is not a source is noted for a retry. */
  private adopt(resolution: Resolution): void {
    if ('ready' in resolution) {
      this.ready = resolution.ready;
      this.leases.push(...resolution.leases);
    } else this.retryAt = resolution.retryAt;
  }
}

/** Gives back what a resolution that lost a race opened. */
function release(resolution: Resolution): void {
  if ('ready' in resolution) for (const lease of resolution.leases) lease.release();
}
