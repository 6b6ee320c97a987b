/**
 * KongEmulator plays Kong Gateway (3.9 line) in front of the REAL kong-js-pluginserver:
 * it runs the plugin server with the Dockerfile's own commands, talks msgpack RPC to it
 * over its unix socket like rpc/mp_rpc.lua, manages plugin instances per nginx worker like
 * plugin_servers/plugin.lua, validates configuration like the Admin API, and answers PDK
 * calls against an emulated request (pdk.ts).
 *
 *   const kong = await KongEmulator.start({ pluginsDir: 'test/fixtures/floor', workers: 2 });
 *   const plugin = kong.addPlugin({ config: { cookie_name: 's' } });
 *   const res = await kong.request({ headers: { cookie: 's=1' } }, { worker: 1 });
 *   await kong.stop();
 *
 * See kong-protocol.md; where Kong's sources differ from it, the sources win and the
 * difference is written next to the code.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  kongPluginServerEnv,
  kongServerCommands,
  nginxWorkerEnv,
  PLUGIN_NAME,
  pluginServerCommands,
  readDockerfileEnv,
  REPO_DIR,
  type ServerCommands,
} from './dockerfile.js';
import { checkPluginSchema, processPluginConfig, removeNulls, KongSchemaError } from './kong-schema.js';
import { EMPTY_MAP } from './msgpack.js';
import { ConnectionPool, MpRpcClient, RpcProtocolError, type RpcOutcome } from './mp-rpc.js';
import {
  callPdk,
  ExitSignal,
  HarnessError,
  KONG_PDK_METHODS,
  LuaError,
  RequestContext,
  cjsonEncode,
  serializeRecord,
  routerMatched,
  upstreamHostHeader,
  stepMethodFor,
  type EmulatedRequest,
  type ExitInfo,
  type KongLogEntry,
  type PdkCall,
  type PdkEnv,
  type Phase,
  type ServiceEntity,
} from './pdk.js';
import { reqGetHeaders, type HeaderList } from './nginx.js';
import { PluginServerProcess, queryPluginInfo, renderTerminalLog, type PluginInfo } from './plugin-server.js';

export { KongSchemaError } from './kong-schema.js';
export { HarnessError, LuaError } from './pdk.js';
export type { EmulatedRequest, ExitInfo, KongLogEntry, LogLevel, PdkCall, Phase, RouteEntity, ServiceEntity } from './pdk.js';
export type { PluginInfo } from './plugin-server.js';
export type { ServerCommands } from './dockerfile.js';

/** Kong's default workspace id in a fresh database. */
export const DEFAULT_WS_ID = '5a4b8b5c-7d3f-4b1e-9e0a-6f1e2d3c4b5a';

/** The request as the upstream (the chosen target) gets it. */
export interface UpstreamRequest {
  readonly method: string;
  /** Path and query as sent upstream. */
  readonly path: string;
  /** Header lines as sent upstream (Host replaced by `hostHeader`). */
  readonly headers: HeaderList;
  /**
   * The Host header Kong sends (pdk.ts upstreamHostHeader): a non-empty $upstream_host as it
   * is (the client's Host on a preserve_host route; after kong.service.set_target the target's
   * host without port, Kong/kong#5945; kong.service.request.set_header("Host")), else the
   * balancer's host with ":port" unless the scheme's default.
   */
  readonly hostHeader: string;
  /** Set by kong.service.set_target; undefined: Kong's own balancer picks (service host). */
  readonly target: { host: string; port: number } | undefined;
  readonly service: ServiceEntity | null;
  /** kong.service.set_upstream, if called. */
  readonly upstreamName: string | undefined;
  readonly request: EmulatedRequest;
}

export interface UpstreamResponse {
  status: number;
  headers?: Record<string, string | string[]>;
  body?: unknown;
}

/** Proxies the request (e.g. a dev gateway forwarding to real backends); throw = 502. */
export type UpstreamHandler = (req: UpstreamRequest) => Promise<UpstreamResponse> | UpstreamResponse;

export interface KongEmulatorOptions {
  /**
   * A fixture plugins directory (relative paths: from the repository root), served with the
   * Dockerfile's start/query commands.
   */
  pluginsDir?: string;
  /** Serve the real plugin exactly as the image does (Dockerfile ENV, paths mapped). */
  useDockerfile?: boolean;
  /** Explicit commands (advanced; e.g. a broken query command in a test). */
  commands?: ServerCommands | ((prefixDir: string) => ServerCommands);
  /** Checkout standing for /opt/sticky-session (default: this repository). */
  repoDir?: string;
  /** nginx worker processes, each with its own instances and connection pool. Default 1. */
  workers?: number;
  /**
   * The Kong container's environment (e.g. what a pod spec sets), on top of the image's
   * ENV from the Dockerfile. The query command sees all of it (Kong's master process); the
   * plugin server only what nginx leaves its workers: TZ and the variables declared by
   * `env` directives, i.e. KONG_NGINX_MAIN_ENV ("A; env B" declares A and B).
   */
  env?: Record<string, string>;
  /** Overrides KONG_NGINX_MAIN_ENV (the `env` directives) of the container environment. */
  nginxMainEnv?: string;
  /** Pass this test process's environment to the plugin server too (NOT what Kong does). */
  inheritEnv?: boolean;
  /** Working directory of the plugin server (the image's WORKDIR is /). */
  cwd?: string;
  /** Per RPC call; stands in for Kong's 60 s socket timeout. Default 5000. */
  callTimeoutMs?: number;
  /** Wait for the plugin server's socket. Default 20000. */
  readyTimeoutMs?: number;
  /** Client IPs Kong trusts (trusted_ips) for X-Forwarded-* headers. */
  trustedIps?: string[] | 'all';
  /**
   * How unset config fields reach the plugin. Kong reads plugins with nulls=false, so they
   * arrive ABSENT (default). 'null' sends them as JSON null (what the Admin API shows).
   */
  unsetConfigFields?: 'absent' | 'null';
  /** Default upstream for request(); without one, proxied requests answer 200. */
  upstream?: UpstreamHandler;
  /** Status of a proxied request when there is no upstream handler. Default 200. */
  defaultUpstreamStatus?: number;
}

export interface PluginEntityInput {
  id?: string;
  /** Plugin name (default: the plugin server's plugin). */
  name?: string;
  config?: Record<string, unknown>;
  route?: { id: string } | string | null;
  service?: { id: string } | string | null;
  consumer?: { id: string } | string | null;
  instanceName?: string;
}

/** A plugin entity as stored by Kong (config completed and validated). */
export interface PluginEntity {
  readonly id: string;
  readonly name: string;
  readonly config: Record<string, unknown>;
  readonly routeId: string | null;
  readonly serviceId: string | null;
  readonly consumerId: string | null;
  readonly instanceName: string | null;
  readonly wsId: string;
}

export interface RpcRecord {
  method: string;
  msgid: number;
  error?: string;
  timedOut?: boolean;
}

/** One phase's handle_event, as seen on the socket and by Kong. */
export interface PhaseResult {
  phase: Phase;
  /** PDK calls Kong answered, in order (with what was stepped back). */
  pdkCalls: PdkCall[];
  /** RPC request/response pairs on the socket for this phase (StartInstance, CloseInstance, HandleEvent, Steps). */
  roundTrips: number;
  rpc: RpcRecord[];
  /** The error Kong logged for this phase (an RPC error string, "no data", a Lua error). */
  error?: string;
  /** A Lua error inside Kong (PDK function error, failed StartInstance, RPC assert). */
  luaError?: string;
  /** No answer within the call timeout (Kong would wait 60 s, then log "no data"). */
  hung?: boolean;
  /** The server answered "ret": the JS event finished. */
  eventFinished: boolean;
  /** kong.response.exit/error ended the request in this phase. */
  exited?: boolean;
  instanceId?: number;
  eventId?: number;
  logs: KongLogEntry[];
}

export interface RequestResult {
  /** What the client gets: the upstream's status, an exit's status, or 500 on a Lua error. */
  status: number;
  /** kong.service.set_target; undefined = Kong's own balancer. */
  target?: { host: string; port: number };
  /** Response headers Kong adds for the plugin (add_header/set_header, exit headers), lower-case names. */
  responseHeaders: Record<string, string[]>;
  exit?: ExitInfo;
  /** Body Kong itself produced (exit or error), as sent. */
  body?: string;
  /** Access phase (and rewrite, if it ran) PDK calls. */
  pdkCalls: PdkCall[];
  /** Access phase round trips (see PhaseResult). */
  roundTrips: number;
  rpc: RpcRecord[];
  error?: string;
  luaError?: string;
  hung?: boolean;
  eventFinished: boolean;
  instanceId?: number;
  /** Every log entry of this request, all phases. */
  logs: KongLogEntry[];
  phases: Partial<Record<Phase, PhaseResult>>;
  /** The log phase, when the plugin has one and it ran. */
  log?: PhaseResult;
  /** What the upstream handler answered, when the request was proxied. */
  upstream?: UpstreamResponse;
  /** Upstream request header lines added by kong.service.request.*. */
  upstreamRequestHeaders: Array<[string, string]>;
  /** The Host header Kong sent upstream, when the request was proxied (see UpstreamRequest.hostHeader). */
  upstreamHost?: string;
  ctxShared: Record<string, unknown>;
}

export interface RequestOptions {
  worker?: number;
  /** Plugin entity id (default: the only one). */
  plugin?: string;
  upstream?: UpstreamHandler;
  /** Run the log phase when the plugin has one. Default true. */
  log?: boolean;
  timeoutMs?: number;
}

interface RunningInstance {
  id: number | undefined;
  conf: Record<string, unknown>;
  seq: number;
  pluginName?: string;
}

class Worker {
  readonly pool: ConnectionPool;
  readonly rpc: MpRpcClient;
  /** plugin.lua running_instances, keyed by plugin entity id. */
  readonly running = new Map<string, RunningInstance>();
  builtVersion = -1;
  confs = new Map<string, Record<string, unknown>>();
  constructor(
    readonly id: number,
    socketPath: string,
    timeoutMs: number,
  ) {
    this.pool = new ConnectionPool(socketPath);
    this.rpc = new MpRpcClient(this.pool, timeoutMs);
  }
}

const MAX_NO_INSTANCE_RETRIES = 5;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function entityId(v: { id: string } | string | null | undefined): string | null {
  if (v === null || v === undefined) return null;
  return typeof v === 'string' ? v : v.id;
}

export class KongEmulator {
  readonly workers: Worker[];
  private readonly entities = new Map<string, PluginEntity>();
  private configVersion = 0;
  private seqCounter = 0;
  private finalServerLog: string | null = null;
  readonly nodeId = randomUUID();
  private stopped = false;

  private constructor(
    readonly options: KongEmulatorOptions,
    /** Kong's prefix directory (temporary). */
    readonly prefixDir: string,
    readonly commands: ServerCommands,
    /** The plugin Kong uses: the first entry of the dump. */
    readonly info: PluginInfo,
    /** The whole decoded --dump-all-plugins output. */
    readonly dump: unknown,
    private readonly server: PluginServerProcess,
    private readonly kongLogEntries: Array<KongLogEntry & { worker?: number; time: number }>,
  ) {
    const n = options.workers ?? 1;
    this.workers = Array.from({ length: n }, (_, i) => new Worker(i, commands.socket, options.callTimeoutMs ?? 5000));
  }

  /**
   * Runs the query command (parses the dump like Kong 3.9+), starts the plugin server with
   * the start command and waits until its socket accepts connections.
   */
  static async start(options: KongEmulatorOptions = {}): Promise<KongEmulator> {
    const prefixDir = mkdtempSync(path.join(os.tmpdir(), 'kemu-'));
    let commands: ServerCommands;
    try {
      if (options.commands) {
        commands = typeof options.commands === 'function' ? options.commands(prefixDir) : options.commands;
      } else if (options.useDockerfile) {
        commands = kongServerCommands({ repoDir: options.repoDir ?? REPO_DIR, prefixDir });
      } else if (options.pluginsDir) {
        commands = pluginServerCommands({
          pluginsDir: path.resolve(REPO_DIR, options.pluginsDir),
          prefixDir,
          repoDir: options.repoDir ?? REPO_DIR,
        });
      } else {
        throw new Error('KongEmulator.start: give pluginsDir, useDockerfile or commands');
      }
      if (Buffer.byteLength(commands.socket) >= 100) throw new Error(`socket path too long for a unix socket: ${commands.socket}`);
    } catch (err) {
      rmSync(prefixDir, { recursive: true, force: true });
      throw err;
    }

    // The container: the image's ENV (when its commands come from the Dockerfile) + options.env.
    const imageEnv = options.commands ? {} : Object.fromEntries(readDockerfileEnv());
    const containerEnv: Record<string, string> = { ...imageEnv, ...(options.env ?? {}) };
    const serverEnv: NodeJS.ProcessEnv = options.inheritEnv
      ? { ...process.env, ...containerEnv }
      : nginxWorkerEnv(containerEnv, options.nginxMainEnv);
    const queryEnv: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', ...containerEnv };
    const cwd = options.cwd ?? '/';

    const kongLog: Array<KongLogEntry & { worker?: number; time: number }> = [];
    // The Dockerfile's pluginserver entry (also when it serves a fixture directory).
    const serverName = options.commands ? 'pluginserver' : PLUGIN_NAME;
    const server = new PluginServerProcess(serverName, commands, {
      env: serverEnv,
      cwd,
      logFile: path.join(prefixDir, 'pluginserver.log'),
      kongLog: (level, message) => kongLog.push({ level, message, source: 'kong', time: Date.now() }),
    });

    // Kong queries at init and starts the server from worker 0 afterwards; the two are
    // independent, so they run side by side here to save start-up time.
    server.start();
    let query;
    try {
      [query] = await Promise.all([
        queryPluginInfo(commands.query, { env: queryEnv, cwd }),
        server.waitReady(options.readyTimeoutMs ?? 20_000),
      ]);
      if (options.useDockerfile) {
        const enabled = kongPluginServerEnv().plugins;
        if (!enabled.includes(query.info.Name)) {
          throw new Error(`${query.info.Name} plugin is enabled but not installed (KONG_PLUGINS=${enabled.join(',')})`);
        }
      }
      checkPluginSchema(query.info.Schema, query.info.Name);
    } catch (err) {
      await server.stop().catch(() => undefined);
      const log = server.log();
      rmSync(prefixDir, { recursive: true, force: true });
      if (err instanceof Error && log && !err.message.includes('--- server log ---')) {
        err.message += `\n--- server log ---\n${log.slice(-4000)}`;
      }
      throw err;
    }
    return new KongEmulator(options, prefixDir, commands, query.info, query.dump, server, kongLog);
  }

  // ---------------------------------------------------------------------------------------
  // Configuration (Admin API)

  /**
   * POST /plugins: completes and validates the config against the plugin's schema (throws
   * KongSchemaError like an HTTP 400), stores the entity; every worker rebuilds its
   * plugins iterator on the next request.
   */
  addPlugin(input: PluginEntityInput = {}): PluginEntity {
    const name = input.name ?? this.info.Name;
    if (name !== this.info.Name) throw new KongSchemaError({ name: `plugin '${name}' not enabled; add it to the 'plugins' configuration property` });
    const config = processPluginConfig(this.info.Schema, input.config ?? {});
    const entity: PluginEntity = {
      id: input.id ?? randomUUID(),
      name,
      config,
      routeId: entityId(input.route),
      serviceId: entityId(input.service),
      consumerId: entityId(input.consumer),
      instanceName: input.instanceName ?? null,
      wsId: DEFAULT_WS_ID,
    };
    if (this.entities.has(entity.id)) throw new KongSchemaError({ id: 'UNIQUE violation detected on \'{id}\'' });
    this.entities.set(entity.id, entity);
    this.configVersion++;
    return entity;
  }

  /**
   * PATCH /plugins/{id} with `{config}`: records merge recursively with the stored config
   * (arrays and scalars replace), then validation as on insert.
   */
  updatePlugin(id: string, patch: { config?: Record<string, unknown> }): PluginEntity {
    const old = this.entities.get(id);
    if (!old) throw new Error(`no plugin entity ${id}`);
    const merged = mergeRecords(old.config, patch.config ?? {});
    const config = processPluginConfig(this.info.Schema, merged);
    const entity: PluginEntity = { ...old, config };
    this.entities.set(id, entity);
    this.configVersion++;
    return entity;
  }

  /** DELETE /plugins/{id}. (Kong never closes the instances of a deleted plugin.) */
  removePlugin(id: string): void {
    this.entities.delete(id);
    this.configVersion++;
  }

  /**
   * A plugins-iterator rebuild with nothing changed for this plugin (DB-less reload, any
   * other plugin changed): Kong re-reads every plugin and gives each a new `__seq__`, so
   * every worker starts new instances on its next request.
   */
  reloadConfig(): void {
    this.configVersion++;
  }

  /** Switches how unset config fields are sent (see KongEmulatorOptions) and reloads. */
  setUnsetConfigFields(mode: 'absent' | 'null'): void {
    this.options.unsetConfigFields = mode;
    this.reloadConfig();
  }

  plugins(): PluginEntity[] {
    return [...this.entities.values()];
  }

  private entity(id: string | undefined): PluginEntity {
    if (id !== undefined) {
      const e = this.entities.get(id);
      if (!e) throw new Error(`no plugin entity ${id}`);
      return e;
    }
    if (this.entities.size === 0) throw new Error('no plugin configured: call addPlugin() first');
    if (this.entities.size > 1) throw new Error('several plugins configured: pass { plugin: id }');
    return this.entities.values().next().value as PluginEntity;
  }

  /** plugins_iterator get_plugin_config, done per worker on rebuild. */
  private buildConf(entity: PluginEntity, seq: number): Record<string, unknown> {
    const nulls = this.options.unsetConfigFields === 'null';
    const conf: Record<string, unknown> = nulls ? structuredClone(entity.config) : removeNulls(structuredClone(entity.config));
    const set = (k: string, v: unknown): void => {
      if (v === null || v === undefined) {
        if (nulls) conf[k] = null;
        else delete conf[k];
      } else conf[k] = v;
    };
    set('route_id', entity.routeId);
    set('service_id', entity.serviceId);
    set('consumer_id', entity.consumerId);
    set('plugin_instance_name', entity.instanceName);
    conf.__plugin_id = entity.id;
    conf.__ws_id = entity.wsId;
    conf.__key__ = `plugins:${entity.name}:${entity.routeId ?? ''}:${entity.serviceId ?? ''}:${entity.consumerId ?? ''}::${entity.wsId}`;
    conf.__seq__ = seq;
    return conf;
  }

  private workerConf(worker: Worker, entity: PluginEntity): Record<string, unknown> {
    if (worker.builtVersion !== this.configVersion) {
      worker.confs = new Map();
      for (const e of this.entities.values()) worker.confs.set(e.id, this.buildConf(e, ++this.seqCounter));
      worker.builtVersion = this.configVersion;
    }
    const conf = worker.confs.get(entity.id);
    if (!conf) throw new Error(`plugin ${entity.id} not in worker ${worker.id}'s iterator`);
    return conf;
  }

  /** The config Kong sends in StartInstance for `plugin` in `worker` (as of now). */
  configFor(opts: { worker?: number; plugin?: string } = {}): Record<string, unknown> {
    return structuredClone(this.workerConf(this.worker(opts.worker ?? 0), this.entity(opts.plugin)));
  }

  // ---------------------------------------------------------------------------------------
  // Requests

  private worker(i: number): Worker {
    const w = this.workers[i];
    if (!w) throw new Error(`no worker ${i} (workers: ${this.workers.length})`);
    return w;
  }

  /** Runs the access phase only (no upstream call unless one is given, no log phase). */
  access(request: EmulatedRequest = {}, opts: RequestOptions = {}): Promise<RequestResult> {
    return this.request(request, { ...opts, log: false });
  }

  /**
   * One proxied request through the plugin: rewrite (global plugins only) and access, the
   * upstream (or an exit / a 500), then the log phase when the plugin has one.
   */
  async request(request: EmulatedRequest = {}, opts: RequestOptions = {}): Promise<RequestResult> {
    if (this.stopped) throw new Error('emulator stopped');
    const worker = this.worker(opts.worker ?? 0);
    const entity = this.entity(opts.plugin);
    const conf = this.workerConf(worker, entity);
    const ctx = new RequestContext(request);
    const phases = new Set(this.info.Phases);
    const results: Partial<Record<Phase, PhaseResult>> = {};
    const global = entity.routeId === null && entity.serviceId === null && entity.consumerId === null;

    let failed: string | undefined;
    for (const phase of ['rewrite', 'access'] as const) {
      // The router runs between the (global-only) rewrite phase and the access phase.
      if (phase === 'access' && !ctx.exit && failed === undefined) routerMatched(ctx);
      if (!phases.has(phase) || ctx.exit || failed !== undefined) continue;
      if (phase === 'rewrite' && !global) continue;
      const r = await this.runPhase(worker, entity, conf, phase, ctx, opts.timeoutMs);
      results[phase] = r;
      if (r.luaError !== undefined) failed = r.luaError;
    }

    let status: number;
    let body: string | undefined;
    let upstream: UpstreamResponse | undefined;
    let proxiedHost: string | undefined;
    const exitHeaderLines: Array<[string, string]> = [];
    if (ctx.exit) {
      status = ctx.exit.status;
      const b = ctx.exit.body;
      if (b !== undefined && b !== null) body = typeof b === 'string' ? b : JSON.stringify(b);
      const exitHeaders = ctx.exit.headers ?? {};
      const lowerNames = Object.keys(exitHeaders).map((k) => k.toLowerCase());
      ctx.responseHeaderLines = ctx.responseHeaderLines.filter(([n]) => !lowerNames.includes(n.toLowerCase()));
      for (const [k, v] of Object.entries(exitHeaders)) for (const x of Array.isArray(v) ? v : [v]) exitHeaderLines.push([k, x]);
      if (typeof b === 'object' && b !== null && !lowerNames.includes('content-type')) {
        exitHeaderLines.push(['Content-Type', 'application/json; charset=utf-8']);
      }
      ctx.response = { status, headers: [...ctx.responseHeaderLines, ...exitHeaderLines], source: 'exit' };
    } else if (failed !== undefined) {
      status = 500;
      body = JSON.stringify({ message: 'An unexpected error occurred' });
      exitHeaderLines.push(['Content-Type', 'application/json; charset=utf-8']);
      ctx.response = { status, headers: [...ctx.responseHeaderLines, ...exitHeaderLines], source: 'error' };
    } else {
      const handler = opts.upstream ?? this.options.upstream;
      const balancerStart = Date.now();
      const service = ctx.service;
      const ip = ctx.target?.host ?? service?.host ?? 'upstream';
      const port = ctx.target?.port ?? service?.port ?? 80;
      const hostHeader = upstreamHostHeader(ctx);
      proxiedHost = hostHeader;
      if (handler) {
        try {
          upstream = await handler({
            method: ctx.method,
            path: ctx.requestUri,
            hostHeader,
            headers: [
              ['Host', hostHeader],
              ...[...ctx.headers, ...ctx.upstreamRequestHeaderLines].filter(([n]) => n.toLowerCase() !== 'host'),
            ],
            target: ctx.target,
            service,
            upstreamName: ctx.upstreamName,
            request,
          });
          status = upstream.status;
          ctx.tries = [{ ip, port, balancer_start: balancerStart, balancer_latency: 0, code: status }];
        } catch {
          status = 502;
          body = JSON.stringify({ message: 'An invalid response was received from the upstream server' });
          ctx.tries = [{ ip, port, balancer_start: balancerStart, balancer_latency: 0, state: 'failed', code: 502 }];
        }
      } else {
        status = this.options.defaultUpstreamStatus ?? 200;
        upstream = { status };
        ctx.tries = [{ ip, port, balancer_start: balancerStart, balancer_latency: 0, code: status }];
      }
      ctx.upstreamStatus = String(status);
      const upstreamHeaderLines: Array<[string, string]> = [];
      for (const [k, v] of Object.entries(upstream?.headers ?? {})) {
        for (const x of Array.isArray(v) ? v : [v]) upstreamHeaderLines.push([k, x]);
      }
      ctx.response = { status, headers: [...upstreamHeaderLines, ...ctx.responseHeaderLines], source: 'service' };
    }

    if (phases.has('log') && opts.log !== false) {
      ctx.saved = {
        serializeData: serializeRecord(ctx, entity.wsId),
        ngxCtx: new Map(ctx.ngxCtx),
        ctxShared: ctx.ctxShared,
        requestHeaders: reqGetHeaders(ctx.headers),
        responseHeaders: reqGetHeaders(ctx.response.headers),
        responseStatus: status,
        reqStartTime: ctx.startTime,
      };
      results.log = await this.runPhase(worker, entity, conf, 'log', ctx, opts.timeoutMs);
    }

    const main = results.access ?? results.rewrite;
    const requestPhases = [results.rewrite, results.access].filter((r): r is PhaseResult => r !== undefined);
    const responseHeaders: Record<string, string[]> = {};
    for (const [n, v] of [...ctx.responseHeaderLines, ...exitHeaderLines]) (responseHeaders[n.toLowerCase()] ??= []).push(v);

    const out: RequestResult = {
      status,
      responseHeaders,
      pdkCalls: requestPhases.flatMap((r) => r.pdkCalls),
      roundTrips: requestPhases.reduce((n, r) => n + r.roundTrips, 0),
      rpc: requestPhases.flatMap((r) => r.rpc),
      eventFinished: main?.eventFinished ?? true,
      logs: Object.values(results).flatMap((r) => r.logs),
      phases: results,
      upstreamRequestHeaders: ctx.upstreamRequestHeaderLines,
      ctxShared: Object.fromEntries(ctx.ctxShared),
    };
    if (ctx.target) out.target = ctx.target;
    if (ctx.exit) out.exit = ctx.exit;
    if (body !== undefined) out.body = body;
    const err = requestPhases.map((r) => r.error).find((e) => e !== undefined);
    if (err !== undefined) out.error = err;
    if (failed !== undefined) out.luaError = failed;
    if (requestPhases.some((r) => r.hung)) out.hung = true;
    if (main?.instanceId !== undefined) out.instanceId = main.instanceId;
    if (results.log) out.log = results.log;
    if (upstream) out.upstream = upstream;
    if (proxiedHost !== undefined) out.upstreamHost = proxiedHost;
    return out;
  }

  // ---------------------------------------------------------------------------------------
  // Kong's runloop/plugin_servers

  private log(entry: KongLogEntry, worker: Worker, rec?: PhaseResult): void {
    rec?.logs.push(entry);
    this.kongLogEntries.push({ ...entry, worker: worker.id, time: Date.now() });
  }

  private async rpcCall(worker: Worker, method: string, args: unknown[], rec: PhaseResult, timeoutMs?: number): Promise<RpcOutcome> {
    const out = await worker.rpc.call(method, args, timeoutMs);
    rec.roundTrips++;
    const r: RpcRecord = { method, msgid: out.msgid };
    if (out.error !== undefined) r.error = out.error;
    if (out.timedOut) {
      r.timedOut = true;
      rec.hung = true;
    }
    rec.rpc.push(r);
    if (out.connectError) this.log({ level: 'err', message: `trying to connect: ${out.error}`, source: 'kong', phase: rec.phase }, worker, rec);
    return out;
  }

  private async runPhase(
    worker: Worker,
    entity: PluginEntity,
    conf: Record<string, unknown>,
    phase: Phase,
    ctx: RequestContext,
    timeoutMs: number | undefined,
  ): Promise<PhaseResult> {
    const rec: PhaseResult = { phase, pdkCalls: [], roundTrips: 0, rpc: [], eventFinished: false, logs: [] };
    try {
      await this.handleEvent(worker, entity, conf, phase, ctx, rec, timeoutMs, 0);
    } catch (err) {
      if (err instanceof ExitSignal) {
        ctx.exit = err.exit;
        rec.exited = true;
      } else if (err instanceof LuaError || err instanceof RpcProtocolError) {
        rec.luaError = err.message;
        rec.error = err.message;
        if (phase === 'log') {
          // the log timer's coroutine dies; nginx logs it
          this.log({ level: 'err', message: `lua entry thread aborted: runtime error: ${err.message}`, source: 'kong', phase }, worker, rec);
        } else {
          this.log({ level: 'err', message: err.message, source: 'kong', phase }, worker, rec);
        }
      } else {
        throw err;
      }
    }
    return rec;
  }

  /** mp_rpc.lua Rpc:handle_event */
  private async handleEvent(
    worker: Worker,
    entity: PluginEntity,
    conf: Record<string, unknown>,
    phase: Phase,
    ctx: RequestContext,
    rec: PhaseResult,
    timeoutMs: number | undefined,
    depth: number,
  ): Promise<void> {
    const got = await this.getInstanceId(worker, entity, conf, rec, timeoutMs);
    let err: string | undefined;
    if ('err' in got) err = got.err;
    else {
      rec.instanceId = got.id;
      err = await this.bridgeLoop(worker, entity, got.id, phase, ctx, rec, timeoutMs);
    }
    if (err === undefined) return;
    if (err.toLowerCase().includes('no plugin instance')) {
      this.resetInstances(entity.name);
      this.log({ level: 'warn', message: err, source: 'kong', phase }, worker, rec);
      // Kong recurses without a limit; a server that keeps answering this would loop forever.
      if (depth >= MAX_NO_INSTANCE_RETRIES) {
        throw new HarnessError(`harness: "no plugin instance" ${depth + 1} times in a row; Kong would loop forever`);
      }
      await this.handleEvent(worker, entity, conf, phase, ctx, rec, timeoutMs, depth + 1);
      return;
    }
    this.log({ level: 'err', message: err, source: 'kong', phase }, worker, rec);
    rec.error ??= err;
  }

  /** plugin.lua reset_instance: this worker, and every other through the worker event. */
  private resetInstances(pluginName: string): void {
    for (const w of this.workers) {
      for (const [k, inst] of w.running) if (inst.pluginName === pluginName) w.running.delete(k);
    }
  }

  /** plugin.lua get_instance_id */
  private async getInstanceId(
    worker: Worker,
    entity: PluginEntity,
    conf: Record<string, unknown>,
    rec: PhaseResult,
    timeoutMs: number | undefined,
  ): Promise<{ id: number } | { err: string }> {
    const key = entity.id;
    let info = worker.running.get(key);
    let waits = 0;
    while (info && info.id === undefined) {
      // another request of this worker is starting the instance
      await sleep(100);
      waits++;
      if (waits > 100) {
        worker.running.delete(key);
        return { err: `Could not claim instance_id for ${entity.name} (key: ${key})` };
      }
      info = worker.running.get(key);
    }
    if (info && info.id !== undefined && info.seq === conf.__seq__ && info.conf.__plugin_id === key) return { id: info.id };

    const oldId = info?.id;
    if (!info) {
      info = { id: undefined, conf, seq: conf.__seq__ as number };
      worker.running.set(key, info);
    } else {
      info.id = undefined;
    }
    const out = await this.rpcCall(worker, 'plugin.StartInstance', [{ Name: entity.name, Config: cjsonEncode(conf) }], rec, timeoutMs);
    const status = out.result as { Id?: unknown } | undefined;
    if (out.error !== undefined || status === undefined) {
      const err = out.error ?? 'nil';
      this.log({ level: 'err', message: `starting instance: ${err}`, source: 'kong', phase: rec.phase }, worker, rec);
      worker.running.delete(key);
      throw new LuaError(err);
    }
    info.id = status.Id as number;
    info.pluginName = entity.name;
    info.conf = conf;
    info.seq = conf.__seq__ as number;
    if (oldId !== undefined) {
      // result and errors ignored, as in Kong
      await this.rpcCall(worker, 'plugin.CloseInstance', [oldId], rec, timeoutMs);
    }
    return { id: info.id };
  }

  /** mp_rpc.lua bridge_loop; returns the error string Kong would get, if any. */
  private async bridgeLoop(
    worker: Worker,
    entity: PluginEntity,
    instanceId: number,
    phase: Phase,
    ctx: RequestContext,
    rec: PhaseResult,
    timeoutMs: number | undefined,
  ): Promise<string | undefined> {
    let out = await this.rpcCall(worker, 'plugin.HandleEvent', [{ InstanceId: instanceId, EventName: phase }], rec, timeoutMs);
    if (out.error !== undefined) return out.error;
    let stepIn = out.result as { Data?: unknown; EventId?: unknown } | undefined;
    if (stepIn === undefined || stepIn === null) return undefined;
    const eventId = stepIn.EventId as number;
    rec.eventId = eventId;
    const env: PdkEnv = {
      pluginId: entity.id,
      pluginName: entity.name,
      nodeId: this.nodeId,
      workerId: worker.id,
      trustedIps: this.options.trustedIps ?? [],
      log: (entry) => this.log(entry, worker, rec),
    };
    for (;;) {
      if (stepIn.Data === 'ret') {
        rec.eventFinished = true;
        return undefined;
      }
      const data = stepIn.Data as { Method?: unknown; Args?: unknown } | undefined;
      if (!data || typeof data !== 'object' || typeof data.Method !== 'string') {
        throw new LuaError(`bad step from plugin server: ${JSON.stringify(stepIn.Data)}`);
      }
      const method = data.Method;
      const args = Array.isArray(data.Args) ? data.Args : data.Args === undefined || data.Args === null ? [] : [data.Args];
      const call: PdkCall = { phase, method, args };
      rec.pdkCalls.push(call);
      let result: unknown;
      try {
        result = callPdk(ctx, phase, env, method, data.Args);
      } catch (err) {
        if (err instanceof LuaError) call.luaError = err.message;
        if (err instanceof ExitSignal) call.exited = true;
        throw err;
      }
      if (!KONG_PDK_METHODS.has(method)) call.unknown = true;
      if (result !== undefined) call.result = result === EMPTY_MAP ? {} : result;
      out = await this.rpcCall(worker, stepMethodFor(method), [{ EventId: eventId, Data: result }], rec, timeoutMs);
      if (out.error !== undefined) return out.error;
      stepIn = out.result as { Data?: unknown; EventId?: unknown } | undefined;
      if (stepIn === undefined || stepIn === null) return undefined;
    }
  }

  // ---------------------------------------------------------------------------------------
  // Process management and introspection

  /**
   * Kills the plugin server and lets the supervisor respawn it like Kong's
   * pluginserver_timer (at most once a second); workers keep their cached instance ids, so
   * the next call gets "no plugin instance" and recovers. Resolves when it listens again.
   */
  async restartServer(opts: { signal?: NodeJS.Signals } = {}): Promise<void> {
    await this.server.restart(opts.signal ?? 'SIGTERM', this.options.readyTimeoutMs ?? 20_000);
    for (const w of this.workers) w.pool.dropIdle();
  }

  /**
   * Kills the plugin server (a crash, an OOM kill) and resolves once it is dead, without
   * waiting for the respawn: until Kong's timer has restarted it (at once, or 1 s after the
   * previous start) and it listens, calls fail to connect and requests fail open.
   */
  async killServer(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await this.server.kill(signal);
  }

  /** Waits until the (respawned) plugin server accepts connections again. */
  async waitForServer(timeoutMs = this.options.readyTimeoutMs ?? 20_000): Promise<void> {
    await this.server.waitRespawned(timeoutMs);
  }

  /** Kong's stop: SIGTERM to the plugin server; closes connections; removes the prefix dir. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const w of this.workers) w.pool.close();
    await this.server.stop();
    this.finalServerLog = this.server.log();
    rmSync(this.prefixDir, { recursive: true, force: true });
  }

  /**
   * Everything the plugin server wrote (stdout + stderr merged, all incarnations), as a
   * terminal shows it (kong-pdk's logger redraws lines with escape codes); `raw` for the bytes.
   */
  serverLog(opts: { raw?: boolean } = {}): string {
    const raw = this.finalServerLog ?? this.server.log();
    return opts.raw ? raw : renderTerminalLog(raw);
  }

  /** Kong's error log as far as the emulator knows it (all requests, process events). */
  kongLog(): ReadonlyArray<KongLogEntry & { worker?: number; time: number }> {
    return this.kongLogEntries;
  }

  /** The plugin server's pid (current incarnation). */
  get serverPid(): number | undefined {
    return this.server.pid;
  }

  /** How many plugin-server processes were started. */
  get serverSpawns(): number {
    return this.server.spawnCount;
  }

  /** Instances cached by a worker: plugin entity id -> instance id and __seq__. */
  instances(worker = 0): Array<{ plugin: string; instanceId: number | undefined; seq: number }> {
    return [...this.worker(worker).running.entries()].map(([plugin, i]) => ({ plugin, instanceId: i.id, seq: i.seq }));
  }

  /** Socket connections opened and reused by a worker's keepalive pool. */
  poolStats(worker = 0): { connects: number; reuses: number; idle: number } {
    return this.worker(worker).pool.stats();
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** DAO:update's merge of a partial record into the stored one. */
function mergeRecords(old: Record<string, unknown>, patch: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...old };
  for (const [k, v] of Object.entries(patch)) {
    const prev = out[k];
    out[k] = isRecord(prev) && isRecord(v) ? mergeRecords(prev, v) : v;
  }
  return out;
}

