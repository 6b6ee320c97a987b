import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { log } from '../log.js';
import type { Metrics } from './metrics.js';
import { buildStatus } from './status.js';

/**
 * The HTTP listener of the plugin-server process: GET /metrics (Prometheus text) and
 * GET /status (JSON). It never keeps the process alive (server and sockets are unref'd),
 * never writes to stdout (Kong parses it), and never throws into its caller: a port in use
 * is logged and tried again later, since the plugin server Kong just replaced may still
 * hold it for a moment.
 */
export interface ListenerOptions {
  readonly port: number;
  readonly address: string;
  /** Delay before listening again after EADDRINUSE (default 30 s). */
  readonly retryMs?: number;
}

export class ObservabilityListener {
  /** Settles with the bound address once listening, or undefined if the first attempt failed. */
  readonly ready: Promise<AddressInfo | undefined>;
  private readonly server: Server;
  private readonly metrics: Promise<Metrics | undefined>;
  private retryTimer: NodeJS.Timeout | undefined;
  private attempts = 0;
  private closed = false;

  constructor(private readonly opts: ListenerOptions) {
    // prom-client is loaded only here, so a plugin server without metrics never pays for it.
    this.metrics = import('./metrics.js').then(
      (m) => m.createMetrics(),
      (err: unknown) => {
        log.warn({ err: message(err) }, 'metrics unavailable (prom-client not loaded); /status still served');
        return undefined;
      },
    );
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.unref();
    this.server.on('connection', (socket) => socket.unref());
    this.ready = new Promise((resolve) => {
      this.server.on('listening', () => {
        const bound = this.address();
        log.info({ address: bound?.address, port: bound?.port }, 'sticky-session metrics and status listening (GET /metrics, GET /status)');
        resolve(bound);
      });
      this.server.on('error', (err: NodeJS.ErrnoException) => {
        if (this.server.listening) {
          log.warn({ err: err.message }, 'metrics listener error');
          return;
        }
        resolve(undefined);
        this.retry(err);
      });
    });
    this.listen();
  }

  /** Where it listens now, if it does. */
  address(): AddressInfo | undefined {
    const a = this.server.address();
    return a !== null && typeof a === 'object' ? a : undefined;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    if (!this.server.listening) return;
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private listen(): void {
    if (this.closed) return;
    this.attempts++;
    this.server.listen({ port: this.opts.port, host: this.opts.address });
  }

  private retry(err: NodeJS.ErrnoException): void {
    const where = { address: this.opts.address, port: this.opts.port, err: err.message };
    if (err.code !== 'EADDRINUSE' || this.closed) {
      log.warn(where, 'metrics listener not started: metrics and status are off; requests are not affected');
      return;
    }
    const retryMs = this.opts.retryMs ?? 30_000;
    // Once at warn: a plugin server that never gets its port should not fill Kong's log.
    (this.attempts === 1 ? log.warn : log.debug).call(log, { ...where, retryInMs: retryMs }, 'metrics port in use: trying again later; requests are not affected');
    this.retryTimer = setTimeout(() => this.listen(), retryMs);
    this.retryTimer.unref();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const path = (req.url ?? '/').split('?', 1)[0];
      if (path !== '/metrics' && path !== '/status') return reply(res, 404, 'text/plain; charset=utf-8', 'not found: try GET /metrics or GET /status\n');
      if (req.method !== 'GET') return reply(res, 405, 'text/plain; charset=utf-8', 'only GET\n', { Allow: 'GET' });
      if (path === '/status') return reply(res, 200, 'application/json; charset=utf-8', `${JSON.stringify(buildStatus(), null, 2)}\n`);
      const metrics = await this.metrics;
      if (!metrics) return reply(res, 503, 'text/plain; charset=utf-8', 'metrics unavailable: prom-client could not be loaded\n');
      return reply(res, 200, metrics.registry.contentType, await metrics.scrape());
    } catch (err) {
      log.error({ err: message(err), url: req.url }, 'metrics/status request failed');
      if (!res.headersSent) reply(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
      else res.destroy();
    }
  }
}

function reply(res: ServerResponse, status: number, type: string, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store', ...headers });
  res.end(body);
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
