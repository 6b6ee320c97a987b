import { createRequire } from 'node:module';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { log } from '../../src/log.js';
import { closePluginsOnCloseInstanceInThisServer } from '../../src/kong/close-instance.js';

// kong-pdk's own Server class, driven in-process the way Kong drives it over the socket.
// Loaded as the image loads it: after the ts-node stand-in (dist/, built by `npm test`).
const require = createRequire(import.meta.url);
require('../../dist/skip-ts-node.cjs');

interface PdkServer {
  clearExpiredPluginsTimer: NodeJS.Timeout;
  StartInstance(cfg: { Name: string; Config: string }): Promise<{ Id: number }>;
  CloseInstance(id: number): Promise<{ Id: number; Name: string }>;
}
const Server = require('kong-pdk/server.js') as new (dir: string, logger: unknown) => PdkServer;
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const FIXTURE = path.resolve(import.meta.dirname, '../fixtures/closable');
const { closed } = require(path.join(FIXTURE, 'closable.js')) as { closed: string[] };
const servers: PdkServer[] = [];

afterAll(() => {
  for (const s of servers) clearInterval(s.clearExpiredPluginsTimer);
});

async function started(...names: Array<string | { name: string; fail: true }>): Promise<{ server: PdkServer; ids: number[] }> {
  const server = new Server(FIXTURE, quiet);
  servers.push(server);
  const ids: number[] = [];
  for (const n of names) ids.push((await server.StartInstance({ Name: 'closable', Config: JSON.stringify(typeof n === 'string' ? { name: n } : n) })).Id);
  return { server, ids };
}

describe('kong-pdk CloseInstance', () => {
  it('unpatched, kong-pdk 0.6 never calls the plugin\'s close() (why the patch exists)', async () => {
    const { server, ids } = await started('a');
    await server.CloseInstance(ids[0]!);
    expect(closed).toEqual([]);
  });

  it('patched by the plugin, closes that instance and no other, with kong-pdk\'s reply unchanged', async () => {
    closePluginsOnCloseInstanceInThisServer();
    const { server, ids } = await started('old', 'new');
    expect(await server.CloseInstance(ids[0]!)).toMatchObject({ Id: ids[0], Name: 'closable' });
    expect(closed).toEqual(['old']);
    // Kong's "no plugin instance" error for an id it no longer has, as before.
    await expect(server.CloseInstance(ids[0]!)).rejects.toThrow(/^no plugin instance/);
    expect(closed).toEqual(['old']);
  });

  it('a close() that throws is logged; Kong still gets its reply', async () => {
    const error = vi.spyOn(log, 'error').mockImplementation(() => undefined);
    const { server, ids } = await started({ name: 'bad', fail: true });
    expect(await server.CloseInstance(ids[0]!)).toMatchObject({ Id: ids[0] });
    expect(error).toHaveBeenCalledWith(expect.objectContaining({ instance: ids[0] }), expect.stringContaining('closing a plugin instance failed'));
    error.mockRestore();
  });
});
