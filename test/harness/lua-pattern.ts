/**
 * Lua patterns, as Kong's schema `match`, `not_match`, `match_all`, `match_none` and
 * `match_any` validators use them (`value:match(pattern)`), evaluated by the real thing:
 * `string.find` in a `luajit` process (Kong runs on LuaJIT; Debian package `luajit`; the
 * binary is `$LUAJIT` if set).
 * Lua works on bytes: strings go over as UTF-8, positions come back as byte offsets.
 *
 * Cost: the schema validator is synchronous, so each check not seen before runs one
 * `luajit` (spawnSync, ~2 ms); results are cached per (string, pattern) for the life of the
 * process, and a plugin's configs repeat the same few values, so a test file pays a few
 * spawns. Nothing stays running, so nothing can be left behind. `luaFindAll` evaluates many
 * pairs in one process.
 */
import { spawnSync } from 'node:child_process';

export class LuaPatternError extends Error {
  override name = 'LuaPatternError';
}

/** The LuaJIT binary: `$LUAJIT`, else `luajit` on PATH. */
const luajitBin = (): string => process.env.LUAJIT || 'luajit';

export const luajitMissing = (bin: string): string =>
  `${bin} not found: the harness evaluates Kong schema patterns (match, not_match, ...) with ` +
  "LuaJIT's string.find, as Kong does. Install it: `apt-get install -y luajit` (Debian/Ubuntu), " +
  '`brew install luajit` (macOS), or point LUAJIT at the binary.';

export type LuaFindResult = { start: number; end: number } | null;

// Reads `<byte length>\n<bytes>` pairs (subject, pattern) from stdin until EOF and prints
// one line per pair: "<start> <end>" (1-based, inclusive), "nil", or "error <message>".
const SCRIPT = `
local out = {}
while true do
  local len = io.read('*l')
  if not len then break end
  local s = io.read(tonumber(len)) or ''
  local p = io.read(tonumber(io.read('*l'))) or ''
  local ok, a, b = pcall(string.find, s, p)
  if not ok then out[#out + 1] = 'error ' .. (tostring(a):gsub('\\n', ' '))
  elseif a then out[#out + 1] = a .. ' ' .. b
  else out[#out + 1] = 'nil' end
end
io.write(table.concat(out, '\\n'), '\\n')
`;

type Outcome = LuaFindResult | LuaPatternError;

const cache = new Map<string, Outcome>();
const keyOf = (s: string, pattern: string): string => JSON.stringify([s, pattern]);

function runLuajit(pairs: ReadonlyArray<readonly [string, string]>): Outcome[] {
  const input = Buffer.concat(
    pairs.flatMap(([s, p]) => {
      const sb = Buffer.from(s, 'utf8');
      const pb = Buffer.from(p, 'utf8');
      return [Buffer.from(`${sb.length}\n`), sb, Buffer.from(`${pb.length}\n`), pb];
    }),
  );
  const bin = luajitBin();
  const r = spawnSync(bin, ['-e', SCRIPT], { input, encoding: 'utf8', timeout: 10_000 });
  if (r.error) {
    if ((r.error as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(luajitMissing(bin));
    throw r.error;
  }
  if (r.status !== 0) throw new Error(`luajit exited with ${String(r.status ?? r.signal)}: ${r.stderr}`);
  const lines = r.stdout.split('\n').slice(0, pairs.length);
  if (lines.length !== pairs.length) throw new Error(`luajit answered ${lines.length} of ${pairs.length} pattern checks: ${r.stdout}`);
  return lines.map((line) => {
    if (line === 'nil') return null;
    if (line.startsWith('error ')) return new LuaPatternError(line.slice('error '.length));
    const [a, b] = line.split(' ').map(Number) as [number, number];
    return { start: a - 1, end: b };
  });
}

/**
 * `string.find(s, pattern)` for each pair, in one luajit process for those not cached: the
 * 0-based byte range `[start, end)` of the first match, null, or the error Lua raised.
 */
export function luaFindAll(pairs: ReadonlyArray<readonly [string, string]>): Outcome[] {
  const missing = pairs.filter(([s, p]) => !cache.has(keyOf(s, p)));
  if (missing.length > 0) {
    const results = runLuajit(missing);
    missing.forEach(([s, p], i) => cache.set(keyOf(s, p), results[i] as Outcome));
  }
  return pairs.map(([s, p]) => cache.get(keyOf(s, p)) as Outcome);
}

/** `string.find(s, pattern)`: the 0-based byte range of the first match, or null; throws a malformed pattern's error. */
export function luaFind(s: string, pattern: string): LuaFindResult {
  const out = luaFindAll([[s, pattern]])[0] as Outcome;
  if (out instanceof LuaPatternError) throw new LuaPatternError(out.message);
  return out;
}

/** `s:match(pattern) ~= nil` */
export function luaMatches(s: string, pattern: string): boolean {
  return luaFind(s, pattern) !== null;
}
