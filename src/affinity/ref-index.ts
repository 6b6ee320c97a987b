import type { Endpoint, EndpointSnapshot } from '../endpoints/types.js';
import type { TokenCodec } from '../token.js';

/**
 * Finds the endpoint a token refers to. Tokens carry a keyed ref, not the endpoint id, so
 * each snapshot gets a ref -> endpoint map per verifying key. Refs are remembered per
 * endpoint id across snapshots: a watch update that changes one endpoint of 5,000 costs
 * one HMAC per key, not 5,000.
 */
export class RefIndex {
  private refsById = new Map<string, string[]>();
  private indexed: EndpointSnapshot | undefined;
  private byRef: Array<Map<string, Endpoint>> = [];

  constructor(private readonly codec: TokenCodec) {}

  lookup(snapshot: EndpointSnapshot, keyIndex: number, ref: string): Endpoint | undefined {
    if (snapshot !== this.indexed) this.rebuild(snapshot);
    return this.byRef[keyIndex]?.get(ref);
  }

  private rebuild(snapshot: EndpointSnapshot): void {
    const keys = this.codec.keyCount;
    const refsById = new Map<string, string[]>();
    const byRef = Array.from({ length: keys }, () => new Map<string, Endpoint>());
    for (const e of snapshot.byId.values()) {
      let refs = this.refsById.get(e.id);
      if (!refs) {
        refs = [];
        for (let k = 0; k < keys; k++) refs.push(this.codec.ref(e.id, k));
      }
      refsById.set(e.id, refs);
      for (let k = 0; k < keys; k++) byRef[k]!.set(refs[k]!, e);
    }
    // Only endpoints of the current snapshot are remembered: memory follows the view.
    this.refsById = refsById;
    this.byRef = byRef;
    this.indexed = snapshot;
  }
}
