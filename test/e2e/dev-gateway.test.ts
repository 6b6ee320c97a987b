/**
 * The local dev gateway (`npm start`) end to end: plain HTTP in front, the real plugin
 * server deciding through the Kong emulator, local echo backends behind, and kong.yml
 * reloads like `kong reload`. The steps run in order and share one gateway and one client.
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyPluginResponseHeaders, startDevGateway, type DevGateway, type ReloadOutcome } from '../harness/dev-gateway.js';
import { REPO_DIR } from '../harness/dockerfile.js';

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  setCookie: string[];
  body: string;
  /** The echo backend that answered (its Name: line), if one did. */
  name: string | undefined;
}

let gw: DevGateway;
let dir: string;
let configPath: string;
let original: string;
const lines: string[] = [];

function request(
  pathname: string,
  opts: { method?: string; headers?: Array<[string, string]>; body?: string; host?: string } = {},
): Promise<Reply> {
  const url = new URL(pathname, gw.url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: url.hostname, port: url.port, path: url.pathname + url.search, method: opts.method ?? 'GET', headers: [['Host', opts.host ?? url.host], ...(opts.headers ?? [])].flat(), agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            setCookie: res.headers['set-cookie'] ?? [],
            body,
            name: /^Name: (.+)$/m.exec(body)?.[1],
          });
        });
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** What a browser keeps: the `sticky` cookie from Set-Cookie. */
function cookieOf(r: Reply): string {
  const c = r.setCookie.find((x) => x.startsWith('sticky='));
  if (!c) throw new Error(`no sticky Set-Cookie in ${JSON.stringify(r.headers)}`);
  return c.split(';')[0] as string;
}

/** Writes the config file and waits for the gateway's watcher to (try to) reload it. */
async function writeConfig(text: string): Promise<ReloadOutcome> {
  const outcome = new Promise<ReloadOutcome>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no reload within 5 s')), 5000);
    const off = gw.onReload((r) => {
      clearTimeout(timer);
      off();
      resolve(r);
    });
  });
  writeFileSync(configPath, text);
  return outcome;
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'devgw-'));
  configPath = path.join(dir, 'kong.yml');
  copyFileSync(path.join(REPO_DIR, 'kong', 'kong.yml'), configPath);
  original = readFileSync(configPath, 'utf8');
  gw = await startDevGateway({ port: 0, configPath, log: (l) => lines.push(l) });
});

afterAll(async () => {
  await gw?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('dev gateway (npm start)', () => {
  let jar: string;
  let pinned: string;
  const echos = ['echo-1', 'echo-2', 'echo-3'];
  /** The config the gateway last accepted. */
  let good: string;
  /** The target removed from the config. */
  let removed: string;

  it('serves the first service of kong.yml with one local echo per target', () => {
    expect(gw.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(gw.backends().map((b) => b.key)).toEqual(['echo-1:80', 'echo-2:80', 'echo-3:80']);
    expect(gw.kong.plugins()[0]?.config.targets).toEqual(['echo-1:80', 'echo-2:80', 'echo-3:80']);
  });

  it('first request: a Set-Cookie from the plugin and a body from one echo backend', async () => {
    const r = await request('/hello?x=1');
    expect(r.status).toBe(200);
    expect(r.setCookie).toHaveLength(1);
    expect(r.setCookie[0]).toMatch(/^sticky=[\w-]+; Path=\/; HttpOnly; SameSite=Lax$/);
    expect(echos).toContain(r.name);
    // what the backend got: the client's Host (kong.yml's route has preserve_host), path and query
    expect(r.body).toMatch(/^GET \/hello\?x=1 HTTP\/1\.1$/m);
    expect(r.body).toMatch(new RegExp(`^Host: ${new URL(gw.url).host}$`, 'm'));
    expect(r.body).toMatch(/^X-Forwarded-For: 127\.0\.0\.1$/m);
    jar = cookieOf(r);
    pinned = r.name as string;
    expect(lines.some((l) => l.startsWith(`GET /hello?x=1 -> ${pinned}:80 200`) && l.includes('Set-Cookie: new session'))).toBe(true);
  });

  it('with the cookie, every request reaches the same backend, on both emulated workers, without a new cookie', async () => {
    const before = lines.length;
    for (let i = 0; i < 6; i++) {
      const r = await request('/', { headers: [['Cookie', jar]] });
      expect(r.status).toBe(200);
      expect(r.name).toBe(pinned);
      expect(r.setCookie).toEqual([]);
      expect(r.body).toMatch(new RegExp(`^Cookie: ${jar}$`, 'm'));
    }
    const logged = lines.slice(before).filter((l) => l.startsWith('GET / -> '));
    expect(logged.some((l) => l.includes('worker 0'))).toBe(true);
    expect(logged.some((l) => l.includes('worker 1'))).toBe(true);
  });

  it('finds the cookie in any of several Cookie headers and forwards them all', async () => {
    const r = await request('/', { headers: [['Cookie', 'theme=dark'], ['Cookie', jar]] });
    expect(r.name).toBe(pinned);
    expect(r.setCookie).toEqual([]);
    expect(r.body).toMatch(/^Cookie: theme=dark$/m);
    expect(r.body).toMatch(new RegExp(`^Cookie: ${jar}$`, 'm'));
  });

  it('forwards a request body, and answers JSON to clients that accept it', async () => {
    const r = await request('/submit', { method: 'POST', headers: [['Cookie', jar], ['Accept', 'application/json'], ['Content-Type', 'text/plain']], body: 'hello body' });
    expect(r.status).toBe(200);
    const echo = JSON.parse(r.body) as { name: string; method: string; path: string; body: string; headers: Array<[string, string]> };
    expect(echo).toMatchObject({ name: pinned, method: 'POST', path: '/submit', body: 'hello body', host: new URL(gw.url).host });
    expect(echo.headers).toContainEqual(['Host', new URL(gw.url).host]);
  });

  it("preserve_host: the backend gets the client's Host with it, the target's host without it, new or pinned", async () => {
    const clientHost = 'Shop.Example:8000';
    const echoOf = async (headers: Array<[string, string]>) => {
      const r = await request('/', { host: clientHost, headers: [['Accept', 'application/json'], ...headers] });
      expect(r.status).toBe(200);
      return { r, echo: JSON.parse(r.body) as { name: string; host: string | null } };
    };
    // false first: the last write puts kong.yml back as it was (writing unchanged text reloads nothing).
    for (const preserveHost of [false, true]) {
      const outcome = await writeConfig(original.replace('preserve_host: true', `preserve_host: ${preserveHost}`));
      expect(outcome.ok).toBe(true);
      const fresh = await echoOf([]);
      expect(fresh.echo.host).toBe(preserveHost ? clientHost : fresh.echo.name);
      const pinnedNow = await echoOf([['Cookie', cookieOf(fresh.r)]]);
      expect(pinnedNow.echo.name).toBe(fresh.echo.name);
      expect(pinnedNow.echo.host).toBe(preserveHost ? clientHost : fresh.echo.name);
    }
  });

  it('draining target (kong.yml edited): the session stays, new clients never get it', async () => {
    const outcome = await writeConfig(original.replace(`- ${pinned}:80`, `- ${pinned}:80 draining`));
    expect(outcome.ok).toBe(true);
    expect(outcome.message).toContain(`${pinned}:80 draining`);
    expect(gw.kong.plugins()[0]?.config.targets).toContain(`${pinned}:80 draining`);

    for (let i = 0; i < 3; i++) {
      const r = await request('/', { headers: [['Cookie', jar]] });
      expect(r.name).toBe(pinned);
      expect(r.setCookie).toEqual([]);
    }
    const fresh = await Promise.all(Array.from({ length: 20 }, () => request('/')));
    for (const r of fresh) {
      expect(r.status).toBe(200);
      expect(r.setCookie).toHaveLength(1);
      expect(r.name).not.toBe(pinned);
      expect(echos).toContain(r.name);
    }
  });

  it('removed target: the old cookie gets a new Set-Cookie and another backend; its echo stops', async () => {
    removed = pinned;
    good = original.replace(new RegExp(`\\n\\s*- ${pinned}:80`), '');
    const outcome = await writeConfig(good);
    expect(outcome.ok).toBe(true);
    expect(gw.kong.plugins()[0]?.config.targets).not.toContain(`${pinned}:80`);
    // echo-1 stays up: the service url (http://echo-1:80) is where Kong sends requests the
    // plugin leaves alone (fail open), as the compose file keeps that container running.
    const stops = pinned !== 'echo-1';
    expect(outcome.backendsStopped).toEqual(stops ? [`${pinned}:80`] : []);
    expect(gw.backends().some((b) => b.key === `${pinned}:80`)).toBe(!stops);

    const r = await request('/', { headers: [['Cookie', jar]] });
    expect(r.status).toBe(200);
    expect(r.name).not.toBe(pinned);
    const next = cookieOf(r);
    expect(next).not.toBe(jar);
    const again = await request('/', { headers: [['Cookie', next]] });
    expect(again.name).toBe(r.name);
    expect(again.setCookie).toEqual([]);
    expect(lines.some((l) => l.includes('sticky cookie sent') && l.includes('Set-Cookie: a new token replaces it'))).toBe(true);
    jar = next;
    pinned = r.name as string;
  });

  it('a malformed or forged cookie is a new session, not an error', async () => {
    for (const bad of ['sticky=garbage', 'sticky=', `sticky=${jar.slice(7, -4)}AAAA`, 'sticky=%%%;;;=']) {
      const r = await request('/', { headers: [['Cookie', bad]] });
      expect(r.status).toBe(200);
      expect(r.setCookie).toHaveLength(1);
      expect(echos).toContain(r.name);
    }
  });

  it('a config with an invalid field is refused with the field names; the old config stays', async () => {
    const before = gw.kong.plugins()[0]?.config;
    const outcome = await writeConfig(good.replace('cookie_name: sticky', 'cookie_name: sticky\n          cookie_same_site: Sometimes\n          colour: blue'));
    expect(outcome.ok).toBe(false);
    expect(outcome.error).toContain('config.cookie_same_site: expected one of: Strict, Lax, None');
    expect(outcome.error).toContain('config.colour: unknown field');
    expect(lines.some((l) => l.includes('NOT reloaded') && l.includes('cookie_same_site'))).toBe(true);
    expect(gw.kong.plugins()[0]?.config).toEqual(before);

    const r = await request('/', { headers: [['Cookie', jar]] });
    expect(r.name).toBe(pinned);
    expect(r.setCookie).toEqual([]);
  });

  it('a target Kong\'s schema refuses is refused, naming the field', async () => {
    const outcome = await writeConfig(good.replace(/- (echo-\d):80\n/, '- $1:80 drainig\n'));
    expect(outcome.ok).toBe(false);
    expect(outcome.error).toMatch(/config\.targets: .*expected .*host:port.*draining/);
    const r = await request('/', { headers: [['Cookie', jar]] });
    expect(r.name).toBe(pinned);
  });

  it('a target only the plugin can refuse is refused too, saying Kong would leave the route to its balancer', async () => {
    const outcome = await writeConfig(good.replace(/- (echo-\d):80\n/, '- 192.0.2.300:80\n'));
    expect(outcome.ok).toBe(false);
    expect(outcome.error).toMatch(/targets\[1\].*not a valid IPv4 address.*Kong balances/);
    const r = await request('/', { headers: [['Cookie', jar]] });
    expect(r.name).toBe(pinned);
  });

  it('applies kong.response.exit: with no ready target and no_ready_endpoint=reject, new clients get 503', async () => {
    const outcome = await writeConfig(
      original
        .replace(/- (echo-\d):80\n/g, '- $1:80 draining\n')
        .replace('cookie_name: sticky', 'cookie_name: sticky\n          no_ready_endpoint: reject'),
    );
    expect(outcome.ok).toBe(true);
    expect(outcome.backendsStarted).toEqual(removed === 'echo-1' ? [] : [`${removed}:80`]); // the removed echo is back
    const r = await request('/');
    expect(r.status).toBe(503);
    expect(r.headers['retry-after']).toBe('1');
    expect(JSON.parse(r.body)).toEqual({ message: 'No server available' });
    expect(r.name).toBeUndefined();
    // an existing session on a draining (still serving) target is honoured
    const kept = await request('/', { headers: [['Cookie', jar]] });
    expect(kept.status).toBe(200);
    expect(kept.name).toBe(pinned);
    expect(lines.some((l) => l.startsWith('GET / -> exit by the plugin 503'))).toBe(true);
  });

  it('answers 404 like Kong outside the route', async () => {
    await writeConfig(original.replace(/paths:\n\s*- \//, 'paths:\n          - /app'));
    const r = await request('/elsewhere');
    expect(r.status).toBe(404);
    expect(JSON.parse(r.body)).toEqual({ message: 'no Route matched with those values' });
    const ok = await request('/app/page');
    expect(ok.status).toBe(200);
    // strip_path (Kong's default): the backend sees the path after the route prefix
    expect(ok.body).toMatch(/^GET \/page HTTP\/1\.1$/m);
    expect(ok.body).toMatch(/^X-Forwarded-Prefix: \/app$/m);
  });
});

describe('plugin response headers on the upstream response (Kong header_filter)', () => {
  it('adds, sets and clears in call order', () => {
    const out = applyPluginResponseHeaders(
      [
        ['Set-Cookie', 'app=1'],
        ['X-Sticky-Session', 'old'],
        ['Server', 'echo'],
      ],
      [
        { phase: 'access', method: 'kong.response.add_header', args: ['Set-Cookie', 'sticky=t'] },
        { phase: 'access', method: 'kong.response.set_header', args: ['x-sticky-session', 'new'] },
        { phase: 'access', method: 'kong.response.clear_header', args: ['server'] },
        { phase: 'access', method: 'kong.response.add_header', args: ['X-Bad', 1], luaError: 'boom' },
      ],
    );
    expect(out).toEqual([
      ['Set-Cookie', 'app=1'],
      ['Set-Cookie', 'sticky=t'],
      ['x-sticky-session', 'new'],
    ]);
  });
});

describe('npm start passes the plugin server the variables it reads, from its own environment', () => {
  it('STICKY_SESSION_METRICS_PORT/_ADDRESS start the listener there; STICKY_SESSION_LOG_LEVEL sets its level', async () => {
    const metricsPort = await new Promise<number>((resolve) => {
      const s = http.createServer().listen(0, '127.0.0.1', () => {
        const { port } = s.address() as import('node:net').AddressInfo;
        s.close(() => resolve(port));
      });
    });
    // What `npm start` execs after its build, with a shell's environment.
    const child = spawn(process.execPath, [path.join(REPO_DIR, 'node_modules/tsx/dist/cli.mjs'), 'test/harness/dev-gateway.ts', '--port', '0', '--plugin-log'], {
      cwd: REPO_DIR,
      env: {
        PATH: process.env.PATH,
        STICKY_SESSION_METRICS_PORT: String(metricsPort),
        STICKY_SESSION_METRICS_ADDRESS: '127.0.0.2',
        STICKY_SESSION_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c));
    try {
      let gateway: string | undefined;
      for (let i = 0; i < 600 && !gateway && child.exitCode === null; i++) {
        gateway = /listening on (127\.0\.0\.1:\d+)/.exec(err)?.[1];
        if (!gateway) await new Promise((r) => setTimeout(r, 50));
      }
      expect(gateway, err).toBeDefined();
      const answer = await fetch(`http://${gateway}/`);
      expect(answer.status).toBe(200);
      const metrics = await fetch(`http://127.0.0.2:${metricsPort}/metrics`);
      expect(await metrics.text()).toMatch(/^sticky_session_decisions_total\{service="[^"]+",outcome="new",reason="none"\} 1$/m);
      // At warn, --plugin-log shows none of the server's info lines (listener, instances) nor decisions.
      await new Promise((r) => setTimeout(r, 500));
      expect(err).not.toMatch(/\[plugin server\] (info|debug) /);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once('exit', r)));
    }
  }, 30_000);
});

describe('dev gateway on plugins-failover/ (npm start -- --failover)', () => {
  let failoverDir: string;
  let failover: Awaited<ReturnType<typeof startDevGateway>> | undefined;

  afterAll(async () => {
    await failover?.stop();
    if (failoverDir) rmSync(failoverDir, { recursive: true, force: true });
  });

  it('serves the plugin with its log phase and takes change_on_failure, which plugins/ refuses', async () => {
    failoverDir = mkdtempSync(path.join(os.tmpdir(), 'devgw-failover-'));
    const file = path.join(failoverDir, 'kong.yml');
    const text = readFileSync(path.join(REPO_DIR, 'kong', 'kong.yml'), 'utf8').replace(
      'cookie_name: sticky',
      'cookie_name: sticky\n          change_on_failure: true',
    );
    expect(text).toContain('change_on_failure: true');
    writeFileSync(file, text);
    await expect(startDevGateway({ port: 0, configPath: file, log: () => {}, watch: false })).rejects.toThrow(
      /config\.change_on_failure: unknown field/,
    );
    failover = await startDevGateway({ port: 0, configPath: file, log: () => {}, watch: false, failover: true });
    expect([...failover.kong.info.Phases].sort()).toEqual(['access', 'log']);
    expect(failover.kong.info.Name).toBe(gw.kong.info.Name);
    expect(failover.kong.plugins()[0]?.config.change_on_failure).toBe(true);
    const r = await fetch(`${failover.url}/`);
    expect(r.status).toBe(200);
    expect(r.headers.get('set-cookie')).toMatch(/^sticky=/);
  });
});
