/**
 * Kubernetes endpoint sources: one EndpointSlice watch per Service per process, shared by
 * every plugin instance that routes to it.
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
