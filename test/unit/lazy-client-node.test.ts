/**
 * @kubernetes/client-node costs about 65 MB of plugin-server RSS. Away from a cluster it is
 * loaded only once a Kubernetes source opens, never for static targets; near one (a
 * kubeconfig, or in a pod) it is loaded with the plugin, so that no request waits for it.
 * Checked in Node processes of their own (module resolution hooks see every import), on
 * the built code.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const repo = fileURLToPath(new URL('../../', import.meta.url));

const script = `
import { registerHooks } from 'node:module';
const seen = [];
registerHooks({
  resolve(specifier, context, next) {
    if (specifier.startsWith('@kubernetes/client-node')) seen.push(specifier);
    return next(specifier, context);
  },
});
const { openStaticSource, openKubernetesSource } = await import(${JSON.stringify(`${repo}dist/endpoints/open.js`)});
await import(${JSON.stringify(`${repo}dist/handler.js`)});
const atLoad = seen.length;
const staticLease = openStaticSource([{ id: '10.0.0.1:80', host: '10.0.0.1', port: 80, weight: 1, state: 'ready' }]);
await new Promise((r) => setTimeout(r, 50));
const afterStatic = seen.length;
const k8sLease = openKubernetesSource({ namespace: 'shop', service: 'cart', port: 80 });
for (let i = 0; i < 100 && seen.length === afterStatic; i++) await new Promise((r) => setTimeout(r, 20));
k8sLease.release();
staticLease.release();
process.stdout.write(JSON.stringify({ atLoad, afterStatic, afterKubernetes: seen.length }));
`;

function run(env: Record<string, string>): { atLoad: number; afterStatic: number; afterKubernetes: number } {
  // A home without ~/.kube/config: nothing but `env` says where a cluster is.
  const home = mkdtempSync(path.join(tmpdir(), 'lazy-client-node-'));
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd: repo,
    encoding: 'utf8',
    env: { PATH: process.env.PATH, HOME: home, STICKY_SESSION_LOG_LEVEL: 'silent', ...env },
  });
  return JSON.parse(out) as ReturnType<typeof run>;
}

describe('@kubernetes/client-node', () => {
  it('away from a cluster: not loaded by the plugin or a static source; by the first Kubernetes source', () => {
    const r = run({});
    expect(r.atLoad).toBe(0);
    expect(r.afterStatic).toBe(0);
    expect(r.afterKubernetes).toBeGreaterThan(0);
  });

  it('in a pod (KUBERNETES_SERVICE_HOST) or with KUBECONFIG: loaded with the plugin', () => {
    expect(run({ KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: '1' }).atLoad).toBeGreaterThan(0);
    expect(run({ KUBECONFIG: '/nonexistent' }).atLoad).toBeGreaterThan(0);
  });
});
