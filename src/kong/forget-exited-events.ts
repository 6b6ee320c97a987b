import { pdkServerOfThisProcess } from './pdk-server.js';
import { log } from '../log.js';

/**
 * kong-pdk 0.6 keeps each event (its pipes, its PDK proxy) in a map until the plugin's
 * final "ret" is stepped out. After `kong.response.exit` (or `error`) Kong ends the request
 * and never sends that Step, so every 503 this plugin answers used to leak about 800 bytes:
 * megabytes a second through an outage with `no_ready_endpoint: reject` or `strict`.
 * Patched here: an event is forgotten as its exit call goes out to Kong.
 */

/** The part of kong-pdk's Server (server.js) this touches. */
export interface PdkServerClass {
  readonly prototype: {
    events: Map<number, unknown>;
    HandleEvent(event: unknown): Promise<PdkReply>;
    step(data: unknown, isError: boolean): Promise<PdkReply>;
  };
}

interface PdkReply {
  readonly Data: unknown;
  readonly EventId: number;
}

/** PDK calls after which Kong sends nothing more for the event (kong-pdk's NON_RETURN_METHODS). */
const ENDS_THE_REQUEST = new Set(['kong.response.exit', 'kong.response.error']);
const patched = new WeakSet<object>();

export function forgetEventsOnExit(Server: PdkServerClass): void {
  const proto = Server.prototype;
  if (patched.has(proto)) return;
  if (typeof proto.HandleEvent !== 'function' || typeof proto.step !== 'function') {
    log.warn('kong-pdk changed: its Server has no HandleEvent/step to patch; 503 answers may leak memory');
    return;
  }
  patched.add(proto);
  const handleEvent = proto.HandleEvent;
  const step = proto.step;
  proto.HandleEvent = async function (this: PdkServerClass['prototype'], event) {
    return forgetIfEnded(this, await handleEvent.call(this, event));
  };
  proto.step = async function (this: PdkServerClass['prototype'], data, isError) {
    return forgetIfEnded(this, await step.call(this, data, isError));
  };
}

function forgetIfEnded(server: PdkServerClass['prototype'], reply: PdkReply): PdkReply {
  const method = (reply.Data as { Method?: unknown } | null | undefined)?.Method;
  if (typeof method === 'string' && ENDS_THE_REQUEST.has(method)) server.events.delete(reply.EventId);
  return reply;
}

/** Patches the Server class of the plugin server this module is loaded into, if any. */
export function forgetEventsOnExitInThisServer(): void {
  const Server = pdkServerOfThisProcess();
  if (Server) forgetEventsOnExit(Server as PdkServerClass);
}
