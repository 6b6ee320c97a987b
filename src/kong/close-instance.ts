import { pdkServerOfThisProcess } from './pdk-server.js';
import { log } from '../log.js';

/**
 * kong-pdk 0.6's CloseInstance drops the instance from its map and closes its own wrapper,
 * never the plugin object: the watches, caches and metric series an instance holds stayed
 * until garbage collection (minutes), so a replaced config kept exporting its old pods.
 * Patched here: CloseInstance also calls the plugin's own `close()`, at once.
 */

/** The part of kong-pdk's Server (server.js) this touches. */
export interface PdkServerWithInstances {
  readonly prototype: {
    instances: Map<number, { cls?: unknown }>;
    CloseInstance(iid: number): Promise<unknown>;
  };
}

const patched = new WeakSet<object>();

export function closePluginsOnCloseInstance(Server: PdkServerWithInstances): void {
  const proto = Server.prototype;
  if (patched.has(proto)) return;
  if (typeof proto.CloseInstance !== 'function') {
    log.warn('kong-pdk changed: its Server has no CloseInstance to patch; closed instances are released at garbage collection');
    return;
  }
  patched.add(proto);
  const closeInstance = proto.CloseInstance;
  proto.CloseInstance = async function (this: PdkServerWithInstances['prototype'], iid) {
    // kong-pdk's Instance keeps the plugin object as `cls`; read it before the map forgets it.
    const plugin = this.instances?.get(iid)?.cls as { close?: () => void } | undefined;
    const reply = await closeInstance.call(this, iid);
    try {
      plugin?.close?.();
    } catch (err) {
      log.error({ err, instance: iid }, 'closing a plugin instance failed; it is released at garbage collection');
    }
    return reply;
  };
}

/** Patches the Server class of the plugin server this module is loaded into, if any. */
export function closePluginsOnCloseInstanceInThisServer(): void {
  const Server = pdkServerOfThisProcess();
  if (Server) closePluginsOnCloseInstance(Server as PdkServerWithInstances);
}
