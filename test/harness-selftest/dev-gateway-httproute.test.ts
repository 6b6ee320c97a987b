/**
 * `npm start -- --httproute` end to end: the dev gateway serves the repository's Gateway API
 * example (app.yaml, httproute.yaml: shop-v1 90 / shop-v2 10, cookie shop_session, Permanent,
 * 12h) from copies in a temp directory, over real HTTP with cookies; edits to the copies reach
 * the plugin through the test API server's watch. The steps run in order on one gateway.
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevGateway, type DevGateway, type ReloadOutcome } from '../harness/dev-gateway.js';
import { REPO_DIR } from '../harness/dockerfile.js';

const EXAMPLE = path.join(REPO_DIR, 'kong', 'kubernetes', 'gateway-api');
const PERMANENT = /^shop_session=[\w-]+; Path=\/; Max-Age=43200; Expires=[^;]+ GMT; HttpOnly; SameSite=Lax$/;

interface Reply {
  status: number;
  /** The pod that answered (the echo's Name: line). */
  pod: string | undefined;
  /** `shop_session=...` from Set-Cookie, if one came. */
  cookie: string | undefined;
  setCookie: string[];
}

interface Client {
  cookie: string;
  pod: string;
}

let gw: DevGateway;
let dir: string;
let routeFile: string;
let original: string;
const lines: string[] = [];

async function get(cookie?: string): Promise<Reply> {
  const res = await fetch(`${gw.url}/`, { headers: cookie ? { cookie } : {} });
  const body = await res.text();
  const setCookie = res.headers.getSetCookie();
  return { status: res.status, pod: /^Name: (.+)$/m.exec(body)?.[1], cookie: setCookie.find((c) => c.startsWith('shop_session='))?.split(';')[0], setCookie };
}

/** Writes a manifest copy (default: the HTTPRoute's) and waits for the gateway's watcher to apply (or refuse) it. */
function save(text: string, file = routeFile): Promise<ReloadOutcome> {
  return new Promise((resolve) => {
    const off = gw.onReload((r) => {
      off();
      resolve(r);
    });
    writeFileSync(file, text);
  });
}

/** Polls until `check` holds (the watch event reaches the plugin a few ms after the write). */
async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`never: ${what}`);
}

const version = (pod: string | undefined): string => pod?.replace(/-\d+$/, '') ?? 'none';

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'devgw-httproute-'));
  for (const f of ['app.yaml', 'httproute.yaml']) copyFileSync(path.join(EXAMPLE, f), path.join(dir, f));
  routeFile = path.join(dir, 'httproute.yaml');
  original = readFileSync(routeFile, 'utf8');
  gw = await startDevGateway({ port: 0, httproute: [path.join(dir, 'app.yaml'), routeFile], log: (l) => lines.push(l) });
});

afterAll(async () => {
  await gw?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('dev gateway in HTTPRoute mode (npm start -- --httproute)', () => {
  const clients: Client[] = [];

  it("serves one echo per pod of each Deployment, and a plugin on the rule's Kong route", () => {
    expect(gw.backends().map((b) => b.echo?.name).sort()).toEqual(['shop-v1-0', 'shop-v1-1', 'shop-v2-0', 'shop-v2-1']);
    expect(gw.backends().every((b) => /^192\.0\.2\.\d+:8080$/.test(b.key))).toBe(true);
    const plugins = gw.kong.plugins();
    expect(plugins).toHaveLength(1);
    expect(plugins[0]).toMatchObject({ routeId: expect.any(String), serviceId: null });
    const walk = gw.describe('http://localhost:8000', (f) => path.basename(f)).join('\n');
    expect(walk).toContain('Kong service httproute.shop.shop.0, route httproute.shop.shop.0.0');
    expect(walk).toContain("set shop-v1's weight to 0 and shop-v2's to 100");
  });

  it("the first response sets the rule's cookie (Permanent: Max-Age=43200); 20 requests with it stay on one pod", async () => {
    const first = await get();
    expect(first.status).toBe(200);
    expect(first.setCookie).toHaveLength(1);
    expect(first.setCookie[0]).toMatch(PERMANENT);
    expect(first.pod).toMatch(/^shop-v[12]-[01]$/);
    for (let i = 0; i < 20; i++) {
      const r = await get(first.cookie);
      expect(r.pod).toBe(first.pod);
      expect(r.setCookie).toEqual([]);
    }
    expect(lines.some((l) => l.startsWith(`GET / -> 192.0.2.`) && l.includes(` ${first.pod as string} 200 (`) && l.includes('shop_session cookie sent'))).toBe(true);
  });

  it('100 new sessions split 90/10 by the backendRef weights', async () => {
    const counts: Record<string, number> = {};
    for (let i = 0; i < 100; i++) {
      const r = await get();
      expect(r.cookie).toBeDefined();
      counts[version(r.pod)] = (counts[version(r.pod)] ?? 0) + 1;
      if (clients.length < 20) clients.push({ cookie: r.cookie as string, pod: r.pod as string });
    }
    expect((counts['shop-v1'] ?? 0) + (counts['shop-v2'] ?? 0)).toBe(100);
    expect(Math.abs((counts['shop-v1'] ?? 0) - 90)).toBeLessThanOrEqual(3);
  });

  it('weights edited to 0/100: the 20 pinned clients keep their pods, new clients go to shop-v2', async () => {
    const outcome = await save(original.replace('weight: 90', 'weight: 0').replace('weight: 10', 'weight: 100'));
    expect(outcome.ok).toBe(true);
    expect(outcome.message).toBe('httproute.yaml applied: HTTPRoute shop/shop rule shop: weights shop-v1 90 -> 0, shop-v2 10 -> 100; sessions stay');
    await until('new sessions follow the weights', async () => {
      const fresh = await Promise.all(Array.from({ length: 10 }, () => get()));
      return fresh.every((r) => version(r.pod) === 'shop-v2');
    });
    for (const c of clients) {
      const r = await get(c.cookie);
      expect(r.pod).toBe(c.pod);
      expect(r.setCookie).toEqual([]);
    }
    for (let i = 0; i < 20; i++) expect(version((await get()).pod)).toBe('shop-v2');
  });

  it('a file the API server would refuse is not applied; sessions go on', async () => {
    const outcome = await save(original.replace('weight: 90', 'weight: -1'));
    expect(outcome.ok).toBe(false);
    expect(outcome.message).toMatch(/^httproute\.yaml NOT applied, the API server keeps the previous objects: .*HTTPRoute shop\/shop\/spec\/rules\/0\/backendRefs\/0\/weight: must be >= 0/);
    for (const c of clients.slice(0, 3)) expect((await get(c.cookie)).pod).toBe(c.pod);
  });

  it("shop-v1's backendRef removed: its clients re-pin to shop-v2 with a new cookie; shop-v2's stay", async () => {
    const withoutV1 = original.replace(/\n\s*- name: shop-v1\n\s*port: 80\n\s*weight: 90/, '').replace('weight: 10', 'weight: 100');
    expect(withoutV1).not.toContain('name: shop-v1');
    const outcome = await save(withoutV1);
    expect(outcome.message).toBe('httproute.yaml applied: HTTPRoute shop/shop rule shop: backendRef shop-v1 removed; sessions on shop-v1 re-pin (new cookie)');
    const onV1 = clients.filter((c) => version(c.pod) === 'shop-v1');
    expect(onV1.length).toBeGreaterThan(0);
    await until('a shop-v1 session re-pins', async () => version((await get(onV1[0]?.cookie)).pod) === 'shop-v2');
    for (const c of clients) {
      const r = await get(c.cookie);
      expect(version(r.pod)).toBe('shop-v2');
      if (version(c.pod) === 'shop-v2') {
        expect(r.pod).toBe(c.pod);
        expect(r.setCookie).toEqual([]);
      } else {
        expect(r.setCookie[0]).toMatch(PERMANENT);
        expect(r.cookie).not.toBe(c.cookie);
        const again = await get(r.cookie);
        expect(again.pod).toBe(r.pod);
        expect(again.setCookie).toEqual([]);
      }
    }
  });

  it('a Deployment scaled up: a new pod with its echo joins the slice and gets new sessions', async () => {
    const appFile = path.join(dir, 'app.yaml');
    const app = readFileSync(appFile, 'utf8');
    const v2 = app.indexOf('name: shop-v2');
    const outcome = await save(app.slice(0, v2) + app.slice(v2).replace('replicas: 2', 'replicas: 3'), appFile);
    expect(outcome.message).toBe('app.yaml applied: pods shop-v2 2 -> 3');
    expect(outcome.backendsStarted).toHaveLength(1);
    expect(gw.backends().map((b) => b.echo?.name)).toContain('shop-v2-2');
    await until('shop-v2-2 gets a new session', async () => (await get()).pod === 'shop-v2-2');
  });
});
