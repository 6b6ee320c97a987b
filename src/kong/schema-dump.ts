import { pdkServerOfThisProcess } from './pdk-server.js';
import { log } from '../log.js';

/**
 * kong-pdk 0.6 builds the config record of the dumped schema itself
 * (`{type: "record", fields: Schema}`) and has no place for the record's `entity_checks`,
 * Kong's checks across fields. Patched here: the plugin's GetPluginInfo answer carries them,
 * so Kong refuses such a config at the Admin API (and in `kong config parse`, decK, KIC's
 * admission webhook) instead of the plugin meeting it at instance start.
 */

/** The part of kong-pdk's Server (server.js) this touches. */
export interface PdkInfoServerClass {
  readonly prototype: {
    GetPluginInfo(name: string): Promise<PluginInfo>;
  };
}

interface PluginInfo {
  readonly Name: string;
  readonly Schema: { readonly fields: ReadonlyArray<Record<string, { type: string; entity_checks?: unknown }>> };
}

const patched = new WeakMap<object, Map<string, readonly unknown[]>>();

export function addConfigEntityChecks(Server: PdkInfoServerClass, pluginName: string, checks: readonly unknown[]): void {
  const proto = Server.prototype;
  let byPlugin = patched.get(proto);
  if (!byPlugin) {
    if (typeof proto.GetPluginInfo !== 'function') {
      log.warn('kong-pdk changed: its Server has no GetPluginInfo to patch; Kong will not check fields against each other');
      return;
    }
    const getPluginInfo = proto.GetPluginInfo;
    const checksOf = (byPlugin = new Map());
    patched.set(proto, byPlugin);
    proto.GetPluginInfo = async function (this: unknown, name: string) {
      const info = await getPluginInfo.call(this, name);
      const extra = checksOf.get(info.Name);
      const config = info.Schema.fields.find((f) => 'config' in f)?.config;
      if (extra && config?.type === 'record') config.entity_checks = [...extra];
      return info;
    };
  }
  byPlugin.set(pluginName, checks);
}

/** Patches the Server class of the plugin server this module is loaded into, if any. */
export function addConfigEntityChecksInThisServer(pluginName: string, checks: readonly unknown[]): void {
  const Server = pdkServerOfThisProcess();
  if (Server) addConfigEntityChecks(Server as PdkInfoServerClass, pluginName, checks);
}
