import type { Endpoint, EndpointSnapshot } from '../endpoints/types.js';
import type { TokenClaims, TokenCodec } from '../token.js';

/** What a token's claims resolved to, and in which state of the index. */
interface Resolved {
  readonly generation: number;
  readonly endpoint: Endpoint;
}

/** Index states, numbered across every index of the process. */
let generations = 0;

/**
 * Finds the endpoint a token refers to. Tokens carry a keyed ref, not the endpoint id, so
 * each snapshot gets a ref -> endpoint map per verifying key. Refs are remembered per
 * endpoint id across snapshots: a watch update that changes one endpoint of 5,000 costs
 * one HMAC per key, not 5,000. A snapshot derived from the indexed one (or the one it was
 * derived from: a request still deciding on the previous view) patches the maps with
 * what changed instead of rebuilding them.
 *
 * A returning client's claims remember the endpoint they resolved to until the index moves
 * to another snapshot: its decision then reads no per-endpoint structure at all, and costs
 * the same with 5,000 endpoints as with 3. The memo names a generation, not the snapshot,
 * so cached claims keep no old view alive.
 */
export class RefIndex {
  private refsById = new Map<string, string[]>();
  private indexed: EndpointSnapshot | undefined;
  private byRef: Array<Map<string, Endpoint>> = [];
  private generation = 0;

  constructor(private readonly codec: TokenCodec) {}

  /** The endpoint of `snapshot` that verified claims refer to. */
  resolve(snapshot: EndpointSnapshot, claims: TokenClaims): Endpoint | undefined {
    if (snapshot !== this.indexed) this.update(snapshot);
    const memo = claims.memo as Resolved | undefined;
    if (memo?.generation === this.generation) return memo.endpoint;
    const endpoint = this.lookup(snapshot, claims.keyIndex, claims.ref);
    if (endpoint) claims.memo = { generation: this.generation, endpoint } satisfies Resolved;
    return endpoint;
  }

  /** The endpoint of `snapshot` with this ref under key `keyIndex`. */
  lookup(snapshot: EndpointSnapshot, keyIndex: number, ref: string): Endpoint | undefined {
    if (snapshot !== this.indexed) this.update(snapshot);
    return this.byRef[keyIndex]?.get(ref);
  }

  private update(snapshot: EndpointSnapshot): void {
    this.generation = ++generations;
    const from = this.indexed;
    if (from && snapshot.delta?.base === from.byId) this.patch(from, snapshot, snapshot.delta.changed);
    else if (from?.delta && from.delta.base === snapshot.byId) this.patch(from, snapshot, from.delta.changed);
    else this.rebuild(snapshot);
  }

  /** `to` differs from the indexed `from` only in the endpoints of `ids`. */
  private patch(from: EndpointSnapshot, to: EndpointSnapshot, ids: readonly string[]): void {
    const keys = this.byRef.length;
    for (const id of ids) {
      const before = from.byId.get(id);
      const after = to.byId.get(id);
      if (before === after) continue;
      let refs = this.refsById.get(id);
      if (before && refs) {
        for (let k = 0; k < keys; k++) if (this.byRef[k]!.get(refs[k]!) === before) this.byRef[k]!.delete(refs[k]!);
      }
      if (!after) {
        this.refsById.delete(id);
        continue;
      }
      if (!refs) {
        refs = this.refsOf(id);
        this.refsById.set(id, refs);
      }
      for (let k = 0; k < keys; k++) this.byRef[k]!.set(refs[k]!, after);
    }
    this.indexed = to;
  }

  private rebuild(snapshot: EndpointSnapshot): void {
    const keys = this.codec.keyCount;
    const refsById = new Map<string, string[]>();
    const byRef = Array.from({ length: keys }, () => new Map<string, Endpoint>());
    for (const e of snapshot.byId.values()) {
      const refs = this.refsById.get(e.id) ?? this.refsOf(e.id);
      refsById.set(e.id, refs);
      for (let k = 0; k < keys; k++) byRef[k]!.set(refs[k]!, e);
    }
    // Only endpoints of the current snapshot are remembered: memory follows the view.
    this.refsById = refsById;
    this.byRef = byRef;
    this.indexed = snapshot;
  }

  private refsOf(id: string): string[] {
    const refs: string[] = [];
    for (let k = 0; k < this.codec.keyCount; k++) refs.push(this.codec.ref(id, k));
    return refs;
  }
}
