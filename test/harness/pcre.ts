import { spawnSync } from 'node:child_process';

/**
 * Kong's `is_regex` validator compiles the value with ngx.re (PCRE2, 10.44 in Kong 3.9).
 * Here the same library decides, through Debian's pcre2grep (package pcre2-utils): exit 2
 * is a pattern that does not compile, 0 or 1 one that does (match or not).
 */
export function pcreCompiles(pattern: string): boolean {
  const r = spawnSync('pcre2grep', ['-e', pattern], { input: '', encoding: 'utf8' });
  if (r.error) {
    throw new Error(`pcre2grep is needed to check regular expressions as Kong does (apt-get install pcre2-utils): ${r.error.message}`);
  }
  if (r.status === 0 || r.status === 1) return true;
  if (r.status === 2 && /Error in command-line regex/.test(r.stderr)) return false;
  throw new Error(`pcre2grep failed (${r.status}): ${r.stderr.trim()}`);
}
