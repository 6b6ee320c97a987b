/**
 * The plugin-server commands exactly as the image runs them: read from the Dockerfile's
 * `ENV` instructions (final stage), with the image's paths mapped onto this checkout, so
 * that what the harness starts is what Kong starts in the container.
 *
 * Kong (conf_loader, 3.9+) reads `KONG_PLUGINSERVER_NAMES` and, per name with dashes
 * turned into underscores, `KONG_PLUGINSERVER_<NAME>_SOCKET`, `_START_CMD`, `_QUERY_CMD`.
 * It runs start_cmd as `sh -c "exec <start_cmd>"` (ngx.pipe.spawn, stderr merged into
 * stdout) and query_cmd with io.popen (sh, stdout only).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file lives in test/harness/). */
export const REPO_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DOCKERFILE = path.join(REPO_DIR, 'Dockerfile');

/** Paths inside the image and what they become in a local run. */
export const IMAGE_NODE = '/usr/local/bin/node';
export const IMAGE_APP_DIR = '/opt/sticky-session';
export const IMAGE_KONG_PREFIX = '/usr/local/kong';

export const PLUGIN_NAME = 'sticky-session';

export interface ServerCommands {
  /** Shell command Kong spawns as `sh -c "exec <start>"`. */
  readonly start: string;
  /** Shell command Kong runs with io.popen; stdout must be the plugin-info JSON. */
  readonly query: string;
  /** Unix socket Kong connects to. */
  readonly socket: string;
}

export class DockerfileError extends Error {
  override name = 'DockerfileError';
}

/** Joins backslash-continued lines into logical instructions, dropping comment lines. */
export function logicalLines(text: string): string[] {
  const out: string[] = [];
  let current: string | null = null;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw;
    const trimmed = line.trim();
    // Comment lines are ignored, also inside a continuation (Docker does the same).
    if (trimmed.startsWith('#')) continue;
    if (current === null && trimmed === '') continue;
    const continued = /\\\s*$/.test(line);
    const body = continued ? line.replace(/\\\s*$/, '') : line;
    current = current === null ? body : current + body;
    if (!continued) {
      out.push(current);
      current = null;
    }
  }
  if (current !== null && current.trim() !== '') out.push(current);
  return out;
}

/**
 * Splits the argument text of an ENV instruction into words, honouring quotes and escapes,
 * and expands `$VAR` / `${VAR}` outside single quotes from `vars` (Docker: the values from
 * before this instruction).
 */
function envWords(text: string, vars: ReadonlyMap<string, string>): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let i = 0;
  const expandAt = (): void => {
    // text[i] === '$'
    const m = /^\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))/.exec(text.slice(i));
    if (!m) {
      word += '$';
      i++;
      return;
    }
    word += vars.get((m[1] ?? m[2]) as string) ?? '';
    i += m[0].length;
  };
  while (i < text.length) {
    const c = text[i] as string;
    if (c === ' ' || c === '\t') {
      if (inWord) {
        words.push(word);
        word = '';
        inWord = false;
      }
      i++;
      continue;
    }
    inWord = true;
    if (c === '"') {
      i++;
      while (i < text.length && text[i] !== '"') {
        if (text[i] === '\\' && i + 1 < text.length && ['"', '\\', '$'].includes(text[i + 1] as string)) {
          word += text[i + 1];
          i += 2;
        } else if (text[i] === '$') {
          expandAt();
        } else {
          word += text[i];
          i++;
        }
      }
      if (i >= text.length) throw new DockerfileError(`unterminated double quote in ENV ${text}`);
      i++;
    } else if (c === "'") {
      i++;
      while (i < text.length && text[i] !== "'") word += text[i++];
      if (i >= text.length) throw new DockerfileError(`unterminated single quote in ENV ${text}`);
      i++;
    } else if (c === '\\' && i + 1 < text.length) {
      word += text[i + 1];
      i += 2;
    } else if (c === '$') {
      expandAt();
    } else {
      word += c;
      i++;
    }
  }
  if (inWord) words.push(word);
  return words;
}

/**
 * The environment set by `ENV` instructions of the final stage of a Dockerfile (the one
 * the image runs), in order; later instructions override earlier ones.
 */
export function parseDockerfileEnv(text: string): Map<string, string> {
  let env = new Map<string, string>();
  for (const line of logicalLines(text)) {
    const m = /^\s*([A-Za-z]+)(?:\s+(.*))?$/s.exec(line);
    if (!m) continue;
    const instruction = (m[1] as string).toUpperCase();
    const rest = m[2] ?? '';
    if (instruction === 'FROM') {
      env = new Map();
      continue;
    }
    if (instruction !== 'ENV') continue;
    // All substitutions in one instruction see the values from before it.
    const before = new Map(env);
    const firstWord = /^\s*(\S+)/.exec(rest)?.[1];
    if (firstWord === undefined) throw new DockerfileError('ENV without arguments');
    if (!firstWord.includes('=')) {
      // Legacy form: ENV KEY value with spaces
      const legacy = /^\s*(\S+)\s+(.*)$/s.exec(rest);
      if (!legacy) throw new DockerfileError(`cannot parse ENV ${rest}`);
      env.set(legacy[1] as string, envWords(legacy[2] as string, before).join(' '));
      continue;
    }
    for (const w of envWords(rest.trim(), before)) {
      const eq = w.indexOf('=');
      if (eq <= 0) throw new DockerfileError(`ENV word without '=': ${w}`);
      env.set(w.slice(0, eq), w.slice(eq + 1));
    }
  }
  return env;
}

export function readDockerfileEnv(dockerfile = DOCKERFILE): Map<string, string> {
  return parseDockerfileEnv(readFileSync(dockerfile, 'utf8'));
}

/** Kong's conf_loader key prefix for a plugin server name. */
export function pluginServerEnvPrefix(name: string): string {
  return `KONG_PLUGINSERVER_${name.toLowerCase().replace(/-/g, '_').toUpperCase()}`;
}

export interface KongPluginServerEnv {
  /** KONG_PLUGINS, split on commas. */
  readonly plugins: string[];
  /** KONG_PLUGINSERVER_NAMES, split on commas. */
  readonly pluginServerNames: string[];
  readonly socket: string | undefined;
  readonly startCmd: string | undefined;
  readonly queryCmd: string | undefined;
  /** Every KONG_PLUGINSERVER_* and KONG_PLUGINS value as written. */
  readonly raw: Record<string, string>;
}

function splitList(v: string | undefined): string[] {
  return (v ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** The `KONG_PLUGINSERVER_*` and `KONG_PLUGINS` values the Dockerfile sets for `name`. */
export function kongPluginServerEnv(name = PLUGIN_NAME, dockerfile = DOCKERFILE): KongPluginServerEnv {
  const env = readDockerfileEnv(dockerfile);
  const raw: Record<string, string> = {};
  for (const [k, v] of env) if (k.startsWith('KONG_PLUGINSERVER_') || k === 'KONG_PLUGINS') raw[k] = v;
  const prefix = pluginServerEnvPrefix(name);
  return {
    plugins: splitList(env.get('KONG_PLUGINS')),
    pluginServerNames: splitList(env.get('KONG_PLUGINSERVER_NAMES')),
    socket: env.get(`${prefix}_SOCKET`),
    startCmd: env.get(`${prefix}_START_CMD`),
    queryCmd: env.get(`${prefix}_QUERY_CMD`),
    raw,
  };
}

/** Single-quotes a word for sh when it needs it. */
export function shellQuote(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** Splits a simple command line (no quoting in the Dockerfile's commands) into words. */
function commandWords(cmd: string): string[] {
  if (/['"\\$`;&|<>()]/.test(cmd)) {
    throw new DockerfileError(`command uses shell syntax the harness does not remap: ${cmd}`);
  }
  return cmd.trim().split(/\s+/);
}

function mapPath(word: string, mapping: ReadonlyArray<readonly [string, string]>): string {
  for (const [from, to] of mapping) {
    if (word === from) return to;
    if (word.startsWith(from + '/')) return to + word.slice(from.length);
  }
  return word;
}

function mapCommand(cmd: string, mapping: ReadonlyArray<readonly [string, string]>): string[] {
  return commandWords(cmd).map((w) => mapPath(w, mapping));
}

function setOption(words: string[], names: readonly string[], value: string, cmd: string): string[] {
  const out = [...words];
  const i = out.findIndex((w) => names.includes(w));
  if (i < 0 || i + 1 >= out.length) {
    throw new DockerfileError(`command has no ${names[0]} option to replace: ${cmd}`);
  }
  out[i + 1] = value;
  return out;
}

/** The directory the start command makes the server listen in (kong-pdk's default otherwise). */
function imageKongPrefix(startCmd: string): string {
  const words = commandWords(startCmd);
  const i = words.findIndex((w) => (PREFIX_FLAGS as readonly string[]).includes(w));
  return i >= 0 && i + 1 < words.length ? (words[i + 1] as string) : IMAGE_KONG_PREFIX;
}

/**
 * Image path -> local path, most specific first: the node binary, the app directory, Kong's
 * prefix /usr/local/kong and whatever directory the start command passes as --kong-prefix
 * (the socket lives there; each emulator gets its own).
 */
function pathMapping(repoDir: string, prefixDir: string, startCmd: string): Array<readonly [string, string]> {
  const imagePrefix = imageKongPrefix(startCmd).replace(/\/+$/, '');
  if (imagePrefix === '') throw new DockerfileError('--kong-prefix / cannot be mapped to a private directory');
  const mapping: Array<readonly [string, string]> = [
    [IMAGE_NODE, process.execPath],
    [IMAGE_APP_DIR, repoDir],
    [IMAGE_KONG_PREFIX, prefixDir],
  ];
  if (imagePrefix !== IMAGE_KONG_PREFIX) mapping.push([imagePrefix, prefixDir]);
  return mapping.sort((a, b) => b[0].length - a[0].length);
}

function requireEnv(e: KongPluginServerEnv, name: string): { socket: string; startCmd: string; queryCmd: string } {
  const prefix = pluginServerEnvPrefix(name);
  if (!e.pluginServerNames.includes(name)) {
    throw new DockerfileError(`KONG_PLUGINSERVER_NAMES does not list ${name}: ${e.pluginServerNames.join(',')}`);
  }
  if (!e.plugins.includes(name)) throw new DockerfileError(`KONG_PLUGINS does not list ${name}: ${e.plugins.join(',')}`);
  if (!e.socket) throw new DockerfileError(`${prefix}_SOCKET is not set`);
  if (!e.startCmd) throw new DockerfileError(`${prefix}_START_CMD is not set`);
  if (!e.queryCmd) throw new DockerfileError(`${prefix}_QUERY_CMD is not set`);
  return { socket: e.socket, startCmd: e.startCmd, queryCmd: e.queryCmd };
}

/**
 * The environment nginx leaves its workers, hence the plugin server Kong spawns from worker
 * 0: TZ, plus the variables of `env` directives, which Kong writes from
 * KONG_NGINX_MAIN_ENV as `env <value>;` (so "A; env B" declares A and B). `env X=v` sets X.
 */
export function nginxWorkerEnv(containerEnv: Readonly<Record<string, string | undefined>>, mainEnv?: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (containerEnv.TZ !== undefined) out.TZ = containerEnv.TZ;
  const directive = mainEnv ?? containerEnv.KONG_NGINX_MAIN_ENV;
  if (!directive) return out;
  for (const part of `env ${directive}`.split(';')) {
    const m = /^\s*env\s+(\S+)\s*$/.exec(part);
    if (!m) continue;
    const decl = m[1] as string;
    const eq = decl.indexOf('=');
    if (eq > 0) out[decl.slice(0, eq)] = decl.slice(eq + 1);
    else if (containerEnv[decl] !== undefined) out[decl] = containerEnv[decl] as string;
  }
  return out;
}

export interface KongServerCommandsOptions {
  /** Local directory standing for /opt/sticky-session (default: this checkout). */
  readonly repoDir?: string;
  /** Local directory standing for Kong's prefix /usr/local/kong. */
  readonly prefixDir: string;
  readonly dockerfile?: string;
  readonly name?: string;
}

/**
 * The sticky-session plugin server's start command, query command and socket as the image
 * runs them, with /usr/local/bin/node, /opt/sticky-session and /usr/local/kong mapped to
 * process.execPath, `repoDir` and `prefixDir`.
 */
export function kongServerCommands(opts: KongServerCommandsOptions): ServerCommands {
  const name = opts.name ?? PLUGIN_NAME;
  const e = requireEnv(kongPluginServerEnv(name, opts.dockerfile), name);
  const mapping = pathMapping(opts.repoDir ?? REPO_DIR, opts.prefixDir, e.startCmd);
  return {
    start: mapCommand(e.startCmd, mapping).map(shellQuote).join(' '),
    query: mapCommand(e.queryCmd, mapping).map(shellQuote).join(' '),
    socket: mapPath(e.socket, mapping),
  };
}

export interface PluginServerCommandsOptions {
  /** The plugins directory to serve instead of the image's. */
  readonly pluginsDir: string;
  readonly prefixDir: string;
  /** Socket file name inside prefixDir (default: the Dockerfile's). */
  readonly sockName?: string;
  readonly repoDir?: string;
  readonly dockerfile?: string;
}

const PLUGINS_DIR_FLAGS = ['--plugins-directory', '-d', '-plugins-directory'] as const;
const SOCK_NAME_FLAGS = ['--sock-name'] as const;
const PREFIX_FLAGS = ['--kong-prefix', '-p', '-kong-prefix'] as const;

/**
 * The Dockerfile's own start and query commands with only the plugins directory (and
 * socket name) replaced: fixture plugins run exactly as the real one does.
 */
export function pluginServerCommands(opts: PluginServerCommandsOptions): ServerCommands {
  const e = requireEnv(kongPluginServerEnv(PLUGIN_NAME, opts.dockerfile), PLUGIN_NAME);
  const mapping = pathMapping(opts.repoDir ?? REPO_DIR, opts.prefixDir, e.startCmd);
  let start = mapCommand(e.startCmd, mapping);
  let query = mapCommand(e.queryCmd, mapping);
  start = setOption(start, PLUGINS_DIR_FLAGS, opts.pluginsDir, e.startCmd);
  query = setOption(query, PLUGINS_DIR_FLAGS, opts.pluginsDir, e.queryCmd);
  let socket = mapPath(e.socket, mapping);
  if (opts.sockName !== undefined) {
    start = setOption(start, SOCK_NAME_FLAGS, opts.sockName, e.startCmd);
    const prefixIdx = start.findIndex((w) => (PREFIX_FLAGS as readonly string[]).includes(w));
    const prefix = prefixIdx >= 0 ? (start[prefixIdx + 1] as string) : IMAGE_KONG_PREFIX;
    socket = path.join(prefix, opts.sockName);
  }
  return {
    start: start.map(shellQuote).join(' '),
    query: query.map(shellQuote).join(' '),
    socket,
  };
}
