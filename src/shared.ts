/**
 * Process-wide, reference-counted objects keyed by what they serve.
 *
 * Kong starts one plugin instance per nginx worker (and one per config version), all in
 * this one Node process. Watches, token caches and balancer state must be shared by them
 * instead of being owned by an instance: the first holder creates, the last one disposes.
 */
export class SharedRegistry<T> {
  private readonly entries = new Map<string, { value: T; holders: number }>();

  constructor(private readonly dispose: (value: T) => void = () => {}) {}

  acquire(key: string, create: () => T): Lease<T> {
    let entry = this.entries.get(key);
    if (!entry) {
      entry = { value: create(), holders: 0 };
      this.entries.set(key, entry);
    }
    entry.holders++;
    const held = entry;
    let released = false;
    return {
      value: held.value,
      release: () => {
        if (released) return;
        released = true;
        if (--held.holders === 0 && this.entries.get(key) === held) {
          this.entries.delete(key);
          this.dispose(held.value);
        }
      },
    };
  }

  get(key: string): T | undefined {
    return this.entries.get(key)?.value;
  }

  /** Keys currently held, for status and leak tests. */
  keys(): string[] {
    return [...this.entries.keys()];
  }

  /** Key and value of every entry currently held, for status pages and metrics. */
  *held(): IterableIterator<[string, T]> {
    for (const [key, entry] of this.entries) yield [key, entry.value];
  }
}

export interface Lease<T> {
  readonly value: T;
  /** Idempotent. */
  release(): void;
}
