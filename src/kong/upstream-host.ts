import type { KongPdk } from './pdk.js';

/**
 * Routes a request to host:port and leaves the upstream Host header what Kong would send
 * without the plugin. Kong's `service.set_target` also sets `$upstream_host` to the target's
 * host (Kong/kong#5945), and Kong then sends exactly that: a preserve_host route would hand
 * the pod its own IP as Host. Before the plugins run, `$upstream_host` holds the client's
 * Host on a preserve_host route, or what a plugin before ours set (request-transformer's
 * `replace.headers: host:...`), and '' otherwise: read before set_target, written back after
 * it.
 *
 * Where it was '' nothing is written back, and the upstream gets the target's host without
 * its port where Kong would add `:port` unless it is the scheme's default. Restoring that
 * port would cost a round trip on every such request and would rewrite the downstream Host
 * that later plugins and the log see (service.request.set_header changes both).
 *
 * Cost: +1 round trip (the read) on every routed request, +1 more (the write) where Kong
 * would keep a Host. The read cannot be skipped even for an instance bound to a route without
 * preserve_host: only it tells whether a plugin before ours set the Host.
 */
export async function setTargetKeepingHost(kong: KongPdk, host: string, port: number): Promise<void> {
  const kept = await kong.nginx.getVar('upstream_host');
  await kong.service.setTarget(host, port);
  if (kept) await kong.service.request.setHeader('Host', kept);
}
