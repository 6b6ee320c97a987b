import type { AffinityState } from './affinity/decide.js';
import type { ResolvedConfig } from './config.js';
import { log } from './log.js';
import { openKubernetesSource, openStaticSource, serviceRefFromHost } from './endpoints/open.js';
import type { EndpointSource } from './endpoints/types.js';
import type { KongPdk } from './kong-pdk.js';
import type { Lease } from './shared.js';

export interface ReadySource {
  readonly source: EndpointSource;
  readonly state: AffinityState;
}

/**
 * The endpoint source and affinity state of one plugin instance, both process-wide and
 * shared. Static targets and explicit Kubernetes coordinates open at instance start. Under
 * KIC the Service is named by the Kong service host, which costs one PDK call: it is made
 * on the instance's first request only.
 */
export class InstanceSource {
  private ready: ReadySource | undefined;
  private readonly leases: Array<Lease<unknown>> = [];
  private resolving: Promise<ReadySource | undefined> | undefined;
  /** After a Kong service host that names no Service, ask again only after a while. */
  private retryAt = 0;
  private closed = false;

  constructor(
    private readonly cfg: ResolvedConfig,
    private readonly acquireState: (sourceKey: string) => Lease<AffinityState>,
  ) {
    const s = cfg.source;
    if (s.kind === 'static') this.open(openStaticSource(s));
    else if (s.namespace && s.service) this.open(openKubernetesSource({ namespace: s.namespace, service: s.service, port: s.port }));
  }

  get(kong: KongPdk): ReadySource | undefined | Promise<ReadySource | undefined> {
    if (this.ready || this.closed || Date.now() < this.retryAt) return this.ready;
    this.resolving ??= this.resolveFromService(kong).finally(() => (this.resolving = undefined));
    return this.resolving;
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

  private async resolveFromService(kong: KongPdk): Promise<ReadySource | undefined> {
    const service = await kong.router.getService();
    if (this.ready || this.closed) return this.ready;
    const s = this.cfg.source;
    const fromHost = serviceRefFromHost(service?.host ?? '');
    const namespace = (s.kind === 'kubernetes' && s.namespace) || fromHost?.namespace;
    const name = (s.kind === 'kubernetes' && s.service) || fromHost?.service;
    const port = (s.kind === 'kubernetes' && s.port) || fromHost?.port || null;
    if (!namespace || !name) {
      log.error(
        { service: this.cfg.binding, host: service?.host ?? null },
        'cannot tell which Kubernetes Service to watch: set kubernetes_namespace and kubernetes_service, ' +
          'or attach the plugin to a Kong service whose host is <service>.<namespace>.<port>.svc (KIC); ' +
          'requests are proxied by Kong meanwhile',
      );
      this.retryAt = Date.now() + 30_000;
      return undefined;
    }
    this.open(openKubernetesSource({ namespace, service: name, port }));
    return this.ready;
  }

  private open(sourceLease: Lease<EndpointSource>): void {
    const state = this.acquireState(sourceLease.value.key);
    this.leases.push(sourceLease, state);
    this.ready = { source: sourceLease.value, state: state.value };
  }
}
