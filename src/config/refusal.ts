import type { Decision } from '../affinity/decision.js';
import { ConfigError } from './resolve.js';
import { log } from '../log.js';
import { reportConfigError } from '../observability/config-errors.js';
import { observeDecision } from '../observability/index.js';

/** Errors about a lasting condition are repeated at most this often per instance. */
const REPEAT_MS = 10_000;

const CONFIG_ERROR: Decision = { kind: 'passthrough', reason: 'config-error' };

/**
 * An instance whose config Kong accepted but the plugin cannot use: a rule Kong's schema
 * language cannot express (see resolve.ts). Refusing it at instance start would make Kong
 * answer 500 to every request of the route, so the instance stands aside instead: it reads
 * and sets nothing, Kong balances as if the plugin were absent, and the error naming the
 * field is logged (at error level, at most every 10 s), counted and listed in the status view.
 */
export class ConfigRefusal {
  readonly field: string;
  readonly message: string;
  private readonly unlist: () => void;
  private loggedAt: number;

  constructor(
    readonly binding: string,
    err: unknown,
  ) {
    const error = err instanceof ConfigError ? err : new ConfigError('', `instance could not start: ${err instanceof Error ? err.message : String(err)}`);
    this.field = error.field;
    this.message = error.message;
    this.unlist = reportConfigError({ service: binding, field: error.field, message: error.message, since: Date.now() });
    this.loggedAt = Date.now();
    this.logError();
  }

  /** One request: counted as a decision left to Kong, the error repeated now and then. */
  async access(): Promise<void> {
    observeDecision(CONFIG_ERROR, this.binding);
    const now = Date.now();
    if (now - this.loggedAt < REPEAT_MS) return;
    this.loggedAt = now;
    this.logError();
  }

  close(): void {
    this.unlist();
  }

  private logError(): void {
    log.error(
      { service: this.binding, field: this.field },
      `${this.message}; the plugin stands aside for this instance: Kong balances its requests, no session is kept`,
    );
  }
}
