/** Builders for EndpointSlices as the EndpointSlice controller writes them, for tests. */
import type { EndpointSliceInput } from './kube-apiserver.js';

export interface Conditions {
  readonly ready?: boolean;
  readonly serving?: boolean;
  readonly terminating?: boolean;
}

export interface SliceEndpointInput {
  readonly addresses: readonly string[];
  readonly conditions?: Conditions;
  readonly targetRef?: { readonly kind: string; readonly namespace?: string; readonly name: string; readonly uid: string };
  readonly hostname?: string;
  readonly nodeName?: string;
}

/** A pod endpoint; its uid is `uid-<pod>` so tests can name it. Conditions as given, not defaulted. */
export function podEndpoint(pod: string, ip: string, conditions?: Conditions, namespace = 'shop'): SliceEndpointInput {
  return {
    addresses: [ip],
    ...(conditions ? { conditions } : {}),
    targetRef: { kind: 'Pod', namespace, name: pod, uid: `uid-${pod}` },
    nodeName: 'node-1',
  };
}

export const READY: Conditions = { ready: true, serving: true, terminating: false };
export const DRAINING: Conditions = { ready: false, serving: true, terminating: true };
export const STOPPED: Conditions = { ready: false, serving: false, terminating: true };
export const NOT_READY: Conditions = { ready: false, serving: false, terminating: false };

export interface SliceSpec {
  readonly name: string;
  readonly service: string;
  readonly namespace?: string;
  readonly addressType?: 'IPv4' | 'IPv6' | 'FQDN';
  readonly ports?: readonly { readonly name?: string; readonly port: number; readonly protocol?: string }[];
  readonly endpoints: readonly SliceEndpointInput[];
}

/** An EndpointSlice of `service`, labelled the way the controller labels them. */
export function endpointSlice(spec: SliceSpec): EndpointSliceInput {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: spec.name,
      namespace: spec.namespace ?? 'shop',
      labels: {
        'kubernetes.io/service-name': spec.service,
        'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io',
      },
    },
    addressType: spec.addressType ?? 'IPv4',
    endpoints: spec.endpoints,
    ports: (spec.ports ?? [{ name: 'http', port: 8080 }]).map((p) => ({ protocol: 'TCP', ...p })),
  };
}
