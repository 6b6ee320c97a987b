/**
 * The emulator's Rpc:call against a scripted unix-socket peer: what Kong gets back (and so
 * logs) when connect, send or read fails, and how the keepalive pool treats connections.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConnectionPool, MpRpcClient, RpcProtocolError } from '../harness/mp-rpc.js';
import { encode, END, MsgpackReader } from '../harness/msgpack.js';

type Reply = (sock: net.Socket, request: unknown[]) => void;

let dir: string;
let sockPath: string;
let server: net.Server | undefined;
let peers: net.Socket[];
let pool: ConnectionPool;

/** A plugin server stand-in: decodes requests, `reply` decides what to do with each. */
async function listen(reply: Reply): Promise<void> {
  server = net.createServer((sock) => {
    peers.push(sock);
    const reader = new MsgpackReader();
    sock.on('data', (chunk: Buffer) => reader.push(chunk));
    sock.on('close', () => reader.end());
    sock.on('error', () => {});
    void (async () => {
      for (;;) {
        const msg = await reader.next();
        if (msg === END) return;
        reply(sock, msg as unknown[]);
      }
    })();
  });
  await new Promise<void>((resolve) => server?.listen(sockPath, resolve));
}

const answer: Reply = (sock, [, msgid]) => sock.write(encode([1, msgid, null, { ok: msgid }]));

beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'mp-rpc-'));
  sockPath = path.join(dir, 's.sock');
  peers = [];
  pool = new ConnectionPool(sockPath);
});

afterEach(async () => {
  pool.close();
  for (const p of peers) p.destroy();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
  rmSync(dir, { recursive: true, force: true });
});

const waitFor = async (cond: () => boolean): Promise<void> => {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(cond()).toBe(true);
};

describe('Rpc:call failures, as Kong gets them', () => {
  it('a connect to a missing socket fails with the connect error ("trying to connect")', async () => {
    const out = await new MpRpcClient(pool, 1000).call('plugin.HandleEvent', []);
    expect(out).toEqual({ msgid: 1, error: 'no such file or directory', connectError: true });
  });

  it('a connect to a socket file nobody listens on any more is refused', async () => {
    // a process that dies listening leaves its socket file behind, as a killed plugin server does
    const script = `require('net').createServer().listen(${JSON.stringify(sockPath)}, () => process.kill(process.pid, 'SIGKILL'))`;
    spawnSync(process.execPath, ['-e', script]);
    expect(existsSync(sockPath)).toBe(true);
    const out = await new MpRpcClient(pool, 1000).call('plugin.HandleEvent', []);
    expect(out).toEqual({ msgid: 1, error: 'connection refused', connectError: true });
  });

  it('a send on a pooled connection whose peer is gone fails with the send error, not a connect error', async () => {
    await listen(answer);
    const rpc = new MpRpcClient(pool, 1000);
    expect(await rpc.call('plugin.HandleEvent', [])).toEqual({ msgid: 1, result: { ok: 1 } });
    expect(pool.stats()).toMatchObject({ connects: 1, idle: 1 });
    // The peer goes away and, before the event loop could tell the pool, the next call
    // takes that connection: Kong's c:send() gets EPIPE.
    (peers[0] as net.Socket).destroy();
    const out = await rpc.call('plugin.Step', []);
    expect(out).toEqual({ msgid: 2, error: 'broken pipe', sendError: true });
    expect(pool.stats()).toMatchObject({ connects: 1, reuses: 1, idle: 0, busy: 0 });
  });

  it('a read that ends without the answer (peer closed while Kong waited) is "no data"', async () => {
    await listen((sock) => sock.destroy());
    const out = await new MpRpcClient(pool, 1000).call('plugin.HandleEvent', []);
    expect(out).toEqual({ msgid: 1, error: 'no data' });
    expect(pool.stats()).toMatchObject({ idle: 0, busy: 0 });
  });

  it('a read cut inside the answer raises "missing bytes" (a Lua error), and the connection is not reused', async () => {
    await listen((sock, [, msgid]) => {
      const whole = encode([1, msgid, null, { Data: 'x'.repeat(100) }]);
      sock.end(whole.subarray(0, 20));
    });
    await expect(new MpRpcClient(pool, 1000).call('plugin.HandleEvent', [])).rejects.toThrow(new RpcProtocolError('missing bytes'));
    expect(pool.stats()).toMatchObject({ idle: 0, busy: 0 });
  });

  it('an answer that is not msgpack raises (a Lua error), and the connection is not reused', async () => {
    await listen((sock) => sock.write(Buffer.from([0xc1])));
    await expect(new MpRpcClient(pool, 1000).call('plugin.HandleEvent', [])).rejects.toThrow(RpcProtocolError);
    expect(pool.stats()).toMatchObject({ idle: 0, busy: 0 });
  });

  it('no answer within the timeout: "no data", and the connection is never reused', async () => {
    await listen(() => {});
    const rpc = new MpRpcClient(pool, 1000);
    expect(await rpc.call('plugin.HandleEvent', [], 50)).toEqual({ msgid: 1, error: 'no data', timedOut: true });
    expect(pool.stats()).toMatchObject({ idle: 0, busy: 0 });
  });
});

describe('the keepalive pool', () => {
  it('drops an idle connection the peer closed; the next call connects anew', async () => {
    await listen(answer);
    const rpc = new MpRpcClient(pool, 1000);
    await rpc.call('plugin.HandleEvent', []);
    (peers[0] as net.Socket).destroy();
    expect(await pool.idleDrained(1000)).toBe(true);
    expect(await rpc.call('plugin.Step', [])).toEqual({ msgid: 2, result: { ok: 2 } });
    expect(pool.stats()).toMatchObject({ connects: 2, reuses: 0, idle: 1 });
  });

  it('drops an idle connection that receives data', async () => {
    await listen(answer);
    await new MpRpcClient(pool, 1000).call('plugin.HandleEvent', []);
    (peers[0] as net.Socket).write(encode([2, 'stray', []]));
    await waitFor(() => pool.stats().idle === 0);
  });

  it('reuses a connection after an answer that came with extra bytes: they go with the call\'s unpacker', async () => {
    let first = true;
    await listen((sock, [, msgid]) => {
      const reply = encode([1, msgid, null, 'ok']);
      // the start of a second object in the same write: Kong's reader drops it with the cursor
      sock.write(first ? Buffer.concat([reply, encode([2, 'x', []]).subarray(0, 2)]) : reply);
      first = false;
    });
    const rpc = new MpRpcClient(pool, 1000);
    expect(await rpc.call('plugin.HandleEvent', [])).toEqual({ msgid: 1, result: 'ok' });
    expect(await rpc.call('plugin.Step', [])).toEqual({ msgid: 2, result: 'ok' });
    expect(pool.stats()).toMatchObject({ connects: 1, reuses: 1 });
  });
});
