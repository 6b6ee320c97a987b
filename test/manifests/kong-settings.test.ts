/**
 * Every place that configures Kong for the plugin sets what the README says is required:
 * Kong's log level at `info` (or nginx drops every line of the plugin server) and an
 * nginx_main_env that declares every variable the plugin server reads (src/config/env.ts), or nginx
 * withholds it from the plugin server.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { SERVER_ENV_NAMES } from '../../src/config/env.js';
import { readDockerfileEnv, REPO_DIR } from '../harness/dockerfile.js';
import { nginxMainEnvNames } from './validate.js';

interface KongSettings {
  readonly logLevel: unknown;
  readonly nginxMainEnv: unknown;
}

const read = (rel: string): string => readFileSync(path.join(REPO_DIR, rel), 'utf8');
const dockerEnv = readDockerfileEnv();
const fromEnv = (env: ReadonlyMap<string, unknown>): KongSettings => ({
  logLevel: env.get('KONG_LOG_LEVEL'),
  nginxMainEnv: env.get('KONG_NGINX_MAIN_ENV'),
});

/** kong.conf: `key = value` lines. */
function kongConf(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^\s*([a-z_]+)\s*=\s*(.*?)\s*$/.exec(line);
    if (m && !line.trimStart().startsWith('#')) out.set(m[1]!, m[2]!);
  }
  return out;
}

/** The README's env block under "Enabling the plugin in Kong": `KEY=value` or `KEY="value"`. */
function readmeEnv(text: string): Map<string, string> {
  const section = text.slice(text.indexOf('## Enabling the plugin in Kong'));
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
  const out = new Map<string, string>();
  for (const line of block.split('\n')) {
    const m = /^([A-Z_]+)=(?:"(.*)"|(\S*))$/.exec(line.trim());
    if (m) out.set(m[1]!, m[2] ?? m[3]!);
  }
  return out;
}

/** What the compose service's container gets: the image's ENV (it builds our Dockerfile) under its own environment. */
function composeEnv(): Map<string, unknown> {
  const compose = parseYaml(read('kong/docker-compose.yml')) as { services: Record<string, { build?: { context: string; dockerfile: string }; environment?: Record<string, unknown> }> };
  const kong = compose.services.kong!;
  expect(path.resolve(REPO_DIR, 'kong', kong.build!.context, kong.build!.dockerfile)).toBe(path.join(REPO_DIR, 'Dockerfile'));
  return new Map<string, unknown>([...dockerEnv, ...Object.entries(kong.environment ?? {})]);
}

function helmEnv(): Map<string, unknown> {
  const values = parseYaml(read('kong/kubernetes/helm-values.yaml')) as { gateway: { env: Record<string, unknown> } };
  return new Map(Object.entries(values.gateway.env).map(([k, v]) => [`KONG_${k.toUpperCase()}`, v]));
}

function patchEnv(): Map<string, unknown> {
  const patch = parseYaml(read('kong/kubernetes/deployment-patch.yaml')) as {
    spec: { template: { spec: { containers: Array<{ name: string; env: Array<{ name: string; value: unknown }> }> } } };
  };
  const proxy = patch.spec.template.spec.containers.find((c) => c.name === 'proxy')!;
  return new Map(proxy.env.map((e) => [e.name, e.value]));
}

const places: Array<[string, () => KongSettings]> = [
  ['Dockerfile (ENV)', () => fromEnv(dockerEnv)],
  ['kong/kong.conf', () => {
    const conf = kongConf(read('kong/kong.conf'));
    return { logLevel: conf.get('log_level'), nginxMainEnv: conf.get('nginx_main_env') };
  }],
  ['kong/docker-compose.yml (with the image it builds)', () => fromEnv(composeEnv())],
  ['kong/kubernetes/helm-values.yaml', () => fromEnv(helmEnv())],
  ['kong/kubernetes/deployment-patch.yaml', () => fromEnv(patchEnv())],
  ['README.md (Enabling the plugin in Kong)', () => fromEnv(readmeEnv(read('README.md')))],
];

describe('what the plugin server reads (src/config/env.ts)', () => {
  it('names every variable src/ reads from the environment', () => {
    const read = new Set<string>();
    const walk = (dir: string): void => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (/\.c?ts$/.test(e.name)) for (const m of readFileSync(p, 'utf8').matchAll(/\benv\s*(?:\.\s*|\[\s*['"])([A-Z][A-Z0-9_]*)/g)) read.add(m[1]!);
      }
    };
    walk(path.join(REPO_DIR, 'src'));
    expect(read.size).toBeGreaterThan(3);
    expect(SERVER_ENV_NAMES).toEqual(expect.arrayContaining([...read]));
  });
});

describe.each(places)('%s', (_where, settings) => {
  it('sets Kong\'s log level to info, so that nginx keeps the plugin server\'s lines', () => {
    expect(settings().logLevel).toBe('info');
  });

  it('declares every variable the plugin server reads in nginx_main_env', () => {
    const declared = nginxMainEnvNames(String(settings().nginxMainEnv ?? ''));
    expect(declared).toEqual(expect.arrayContaining(SERVER_ENV_NAMES));
  });
});
