/**
 * `npm start`: a local dev gateway for machines without Docker.
 *
 * It serves HTTP on localhost and proxies to local echo backends, and every routing decision
 * comes from the REAL plugin server (kong-js-pluginserver, started with the Dockerfile's own
 * commands) through the Kong emulator the tests use: each HTTP request becomes an emulated
 * Kong request (round-robin over 2 emulated nginx workers), and its outcome is applied as
 * Kong would apply it: kong.response.exit -> that response; kong.service.set_target(host,
 * port) -> the request goes to the local backend standing for host:port; response headers
 * the plugin added (Set-Cookie) go out with the backend's response.
 *
 * It reads kong/kong.yml, the declarative config of the docker-compose gateway: the first
 * service, its route and the sticky-session plugin. One echo server per target address
 * (echo-1:80 ... -> 127.0.0.1:<free port>, standing for Kong's DNS); loopback targets are
 * proxied as they are. The file is watched: saving it works like `kong reload`.
 *
 * With --httproute it serves HTTPRoute manifests instead, as KIC would (dev-httproute.ts).
 *
 *   npm start                                  # http://localhost:8000
 *   npm start -- --port 9000 --config my.yml --plugin-log
 *   npm start -- --httproute [FILE...]         # default: kong/kubernetes/gateway-api/{app,httproute}.yaml
 *
 * Differences from Kong: one service and route; no Kong headers (Via, X-Kong-*); no
 * websocket upgrades; a config that passes Kong's schema but would fail at instance start
 * (e.g. "echo-3:80 drainig") is refused here, where Kong would answer 500 to every request.
 */
import { existsSync, readFileSync, statSync, openSync, readSync, closeSync, watch, watchFile, unwatchFile, type FSWatcher } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Backends, type Backend } from './dev-echo.js';
import {
  addressKey,
  DevConfigError,
  matchRoute,
  parseKongConfig,
  upstreamUri,
  type DevKongConfig,
  type DevRoute,
  type RouteMatch,
} from './dev-kong-config.js';
import { checkPluginConfig, loadInstanceCheck, type DevSite, type InstanceCheck, type ReloadOutcome, type Routed } from './dev-site.js';
import { REPO_DIR } from './dockerfile.js';
import { SERVER_ENV_NAMES } from '../../src/config/env.js';
import { KongEmulator, KongSchemaError, type PdkCall, type RequestResult, type UpstreamRequest, type UpstreamResponse } from './kong-emulator.js';

export type { ReloadOutcome } from './dev-site.js';

export interface DevGatewayOptions {
  /** Default 8000; 0 = any free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default kong/kong.yml of this repository. */
  configPath?: string;
  /**
   * HTTPRoute mode instead of kong.yml: these manifest files (Services, Deployments,
   * HTTPRoutes, ReferenceGrants, KongPlugins) in a test API server, the Kong services and
   * routes KIC makes of them (dev-httproute.ts). Empty: the repository's gateway-api example.
   */
  httproute?: readonly string[];
  /** Emulated nginx workers (each with its own plugin instances). Default 2. */
  workers?: number;
  /** Where the gateway's lines go (default: stderr). */
  log?: (line: string) => void;
  /** Also show the plugin server's own output (pino JSON, decision lines at debug). */
  pluginLog?: boolean;
  /** Watch the config file(s) and reload on change. Default true. */
  watch?: boolean;
  /**
   * The shell's environment (default: this process's). Every variable the plugin server reads
   * (src/config/env.ts: STICKY_SESSION_METRICS_PORT, ...) that is set here goes into the emulated
   * container, on top of the image's ENV; nginx then passes on what KONG_NGINX_MAIN_ENV declares.
   */
  env?: NodeJS.ProcessEnv;
  /**
   * Serve plugins-failover/ (log phase, change_on_failure) instead of plugins/: the image's
   * commands with that directory, as an operator switches.
   */
  failover?: boolean;
}

export interface DevGateway {
  /** http://<host>:<port> the gateway listens on. */
  readonly url: string;
  readonly port: number;
  /** The first of `files`. */
  readonly configPath: string;
  /** The files served and watched: kong.yml, or the HTTPRoute mode's manifests. */
  readonly files: readonly string[];
  readonly kong: KongEmulator;
  /** The addresses the gateway can proxy to, and where they really go. */
  backends(): Backend[];
  /** Re-reads the config file(s) now (the watcher calls this). */
  reload(): Promise<ReloadOutcome>;
  /** Called after every reload attempt that found the file changed. */
  onReload(listener: (r: ReloadOutcome) => void): () => void;
  /** Banner lines: what is served and a walk-through; `shown` is the gateway's URL, `rel` shortens file names. */
  describe(shown: string, rel: (file: string) => string): string[];
  /** Stops the HTTP server, the watcher, the plugin server (SIGTERM) and the backends. */
  stop(): Promise<void>;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'expect']);
const FORWARDED = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port', 'x-forwarded-path', 'x-forwarded-prefix', 'x-real-ip']);

function rawHeaderInput(raw: readonly string[]): Record<string, string[]> {
  const byLower = new Map<string, { name: string; values: string[] }>();
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as string;
    const e = byLower.get(name.toLowerCase());
    if (e) e.values.push(raw[i + 1] as string);
    else byLower.set(name.toLowerCase(), { name, values: [raw[i + 1] as string] });
  }
  return Object.fromEntries([...byLower.values()].map((e) => [e.name, e.values]));
}

function headerValuesOf(value: unknown): string[] {
  if (Array.isArray(value)) return value.map((v) => String(v));
  if (value === undefined || value === null) return [];
  return [String(value)];
}

/**
 * Kong buffers kong.response.add_header/set_header/clear_header made in access and applies
 * them, in order, to the upstream's response headers (header_filter): add appends, set
 * replaces, clear removes.
 */
export function applyPluginResponseHeaders(lines: Array<[string, string]>, calls: readonly PdkCall[]): Array<[string, string]> {
  let out = [...lines];
  const drop = (name: string): void => {
    out = out.filter(([n]) => n.toLowerCase() !== name.toLowerCase());
  };
  for (const c of calls) {
    if (c.luaError !== undefined) continue;
    const [name, value] = c.args;
    switch (c.method) {
      case 'kong.response.add_header':
        for (const v of headerValuesOf(value)) out.push([String(name), v]);
        break;
      case 'kong.response.set_header':
        drop(String(name));
        for (const v of headerValuesOf(value)) out.push([String(name), v]);
        break;
      case 'kong.response.clear_header':
        drop(String(name));
        break;
      case 'kong.response.set_headers':
        if (name && typeof name === 'object') {
          for (const [k, v] of Object.entries(name as Record<string, unknown>)) {
            drop(k);
            for (const x of headerValuesOf(v)) out.push([k, x]);
          }
        }
        break;
    }
  }
  return out;
}

function flat(lines: ReadonlyArray<readonly [string, string]>): string[] {
  return lines.flatMap(([k, v]) => [k, v]);
}

function describeTargets(cfg: DevKongConfig): string {
  const t = cfg.plugin.config.targets;
  return Array.isArray(t) && t.length > 0 ? t.map((x) => String(x)).join(', ') : '(none: kubernetes_* source)';
}

/** kong.yml mode: the first service of the file, its route and the sticky-session plugin; saving the file is `kong reload`. */
class KongYmlSite implements DevSite {
  readonly files: readonly string[];
  readonly pluginEnv = {};
  private readonly backendMap = new Backends();
  private kong!: KongEmulator;
  private current!: DevKongConfig;
  private lastText = '';
  private instanceCheck: InstanceCheck | undefined;

  constructor(readonly configPath: string) {
    this.files = [configPath];
  }

  backend(host: string, port: number): Backend | undefined {
    return this.backendMap.get(host, port);
  }

  backends(): Backend[] {
    return this.backendMap.list();
  }

  private wantedAddresses(cfg: DevKongConfig): Array<{ host: string; port: number }> {
    const s = { host: cfg.service.host.toLowerCase(), port: cfg.service.port };
    return cfg.targets.some((t) => t.host === s.host && t.port === s.port) ? cfg.targets : [...cfg.targets, s];
  }

  private validate(cfg: DevKongConfig): Record<string, unknown> {
    return checkPluginConfig(this.kong, this.instanceCheck, cfg.plugin.config, cfg.plugin.scope);
  }

  async start(kong: KongEmulator): Promise<void> {
    this.kong = kong;
    this.instanceCheck = await loadInstanceCheck();
    const text = readFileSync(this.configPath, 'utf8');
    const cfg = parseKongConfig(text);
    const filled = this.validate(cfg);
    await this.backendMap.add(this.wantedAddresses(cfg));
    this.kong.addPlugin({ id: cfg.plugin.id, config: filled, service: cfg.plugin.scope.service, route: cfg.plugin.scope.route });
    this.current = cfg;
    this.lastText = text;
  }

  private refused(error: string): ReloadOutcome {
    return { ok: false, error, message: `${path.basename(this.configPath)} NOT reloaded, the previous config stays: ${error}` };
  }

  async reload(): Promise<ReloadOutcome> {
    let text: string;
    try {
      text = readFileSync(this.configPath, 'utf8');
    } catch (err) {
      return this.refused(`cannot read ${this.configPath}: ${(err as Error).message}`);
    }
    if (text === this.lastText) return { ok: true, unchanged: true, message: 'unchanged' };
    let cfg: DevKongConfig;
    let filled: Record<string, unknown>;
    try {
      cfg = parseKongConfig(text);
      filled = this.validate(cfg);
    } catch (err) {
      // Nothing applied: a half-written file (an editor mid-save) is refused the same way and
      // read again on its next change event.
      this.lastText = text;
      return this.refused((err as Error).message);
    }
    const wanted = this.wantedAddresses(cfg);
    const started = await this.backendMap.add(wanted);
    const old = this.current;
    const samePlugin = old.plugin.id === cfg.plugin.id && old.plugin.scope.service === cfg.plugin.scope.service && old.plugin.scope.route === cfg.plugin.scope.route;
    // `kong reload` replaces every entity; Kong then gives each plugin a new __seq__ and every
    // worker starts new instances. The whole filled config replaces the stored one.
    if (samePlugin) {
      this.kong.updatePlugin(cfg.plugin.id, { config: filled });
    } else {
      this.kong.removePlugin(old.plugin.id);
      this.kong.addPlugin({ id: cfg.plugin.id, config: filled, service: cfg.plugin.scope.service, route: cfg.plugin.scope.route });
    }
    this.current = cfg;
    this.lastText = text;
    const stopped = await this.backendMap.retain(wanted);
    const parts = [`targets: ${describeTargets(cfg)}`];
    if (started.length) parts.push(`backends started: ${started.join(', ')}`);
    if (stopped.length) parts.push(`backends stopped: ${stopped.join(', ')}`);
    return { ok: true, message: `${path.basename(this.configPath)} reloaded (new plugin instances): ${parts.join('; ')}`, backendsStarted: started, backendsStopped: stopped };
  }

  route(method: string, hostHeader: string, reqPath: string): Routed | null {
    const cfg = this.current;
    const match = cfg.route ? matchRoute(cfg.route, method, hostHeader, reqPath) : null;
    if (!cfg.route || !match) return null;
    // The only plugin: no id, so a request in flight across a reload finds the new entity.
    return { service: cfg.service, route: cfg.route, match, cookieName: String(this.kong.plugins()[0]?.config.cookie_name ?? '') };
  }

  balance(routed: Routed): { host: string; port: number; note: string } {
    return { host: routed.service.host, port: routed.service.port, note: ' (no target from the plugin: Kong balances to the service host)' };
  }

  describe(shown: string, rel: (file: string) => string): string[] {
    const file = rel(this.configPath);
    const plugin = this.kong.plugins()[0];
    const targets = Array.isArray(plugin?.config.targets) ? (plugin.config.targets as string[]) : [];
    // The walk-through names one target as the example (the user takes whichever answered).
    const example = (targets[1] ?? targets[0] ?? 'echo-2:80').split(/\s+/)[0] ?? 'echo-2:80';
    const exampleName = example.replace(/:\d+$/, '');
    return [
      `  config    ${file}  (watched: save it to reload, like \`kong reload\`)`,
      `  targets   ${targets.join(', ') || '(none)'}`,
      '  backends',
      ...this.backends().map((b) => `    ${b.label}`),
      '',
      `Walk-through (the cookie jar plays the browser; say the first answer came from ${exampleName}):`,
      `  curl -i -c jar -b jar ${shown}/     # Set-Cookie: sticky=...; "Name: ${exampleName}" in the body`,
      `  curl -i -c jar -b jar ${shown}/     # again: same backend, no new cookie`,
      `  # in ${file} change "- ${example}" to "- ${example} draining" and save`,
      `  curl -i -c jar -b jar ${shown}/     # the session stays on ${exampleName}`,
      `  for i in 1 2 3 4 5 6; do curl -s ${shown}/ | head -1; done   # new clients: never ${exampleName}`,
      `  # remove the "- ${example} draining" line and save`,
      `  curl -i -c jar -b jar ${shown}/     # new Set-Cookie, another backend`,
    ];
  }

  async close(): Promise<void> {
    await this.backendMap.closeAll();
  }
}

class Gateway implements DevGateway {
  url = '';
  port = 0;
  private server: http.Server | undefined;
  private readonly agent = new http.Agent({ keepAlive: true });
  private rr = 0;
  private listeners = new Set<(r: ReloadOutcome) => void>();
  private reloading: Promise<unknown> = Promise.resolve();
  private watchers: FSWatcher[] = [];
  private debounce: NodeJS.Timeout | undefined;
  private tail: NodeJS.Timeout | undefined;
  private tailOffset = 0;
  private stopped = false;
  private readonly log: (line: string) => void;

  constructor(
    readonly kong: KongEmulator,
    readonly site: DevSite,
    opts: DevGatewayOptions,
  ) {
    this.log = opts.log ?? ((line) => process.stderr.write(`${line}\n`));
  }

  get files(): readonly string[] {
    return this.site.files;
  }

  get configPath(): string {
    return this.site.files[0] as string;
  }

  backends(): Backend[] {
    return this.site.backends();
  }

  describe(shown: string, rel: (file: string) => string): string[] {
    return this.site.describe(shown, rel);
  }

  onReload(listener: (r: ReloadOutcome) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async listen(port: number, host: string): Promise<void> {
    const server = http.createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        this.log(`dev-gateway: ${req.method} ${req.url}: ${(err as Error).stack ?? String(err)}`);
        if (!res.headersSent) {
          res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' });
          res.end(`dev gateway error: ${(err as Error).message}\n`);
        } else res.destroy();
      });
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        reject(err.code === 'EADDRINUSE' ? new Error(`port ${port} on ${host} is in use: try PORT=8080 npm start`) : err);
      });
      server.listen(port, host, () => resolve());
    });
    const a = server.address() as AddressInfo;
    this.port = a.port;
    this.url = `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  }

  startWatching(): void {
    const schedule = (): void => {
      if (this.stopped) return;
      clearTimeout(this.debounce);
      this.debounce = setTimeout(() => void this.reload(), 150);
    };
    const byDir = new Map<string, Set<string>>();
    for (const file of this.files) {
      const names = byDir.get(path.dirname(file)) ?? new Set<string>();
      names.add(path.basename(file));
      byDir.set(path.dirname(file), names);
    }
    for (const [dir, names] of byDir) {
      // The directory, not the file: editors often save by writing a new file and renaming it.
      const watcher = watch(dir, (_event, filename) => {
        if (filename === null || names.has(filename)) schedule();
      });
      watcher.on('error', () => undefined);
      this.watchers.push(watcher);
    }
    // Fallback for file systems without inotify events (network and VM mounts).
    for (const file of this.files) watchFile(file, { interval: 1000 }, schedule);
  }

  startPluginLogTail(): void {
    const file = path.join(this.kong.prefixDir, 'pluginserver.log');
    let partial = '';
    // kong-pdk's logger draws a line in pieces, going back up ("ESC[1A") to redraw it: a line
    // is printed once the next one does not take it back, or when the log goes quiet.
    let held: string[] = [];
    const emit = (lines: string[]): void => {
      for (const line of lines) if (line.trim()) this.log(`  [plugin server] ${prettyPluginLine(line.trim())}`);
    };
    const poll = (): void => {
      const size = existsSync(file) ? statSync(file).size : 0;
      if (size <= this.tailOffset) {
        emit(held);
        held = [];
        return;
      }
      const fd = openSync(file, 'r');
      const buf = Buffer.alloc(size - this.tailOffset);
      readSync(fd, buf, 0, buf.length, this.tailOffset);
      closeSync(fd);
      this.tailOffset = size;
      const lines = (partial + buf.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      for (let line of lines) {
        while (line.startsWith('\x1b[1A')) {
          held.pop();
          line = line.slice(4);
        }
        held.push(line.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '').replace(/\r/g, ''));
      }
      emit(held.slice(0, -1));
      held = held.slice(-1);
    };
    this.tail = setInterval(poll, 200);
  }

  reload(): Promise<ReloadOutcome> {
    const next = this.reloading.then(async () => {
      if (this.stopped) return { ok: false, message: 'stopped' };
      const r = await this.site.reload().catch((err: unknown): ReloadOutcome => {
        const error = `reload failed: ${(err as Error).message}`;
        return { ok: false, error, message: error };
      });
      if (!r.unchanged) this.report(r);
      return r;
    });
    this.reloading = next;
    return next;
  }

  private report(r: ReloadOutcome): void {
    this.log(`dev-gateway: ${r.message}`);
    for (const l of this.listeners) l(r);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const t0 = Date.now();
    const method = req.method ?? 'GET';
    const requestUri = req.url ?? '/';
    const hostHeader = req.headers.host ?? `localhost:${this.port}`;
    const reqPath = requestUri.split('?')[0] ?? '/';
    const clientIp = (req.socket.remoteAddress ?? '127.0.0.1').replace(/^::ffff:/, '');

    const routed = this.site.route(method, hostHeader, reqPath);
    if (!routed) {
      req.resume();
      const body = JSON.stringify({ message: 'no Route matched with those values' });
      res.writeHead(404, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
      this.log(`${method} ${requestUri} -> 404 no route matched`);
      return;
    }
    const { service, route, match } = routed;
    const cookieName = routed.cookieName ?? '';
    const hadCookie = cookieName !== '' && new RegExp(`(^|;)\\s*${cookieName.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}=`, 'i').test(
      req.rawHeaders.filter((_, i, a) => i % 2 === 1 && (a[i - 1] as string).toLowerCase() === 'cookie').join(';'),
    );

    const worker = this.rr++ % this.kong.workers.length;
    let upstreamRes: http.IncomingMessage | undefined;
    let unknownTarget: string | undefined;
    let dest = '';
    const upstream = (u: UpstreamRequest): Promise<UpstreamResponse> | UpstreamResponse => {
      const t = u.target ? { ...u.target, note: '' } : this.site.balance(routed);
      const b = this.site.backend(t.host, t.port);
      // An echo standing for an address rather than a name (a pod's): say which.
      dest = addressKey(t.host, t.port) + (b?.echo && b.echo.name !== t.host ? ` ${b.echo.name}` : '') + t.note;
      if (!b) {
        unknownTarget = addressKey(t.host, t.port);
        return { status: 502 };
      }
      return this.proxy(req, res, u, b, this.kongUpstreamHeaders(u, req, clientIp, hostHeader, reqPath, route, match), upstreamUri(service, route, match, u.path)).then((r) => {
        upstreamRes = r;
        const headers: Record<string, string | string[]> = {};
        for (const [k, v] of Object.entries(r.headers)) if (v !== undefined) headers[k] = v;
        return { status: r.statusCode ?? 502, headers };
      });
    };

    let result: RequestResult;
    try {
      result = await this.kong.request(
        { method, scheme: 'http', host: hostHeader, path: requestUri, headers: rawHeaderInput(req.rawHeaders), clientIp, service, route, serverPort: this.port },
        { worker, upstream, ...(routed.plugin !== undefined ? { plugin: routed.plugin } : {}) },
      );
    } catch (err) {
      req.resume();
      upstreamRes?.destroy();
      throw err;
    }
    if (!upstreamRes) req.resume();

    const setCookies = result.responseHeaders['set-cookie'] ?? [];
    const setCookie = cookieName === '' ? setCookies.length > 0 : setCookies.some((c) => c.toLowerCase().startsWith(`${cookieName.toLowerCase()}=`));
    const notes = [`worker ${worker}`];
    if (cookieName !== '') notes.push(`${cookieName} cookie ${hadCookie ? 'sent' : 'none'}`);
    if (setCookie) notes.push(hadCookie ? 'Set-Cookie: a new token replaces it' : 'Set-Cookie: new session');

    if (upstreamRes) {
      const lines: Array<[string, string]> = [];
      const raw = upstreamRes.rawHeaders;
      for (let i = 0; i + 1 < raw.length; i += 2) {
        const name = raw[i] as string;
        if (!HOP_BY_HOP.has(name.toLowerCase())) lines.push([name, raw[i + 1] as string]);
      }
      const out = applyPluginResponseHeaders(lines, result.pdkCalls);
      res.writeHead(upstreamRes.statusCode ?? 502, flat(out));
      const ures = upstreamRes;
      ures.pipe(res);
      ures.on('error', () => res.destroy());
      res.on('close', () => {
        if (!ures.complete) ures.destroy();
      });
    } else if (unknownTarget !== undefined && !result.exit && result.luaError === undefined) {
      const known = this.site.backends().map((b) => b.key).join(', ');
      const body = `dev gateway: no local backend for target ${unknownTarget} (Kong would resolve it through DNS); known: ${known}\n`;
      const out = applyPluginResponseHeaders([['Content-Type', 'text/plain; charset=utf-8'], ['Content-Length', String(Buffer.byteLength(body))]], result.pdkCalls);
      res.writeHead(502, flat(out));
      res.end(body);
      notes.push('unknown target');
    } else {
      // Kong's own response: kong.response.exit, a 500 after a Lua error, a 502 when the backend failed.
      const body = result.body ?? '';
      const lines: Array<[string, string]> = [];
      for (const [k, vs] of Object.entries(result.responseHeaders)) for (const v of vs) lines.push([k, v]);
      if (body && !lines.some(([k]) => k === 'content-type')) lines.push(['content-type', 'application/json; charset=utf-8']);
      lines.push(['content-length', String(Buffer.byteLength(body))]);
      res.writeHead(result.status, flat(lines));
      res.end(body);
      if (result.exit) dest = 'exit by the plugin';
    }

    this.log(`${method} ${requestUri} -> ${dest || 'nowhere'} ${result.status} (${notes.join(', ')}, ${Date.now() - t0} ms)`);
    if (result.luaError !== undefined) this.log(`  Kong: ${result.luaError}`);
    else if (result.error !== undefined) this.log(`  Kong: plugin error (request proxied as if the plugin did nothing): ${result.error}`);
    for (const l of result.logs) {
      if ((l.level === 'err' || l.level === 'warn' || l.level === 'crit') && l.message !== result.error && l.message !== result.luaError) {
        this.log(`  ${l.source === 'plugin' ? 'plugin' : 'Kong'} [${l.level}]: ${l.message}`);
      }
    }
  }

  /** The request headers nginx sends upstream in Kong's proxy location (default trusted_ips: none). */
  private kongUpstreamHeaders(
    u: UpstreamRequest,
    req: http.IncomingMessage,
    clientIp: string,
    hostHeader: string,
    reqPath: string,
    route: DevRoute,
    match: RouteMatch,
  ): Array<[string, string]> {
    const connectionListed = new Set(
      (req.headers.connection ?? '')
        .split(',')
        .map((s) => s.trim().toLowerCase())
        .filter(Boolean),
    );
    const out: Array<[string, string]> = u.headers
      .filter(([n]) => {
        const l = n.toLowerCase();
        return !HOP_BY_HOP.has(l) && !FORWARDED.has(l) && !connectionListed.has(l);
      })
      .map(([n, v]) => [n, v]);
    const xff = req.headers['x-forwarded-for'];
    out.push(['X-Forwarded-For', xff ? `${Array.isArray(xff) ? xff.join(', ') : xff}, ${clientIp}` : clientIp]);
    out.push(['X-Forwarded-Proto', 'http']);
    out.push(['X-Forwarded-Host', hostHeader.replace(/:\d+$/, '')]);
    out.push(['X-Forwarded-Port', String(this.port)]);
    out.push(['X-Forwarded-Path', reqPath]);
    if (route.strip_path !== false && match.prefix !== '' && match.prefix !== '/') out.push(['X-Forwarded-Prefix', match.prefix]);
    out.push(['X-Real-IP', clientIp]);
    return out;
  }

  private proxy(req: http.IncomingMessage, res: http.ServerResponse, u: UpstreamRequest, b: Backend, headers: Array<[string, string]>, uri: string): Promise<http.IncomingMessage> {
    return new Promise((resolve, reject) => {
      const preq = http.request({ host: b.host, port: b.port, method: u.method, path: uri, headers: flat(headers), agent: this.agent });
      preq.on('response', resolve);
      preq.on('error', reject);
      // The client went away before the response: drop the upstream request too.
      res.once('close', () => {
        if (!res.writableFinished) preq.destroy();
      });
      req.pipe(preq);
    });
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.debounce);
    clearInterval(this.tail);
    for (const w of this.watchers) w.close();
    for (const file of this.files) unwatchFile(file);
    if (this.server) {
      const server = this.server;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        setTimeout(() => server.closeAllConnections(), 500).unref();
      });
    }
    await this.reloading;
    await this.kong.stop();
    await this.site.close();
    this.agent.destroy();
  }
}

function prettyPluginLine(line: string): string {
  if (!line.startsWith('{')) return line;
  try {
    const o = JSON.parse(line) as Record<string, unknown>;
    const levels: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };
    const { level, msg, time: _t, pid: _p, name: _n, hostname: _h, ...rest } = o;
    const kv = Object.entries(rest)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ');
    return `${levels[level as number] ?? String(level)} ${String(msg)} ${kv}`.trim();
  } catch {
    return line;
  }
}

/** The variables of `shell` that the plugin server reads, as a container would be given them. */
function pluginServerEnv(shell: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of SERVER_ENV_NAMES) if (shell[name] !== undefined) out[name] = shell[name];
  return out;
}

/** The repository's Gateway API example: what `npm start -- --httproute` serves without files. */
export const DEFAULT_HTTPROUTE_FILES: readonly string[] = ['app.yaml', 'httproute.yaml'].map((f) => path.join(REPO_DIR, 'kong', 'kubernetes', 'gateway-api', f));

async function openSite(opts: DevGatewayOptions): Promise<DevSite> {
  if (opts.httproute) {
    const files = (opts.httproute.length > 0 ? opts.httproute : DEFAULT_HTTPROUTE_FILES).map((f) => path.resolve(f));
    for (const f of files) if (!existsSync(f)) throw new DevConfigError(`manifest file not found: ${f}`);
    // Loaded on demand: the manifest validators take a second to load, kong.yml mode needs none of it.
    const { HttpRouteSite } = await import('./dev-httproute.js');
    return HttpRouteSite.open(files);
  }
  const configPath = path.resolve(opts.configPath ?? path.join(REPO_DIR, 'kong', 'kong.yml'));
  if (!existsSync(configPath)) throw new DevConfigError(`config file not found: ${configPath}`);
  return new KongYmlSite(configPath);
}

/** Starts the gateway: plugin server, backends, HTTP listener, config watcher. */
export async function startDevGateway(opts: DevGatewayOptions = {}): Promise<DevGateway> {
  if (!existsSync(path.join(REPO_DIR, 'dist', 'handler.js'))) {
    throw new Error('dist/ is not built: run `npm run build` (npm start does it) first');
  }
  const site = await openSite(opts);
  let kong: KongEmulator;
  try {
    kong = await KongEmulator.start({
      ...(opts.failover ? { pluginsDir: 'plugins-failover' } : { useDockerfile: true }),
      workers: opts.workers ?? 2,
      env: { STICKY_SESSION_LOG_LEVEL: opts.pluginLog ? 'debug' : 'info', ...pluginServerEnv(opts.env ?? process.env), ...site.pluginEnv },
    });
  } catch (err) {
    await site.close().catch(() => undefined);
    throw err;
  }
  const gw = new Gateway(kong, site, opts);
  try {
    if (opts.pluginLog) gw.startPluginLogTail();
    await site.start(kong);
    await gw.listen(opts.port ?? 8000, opts.host ?? '127.0.0.1');
    if (opts.watch !== false) gw.startWatching();
  } catch (err) {
    await gw.stop().catch(() => undefined);
    if (err instanceof KongSchemaError) throw new Error(`${gw.configPath}: ${err.message}`);
    throw err;
  }
  return gw;
}

// -----------------------------------------------------------------------------------------
// CLI

function banner(gw: DevGateway, host: string): string {
  const shown = host === '127.0.0.1' || host === 'localhost' || host === '0.0.0.0' || host === '::' ? `http://localhost:${gw.port}` : gw.url;
  const rel = (file: string): string => {
    const relative = path.relative(process.cwd(), file);
    return relative && !relative.startsWith('..') ? relative : file;
  };
  const lines = [
    '',
    `sticky-session dev gateway on ${shown}/ (listening on ${gw.url.replace(/^http:\/\//, '')})`,
    `  plugin    ${gw.kong.info.Name} ${gw.kong.info.Version} (phases: ${[...gw.kong.info.Phases].sort().join(', ')}), served by the real kong-js-pluginserver (pid ${gw.kong.serverPid ?? '?'}), ${gw.kong.workers.length} emulated nginx workers`,
    ...gw.describe(shown, rel),
    '',
    'One line per request below; --plugin-log also shows the plugin server. Ctrl-C stops.',
    '',
  ];
  return lines.join('\n');
}

const HELP = `Usage: npm start [-- options]
       npm start -- --httproute [FILE...] [options]

A local gateway on http://localhost:8000 with the sticky-session plugin (the real plugin
server, through the test Kong emulator) and one echo backend per target of kong/kong.yml.

With --httproute: the manifests (default kong/kubernetes/gateway-api/app.yaml and
httproute.yaml) in a local test API server, one echo backend per pod of each Deployment,
and the Kong services and routes KIC makes of each HTTPRoute rule, the plugin on each.
Saving a file applies it, like kubectl apply.

Options (environment in brackets):
  -p, --port N        listen port, 0 = any free one [PORT] (default 8000)
      --host ADDR     listen address [DEV_GATEWAY_HOST] (default 127.0.0.1)
  -c, --config FILE   Kong declarative config (default kong/kong.yml)
      --httproute     serve HTTPRoute manifests: the FILEs given, else the example's
      --workers N     emulated nginx workers (default 2)
      --plugin-log    also print the plugin server's log (decision lines at debug)
      --failover      serve plugins-failover/ (change_on_failure: log phase on every request)
  -h, --help

The plugin server gets the variables it reads from this environment, as the image would:
STICKY_SESSION_LOG_LEVEL, STICKY_SESSION_METRICS_PORT, STICKY_SESSION_METRICS_ADDRESS, STICKY_SESSION_WATCH_SCOPE, KUBECONFIG.
`;

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      port: { type: 'string', short: 'p' },
      host: { type: 'string' },
      config: { type: 'string', short: 'c' },
      httproute: { type: 'boolean' },
      workers: { type: 'string' },
      'plugin-log': { type: 'boolean' },
      failover: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stderr.write(HELP);
    return;
  }
  const portText = values.port ?? process.env.PORT ?? '8000';
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`bad port: ${portText}`);
  const workers = Number(values.workers ?? '2');
  if (!Number.isInteger(workers) || workers < 1 || workers > 64) throw new Error(`bad --workers: ${values.workers}`);
  const host = values.host ?? process.env.DEV_GATEWAY_HOST ?? '127.0.0.1';
  // npm runs scripts in the package directory; a relative --config is meant from where npm was run.
  const base = process.env.INIT_CWD ?? process.cwd();
  const configPath = values.config ? path.resolve(base, values.config) : undefined;
  if (positionals.length > 0 && !values.httproute) throw new Error(`unexpected argument ${positionals[0]}: files are for --httproute (kong.yml: --config FILE)`);
  if (values.httproute && values.config) throw new Error('--config and --httproute exclude each other');
  const httproute = values.httproute ? positionals.map((f) => path.resolve(base, f)) : undefined;

  process.stderr.write(`starting ${httproute ? 'the test API server, ' : ''}the plugin server and the echo backends...\n`);
  const gw = await startDevGateway({ port, host, configPath, httproute, workers, pluginLog: values['plugin-log'] ?? false, failover: values.failover ?? false });
  process.stderr.write(`${banner(gw, host)}\n`);

  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`\n${signal}: stopping (plugin server gets SIGTERM)...\n`);
    gw.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`stop failed: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    process.stderr.write(`dev-gateway: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
