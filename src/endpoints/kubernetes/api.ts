/**
 * List and watch any Kubernetes resource over client-node's own transport: the KubeConfig
 * applies credentials and TLS (token files, exec plugins, client certificates, CA) and its
 * HTTP library sends the request. What is added here is what its Watch and generated list
 * API lack: every request can be aborted at any point (also while waiting for headers), has
 * a short deadline for the API server's first answer and a longer one for a list page, a
 * limit on silence for a watch, and its connection is closed when it ends (client-node
 * builds a new undici Agent for every request and never closes it).
 */
import type { IsomorphicFetchHttpLibrary, KubeConfig, RequestContext, ResponseContext } from '@kubernetes/client-node';
import { clientNode } from './client-node.js';

/** A resource type as the API names it in its paths. */
export interface ResourceKind {
  /** API group; `''` is the core group (`/api/v1`). */
  readonly group: string;
  readonly version: string;
  /** Lower-case plural of the path, e.g. `endpointslices`. */
  readonly plural: string;
}

/** The metadata every object carries and the caches key on. */
export interface ObjectMeta {
  readonly name?: string;
  readonly namespace?: string;
  readonly resourceVersion?: string;
  readonly labels?: Readonly<Record<string, string>> | null;
}

export interface KubeObject {
  readonly metadata?: ObjectMeta;
}

export type WatchEvent<T extends KubeObject = KubeObject> =
  | { readonly type: 'ADDED' | 'MODIFIED' | 'DELETED'; readonly object: T }
  | { readonly type: 'BOOKMARK'; readonly object: { readonly metadata?: { readonly resourceVersion?: string } } };

/** What to list and watch of a kind: one namespace or all of them, optionally by label. */
export interface Selection {
  /** Undefined: every namespace (the cluster-wide path). */
  readonly namespace?: string | undefined;
  /** e.g. `kubernetes.io/service-name=cart`; undefined: every object. */
  readonly labelSelector?: string | undefined;
}

/** A failure the API server reported: an HTTP status, or an ERROR event in a watch. */
export class KubeApiError extends Error {
  override readonly name = 'KubeApiError';
  constructor(
    /** HTTP status, or the `code` of the Status object of an ERROR event. */
    readonly code: number,
    /** The Status `reason`, e.g. `Expired`, `Gone`, `InternalError`. */
    readonly reason: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

/** The API server did not answer (headers, body or watch events) within the limit. */
export class KubeTimeoutError extends Error {
  override readonly name = 'KubeTimeoutError';
}

/** 410 Gone: the resourceVersion or continue token is too old; only a fresh list helps. */
export function isExpired(err: unknown): boolean {
  return err instanceof KubeApiError && err.code === 410;
}

let http: IsomorphicFetchHttpLibrary | undefined;

/** `/api/v1[/namespaces/<ns>]/<plural>` for the core group, `/apis/<group>/<version>[...]` otherwise. */
export function resourcePath(kind: ResourceKind, namespace?: string): string {
  const base = kind.group === '' ? `/api/${kind.version}` : `/apis/${kind.group}/${kind.version}`;
  return `${base}${namespace === undefined ? '' : `/namespaces/${encodeURIComponent(namespace)}`}/${kind.plural}`;
}

/** `endpointslices.discovery.k8s.io`, `services`: the kind as kubectl and logs name it. */
export function describeKind(kind: ResourceKind): string {
  return kind.group === '' ? kind.plural : `${kind.plural}.${kind.group}`;
}

export interface ListOptions {
  readonly signal: AbortSignal;
  /** Deadline for the headers of each page (ms): a healthy API server answers at once. */
  readonly answerTimeoutMs: number;
  /** Deadline for each whole page, headers and body (ms). */
  readonly timeoutMs: number;
  /** Items per page (`limit`); pages follow `continue`. */
  readonly pageSize: number;
}

/** Lists the selected objects; `resourceVersion` is where a watch resumes from. */
export async function listObjects<T extends KubeObject>(
  kubeConfig: KubeConfig,
  kind: ResourceKind,
  selection: Selection,
  options: ListOptions,
): Promise<{ items: T[]; resourceVersion: string }> {
  const items: T[] = [];
  let cont: string | undefined;
  let resourceVersion = '';
  const path = resourcePath(kind, selection.namespace);
  do {
    const query: Record<string, string> = { limit: String(options.pageSize) };
    if (selection.labelSelector) query.labelSelector = selection.labelSelector;
    if (cont) query.continue = cont;
    const headersMs = Math.min(options.answerTimeoutMs, options.timeoutMs);
    const page = await request(kubeConfig, path, query, options.signal, headersMs, async (response, deadline) => {
      deadline.extend(options.timeoutMs);
      return JSON.parse(await response.body.text()) as {
        items?: T[] | null;
        metadata?: { resourceVersion?: string; continue?: string };
      };
    });
    for (const item of page.items ?? []) items.push(item);
    resourceVersion = page.metadata?.resourceVersion ?? '';
    cont = page.metadata?.continue || undefined;
  } while (cont);
  if (!resourceVersion) throw new Error(`${describeKind(kind)} list without metadata.resourceVersion`);
  return { items, resourceVersion };
}

export interface WatchOptions {
  readonly signal: AbortSignal;
  readonly resourceVersion: string;
  /** Asks the server to end the watch after this long (`timeoutSeconds`). */
  readonly timeoutSeconds: number;
  /** Deadline for the response headers (ms): a healthy API server sends them at once. */
  readonly answerTimeoutMs: number;
  /** Longest silence tolerated on an open watch before it is given up (ms). */
  readonly idleTimeoutMs: number;
}

/**
 * Streams watch events to `onEvent` from `resourceVersion`, with bookmarks requested.
 * Resolves when the server ends the watch; rejects on errors, on an ERROR event (a
 * `KubeApiError` with its Status code, 410 when expired), on silence and on abort.
 */
export async function watchObjects<T extends KubeObject>(
  kubeConfig: KubeConfig,
  kind: ResourceKind,
  selection: Selection,
  options: WatchOptions,
  onEvent: (event: WatchEvent<T>) => void,
): Promise<void> {
  const query: Record<string, string> = {
    watch: 'true',
    allowWatchBookmarks: 'true',
    resourceVersion: options.resourceVersion,
    timeoutSeconds: String(options.timeoutSeconds),
  };
  if (selection.labelSelector) query.labelSelector = selection.labelSelector;
  const path = resourcePath(kind, selection.namespace);
  await request(kubeConfig, path, query, options.signal, options.answerTimeoutMs, async (response, deadline) => {
    const body = response.body.stream();
    if (!body) throw new Error('watch response without a body');
    deadline.extend(options.idleTimeoutMs);
    for await (const line of lines(body, () => deadline.extend(options.idleTimeoutMs))) {
      const event = parseEvent<T>(line);
      if (event) onEvent(event);
    }
  });
}

interface Deadline {
  /** Moves the deadline to `ms` from now. */
  extend(ms: number): void;
}

/**
 * One GET with credentials from the KubeConfig, aborted by `signal` or by the deadline
 * (first for the headers; `read` may move it while it consumes the body). Non-2xx answers
 * become `KubeApiError`. The request's connection is closed whatever happens.
 */
async function request<T>(
  kubeConfig: KubeConfig,
  path: string,
  query: Record<string, string>,
  signal: AbortSignal,
  headersTimeoutMs: number,
  read: (response: ResponseContext, deadline: Deadline) => Promise<T>,
): Promise<T> {
  const client = clientNode();
  http ??= new client.IsomorphicFetchHttpLibrary();
  signal.throwIfAborted();
  const controller = new AbortController();
  const abort = () => controller.abort(signal.reason);
  signal.addEventListener('abort', abort, { once: true });
  let timer: NodeJS.Timeout | undefined;
  const deadline: Deadline = {
    extend(ms) {
      clearTimeout(timer);
      timer = setTimeout(() => controller.abort(new KubeTimeoutError(`no answer from the API server within ${ms} ms: GET ${path}`)), ms);
    },
  };
  let context: RequestContext | undefined;
  try {
    deadline.extend(headersTimeoutMs);
    const cluster = kubeConfig.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    const url = new URL(cluster.server.replace(/\/+$/, '') + path);
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
    context = new client.RequestContext(url.toString(), client.HttpMethod.GET);
    context.setHeaderParam('Accept', 'application/json');
    await kubeConfig.applySecurityAuthentication(context);
    controller.signal.throwIfAborted();
    context.setSignal(controller.signal);
    const response = await http.send(context).toPromise();
    if (response.httpStatusCode < 200 || response.httpStatusCode > 299) throw await apiError(response, path);
    return await read(response, deadline);
  } catch (err) {
    // fetch reports any abort as an AbortError; say why it was aborted instead.
    throw controller.signal.aborted ? controller.signal.reason : err;
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', abort);
    controller.abort();
    // A dispatcher made for this request alone: closing it closes its socket now rather
    // than after the keep-alive timeout.
    context?.getDispatcher()?.destroy().catch(() => {});
  }
}

async function apiError(response: ResponseContext, path: string): Promise<KubeApiError> {
  const text = await response.body.text().catch(() => '');
  let status: { reason?: string; message?: string } = {};
  try {
    status = JSON.parse(text) as typeof status;
  } catch {
    // Not a Status object (a proxy's error page, say): keep the HTTP status alone.
  }
  const detail = status.message ?? (text.slice(0, 200) || `HTTP ${response.httpStatusCode}`);
  return new KubeApiError(response.httpStatusCode, status.reason, `GET ${path}: ${response.httpStatusCode} ${detail}`);
}

function parseEvent<T extends KubeObject>(line: string): WatchEvent<T> | undefined {
  if (!line.trim()) return undefined;
  const event = JSON.parse(line) as { type?: string; object?: Record<string, unknown> };
  switch (event.type) {
    case 'ADDED':
    case 'MODIFIED':
    case 'DELETED':
    case 'BOOKMARK':
      return event as WatchEvent<T>;
    case 'ERROR': {
      const status = (event.object ?? {}) as { code?: number; reason?: string; message?: string };
      throw new KubeApiError(status.code ?? 500, status.reason, `watch ERROR event: ${status.code ?? '?'} ${status.message ?? ''}`);
    }
    default:
      throw new Error(`unexpected watch event type ${JSON.stringify(event.type)}`);
  }
}

/** Splits a byte stream into lines; `onData` runs for every chunk (the watch is alive). */
async function* lines(body: ReadableStream<Uint8Array>, onData: () => void): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffered = '';
  for await (const chunk of body) {
    onData();
    buffered += decoder.decode(chunk, { stream: true });
    let newline: number;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      yield buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
    }
  }
  buffered += decoder.decode();
  if (buffered) yield buffered;
}
