import { createRequire } from 'node:module';

/**
 * `@kubernetes/client-node`, loaded on first use. Importing it builds every generated API
 * model: about 65 MB of plugin-server RSS, which a server with only static targets never
 * needs. Types are imported statically (`import type`); values come from here.
 */
export type ClientNode = typeof import('@kubernetes/client-node');

// require() of an ES module (Node >= 22.12): synchronous, and the same module instance an
// `import` would give.
const require = createRequire(import.meta.url);
let loaded: ClientNode | undefined;

export function clientNode(): ClientNode {
  loaded ??= require('@kubernetes/client-node') as ClientNode;
  return loaded;
}
