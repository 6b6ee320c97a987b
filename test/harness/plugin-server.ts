/**
 * The plugin-server process as Kong manages it (runloop/plugin_servers/process.lua):
 *
 * - query (Kong's init, in the master process, full environment): `io.popen(query_cmd)`,
 *   i.e. `sh -c <query_cmd>`, stdout only, exit status ignored; the output must decode as
 *   JSON ("failed decoding plugin info: ..."), be a table ("not a plugin info table"),
 *   and Kong takes `(dump.Plugins or dump)[1]` only;
 * - start (worker 0's pluginserver_timer): `sh -c "exec <start_cmd>"` with stderr merged
 *   into stdout, both logged; the environment is the nginx worker's, which nginx has
 *   emptied except TZ and variables named by `env` directives (KONG_NGINX_MAIN_ENV);
 *   respawned when it exits, at most once a second, not after exit status 127;
 * - stop: SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import net from 'node:net';
import type { ServerCommands } from './dockerfile.js';
import type { PluginSchemaDump } from './kong-schema.js';

/** One entry of `--dump-all-plugins`, as Kong reads it. */
export interface PluginInfo {
  readonly Name: string;
  readonly Version: string;
  readonly Phases: readonly string[];
  readonly Priority: number;
  readonly Schema: PluginSchemaDump;
}

export interface QueryResult {
  /** The plugin Kong uses: the first of the dump. */
  readonly info: PluginInfo;
  /** The whole decoded dump. */
  readonly dump: unknown;
  readonly protocol: string;
  readonly stdout: string;
  readonly stderr: string;
}

/** Kong fails to start: the query command's output is not what Kong can use. */
export class PluginInfoError extends Error {
  override name = 'PluginInfoError';
  constructor(
    message: string,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(`${message}\n--- query stdout ---\n${stdout.slice(0, 2000)}\n--- query stderr ---\n${stderr.slice(0, 2000)}`);
  }
}

const VERSION_RE = /^\d+\.\d+\.\d+$/;

/** Runs the query command like Kong's io.popen and parses the dump like Kong 3.9+. */
export async function queryPluginInfo(
  queryCmd: string,
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<QueryResult> {
  const child = spawn('/bin/sh', ['-c', queryCmd], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: opts.env ?? process.env,
    cwd: opts.cwd ?? '/',
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (b: Buffer) => out.push(b));
  child.stderr.on('data', (b: Buffer) => err.push(b));
  const timeoutMs = opts.timeoutMs ?? 30_000;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new PluginInfoError(`query command timed out after ${timeoutMs} ms: ${queryCmd}`, Buffer.concat(out).toString(), Buffer.concat(err).toString()));
    }, timeoutMs);
    child.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
  const stdout = Buffer.concat(out).toString('utf8');
  const stderr = Buffer.concat(err).toString('utf8');

  let dump: unknown;
  try {
    dump = JSON.parse(stdout);
  } catch (e) {
    throw new PluginInfoError(`failed decoding plugin info: ${(e as Error).message}`, stdout, stderr);
  }
  if (dump === null || typeof dump !== 'object') {
    throw new PluginInfoError(`not a plugin info table: \n${queryCmd}\n${stdout}`, stdout, stderr);
  }
  const d = dump as { Protocol?: unknown; Plugins?: unknown };
  const protocol = typeof d.Protocol === 'string' ? d.Protocol : 'MsgPack:1';
  if (protocol !== 'MsgPack:1') throw new PluginInfoError(`harness: protocol ${protocol} is not emulated`, stdout, stderr);
  const list = (d.Plugins ?? dump) as unknown;
  const first = Array.isArray(list) ? list[0] : (list as Record<string, unknown>)['1'];
  if (first === null || typeof first !== 'object') {
    throw new PluginInfoError("attempt to index local 'info' (a nil value): the dump lists no plugin", stdout, stderr);
  }
  const info = first as Record<string, unknown>;
  if (typeof info.Name !== 'string') throw new PluginInfoError('plugin info has no Name', stdout, stderr);
  if (typeof info.Priority !== 'number' || !Number.isInteger(info.Priority)) {
    throw new PluginInfoError(
      `Plugin "${info.Name}" cannot be loaded because its PRIORITY field is not a valid integer number, got: "${String(info.Priority)}".`,
      stdout,
      stderr,
    );
  }
  if (typeof info.Version !== 'string' || !VERSION_RE.test(info.Version)) {
    throw new PluginInfoError(
      `Plugin "${info.Name}" cannot be loaded because its VERSION field does not follow the "x.y.z" format, got: "${String(info.Version)}".`,
      stdout,
      stderr,
    );
  }
  if (!Array.isArray(info.Phases)) throw new PluginInfoError('plugin info has no Phases array', stdout, stderr);
  if (info.Schema === null || typeof info.Schema !== 'object') throw new PluginInfoError('plugin info has no Schema', stdout, stderr);
  return { info: info as unknown as PluginInfo, dump, protocol, stdout, stderr };
}

const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess): void {
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of liveChildren) {
        try {
          c.kill('SIGKILL');
        } catch {
          /* already gone */
        }
      }
    });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export interface PluginServerProcessOptions {
  /** The plugin server's whole environment. */
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
  /** File receiving the merged stdout+stderr of every incarnation. */
  readonly logFile: string;
  /** Kong's own log lines about the process ("[pluginserver] started, pid ..."). */
  readonly kongLog: (level: 'notice' | 'err', message: string) => void;
}

/** Worker 0's pluginserver_timer for one plugin server. */
export class PluginServerProcess {
  private child: ChildProcess | null = null;
  private childExit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | null = null;
  private stopping = false;
  private supervisor: Promise<void> | null = null;
  private spawned: Array<(c: ChildProcess) => void> = [];
  private gaveUp = false;
  /** Number of processes started so far. */
  spawnCount = 0;

  constructor(
    readonly name: string,
    readonly commands: ServerCommands,
    private readonly opts: PluginServerProcessOptions,
  ) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts the supervision loop (spawns the first process at once). */
  start(): void {
    if (this.supervisor) return;
    this.supervisor = this.supervise();
  }

  private async supervise(): Promise<void> {
    let nextSpawn = 0;
    while (!this.stopping) {
      const now = Date.now();
      if (now < nextSpawn) await sleep(nextSpawn - now);
      if (this.stopping) break;
      this.opts.kongLog('notice', `[pluginserver] starting pluginserver process for ${this.name}`);
      const fd = openSync(this.opts.logFile, 'a');
      let child: ChildProcess;
      try {
        child = spawn('/bin/sh', ['-c', `exec ${this.commands.start}`], {
          stdio: ['pipe', fd, fd],
          env: this.opts.env,
          cwd: this.opts.cwd,
        });
      } finally {
        closeSync(fd);
      }
      track(child);
      child.on('error', () => {
        /* reported through exit */
      });
      this.child = child;
      this.spawnCount++;
      this.childExit = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
      nextSpawn = Date.now() + 1000;
      this.opts.kongLog('notice', `[pluginserver] started, pid ${child.pid ?? '?'}`);
      for (const cb of this.spawned.splice(0)) cb(child);
      const { code, signal } = await this.childExit;
      if (code === 127) {
        this.opts.kongLog(
          'err',
          `[pluginserver] external pluginserver "${this.name}" start command "${this.commands.start}" exited with "command not found"`,
        );
        this.gaveUp = true;
        break;
      }
      this.opts.kongLog(
        'notice',
        `external pluginserver '${this.name}' terminated: ${signal ? 'signal' : 'exit'} ${signal ?? String(code)}`,
      );
    }
    this.opts.kongLog('notice', `[pluginserver] exiting: pluginserver '${this.name}' not respawned.`);
  }

  /** Resolves when the socket accepts a connection from the current incarnation. */
  async waitReady(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const child = this.child;
    let exited = false;
    void this.childExit?.then(() => {
      exited = true;
    });
    for (;;) {
      if (await canConnect(this.commands.socket)) return;
      if (exited || this.gaveUp || this.stopping) {
        throw new Error(
          `plugin server (pid ${child?.pid ?? '?'}) exited before listening on ${this.commands.socket}\n--- server log ---\n${this.log().slice(-4000)}`,
        );
      }
      if (Date.now() > deadline) {
        throw new Error(
          `plugin server did not listen on ${this.commands.socket} within ${timeoutMs} ms\n--- server log ---\n${this.log().slice(-4000)}`,
        );
      }
      await sleep(25);
    }
  }

  /**
   * Kills the running process (as a crash or an OOM kill would) and lets the supervisor
   * respawn it (not earlier than 1 s after the previous spawn); resolves when the new one
   * listens.
   */
  async restart(signal: NodeJS.Signals = 'SIGTERM', readyTimeoutMs = 20_000): Promise<void> {
    const child = this.child;
    if (!child || !this.childExit) throw new Error('plugin server not running');
    const respawned = new Promise<ChildProcess>((resolve) => this.spawned.push(resolve));
    child.kill(signal);
    await this.childExit;
    await respawned;
    await this.waitReady(readyTimeoutMs);
  }

  /** Kills the current process and waits for it to die; the supervisor respawns it. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    const exit = this.childExit;
    if (!child || !exit || child.exitCode !== null || child.signalCode !== null) throw new Error('plugin server not running');
    this.killedPid = child.pid;
    child.kill(signal);
    await exit;
  }

  /** After kill(): resolves when a new process listens. */
  async waitRespawned(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.child?.pid === this.killedPid || this.child?.exitCode !== null || this.child?.signalCode !== null) {
      if (this.gaveUp || this.stopping) throw new Error('plugin server not respawned');
      if (Date.now() > deadline) throw new Error(`plugin server not respawned within ${timeoutMs} ms`);
      await sleep(20);
    }
    await this.waitReady(Math.max(1, deadline - Date.now()));
  }

  private killedPid: number | undefined;

  /** Kong's stop_pluginservers: SIGTERM (then SIGKILL after a grace period). */
  async stop(graceMs = 3000): Promise<void> {
    this.stopping = true;
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null && this.childExit) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await this.childExit;
      clearTimeout(timer);
    }
    await this.supervisor;
  }

  /** Everything the server printed (stdout and stderr merged), all incarnations. */
  log(): string {
    return existsSync(this.opts.logFile) ? readFileSync(this.opts.logFile, 'utf8') : '';
  }
}

function canConnect(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createConnection({ path: socketPath });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => {
      s.destroy();
      resolve(false);
    });
  });
}

const ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;

/**
 * The server log as a terminal would show it: kong-pdk's logger (node-color-log) draws each
 * line in pieces, going back up ("ESC[1A") and clearing ("ESC[K"); this replays that and
 * drops the colour codes, leaving one clean line per message.
 */
export function renderTerminalLog(raw: string): string {
  const out: string[] = [];
  for (const line of raw.split('\n')) {
    let rest = line;
    while (rest.startsWith('\x1b[1A')) {
      out.pop();
      rest = rest.slice(4);
    }
    out.push(rest.replace(ANSI, ''));
  }
  return out.filter((l) => l.trim() !== '').join('\n');
}
