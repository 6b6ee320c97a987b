import type { AddressInfo } from 'node:net';
import { log } from '../log.js';
import { ObservabilityListener } from './server.js';

/**
 * Observability of the plugin-server process: decision counts (always, O(1) per request),
 * and, when STICKY_SESSION_METRICS_PORT is set, an HTTP listener with GET /metrics and
 * GET /status. Process-wide and configured by env: Kong runs every instance of every nginx
 * worker in this one process, so no plugin config could own the listener.
 */
export { observeDecision } from './decisions.js';
export { logDecision, decisionLogger } from './decision-log.js';
export { nameService, serviceName } from './service-names.js';

export const DEFAULT_METRICS_ADDRESS = '127.0.0.1';
export const DEFAULT_METRICS_PORT = 9542;

export interface ObservabilityConfig {
  readonly port: number;
  readonly address: string;
}

/** The listener settings in `env`; undefined when metrics are off (port unset or invalid). */
export function observabilityConfig(env: NodeJS.ProcessEnv = process.env): ObservabilityConfig | undefined {
  const rawPort = env.STICKY_SESSION_METRICS_PORT?.trim();
  if (!rawPort) return undefined;
  const port = /^\d{1,5}$/.test(rawPort) ? Number(rawPort) : NaN;
  if (!(port >= 0 && port <= 65535)) {
    log.warn({ STICKY_SESSION_METRICS_PORT: rawPort }, 'STICKY_SESSION_METRICS_PORT is not a port number (0-65535): metrics are off');
    return undefined;
  }
  return { port, address: env.STICKY_SESSION_METRICS_ADDRESS?.trim() || DEFAULT_METRICS_ADDRESS };
}

/** undefined: not looked at yet; null: off. */
let listener: ObservabilityListener | null | undefined;

/**
 * Starts the metrics and status listener if the env asks for one; later calls do nothing.
 * Called by every plugin instance's constructor; never throws, never blocks.
 */
export function ensureObservability(env: NodeJS.ProcessEnv = process.env): void {
  if (listener !== undefined) return;
  try {
    const cfg = observabilityConfig(env);
    listener = cfg ? new ObservabilityListener(cfg) : null;
  } catch (err) {
    listener = null;
    log.warn({ err: err instanceof Error ? err.message : String(err) }, 'metrics listener not started; requests are not affected');
  }
}

/** Where the listener is bound once it listens; undefined when off or when it could not bind. */
export async function observabilityAddress(): Promise<AddressInfo | undefined> {
  return (await listener?.ready) ?? listener?.address();
}

/** Stops the listener and forgets the env it was started from (tests, shutdown). */
export async function stopObservability(): Promise<void> {
  const l = listener;
  listener = undefined;
  await l?.close();
}
