/**
 * List and watch EndpointSlices over client-node's own transport: the KubeConfig applies
 * credentials and TLS (token files, exec plugins, client certificates, CA) and its HTTP
 * library sends the request. What is added here is what its Watch and generated list API
 * lack: every request can be aborted at any point (also while waiting for headers), has a
 * deadline for its headers and a limit on silence, and its connection is closed when it
 * ends (client-node builds a new undici Agent for every request and never closes it).
 */
import type { IsomorphicFetchHttpLibrary, KubeConfig, RequestContext, ResponseContext } from '@kubernetes/client-node';
import { clientNode } from './client-node.js';
import type { EndpointSliceLike } from './slices.js';

/** An EndpointSlice as the API server sends it: with the metadata the watcher keys on. */
export interface EndpointSliceObject extends EndpointSliceLike {
  readonly metadata?: { readonly name?: string; readonly namespace?: string; readonly resourceVersion?: string };
}

export type WatchEvent =
  | { readonly type: 'ADDED' | 'MODIFIED' | 'DELETED'; readonly object: EndpointSliceObject }
  | { readonly type: 'BOOKMARK'; readonly object: { readonly metadata?: { readonly resourceVersion?: string } } };

export interface SliceSelector {
  readonly namespace: string;
  /** e.g. `kubernetes.io/service-name=cart` */
  readonly labelSelector: string;
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
const SLICES_PATH = '/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices';

export interface ListOptions {
  readonly signal: AbortSignal;
  /** Deadline for each page, headers and body (ms). */
  readonly timeoutMs: number;
  /** Items per page (`limit`); pages follow `continue`. */
  readonly pageSize: number;
}

/** Lists the selected slices; `resourceVersion` is where a watch resumes from. */
export async function listEndpointSlices(
  kubeConfig: KubeConfig,
  selector: SliceSelector,
  options: ListOptions,
): Promise<{ items: EndpointSliceObject[]; resourceVersion: string }> {
  const items: EndpointSliceObject[] = [];
  let cont: string | undefined;
  let resourceVersion = '';
  do {
    const query: Record<string, string> = { labelSelector: selector.labelSelector, limit: String(options.pageSize) };
    if (cont) query.continue = cont;
    const page = await request(kubeConfig, slicesPath(selector), query, options.signal, options.timeoutMs, async (response) => {
      return JSON.parse(await response.body.text()) as {
        items?: EndpointSliceObject[] | null;
        metadata?: { resourceVersion?: string; continue?: string };
      };
    });
    items.push(...(page.items ?? []));
    resourceVersion = page.metadata?.resourceVersion ?? '';
    cont = page.metadata?.continue || undefined;
  } while (cont);
  if (!resourceVersion) throw new Error('EndpointSlice list without metadata.resourceVersion');
  return { items, resourceVersion };
}

export interface WatchOptions {
  readonly signal: AbortSignal;
  readonly resourceVersion: string;
  /** Asks the server to end the watch after this long (`timeoutSeconds`). */
  readonly timeoutSeconds: number;
  /** Deadline for the response headers (ms). */
  readonly connectTimeoutMs: number;
  /** Longest silence tolerated on an open watch before it is given up (ms). */
  readonly idleTimeoutMs: number;
}

/**
 * Streams watch events to `onEvent` from `resourceVersion`, with bookmarks requested.
 * Resolves when the server ends the watch; rejects on errors, on an ERROR event (a
 * `KubeApiError` with its Status code, 410 when expired), on silence and on abort.
 */
export async function watchEndpointSlices(
  kubeConfig: KubeConfig,
  selector: SliceSelector,
  options: WatchOptions,
  onEvent: (event: WatchEvent) => void,
): Promise<void> {
  const query = {
    watch: 'true',
    allowWatchBookmarks: 'true',
    labelSelector: selector.labelSelector,
    resourceVersion: options.resourceVersion,
    timeoutSeconds: String(options.timeoutSeconds),
  };
  await request(kubeConfig, slicesPath(selector), query, options.signal, options.connectTimeoutMs, async (response, deadline) => {
    const body = response.body.stream();
    if (!body) throw new Error('watch response without a body');
    deadline.extend(options.idleTimeoutMs);
    for await (const line of lines(body, () => deadline.extend(options.idleTimeoutMs))) {
      const event = parseEvent(line);
      if (event) onEvent(event);
    }
  });
}

function slicesPath(selector: SliceSelector): string {
  return SLICES_PATH.replace('{ns}', encodeURIComponent(selector.namespace));
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

function parseEvent(line: string): WatchEvent | undefined {
  if (!line.trim()) return undefined;
  const event = JSON.parse(line) as { type?: string; object?: Record<string, unknown> };
  switch (event.type) {
    case 'ADDED':
    case 'MODIFIED':
    case 'DELETED':
    case 'BOOKMARK':
      return event as WatchEvent;
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
