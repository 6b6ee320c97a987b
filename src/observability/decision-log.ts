import type { Logger } from 'pino';
import { affinityStatus, type Decision } from '../affinity/decision.js';
import type { LogLevel } from '../log.js';
import { log } from '../log.js';
import { outcomeOf } from './decisions.js';
import { serviceName } from './service-names.js';

/**
 * Decision lines: one debug line per request, for an operator asking why a client moved.
 * Decided once per instance whether they are written, so the request path pays one
 * boolean test when they are not. Tokens never appear: a line names the endpoint, not
 * what the client sent or got.
 */

/**
 * The logger for an instance's decision lines, or undefined when they are not written:
 * `level` (the instance's log_level) overrides the process level for these lines.
 */
export function decisionLogger(level: LogLevel | null): Logger | undefined {
  const logger = level ? log.child({}, { level }) : log;
  return logger.isLevelEnabled('debug') ? logger : undefined;
}

export function logDecision(logger: Logger, d: Decision, service: string, source: string | undefined): void {
  const endpoint = 'endpoint' in d ? d.endpoint : undefined;
  logger.debug(
    {
      service,
      service_name: serviceName(service),
      source,
      decision: d.kind,
      outcome: outcomeOf(d),
      // HAProxy-style affinity status: what happened to the client's token.
      affinity: affinityStatus(d),
      pod: endpoint?.name,
      endpoint: endpoint?.id,
      condition: endpoint?.condition,
      fallback: 'fallback' in d && d.fallback ? true : undefined,
      reissued: d.kind === 'pin' ? d.reissue?.reason : undefined,
    },
    'decision',
  );
}
