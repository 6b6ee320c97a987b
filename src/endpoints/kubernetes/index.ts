/**
 * Kubernetes endpoint sources: one endpoint view per Service per process, shared by every
 * plugin instance that routes to it, all fed by one EndpointSlice list-and-watch per
 * namespace (informer.ts); and the shared object caches other readers (Gateway API) use.
 */
import type { Lease } from '../../shared.js';
import { sources } from '../registry.js';
import type { EndpointSource } from '../types.js';
import { serviceRefKey, type ServiceRef } from './service-ref.js';
import { EndpointSliceWatcher, type EndpointSliceWatcherOptions } from './watcher.js';

/**
 * The source for `ref`: the first holder starts its watch, the last `release()` stops it.
 * `options` only count for the holder that creates it.
 */
export function acquireKubernetesSource(ref: ServiceRef, options?: EndpointSliceWatcherOptions): Lease<EndpointSource> {
  return sources.acquire(serviceRefKey(ref), () => new EndpointSliceWatcher(ref, options));
}

export { EndpointSliceWatcher };
export {
  acquireObjectCache,
  objectCacheKeys,
  scopeFor,
  ENDPOINT_SLICES,
  HTTP_ROUTES,
  REFERENCE_GRANTS,
  SERVICES,
  type CacheScope,
  type ChangeFilter,
  type KubeObject,
  type ObjectCache,
  type ObjectCacheOptions,
  type ObjectCacheStatus,
  type ObjectChange,
  type ResourceKind,
} from './informer.js';
export type { EndpointSliceWatcherOptions, EndpointSliceWatcherStatus } from './watcher.js';
export {
  canonicalServiceRef,
  parseServiceHost,
  parseServicePort,
  resolveServiceRef,
  serviceRefKey,
  type KubernetesServiceConfig,
  type ServicePort,
  type ServiceRef,
  type ServiceRefResolution,
} from './service-ref.js';
