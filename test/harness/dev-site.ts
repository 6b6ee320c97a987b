/**
 * What the dev gateway (`npm start`) serves, behind one interface: a kong.yml (one service,
 * route and plugin, dev-gateway.ts) or HTTPRoute manifests (the Kong services and routes KIC
 * makes of them, dev-httproute.ts). The gateway owns the HTTP front, the proxying and the
 * file watching; a site owns Kong's router and balancer and what a file change does.
 */
import type { Backend } from './dev-echo.js';
import type { DevRoute, DevService, RouteMatch } from './dev-kong-config.js';
import type { KongEmulator } from './kong-emulator.js';
import { processPluginConfig } from './kong-schema.js';

export interface ReloadOutcome {
  ok: boolean;
  /** The watched files did not change: nothing done. */
  unchanged?: boolean;
  /** One-line summary (what was printed). */
  message: string;
  /** Why the files were refused (field names included). */
  error?: string;
  backendsStarted?: string[];
  backendsStopped?: string[];
}

/** Kong's router's answer for one request. */
export interface Routed {
  readonly service: DevService;
  readonly route: DevRoute;
  readonly match: RouteMatch;
  /** The plugin entity that runs on it; undefined: the only one. */
  readonly plugin?: string;
  /** The session cookie the request log mentions (sent or not); undefined: not mentioned. */
  readonly cookieName?: string;
}

export interface DevSite {
  /** The files watched: a change to any of them calls reload(). */
  readonly files: readonly string[];
  /** Variables the plugin server needs from the site (KUBECONFIG), over the shell's. */
  readonly pluginEnv: Readonly<Record<string, string>>;
  /** Loads the files into Kong (plugins) and starts what they need; throws on a bad setup. */
  start(kong: KongEmulator): Promise<void>;
  /** Re-reads the files; never throws (a refused file is an outcome). */
  reload(): Promise<ReloadOutcome>;
  route(method: string, hostHeader: string, path: string): Routed | null;
  /** Kong's own balancer, when the plugin set no target; `note` says how it picked. */
  balance(routed: Routed): { host: string; port: number; note: string };
  backend(host: string, port: number): Backend | undefined;
  backends(): Backend[];
  /** Banner lines: what is served and a walk-through; `shown` is the gateway's URL. */
  describe(shown: string, rel: (file: string) => string): string[];
  close(): Promise<void>;
}

/** What the plugin checks when an instance starts (config.ts). */
export type InstanceCheck = (config: Record<string, unknown>) => void;

/**
 * Loaded from the sources (tsx and vitest run TypeScript); without them, skipped.
 */
export async function loadInstanceCheck(): Promise<InstanceCheck | undefined> {
  try {
    const mod: typeof import('../../src/config/resolve.js') = await import('../../src/config/resolve.js');
    return (config) => void mod.resolveConfig(config);
  } catch {
    return undefined;
  }
}

/**
 * Validates a plugin config like the Admin API / declarative loader (KongSchemaError), then
 * what instance start checks; returns the filled config.
 */
export function checkPluginConfig(
  kong: KongEmulator,
  instanceCheck: InstanceCheck | undefined,
  config: Record<string, unknown>,
  scope: { service: string | null; route: string | null },
): Record<string, unknown> {
  const filled = processPluginConfig(kong.info.Schema, config);
  if (instanceCheck) {
    try {
      instanceCheck({ ...filled, service_id: scope.service, route_id: scope.route });
    } catch (err) {
      throw new Error(`${(err as Error).message} (Kong would accept this file, and the plugin would stand aside: Kong balances, no session is kept)`);
    }
  }
  return filled;
}
