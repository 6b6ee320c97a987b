/**
 * The parts of HTTPRoute, ReferenceGrant and Service that session affinity reads, as plain JSON
 * (what the API server returns, or YAML as users write it), and the defaults the HTTPRoute CRD
 * applies (gateway-api v1.x experimental `backendRefs[]`: group "", kind Service, weight 1).
 * Pure: no I/O.
 */

export interface ObjectMetaLike {
  readonly name: string;
  readonly namespace?: string;
  readonly uid?: string;
}

export interface BackendRefLike {
  readonly group?: string;
  readonly kind?: string;
  readonly name: string;
  readonly namespace?: string;
  readonly port?: number;
  readonly weight?: number;
  readonly filters?: readonly unknown[];
}

export interface HTTPPathMatchLike {
  readonly type?: 'Exact' | 'PathPrefix' | 'RegularExpression' | string;
  readonly value?: string;
}

export interface HTTPRouteMatchLike {
  readonly path?: HTTPPathMatchLike;
  readonly [other: string]: unknown;
}

export interface HTTPRouteRuleLike {
  readonly name?: string;
  readonly matches?: readonly HTTPRouteMatchLike[];
  readonly filters?: readonly unknown[];
  readonly backendRefs?: readonly BackendRefLike[];
  readonly sessionPersistence?: unknown;
}

export interface HTTPRouteLike {
  readonly metadata: ObjectMetaLike;
  readonly spec?: {
    readonly hostnames?: readonly string[];
    readonly rules?: readonly HTTPRouteRuleLike[];
  };
}

export interface ReferenceGrantLike {
  readonly metadata: ObjectMetaLike;
  readonly spec?: {
    readonly from?: readonly { readonly group: string; readonly kind: string; readonly namespace: string }[];
    readonly to?: readonly { readonly group: string; readonly kind: string; readonly name?: string }[];
  };
}

export interface ServicePortLike {
  readonly name?: string;
  readonly port: number;
  readonly protocol?: string;
  readonly targetPort?: number | string;
}

export interface ServiceLike {
  readonly metadata: ObjectMetaLike;
  readonly spec?: {
    readonly type?: string;
    readonly ports?: readonly ServicePortLike[];
  };
}

export const GATEWAY_GROUP = 'gateway.networking.k8s.io';

/** A backendRef as the API server stores it: the CRD's defaults filled in, nothing else. */
export interface DefaultedBackendRef extends BackendRefLike {
  readonly group: string;
  readonly kind: string;
  readonly weight: number;
}

/**
 * The CRD defaults (`group: ""`, `kind: Service`, `weight: 1`). KIC only ever sees defaulted
 * objects, so names and weights computed from a user's YAML must go through this first.
 */
export function defaultBackendRef(ref: BackendRefLike): DefaultedBackendRef {
  return { ...ref, group: ref.group ?? '', kind: ref.kind ?? 'Service', weight: ref.weight ?? 1 };
}

export function routeNamespace(route: HTTPRouteLike): string {
  return route.metadata.namespace ?? 'default';
}

export function routeRules(route: HTTPRouteLike): readonly HTTPRouteRuleLike[] {
  return route.spec?.rules ?? [];
}
