import { createRequire } from 'node:module';

/**
 * kong-pdk's Server class (server.js) of the plugin server this module is loaded into, for
 * the few places where kong-pdk must be corrected from inside. Only when server.js is loaded
 * already (it is, in the plugin server): loading it here would register ts-node in any other
 * process, tests included.
 */
export function pdkServerOfThisProcess(): unknown {
  const require = createRequire(import.meta.url);
  let file: string;
  try {
    file = require.resolve('kong-pdk/server.js');
  } catch {
    return undefined;
  }
  return require.cache[file]?.exports;
}
