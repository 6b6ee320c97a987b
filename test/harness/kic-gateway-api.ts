/**
 * Gateway API objects as users write them, and the Kong entities KIC (3.4+) makes of an
 * HTTPRoute (internal/dataplane/translator/subtranslator/httproute.go): a Kong service per
 * rule with host `httproute.<ns>.<name>.<rule>`, a Kong route per match named
 * `httproute.<ns>.<name>.<rule>.<match>` with KIC's tags, and a KongPlugin referenced from the
 * HTTPRoute bound to each of those routes. For tests and the dev gateway.
 */
import { createHash } from 'node:crypto';
import { gatewayApiProblems } from '../manifests/gateway-api.js';
import type { ObjectInput } from './kube-apiserver.js';
import type { RouteEntity, ServiceEntity } from './pdk.js';

export interface BackendRefInput {
  readonly name: string;
  readonly namespace?: string;
  readonly port: number;
  readonly weight?: number;
}

export interface RuleInput {
  readonly name?: string;
  readonly path?: string;
  readonly backendRefs: readonly BackendRefInput[];
  readonly sessionPersistence?: Record<string, unknown>;
}

/**
 * An HTTPRoute in v1 with the CRD's defaults filled in (group "", kind Service, weight 1), as
 * the API server stores it. Checked against the v1.6.1 experimental-channel schema (CEL rules
 * included): a test cannot build one a real API server would refuse.
 */
export function httpRoute(namespace: string, name: string, rules: readonly RuleInput[], hostnames: readonly string[] = []): ObjectInput {
  return valid({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name, namespace },
    spec: {
      parentRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'kong', namespace: 'kong' }],
      ...(hostnames.length > 0 ? { hostnames } : {}),
      rules: rules.map((r) => ({
        ...(r.name ? { name: r.name } : {}),
        matches: [{ path: { type: 'PathPrefix', value: r.path ?? '/' } }],
        backendRefs: r.backendRefs.map((b) => ({ group: '', kind: 'Service', weight: 1, ...b })),
        ...(r.sessionPersistence ? { sessionPersistence: r.sessionPersistence } : {}),
      })),
    },
  });
}

/** A ClusterIP Service with one named port `http` (port -> targetPort). */
export function service(namespace: string, name: string, port = 80, targetPort = 8080): ObjectInput {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace },
    spec: { type: 'ClusterIP', selector: { app: name }, ports: [{ name: 'http', port, targetPort, protocol: 'TCP' }] },
  };
}

export function referenceGrant(namespace: string, name: string, fromNamespace: string, serviceName?: string): ObjectInput {
  return valid({
    apiVersion: 'gateway.networking.k8s.io/v1beta1',
    kind: 'ReferenceGrant',
    metadata: { name, namespace },
    spec: {
      from: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: fromNamespace }],
      to: [{ group: '', kind: 'Service', ...(serviceName ? { name: serviceName } : {}) }],
    },
  });
}

function valid(doc: ObjectInput): ObjectInput {
  const problems = gatewayApiProblems(doc);
  if (problems.length > 0) throw new Error(`${String(doc.kind)} ${doc.metadata.namespace}/${doc.metadata.name} is refused by the Gateway API schema:\n  ${problems.join('\n  ')}`);
  return doc;
}

/** A stable UUID-shaped id for a KIC entity name (Kong ids are UUIDs). */
function idOf(name: string): string {
  const h = createHash('sha256').update(name).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** The Kong service KIC makes of rule `rule` of an HTTPRoute (its host names the upstream). */
export function kicService(namespace: string, name: string, rule: number): ServiceEntity {
  const host = `httproute.${namespace}.${name}.${rule}`;
  return { id: idOf(host), name: host, host, port: 80, protocol: 'http' };
}

/** The Kong route KIC makes of match `match` of rule `rule`, with KIC's tags (3.4+: the rule's name, if it has one). */
export function kicRoute(namespace: string, name: string, rule: number, match = 0, preserveHost = true, ruleName?: string): RouteEntity {
  const routeName = `httproute.${namespace}.${name}.${rule}.${match}`;
  return {
    id: idOf(routeName),
    name: routeName,
    preserve_host: preserveHost,
    tags: [
      `k8s-name:${name}`,
      `k8s-namespace:${namespace}`,
      'k8s-kind:HTTPRoute',
      `k8s-uid:${idOf(`${namespace}/${name}`)}`,
      'k8s-group:gateway.networking.k8s.io',
      'k8s-version:v1',
      ...(ruleName ? [`k8s-named-route-rule:${ruleName}`] : []),
    ],
  } as RouteEntity;
}
