import { request as httpRequest } from 'node:http';
import type { KongPdk } from '../../src/kong/pdk.js';
import type { PluginConfig } from '../../src/config/schema.js';
import { StickySession } from '../../src/handler.js';
import { kongConfig } from '../support/kong-config.js';

export const SECRET = 'observability-secret-0123456789abcdef-0123';

/**
 * Kong's side of the PDK, reduced to what src/kong/pdk.ts declares (as in
 * test/unit/handler.test.ts): calls are recorded and answered from the request described.
 */
export class FakeKong implements KongPdk {
  readonly calls: Array<{ readonly name: string; readonly args: readonly unknown[] }> = [];
  readonly vars = new Map<string, string>();
  readonly headers = new Map<string, string>();

  private call<T>(name: string, args: unknown[], result: T): Promise<T> {
    this.calls.push({ name, args });
    return Promise.resolve(result);
  }

  readonly request = {
    getHeader: (name: string) => this.call('request.getHeader', [name], this.headers.get(name.toLowerCase()) ?? null),
    getForwardedScheme: () => this.call('request.getForwardedScheme', [], 'http'),
  };
  readonly nginx = { getVar: (name: string) => this.call('nginx.getVar', [name], this.vars.get(name) ?? null) };
  readonly router = {
    getService: () => this.call('router.getService', [], null),
    getRoute: () => this.call('router.getRoute', [], null),
  };
  readonly service = {
    setTarget: (host: string, port: number) => this.call('service.setTarget', [host, port], true),
    request: { setHeader: (name: string, value: string) => this.call('service.request.setHeader', [name, value], true) },
  };
  readonly response = {
    addHeader: (name: string, value: string) => this.call('response.addHeader', [name, value], true),
    setHeader: (name: string, value: string) => this.call('response.setHeader', [name, value], true),
    exit: (status: number, body?: unknown, headers?: Record<string, string>) => this.call('response.exit', [status, body, headers], undefined),
    getStatus: () => this.call('response.getStatus', [], 200),
  };
  readonly log = { serialize: () => this.call('log.serialize', [], '{}') };

  /** "host:port" the request was sent to, if any. */
  target(): string | undefined {
    const c = this.calls.find((x) => x.name === 'service.setTarget');
    return c && `${c.args[0]}:${c.args[1]}`;
  }

  exitStatus(): number | undefined {
    return this.calls.find((x) => x.name === 'response.exit')?.args[0] as number | undefined;
  }

  /** The token of the Set-Cookie header, if one was sent. */
  token(): string | undefined {
    const c = this.calls.find((x) => x.name === 'response.addHeader' && x.args[0] === 'Set-Cookie');
    return c ? /^sticky_session=([^;]*)/.exec(c.args[1] as string)?.[1] : undefined;
  }
}

const instances: StickySession[] = [];

/** A plugin instance, kept alive for the whole file (shared state lives while instances do). */
export function plugin(over: Partial<PluginConfig>): StickySession {
  const p = new StickySession(kongConfig({ secrets: [SECRET], service_id: 'svc', ...over }) satisfies PluginConfig);
  instances.push(p);
  return p;
}

/** One request through access(), with the affinity cookie if given. */
export async function send(p: StickySession, token?: string): Promise<FakeKong> {
  const kong = new FakeKong();
  if (token !== undefined) kong.vars.set('cookie_sticky_session', token);
  await p.access(kong);
  return kong;
}

export interface HttpAnswer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

export function http(url: string, method = 'GET'): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Prometheus text format -> `name{a="1",b="2"}` (labels sorted) -> value. */
export function parseMetrics(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[k!] = v!;
    samples.set(sample(m[1]!, labels), Number(m[3]));
  }
  return samples;
}

export function sample(name: string, labels: Record<string, string> = {}): string {
  const pairs = Object.keys(labels)
    .sort()
    .map((k) => `${k}="${labels[k]}"`);
  return pairs.length > 0 ? `${name}{${pairs.join(',')}}` : name;
}
