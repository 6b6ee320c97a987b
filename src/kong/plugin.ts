import { bindingOf } from '../config/resolve.js';
import { ConfigRefusal } from '../config/refusal.js';
import { StickySession, StickySessionWithFailover } from '../handler.js';
import type { KongPdk } from './pdk.js';
import { closePluginsOnCloseInstanceInThisServer } from './close-instance.js';
import { forgetEventsOnExitInThisServer } from './forget-exited-events.js';
import { routeKongPdkLoggerInThisProcess } from './pdk-logger.js';
import { addConfigEntityChecksInThisServer } from './schema-dump.js';
import { PLUGIN_NAME } from './meta.js';
import { ConfigEntityChecks } from '../config/schema.js';

/**
 * What kong-pdk starts for each plugin instance (the entry points export these as Plugin).
 * A config the plugin cannot use never fails a request: the instance stands aside
 * (config/refusal.ts) where a throwing constructor would make Kong answer 500.
 */

// kong-pdk would keep every event that ended in kong.response.exit (our 503s) forever,
// has no place for the config's checks across fields in the schema it dumps, never closes
// the plugin object on CloseInstance, and logs in ANSI colours on stdout.
forgetEventsOnExitInThisServer();
addConfigEntityChecksInThisServer(PLUGIN_NAME, ConfigEntityChecks);
closePluginsOnCloseInstanceInThisServer();
routeKongPdkLoggerInThisProcess();

/** A refused instance is unlisted when it is closed (CloseInstance), or else collected. */
const finalizer = new FinalizationRegistry<ConfigRefusal>((refusal) => refusal.close());

function start<T>(open: () => T, config: unknown, holder: object): T | ConfigRefusal {
  try {
    return open();
  } catch (err) {
    const refusal = new ConfigRefusal(bindingOf(config), err);
    finalizer.register(holder, refusal);
    return refusal;
  }
}

/** The plugin of plugins/: access phase only. */
export class StickySessionPlugin {
  protected readonly instance: StickySession | ConfigRefusal;

  constructor(config: unknown) {
    this.instance = start(() => this.open(config), config, this);
  }

  access(kong: KongPdk): Promise<void> {
    return this.instance.access(kong);
  }

  close(): void {
    this.instance.close();
  }

  protected open(config: unknown): StickySession {
    return new StickySession(config);
  }
}

/** The plugin of plugins-failover/: the same with the log phase, for change on failure. */
export class StickySessionFailoverPlugin extends StickySessionPlugin {
  async log(kong: KongPdk): Promise<void> {
    if (this.instance instanceof StickySessionWithFailover) await this.instance.log(kong);
  }

  protected override open(config: unknown): StickySession {
    return new StickySessionWithFailover(config);
  }
}
