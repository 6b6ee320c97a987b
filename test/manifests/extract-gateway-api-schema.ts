/**
 * Writes gateway-api-v1.6.1-experimental.schema.json from the Gateway API CRDs: the
 * openAPIV3Schema of each kind and version the repo's manifests use, as the CRD has it
 * (CEL rules, defaults, list types included), descriptions dropped. The tests read only the
 * committed JSON, so they pass from a plain clone; this script is how it was made, and how
 * to remake it for another release:
 *
 *   npx tsx test/manifests/extract-gateway-api-schema.ts <dir with the CRD YAML> [tag] [commit]
 *
 * e.g. the `config/crd/experimental/` of a kubernetes-sigs/gateway-api checkout.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

export const SCHEMA_FILE = fileURLToPath(new URL('./gateway-api-v1.6.1-experimental.schema.json', import.meta.url));

/** `group/version/Kind` -> the CRD file and the version in it. */
export const EXTRACTED: Readonly<Record<string, { readonly file: string; readonly version: string }>> = {
  'gateway.networking.k8s.io/v1/HTTPRoute': { file: 'gateway.networking.k8s.io_httproutes.yaml', version: 'v1' },
  'gateway.networking.k8s.io/v1/Gateway': { file: 'gateway.networking.k8s.io_gateways.yaml', version: 'v1' },
  'gateway.networking.k8s.io/v1/GatewayClass': { file: 'gateway.networking.k8s.io_gatewayclasses.yaml', version: 'v1' },
  'gateway.networking.k8s.io/v1beta1/ReferenceGrant': { file: 'gateway.networking.k8s.io_referencegrants.yaml', version: 'v1beta1' },
};

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The schema without `description`s (the bulk of a CRD; no validation in them). */
function withoutDescriptions(node: unknown, key = ''): unknown {
  if (Array.isArray(node)) return node.map((n) => withoutDescriptions(n));
  if (!isObj(node)) return node;
  const out: Obj = {};
  for (const [k, v] of Object.entries(node)) {
    // Under `properties`, "description" may be a field name; elsewhere it is the annotation.
    if (k === 'description' && key !== 'properties' && typeof v === 'string') continue;
    out[k] = withoutDescriptions(v, k);
  }
  return out;
}

export function extractSchemas(crdDir: string, tag: string, commit: string): Obj {
  const defs: Obj = {};
  const bundle: Obj = {};
  for (const [key, { file, version }] of Object.entries(EXTRACTED)) {
    const text = readFileSync(path.join(crdDir, file), 'utf8');
    const crd = parse(text) as Obj;
    const annotations = isObj(crd.metadata) && isObj(crd.metadata.annotations) ? crd.metadata.annotations : {};
    if (annotations['gateway.networking.k8s.io/channel'] !== 'experimental') throw new Error(`${file}: not the experimental channel`);
    bundle[file] = annotations['gateway.networking.k8s.io/bundle-version'];
    const versions = isObj(crd.spec) && Array.isArray(crd.spec.versions) ? (crd.spec.versions as Obj[]) : [];
    const v = versions.find((x) => x.name === version);
    const schema = isObj(v) && isObj(v.schema) ? v.schema.openAPIV3Schema : undefined;
    if (!isObj(schema)) throw new Error(`${file}: no openAPIV3Schema for ${version}`);
    defs[key] = withoutDescriptions(schema);
  }
  const versions = new Set(Object.values(bundle));
  if (versions.size !== 1 || !versions.has(tag)) throw new Error(`bundle-version annotations ${JSON.stringify(bundle)}, expected ${tag}`);
  return {
    $comment: `Gateway API ${tag} experimental channel (kubernetes-sigs/gateway-api, commit ${commit}, config/crd/experimental/): the openAPIV3Schema of ${Object.entries(EXTRACTED)
      .map(([k, { file }]) => `${k} (${file})`)
      .join(', ')}, descriptions dropped, nothing else changed. Made by test/manifests/extract-gateway-api-schema.ts; read by test/manifests/gateway-api.ts.`,
    $defs: defs,
  };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [dir, tag = 'v1.6.1', commit = '8bb74df00e56ec8f944d48c25e6c1c9c2f6848e3'] = process.argv.slice(2);
  if (!dir) {
    console.error('usage: extract-gateway-api-schema.ts <crd-dir> [tag] [commit]');
    process.exit(2);
  }
  writeFileSync(SCHEMA_FILE, `${JSON.stringify(extractSchemas(dir, tag, commit), null, 1)}\n`);
  console.log(`wrote ${path.relative(process.cwd(), SCHEMA_FILE)}`);
}
