/**
 * Where `convert` attaches each KongPlugin decides which Kong service host the plugin sees
 * under KIC, and from it which Kubernetes Service it watches. These tests take the examples'
 * output and put each plugin's config through the plugin's own resolution (service-ref.ts)
 * with the hosts KIC gives: `<service>.<namespace>.<port>.svc` for Ingress backends
 * (subtranslator/ingress.go). An HTTPRoute rule's plugin names no Service: KIC's Kong route
 * (`httproute.<ns>.<name>.<rule>.<match>`, k8s-* tags) and service names lead the plugin to the
 * rule, read with the runtime's own parsers (src/endpoints/gateway-api/).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readDocuments } from '../../src/cli/convert.js';
import { convert, DEFAULT_OPTIONS } from '../../src/convert/index.js';
import { identifyKicRoute } from '../../src/endpoints/gateway-api/kic-names.js';
import type { HTTPRouteLike } from '../../src/endpoints/gateway-api/httproute.js';
import { findKicService } from '../../src/endpoints/gateway-api/rule-backends.js';
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

  it("HTTPRoute: each rule's plugin has only the secrets; KIC's route and service names lead it to that rule", () => {
    const docs = converted('gateway-api');
    const plugins = pluginsOf(docs);
    const route = docs.find((d) => d.kind === 'HTTPRoute') as Obj;
    const rules = (route.spec as Obj).rules as Obj[];
    const attached = rules.flatMap((rule, i) => ((rule.filters as Obj[] | undefined) ?? []).map((f) => [i, String((f.extensionRef as Obj).name)] as const));
    expect(attached.map(([i]) => i)).toEqual(rules.flatMap((r, i) => (r.sessionPersistence !== undefined ? [i] : [])));
    expect(attached.length).toBeGreaterThanOrEqual(3);
    for (const [i, name] of attached) {
      expect(plugins.get(name), name).toEqual({}); // secrets come by configPatches
      // KIC 3.4+ traditional router: route httproute.<ns>.<name>.<rule>.<match>, with the HTTPRoute's tags.
      const tags = ['k8s-name:shop', 'k8s-namespace:shop', 'k8s-kind:HTTPRoute', 'k8s-group:gateway.networking.k8s.io', 'k8s-version:v1'];
      expect(identifyKicRoute(`httproute.shop.shop.${i}.0`, tags)).toMatchObject({ namespace: 'shop', name: 'shop', rule: i });
      // The Kong service is named after the first rule with the same backendRefs; it holds this rule.
      const first = rules.findIndex((r) => JSON.stringify(r.backendRefs) === JSON.stringify(rules[i]?.backendRefs));
      const found = findKicService(`httproute.shop.shop.${first}`, [route as unknown as HTTPRouteLike]);
      expect(found.flatMap((m) => m.rules.map((r) => r.rule))).toContain(i);
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
