/**
 * Kong's side of the PDK bridge: what Kong does when the plugin server asks it to run
 * `{Method, Args}` (mp_rpc.lua call_pdk_method over plugin.lua's exposed_api and the
 * kong.* PDK), against an emulated request.
 *
 * - Only the first Lua return value crosses the wire; Lua nil is "no Data" (JS sees
 *   undefined, not null).
 * - A Lua `error()` inside a PDK function (bad set_target port, a function called in the
 *   wrong phase) is thrown as LuaError: in access Kong ends the request with 500 and never
 *   sends another Step for that event.
 * - `kong.response.exit` / `error` throw ExitSignal: the access coroutine yields for good
 *   (delayed response), no further Step.
 * - A method Kong does not have: Kong logs "could not find pdk method" and steps with nil.
 * - A method Kong has but this harness does not model throws HarnessError: the harness
 *   refuses to invent an answer.
 * - In the log phase (a timer after the response) only plugin.lua's exposed_api and
 *   request-independent functions work; anything needing the live request raises Lua's
 *   "API disabled in the current context".
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { EMPTY_MAP } from './msgpack.js';
import {
  argVar,
  cookieVar,
  headerList,
  hostVar,
  httpVar,
  kongGetHeader,
  normalizePath,
  parseQuery,
  reqGetHeaders,
  type HeaderInput,
  type HeaderList,
} from './nginx.js';

export type Phase = 'rewrite' | 'access' | 'log';

export interface ServiceEntity {
  id?: string;
  name?: string;
  host?: string;
  port?: number;
  protocol?: string;
  path?: string;
  [key: string]: unknown;
}

export interface RouteEntity {
  id?: string;
  name?: string;
  [key: string]: unknown;
}

/** The request as the client sent it and as Kong's router matched it. */
export interface EmulatedRequest {
  method?: string;
  scheme?: 'http' | 'https';
  /** Host header value (may carry a port). Default "localhost". */
  host?: string;
  /** Path with optional "?query". Default "/". */
  path?: string;
  /** Header name -> value(s), in the order sent; several values = several header lines. */
  headers?: HeaderInput;
  clientIp?: string;
  /**
   * X-Forwarded-Proto as Kong would trust it (kong.request.get_forwarded_scheme); when
   * unset Kong falls back to the header if the client IP is trusted, else to the scheme.
   */
  forwardedScheme?: string;
  service?: ServiceEntity | null;
  route?: RouteEntity | null;
  /** Port Kong listens on for this request (default 8000 for http, 8443 for https). */
  serverPort?: number;
}

export type LogLevel = 'debug' | 'info' | 'notice' | 'warn' | 'err' | 'crit' | 'alert' | 'emerg';

export interface KongLogEntry {
  level: LogLevel;
  message: string;
  /** plugin: kong.log.* called by the plugin; kong: Kong's own error log; harness: notes. */
  source: 'plugin' | 'kong' | 'harness';
  phase?: Phase;
}

export interface PdkCall {
  phase: Phase;
  method: string;
  args: unknown[];
  /** What Kong stepped back (undefined = nil, no Data). */
  result?: unknown;
  /** Set when the call raised a Lua error. */
  luaError?: string;
  /** Set for kong.response.exit / error. */
  exited?: boolean;
  /** Set when Kong had no such method. */
  unknown?: boolean;
}

export interface ExitInfo {
  status: number;
  body?: unknown;
  headers?: Record<string, string | string[]>;
}

export interface UpstreamTry {
  ip: string;
  port: number;
  balancer_start: number;
  balancer_latency: number;
  code?: number;
  state?: string;
}

/** A Lua error() raised inside a PDK function. */
export class LuaError extends Error {
  override name = 'LuaError';
}

/** kong.response.exit/error: the request ends here; Kong never steps this event again. */
export class ExitSignal extends Error {
  override name = 'ExitSignal';
  constructor(readonly exit: ExitInfo) {
    super(`kong.response.exit(${exit.status})`);
  }
}

/** A PDK function Kong has but the harness does not emulate. */
export class HarnessError extends Error {
  override name = 'HarnessError';
}

/** What the request looked like after the response, saved for the log phase. */
export interface SavedRequestData {
  readonly serializeData: Record<string, unknown>;
  readonly ngxCtx: Map<string, unknown>;
  readonly ctxShared: Map<string, unknown>;
  readonly requestHeaders: Record<string, string | string[]>;
  readonly responseHeaders: Record<string, string | string[]>;
  readonly responseStatus: number;
  readonly reqStartTime: number;
}

/** One proxied request, shared by its phases (ngx.ctx, kong.ctx.shared, headers set...). */
export class RequestContext {
  readonly method: string;
  readonly scheme: 'http' | 'https';
  /** The request's Host header ($http_host); kong.service.request.set_header("Host") changes it. */
  hostHeader: string;
  readonly rawPath: string;
  readonly query: string;
  readonly requestUri: string;
  headers: HeaderList;
  readonly clientIp: string;
  readonly forwardedScheme: string | undefined;
  readonly service: ServiceEntity | null;
  readonly route: RouteEntity | null;
  readonly serverPort: number;
  readonly startTime = Date.now();
  readonly requestId = randomUUID().replace(/-/g, '');

  readonly ctxShared = new Map<string, unknown>();
  readonly ngxCtx = new Map<string, unknown>();
  /** Response header lines set by plugins (kong.response.add_header/set_header), in order. */
  responseHeaderLines: Array<[string, string]> = [];
  /** Changes to the upstream request (kong.service.request.*). */
  upstreamRequestHeaderLines: Array<[string, string]> = [];
  target: { host: string; port: number } | undefined;
  /**
   * $upstream_host: '' (nginx_kong.lua `set $upstream_host ''`), the client's Host on a
   * preserve_host route (routerMatched), then whatever set_target / set_header("Host") put.
   */
  upstreamHostVar = '';
  upstreamName: string | undefined;
  retries: number | undefined;
  exit: ExitInfo | undefined;
  /** Filled once the response is known (for the log phase). */
  response: { status: number; headers: Array<[string, string]>; source: 'service' | 'exit' | 'error' } | undefined;
  tries: UpstreamTry[] = [];
  upstreamStatus = '';
  saved: SavedRequestData | undefined;

  constructor(req: EmulatedRequest) {
    this.method = (req.method ?? 'GET').toUpperCase();
    this.scheme = req.scheme ?? 'http';
    this.headers = headerList(req.headers);
    const hostFromHeaders = this.headers.find(([n]) => n.toLowerCase() === 'host')?.[1];
    this.hostHeader = hostFromHeaders ?? req.host ?? 'localhost';
    if (!hostFromHeaders) this.headers = [['host', this.hostHeader], ...this.headers];
    const path = req.path ?? '/';
    const q = path.indexOf('?');
    this.rawPath = q >= 0 ? path.slice(0, q) : path;
    this.query = q >= 0 ? path.slice(q + 1) : '';
    this.requestUri = path;
    this.clientIp = req.clientIp ?? '127.0.0.1';
    this.forwardedScheme = req.forwardedScheme;
    this.service = req.service ?? null;
    this.route = req.route ?? null;
    this.serverPort = req.serverPort ?? (this.scheme === 'https' ? 8443 : 8000);
  }

  get host(): string {
    return hostVar(this.hostHeader);
  }

  /** ngx.req.set_header("Host", value): the request's Host lines become this one. */
  setRequestHost(value: string): void {
    const i = this.headers.findIndex(([n]) => n.toLowerCase() === 'host');
    const rest = this.headers.filter(([n]) => n.toLowerCase() !== 'host');
    rest.splice(i < 0 ? rest.length : i, 0, ['Host', value]);
    this.headers = rest;
    this.hostHeader = value;
  }

  /** Response headers set by plugins as a multimap with lower-case names. */
  responseHeaders(): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const [n, v] of this.responseHeaderLines) (out[n.toLowerCase()] ??= []).push(v);
    return out;
  }
}

export interface PdkEnv {
  readonly pluginId: string;
  readonly pluginName: string;
  readonly nodeId: string;
  readonly workerId: number;
  /** Client IPs Kong trusts (trusted_ips); 'all' = 0.0.0.0/0. */
  readonly trustedIps: readonly string[] | 'all';
  log(entry: KongLogEntry): void;
}

type PhaseName = Phase | 'header_filter' | 'body_filter' | 'response' | 'balancer' | 'preread' | 'admin_api' | 'certificate';

function checkPhase(phase: Phase, allowed: readonly PhaseName[]): void {
  if (!allowed.includes(phase)) {
    throw new LuaError(`function cannot be called in ${phase} phase (only in: ${allowed.join(', ')})`);
  }
}

const REQUEST_PHASES: PhaseName[] = ['rewrite', 'access', 'header_filter', 'response', 'body_filter', 'log', 'admin_api'];
const REWRITE_ACCESS_HEADER: PhaseName[] = ['rewrite', 'access', 'header_filter', 'response', 'admin_api'];
const SET_TARGET_PHASES: PhaseName[] = ['rewrite', 'access', 'balancer', 'preread'];
const HEADER_BODY_LOG: PhaseName[] = ['header_filter', 'response', 'body_filter', 'log', 'admin_api'];

/** kong.log.* levels as the PDK names them. */
const LOG_METHODS: Record<string, LogLevel> = {
  'kong.log.debug': 'debug',
  'kong.log.info': 'info',
  'kong.log.notice': 'notice',
  'kong.log.warn': 'warn',
  'kong.log.err': 'err',
  'kong.log.crit': 'crit',
  'kong.log.alert': 'alert',
  'kong.log.emerg': 'emerg',
};

/** PDK functions Kong 3.9 has (kong-pdk's generated .d.ts plus plugin.lua's exposed_api). */
export const KONG_PDK_METHODS: ReadonlySet<string> = new Set(
  `kong.client.authenticate kong.client.authenticate_consumer_group_by_consumer_id kong.client.get_consumer
kong.client.get_consumer_group kong.client.get_consumer_groups kong.client.get_credential kong.client.get_forwarded_ip
kong.client.get_forwarded_port kong.client.get_ip kong.client.get_port kong.client.get_protocol kong.client.load_consumer
kong.client.set_authenticated_consumer_group kong.client.set_authenticated_consumer_groups kong.client.tls.disable_session_reuse
kong.client.tls.get_full_client_certificate_chain kong.client.tls.request_client_certificate kong.client.tls.set_client_verify
kong.cluster.get_id kong.ctx.shared.get kong.ctx.shared.set kong.ip.is_trusted kong.log.alert kong.log.crit kong.log.debug
kong.log.deprecation kong.log.err kong.log.info kong.log.notice kong.log.serialize kong.log.set_serialize_value kong.log.warn
kong.log.emerg kong.nginx.get_ctx kong.nginx.get_statistics kong.nginx.get_subsystem kong.nginx.get_var kong.nginx.req_start_time
kong.nginx.set_ctx kong.nginx.get_tls1_version_str kong.node.get_hostname kong.node.get_id kong.node.get_memory_stats
kong.plugin.get_id kong.request.get_body kong.request.get_forwarded_host kong.request.get_forwarded_path
kong.request.get_forwarded_port kong.request.get_forwarded_prefix kong.request.get_forwarded_scheme kong.request.get_header
kong.request.get_headers kong.request.get_host kong.request.get_http_version kong.request.get_method kong.request.get_path
kong.request.get_path_with_query kong.request.get_port kong.request.get_query kong.request.get_query_arg kong.request.get_raw_body
kong.request.get_raw_path kong.request.get_raw_query kong.request.get_scheme kong.request.get_start_time
kong.request.get_uri_captures kong.response.add_header kong.response.clear_header kong.response.error kong.response.exit
kong.response.get_header kong.response.get_headers kong.response.get_source kong.response.get_status kong.response.set_header
kong.response.set_headers kong.response.set_status kong.response.get_raw_body kong.router.get_route kong.router.get_service
kong.service.request.add_header kong.service.request.clear_header kong.service.request.disable_tls
kong.service.request.enable_buffering kong.service.request.set_body kong.service.request.set_header
kong.service.request.set_headers kong.service.request.set_method kong.service.request.set_path kong.service.request.set_query
kong.service.request.set_raw_body kong.service.request.set_raw_query kong.service.request.set_scheme kong.service.response.get_body
kong.service.response.get_header kong.service.response.get_headers kong.service.response.get_raw_body
kong.service.response.get_status kong.service.set_retries kong.service.set_target kong.service.set_target_retry_callback
kong.service.set_timeouts kong.service.set_tls_verify kong.service.set_tls_verify_depth kong.service.set_upstream
kong.telemetry.log kong.vault.flush kong.vault.get kong.vault.is_reference kong.vault.parse_reference kong.vault.update
kong.vault.warmup`.split(/\s+/),
);

/** The Step variant Kong uses to return a method's result (mp_rpc.lua get_step_method). */
export function stepMethodFor(pdkMethod: string): string {
  switch (pdkMethod) {
    case 'kong.client.get_credential':
    case 'kong.client.authenticate':
      return 'plugin.StepCredential';
    case 'kong.client.load_consumer':
    case 'kong.client.get_consumer':
      return 'plugin.StepConsumer';
    case 'kong.node.get_memory_stats':
      return 'plugin.StepMemoryStats';
    case 'kong.router.get_route':
      return 'plugin.StepRoute';
    case 'kong.router.get_service':
      return 'plugin.StepService';
    case 'kong.request.get_query':
    case 'kong.request.get_headers':
    case 'kong.response.get_headers':
    case 'kong.service.response.get_headers':
      return 'plugin.StepMultiMap';
    default:
      return 'plugin.Step';
  }
}

/** mp_rpc.lua fix_mmap: string -> {string}, true -> {}, empty -> empty map. */
function fixMultiMap(t: Record<string, unknown> | null | undefined): unknown {
  if (!t) return undefined;
  const out: Record<string, unknown> = {};
  let empty = true;
  for (const [k, v] of Object.entries(t)) {
    empty = false;
    if (v === true) out[k] = [];
    else if (typeof v === 'string') out[k] = [v];
    else out[k] = v;
  }
  return empty ? EMPTY_MAP : out;
}

function luaToString(v: unknown): string {
  if (v === null || v === undefined) return 'nil';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return 'table';
}

function luaType(v: unknown): string {
  if (v === null || v === undefined) return 'nil';
  if (typeof v === 'string') return 'string';
  if (typeof v === 'number') return 'number';
  if (typeof v === 'boolean') return 'boolean';
  return 'table';
}

/** checks.validate_header + normalize_multi_header: the header line values to set. */
function headerValues(name: unknown, value: unknown): string[] {
  if (typeof name !== 'string') throw new LuaError(`invalid header name "${luaToString(name)}": got ${luaType(name)}, expected string`);
  const norm = (s: string): string => (s === '' ? ' ' : s);
  if (typeof value === 'string') return [norm(value)];
  if (typeof value === 'number' || typeof value === 'boolean') return [String(value)];
  if (Array.isArray(value)) {
    for (const vv of value) {
      if (typeof vv !== 'string') throw new LuaError(`invalid header value in array "${name}": got ${luaType(vv)}, expected string`);
    }
    return (value as string[]).map(norm);
  }
  throw new LuaError(`invalid header value for "${name}": got ${luaType(value)}, expected array of string, string, number or boolean`);
}

function validateHeadersTable(headers: unknown): Record<string, string | string[]> {
  if (headers === null || headers === undefined) return {};
  if (typeof headers !== 'object' || Array.isArray(headers)) throw new LuaError('headers must be a nil or table');
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(headers as Record<string, unknown>)) {
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[k] = String(v);
    else if (Array.isArray(v) && v.every((x) => typeof x === 'string')) out[k] = v as string[];
    else throw new LuaError(`invalid header value for "${k}": got ${luaType(v)}, expected string, number, boolean or array of strings`);
  }
  return out;
}

function ipTrusted(env: PdkEnv, ip: string): boolean {
  return env.trustedIps === 'all' || env.trustedIps.includes(ip);
}

const SERVICE_DEFAULTS: Readonly<Record<string, unknown>> = {
  protocol: 'http',
  port: 80,
  path: undefined,
  retries: 5,
  connect_timeout: 60000,
  write_timeout: 60000,
  read_timeout: 60000,
  enabled: true,
};

function serviceEntity(s: ServiceEntity | null): Record<string, unknown> | undefined {
  if (!s) return undefined;
  return { ...SERVICE_DEFAULTS, ...s };
}

/** The route schema's defaults (kong/db/schema/entities/routes.lua). */
const ROUTE_DEFAULTS: Readonly<Record<string, unknown>> = {
  protocols: ['http', 'https'],
  https_redirect_status_code: 426,
  strip_path: true,
  preserve_host: false,
  request_buffering: true,
  response_buffering: true,
  regex_priority: 0,
  path_handling: 'v0',
};

/** The route entity as kong.router.get_route returns it (StepRoute). */
function routeEntity(r: RouteEntity | null): Record<string, unknown> | undefined {
  if (!r) return undefined;
  return { ...ROUTE_DEFAULTS, ...r };
}

/** cjson.encode: numbers as %.14g (so 1/3 -> 0.33333333333333, 2^60 loses digits). */
export function cjsonEncode(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? Number(v.toPrecision(14)) : v));
}

/**
 * The router's part in the Host header (runloop handler.lua access.before, after the match,
 * before the plugins' access phase): atc.lua sets `upstream_host = preserve_host and
 * req_host` with req_host the request's Host header as sent (port included), and the runloop
 * copies it into $upstream_host when set. On any other route $upstream_host stays ''.
 */
export function routerMatched(ctx: RequestContext): void {
  if (ctx.route?.preserve_host !== true) return;
  const reqHost = kongGetHeader(ctx.headers, 'host');
  if (reqHost !== null) ctx.upstreamHostVar = reqHost;
}

/**
 * The Host header Kong sends upstream, after the plugins (runloop access.after, then
 * balancer.set_host_header): a non-empty $upstream_host marks the request preserve_host and
 * is sent as it is (set_target put the target's host there WITHOUT port, Kong/kong#5945;
 * set_header("Host") its value; the router the client's Host). Otherwise the balancer's
 * hostname (the set_target host, else the service host) with ":port" unless the port is 80
 * for http/grpc or 443 for https/grpcs (the service protocol is $upstream_scheme).
 */
export function upstreamHostHeader(ctx: RequestContext): string {
  if (ctx.upstreamHostVar !== '') return ctx.upstreamHostVar;
  const hostname = ctx.target?.host ?? ctx.service?.host ?? 'localhost';
  const port = ctx.target?.port ?? ctx.service?.port ?? 80;
  const scheme = ctx.service?.protocol ?? 'http';
  const defaultPort = (port === 80 && (scheme === 'http' || scheme === 'grpc')) || (port === 443 && (scheme === 'https' || scheme === 'grpcs'));
  return defaultPort ? hostname : `${hostname}:${port}`;
}

/** The parts of kong.log.serialize() the harness can know. */
export function serializeRecord(ctx: RequestContext, workspaceId: string): Record<string, unknown> {
  const requestHeaders = reqGetHeaders(ctx.headers);
  if (requestHeaders.authorization !== undefined) requestHeaders.authorization = 'REDACTED';
  if (requestHeaders['proxy-authorization'] !== undefined) requestHeaders['proxy-authorization'] = 'REDACTED';
  const responseHeaders = reqGetHeaders(ctx.response?.headers ?? []);
  const record: Record<string, unknown> = {
    request: {
      id: ctx.requestId,
      uri: ctx.requestUri,
      url: `${ctx.scheme}://${ctx.host}:${ctx.serverPort}${ctx.requestUri}`,
      querystring: parseQuery(ctx.query),
      method: ctx.method,
      headers: requestHeaders,
      size: 0,
    },
    upstream_uri: ctx.service?.path ? ctx.service.path : ctx.rawPath,
    upstream_status: ctx.upstreamStatus,
    response: { status: ctx.response?.status ?? 0, headers: responseHeaders, size: 0 },
    latencies: { kong: 0, proxy: ctx.tries.length ? 0 : -1, request: Date.now() - ctx.startTime, receive: 0 },
    tries: ctx.tries.length ? ctx.tries : undefined,
    route: ctx.route ?? undefined,
    service: serviceEntity(ctx.service),
    client_ip: ctx.clientIp,
    started_at: ctx.startTime,
    source: ctx.response?.source === 'service' ? 'upstream' : ctx.response?.source === 'exit' ? 'kong' : 'error',
    workspace: workspaceId,
    workspace_name: 'default',
  };
  for (const k of Object.keys(record)) if (record[k] === undefined) delete record[k];
  return record;
}

/** Methods that work in the log timer without the live request. */
const LOG_TIMER_OK = new Set([
  'kong.log.serialize',
  'kong.nginx.get_ctx',
  'kong.nginx.set_ctx',
  'kong.ctx.shared.get',
  'kong.ctx.shared.set',
  'kong.request.get_headers',
  'kong.request.get_header',
  'kong.response.get_status',
  'kong.response.get_headers',
  'kong.response.get_header',
  'kong.response.get_source',
  'kong.nginx.req_start_time',
  'kong.router.get_route',
  'kong.router.get_service',
  'kong.node.get_id',
  'kong.node.get_hostname',
  'kong.plugin.get_id',
  'kong.ip.is_trusted',
  'kong.nginx.get_subsystem',
  ...Object.keys(LOG_METHODS),
]);

/** Methods that, in the log timer, fail a phase check rather than needing ngx.req/ngx.var. */
const PHASE_GATED: Record<string, readonly PhaseName[]> = {
  'kong.service.set_target': SET_TARGET_PHASES,
  'kong.service.set_upstream': ['access'],
  'kong.service.set_retries': ['access'],
  'kong.response.add_header': REWRITE_ACCESS_HEADER,
  'kong.response.set_header': REWRITE_ACCESS_HEADER,
  'kong.response.set_headers': REWRITE_ACCESS_HEADER,
  'kong.response.clear_header': REWRITE_ACCESS_HEADER,
  'kong.response.exit': ['rewrite', 'access', 'header_filter', 'admin_api'],
  'kong.response.error': ['rewrite', 'access', 'header_filter', 'admin_api'],
  'kong.service.request.set_header': ['rewrite', 'access', 'balancer'],
  'kong.service.request.add_header': ['rewrite', 'access'],
  'kong.service.request.clear_header': ['rewrite', 'access'],
};

/**
 * Runs one PDK method as Kong would, returning its first return value (undefined = nil).
 * Throws LuaError, ExitSignal or HarnessError (see the module comment).
 */
export function callPdk(ctx: RequestContext, phase: Phase, env: PdkEnv, method: string, rawArgs: unknown): unknown {
  const args: unknown[] = Array.isArray(rawArgs) ? rawArgs : rawArgs === undefined || rawArgs === null ? [] : [rawArgs];
  const a0 = args[0];
  const a1 = args[1];

  if (!KONG_PDK_METHODS.has(method)) {
    env.log({ level: 'err', message: `could not find pdk method: ${method}`, source: 'kong', phase });
    return undefined;
  }

  if (phase === 'log' && !LOG_TIMER_OK.has(method)) {
    const gated = PHASE_GATED[method];
    if (gated) checkPhase(phase, gated);
    throw new LuaError('API disabled in the current context');
  }

  const level = LOG_METHODS[method];
  if (level) {
    env.log({ level, message: args.map(luaToString).join(''), source: 'plugin', phase });
    return undefined;
  }

  const saved = phase === 'log' ? ctx.saved : undefined;

  switch (method) {
    // --- plugin.lua exposed_api -----------------------------------------------------------
    case 'kong.log.serialize':
      checkPhase(phase, ['log']);
      return cjsonEncode(saved ? saved.serializeData : serializeRecord(ctx, ''));
    case 'kong.nginx.get_var': {
      if (typeof a0 !== 'string') throw new LuaError('bad argument #1 to \'?\' (string expected)');
      return nginxVar(ctx, env, phase, a0);
    }
    case 'kong.nginx.get_ctx':
      return (saved ? saved.ngxCtx : ctx.ngxCtx).get(String(a0));
    case 'kong.nginx.set_ctx':
      (saved ? saved.ngxCtx : ctx.ngxCtx).set(String(a0), a1 ?? undefined);
      return undefined;
    case 'kong.ctx.shared.get':
      return (saved ? saved.ctxShared : ctx.ctxShared).get(String(a0));
    case 'kong.ctx.shared.set':
      (saved ? saved.ctxShared : ctx.ctxShared).set(String(a0), a1 ?? undefined);
      return undefined;
    case 'kong.request.get_headers':
      checkPhase(phase, REQUEST_PHASES);
      return fixMultiMap(saved ? saved.requestHeaders : reqGetHeaders(ctx.headers));
    case 'kong.request.get_header': {
      checkPhase(phase, REQUEST_PHASES);
      if (typeof a0 !== 'string') throw new LuaError('header name must be a string');
      if (saved) {
        // ngx.req.get_headers() tables look names up case-insensitively, '_' as '-'
        const key = a0.toLowerCase();
        const v = saved.requestHeaders[key] ?? saved.requestHeaders[key.replace(/_/g, '-')];
        return Array.isArray(v) ? v[0] : v;
      }
      return kongGetHeader(ctx.headers, a0) ?? undefined;
    }
    case 'kong.response.get_status':
      checkPhase(phase, HEADER_BODY_LOG);
      return saved ? saved.responseStatus : ctx.response?.status;
    case 'kong.response.get_headers':
      checkPhase(phase, HEADER_BODY_LOG);
      return fixMultiMap(saved ? saved.responseHeaders : undefined);
    case 'kong.response.get_header': {
      checkPhase(phase, HEADER_BODY_LOG);
      const v = saved?.responseHeaders[String(a0).toLowerCase()];
      return Array.isArray(v) ? v[0] : v;
    }
    case 'kong.response.get_source':
      if (!ctx.response) return 'error';
      return ctx.response.source === 'service' ? 'service' : ctx.response.source === 'exit' ? 'exit' : 'error';
    case 'kong.nginx.req_start_time':
      return (saved ? saved.reqStartTime : ctx.startTime) / 1000;
    case 'kong.nginx.get_subsystem':
      return 'http';

    // --- kong.request -----------------------------------------------------------------------
    case 'kong.request.get_scheme':
      checkPhase(phase, REQUEST_PHASES);
      return ctx.scheme;
    case 'kong.request.get_forwarded_scheme': {
      checkPhase(phase, REQUEST_PHASES);
      if (ctx.forwardedScheme !== undefined) return ctx.forwardedScheme.toLowerCase();
      if (ipTrusted(env, ctx.clientIp)) {
        const h = kongGetHeader(ctx.headers, 'X-Forwarded-Proto');
        if (h) return h.toLowerCase();
      }
      return ctx.scheme;
    }
    case 'kong.request.get_host':
      checkPhase(phase, REQUEST_PHASES);
      return ctx.host;
    case 'kong.request.get_forwarded_host': {
      checkPhase(phase, REQUEST_PHASES);
      if (ipTrusted(env, ctx.clientIp)) {
        const h = kongGetHeader(ctx.headers, 'X-Forwarded-Host');
        if (h) return hostVar(h.split(',')[0] as string);
      }
      return ctx.host;
    }
    case 'kong.request.get_port':
      return ctx.serverPort;
    case 'kong.request.get_path':
      checkPhase(phase, REQUEST_PHASES);
      return normalizePath(ctx.rawPath);
    case 'kong.request.get_raw_path':
      checkPhase(phase, REQUEST_PHASES);
      return ctx.rawPath;
    case 'kong.request.get_path_with_query':
      checkPhase(phase, REQUEST_PHASES);
      return ctx.query ? `${normalizePath(ctx.rawPath)}?${ctx.query}` : normalizePath(ctx.rawPath);
    case 'kong.request.get_raw_query':
      checkPhase(phase, REQUEST_PHASES);
      return ctx.query;
    case 'kong.request.get_query':
      checkPhase(phase, REQUEST_PHASES);
      return fixMultiMap(parseQuery(ctx.query));
    case 'kong.request.get_query_arg': {
      checkPhase(phase, REQUEST_PHASES);
      const v = parseQuery(ctx.query)[String(a0)];
      return Array.isArray(v) ? v[0] : v;
    }
    case 'kong.request.get_method':
      checkPhase(phase, REQUEST_PHASES);
      return ctx.method;
    case 'kong.request.get_http_version':
      return 1.1;
    case 'kong.request.get_start_time':
      return ctx.startTime;

    // --- kong.client ------------------------------------------------------------------------
    case 'kong.client.get_ip':
      return ctx.clientIp;
    case 'kong.client.get_forwarded_ip': {
      if (ipTrusted(env, ctx.clientIp)) {
        const xff = kongGetHeader(ctx.headers, 'X-Forwarded-For');
        if (xff) return (xff.split(',')[0] as string).trim();
      }
      return ctx.clientIp;
    }
    case 'kong.ip.is_trusted':
      return ipTrusted(env, String(a0));

    // --- kong.router / kong.service ---------------------------------------------------------
    case 'kong.router.get_service':
      return serviceEntity(ctx.service);
    case 'kong.router.get_route':
      return routeEntity(ctx.route);
    case 'kong.service.set_target': {
      checkPhase(phase, SET_TARGET_PHASES);
      if (typeof a0 !== 'string') throw new LuaError('host must be a string');
      if (typeof a1 !== 'number' || Math.floor(a1) !== a1) throw new LuaError('port must be an integer');
      if (a1 < 0 || a1 > 65535) throw new LuaError(`port must be an integer between 0 and 65535: given ${a1}`);
      // service.lua: ngx.var.upstream_host = host (no port), which later makes Kong treat
      // the request as preserve_host and send exactly this as the Host header
      ctx.upstreamHostVar = a0;
      ctx.target = { host: a0, port: a1 };
      return undefined;
    }
    case 'kong.service.set_upstream': {
      checkPhase(phase, ['access']);
      if (typeof a0 !== 'string') throw new LuaError('host must be a string');
      ctx.upstreamName = a0;
      ctx.target = undefined;
      return true;
    }
    case 'kong.service.set_retries': {
      checkPhase(phase, ['access']);
      if (typeof a0 !== 'number' || Math.floor(a0) !== a0) throw new LuaError('retries must be an integer');
      if (a0 < 0 || a0 > 32767) throw new LuaError(`retries must be an integer between 0 and 32767: given ${a0}`);
      ctx.retries = a0;
      return undefined;
    }
    case 'kong.service.request.set_header':
    case 'kong.service.request.add_header': {
      checkPhase(phase, PHASE_GATED[method] as PhaseName[]);
      const values = headerValues(a0, a1);
      const name = a0 as string;
      if (name.toLowerCase() === 'host') {
        // service/request.lua: $upstream_host = value, then ngx.req.set_header: the downstream
        // request's Host changes too ($host, $http_host, get_host, get_header, the log record)
        if (method.endsWith('add_header') || Array.isArray(a1)) {
          throw new HarnessError(`harness: ${method}("Host", ${JSON.stringify(a1)}) is not emulated`);
        }
        ctx.upstreamHostVar = String(a1);
        ctx.setRequestHost(values[0] as string);
        return undefined;
      }
      if (method.endsWith('set_header')) {
        ctx.upstreamRequestHeaderLines = ctx.upstreamRequestHeaderLines.filter(([n]) => n.toLowerCase() !== name.toLowerCase());
      }
      for (const v of values) ctx.upstreamRequestHeaderLines.push([name, v]);
      return undefined;
    }
    case 'kong.service.request.clear_header': {
      checkPhase(phase, ['rewrite', 'access']);
      const name = String(a0).toLowerCase();
      ctx.upstreamRequestHeaderLines = ctx.upstreamRequestHeaderLines.filter(([n]) => n.toLowerCase() !== name);
      return undefined;
    }

    // --- kong.response ----------------------------------------------------------------------
    case 'kong.response.add_header':
    case 'kong.response.set_header': {
      checkPhase(phase, REWRITE_ACCESS_HEADER);
      const values = headerValues(a0, a1);
      const name = a0 as string;
      const lower = name.toLowerCase();
      if (method === 'kong.response.set_header') {
        if (lower === 'transfer-encoding' || lower === 'transfer_encoding') {
          env.log({ level: 'warn', message: 'manually setting Transfer-Encoding. Ignored.', source: 'kong', phase });
          return undefined;
        }
        ctx.responseHeaderLines = ctx.responseHeaderLines.filter(([n]) => n.toLowerCase() !== lower);
      }
      for (const v of values) ctx.responseHeaderLines.push([name, v]);
      return undefined;
    }
    case 'kong.response.set_headers': {
      checkPhase(phase, REWRITE_ACCESS_HEADER);
      const headers = validateHeadersTable(a0);
      for (const [name, v] of Object.entries(headers)) {
        const lower = name.toLowerCase();
        ctx.responseHeaderLines = ctx.responseHeaderLines.filter(([n]) => n.toLowerCase() !== lower);
        for (const x of Array.isArray(v) ? v : [v]) ctx.responseHeaderLines.push([name, x]);
      }
      return undefined;
    }
    case 'kong.response.clear_header': {
      checkPhase(phase, REWRITE_ACCESS_HEADER);
      const lower = String(a0).toLowerCase();
      ctx.responseHeaderLines = ctx.responseHeaderLines.filter(([n]) => n.toLowerCase() !== lower);
      return undefined;
    }
    case 'kong.response.exit':
    case 'kong.response.error': {
      checkPhase(phase, ['rewrite', 'access', 'header_filter', 'admin_api']);
      if (typeof a0 !== 'number') throw new LuaError('code must be a number');
      if (method === 'kong.response.exit') {
        if (a0 < 100 || a0 > 599) throw new LuaError('code must be a number between 100 and 599');
        if (a1 !== undefined && a1 !== null && typeof a1 !== 'string' && typeof a1 !== 'object') {
          throw new LuaError('body must be a nil, string or table');
        }
        const headers = validateHeadersTable(args[2]);
        throw new ExitSignal({ status: a0, body: a1 ?? undefined, headers });
      }
      if (a0 < 400 || a0 > 599) throw new LuaError('code must be a number between 400 and 599');
      const message = typeof a1 === 'string' ? a1 : undefined;
      const headers = validateHeadersTable(args[2]);
      throw new ExitSignal({ status: a0, body: { message: message ?? defaultErrorMessage(a0) }, headers });
    }

    // --- misc ---------------------------------------------------------------------------------
    case 'kong.plugin.get_id':
      return env.pluginId;
    case 'kong.node.get_id':
      return env.nodeId;
    case 'kong.node.get_hostname':
      return os.hostname();
    default:
      throw new HarnessError(`harness: PDK method ${method} exists in Kong but is not emulated`);
  }
}

function defaultErrorMessage(status: number): string {
  const messages: Record<number, string> = {
    400: 'Bad request',
    401: 'Unauthorized',
    403: 'Forbidden',
    404: 'Not found',
    405: 'Method not allowed',
    429: 'API rate limit exceeded',
    500: 'An unexpected error occurred',
    502: 'An invalid response was received from the upstream server',
    503: 'Service unavailable',
    504: 'The upstream server is timing out',
  };
  return messages[status] ?? 'The upstream server responded with ' + status;
}

/** ngx.var[name] for the variables the harness models; other names answer nil with a note. */
function nginxVar(ctx: RequestContext, env: PdkEnv, phase: Phase, name: string): string | undefined {
  const v = name.toLowerCase();
  if (v.startsWith('cookie_')) return cookieVar(ctx.headers, name.slice('cookie_'.length)) ?? undefined;
  if (v.startsWith('http_')) return httpVar(ctx.headers, v.slice('http_'.length)) ?? undefined;
  if (v.startsWith('arg_')) return argVar(ctx.query, name.slice('arg_'.length)) ?? undefined;
  switch (v) {
    case 'scheme':
      return ctx.scheme;
    case 'https':
      return ctx.scheme === 'https' ? 'on' : '';
    case 'host':
      return ctx.host;
    case 'request_uri':
      return ctx.requestUri;
    case 'uri':
      return normalizePath(decodeURIComponentSafe(ctx.rawPath));
    case 'args':
    case 'query_string':
      return ctx.query || undefined;
    case 'is_args':
      return ctx.query ? '?' : '';
    case 'request_method':
      return ctx.method;
    case 'remote_addr':
    case 'realip_remote_addr':
    case 'binary_remote_addr':
      return v === 'binary_remote_addr' ? undefined : ctx.clientIp;
    case 'server_port':
      return String(ctx.serverPort);
    case 'request':
      return `${ctx.method} ${ctx.requestUri} HTTP/1.1`;
    case 'server_protocol':
      return 'HTTP/1.1';
    case 'request_id':
      return ctx.requestId;
    case 'upstream_host':
      return ctx.upstreamHostVar;
    default:
      env.log({
        level: 'warn',
        message: `harness: nginx variable $${name} is not emulated; answered nil`,
        source: 'harness',
        phase,
      });
      return undefined;
  }
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
