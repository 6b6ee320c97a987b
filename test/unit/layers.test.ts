/**
 * The layout is the architecture (README, Layout): data flows source -> endpoint view ->
 * core <- token, the handler sits on top, and only src/kong/ knows kong-pdk. Read from the
 * sources' import statements, so a new import that runs back up fails here.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve(import.meta.dirname, '../../src');

function sources(dir = SRC): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(path.join(dir, e.name)) : /\.c?ts$/.test(e.name) ? [path.join(dir, e.name)] : [],
  );
}

/** Each source file (relative to src/) with what it imports: src-relative paths, or package names. */
const imports = new Map(
  sources().map((file) => {
    const text = readFileSync(file, 'utf8');
    const specs = [...text.matchAll(/(?:from|import|require(?:\.resolve)?\()\s*\(?\s*['"]([^'"]+)['"]/g)].map((m) => m[1] as string);
    const resolved = specs.map((s) => (s.startsWith('.') ? path.relative(SRC, path.resolve(path.dirname(file), s)) : s));
    return [path.relative(SRC, file), resolved] as const;
  }),
);

/** What may not be imported from each lower layer. */
const ABOVE = ['handler', 'kong/', 'config/', 'cli', 'observability/', 'convert/'];
const LOWER: Record<string, readonly string[]> = {
  'affinity/': ABOVE,
  'balancer/': [...ABOVE, 'affinity/'],
  'endpoints/': [...ABOVE, 'affinity/', 'balancer/', 'legacy/', 'token', 'cookie', 'handler'],
  'legacy/': ABOVE,
  'token.ts': ABOVE,
  'cookie.ts': ABOVE,
};

describe('layers', () => {
  it('finds the sources and their imports', () => {
    expect(imports.get('handler.ts')).toContain('affinity/decide.js');
    expect(imports.get('kong/pdk-server.ts')).toContain('kong-pdk/server.js');
  });

  it('only src/kong/ imports kong-pdk', () => {
    const outside = [...imports].filter(([file, specs]) => !file.startsWith('kong/') && specs.some((s) => s === 'kong-pdk' || s.startsWith('kong-pdk/')));
    expect(outside.map(([file]) => file)).toEqual([]);
  });

  it('only the command-line entry point writes to stdout, and nothing imports it', () => {
    // kong-pdk's plugin dump travels on the plugin server's stdout: one stray line breaks Kong's start.
    const writers = sources().filter((file) => /process\.stdout/.test(readFileSync(file, 'utf8'))).map((file) => path.relative(SRC, file));
    expect(writers).toEqual(['cli.ts']);
    const importers = [...imports].filter(([, specs]) => specs.includes('cli.js')).map(([file]) => file);
    expect(importers).toEqual([]);
  });

  it('no import runs back up', () => {
    const upward: string[] = [];
    for (const [file, specs] of imports) {
      const layer = Object.keys(LOWER).find((l) => file.startsWith(l));
      if (!layer) continue;
      for (const spec of specs) {
        if ((LOWER[layer] as readonly string[]).some((above) => spec.startsWith(above))) upward.push(`${file} -> ${spec}`);
      }
    }
    expect(upward).toEqual([]);
  });
});
