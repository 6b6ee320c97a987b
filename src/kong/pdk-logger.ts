import { createRequire } from 'node:module';
import { log } from '../log.js';

/**
 * kong-pdk's logger (node-color-log) writes its lines to stdout in ANSI colours, drawing
 * each in pieces that go back up a line (ESC[1A) and clear it (ESC[K); Kong copies those
 * bytes into its error log. Routed here into the plugin's pino logger instead: one JSON
 * line on stderr per message, like every other line of the plugin server, and nothing of
 * kong-pdk's on the stdout that Kong parses for --dump-all-plugins.
 */

/** The part of node-color-log's logger kong-pdk calls. */
export interface KongPdkLogger {
  error(...args: unknown[]): unknown;
  warn(...args: unknown[]): unknown;
  info(...args: unknown[]): unknown;
  debug(...args: unknown[]): unknown;
  success(...args: unknown[]): unknown;
  /** node-color-log's own threshold (kong-pdk sets it from -v). */
  isAllowedLevel?(level: string): boolean;
}

const LEVELS = [
  ['error', 'error'],
  ['warn', 'warn'],
  ['info', 'info'],
  ['debug', 'debug'],
  ['success', 'info'],
] as const;

const routed = new WeakSet<object>();

export function routeKongPdkLogger(logger: KongPdkLogger): void {
  if (routed.has(logger)) return;
  routed.add(logger);
  const pdkLog = log.child({ from: 'kong-pdk' });
  for (const [method, level] of LEVELS) {
    logger[method] = function (this: KongPdkLogger, ...args: unknown[]) {
      // kong-pdk's -v flags still decide what it says; STICKY_SESSION_LOG_LEVEL filters too.
      if (this.isAllowedLevel && !this.isAllowedLevel(method)) return this;
      pdkLog[level](args.map(text).join(' '));
      return this;
    };
  }
}

/** As node-color-log joins its arguments: strings as they are, anything else as JSON. */
function text(arg: unknown): string {
  if (typeof arg === 'string') return arg;
  try {
    return JSON.stringify(arg) ?? String(arg);
  } catch {
    return String(arg);
  }
}

/**
 * Routes the logger kong-pdk's bin/kong-js-pluginserver uses in this process, if it is loaded
 * (resolved from kong-pdk's own directory, as kong-pdk requires it).
 */
export function routeKongPdkLoggerInThisProcess(): void {
  const require = createRequire(import.meta.url);
  try {
    const file = createRequire(require.resolve('kong-pdk/server.js')).resolve('node-color-log');
    const logger = require.cache[file]?.exports as KongPdkLogger | undefined;
    if (logger && typeof logger.info === 'function') routeKongPdkLogger(logger);
  } catch {
    // No kong-pdk, or one without node-color-log: nothing to route.
  }
}
