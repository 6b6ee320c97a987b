import { createRequire } from 'node:module';
import { closePluginsOnCloseInstance, type PdkServerWithInstances } from './kong-pdk-close.js';
import { forgetEventsOnExit, type PdkServerClass } from './kong-pdk-exit.js';
import { routeKongPdkLogger, type KongPdkLogger } from './kong-pdk-logger.js';

/**
 * Applies the kong-pdk workarounds to the plugin server this module is loaded into, as the
 * plugin loads (before kong-pdk logs or serves anything of it): events ended by an exit are
 * forgotten (kong-pdk-exit.ts), CloseInstance closes the plugin object (kong-pdk-close.ts),
 * kong-pdk's colour logger becomes pino JSON on stderr (kong-pdk-logger.ts).
 * Only modules kong-pdk has loaded already are touched: loading its server.js here would
 * register ts-node in any other process, tests included.
 */
export function patchKongPdkInThisServer(): void {
  const require = createRequire(import.meta.url);
  let serverFile: string;
  try {
    serverFile = require.resolve('kong-pdk/server.js');
  } catch {
    return;
  }
  const server = require.cache[serverFile]?.exports as (PdkServerClass & PdkServerWithInstances) | undefined;
  if (server) {
    forgetEventsOnExit(server);
    closePluginsOnCloseInstance(server);
  }
  // The logger kong-pdk's bin/kong-js-pluginserver requires: resolved from kong-pdk's own directory.
  try {
    const loggerFile = createRequire(serverFile).resolve('node-color-log');
    const logger = require.cache[loggerFile]?.exports as KongPdkLogger | undefined;
    if (logger && typeof logger.info === 'function') routeKongPdkLogger(logger);
  } catch {
    // kong-pdk without node-color-log: nothing to route.
  }
}
