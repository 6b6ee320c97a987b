/**
 * Endpoints recently seen failing (change on failure): `setTarget` bypasses Kong's own
 * balancer, retries and health checks, so a pod that dies before the watcher hears of it
 * would fail every request pinned to it. A failed response marks its endpoint for a short
 * while; pinned sessions then move and new sessions avoid it. Process-local, like Kong's
 * passive health checks.
 */
export class FailureMarks {
  private readonly until = new Map<string, number>();

  constructor(
    private readonly holdMs: number,
    private readonly clock: () => number = Date.now,
  ) {}

  mark(endpointId: string): void {
    this.until.set(endpointId, this.clock() + this.holdMs);
  }

  readonly isFailing = (endpointId: string): boolean => {
    if (this.until.size === 0) return false;
    const until = this.until.get(endpointId);
    if (until === undefined) return false;
    if (until > this.clock()) return true;
    this.until.delete(endpointId);
    return false;
  };
}
