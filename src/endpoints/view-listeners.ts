import { log } from '../log.js';
import type { EndpointSnapshot } from './types.js';

/**
 * Who is told of a source's new views. A listener that throws is logged and the others are
 * still told: one broken subscriber must not stop a view from reaching the rest.
 */
export class ViewListeners {
  private readonly listeners = new Set<(snapshot: EndpointSnapshot) => void>();

  /** Adds `listener`; returns its unsubscribe. The same function twice counts twice. */
  add(listener: (snapshot: EndpointSnapshot) => void): () => void {
    const subscription = (snapshot: EndpointSnapshot) => listener(snapshot);
    this.listeners.add(subscription);
    return () => this.listeners.delete(subscription);
  }

  /** Tells every listener of `snapshot`; `source` names it in the log of a failing one. */
  notify(snapshot: EndpointSnapshot, source: string): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(snapshot);
      } catch (err) {
        log.error({ source, err: err instanceof Error ? err.message : String(err) }, 'endpoint view listener failed');
      }
    }
  }

  clear(): void {
    this.listeners.clear();
  }
}
