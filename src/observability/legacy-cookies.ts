import type { LegacyCookieConfig } from '../legacy/index.js';

/**
 * Requests decided with a legacy cookie (accept_legacy_cookies), per Kong service, format,
 * mode and result: `pinned` (the cookie chose the endpoint; the client got our token) or
 * `no-match` (it named no serving endpoint, and counted as no cookie). When `pinned` stays at
 * zero, the migration window can close. Plain numbers, read by prom-client at scrape time.
 */
export type LegacyResult = 'pinned' | 'no-match';

export interface LegacyCount {
  readonly service: string;
  readonly format: string;
  readonly mode: string;
  readonly result: LegacyResult;
  value: number;
}

const counts = new Map<string, LegacyCount>();

export function observeLegacyCookie(service: string, cookie: LegacyCookieConfig, result: LegacyResult): void {
  const key = `${service}\0${cookie.format}\0${cookie.mode}\0${result}`;
  const c = counts.get(key);
  if (c) c.value++;
  else counts.set(key, { service, format: cookie.format, mode: cookie.mode, result, value: 1 });
}

/** Counts so far. Live objects: read, do not keep. */
export function legacyCookieCounts(): Iterable<LegacyCount> {
  return counts.values();
}
