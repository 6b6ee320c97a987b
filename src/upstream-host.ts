import type { KongPdk } from './kong-pdk.js';

/**
 * The Host header the upstream gets when the plugin routes a request. Kong's
 * `service.set_target` sets `$upstream_host` to the target's host (Kong/kong#5945), and Kong
 * then sends exactly that, so without this a `preserve_host` route would hand the pod its
 * own IP as Host. Kong's router sets `$upstream_host` to the client's Host on a
 * preserve_host route and leaves it '' otherwise (a plugin before us may have set it too):
 * read before set_target, written back after it, the upstream gets what Kong would send.
 *
 * On a route without preserve_host (or an empty Host) nothing is written back: the upstream
 * gets the target's host without its port, where Kong would add `:port` unless it is the
 * scheme's default. Restoring that port would cost a round trip on every routed request and
 * would rewrite the Host that later plugins and the log see (set_header changes the
 * downstream request too).
 *
 * Cost: an instance bound to one route asks for the route once (`router.get_route`); on a
 * route without preserve_host it then does no Host work at all, on one with it reads
 * `$upstream_host` and sets Host (+2 round trips per routed request). An instance bound to a
 * service or global cannot know the route without a call, so it reads `$upstream_host` on
 * every routed request (+1) and sets Host when it is not empty (+1).
 */
export class UpstreamHost {
  /** Route-bound instances: the route's preserve_host once known; undefined: not asked yet. */
  private preserveHost: boolean | undefined;

  constructor(private readonly routeId: string | null) {}

  /** Before set_target: the Host to restore after it, undefined when there is none. */
  async beforeTarget(kong: KongPdk): Promise<string | undefined> {
    if (this.routeId !== null && this.preserveHost === undefined) {
      // Each request asks in its own event (see InstanceSource.get for why none is shared).
      const route = await kong.router.getRoute();
      const learned = preserveHostOf(route, this.routeId);
      if (learned !== undefined) this.preserveHost = learned;
    }
    if (this.preserveHost === false) return undefined;
    return hostToRestore(await kong.nginx.getVar('upstream_host'));
  }

  /** After set_target: puts back what $upstream_host held before it. */
  async afterTarget(kong: KongPdk, host: string | undefined): Promise<void> {
    if (host !== undefined) await kong.service.request.setHeader('Host', host);
  }
}

/**
 * `$upstream_host` before set_target -> the Host Kong would send without the plugin, or
 * undefined where Kong would compute one itself (access.after: '' means not preserved).
 */
export function hostToRestore(upstreamHostVar: string | null | undefined): string | undefined {
  return upstreamHostVar ? upstreamHostVar : undefined;
}

/**
 * What the route Kong matched says, for an instance bound to `routeId`; undefined when the
 * answer is not that route (none matched, or another one: never cached).
 */
export function preserveHostOf(route: { id?: string | null; preserve_host?: boolean | null } | null | undefined, routeId: string): boolean | undefined {
  if (!route || route.id !== routeId) return undefined;
  return route.preserve_host === true;
}
