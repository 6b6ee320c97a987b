/**
 * Kong's msgpack RPC client (rpc/mp_rpc.lua `Rpc:call`), one per plugin per nginx worker:
 *
 * - every call takes a connection to the unix socket from the worker's keepalive pool
 *   (cosocket `connect` reuses an idle one, LIFO, else opens one), sends ONE request
 *   `[0, msgid, method, args]`, reads msgpack objects until the response
 *   `[1, msgid, err, result]` (notifications `[2, label, args]` are skipped), asserts the
 *   msgid, and puts the connection back (`setkeepalive`): never two requests in flight on
 *   one connection;
 * - msgid is a per-client counter starting at 1;
 * - an error string in the response is returned as `{error}`; a failed connect as
 *   `{error, connectError}` (Kong logs "trying to connect: ..."); a read that ends without
 *   an answer (closed, or the harness's timeout standing in for Kong's 60 s socket
 *   timeout) as `{error: "no data"}`;
 * - an idle pooled connection that the server closes, or that receives data, is dropped
 *   (nginx's keepalive close handler); at most `poolSize` idle connections are kept.
 */
import net from 'node:net';
import { encode, StreamDecoder } from './msgpack.js';

export class RpcProtocolError extends Error {
  override name = 'RpcProtocolError';
}

export interface RpcOutcome {
  /** The response's result (undefined when nil). */
  result?: unknown;
  /** The error string, as Kong would get it back from Rpc:call. */
  error?: string;
  connectError?: boolean;
  /** No answer within the timeout. */
  timedOut?: boolean;
  msgid: number;
}

type Waiter = (msg: unknown[] | null) => void;

class PooledConnection {
  readonly socket: net.Socket;
  private readonly decoder = new StreamDecoder();
  private readonly inbox: unknown[][] = [];
  private waiter: Waiter | null = null;
  closed = false;
  /** Set while idle in the pool. */
  onIdleEvent: (() => void) | null = null;

  constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      let objects: unknown[];
      try {
        objects = this.decoder.push(chunk);
      } catch {
        this.destroy();
        return;
      }
      for (const o of objects) {
        this.inbox.push(Array.isArray(o) ? o : [o]);
      }
      if (this.onIdleEvent) {
        this.onIdleEvent();
        return;
      }
      this.flush();
    });
    const closed = (): void => {
      this.closed = true;
      if (this.onIdleEvent) this.onIdleEvent();
      this.flush();
    };
    socket.on('close', closed);
    socket.on('error', () => {
      /* surfaced through 'close' */
    });
  }

  private flush(): void {
    if (!this.waiter) return;
    const next = this.inbox.shift();
    if (next) {
      const w = this.waiter;
      this.waiter = null;
      w(next);
    } else if (this.closed) {
      const w = this.waiter;
      this.waiter = null;
      w(null);
    }
  }

  /** Next decoded object, or null when the connection closed first. */
  next(): Promise<unknown[] | null> {
    return new Promise((resolve) => {
      this.waiter = resolve;
      this.flush();
    });
  }

  cancelWait(): void {
    this.waiter = null;
  }

  get hasBufferedData(): boolean {
    return this.inbox.length > 0 || this.decoder.buffered > 0;
  }

  write(buf: Buffer): boolean {
    if (this.closed) return false;
    this.socket.write(buf);
    return true;
  }

  destroy(): void {
    this.closed = true;
    this.socket.destroy();
  }
}

export interface PoolStats {
  connects: number;
  reuses: number;
  idle: number;
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
      if (c.closed || c.hasBufferedData) {
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
        reject(new Error(connectErrorText(err)));
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
    if (c.closed || c.hasBufferedData) {
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
    c.cancelWait();
    this.retired.add(c);
    c.onIdleEvent = () => {
      this.retired.delete(c);
      c.onIdleEvent = null;
      c.destroy();
    };
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
    return { connects: this.connects, reuses: this.reuses, idle: this.idle.length };
  }
}

function connectErrorText(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ENOENT':
      return 'no such file or directory';
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'EACCES':
      return 'permission denied';
    default:
      return err.message;
  }
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
    conn.write(encode([0, msgid, method, args]));

    const deadline = started + timeoutMs;
    for (;;) {
      const remaining = deadline - Date.now();
      let timer: NodeJS.Timeout | undefined;
      const msg = await Promise.race([
        conn.next(),
        new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), Math.max(0, remaining));
        }),
      ]);
      clearTimeout(timer);
      if (msg === 'timeout') {
        this.pool.retire(conn);
        return done({ msgid, error: 'no data', timedOut: true });
      }
      if (msg === null) {
        this.pool.release(conn);
        return done({ msgid, error: 'no data' });
      }
      if (msg[0] === 2) continue; // notification: [2, label, args]
      if (msg[0] !== 1) {
        this.pool.release(conn);
        throw new RpcProtocolError('RPC response expected from Go plugin server');
      }
      if (msg[1] !== msgid) {
        this.pool.release(conn);
        throw new RpcProtocolError('unexpected RPC response ID from Go plugin server');
      }
      this.pool.release(conn);
      const err = msg[2];
      if (err !== null && err !== undefined) return done({ msgid, error: String(err) });
      const result = msg[3];
      return done(result === null || result === undefined ? { msgid } : { msgid, result });
    }
  }
}
