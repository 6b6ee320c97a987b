/**
 * The `sticky-session convert` command: reads Kubernetes YAML from files or stdin, writes the
 * YAML to apply on stdout and the report on stderr. The conversion itself is ../convert/.
 */
import { readFile } from 'node:fs/promises';
import { Document, parseAllDocuments } from 'yaml';
import { convert, DEFAULT_OPTIONS, type ConvertOptions, type Report } from '../convert/index.js';
import { isObj, type Obj } from '../convert/model.js';

export interface ConvertIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  /** The whole of standard input. */
  readonly stdin: () => Promise<string>;
}

export const CONVERT_USAGE = `usage: sticky-session convert [-f FILE]... [--strict] [--ingress-class kong] [--name-suffix -kong]
                              [--attach ingress|service] [--secret-name NAME] [--no-legacy-cookies]
                              [--annotation-prefix nginx.ingress.kubernetes.io] [-n NAMESPACE]

Reads Kubernetes YAML (files, or stdin for "-" or no -f; many documents; kubectl's kind: List
too) and writes on stdout what to apply for the sticky-session plugin under the Kong Ingress
Controller: a KongPlugin per converted source, and every document read, converted ones carrying
the plugin. Sources:
  - Ingresses with ingress-nginx affinity annotations (affinity: cookie, session-cookie-*,
    upstream-hash-by with a cookie): the KongPlugin goes on the Ingress;
  - KongUpstreamPolicy with stickySessions or hashOn.cookie: on the Services that use it;
  - HTTPRoute rules with sessionPersistence (Gateway API v1.1 and later, traffic splits
    too): sessionPersistence stays on the rule (the plugin reads it live), a KongPlugin with
    only the signing secrets goes on the rule by an ExtensionRef filter.
Other documents pass through unchanged. Signing secrets are never invented: the KongPlugins
read them from a Secret (--secret-name, default ${DEFAULT_OPTIONS.secretName}), and the report
prints the command that creates it.

The report on stderr says, per source field, what differs and what cannot be carried.
  --strict               exit 1 when a source field cannot be carried (UNMAPPED)
  --ingress-class NAME   set spec.ingressClassName of converted Ingresses (e.g. kong)
  --name-suffix SUFFIX   write converted Ingresses under a new name (name + SUFFIX), so the
                         originals keep being served by ingress-nginx until you delete them
  --attach service       put an Ingress's KongPlugin on each backend Service instead of on the
                         Ingress: one session per Service across all its routes and hosts
  --no-legacy-cookies    do not honour ingress-nginx's cookies (accept_legacy_cookies) during
                         the switch: every client then starts a new session
  --annotation-prefix P  ingress-nginx's --annotations-prefix, if yours is not the default
  -n, --namespace NS     the namespace of documents that name none (default: default); the
                         converted ones get it written in, as the KongPlugins must name theirs

Exit status: 0 converted (or nothing to convert), 1 --strict and something unmapped,
2 bad arguments or unreadable input.
`;

/** Fields the API server fills in; a converted document is applied without them. */
const SERVER_METADATA = ['uid', 'resourceVersion', 'generation', 'creationTimestamp', 'managedFields', 'selfLink'];
const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

export async function runConvert(argv: readonly string[], io: ConvertIo): Promise<number> {
  const files: string[] = [];
  let strict = false;
  let options: ConvertOptions = { ...DEFAULT_OPTIONS };
  const args = [...argv];
  const value = (arg: string, name: string): string | undefined => {
    if (arg.startsWith(`${name}=`)) return arg.slice(name.length + 1);
    return args.shift();
  };
  while (args.length > 0) {
    const arg = args.shift() as string;
    const flag = arg.split('=')[0] as string;
    if (arg === '-h' || arg === '--help') {
      io.out(CONVERT_USAGE);
      return 0;
    } else if (arg === '--strict') strict = true;
    else if (arg === '--no-legacy-cookies') options = { ...options, legacyCookies: false };
    else if (arg === '--attach=service' || arg === '--attach=ingress') options = { ...options, attach: arg.slice('--attach='.length) as 'service' | 'ingress' };
    else if (arg === '--attach') {
      const v = args.shift();
      if (v !== 'service' && v !== 'ingress') return usage(io, '--attach takes "ingress" or "service"');
      options = { ...options, attach: v };
    }
    else if (['-f', '--filename', '--ingress-class', '--name-suffix', '--secret-name', '--annotation-prefix', '-n', '--namespace'].includes(flag)) {
      const v = value(arg, flag);
      if (v === undefined || v === '') return usage(io, `${flag} needs a value`);
      if (flag === '-f' || flag === '--filename') files.push(v);
      else if (flag === '--ingress-class') options = { ...options, ingressClass: v };
      else if (flag === '-n' || flag === '--namespace') options = { ...options, namespace: v };
      else if (flag === '--name-suffix') {
        if (!/^[-.a-z0-9]+$/.test(v)) return usage(io, `--name-suffix "${v}" cannot end an object name`);
        options = { ...options, nameSuffix: v };
      }
      else if (flag === '--secret-name') {
        if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(v)) return usage(io, `--secret-name "${v}" is not a Secret name`);
        options = { ...options, secretName: v };
      } else options = { ...options, annotationPrefix: v.replace(/\/+$/, '') };
    } else if (arg === '-' || !arg.startsWith('-')) files.push(arg);
    else return usage(io, `unknown argument "${arg}"`);
  }
  if (files.length === 0) files.push('-');

  const inputs: unknown[] = [];
  let stdinRead = false;
  for (const file of files) {
    let text: string;
    try {
      if (file === '-') {
        if (stdinRead) continue;
        stdinRead = true;
        text = await io.stdin();
      } else text = await readFile(file, 'utf8');
    } catch (e) {
      io.err(`cannot read ${file}: ${(e as Error).message}\n`);
      return 2;
    }
    try {
      inputs.push(...readDocuments(text));
    } catch (e) {
      io.err(`${file === '-' ? 'stdin' : file}: ${(e as Error).message}\n`);
      return 2;
    }
  }

  const result = convert(inputs, options);
  io.out(
    result.documents
      .map((d, i) => (result.changed[i] && isObj(d) ? withoutServerFields(d) : d))
      .map((d) => new Document(d, { version: '1.1' }).toString({ lineWidth: 0 }))
      .join('---\n'),
  );
  io.err(formatReport(result.reports, result.converted, result.documents.length - inputs.length));
  return strict && result.reports.some((r) => r.level === 'unmapped') ? 1 : 0;
}

function usage(io: ConvertIo, message: string): number {
  io.err(`${message}\n\n${CONVERT_USAGE}`);
  return 2;
}

/** Every document of a YAML stream, YAML 1.1 as kubectl reads it; a kind: List is its items. */
export function readDocuments(text: string): unknown[] {
  const out: unknown[] = [];
  parseAllDocuments(text, { version: '1.1' }).forEach((doc, i) => {
    if (doc.errors.length > 0) throw new Error(`document ${i + 1}: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) return;
    if (isObj(value) && typeof value.kind === 'string' && value.kind.endsWith('List') && Array.isArray(value.items)) out.push(...value.items);
    else out.push(value);
  });
  return out;
}

function withoutServerFields(doc: Obj): Obj {
  const copy = structuredClone(doc);
  delete copy.status;
  if (isObj(copy.metadata)) {
    for (const k of SERVER_METADATA) delete copy.metadata[k];
    if (isObj(copy.metadata.annotations)) delete copy.metadata.annotations[LAST_APPLIED];
  }
  return copy;
}

const ORDER: Readonly<Record<Report['level'], number>> = { action: 0, unmapped: 1, differs: 2, ignored: 3 };

export function formatReport(reports: readonly Report[], converted: number, plugins: number): string {
  const count = (level: Report['level']): number => reports.filter((r) => r.level === level).length;
  const lines = [
    converted === 0
      ? 'sticky-session convert: nothing to convert (no ingress-nginx affinity, KongUpstreamPolicy cookie affinity or HTTPRoute sessionPersistence found)'
      : `sticky-session convert: ${converted} resource${converted === 1 ? '' : 's'} converted into ${plugins} KongPlugin${plugins === 1 ? '' : 's'}; ${count('unmapped')} unmapped, ${count('differs')} differ, ${count('ignored')} ignored, ${count('action')} to do`,
  ];
  const sorted = [...reports].sort((a, b) => ORDER[a.level] - ORDER[b.level]);
  for (const r of sorted) lines.push(`${r.level.toUpperCase().padEnd(8)} ${r.source}${r.field ? ` ${r.field}` : ''}: ${r.message}`);
  return `${lines.join('\n')}\n`;
}
