/**
 * What both ingress-nginx affinity modes share: how the cookie value is read, how an
 * endpoint is named, and how a backend (the persistent mode's salt) is named.
 * Read from kubernetes/ingress-nginx (rootfs/etc/nginx/lua/balancer/sticky.lua, util.lua,
 * balancer.lua; internal/ingress/controller/util.go). Pure: no I/O.
 */
import type { Endpoint } from '../endpoints/types.js';
import type { ServiceRef } from '../endpoints/kubernetes/service-ref.js';

/**
 * The key part of an ingress-nginx affinity cookie. The cookie is `<key>|<backend key>`;
 * sticky.lua splits it with util/split.lua's `gmatch("([^|]+)")`, which skips empty pieces,
 * and looks up the first piece. Undefined when there is none.
 */
export function upstreamKey(raw: string): string | undefined {
  const m = /[^|]+/.exec(raw);
  return m ? m[0] : undefined;
}

/**
 * How ingress-nginx names an endpoint (util.lua get_nodes): `address:port`, where an address
 * that does not match Lua's `^%d+.%d+.%d+.%d+$` (in Lua `.` is any character) is first put in
 * brackets (balancer.lua format_ipv6_endpoints): `[2001:db8::1]:8080`.
 */
export function nodeName(e: Pick<Endpoint, 'host' | 'port'>): string {
  const address = /^\d+.\d+.\d+.\d+$/s.test(e.host) ? e.host : `[${e.host}]`;
  return `${address}:${e.port}`;
}

/**
 * The backend name ingress-nginx gives an Ingress backend (controller/util.go upstreamName):
 * `<namespace>-<service>-<port>`, the port as the Ingress names it (number or name).
 * Undefined when the Service port is not known (the "only port" of a Service).
 */
export function backendName(ref: ServiceRef): string | undefined {
  if (ref.port === null || ref.port === '') return undefined;
  return `${ref.namespace}-${ref.service}-${ref.port}`;
}
