import { createRequire } from 'node:module';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { log } from '../../src/log.js';
import { routeKongPdkLogger, type KongPdkLogger } from '../../src/kong/pdk-logger.js';

// A fresh node-color-log logger (the module's singleton class), as kong-pdk's bin sets it up.
const require = createRequire(import.meta.url);
const colorLog = require(createRequire(require.resolve('kong-pdk/server.js')).resolve('node-color-log')) as KongPdkLogger & {
  createNamedLogger(name: string): KongPdkLogger & { setLevel(level: string): void };
};

const written: string[] = [];
let stdout: ReturnType<typeof vi.spyOn>;
beforeAll(() => {
  const stream = (log as unknown as Record<symbol, { write(s: string): boolean }>)[pino.symbols.streamSym]!;
  vi.spyOn(stream, 'write').mockImplementation((s: string) => written.push(s) > 0);
  stdout = vi.spyOn(process.stdout, 'write');
});
afterAll(() => vi.restoreAllMocks());

describe('kong-pdk\'s logger, routed', () => {
  it('writes pino JSON through the plugin\'s logger, never to stdout, at kong-pdk\'s own threshold', () => {
    const logger = colorLog.createNamedLogger('kong-pdk');
    logger.setLevel('info'); // kong-pdk without -v
    routeKongPdkLogger(logger);
    routeKongPdkLogger(logger); // once is enough: a second call changes nothing
    logger.info('server started at', '/tmp/x.sock');
    logger.warn('unhandled exception', { in: 'access' });
    logger.error(new Error('boom').message);
    logger.debug('rpc: #1 method: plugin.Step'); // below kong-pdk's level
    expect(stdout).not.toHaveBeenCalled();
    const lines = written.map((s) => JSON.parse(s) as { level: number; from: string; msg: string });
    expect(lines.map((l) => [l.level, l.from, l.msg])).toEqual([
      [30, 'kong-pdk', 'server started at /tmp/x.sock'],
      [40, 'kong-pdk', 'unhandled exception {"in":"access"}'],
      [50, 'kong-pdk', 'boom'],
    ]);
    expect(written.join('')).not.toContain('\x1b');
  });
});
