import type { SourceConfig } from '../config.js';
import type { Lease } from '../shared.js';
import { sources } from './registry.js';
import { StaticSource } from './static.js';
import type { EndpointSource } from './types.js';

export { acquireKubernetesSource as openKubernetesSource, resolveServiceRef } from './kubernetes/index.js';

/** Opens (or joins) the process-wide static source for these targets. */
export function openStaticSource(cfg: Extract<SourceConfig, { kind: 'static' }>): Lease<EndpointSource> {
  const source = new StaticSource(cfg.endpoints);
  return sources.acquire(source.key, () => source);
}

