import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  DockerfileError,
  kongPluginServerEnv,
  kongServerCommands,
  parseDockerfileEnv,
  pluginServerCommands,
  REPO_DIR,
} from '../harness/dockerfile.js';
import { queryPluginInfo } from '../harness/plugin-server.js';

describe('Dockerfile ENV parsing', () => {
  it('reads the final stage, continuations, quotes, escapes, comments and $VAR', () => {
    const env = parseDockerfileEnv(
      [
        'FROM node AS build',
        'ENV IGNORED=build-stage',
        'FROM kong',
        'ENV A=1 \\',
        '    B="two words" \\',
        '# a comment inside the continuation',
        "    C='single $A' \\",
        '    D="escaped \\"quote\\" and \\$A" E=$A${A}',
        'ENV F=$A${A}-"$B" G=$F',
        'ENV LEGACY value with  spaces',
        'env lower=case',
        'RUN echo ENV NOT=this',
      ].join('\n'),
    );
    expect(Object.fromEntries(env)).toEqual({
      A: '1',
      B: 'two words',
      C: 'single $A',
      D: 'escaped "quote" and $A',
      E: '', // A is set by this very instruction: Docker substitutes the previous value
      F: '11-two words',
      G: '',
      LEGACY: 'value with spaces',
      lower: 'case',
    });
  });

  it('refuses what it cannot parse', () => {
    expect(() => parseDockerfileEnv('FROM x\nENV A="unterminated')).toThrow(DockerfileError);
  });

  it('finds the sticky-session plugin server in the real Dockerfile', () => {
    const e = kongPluginServerEnv();
    expect(e.plugins).toContain('sticky-session');
    expect(e.pluginServerNames).toContain('sticky-session');
    expect(e.startCmd).toMatch(/kong-js-pluginserver/);
    expect(e.queryCmd).toMatch(/--dump-all-plugins/);
    // Kong connects to _SOCKET; the server listens on <kong-prefix>/<sock-name>: they must agree.
    const words = (e.startCmd as string).split(/\s+/);
    const prefix = words[words.indexOf('--kong-prefix') + 1];
    const sockName = words[words.indexOf('--sock-name') + 1];
    expect(e.socket).toBe(`${prefix}/${sockName}`);
  });
});

describe('commands as the image runs them', () => {
  it('maps the image paths onto the checkout, the Kong prefix and this Node', () => {
    const c = kongServerCommands({ repoDir: '/r', prefixDir: '/p' });
    expect(c.start.startsWith(`${process.execPath} `)).toBe(true);
    expect(c.start).toContain(' --require /r/dist/skip-ts-node.cjs /r/node_modules/kong-pdk/bin/kong-js-pluginserver ');
    expect(c.start).toContain('--plugins-directory /r/plugins');
    expect(c.start).toContain('--kong-prefix /p');
    expect(c.start).toContain('--sock-name sticky-session.sock');
    expect(c.query).toContain('--plugins-directory /r/plugins');
    expect(c.query).toContain('--dump-all-plugins');
    expect(c.socket).toBe('/p/sticky-session.sock');
    for (const s of [c.start, c.query, c.socket]) expect(s).not.toMatch(/\/usr\/local|\/opt\/sticky-session/);
  });

  it('swaps only the plugins directory (and socket name) for fixtures', () => {
    const real = kongServerCommands({ prefixDir: '/p' });
    const c = pluginServerCommands({ pluginsDir: '/f x', prefixDir: '/p', sockName: 'f.sock' });
    expect(c.start).toBe(
      real.start.replace(`--plugins-directory ${REPO_DIR}/plugins`, "--plugins-directory '/f x'").replace('sticky-session.sock', 'f.sock'),
    );
    expect(c.query).toBe(real.query.replace(`--plugins-directory ${REPO_DIR}/plugins`, "--plugins-directory '/f x'"));
    expect(c.socket).toBe('/p/f.sock');
  });

  it.skipIf(!existsSync(path.join(REPO_DIR, 'dist', 'handler.js')))(
    "the image's query command dumps the sticky-session plugin first",
    async () => {
      const c = kongServerCommands({ prefixDir: '/nonexistent' });
      const q = await queryPluginInfo(c.query);
      expect(q.info.Name).toBe('sticky-session');
      expect(q.info.Version).toMatch(/^\d+\.\d+\.\d+$/);
      expect(q.info.Schema.fields[0]).toHaveProperty('config');
    },
  );
});
