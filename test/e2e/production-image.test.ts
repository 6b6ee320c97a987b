/**
 * The image's production install, built as `docker build` builds it (the Dockerfile's COPY
 * and RUN replayed by test/harness/image-build.ts: npm ci, tsc, npm prune --omit=dev,
 * scripts/prune-production.mjs), carries nothing the plugin server never runs, and the
 * plugin server runs on it exactly as Kong starts it in the image.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kongServerCommands } from '../harness/dockerfile.js';
import { buildImageTree, type ImageTree } from '../harness/image-build.js';
import { KongEmulator } from '../harness/kong-emulator.js';
import { queryPluginInfo } from '../harness/plugin-server.js';

let image: ImageTree;
let kong: KongEmulator | undefined;

beforeAll(() => {
  image = buildImageTree();
}, 300_000);

afterAll(async () => {
  await kong?.stop();
  if (image) rmSync(image.dir, { recursive: true, force: true });
});

/** Every package directory under node_modules, nested ones included, by name. */
function packageNames(root: string): string[] {
  const out = spawnSync('find', [root, '-name', 'package.json', '-path', '*/node_modules/*', '-not', '-path', '*/node_modules/*/node_modules/*/*/*'], { encoding: 'utf8' }).stdout;
  return out
    .split('\n')
    .filter(Boolean)
    .map((f) => {
      try {
        return (JSON.parse(readFileSync(f, 'utf8')) as { name?: string }).name ?? '';
      } catch {
        return '';
      }
    });
}

describe('the production install of the image', () => {
  it('has no TypeScript compiler, no ts-node (only its stand-in) and no type declarations', () => {
    const modules = path.join(image.appDir, 'node_modules');
    expect(existsSync(path.join(modules, 'kong-pdk', 'server.js'))).toBe(true);
    const names = packageNames(modules);
    expect(names).not.toContain('typescript');
    expect(names.filter((n) => n.startsWith('@types/'))).toEqual([]);
    expect(JSON.parse(readFileSync(path.join(modules, 'ts-node', 'package.json'), 'utf8'))).toMatchObject({ version: '0.0.0-stand-in' });
    // du -sk: the figure the README states (92 MB on our build; 190 MB before the prune).
    const kb = Number(spawnSync('du', ['-sk', modules], { encoding: 'utf8' }).stdout.split('\t')[0]);
    expect(kb / 1024).toBeLessThan(110);
  });

  it('serves the plugin as Kong starts it: the query command\'s JSON, an instance, a routed request', async () => {
    kong = await KongEmulator.start({ useDockerfile: true, repoDir: image.appDir, workers: 1 });
    expect(kong.info).toMatchObject({ Name: 'sticky-session', Phases: ['access'] });
    kong.addPlugin({ config: { secrets: ['production-image-secret-0123456789abcdef'], targets: ['192.0.2.50:8080'] } });
    const r = await kong.request();
    expect(r.target).toEqual({ host: '192.0.2.50', port: 8080 });
    expect(r.responseHeaders['set-cookie']?.[0]).toMatch(/^sticky_session=/);
    expect(kong.serverLog({ raw: true })).not.toContain('\x1b');
  });

  it('still answers the query without the ts-node preload (a start or query command written without it)', async () => {
    const { query } = kongServerCommands({ repoDir: image.appDir, prefixDir: image.dir });
    const bare = query.replace(/ --require \S+skip-ts-node\.cjs/, '');
    expect(bare).not.toBe(query);
    const dump = await queryPluginInfo(bare, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, cwd: '/' });
    expect(dump.info.Name).toBe('sticky-session');
    expect(dump.stdout).toBe(`${JSON.stringify(dump.dump)}\n`);
  });
});
