/**
 * Capped exponential backoff with full jitter: the n-th delay is uniform in
 * [0, min(max, initial * 2^n)). Jitter keeps the gateway replicas of a cluster from
 * reconnecting to a restarted API server in lockstep. The cap is short (3 s) because a
 * process holds one list-and-watch per resource and namespace, not one per Service: its
 * retries are a few requests, and a change made once the API server answers again must
 * reach the view within seconds.
 */
export interface BackoffOptions {
  /** First ceiling, ms (default 250). */
  readonly initialMs?: number;
  /** Largest ceiling, ms (default 3 000). */
  readonly maxMs?: number;
  /** [0, 1) source; tests pass a fixed one. */
  readonly random?: () => number;
}

export class Backoff {
  private attempt = 0;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly random: () => number;

  constructor(options: BackoffOptions = {}) {
    this.initialMs = options.initialMs ?? 250;
    this.maxMs = options.maxMs ?? 3_000;
    this.random = options.random ?? Math.random;
  }

  /** The next delay; each call doubles the ceiling up to the cap. */
  next(): number {
    const ceiling = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    return Math.floor(this.random() * ceiling);
  }

  /** After progress: the next delay starts from the first ceiling again. */
  reset(): void {
    this.attempt = 0;
  }
}
