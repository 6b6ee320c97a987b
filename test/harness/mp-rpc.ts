/**
 * Kong's msgpack RPC client (rpc/mp_rpc.lua `Rpc:call`), one per plugin per nginx worker:
 *
 * - every call takes a connection to the unix socket from the worker's keepalive pool
 *   (cosocket `connect` reuses an idle one, LIFO, else opens one), sends ONE request
 *   `[0, msgid, method, args]`, reads msgpack objects with a fresh unpacker until the
 *   response `[1, msgid, err, result]` (notifications `[2, label, args]` are skipped),
 *   asserts the msgid, and puts the connection back (`setkeepalive`): never two requests in
 *   flight on one connection;
 * - msgid is a per-client counter starting at 1;
 * - what Kong gets back, and logs (handle_event logs every error with `kong.log.err`):
 *   an error string in the response: that string; a failed `connect`: the socket error
 *   ("connection refused", "no such file or directory"), flagged `connectError`, which
 *   Rpc:call also logs as "trying to connect: <err>"; a failed `send` on a pooled connection
 *   whose peer is gone: the socket error ("broken pipe"), flagged `sendError`; a read that
 *   ends without an answer (the peer closed or reset the connection, or the harness's
 *   timeout standing in for Kong's 60 s socket timeout): "no data". A connection that ends
 *   inside an object, or bytes that are not msgpack, make lua-MessagePack raise: a Lua
 *   error (RpcProtocolError here, like Kong's asserts on the response);
 * - an idle pooled connection that the server closes, or that receives data, is dropped
 *   (nginx's keepalive close handler); at most `poolSize` idle connections are kept.
 */
import net from 'node:net';
import util from 'node:util';
import { encode, END, MsgpackReader } from './msgpack.js';

export class RpcProtocolError extends Error {
  override name = 'RpcProtocolError';
}

export interface RpcOutcome {
  /** The response's result (undefined when nil). */
  result?: unknown;
  /** The error string, as Kong would get it back from Rpc:call. */
  error?: string;
  /** `connect` failed: Kong logged "trying to connect: <error>". */
  connectError?: boolean;
  /** `send` failed on a pooled connection. */
  sendError?: boolean;
  /** No answer within the timeout. */
  timedOut?: boolean;
  msgid: number;
}

class PooledConnection {
  readonly socket: net.Socket;
  private reader: MsgpackReader | null = null;
  closed = false;
  /** Bytes arrived while no call was reading: never reused. */
  stray = false;
  /** Set while idle in the pool (or retired). */
  onIdleEvent: (() => void) | null = null;

  constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      if (this.onIdleEvent) {
        this.onIdleEvent();
        return;
      }
      if (this.reader) this.reader.push(chunk);
      else this.stray = true;
    });
    socket.on('close', () => {
      this.closed = true;
      this.reader?.end();
      if (this.onIdleEvent) this.onIdleEvent();
    });
    socket.on('error', () => {
      /* a reset ends the read like a close: surfaced through 'close' */
    });
  }

  /** Kong's per-call `mp_unpacker` over `receiveany`: a fresh decoder for what comes next. */
  startReading(): MsgpackReader {
    this.reader?.end();
    const reader = new MsgpackReader();
    this.reader = reader;
    if (this.closed) reader.end();
    return reader;
  }

  /** Done with this call's unpacker; bytes it held that made no object are dropped with it. */
  stopReading(): void {
    this.reader?.end();
    this.reader = null;
  }

  /** `c:send()`: resolves with nothing, or the error text the cosocket returns. */
  send(buf: Buffer): Promise<string | undefined> {
    if (this.closed) return Promise.resolve('closed');
    return new Promise((resolve) => {
      this.socket.write(buf, (err) => resolve(err ? socketErrorText(err) : undefined));
    });
  }

  destroy(): void {
    this.closed = true;
    this.reader?.end();
    this.socket.destroy();
  }
}

export interface PoolStats {
  connects: number;
  reuses: number;
  idle: number;
  /** Connections a call is using right now (its request sent or about to be). */
  busy: number;
}

/** One worker's cosocket keepalive pool for the plugin server's socket. */
export class ConnectionPool {
  private readonly idle: PooledConnection[] = [];
  private readonly retired = new Set<PooledConnection>();
  private readonly busy = new Set<PooledConnection>();
  connects = 0;
  reuses = 0;

  constructor(
    readonly socketPath: string,
    readonly poolSize = 30,
  ) {}

  async acquire(timeoutMs: number): Promise<PooledConnection> {
    while (this.idle.length) {
      const c = this.idle.pop() as PooledConnection;
      c.onIdleEvent = null;
      if (c.closed || c.stray) {
        c.destroy();
        continue;
      }
      this.reuses++;
      this.busy.add(c);
      return c;
    }
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.createConnection({ path: this.socketPath });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error('timeout'));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        s.removeAllListeners('error');
        resolve(s);
      });
      s.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(new Error(socketErrorText(err)));
      });
    });
    this.connects++;
    const c = new PooledConnection(socket);
    this.busy.add(c);
    return c;
  }

  /** setkeepalive(): back to the idle pool, unless it is unusable. */
  release(c: PooledConnection): void {
    this.busy.delete(c);
    c.stopReading();
    if (c.closed || c.stray) {
      c.destroy();
      return;
    }
    c.onIdleEvent = () => {
      // nginx closes an idle pooled connection that is closed by the peer or gets data
      const i = this.idle.indexOf(c);
      if (i >= 0) this.idle.splice(i, 1);
      c.onIdleEvent = null;
      c.destroy();
    };
    this.idle.push(c);
    while (this.idle.length > this.poolSize) {
      const oldest = this.idle.shift() as PooledConnection;
      oldest.onIdleEvent = null;
      oldest.destroy();
    }
  }

  /**
   * A connection whose answer never came: never reused; kept open (so a late answer does
   * not hit a closed socket) and closed when data arrives or the pool closes.
   */
  retire(c: PooledConnection): void {
    this.busy.delete(c);
    c.stopReading();
    this.retired.add(c);
    c.onIdleEvent = () => {
      this.retired.delete(c);
      c.onIdleEvent = null;
      c.destroy();
    };
  }

  /**
   * Resolves once every idle connection has been closed by its peer and dropped, as nginx's
   * close handler does on its next event-loop turn after the server died (false on timeout).
   */
  async idleDrained(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.idle.length > 0) {
      if (Date.now() > deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    return true;
  }

  /** Drops every idle connection (e.g. after the server was restarted). */
  dropIdle(): void {
    for (const c of this.idle.splice(0)) {
      c.onIdleEvent = null;
      c.destroy();
    }
  }

  close(): void {
    this.dropIdle();
    for (const c of this.retired) c.destroy();
    this.retired.clear();
    for (const c of this.busy) c.destroy();
    this.busy.clear();
  }

  stats(): PoolStats {
    return { connects: this.connects, reuses: this.reuses, idle: this.idle.length, busy: this.busy.size };
  }
}

/** The text a cosocket returns for a socket error: strerror, lower-cased (as lua-nginx-module). */
function socketErrorText(err: NodeJS.ErrnoException): string {
  if (err.code === 'ERR_STREAM_DESTROYED') return 'closed';
  if (typeof err.errno === 'number') {
    try {
      return util.getSystemErrorMessage(err.errno);
    } catch {
      /* not a system errno */
    }
  }
  return err.message;
}

export interface RpcCallRecord {
  method: string;
  msgid: number;
  args: unknown[];
  error?: string;
  timedOut?: boolean;
  ms: number;
}

/** Kong's Rpc object: one per plugin in each worker (msg_id counter + the worker's pool). */
export class MpRpcClient {
  private msgId = 0;

  constructor(
    readonly pool: ConnectionPool,
    public timeoutMs: number,
    private readonly onCall?: (rec: RpcCallRecord) => void,
  ) {}

  /** Rpc:call(method, ...): one request, one response, on one pooled connection. */
  async call(method: string, args: unknown[], timeoutMs = this.timeoutMs): Promise<RpcOutcome> {
    const msgid = ++this.msgId;
    const started = Date.now();
    const done = (o: RpcOutcome): RpcOutcome => {
      const rec: RpcCallRecord = { method, msgid, args, ms: Date.now() - started };
      if (o.error !== undefined) rec.error = o.error;
      if (o.timedOut) rec.timedOut = true;
      this.onCall?.(rec);
      return o;
    };
    let conn: PooledConnection;
    try {
      conn = await this.pool.acquire(timeoutMs);
    } catch (err) {
      return done({ msgid, error: (err as Error).message, connectError: true });
    }
    const reader = conn.startReading();
    const sendError = await conn.send(encode([0, msgid, method, args]));
    if (sendError !== undefined) {
      // setkeepalive() on a failed connection closes it
      conn.destroy();
      this.pool.release(conn);
      return done({ msgid, error: sendError, sendError: true });
    }

    const deadline = started + timeoutMs;
    for (;;) {
      const remaining = deadline - Date.now();
      let timer: NodeJS.Timeout | undefined;
      let msg: unknown;
      try {
        msg = await Promise.race([
          reader.next(),
          new Promise<'timeout'>((resolve) => {
            timer = setTimeout(() => resolve('timeout'), Math.max(0, remaining));
          }),
        ]);
      } catch (err) {
        // lua-MessagePack raises on a byte it cannot unpack: a Lua error, not an RPC error
        clearTimeout(timer);
        conn.destroy();
        this.pool.release(conn);
        throw new RpcProtocolError(`msgpack: ${(err as Error).message}`);
      }
      clearTimeout(timer);
      if (msg === 'timeout') {
        this.pool.retire(conn);
        return done({ msgid, error: 'no data', timedOut: true });
      }
      if (msg === END) {
        this.pool.release(conn);
        // Closed inside an object: the unpacker's unprotected read raises "missing bytes".
        // (Told apart only before the first object; kong-pdk sends no notifications.)
        if (reader.decoded === 0 && reader.received > 0) throw new RpcProtocolError('missing bytes');
        return done({ msgid, error: 'no data' });
      }
      const frame = Array.isArray(msg) ? msg : [msg];
      if (frame[0] === 2) continue; // notification: [2, label, args]
      if (frame[0] !== 1) {
        this.pool.release(conn);
        throw new RpcProtocolError('RPC response expected from Go plugin server');
      }
      if (frame[1] !== msgid) {
        this.pool.release(conn);
        throw new RpcProtocolError('unexpected RPC response ID from Go plugin server');
      }
      this.pool.release(conn);
      const err = frame[2];
      if (err !== null && err !== undefined) return done({ msgid, error: String(err) });
      const result = frame[3];
      return done(result === null || result === undefined ? { msgid } : { msgid, result });
    }
  }
}
