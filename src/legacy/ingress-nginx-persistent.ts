/**
 * ingress-nginx `persistent` affinity (balancer/sticky_persistent.lua over util/nodemap.lua):
 * the cookie's key is the hex MD5 of `<backend name><address:port>`, so it names one endpoint
 * for as long as that endpoint exists, whatever else changes. We honour it for every endpoint
 * that still serves: ready ones, and terminating ones still serving (ingress-nginx would have
 * dropped those; here their sessions stay until they stop serving, as our own tokens do).
 *
 * Cost: one MD5 per endpoint name, remembered across views; one map per view, built on the
 * first lookup after the view changed, never per request.
 */
import { createHash } from 'node:crypto';
import type { Endpoint, EndpointSnapshot } from '../endpoints/types.js';
import { nodeName } from './ingress-nginx.js';

/** The key ingress-nginx's nodemap gives `node` under `salt`: `ngx.md5(salt .. node)`. */
export function persistentKey(salt: string, node: string): string {
  return createHash('md5').update(salt + node).digest('hex');
}

export class PersistentMap {
  private indexed: EndpointSnapshot | undefined;
  private byKey = new Map<string, Endpoint>();
  /** node name -> its key; only the current view's names are kept. */
  private keys = new Map<string, string>();

  constructor(private readonly salt: string) {}

  /** The serving endpoint of `snapshot` whose key is `key`. */
  find(snapshot: EndpointSnapshot, key: string): Endpoint | undefined {
    if (snapshot !== this.indexed) this.rebuild(snapshot);
    return this.byKey.get(key);
  }

  private rebuild(snapshot: EndpointSnapshot): void {
    const keys = new Map<string, string>();
    const byKey = new Map<string, Endpoint>();
    // Ready first: if a name were ever listed twice, the ready endpoint holds it.
    for (const list of [snapshot.ready, snapshot.draining]) {
      for (const e of list) {
        const node = nodeName(e);
        const key = keys.get(node) ?? this.keys.get(node) ?? persistentKey(this.salt, node);
        keys.set(node, key);
        if (!byKey.has(key)) byKey.set(key, e);
      }
    }
    this.keys = keys;
    this.byKey = byKey;
    this.indexed = snapshot;
  }
}
