/**
 * `sticky-session convert` as users run it: the built CLI (dist/cli.js, `npm run build` first),
 * on the example inputs in docs/examples/convert/, its output checked by the repo's manifest
 * validation.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { convertedProblems } from '../manifests/converted.js';
import { parseYamlDocuments, REPO_DIR } from '../manifests/validate.js';

type Obj = Record<string, unknown>;
const CLI = join(REPO_DIR, 'dist/cli.js');
const EXAMPLES = join(REPO_DIR, 'docs/examples/convert');
const example = (name: string): string => join(EXAMPLES, `${name}.yaml`);

interface Run {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

function convert(args: string[], stdin?: string): Promise<Run> {
  if (!existsSync(CLI)) throw new Error('dist/cli.js missing: run `npm run build` first');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'convert', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, out, err }));
    child.stdin.end(stdin ?? '');
  });
}

function docsOf(run: Run): Obj[] {
  return parseYamlDocuments(run.out, 'convert output') as Obj[];
}
const kinds = (docs: Obj[]): string[] => docs.map((d) => String(d.kind));

describe('sticky-session convert (CLI)', () => {
  it.each([
    ['ingress-nginx', ['--ingress-class', 'kong'], ['KongPlugin', 'KongPlugin', 'KongPlugin', 'KongPlugin', 'Service', 'Ingress', 'Ingress', 'Ingress', 'Ingress']],
    ['kong-upstream-policy', [], ['KongPlugin', 'KongPlugin', 'KongUpstreamPolicy', 'Service', 'KongUpstreamPolicy', 'Service']],
    ['gateway-api', [], ['KongPlugin', 'KongPlugin', 'KongPlugin', 'Service', 'Service', 'HTTPRoute']],
  ])('converts docs/examples/convert/%s.yaml into YAML that validates', async (name, args, expectedKinds) => {
    const run = await convert(['-f', example(name), ...args]);
    expect(run.code, run.err).toBe(0);
    const docs = docsOf(run);
    expect(kinds(docs)).toEqual(expectedKinds);
    for (const doc of docs) expect(convertedProblems(doc), `${String(doc.kind)} ${String((doc.metadata as Obj).name)}`).toEqual([]);
    // Every KongPlugin reads its secrets from the Secret whose creation command is printed.
    expect(run.err).toMatch(/^ACTION {3}Secret shop\/sticky-session-secrets: .*kubectl -n shop create secret generic sticky-session-secrets --from-literal=secrets=/m);
    for (const plugin of docs.filter((d) => d.kind === 'KongPlugin')) {
      expect(plugin.configPatches).toEqual([{ path: '/secrets', valueFrom: { secretKeyRef: { name: 'sticky-session-secrets', key: 'secrets' } } }]);
      expect(plugin.config).not.toHaveProperty('secrets');
    }
  });

  it.each([
    ['ingress-nginx', ['--ingress-class', 'kong']],
    ['ingress-nginx', ['--ingress-class', 'kong', '--name-suffix', '-kong']],
    ['ingress-nginx', ['--attach', 'service']],
    ['kong-upstream-policy', []],
    ['gateway-api', []],
  ])('%s %s: every KongPlugin made is attached once; converting the output again gives the same output', async (name, args) => {
    const first = await convert(['-f', example(name), ...args]);
    const docs = docsOf(first);
    const made = docs.filter((d) => d.kind === 'KongPlugin').map((p) => `${String((p.metadata as Obj).namespace)}/${String((p.metadata as Obj).name)}`);
    const attached = docs.flatMap((d) => {
      const ns = String((d.metadata as Obj).namespace);
      const annotation = ((d.metadata as Obj).annotations as Obj | undefined)?.['konghq.com/plugins'];
      const fromAnnotation = typeof annotation === 'string' ? annotation.split(',').map((n) => `${ns}/${n}`) : [];
      const rules = ((d.spec as Obj | undefined)?.rules as Obj[] | undefined) ?? [];
      const fromFilters = rules.flatMap((r) => ((r.filters as Obj[] | undefined) ?? []).filter((f) => f.type === 'ExtensionRef').map((f) => `${ns}/${String((f.extensionRef as Obj).name)}`));
      return [...fromAnnotation, ...fromFilters];
    });
    for (const p of made) expect(attached.filter((a) => a === p), p).toHaveLength(1);
    const again = await convert(args, first.out);
    expect(again.code, again.err).toBe(0);
    expect(again.out).toBe(first.out);
  });

  it('ingress-nginx: every converted Ingress carries its KongPlugin, class kong, and legacy cookies by default', async () => {
    const docs = docsOf(await convert(['-f', example('ingress-nginx'), '--ingress-class', 'kong']));
    const plugins = new Map(docs.filter((d) => d.kind === 'KongPlugin').map((p) => [(p.metadata as Obj).name as string, p]));
    for (const ing of docs.filter((d) => d.kind === 'Ingress')) {
      expect((ing.spec as Obj).ingressClassName).toBe('kong');
      const attached = String(((ing.metadata as Obj).annotations as Obj)['konghq.com/plugins']).split(',');
      expect(attached.filter((n) => plugins.has(n))).toHaveLength(1);
    }
    const route = plugins.get('nginx-test-sticky-session')?.config as Obj;
    expect(route.accept_legacy_cookies).toEqual([{ format: 'ingress-nginx', mode: 'balanced', name: 'route' }]);
  });

  it('--attach service on the ingress-nginx example: one KongPlugin on the Service, the other Ingresses\' settings reported as conflicts', async () => {
    const run = await convert(['-f', example('ingress-nginx'), '--attach', 'service']);
    expect(run.code, run.err).toBe(0);
    const docs = docsOf(run);
    for (const doc of docs) expect(convertedProblems(doc)).toEqual([]);
    expect(docs.filter((d) => d.kind === 'KongPlugin').map((p) => (p.metadata as Obj).name)).toEqual(['http-svc-sticky-session']);
    expect(((docs[1]?.metadata as Obj).annotations as Obj)['konghq.com/plugins']).toBe('http-svc-sticky-session');
    // ingress-nginx too applies one Ingress's affinity to a Service that several Ingresses share.
    expect(run.err.match(/^UNMAPPED Ingress shop\/\S+ service http-svc: /gm)).toHaveLength(3);
    expect((await convert(['--attach', 'route'])).code).toBe(2);
  });

  it('--strict exits 1 when something is unmapped, still writing the YAML; 0 when all maps', async () => {
    const strict = await convert(['--strict', '-f', example('ingress-nginx')]);
    expect(strict.code).toBe(1);
    expect(strict.err).toMatch(/^UNMAPPED Ingress shop\/cart nginx.ingress.kubernetes.io\/affinity-canary-behavior: /m);
    expect(docsOf(strict).length).toBe(9);
    expect((await convert(['--strict', '-f', example('kong-upstream-policy')])).code).toBe(0);
    // A traffic split converts: nothing unmapped in the Gateway API example.
    expect((await convert(['--strict', '-f', example('gateway-api')])).code).toBe(0);
    expect((await convert(['-f', example('ingress-nginx')])).code).toBe(0);
  });

  it('reads stdin (no -f, or -f -) with many documents from several sources, and files after it', async () => {
    const all = ['ingress-nginx', 'kong-upstream-policy', 'gateway-api'].map((n) => readFileSync(example(n), 'utf8')).join('\n---\n');
    const fromStdin = await convert([], all);
    expect(fromStdin.code, fromStdin.err).toBe(0);
    const docs = docsOf(fromStdin);
    expect(docs.filter((d) => d.kind === 'KongPlugin')).toHaveLength(9);
    expect(fromStdin.err).toMatch(/^sticky-session convert: 7 resources converted into 9 KongPlugins;/m);
    const mixed = await convert(['-f', '-', '-f', example('gateway-api')], readFileSync(example('kong-upstream-policy'), 'utf8'));
    expect(kinds(docsOf(mixed)).filter((k) => k === 'KongPlugin')).toHaveLength(5);
  });

  it('passes unrelated documents through unchanged, converted ones without server-set fields; reads kind: List', async () => {
    const configMap = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', resourceVersion: '7', annotations: { note: 'yes' } }, data: { on: 'off', n: '010' } };
    const ingress = {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'Ingress',
      metadata: {
        name: 'web',
        uid: '5c2c6c4e-1111-4b4b-9c9c-000000000001',
        resourceVersion: '42',
        creationTimestamp: '2025-01-01T00:00:00Z',
        annotations: { 'nginx.ingress.kubernetes.io/affinity': 'cookie', 'nginx.ingress.kubernetes.io/session-cookie-name': 'yes', 'kubectl.kubernetes.io/last-applied-configuration': '{}' },
      },
      spec: { rules: [{ http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'web', port: { number: 80 } } } }] } }] },
      status: { loadBalancer: {} },
    };
    const list = JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [configMap, ingress] });
    const run = await convert(['-n', 'shop'], `'data': "quoted on purpose"\n---\n${list}\n`);
    expect(run.code, run.err).toBe(0);
    const docs = docsOf(run);
    expect(docs[1]).toEqual({ data: 'quoted on purpose' });
    expect(docs[2]).toEqual(configMap); // YAML 1.1 in and out: "on", "off", "010" stay strings
    const out = docs[3] as Obj;
    expect(out.metadata).toEqual({
      name: 'web',
      namespace: 'shop',
      annotations: { 'nginx.ingress.kubernetes.io/affinity': 'cookie', 'nginx.ingress.kubernetes.io/session-cookie-name': 'yes', 'konghq.com/plugins': 'web-sticky-session' },
    });
    expect(out).not.toHaveProperty('status');
    expect((docs[0]?.config as Obj).cookie_name).toBe('yes'); // a string, even read as YAML 1.1
    expect(docs[0]?.metadata).toMatchObject({ namespace: 'shop' });
  });

  it('nothing to convert: the input back, exit 0, and says so', async () => {
    const input = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: x\n';
    const run = await convert(['--strict'], input);
    expect(run.code).toBe(0);
    expect(docsOf(run)).toEqual(parseYamlDocuments(input, 'in'));
    expect(run.err).toMatch(/nothing to convert/);
  });

  it('exit 2 for bad arguments, unreadable files and broken YAML', async () => {
    expect((await convert(['--frobnicate'])).code).toBe(2);
    expect((await convert(['-f'])).code).toBe(2);
    expect((await convert(['--secret-name', 'Not_A_Name'])).code).toBe(2);
    const missing = await convert(['-f', join(EXAMPLES, 'missing.yaml')]);
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/cannot read/);
    const broken = await convert([], 'a: [1, 2\n');
    expect(broken.code).toBe(2);
    expect(broken.out).toBe('');
    const help = await convert(['--help']);
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/^usage: sticky-session convert/);
  });

  it('--secret-name names the Secret in the KongPlugins and in the printed command', async () => {
    const run = await convert(['-f', example('gateway-api'), '--secret-name', 'shop-sticky']);
    for (const p of docsOf(run).filter((d) => d.kind === 'KongPlugin')) expect(JSON.stringify(p.configPatches)).toContain('"name":"shop-sticky"');
    expect(run.err).toContain('create secret generic shop-sticky ');
  });

  it("the printed Secret command yields what KIC patches in: a JSON array of one secret the plugin accepts", async () => {
    const run = await convert(['-f', example('gateway-api')]);
    const literal = /--from-literal=secrets=(.+)$/m.exec(run.err)?.[1];
    expect(literal).toBeDefined();
    // What the shell hands kubectl for the value (kubectl stores it as is).
    const { stdout } = await promisify(execFile)('bash', ['-c', `printf %s ${literal as string}`]);
    const value: unknown = JSON.parse(stdout);
    expect(Array.isArray(value) && value.length === 1 && typeof value[0] === 'string' && value[0].length >= 32).toBe(true);
  });

  it('needs at run time only production dependencies (the image prunes dev ones)', () => {
    const pkg = JSON.parse(readFileSync(join(REPO_DIR, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    const files = ['dist/cli.js', ...['dist/cli', 'dist/convert'].flatMap((dir) => readdirSync(join(REPO_DIR, dir)).filter((f) => f.endsWith('.js')).map((f) => `${dir}/${f}`))];
    const bare = files.flatMap((f) => [...readFileSync(join(REPO_DIR, f), 'utf8').matchAll(/^import .* from '([^.'][^']*)';$/gm)].map((m) => m[1] as string));
    expect(bare).toContain('yaml');
    for (const spec of bare) {
      const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : (spec.split('/')[0] as string);
      if (spec.startsWith('node:') || builtinModules.includes(name)) continue;
      expect(Object.keys(pkg.dependencies), spec).toContain(name);
    }
  });

  it('YAML it writes reads the same as YAML 1.2 and 1.1 (what kubectl reads)', async () => {
    const run = await convert(['-f', example('ingress-nginx')]);
    const v12 = parseAllDocuments(run.out).map((d) => d.toJS() as unknown);
    expect(v12).toEqual(docsOf(run));
  });
});
