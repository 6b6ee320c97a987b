import type { BackendShare, Endpoint } from '../endpoints/types.js';
import { SmoothWeighted } from './smooth-weighted.js';

/**
 * The backend of a traffic split a new session goes to: smooth weighted round robin over the
 * backends with a weight and an endpoint to take it, so N new sessions split in exact
 * proportion to the weights, evenly interleaved (what KIC's upstream does per request, done
 * per session). Costs nothing to pinned sessions: only new sessions and re-pins ask.
 * A backend without a usable ready endpoint is skipped and its share goes to the others, as
 * an upstream with no target of that backend would do.
 */
export class WeightedSplit {
  private readonly order = new SmoothWeighted();

  /**
   * The chosen backend's candidates (`usable` of its ready endpoints), or undefined when no
   * backend with weight > 0 has one.
   */
  pick(backends: readonly BackendShare[], usable: (endpoints: readonly Endpoint[]) => readonly Endpoint[]): readonly Endpoint[] | undefined {
    const open: Array<{ readonly share: BackendShare; readonly candidates: readonly Endpoint[] }> = [];
    for (const share of backends) {
      if (share.weight <= 0) continue;
      const candidates = usable(share.ready);
      if (candidates.length > 0) open.push({ share, candidates });
    }
    return this.order.pick(open, (b) => b.share.key, (b) => b.share.weight)?.candidates;
  }
}
