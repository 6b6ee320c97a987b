import type { EndpointSnapshot } from '../endpoints/types.js';
import type { KongPdk } from '../kong/pdk.js';
import type { FailureMarks } from './failure-marks.js';

/**
 * The log phase of change on failure. Kong runs it after the response, in a timer, on saved
 * request data: one PDK call (the status) for a good response, a second one (Kong's log
 * record, for the upstream address tried) only for a failed one.
 */
export async function recordFailure(
  kong: KongPdk,
  snapshot: EndpointSnapshot | undefined,
  marks: FailureMarks,
  failureStatuses: ReadonlySet<number>,
): Promise<void> {
  if (!snapshot) return;
  const status = await kong.response.getStatus();
  if (typeof status !== 'number' || !failureStatuses.has(status)) return;
  const serialized = await kong.log.serialize();
  const tries = parseTries(serialized);
  const last = tries[tries.length - 1];
  if (!last) return;
  for (const e of snapshot.byId.values()) {
    if (e.host === last.ip && e.port === last.port) marks.mark(e.id);
  }
}

interface Try {
  readonly ip: string;
  readonly port: number;
}

function parseTries(serialized: unknown): Try[] {
  if (typeof serialized !== 'string') return [];
  try {
    const record = JSON.parse(serialized) as { tries?: Array<{ ip?: unknown; port?: unknown }> };
    return (record.tries ?? []).flatMap((t) =>
      typeof t.ip === 'string' && typeof t.port === 'number' ? [{ ip: t.ip, port: t.port }] : [],
    );
  } catch {
    return [];
  }
}
