/**
 * A stand-in kube-apiserver for `discovery.k8s.io/v1` EndpointSlices, core/v1 Services,
 * Gateway API HTTPRoutes (`gateway.networking.k8s.io/v1`) and ReferenceGrants (`v1beta1`),
 * speaking the real list/watch protocol so that the real `@kubernetes/client-node` works
 * against it unchanged: namespaced paths and all-namespaces paths (`/api/v1/services`,
 * `/apis/<group>/<version>/[namespaces/<ns>/]<plural>`).
 *
 * Modelled on what a real API server does (and what design-notes.md records):
 * - one global resourceVersion counter, like etcd's revision, on every write;
 * - watches replay history newer than the requested resourceVersion, then stream; a
 *   resourceVersion older than the retained history gets a 410 `Expired` Status, as an
 *   ERROR event on a 200 stream (what servers do) or as a plain HTTP 410 if asked;
 * - BOOKMARK events only when `allowWatchBookmarks=true`; `timeoutSeconds` ends a watch;
 * - conditions are stored as written, never defaulted;
 * - addresses in 127.0.0.0/8 (and other ranges real validation refuses) are 422 Invalid.
 * Plus faults for tests: injected 5xx, hung requests, cut streams, restarts, downtime; and
 * counters of what it costs (connections, watches, events and bytes sent) for benchmarks.
 * Listens on 127.0.0.1, port chosen by the OS and kept across stop()/start().
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { isIPv4, isIPv6, type Socket } from 'node:net';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { parseLabelSelector, selectorMatches, type LabelSelector } from './kube-labels.js';

/** A resource type as the API names it in its paths (the shape of src's ResourceKind). */
export interface ResourceKindRef {
  /** `''` is the core group. */
  readonly group: string;
  readonly version: string;
  readonly plural: string;
}

interface KindInfo extends ResourceKindRef {
  /** `Kind` of its objects, e.g. `EndpointSlice`. */
  readonly kind: string;
}

export const ENDPOINT_SLICE_KIND: ResourceKindRef = { group: 'discovery.k8s.io', version: 'v1', plural: 'endpointslices' };
export const SERVICE_KIND: ResourceKindRef = { group: '', version: 'v1', plural: 'services' };
export const HTTP_ROUTE_KIND: ResourceKindRef = { group: 'gateway.networking.k8s.io', version: 'v1', plural: 'httproutes' };
export const REFERENCE_GRANT_KIND: ResourceKindRef = { group: 'gateway.networking.k8s.io', version: 'v1beta1', plural: 'referencegrants' };

/** The kinds served; anything else is 404 NotFound. */
const KINDS: readonly KindInfo[] = [
  { ...ENDPOINT_SLICE_KIND, kind: 'EndpointSlice' },
  { ...SERVICE_KIND, kind: 'Service' },
  { ...HTTP_ROUTE_KIND, kind: 'HTTPRoute' },
  { ...REFERENCE_GRANT_KIND, kind: 'ReferenceGrant' },
];

function kindInfo(kind: ResourceKindRef): KindInfo {
  const found = KINDS.find((k) => k.group === kind.group && k.version === kind.version && k.plural === kind.plural);
  if (!found) throw new Error(`the fake API server does not serve ${kind.plural}.${kind.group}/${kind.version}`);
  return found;
}

const groupVersion = (k: ResourceKindRef): string => (k.group ? `${k.group}/${k.version}` : k.version);
const qualified = (k: ResourceKindRef): string => (k.group ? `${k.plural}.${k.group}` : k.plural);

/** Any object of a served kind, as written: metadata plus whatever else it carries (spec, status, ...). */
export interface ObjectInput {
  readonly apiVersion?: string;
  readonly kind?: string;
  readonly metadata: {
    readonly name: string;
    readonly namespace?: string;
    readonly labels?: Readonly<Record<string, string>>;
    readonly annotations?: Readonly<Record<string, string>>;
    readonly resourceVersion?: string;
  };
  readonly [field: string]: unknown;
}

/** An object as stored and served: with the metadata the server fills in. */
export interface StoredObject {
  apiVersion: string;
  kind: string;
  metadata: StoredSlice['metadata'];
  [field: string]: unknown;
}

export interface EndpointSliceInput extends ObjectInput {
  readonly addressType: string;
  readonly endpoints?: readonly unknown[] | null;
  readonly ports?: readonly unknown[] | null;
}

/** An EndpointSlice as stored and served: with the metadata the server fills in. */
export interface StoredSlice {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    resourceVersion: string;
    generation: number;
    creationTimestamp: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  addressType: string;
  endpoints: unknown[] | null;
  ports?: unknown[] | null;
}

interface Status {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure' | 'Success';
  message: string;
  reason: string;
  code: number;
  details?: Record<string, unknown>;
}

/** A request the fake refuses, with the Status a real server would send. */
export class KubeApiServerError extends Error {
  constructor(readonly status: Status) {
    super(status.message);
  }
  get code(): number {
    return this.status.code;
  }
}

interface HistoryEntry {
  readonly kind: KindInfo;
  readonly rv: number;
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED';
  readonly namespace: string;
  readonly previous: StoredObject | undefined;
  readonly object: StoredObject;
}

interface WatchStream {
  readonly kind: KindInfo;
  readonly res: ServerResponse;
  readonly namespace: string | undefined;
  readonly selector: LabelSelector;
  readonly timers: NodeJS.Timeout[];
}

interface ContinueState {
  readonly items: StoredObject[];
  readonly resourceVersion: string;
  readonly namespace: string | undefined;
  readonly selector: LabelSelector;
}

export interface KubeApiServerOptions {
  /** Interval of BOOKMARK events on watches that allow them; 0 = never (default 1000 ms). */
  readonly bookmarkIntervalMs?: number;
  /** Bearer token the server requires; the kubeconfig it writes carries it (default `test-token`). */
  readonly token?: string;
  /** Events kept for watch replay; older resourceVersions get 410 (default 1000). */
  readonly historyLimit?: number;
}

type RequestKind = 'list' | 'watch' | 'get' | 'write' | 'other';

export async function startKubeApiServer(options: KubeApiServerOptions = {}): Promise<KubeApiServer> {
  const server = new KubeApiServer(options);
  await server.start();
  return server;
}

export class KubeApiServer {
  /** How an expired watch is refused: ERROR event on a 200 stream (real servers) or HTTP 410. */
  expiredWatchAs: 'event' | 'http' = 'event';
  /** Requests received, by kind (also those failed, hung or refused). */
  readonly requests: Record<RequestKind, number> = { list: 0, watch: 0, get: 0, write: 0, other: 0 };
  /** What serving costs, for benchmarks: connections accepted, most open at once, what watches and lists sent. */
  readonly sent = { connections: 0, peakConnections: 0, peakWatches: 0, watchEvents: 0, watchBytes: 0, listItems: 0, listBytes: 0 };
  bookmarkIntervalMs: number;

  private readonly server: http.Server;
  private readonly token: string;
  private readonly historyLimit: number;
  private port = 0;
  private listening = false;
  private revision = 1000;
  private compactedRevision = 1000;
  /** `<group>/<plural>` -> `<namespace>/<name>` -> object. */
  private readonly objects = new Map<string, Map<string, StoredObject>>();
  private history: HistoryEntry[] = [];
  private readonly watches = new Set<WatchStream>();
  private readonly sockets = new Set<Socket>();
  private readonly hung = new Set<ServerResponse>();
  private readonly continues = new Map<string, ContinueState>();
  private failures = { remaining: 0, code: 500 };
  private hanging = false;

  constructor(options: KubeApiServerOptions = {}) {
    this.bookmarkIntervalMs = options.bookmarkIntervalMs ?? 1000;
    this.token = options.token ?? 'test-token';
    this.historyLimit = options.historyLimit ?? 1000;
    this.server = http.createServer((req, res) => this.handle(req, res));
    this.server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      this.sent.connections++;
      this.sent.peakConnections = Math.max(this.sent.peakConnections, this.sockets.size);
      socket.on('close', () => this.sockets.delete(socket));
    });
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The current global resourceVersion. */
  get resourceVersion(): string {
    return String(this.revision);
  }

  /** TCP connections open right now (watches, keep-alive, hung requests). */
  get openConnections(): number {
    return this.sockets.size;
  }

  get openWatches(): number {
    return this.watches.size;
  }

  /** Watches open right now, by `<plural>[.<group>]` and namespace (`*`: all namespaces). */
  watchesByResource(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const w of this.watches) {
      const key = `${qualified(w.kind)} ${w.namespace ?? '*'}`;
      out[key] = (out[key] ?? 0) + 1;
    }
    return out;
  }

  /** Listens (again, on the same port after a stop()). */
  async start(): Promise<void> {
    if (this.listening) return;
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.port, '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const address = this.server.address();
    if (address && typeof address === 'object') this.port = address.port;
    this.listening = true;
  }

  /** Unreachable from now on: stops listening and cuts every connection. State is kept. */
  async stop(): Promise<void> {
    if (!this.listening) return;
    this.listening = false;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    this.hung.clear();
    await closed;
  }

  // --- the programmatic API of the store -------------------------------------------------

  /** Creates or updates a slice (no-op when nothing changed); throws a 422 like the server. */
  apply(input: EndpointSliceInput): StoredSlice {
    return this.write(kindInfo(ENDPOINT_SLICE_KIND), input as unknown as ObjectInput, 'upsert').object as unknown as StoredSlice;
  }

  /** Deletes a slice; false when there was none. */
  delete(namespace: string, name: string): boolean {
    return this.deleteObject(ENDPOINT_SLICE_KIND, namespace, name);
  }

  get(namespace: string, name: string): StoredSlice | undefined {
    return this.getObject(ENDPOINT_SLICE_KIND, namespace, name) as unknown as StoredSlice | undefined;
  }

  /** Creates or updates an object of any served kind (no-op when nothing changed). */
  applyObject(kind: ResourceKindRef, input: ObjectInput): StoredObject {
    return this.write(kindInfo(kind), input, 'upsert').object;
  }

  /** Deletes an object of any served kind; false when there was none. */
  deleteObject(kind: ResourceKindRef, namespace: string, name: string): boolean {
    const info = kindInfo(kind);
    const store = this.store(info);
    const key = `${namespace}/${name}`;
    const previous = store.get(key);
    if (!previous) return false;
    store.delete(key);
    const object = withRevision(previous, ++this.revision);
    this.record({ kind: info, rv: this.revision, type: 'DELETED', namespace, previous, object });
    return true;
  }

  getObject(kind: ResourceKindRef, namespace: string, name: string): StoredObject | undefined {
    const stored = this.store(kindInfo(kind)).get(`${namespace}/${name}`);
    return stored && clone(stored);
  }

  /** Forgets the history: watches resumed from any older resourceVersion get 410. */
  compactHistory(): void {
    this.history = [];
    this.compactedRevision = this.revision;
    this.continues.clear();
  }

  /**
   * An API server restart: open watches end, connections close, the watch cache starts
   * afresh at a newer revision (other resources changed meanwhile), so resumed watches
   * get 410 Expired.
   */
  restart(): void {
    this.endWatches();
    this.revision += 100;
    this.compactHistory();
  }

  /** Ends every watch cleanly (final chunk, then FIN), as `timeoutSeconds` or a graceful shutdown does. */
  endWatches(): void {
    for (const watch of [...this.watches]) {
      const socket = watch.res.socket;
      watch.res.end(() => socket?.end());
    }
    this.server.closeIdleConnections();
  }

  /** Cuts every watch connection mid-stream, without the final chunk. */
  dropWatches(): void {
    for (const watch of [...this.watches]) watch.res.socket?.destroy();
  }

  /** The next `n` requests get `code` (500 InternalError, 503 ServiceUnavailable, ...). */
  failNext(n: number, code = 500): void {
    this.failures = { remaining: n, code };
  }

  /**
   * While on, requests are accepted and never answered (a partition that leaves TCP
   * connections open, a hung load balancer). Turning it off leaves the requests already
   * hung as they are, as such a fault does: only new requests are answered.
   */
  hang(on: boolean): void {
    this.hanging = on;
  }

  /** Requests accepted during hang(true) and still unanswered, connections open. */
  get hungRequests(): number {
    return this.hung.size;
  }

  // --- kubeconfig ----------------------------------------------------------------------

  /**
   * A kubeconfig for this server. client-node 2.x refuses a plain-http server unless the
   * cluster says `insecure-skip-tls-verify: true` ("HTTP protocol is not allowed when
   * skipTLSVerify is not set or false"), so it is set unless asked otherwise.
   */
  kubeconfigYaml(options: { insecureSkipTlsVerify?: boolean; namespace?: string } = {}): string {
    const skip = options.insecureSkipTlsVerify ?? true;
    return [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: fake',
      '  cluster:',
      `    server: ${this.url}`,
      ...(skip ? ['    insecure-skip-tls-verify: true'] : []),
      'users:',
      '- name: tester',
      '  user:',
      `    token: ${this.token}`,
      'contexts:',
      '- name: fake',
      '  context:',
      '    cluster: fake',
      '    user: tester',
      `    namespace: ${options.namespace ?? 'default'}`,
      'current-context: fake',
      '',
    ].join('\n');
  }

  /** Writes `<dir>/kubeconfig` and returns its path. */
  writeKubeconfig(dir: string, options?: { insecureSkipTlsVerify?: boolean; namespace?: string }): string {
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, 'kubeconfig');
    writeFileSync(file, this.kubeconfigYaml(options));
    return file;
  }

  /** A client-node KubeConfig for this server, loaded from the same YAML. */
  kubeConfig(options?: { insecureSkipTlsVerify?: boolean; namespace?: string }): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromString(this.kubeconfigYaml(options));
    return kc;
  }

  // --- HTTP --------------------------------------------------------------------------------

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://fake');
    const route = parseRoute(url.pathname);
    const namespace = route?.namespace;
    const name = route?.name;
    const isWatch = ['1', 'true'].includes(url.searchParams.get('watch') ?? '');
    const kind: RequestKind = !route
      ? 'other'
      : req.method === 'GET'
        ? name ? 'get' : isWatch ? 'watch' : 'list'
        : 'write';
    this.requests[kind]++;

    if (this.hanging) {
      this.hung.add(res);
      res.on('close', () => this.hung.delete(res));
      return;
    }
    if (this.failures.remaining > 0) {
      this.failures.remaining--;
      const code = this.failures.code;
      return sendStatus(res, status(code, reasonFor(code), `injected failure (${code})`));
    }
    if (req.headers.authorization !== `Bearer ${this.token}`) {
      return sendStatus(res, status(401, 'Unauthorized', 'Unauthorized'));
    }
    if (!route) {
      return sendStatus(res, status(404, 'NotFound', 'the server could not find the requested resource'));
    }
    const info = route.kind;
    try {
      switch (`${req.method} ${kind}`) {
        case 'GET list': {
          const text = JSON.stringify(this.list(info, namespace, url.searchParams));
          this.sent.listBytes += Buffer.byteLength(text);
          return sendText(res, 200, text);
        }
        case 'GET watch':
          return this.watch(info, req, res, namespace, url.searchParams);
        case 'GET get':
          return sendJson(res, 200, this.getOrThrow(info, namespace, name));
        case 'POST write':
          if (!namespace || name) break;
          return void readJson(req)
            .then((body) => sendJson(res, 201, this.write(info, intoNamespace(body, namespace), 'create').object))
            .catch((err: unknown) => sendError(res, err));
        case 'PUT write':
          if (!namespace || !name) break;
          return void readJson(req)
            .then((body) => {
              if (body.metadata?.name !== name) {
                throw new KubeApiServerError(status(400, 'BadRequest', `the name of the object (${body.metadata?.name}) does not match the name on the URL (${name})`));
              }
              sendJson(res, 200, this.write(info, intoNamespace(body, namespace), 'update').object);
            })
            .catch((err: unknown) => sendError(res, err));
        case 'DELETE write': {
          if (!namespace || !name) break;
          const stored = this.getOrThrow(info, namespace, name);
          this.deleteObject(info, namespace, name);
          return sendJson(res, 200, { ...status(200, '', ''), status: 'Success', details: { name, group: info.group, kind: info.plural, uid: stored.metadata.uid } });
        }
      }
      sendStatus(res, status(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`));
    } catch (err) {
      sendError(res, err);
    }
  }

  private list(info: KindInfo, namespace: string | undefined, params: URLSearchParams): unknown {
    const limit = Number(params.get('limit') ?? 0);
    const token = params.get('continue');
    let state: ContinueState;
    if (token) {
      const saved = this.continues.get(token);
      if (!saved) {
        throw new KubeApiServerError(status(410, 'Expired', 'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.'));
      }
      this.continues.delete(token);
      state = saved;
    } else {
      const selector = parseSelectorOrThrow(params.get('labelSelector'));
      state = { items: this.matching(info, namespace, selector), resourceVersion: this.resourceVersion, namespace, selector };
    }
    const page = limit > 0 ? state.items.slice(0, limit) : state.items;
    const rest = limit > 0 ? state.items.slice(limit) : [];
    const metadata: Record<string, unknown> = { resourceVersion: state.resourceVersion };
    if (rest.length > 0) {
      const next = randomUUID();
      this.continues.set(next, { ...state, items: rest });
      metadata.continue = next;
      metadata.remainingItemCount = rest.length;
    }
    // List items carry no apiVersion/kind: the list says it once.
    const items = page.map(({ apiVersion: _apiVersion, kind: _kind, ...item }) => item);
    this.sent.listItems += items.length;
    return { kind: `${info.kind}List`, apiVersion: groupVersion(info), metadata, items };
  }

  private watch(info: KindInfo, req: IncomingMessage, res: ServerResponse, namespace: string | undefined, params: URLSearchParams): void {
    const selector = parseSelectorOrThrow(params.get('labelSelector'));
    const from = params.get('resourceVersion') ?? '';
    let replay: { type: string; object: unknown }[];
    if (from === '' || from === '0') {
      // "Start at most recent / any": the current state as synthetic ADDED events.
      replay = this.matching(info, namespace, selector).map((object) => ({ type: 'ADDED', object }));
    } else {
      if (!/^[0-9]+$/.test(from)) {
        throw new KubeApiServerError(status(400, 'BadRequest', `invalid resource version: ${JSON.stringify(from)}`));
      }
      if (Number(from) < this.compactedRevision) {
        const expired = status(410, 'Expired', `too old resource version: ${from} (${this.compactedRevision})`);
        if (this.expiredWatchAs === 'http') return sendStatus(res, expired);
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ type: 'ERROR', object: expired }) + '\n');
        return;
      }
      replay = this.history
        .filter((entry) => entry.rv > Number(from))
        .flatMap((entry) => eventFor(entry, info, namespace, selector) ?? []);
    }

    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' });
    res.flushHeaders();
    const stream: WatchStream = { kind: info, res, namespace, selector, timers: [] };
    for (const event of replay) this.send(stream, event);

    this.watches.add(stream);
    this.sent.peakWatches = Math.max(this.sent.peakWatches, this.watches.size);
    if (params.get('allowWatchBookmarks') === 'true' && this.bookmarkIntervalMs > 0) {
      stream.timers.push(
        setInterval(() => {
          const bookmark = { kind: info.kind, apiVersion: groupVersion(info), metadata: { resourceVersion: this.resourceVersion } };
          res.write(JSON.stringify({ type: 'BOOKMARK', object: bookmark }) + '\n');
        }, this.bookmarkIntervalMs),
      );
    }
    const timeoutSeconds = Number(params.get('timeoutSeconds') ?? 0);
    if (timeoutSeconds > 0) stream.timers.push(setTimeout(() => res.end(), timeoutSeconds * 1000));
    const cleanup = () => {
      this.watches.delete(stream);
      for (const timer of stream.timers) clearTimeout(timer);
    };
    res.on('close', cleanup);
    req.on('close', cleanup);
  }

  /** One watch event on one stream, counted. */
  private send(stream: WatchStream, event: { type: string; object: unknown }): void {
    const line = JSON.stringify(event) + '\n';
    this.sent.watchEvents++;
    this.sent.watchBytes += Buffer.byteLength(line);
    stream.res.write(line);
  }

  // --- store ------------------------------------------------------------------------------

  private store(info: KindInfo): Map<string, StoredObject> {
    const id = `${info.group}/${info.plural}`;
    let store = this.objects.get(id);
    if (!store) this.objects.set(id, (store = new Map()));
    return store;
  }

  private write(info: KindInfo, input: ObjectInput, mode: 'create' | 'update' | 'upsert'): { object: StoredObject } {
    const namespace = input.metadata.namespace ?? 'default';
    const name = input.metadata.name;
    const causes = info.plural === 'endpointslices' ? validate(input as unknown as EndpointSliceInput) : validateName(name);
    const what = `${qualified(info)} ${JSON.stringify(name ?? '')}`;
    if (causes.length > 0) {
      throw new KubeApiServerError(
        status(422, 'Invalid', `${info.kind}${info.group ? `.${info.group}` : ''} ${JSON.stringify(name ?? '')} is invalid: ${causes.join(', ')}`, {
          name,
          group: info.group,
          kind: info.kind,
          causes: causes.map((message) => ({ reason: 'FieldValueInvalid', message })),
        }),
      );
    }
    const store = this.store(info);
    const key = `${namespace}/${name}`;
    const previous = store.get(key);
    if (previous && mode === 'create') {
      throw new KubeApiServerError(status(409, 'AlreadyExists', `${what} already exists`));
    }
    if (!previous && mode === 'update') {
      throw new KubeApiServerError(status(404, 'NotFound', `${what} not found`));
    }
    if (previous && mode === 'update' && input.metadata.resourceVersion && input.metadata.resourceVersion !== previous.metadata.resourceVersion) {
      throw new KubeApiServerError(
        status(409, 'Conflict', `Operation cannot be fulfilled on ${what}: the object has been modified; please apply your changes to the latest version and try again`),
      );
    }
    const { apiVersion: _apiVersion, kind: _kind, metadata: _metadata, ...fields } = input;
    const content: Record<string, unknown> =
      info.plural === 'endpointslices'
        ? {
            addressType: fields.addressType,
            endpoints: Array.isArray(fields.endpoints) ? clone([...(fields.endpoints as unknown[])]) : null,
            ...(fields.ports !== undefined ? { ports: Array.isArray(fields.ports) ? clone([...(fields.ports as unknown[])]) : null } : {}),
          }
        : clone(fields);
    const labels = input.metadata.labels ? { ...input.metadata.labels } : undefined;
    const annotations = input.metadata.annotations ? { ...input.metadata.annotations } : undefined;
    if (previous) {
      const { apiVersion: _a, kind: _k, metadata: before, ...previousContent } = previous;
      if (JSON.stringify([previousContent, before.labels, before.annotations]) === JSON.stringify([content, labels, annotations])) {
        return { object: clone(previous) }; // a no-op update writes nothing
      }
    }
    const rv = ++this.revision;
    const object: StoredObject = {
      apiVersion: groupVersion(info),
      kind: info.kind,
      metadata: {
        name,
        namespace,
        uid: previous?.metadata.uid ?? randomUUID(),
        resourceVersion: String(rv),
        generation: (previous?.metadata.generation ?? 0) + 1,
        creationTimestamp: previous?.metadata.creationTimestamp ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
        ...(labels ? { labels } : {}),
        ...(annotations ? { annotations } : {}),
      },
      ...content,
    };
    store.set(key, object);
    this.record({ kind: info, rv, type: previous ? 'MODIFIED' : 'ADDED', namespace, previous, object });
    return { object: clone(object) };
  }

  private record(entry: HistoryEntry): void {
    this.history.push(entry);
    if (this.history.length > this.historyLimit) {
      const dropped = this.history.splice(0, this.history.length - this.historyLimit);
      this.compactedRevision = dropped[dropped.length - 1]?.rv ?? this.compactedRevision;
    }
    for (const watch of this.watches) {
      // A watch ended by endWatches()/restart()/timeoutSeconds may not have left the set yet.
      if (watch.res.writableEnded) continue;
      const event = eventFor(entry, watch.kind, watch.namespace, watch.selector);
      if (event) this.send(watch, event);
    }
  }

  private matching(info: KindInfo, namespace: string | undefined, selector: LabelSelector): StoredObject[] {
    return [...this.store(info).values()]
      .filter((o) => (namespace === undefined || o.metadata.namespace === namespace) && selectorMatches(selector, o.metadata.labels))
      .sort((a, b) => (a.metadata.namespace + '/' + a.metadata.name < b.metadata.namespace + '/' + b.metadata.name ? -1 : 1))
      .map(clone);
  }

  private getOrThrow(info: KindInfo, namespace: string | undefined, name: string | undefined): StoredObject {
    const stored = namespace && name ? this.store(info).get(`${namespace}/${name}`) : undefined;
    if (!stored) throw new KubeApiServerError(status(404, 'NotFound', `${qualified(info)} ${JSON.stringify(name)} not found`));
    return clone(stored);
  }
}

/** `/api/v1/...` or `/apis/<group>/<version>/...`, `[namespaces/<ns>/]<plural>[/<name>]`, of a served kind. */
function parseRoute(pathname: string): { kind: KindInfo; namespace: string | undefined; name: string | undefined } | undefined {
  const m = /^\/(?:api\/(v1)|apis\/([^/]+)\/([^/]+))\/(?:namespaces\/([^/]+)\/)?([^/]+)(?:\/([^/]+))?$/.exec(pathname);
  if (!m) return undefined;
  const group = m[2] ?? '';
  const version = m[1] ?? m[3] ?? '';
  const kind = KINDS.find((k) => k.group === group && k.version === version && k.plural === m[5]);
  if (!kind) return undefined;
  return { kind, namespace: m[4] && decodeURIComponent(m[4]), name: m[6] && decodeURIComponent(m[6]) };
}

/** The event a watch sees for a write: a label change moves an object in or out of its selection. */
function eventFor(entry: HistoryEntry, kind: KindInfo, namespace: string | undefined, selector: LabelSelector): { type: string; object: StoredObject } | undefined {
  if (entry.kind !== kind) return undefined;
  if (namespace !== undefined && entry.namespace !== namespace) return undefined;
  const before = entry.previous !== undefined && selectorMatches(selector, entry.previous.metadata.labels);
  const after = entry.type !== 'DELETED' && selectorMatches(selector, entry.object.metadata.labels);
  if (before && after) return { type: 'MODIFIED', object: entry.object };
  if (after) return { type: 'ADDED', object: entry.object };
  if (before) return { type: 'DELETED', object: entry.object };
  return undefined;
}

function validateName(name: string | undefined): string[] {
  if (!name || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name) || name.length > 253) {
    return [`metadata.name: Invalid value: ${JSON.stringify(name ?? '')}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'`];
  }
  return [];
}

/** What the real EndpointSlice validation refuses that tests could plausibly write. */
function validate(input: EndpointSliceInput): string[] {
  const causes = validateName(input.metadata?.name);
  if (!['IPv4', 'IPv6', 'FQDN'].includes(input.addressType)) {
    causes.push(`addressType: Unsupported value: ${JSON.stringify(input.addressType ?? '')}: supported values: "FQDN", "IPv4", "IPv6"`);
  }
  (input.endpoints ?? []).forEach((raw, i) => {
    const endpoint = raw as { addresses?: unknown };
    const addresses = Array.isArray(endpoint.addresses) ? (endpoint.addresses as unknown[]) : [];
    if (addresses.length < 1 || addresses.length > 100) {
      causes.push(`endpoints[${i}].addresses: Invalid value: ${addresses.length}: must have at least 1 and at most 100 addresses`);
    }
    addresses.forEach((address, j) => {
      const problem = addressProblem(input.addressType, String(address));
      if (problem) causes.push(`endpoints[${i}].addresses[${j}]: Invalid value: ${JSON.stringify(address)}: ${problem}`);
    });
  });
  (input.ports ?? []).forEach((raw, i) => {
    const port = raw as { port?: unknown; protocol?: unknown };
    if (port.port !== undefined && port.port !== null && !(Number.isInteger(port.port) && (port.port as number) >= 1 && (port.port as number) <= 65535)) {
      causes.push(`ports[${i}].port: Invalid value: ${JSON.stringify(port.port)}: must be between 1 and 65535, inclusive`);
    }
    if (port.protocol !== undefined && !['TCP', 'UDP', 'SCTP'].includes(String(port.protocol))) {
      causes.push(`ports[${i}].protocol: Unsupported value: ${JSON.stringify(port.protocol)}: supported values: "SCTP", "TCP", "UDP"`);
    }
  });
  return causes;
}

function addressProblem(addressType: string, address: string): string | undefined {
  if (addressType === 'IPv4') {
    if (!isIPv4(address)) return 'must be a valid IPv4 address';
    if (address.startsWith('127.')) return 'may not be in the loopback range (127.0.0.0/8, ::1/128)';
    if (address === '0.0.0.0') return 'may not be unspecified (0.0.0.0, ::)';
    if (address.startsWith('169.254.')) return 'may not be in the link-local range (169.254.0.0/16, fe80::/10)';
  }
  if (addressType === 'IPv6') {
    if (!isIPv6(address)) return 'must be a valid IPv6 address';
    const lower = address.toLowerCase();
    if (lower === '::1') return 'may not be in the loopback range (127.0.0.0/8, ::1/128)';
    if (lower === '::') return 'may not be unspecified (0.0.0.0, ::)';
    if (/^fe[89ab]/.test(lower)) return 'may not be in the link-local range (169.254.0.0/16, fe80::/10)';
  }
  return undefined;
}

function intoNamespace(body: ObjectInput, namespace: string): ObjectInput {
  if (body.metadata?.namespace && body.metadata.namespace !== namespace) {
    throw new KubeApiServerError(status(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request'));
  }
  return { ...body, metadata: { ...body.metadata, namespace } };
}

function parseSelectorOrThrow(text: string | null): LabelSelector {
  try {
    return parseLabelSelector(text ?? '');
  } catch (err) {
    throw new KubeApiServerError(status(400, 'BadRequest', `unable to parse requirement: ${(err as Error).message}`));
  }
}

function withRevision(object: StoredObject, rv: number): StoredObject {
  return { ...clone(object), metadata: { ...clone(object.metadata), resourceVersion: String(rv) } };
}

function status(code: number, reason: string, message: string, details?: Record<string, unknown>): Status {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code, ...(details ? { details } : {}) };
}

function reasonFor(code: number): string {
  return ({ 429: 'TooManyRequests', 500: 'InternalError', 503: 'ServiceUnavailable', 504: 'Timeout' } as Record<number, string>)[code] ?? 'InternalError';
}

function sendJson(res: ServerResponse, code: number, body: unknown): void {
  sendText(res, code, JSON.stringify(body));
}

function sendText(res: ServerResponse, code: number, text: string): void {
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function sendStatus(res: ServerResponse, body: Status): void {
  sendJson(res, body.code, body);
}

function sendError(res: ServerResponse, err: unknown): void {
  if (res.headersSent) return void res.destroy();
  if (err instanceof KubeApiServerError) return sendStatus(res, err.status);
  sendStatus(res, status(500, 'InternalError', `fake apiserver: ${(err as Error).message}`));
}

async function readJson(req: IncomingMessage): Promise<ObjectInput> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as ObjectInput;
  } catch (err) {
    throw new KubeApiServerError(status(400, 'BadRequest', `invalid JSON body: ${(err as Error).message}`));
  }
}

function clone<T>(value: T): T {
  return structuredClone(value);
}
