import type { Lease } from '../shared.js';
import { gatewayRuleSourceKey, GatewayRuleSource, type GatewayRuleIdentity, type GatewayRuleSourceOptions } from './gateway-api/rule-source.js';
import { clientNode } from './kubernetes/client-node.js';
import { inKubernetes } from './kubernetes/kubeconfig.js';
import { sources } from './registry.js';
import { StaticSource } from './static.js';
import type { Endpoint, EndpointSource } from './types.js';

// Near a cluster, Kubernetes sources are to be expected: load their client while the plugin
// server starts, rather than stall the first request that opens a watch (loading it blocks
// the event loop for a few hundred ms). Elsewhere it loads when, if ever, one opens.
if (inKubernetes()) clientNode();

export { acquireKubernetesSource as openKubernetesSource, resolveServiceRef } from './kubernetes/index.js';

/** Opens (or joins) the process-wide view of the HTTPRoute rule `identity` names. */
export function openGatewayRuleSource(identity: GatewayRuleIdentity, options?: GatewayRuleSourceOptions): Lease<EndpointSource> {
  return sources.acquire(gatewayRuleSourceKey(identity), () => new GatewayRuleSource(identity, options));
}

/** Opens (or joins) the process-wide static source for these targets. */
export function openStaticSource(endpoints: readonly Endpoint[]): Lease<EndpointSource> {
  const source = new StaticSource(endpoints);
  return sources.acquire(source.key, () => source);
}

