import { createRequire } from 'node:module';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { forgetEventsOnExitInThisServer } from '../../src/kong/forget-exited-events.js';

// kong-pdk's own Server class, driven in-process the way Kong drives it over the socket.
// Loaded as the image loads it: after the ts-node stand-in (dist/, built by `npm test`).
const require = createRequire(import.meta.url);
require('../../dist/skip-ts-node.cjs');

interface Reply {
  Data: unknown;
  EventId: number;
}
interface PdkServer {
  events: Map<number, unknown>;
  clearExpiredPluginsTimer: NodeJS.Timeout;
  StartInstance(cfg: { Name: string; Config: string }): Promise<{ Id: number }>;
  HandleEvent(event: { InstanceId: number; EventName: string }): Promise<Reply>;
  Step(data: { EventId: number; Data: unknown }): Promise<Reply>;
}
const Server = require('kong-pdk/server.js') as new (dir: string, logger: unknown) => PdkServer;
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const servers: PdkServer[] = [];

afterAll(() => {
  for (const s of servers) clearInterval(s.clearExpiredPluginsTimer);
});

async function startServer(): Promise<{ server: PdkServer; iid: number }> {
  const server = new Server(path.resolve(import.meta.dirname, '../fixtures/exit'), quiet);
  servers.push(server);
  const { Id } = await server.StartInstance({ Name: 'exit', Config: '{}' });
  return { server, iid: Id };
}

/** One access phase as Kong runs it; `x` is what get_var answers. Returns Kong's last message. */
async function accessPhase(server: PdkServer, iid: number, x: string): Promise<unknown> {
  const first = await server.HandleEvent({ InstanceId: iid, EventName: 'access' });
  expect(first.Data).toEqual({ Method: 'kong.nginx.get_var', Args: ['x'] });
  const second = await server.Step({ EventId: first.EventId, Data: x });
  // After kong.response.exit Kong sends nothing more for the event; let the plugin finish.
  await new Promise((resolve) => setImmediate(resolve));
  return second.Data;
}

describe('kong-pdk events ended by kong.response.exit', () => {
  it('unpatched, kong-pdk 0.6 keeps each one forever (why the patch exists)', async () => {
    const { server, iid } = await startServer();
    expect(await accessPhase(server, iid, 'exit')).toEqual({ Method: 'kong.response.exit', Args: [503] });
    expect(await accessPhase(server, iid, 'exit')).toMatchObject({ Method: 'kong.response.exit' });
    expect(server.events.size).toBe(2);
  });

  it('patched by the plugin, are forgotten as the exit goes out; other events end as before', async () => {
    forgetEventsOnExitInThisServer();
    const { server, iid } = await startServer();
    for (let i = 0; i < 100; i++) {
      expect(await accessPhase(server, iid, 'exit')).toMatchObject({ Method: 'kong.response.exit' });
    }
    expect(server.events.size).toBe(0);
    expect(await accessPhase(server, iid, 'pass')).toBe('ret');
    expect(server.events.size).toBe(0);
  });
});
