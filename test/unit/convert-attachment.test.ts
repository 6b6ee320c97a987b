/**
 * Where `convert` attaches each KongPlugin decides which Kong service host the plugin sees
 * under KIC, and from it which Kubernetes Service it watches. These tests take the examples'
 * output and put each plugin's config through the plugin's own resolution (service-ref.ts)
 * with the hosts KIC gives: `<service>.<namespace>.<port>.svc` for Ingress backends
 * (subtranslator/ingress.go), `httproute.<namespace>.svc.<namespace>.<service>.<port>` for
 * HTTPRoute backends (subtranslator/httproute.go).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readDocuments } from '../../src/cli/convert.js';
import { convert, DEFAULT_OPTIONS } from '../../src/convert/index.js';
import { resolveServiceRef } from '../../src/endpoints/kubernetes/service-ref.js';
import { REPO_DIR } from '../manifests/validate.js';

type Obj = Record<string, unknown>;

function converted(name: string): Obj[] {
  const input = readDocuments(readFileSync(join(REPO_DIR, 'docs/examples/convert', `${name}.yaml`), 'utf8'));
  return convert(input, DEFAULT_OPTIONS).documents as Obj[];
}
const meta = (d: Obj): Obj => d.metadata as Obj;
const pluginsOf = (docs: Obj[]): Map<string, Obj> => new Map(docs.filter((d) => d.kind === 'KongPlugin').map((p) => [String(meta(p).name), p.config as Obj]));

describe('the Service each converted plugin watches under KIC', () => {
  it('ingress-nginx: the plugin on the Ingress reads the Service and port from the host of each backend', () => {
    const docs = converted('ingress-nginx');
    const plugins = pluginsOf(docs);
    for (const ing of docs.filter((d) => d.kind === 'Ingress')) {
      const ns = String(meta(ing).namespace);
      const config = plugins.get(String((meta(ing).annotations as Obj)['konghq.com/plugins'])) as Obj;
      for (const rule of (ing.spec as Obj).rules as Obj[]) {
        for (const path of (rule.http as Obj).paths as Obj[]) {
          const svc = (path.backend as Obj).service as Obj;
          const port = (svc.port as Obj).name ?? (svc.port as Obj).number;
          const host = `${String(svc.name)}.${ns}.${String(port)}.svc`;
          expect(resolveServiceRef(config, host)).toEqual({ ok: true, ref: { namespace: ns, service: svc.name, port } });
        }
      }
    }
  });

  it('HTTPRoute: KIC\'s host names no Service, the converted config does, with the port by name', () => {
    const docs = converted('gateway-api');
    const plugins = pluginsOf(docs);
    const route = docs.find((d) => d.kind === 'HTTPRoute') as Obj;
    const rules = ((route.spec as Obj).rules as Obj[]).filter((r) => r.filters !== undefined);
    expect(rules).toHaveLength(2);
    for (const rule of rules) {
      const name = String((((rule.filters as Obj[])[0] as Obj).extensionRef as Obj).name);
      const backend = (rule.backendRefs as Obj[])[0] as Obj;
      const host = `httproute.shop.svc.shop.${String(backend.name)}.${String(backend.port)}`;
      expect(resolveServiceRef({}, host).ok).toBe(false); // why the config names the Service
      expect(resolveServiceRef(plugins.get(name) as Obj, host)).toEqual({ ok: true, ref: { namespace: 'shop', service: 'servicev1', port: 'http' } });
    }
  });

  it('KongUpstreamPolicy: the plugin on the Service works behind an Ingress and behind an HTTPRoute', () => {
    const docs = converted('kong-upstream-policy');
    const plugins = pluginsOf(docs);
    for (const svc of docs.filter((d) => d.kind === 'Service')) {
      const name = String(meta(svc).name);
      const config = plugins.get(`${name}-sticky-session`) as Obj;
      expect(resolveServiceRef(config, `${name}.shop.http.svc`)).toEqual({ ok: true, ref: { namespace: 'shop', service: name, port: 'http' } });
      expect(resolveServiceRef(config, `httproute.shop.svc.shop.${name}.80`)).toEqual({ ok: true, ref: { namespace: 'shop', service: name, port: null } });
    }
  });
});
