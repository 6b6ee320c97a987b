/**
 * Local stand-ins for the echo backends of kong/docker-compose.yml (traefik/whoami with
 * `--name echo-N`): each answers with its name, the Host it got, the request line and the
 * headers. Plain text like whoami; JSON when the client accepts application/json.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { addressKey } from './dev-kong-config.js';

const MAX_ECHOED_BODY = 64 * 1024;

export interface EchoReply {
  name: string;
  /** The address the echo stands for (as the plugin's targets name it), e.g. echo-2:80. */
  target: string;
  /** Where this echo really listens. */
  listen: string;
  method: string;
  path: string;
  /** The Host header received (Kong's choice: preserve_host, set_target, set_host_header); null: none. */
  host: string | null;
  /** Header lines as received, in order. */
  headers: Array<[string, string]>;
  remoteAddr: string;
  body?: string;
}

export class EchoServer {
  private constructor(
    readonly name: string,
    /** host:port in the gateway's config, e.g. echo-2:80. */
    readonly standsFor: string,
    private readonly server: http.Server,
    readonly port: number,
  ) {}

  static async start(name: string, standsFor: string, host = '127.0.0.1'): Promise<EchoServer> {
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= MAX_ECHOED_BODY) chunks.push(c);
      });
      req.on('end', () => {
        const headers: Array<[string, string]> = [];
        for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) headers.push([req.rawHeaders[i] as string, req.rawHeaders[i + 1] as string]);
        const reply: EchoReply = {
          name,
          target: standsFor,
          listen: `${host}:${(server.address() as AddressInfo).port}`,
          method: req.method ?? 'GET',
          path: req.url ?? '/',
          host: headers.find(([n]) => n.toLowerCase() === 'host')?.[1] ?? null,
          headers,
          remoteAddr: `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`,
        };
        if (size > 0) reply.body = Buffer.concat(chunks).toString('utf8') + (size > MAX_ECHOED_BODY ? `\n[... ${size} bytes in all]` : '');
        const json = /application\/json/.test(req.headers.accept ?? '');
        const text = json ? `${JSON.stringify(reply, null, 2)}\n` : formatText(reply, req.httpVersion);
        res.writeHead(200, {
          'Content-Type': json ? 'application/json' : 'text/plain; charset=utf-8',
          'Content-Length': Buffer.byteLength(text),
        });
        res.end(req.method === 'HEAD' ? undefined : text);
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return new EchoServer(name, standsFor, server, (server.address() as AddressInfo).port);
  }

  get address(): { host: string; port: number } {
    const a = this.server.address() as AddressInfo;
    return { host: a.address, port: a.port };
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
      // In-flight requests finish; connections held open by clients do not keep us waiting.
      setTimeout(() => this.server.closeAllConnections(), 1000).unref();
    });
  }
}

function formatText(r: EchoReply, httpVersion: string): string {
  const lines = [`Name: ${r.name}`, `Target: ${r.target} (local echo on ${r.listen})`, `RemoteAddr: ${r.remoteAddr}`, `${r.method} ${r.path} HTTP/${httpVersion}`];
  for (const [k, v] of r.headers) lines.push(`${k}: ${v}`);
  let out = `${lines.join('\n')}\n`;
  if (r.body !== undefined) out += `\n${r.body}\n`;
  return out;
}

const LOOPBACK = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|::1|localhost)$/i;

/** Where a config address really goes on this machine. */
export interface Backend {
  /** host:port as the config (and the plugin's setTarget) names it. */
  readonly key: string;
  /** Local address to connect to. */
  readonly host: string;
  readonly port: number;
  /** The echo server standing for it; undefined: a loopback address proxied as is. */
  readonly echo?: EchoServer;
  readonly label: string;
}

/**
 * The map host:port -> local address (Kong would resolve the name through DNS): an echo
 * server for every address, except loopback addresses (your own local app), which are
 * used as they are.
 */
export class Backends {
  private readonly map = new Map<string, Backend>();

  get(host: string, port: number): Backend | undefined {
    return this.map.get(addressKey(host, port));
  }

  list(): Backend[] {
    return [...this.map.values()];
  }

  /**
   * Starts what `wanted` has and the map lacks; returns the keys added. Stops nothing. An echo
   * is named `name` (a pod), else after its host.
   */
  async add(wanted: ReadonlyArray<{ host: string; port: number; name?: string }>): Promise<string[]> {
    const added: string[] = [];
    // Name an echo after its host, unless that host appears with several ports.
    const hostCount = new Map<string, number>();
    for (const a of wanted) hostCount.set(a.host, (hostCount.get(a.host) ?? 0) + 1);
    for (const a of wanted) {
      const key = addressKey(a.host, a.port);
      if (this.map.has(key)) continue;
      if (LOOPBACK.test(a.host)) {
        this.map.set(key, { key, host: a.host === 'localhost' ? '127.0.0.1' : a.host, port: a.port, label: `${key} (used as is)` });
      } else {
        const name = a.name ?? ((hostCount.get(a.host) ?? 0) > 1 ? key : a.host);
        const echo = await EchoServer.start(name, key);
        this.map.set(key, { key, host: '127.0.0.1', port: echo.port, echo, label: `${key} -> echo server "${name}" on 127.0.0.1:${echo.port}` });
      }
      added.push(key);
    }
    return added;
  }

  /** Stops and forgets every address not in `keep`; returns the keys removed. */
  async retain(keep: ReadonlyArray<{ host: string; port: number }>): Promise<string[]> {
    const keys = new Set(keep.map((a) => addressKey(a.host, a.port)));
    const removed: Backend[] = [];
    for (const [key, b] of this.map) {
      if (!keys.has(key)) {
        this.map.delete(key);
        removed.push(b);
      }
    }
    await Promise.all(removed.map((b) => b.echo?.close()));
    return removed.map((b) => b.key);
  }

  async closeAll(): Promise<void> {
    await this.retain([]);
  }
}
