/**
 * Plugin instances whose config Kong accepted but the plugin cannot use (a rule Kong's schema
 * language cannot express): they stand aside and Kong balances. Listed here while they live,
 * for the metrics (sticky_session_config_errors) and the status view.
 */
export interface ConfigErrorEntry {
  /** The Kong service (or route) the instance runs for, as decision counts name it. */
  readonly service: string;
  /** The config field at fault, e.g. `targets[2]`. */
  readonly field: string;
  readonly message: string;
  /** When the instance started, ms since the epoch. */
  readonly since: number;
}

const live = new Set<ConfigErrorEntry>();

/** Lists an instance's refused config; the returned function unlists it (instance closed). */
export function reportConfigError(entry: ConfigErrorEntry): () => void {
  live.add(entry);
  return () => live.delete(entry);
}

/** The refused configs of live instances, one entry per instance (each worker has its own). */
export function configErrors(): readonly ConfigErrorEntry[] {
  return [...live];
}
