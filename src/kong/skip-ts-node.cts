/**
 * Preloaded into the plugin server (`node --require .../dist/skip-ts-node.cjs
 * .../kong-js-pluginserver ...`): kong-pdk calls `require('ts-node').register()` when it
 * loads, so that it could require TypeScript plugins. Ours is compiled JavaScript, and
 * registering ts-node loads the TypeScript compiler: about 50 MB of RSS for nothing.
 * This puts a `register()` that does nothing in ts-node's place in the require cache.
 * Without this file the server runs the same, only bigger.
 */
import Module = require('node:module');
import path = require('node:path');

const fromKongPdk = path.dirname(require.resolve('kong-pdk/lib/mod.js'));
const tsNode = require.resolve('ts-node', { paths: [fromKongPdk] });
const standIn = new Module(tsNode);
standIn.filename = tsNode;
standIn.loaded = true;
standIn.exports = { register: (): void => undefined };
require.cache[tsNode] = standIn;
