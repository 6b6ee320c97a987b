import type { SourceConfig } from '../config.js';
import type { Lease } from '../shared.js';
import { sources } from './registry.js';
import { StaticSource } from './static.js';
import type { EndpointSource } from './types.js';

/** Opens (or joins) the process-wide static source for these targets. */
export function openStaticSource(cfg: Extract<SourceConfig, { kind: 'static' }>): Lease<EndpointSource> {
  const source = new StaticSource(cfg.endpoints);
  return sources.acquire(source.key, () => source);
}

export interface ServiceRef {
  readonly namespace: string;
  readonly service: string;
  /** Service port name or number; null = the only port. */
  readonly port: string | null;
}

/** Placeholder until the Kubernetes source lands. */
export function openKubernetesSource(ref: ServiceRef): Lease<EndpointSource> {
  throw new Error(`Kubernetes source not available: ${ref.namespace}/${ref.service}`);
}

export function serviceRefFromHost(host: string): ServiceRef | undefined {
  const m = /^([a-z0-9][a-z0-9-]*)\.([a-z0-9][a-z0-9-]*)\.([a-z0-9-]+)\.svc$/.exec(host);
  return m ? { service: m[1]!, namespace: m[2]!, port: m[3]! } : undefined;
}
