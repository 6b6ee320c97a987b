import type { AffinityState } from '../affinity/decide.js';
import type { ResolvedConfig } from '../config/resolve.js';
import { log } from '../log.js';
import { nameService } from '../observability/index.js';
import { openKubernetesSource, openStaticSource, resolveServiceRef } from '../endpoints/open.js';
import type { ServiceRef } from '../endpoints/kubernetes/service-ref.js';
import type { EndpointSource } from '../endpoints/types.js';
import type { KongPdk } from './pdk.js';
import type { Lease } from '../shared.js';

export interface ReadySource {
  readonly source: EndpointSource;
  readonly state: AffinityState;
  /** The Kubernetes Service it watches; undefined for static targets. */
  readonly service?: ServiceRef | undefined;
}

/**
 * The endpoint source and affinity state of one plugin instance, both process-wide and
 * shared. Static targets and explicit Kubernetes coordinates open at instance start. The
 * Kong service is asked for (one PDK call) on the instance's first request, when its name is
 * wanted for metrics and logs or its host names the Service (KIC).
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
    private readonly acquireState: (sourceKey: string) => Lease<AffinityState>,
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
   * binding's metrics and decision lines, and under KIC its host names the Kubernetes Service.
   */
  private async askService(kong: KongPdk): Promise<ReadySource | undefined> {
    const service = await kong.router.getService();
    if (!this.serviceSeen) {
      this.serviceSeen = true;
      if (service?.name) nameService(this.cfg.binding, service.name);
    }
    if (this.ready || this.closed) return this.ready;
    return this.resolve(service?.host ?? null);
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
    this.ready = { source: sourceLease.value, state: state.value, service };
  }
}
