/**
 * Lua patterns, as Kong's schema `match`, `not_match`, `match_all`, `match_none` and
 * `match_any` validators use them (`value:match(pattern)`), evaluated by the real thing:
 * `string.find` in a `luajit` process (Kong runs on LuaJIT; Debian package `luajit`; the
 * binary is `$LUAJIT` if set). Lua works on bytes: strings go over as UTF-8, positions come
 * back as byte offsets.
 *
 * The schema validator is synchronous and may check thousands of values (a config storm),
 * so one luajit per check (~2-5 ms a spawn) is too slow: one long-lived luajit answers a
 * line protocol, driven from a worker thread that the caller waits for with Atomics.wait
 * (~0.1 ms a check). The worker is unref'd; luajit exits on EOF of its stdin, which the OS
 * closes with this process whichever way it ends, so nothing is left behind.
 */
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';

export class LuaPatternError extends Error {
  override name = 'LuaPatternError';
}

export const luajitMissing = (bin: string): string =>
  `${bin} not found: the harness evaluates Kong schema patterns (match, not_match, ...) with ` +
  "LuaJIT's string.find, as Kong does. Install it: `apt-get install -y luajit` (Debian/Ubuntu), " +
  '`brew install luajit` (macOS), or point LUAJIT at the binary.';

export type LuaFindResult = { start: number; end: number } | null;
type Outcome = LuaFindResult | LuaPatternError;

// Per check: a line "<subject bytes> <pattern bytes>", then both, back to back. Answer: one
// line, "<start> <end>" (1-based, inclusive), "nil", or "error <message>".
// (io.read(0) would wait for the next byte: empty strings are not read.)
const LUA_SERVER = `
local function take(n)
  if n == 0 then return '' end
  return io.read(n) or ''
end
while true do
  local header = io.read('*l')
  if not header then break end
  local ls, lp = header:match('^(%d+) (%d+)$')
  local s = take(tonumber(ls))
  local p = take(tonumber(lp))
  local ok, a, b = pcall(string.find, s, p)
  if not ok then io.write('error ', (tostring(a):gsub('\\n', ' ')), '\\n')
  elseif a then io.write(a, ' ', b, '\\n')
  else io.write('nil\\n') end
  io.flush()
end
`;

// The worker owns luajit (async I/O); each request { input, n } is answered with n lines, or
// an error, posted on the port and signalled through the shared flag.
const WORKER = `
const { spawn } = require('node:child_process');
const { bin, script, shared, port } = require('node:worker_threads').workerData;
const flag = new Int32Array(shared);
let child = null;
let failure = null;
let stderr = '';
let pending = '';
let waiting = null;
function reply(msg) {
  port.postMessage(msg);
  Atomics.store(flag, 0, 1);
  Atomics.notify(flag, 0);
}
function fail(text) {
  failure = failure || text;
  child = null;
  if (waiting) {
    waiting = null;
    reply({ error: failure });
  }
}
function start() {
  child = spawn(bin, ['-e', script], { stdio: ['pipe', 'pipe', 'pipe'] });
  Atomics.store(flag, 1, child.pid || 0);
  child.on('error', (err) => fail(err.code === 'ENOENT' ? 'ENOENT' : String(err)));
  child.on('exit', (code, signal) => fail('luajit exited with ' + (signal || code) + ': ' + stderr));
  child.stdin.on('error', () => {});
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => (stderr += d));
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d) => {
    pending += d;
    let i;
    while (waiting && (i = pending.indexOf('\\n')) >= 0) {
      waiting.lines.push(pending.slice(0, i));
      pending = pending.slice(i + 1);
      if (waiting.lines.length === waiting.n) {
        const lines = waiting.lines;
        waiting = null;
        reply({ lines });
      }
    }
  });
}
port.on('message', ({ input, n }) => {
  if (failure) return reply({ error: failure });
  if (!child) start();
  waiting = { n, lines: [] };
  child.stdin.write(Buffer.from(input));
});
`;

const ANSWER_TIMEOUT_MS = 15_000;

interface Bridge {
  readonly bin: string;
  readonly worker: Worker;
  readonly port: MessagePort;
  readonly flag: Int32Array;
}

let bridge: Bridge | null = null;

function bridgeFor(bin: string): Bridge {
  if (bridge?.bin === bin) return bridge;
  if (bridge) {
    bridge.port.close();
    void bridge.worker.terminate();
  }
  // [0]: answer-ready flag, [1]: luajit's pid
  const shared = new SharedArrayBuffer(8);
  const { port1, port2 } = new MessageChannel();
  const worker = new Worker(WORKER, {
    eval: true,
    workerData: { bin, script: LUA_SERVER, shared, port: port2 },
    transferList: [port2],
  });
  worker.unref();
  port1.unref();
  bridge = { bin, worker, port: port1, flag: new Int32Array(shared) };
  return bridge;
}

/** Sends the checks to luajit and blocks until its n answer lines are back. */
function askLuajit(input: Buffer, n: number): string[] {
  const bin = process.env.LUAJIT || 'luajit';
  const b = bridgeFor(bin);
  Atomics.store(b.flag, 0, 0);
  b.port.postMessage({ input, n });
  if (Atomics.wait(b.flag, 0, 0, ANSWER_TIMEOUT_MS) === 'timed-out') {
    throw new Error(`${bin} gave no answer within ${ANSWER_TIMEOUT_MS} ms`);
  }
  const msg = receiveMessageOnPort(b.port)?.message as { lines?: string[]; error?: string } | undefined;
  if (!msg) throw new Error(`${bin}: no answer from the luajit worker`);
  if (msg.error === 'ENOENT') throw new Error(luajitMissing(bin));
  if (msg.error !== undefined) throw new Error(msg.error);
  return msg.lines as string[];
}

/** The pid of the luajit answering this process's checks, once one was started. */
export function luajitPid(): number | undefined {
  return bridge ? Atomics.load(bridge.flag, 1) || undefined : undefined;
}

const cache = new Map<string, Outcome>();
const keyOf = (s: string, pattern: string): string => JSON.stringify([s, pattern]);

function parse(line: string): Outcome {
  if (line === 'nil') return null;
  if (line.startsWith('error ')) return new LuaPatternError(line.slice('error '.length));
  const [a, b] = line.split(' ').map(Number) as [number, number];
  return { start: a - 1, end: b };
}

/**
 * `string.find(s, pattern)` for each pair, in one exchange with luajit for those not
 * cached: the 0-based byte range `[start, end)` of the first match, null, or Lua's error.
 */
export function luaFindAll(pairs: ReadonlyArray<readonly [string, string]>): Outcome[] {
  const missing = [...new Map(pairs.map(([s, p]) => [keyOf(s, p), [s, p] as const])).entries()].filter(([k]) => !cache.has(k));
  if (missing.length > 0) {
    const input = Buffer.concat(
      missing.flatMap(([, [s, p]]) => {
        const sb = Buffer.from(s, 'utf8');
        const pb = Buffer.from(p, 'utf8');
        return [Buffer.from(`${sb.length} ${pb.length}\n`), sb, pb];
      }),
    );
    const lines = askLuajit(input, missing.length);
    missing.forEach(([k], i) => cache.set(k, parse(lines[i] as string)));
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
