/**
 * Rolling updates of a Kubernetes Deployment behind two Kong replicas, with sessions
 * sending requests all the while, judged request by request against what each replica
 * had SEEN of the endpoints. Used by test/e2e/rolling-update.test.ts, faults.test.ts,
 * soak-short.test.ts and the soak (test/soak/soak.ts).
 *
 * The set-up is the real thing as far as a test can have it:
 * - a fake kube-apiserver (kube-apiserver.ts) holding the EndpointSlices of Service
 *   shop/cart, one slice per Deployment version (`cart-v<n>`), pods on 198.18.0.0/15;
 * - `replicas` Kong replicas, each a KongEmulator running the real plugin server exactly as
 *   the image does (Dockerfile commands and env, KUBECONFIG and STICKY_SESSION_METRICS_PORT
 *   declared), with `workers` nginx workers, one shared secret;
 * - sessions: clients with a cookie jar that start with no cookie and send their requests
 *   one after the other to a random replica and worker.
 *
 * What each replica has seen is read from its plugin server's GET /status (the view the
 * watcher publishes): after every change the driver polls every replica until it shows
 * the new view and records when it did. A request is then judged against every view its
 * replica may have used while it was in flight: from the last view the replica was seen
 * to have before the request started, to the newest view written before it ended. A rule
 * is broken only if the outcome fits none of those views, so a request racing a change
 * is never blamed for the race, and a request that starts after its replica was seen with
 * a view is held to that view exactly.
 *
 * Rules (design-notes.md, "The contract"):
 * - moved:             a session whose pod is serving (ready or draining) in every possible
 *                      view was sent elsewhere, or got a new cookie;
 * - newOnTerminating:  a Set-Cookie (new session or re-pin) for a pod that is ready in
 *                      none of the possible views (draining or gone);
 * - deletedPod:        a request sent to a pod that is in none of the possible views
 *                      (deleted, or terminating and no longer serving);
 * - disagree:          a cookie sent to two replicas that had both seen the same view,
 *                      with different decisions: both pin but to different pods, or one
 *                      pins and the other re-pins. (Both re-pinning is the same decision;
 *                      the new pod is the balancer's choice, and least-sessions counts
 *                      this process's sessions only.)
 * - other:             anything else the contract excludes: a request that blocked (hung,
 *                      or longer than the call timeout), failed open while its replica
 *                      had a view, went to an unknown address, was rejected, or started a
 *                      session without a cookie.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { readDockerfileEnv } from './dockerfile.js';
import { KongEmulator, type RequestResult, type ServiceEntity } from './kong-emulator.js';
import { startKubeApiServer, type KubeApiServer } from './kube-apiserver.js';
import { DRAINING, endpointSlice, NOT_READY, podEndpoint, READY, STOPPED, type Conditions } from './kube-slices.js';
import { freePort } from '../support/free-port.js';

export const NAMESPACE = 'shop';
export const SERVICE_NAME = 'cart';
export const PORT_NAME = 'http';
export const TARGET_PORT = 8080;
export const SECRET = 'rolling-update-secret-0123456789abcdef';
export const COOKIE = 'sticky_session';

/**
 * How the plugin learns its Service: `explicit` sets kubernetes_namespace/_service/_port;
 * `kic` sets none and routes through a Kong service whose host is `cart.shop.http.svc`.
 */
export type ConfigStyle = 'explicit' | 'kic';

export const KONG_SERVICES: Record<ConfigStyle, Required<Pick<ServiceEntity, 'id' | 'name' | 'host' | 'port' | 'protocol'>>> = {
  explicit: { id: '7b0f3c52-0000-4000-8000-00000000ca01', name: 'cart', host: 'cart.example.internal', port: 80, protocol: 'http' },
  kic: { id: '7b0f3c52-0000-4000-8000-00000000ca02', name: 'shop.cart.http', host: `${SERVICE_NAME}.${NAMESPACE}.${PORT_NAME}.svc`, port: 80, protocol: 'http' },
};

export function pluginConfig(style: ConfigStyle): Record<string, unknown> {
  return style === 'explicit'
    ? { secrets: [SECRET], kubernetes_namespace: NAMESPACE, kubernetes_service: SERVICE_NAME, kubernetes_port: PORT_NAME }
    : { secrets: [SECRET] };
}

// ---------------------------------------------------------------------------------------
// Small tools

export const now = (): number => performance.now();
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** mulberry32: a seeded [0, 1) source, so a run can be repeated as far as timing allows. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A free loopback port (kept for the replica's whole life, restarts included). */
export { freePort };

class Semaphore {
  private free: number;
  private readonly waiting: Array<() => void> = [];
  constructor(n: number) {
    this.free = n;
  }
  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }
  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

// ---------------------------------------------------------------------------------------
// Pods and views

export type Condition = 'ready' | 'draining';

/** The endpoints a replica routes to: pod uid -> address and condition. */
export type View = ReadonlyMap<string, { readonly host: string; readonly port: number; readonly condition: Condition }>;

export interface Pod {
  readonly name: string;
  readonly uid: string;
  readonly ip: string;
  readonly version: number;
  conditions: Conditions;
  deleted: boolean;
}

interface Change {
  readonly index: number;
  /** performance.now() just before the write: no replica can have seen it earlier. */
  readonly at: number;
  readonly label: string;
  readonly view: View;
}

/** What the contract makes of EndpointSlice conditions (absent: not in the view). */
function conditionOf(c: Conditions): Condition | undefined {
  const ready = c.ready ?? true;
  const serving = c.serving ?? ready;
  if (!(c.terminating ?? false)) return ready ? 'ready' : undefined;
  return serving ? 'draining' : undefined;
}

function sameView(a: View, b: View): boolean {
  if (a.size !== b.size) return false;
  for (const [id, e] of a) {
    const o = b.get(id);
    if (!o || o.host !== e.host || o.port !== e.port || o.condition !== e.condition) return false;
  }
  return true;
}

export function describeView(view: View, pods?: ReadonlyMap<string, Pod>): string {
  return [...view].map(([id, e]) => `${pods?.get(id)?.name ?? id}:${e.condition}`).join(' ') || '(empty)';
}

// ---------------------------------------------------------------------------------------
// Replicas

interface StatusEndpoint {
  id: string;
  name: string;
  host: string;
  port: number;
  condition: Condition;
}

interface StatusService {
  source: string;
  synced: boolean;
  restarts: number;
  lastError: { message: string } | null;
  version: number | null;
  endpoints: StatusEndpoint[];
}

export interface ReplicaStatus {
  pid: number;
  services: StatusService[];
}

/**
 * One look at a replica's GET /status: the view it showed, as the highest change index with
 * that view (-1: not synced). The view was the plugin server's at some moment in
 * [from, at]: from `at` on, its view is at least `k`; up to `from`, at most `k` (a
 * watcher's view only moves forward, as long as the process is the same).
 */
export interface Observation {
  readonly k: number;
  readonly from: number;
  readonly at: number;
  /** Highest k observed up to this one. */
  readonly kMax: number;
}

export class Replica {
  /** Every observation, in the order they completed (`at` ascending). */
  readonly seen: Observation[] = [];
  /** Windows in which the replica may have no view at all (start, restarts). */
  readonly unsynced: Array<{ from: number; to: number | undefined }> = [{ from: 0, to: undefined }];
  /**
   * Windows in which its plugin server may be down or not synced yet: from just before
   * the process `pid` is stopped until a new process is first seen with a view.
   */
  readonly outages: Array<{ from: number; to: number | undefined; pid: number | undefined }> = [];
  restarts = 0;

  constructor(
    readonly index: number,
    readonly kong: KongEmulator,
    readonly metricsPort: number,
  ) {}

  /** The highest change index this replica was seen with (-1: none yet). */
  get lastSeen(): number {
    return this.seen.at(-1)?.kMax ?? -1;
  }

  /** When the replica was first seen with change `k` (or a later one); undefined if never. */
  seenAt(k: number): number | undefined {
    return this.seen.find((o) => o.kMax >= k)?.at;
  }

  /** The highest change index seen by time `t` (binary search; -1: none). */
  seenBy(t: number): number {
    let lo = 0;
    let hi = this.seen.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.seen[mid]!.at <= t) lo = mid + 1;
      else hi = mid;
    }
    return lo === 0 ? -1 : this.seen[lo - 1]!.kMax;
  }

  /** Requests answered and not judged yet: they wait for an observation that started after they ended. */
  readonly pending: PendingRequest[] = [];

  /** GET /status of the plugin server; undefined while it does not answer. */
  async status(timeoutMs = 1000): Promise<ReplicaStatus | undefined> {
    try {
      const res = await fetch(`http://127.0.0.1:${this.metricsPort}/status`, { signal: AbortSignal.timeout(timeoutMs) });
      if (!res.ok) return undefined;
      return (await res.json()) as ReplicaStatus;
    } catch {
      return undefined;
    }
  }

  /** The cart Service as the replica sees it; undefined when not watched or not synced. */
  async service(): Promise<StatusService | undefined> {
    const s = await this.status();
    return s?.services.find((x) => x.source === `k8s:${NAMESPACE}/${SERVICE_NAME}:${PORT_NAME}`);
  }

  async view(): Promise<View | undefined> {
    const svc = await this.service();
    if (!svc?.synced) return undefined;
    return new Map(svc.endpoints.map((e) => [e.id, { host: e.host, port: e.port, condition: e.condition }]));
  }

  /** GET /metrics: sticky_session_decisions_total summed by outcome/reason. */
  async decisions(): Promise<Map<string, number>> {
    const res = await fetch(`http://127.0.0.1:${this.metricsPort}/metrics`, { signal: AbortSignal.timeout(2000) });
    const text = await res.text();
    const out = new Map<string, number>();
    for (const m of text.matchAll(/^sticky_session_decisions_total\{([^}]*)\} (\S+)$/gm)) {
      const labels = Object.fromEntries([...(m[1] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
      const key = `${labels.outcome}/${labels.reason}`;
      out.set(key, (out.get(key) ?? 0) + Number(m[2]));
    }
    return out;
  }

  /** V8 heap in use, MiB, from the plugin server's own metrics (prom-client default metrics). */
  async heapUsedMiB(): Promise<number> {
    const res = await fetch(`http://127.0.0.1:${this.metricsPort}/metrics`, { signal: AbortSignal.timeout(2000) });
    const m = /^sticky_session_nodejs_heap_size_used_bytes (\S+)$/m.exec(await res.text());
    return Number(m?.[1] ?? NaN) / 1048576;
  }

  /** The plugin server's resident set size, MiB (Linux). */
  rssMiB(): number {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${this.kong.serverPid}/status`, 'utf8'));
    return Number(m?.[1] ?? NaN) / 1024;
  }

  /** May the replica have had no view (or no plugin server) during [s, e]? */
  mayBeUnsynced(s: number, e: number): boolean {
    return [...this.unsynced, ...this.outages].some((w) => w.from <= e && (w.to === undefined || w.to >= s));
  }

  mayBeDown(s: number, e: number): boolean {
    return this.outages.some((w) => w.from <= e && (w.to === undefined || w.to >= s));
  }
}

// ---------------------------------------------------------------------------------------
// Sessions and judgement

export interface Session {
  readonly id: number;
  cookie: string | undefined;
  /** Pod uid the cookie was issued for. */
  pin: string | undefined;
  requests: number;
  repins: number;
  /** Pods it was pinned to, in order. */
  readonly pins: string[];
}

export type ViolationKind = 'moved' | 'newOnTerminating' | 'deletedPod' | 'disagree' | 'other';

/** A request answered, waiting for its judgement. */
export interface PendingRequest {
  readonly session: Session;
  readonly replica: Replica;
  readonly worker: number;
  readonly start: number;
  readonly end: number;
  readonly sentPin: string | undefined;
  readonly result: RequestResult | undefined;
  readonly harnessError: string | undefined;
  readonly probe: boolean;
  readonly resolve: (record: RequestRecord) => void;
}

/** A request as answered: what the client sees at once; `judged` settles once the judge has seen it. */
export interface Answer {
  readonly target: string | undefined;
  readonly setCookie: string | undefined;
  readonly judged: Promise<RequestRecord>;
}

export interface ViolationSample {
  readonly kind: ViolationKind;
  readonly detail: string;
}

/** One request as sent and answered, with what the judge made of it. */
export interface RequestRecord {
  readonly seq: number;
  readonly session: number;
  readonly probe: boolean;
  readonly replica: number;
  readonly worker: number;
  readonly start: number;
  readonly end: number;
  /** The pin of the cookie sent (pod uid), undefined without a cookie. */
  readonly sentPin: string | undefined;
  /** Pod uid of the target, `?host:port` for an unknown address, undefined: no target. */
  readonly target: string | undefined;
  readonly setCookie: string | undefined;
  readonly status: number;
  /** Change indexes of the views the replica may have used. */
  readonly views: readonly [number, number];
  readonly violations: readonly ViolationKind[];
  readonly outcome: 'new' | 'pinned' | 'pinned-draining' | 'repinned' | 'fail-open' | 'error' | 'other';
}

export interface ScenarioReport {
  readonly style: ConfigStyle;
  readonly replicas: number;
  readonly workers: number;
  readonly pods: number;
  readonly rounds: number;
  readonly changes: number;
  readonly durationMs: number;
  readonly requests: number;
  readonly sessions: number;
  readonly sessionsWithCookie: number;
  readonly newSessions: number;
  readonly pinned: number;
  readonly pinnedDraining: number;
  readonly repins: { readonly gone: number; readonly other: number };
  readonly failOpen: number;
  readonly outageErrors: number;
  /** Requests in flight while their replica's view changed: judged against both views. */
  readonly ambiguous: number;
  readonly probes: { readonly pairs: number; readonly compared: number; readonly bothRepinned: number };
  readonly violations: Readonly<Record<ViolationKind, number>>;
  readonly otherViolations: Readonly<Record<string, number>>;
  readonly samples: readonly ViolationSample[];
  readonly propagationMs: { readonly p50: number; readonly p99: number; readonly max: number };
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly max: number };
  /** The plugin servers' own decision counters against the client-side counts (when no plugin server restarted). */
  readonly metrics?: { readonly agree: boolean; readonly detail: string };
}

export interface ScenarioOptions {
  style?: ConfigStyle;
  replicas?: number;
  workers?: number;
  /** Pods of the Deployment (default 3). */
  pods?: number;
  /** The API server is unreachable when the replicas start (they fail open until it is back). */
  apiDownAtStart?: boolean;
  /** Per RPC call, the emulator's stand-in for Kong's socket timeout (default 5000 ms). */
  callTimeoutMs?: number;
  /** How long to wait for a replica to see a change (default 20 s). */
  seenTimeoutMs?: number;
  /** Extra container env for the plugin servers. */
  env?: Record<string, string>;
  /** KONG_NGINX_MAIN_ENV override (to pass more env to the plugin servers, see nginxMainEnvWith). */
  nginxMainEnv?: string;
  /** Checkout standing for /opt/sticky-session (default: this one): to try the tests on a modified build. */
  repoDir?: string;
  /** Keep every RequestRecord (tests); the soak keeps counts only. */
  keepRecords?: boolean;
  /** How often every replica's GET /status is read while the scenario runs (default 20 ms). */
  observeEveryMs?: number;
  seed?: number;
  log?: (line: string) => void;
}

const VIOLATION_KINDS: readonly ViolationKind[] = ['moved', 'newOnTerminating', 'deletedPod', 'disagree', 'other'];
const MAX_SAMPLES = 25;

/**
 * The cluster, the Kong replicas and the judge. `start()` leaves Deployment v1 (`pods`
 * ready pods) in the API server and the plugin configured on every replica; nothing has
 * been sent yet.
 */
export class RollingUpdateScenario {
  readonly replicas: Replica[] = [];
  readonly sessions: Session[] = [];
  readonly records: RequestRecord[] = [];
  /** Every pod ever created, by uid. */
  readonly pods = new Map<string, Pod>();
  readonly changes: Change[] = [];
  readonly random: () => number;

  private readonly byAddress = new Map<string, string>();
  private readonly dir: string;
  private version = 0;
  private ipCounter = 0x0101;
  private seq = 0;
  private rounds = 0;
  private readonly started = now();
  private readonly latencies: number[] = [];
  private readonly propagation: number[] = [];
  private readonly counts = {
    requests: 0,
    newSessions: 0,
    pinned: 0,
    pinnedDraining: 0,
    repinsGone: 0,
    repinsOther: 0,
    failOpen: 0,
    outageErrors: 0,
    ambiguous: 0,
    pairs: 0,
    compared: 0,
    bothRepinned: 0,
  };
  private readonly violationCounts: Record<ViolationKind, number> = { moved: 0, newOnTerminating: 0, deletedPod: 0, disagree: 0, other: 0 };
  private readonly otherCounts: Record<string, number> = {};
  private readonly samples: ViolationSample[] = [];
  /** Views a replica showed that match no change written (should never happen). */
  private readonly unknownViews = new Map<number, string>();
  private observer: Promise<void> | undefined;
  private readonly callTimeoutMs: number;
  private readonly log: (line: string) => void;
  private stopped = false;

  private constructor(
    readonly api: KubeApiServer,
    readonly options: ScenarioOptions & { style: ConfigStyle; workers: number; pods: number },
    dir: string,
  ) {
    this.dir = dir;
    this.random = seededRandom(options.seed ?? 1);
    this.callTimeoutMs = options.callTimeoutMs ?? 5000;
    this.log = options.log ?? (() => {});
  }

  static async start(options: ScenarioOptions = {}): Promise<RollingUpdateScenario> {
    const opts = { ...options, style: options.style ?? 'explicit', workers: options.workers ?? 2, pods: options.pods ?? 3 };
    const api = await startKubeApiServer({ bookmarkIntervalMs: 1000, historyLimit: 5000 });
    const dir = mkdtempSync(path.join(os.tmpdir(), 'rolling-'));
    const scenario = new RollingUpdateScenario(api, opts, dir);
    try {
      scenario.version = 1;
      for (let i = 0; i < opts.pods; i++) scenario.createPod(1, READY);
      scenario.writeSlice(1);
      scenario.recordChange('deployment v1');
      if (opts.apiDownAtStart) await api.stop();
      const kubeconfig = api.writeKubeconfig(dir);
      const ports = await Promise.all(Array.from({ length: options.replicas ?? 2 }, () => freePort()));
      // The image's KONG_NGINX_MAIN_ENV already declares KUBECONFIG and STICKY_SESSION_METRICS_PORT.
      const kongs = await Promise.all(
        ports.map((port) =>
          KongEmulator.start({
            useDockerfile: true,
            workers: opts.workers,
            callTimeoutMs: scenario.callTimeoutMs,
            ...(opts.repoDir ? { repoDir: opts.repoDir } : {}),
            ...(opts.nginxMainEnv ? { nginxMainEnv: opts.nginxMainEnv } : {}),
            env: { KUBECONFIG: kubeconfig, STICKY_SESSION_METRICS_PORT: String(port), ...(opts.env ?? {}) },
          }),
        ),
      );
      kongs.forEach((kong, i) => {
        kong.addPlugin({ service: KONG_SERVICES[opts.style].id, config: pluginConfig(opts.style) });
        scenario.replicas.push(new Replica(i, kong, ports[i]!));
      });
      scenario.observer = scenario.observeLoop();
      return scenario;
    } catch (err) {
      await scenario.stop();
      throw err;
    }
  }

  get style(): ConfigStyle {
    return this.options.style;
  }

  get latestChange(): Change {
    return this.changes[this.changes.length - 1]!;
  }

  podName(uid: string | undefined): string {
    if (uid === undefined) return '-';
    return this.pods.get(uid)?.name ?? uid;
  }

  /** Pods of the Deployment that are not deleted, by version. */
  livePods(version?: number): Pod[] {
    return [...this.pods.values()].filter((p) => !p.deleted && (version === undefined || p.version === version));
  }

  // --- the Deployment ----------------------------------------------------------------------

  private createPod(version: number, conditions: Conditions): Pod {
    const n = this.ipCounter++;
    if ((n & 0xff) === 0xff) this.ipCounter += 2; // skip .255 and .0
    const ip = `198.${18 + (n >> 16)}.${(n >> 8) & 0xff}.${n & 0xff}`;
    const index = this.livePods(version).length + [...this.pods.values()].filter((p) => p.deleted && p.version === version).length;
    const name = `${SERVICE_NAME}-v${version}-${index}`;
    const pod: Pod = { name, uid: `uid-${name}`, ip, version, conditions, deleted: false };
    this.pods.set(pod.uid, pod);
    this.byAddress.set(`${ip}:${TARGET_PORT}`, pod.uid);
    return pod;
  }

  /** Writes the slice of one version (deletes it when it has no pod left). */
  private writeSlice(version: number): void {
    const pods = this.livePods(version);
    const name = `${SERVICE_NAME}-v${version}`;
    if (pods.length === 0) {
      this.api.delete(NAMESPACE, name);
      return;
    }
    this.api.apply(
      endpointSlice({
        name,
        service: SERVICE_NAME,
        namespace: NAMESPACE,
        ports: [{ name: PORT_NAME, port: TARGET_PORT }],
        endpoints: pods.map((p) => podEndpoint(p.name, p.ip, p.conditions, NAMESPACE)),
      }),
    );
  }

  /** The view the contract derives from the pods as written. */
  expectedView(): View {
    const view = new Map<string, { host: string; port: number; condition: Condition }>();
    // Slices by name, endpoints in slice order: the order does not matter to the judge.
    for (const pod of this.pods.values()) {
      if (pod.deleted) continue;
      const condition = conditionOf(pod.conditions);
      if (condition) view.set(pod.uid, { host: pod.ip, port: TARGET_PORT, condition });
    }
    return view;
  }

  private recordChange(label: string, at = now()): Change {
    const change: Change = { index: this.changes.length, at, label, view: this.expectedView() };
    this.changes.push(change);
    return change;
  }

  /** One write to the API server, recorded with the time just before it. */
  private change(label: string, write: () => void): Change {
    const at = now();
    write();
    this.log(`change ${this.changes.length}: ${label}`);
    return this.recordChange(label, at);
  }

  /** A new pod of `version`, written with `conditions` (default ready). */
  addPod(version = this.version, conditions: Conditions = READY): Pod {
    let pod!: Pod;
    this.change(`add ${SERVICE_NAME}-v${version} pod (${conditionOf(conditions) ?? 'not ready'})`, () => {
      pod = this.createPod(version, conditions);
      this.writeSlice(version);
    });
    return pod;
  }

  setConditions(pod: Pod, conditions: Conditions, label?: string): void {
    this.change(label ?? `${pod.name} -> ${conditionOf(conditions) ?? 'not serving'}`, () => {
      pod.conditions = conditions;
      this.writeSlice(pod.version);
    });
  }

  removePod(pod: Pod): void {
    this.change(`delete ${pod.name}`, () => {
      pod.deleted = true;
      this.writeSlice(pod.version);
    });
  }

  /**
   * Looks at replica `replica`'s GET /status once and records what it shows (nothing when
   * it does not answer), then judges the requests it answered before this look began.
   */
  async observe(replica: Replica): Promise<Observation | undefined> {
    const from = now();
    const status = await replica.status();
    const at = now();
    if (!status) return undefined;
    const svc = status.services.find((x) => x.source === `k8s:${NAMESPACE}/${SERVICE_NAME}:${PORT_NAME}`);
    let k = -1;
    if (svc?.synced) {
      const view: View = new Map(svc.endpoints.map((e) => [e.id, { host: e.host, port: e.port, condition: e.condition }]));
      // The highest change with this view (consecutive changes may leave the view as it
      // was; pod uids never come back, so no older view looks the same).
      for (k = this.changes.length - 1; k >= 0 && !sameView(this.changes[k]!.view, view); k--);
      if (k < 0) {
        this.unknownViews.set(replica.index, describeView(view, this.pods));
        return undefined;
      }
    }
    const previous = replica.lastSeen;
    const observation: Observation = { k, from, at, kMax: Math.max(previous, k) };
    replica.seen.push(observation);
    if (k >= 0) {
      for (const w of replica.unsynced) if (w.to === undefined) w.to = at;
      // Only the new process ends an outage: the old one may answer while it is stopping.
      for (const w of replica.outages) if (w.to === undefined && status.pid !== w.pid) w.to = at;
      const before = this.changes[k - 1];
      if (k > previous && before && !sameView(before.view, this.changes[k]!.view)) this.propagation.push(at - this.changes[k]!.at);
    }
    // Requests that ended before this look began: their view was at most this one.
    while (replica.pending.length > 0 && replica.pending[0]!.end <= from) this.judgePending(replica.pending.shift()!, observation);
    return observation;
  }

  /**
   * Waits until every replica (or `only`) shows the latest view in GET /status. Throws with
   * the replicas' views if one does not within the timeout.
   */
  async waitSeen(only?: readonly number[], timeoutMs = this.options.seenTimeoutMs ?? 20_000): Promise<void> {
    const target = this.latestChange;
    const deadline = now() + timeoutMs;
    const pending = new Set(only ?? this.replicas.map((r) => r.index));
    for (;;) {
      await Promise.all([...pending].map((i) => this.observe(this.replicas[i]!)));
      for (const i of pending) {
        const replica = this.replicas[i]!;
        // After a restart, only a look at the new process counts.
        if (replica.lastSeen >= target.index && replica.outages.every((w) => w.to !== undefined)) pending.delete(i);
      }
      if (pending.size === 0) return;
      if (now() > deadline) {
        const views = await Promise.all(
          [...pending].map(async (i) => {
            const view = await this.replicas[i]!.view();
            return `replica ${i}: ${view ? describeView(view, this.pods) : 'not synced / no answer'}`;
          }),
        );
        throw new Error(
          `not every replica saw change ${target.index} (${target.label}) within ${timeoutMs} ms: expected ${describeView(target.view, this.pods)}; ${views.join('; ')}`,
        );
      }
      await sleep(5);
    }
  }

  /** Looks at every replica every `observeEveryMs` until stop(): what judges the traffic. */
  private async observeLoop(): Promise<void> {
    while (!this.stopped) {
      await Promise.all(this.replicas.map((r) => this.observe(r)));
      await sleep(this.options.observeEveryMs ?? 20);
    }
  }

  /** Judges every request still waiting, with the views written before it ended as the only bound. */
  settle(): void {
    for (const replica of this.replicas) for (const p of replica.pending.splice(0)) this.judgePending(p, undefined);
  }

  /**
   * One rolling update to a new version, pod by pod (maxSurge 1, maxUnavailable 0): a new
   * pod is created (not ready), becomes ready; an old pod is marked terminating and still
   * serving, then not serving, then deleted. Each step waits until every replica has seen
   * it, then lets traffic flow for `dwellMs` and sends `probes` paired probes.
   */
  async rollingUpdate(opts: { dwellMs: number; probes: number; onStep?: (label: string) => Promise<void> | void }): Promise<void> {
    for (const write of this.rollingUpdateSteps()) {
      write();
      await this.waitSeen();
      await opts.onStep?.(this.latestChange.label);
      const until = now() + opts.dwellMs;
      if (opts.probes > 0) await this.probe(opts.probes);
      const left = until - now();
      if (left > 0) await sleep(left);
    }
    this.rounds++;
  }

  /**
   * The writes of one rolling update to the next version, in order, for a caller that
   * runs them itself (with faults in between): per old pod, a new pod created (not ready),
   * then ready; the old pod terminating and serving, then not serving, then deleted.
   */
  rollingUpdateSteps(): Array<() => void> {
    const from = this.version;
    const to = ++this.version;
    const steps: Array<() => void> = [];
    for (const pod of this.livePods(from)) {
      let fresh: Pod | undefined;
      steps.push(() => void (fresh = this.addPod(to, NOT_READY)));
      steps.push(() => this.setConditions(fresh!, READY));
      steps.push(() => this.setConditions(pod, DRAINING));
      steps.push(() => this.setConditions(pod, STOPPED));
      steps.push(() => this.removePod(pod));
    }
    return steps;
  }

  // --- requests -----------------------------------------------------------------------------

  /** A client with an empty cookie jar; `track: false` for the harness's own requests (not counted as sessions). */
  newSession(track = true): Session {
    const session: Session = { id: track ? this.sessions.length : -1, cookie: undefined, pin: undefined, requests: 0, repins: 0, pins: [] };
    if (track) this.sessions.push(session);
    return session;
  }

  /**
   * Sends one request as `session` would (its cookie, if any) to a replica and worker
   * (random by default) and updates the session's cookie jar unless `probe`. Returns as
   * soon as the answer is there; `judged` settles when the judge has looked at it (after
   * the replica's next observation).
   */
  async request(session: Session, opts: { replica?: number; worker?: number; probe?: boolean; cookie?: string; pin?: string } = {}): Promise<Answer> {
    const replicaIndex = opts.replica ?? Math.floor(this.random() * this.replicas.length);
    const worker = opts.worker ?? Math.floor(this.random() * this.options.workers);
    const replica = this.replicas[replicaIndex]!;
    const cookie = opts.cookie ?? session.cookie;
    const sentPin = cookie === undefined ? undefined : (opts.cookie !== undefined ? opts.pin : session.pin) ?? '?';
    const start = now();
    let result: RequestResult | undefined;
    let harnessError: string | undefined;
    try {
      result = await replica.kong.request(
        { service: KONG_SERVICES[this.style], path: '/cart', headers: cookie ? { cookie: `${COOKIE}=${cookie}` } : {} },
        { worker },
      );
    } catch (err) {
      harnessError = err instanceof Error ? err.message : String(err);
    }
    const end = now();
    const { target, setCookie } = this.answerOf(result);
    if (!opts.probe) {
      session.requests++;
      if (setCookie && target) {
        if (sentPin !== undefined) session.repins++;
        session.cookie = setCookie;
        session.pin = target;
        session.pins.push(target);
      }
    }
    const judged = new Promise<RequestRecord>((resolve) => {
      const p: PendingRequest = { session, replica, worker, start, end, sentPin, result, harnessError, probe: opts.probe ?? false, resolve };
      if (this.stopped) this.judgePending(p, undefined);
      else replica.pending.push(p);
    });
    return { target, setCookie, judged };
  }

  /** request(), then waits for its judgement. */
  async send(session: Session, opts: { replica?: number; worker?: number; probe?: boolean; cookie?: string; pin?: string } = {}): Promise<RequestRecord> {
    return (await this.request(session, opts)).judged;
  }

  private answerOf(r: RequestResult | undefined): { target: string | undefined; setCookie: string | undefined } {
    const address = r?.target ? `${r.target.host}:${r.target.port}` : undefined;
    const target = address === undefined ? undefined : this.byAddress.get(address) ?? `?${address}`;
    const line = r?.responseHeaders['set-cookie']?.find((c) => c.startsWith(`${COOKIE}=`));
    return { target, setCookie: line?.split(';', 1)[0]?.slice(COOKIE.length + 1) };
  }

  /**
   * The views replica `r` may have used for a request in flight during [s, e]: from the
   * highest it had been seen with before s, to the newest written before e, or less if an
   * observation that began after e showed less (and the plugin server was not restarted in
   * between). [-1, -1]: it had no view.
   */
  private possibleViews(replica: Replica, s: number, e: number, upper: Observation | undefined): [number, number] {
    const lo = Math.max(0, replica.seenBy(s));
    let hi = 0;
    for (let k = this.changes.length - 1; k >= 0; k--) {
      if (this.changes[k]!.at <= e) {
        hi = k;
        break;
      }
    }
    const restarted = replica.outages.some((w) => upper !== undefined && w.from <= upper.from && (w.to === undefined || w.to >= e));
    if (upper && !restarted) {
      if (upper.k < 0) return [-1, -1];
      hi = Math.min(hi, upper.k);
    }
    return [lo, Math.max(lo, hi)];
  }

  private judgePending(p: PendingRequest, upper: Observation | undefined): void {
    const record = this.judge(p.session, p.replica, p.worker, p.start, p.end, p.sentPin, p.result, p.harnessError, p.probe, upper);
    p.resolve(record);
  }

  private judge(
    session: Session,
    replica: Replica,
    worker: number,
    start: number,
    end: number,
    sentPin: string | undefined,
    r: RequestResult | undefined,
    harnessError: string | undefined,
    probe: boolean,
    upper: Observation | undefined,
  ): RequestRecord {
    const violations: ViolationKind[] = [];
    const details: string[] = [];
    const [lo, hi] = this.possibleViews(replica, start, end, upper);
    const views = lo < 0 ? [] : this.changes.slice(lo, hi + 1).map((c) => c.view);
    if (hi > lo) this.counts.ambiguous++;
    const flag = (kind: ViolationKind, detail: string): void => {
      violations.push(kind);
      details.push(detail);
      if (kind === 'other') {
        const key = detail.split(':')[0] ?? detail;
        this.otherCounts[key] = (this.otherCounts[key] ?? 0) + 1;
      }
    };
    const latency = end - start;
    this.latencies.push(latency);
    this.counts.requests++;

    const { target, setCookie } = this.answerOf(r);
    let outcome: RequestRecord['outcome'] = 'other';

    if (harnessError !== undefined || !r) {
      flag('other', `harness error: ${harnessError}`);
    } else {
      const down = replica.mayBeDown(start, end);
      if (r.hung || latency > this.callTimeoutMs + 1000) flag('other', `blocked: ${r.hung ? 'hung' : `${Math.round(latency)} ms`}`);
      if (!r.eventFinished && !(down && r.error !== undefined)) flag('other', `event not finished: ${r.error ?? r.luaError ?? 'no error'}`);
      if (r.exit) flag('other', `rejected: ${r.status}`);
      if (target === undefined) {
        if (r.error !== undefined && down) {
          outcome = 'error';
          this.counts.outageErrors++;
        } else {
          outcome = 'fail-open';
          this.counts.failOpen++;
        }
        if (!replica.mayBeUnsynced(start, end) && !r.exit) flag('other', 'fail open while synced');
        if (setCookie) flag('other', 'cookie without a target');
      } else if (lo < 0) {
        flag('other', `target while not synced: ${this.podName(target)}`);
      } else {
        const present = views.filter((v) => v.has(target)).length;
        const readyIn = views.filter((v) => v.get(target)?.condition === 'ready').length;
        if (target.startsWith('?')) flag('other', `unknown target: ${target.slice(1)}`);
        else if (present === 0) flag('deletedPod', `request to ${this.podName(target)}, gone from every possible view`);
        if (setCookie && readyIn === 0 && present > 0) flag('newOnTerminating', `Set-Cookie for ${this.podName(target)}, ready in no possible view`);
        if (sentPin === undefined) {
          if (setCookie) {
            outcome = 'new';
            this.counts.newSessions++;
          } else flag('other', 'new session without a cookie');
        } else {
          const servingEverywhere = views.every((v) => v.has(sentPin));
          const goneSomewhere = views.some((v) => !v.has(sentPin));
          if (setCookie) {
            outcome = 'repinned';
            if (goneSomewhere) this.counts.repinsGone++;
            else this.counts.repinsOther++;
          } else {
            outcome = views.every((v) => v.get(target)?.condition === 'draining') ? 'pinned-draining' : 'pinned';
            if (outcome === 'pinned-draining') this.counts.pinnedDraining++;
            else this.counts.pinned++;
          }
          if (servingEverywhere && (setCookie || target !== sentPin)) {
            flag('moved', `session pinned to ${this.podName(sentPin)} (serving in every possible view) ${setCookie ? 're-pinned' : 'sent'} to ${this.podName(target)}`);
          } else if (!setCookie && target !== sentPin) {
            flag('moved', `session pinned to ${this.podName(sentPin)} sent to ${this.podName(target)} without a new cookie`);
          }
        }
      }
    }

    for (const kind of violations) this.violationCounts[kind]++;
    if (violations.length > 0 && this.samples.length < MAX_SAMPLES) {
      const viewText = views.map((v) => describeView(v, this.pods)).join(' | ');
      this.samples.push({
        kind: violations[0]!,
        detail: `${details.join('; ')} [replica ${replica.index} worker ${worker}, session ${session.id}${probe ? ' (probe)' : ''}, views ${lo}..${hi}: ${viewText}]`,
      });
    }
    const record: RequestRecord = {
      seq: this.seq++,
      session: session.id,
      probe,
      replica: replica.index,
      worker,
      start,
      end,
      sentPin,
      target,
      setCookie,
      status: r?.status ?? 0,
      views: [lo, hi],
      violations,
      outcome,
    };
    if (this.options.keepRecords) this.records.push(record);
    return record;
  }

  /**
   * Paired probes: `n` sessions' cookies, each sent to two replicas at once (random
   * workers). Call only while no change is being written, after waitSeen(): both replicas
   * have then seen the same view, and must decide alike.
   */
  async probe(n: number): Promise<void> {
    if (this.replicas.length < 2) return;
    const pinned = this.sessions.filter((s) => s.cookie !== undefined);
    const pairs: Array<Promise<[RequestRecord, RequestRecord]>> = [];
    for (let i = 0; i < n && pinned.length > 0; i++) {
      const session = pinned[Math.floor(this.random() * pinned.length)]!;
      const cookie = session.cookie!;
      const pin = session.pin!;
      const a = Math.floor(this.random() * this.replicas.length);
      const b = (a + 1 + Math.floor(this.random() * (this.replicas.length - 1))) % this.replicas.length;
      const [ra, rb] = await Promise.all([
        this.request(session, { replica: a, probe: true, cookie, pin }),
        this.request(session, { replica: b, probe: true, cookie, pin }),
      ]);
      pairs.push(Promise.all([ra.judged, rb.judged]));
    }
    for (const [ra, rb] of await Promise.all(pairs)) this.comparePair(ra, rb);
  }

  private comparePair(a: RequestRecord, b: RequestRecord): void {
    this.counts.pairs++;
    // Comparable only if each was judged against one view, the same one, with a target.
    if (a.views[0] !== a.views[1] || b.views[0] !== b.views[1] || a.views[0] !== b.views[0]) return;
    if (a.target === undefined || b.target === undefined) return;
    this.counts.compared++;
    const aPins = a.setCookie === undefined;
    const bPins = b.setCookie === undefined;
    if (!aPins && !bPins) {
      this.counts.bothRepinned++;
      return;
    }
    if (aPins && bPins && a.target === b.target) return;
    this.violationCounts.disagree++;
    if (this.samples.length < MAX_SAMPLES) {
      const say = (r: RequestRecord) => `replica ${r.replica} ${r.setCookie ? 're-pinned to' : 'pinned to'} ${this.podName(r.target)}`;
      this.samples.push({
        kind: 'disagree',
        detail: `cookie of session ${a.session} (pinned to ${this.podName(a.sentPin)}) with view ${a.views[0]}: ${say(a)}, ${say(b)}`,
      });
    }
  }

  /**
   * An API server restart (watches end, resumed ones get 410 Gone). Waits a moment before
   * returning: the fake keeps an ended watch in its set until the response closes, and a
   * write meanwhile would be written to the ended response ("write after end").
   */
  async restartApiServer(): Promise<void> {
    this.api.restart();
    await sleep(200);
  }

  // --- plugin-server processes --------------------------------------------------------------

  /** SIGKILL (a crash) of replica `i`'s plugin server; Kong's supervisor respawns it. */
  async killReplica(i: number): Promise<void> {
    const replica = this.replicas[i]!;
    replica.outages.push({ from: now(), to: undefined, pid: replica.kong.serverPid });
    replica.restarts++;
    await replica.kong.killServer('SIGKILL');
    await replica.kong.waitForServer();
  }

  /** SIGTERM and respawn (Kong's own restart of the plugin server). */
  async restartReplica(i: number): Promise<void> {
    const replica = this.replicas[i]!;
    replica.outages.push({ from: now(), to: undefined, pid: replica.kong.serverPid });
    replica.restarts++;
    await replica.kong.restartServer();
  }

  // --- the run's outcome ----------------------------------------------------------------------

  /** Compares each replica's decision counters with the judged records (valid when no plugin server restarted). */
  async metricsCheck(): Promise<{ agree: boolean; detail: string }> {
    const sum = new Map<string, number>();
    for (const replica of this.replicas) for (const [k, v] of await replica.decisions()) sum.set(k, (sum.get(k) ?? 0) + v);
    const get = (k: string): number => sum.get(k) ?? 0;
    const plugin = {
      new: get('new/none'),
      repinned: get('repinned/gone'),
      pinned: get('pinned/none'),
      pinnedDraining: get('pinned_draining/none'),
      failOpen: get('fail_open/not-synced'),
      total: [...sum.values()].reduce((a, b) => a + b, 0),
    };
    const c = this.counts;
    const client = {
      new: c.newSessions,
      repinned: c.repinsGone + c.repinsOther,
      pinned: c.pinned,
      pinnedDraining: c.pinnedDraining,
      failOpen: c.failOpen,
      total: c.requests,
    };
    // A request in flight across a change may be pinned on either side of the ready/draining line.
    const agree =
      plugin.new === client.new &&
      plugin.repinned === client.repinned &&
      plugin.pinned + plugin.pinnedDraining === client.pinned + client.pinnedDraining &&
      plugin.failOpen === client.failOpen &&
      plugin.total === client.total;
    return { agree, detail: `plugin servers ${JSON.stringify(plugin)}; requests as judged ${JSON.stringify(client)}` };
  }

  async report(opts: { metrics?: boolean } = {}): Promise<ScenarioReport> {
    // One more look at every replica, then judge whatever is left.
    await Promise.all(this.replicas.map((r) => this.observe(r)));
    this.settle();
    const latencies = [...this.latencies].sort((a, b) => a - b);
    const propagation = [...this.propagation].sort((a, b) => a - b);
    const noRestarts = this.replicas.every((r) => r.restarts === 0);
    const metrics = opts.metrics !== false && noRestarts ? await this.metricsCheck() : undefined;
    const c = this.counts;
    return {
      style: this.style,
      replicas: this.replicas.length,
      workers: this.options.workers,
      pods: this.options.pods,
      rounds: this.rounds,
      changes: this.changes.length - 1,
      durationMs: now() - this.started,
      requests: c.requests,
      sessions: this.sessions.length,
      sessionsWithCookie: this.sessions.filter((s) => s.cookie !== undefined).length,
      newSessions: c.newSessions,
      pinned: c.pinned,
      pinnedDraining: c.pinnedDraining,
      repins: { gone: c.repinsGone, other: c.repinsOther },
      failOpen: c.failOpen,
      outageErrors: c.outageErrors,
      ambiguous: c.ambiguous,
      probes: { pairs: c.pairs, compared: c.compared, bothRepinned: c.bothRepinned },
      violations: { ...this.violationCounts, other: this.violationCounts.other + this.unknownViews.size },
      otherViolations: {
        ...this.otherCounts,
        ...Object.fromEntries([...this.unknownViews].map(([i, v]) => [`replica ${i} showed a view never written (${v})`, 1])),
      },
      samples: [...this.samples],
      propagationMs: { p50: percentile(propagation, 50), p99: percentile(propagation, 99), max: propagation.at(-1) ?? 0 },
      latencyMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.at(-1) ?? 0 },
      ...(metrics ? { metrics } : {}),
    };
  }

  /** The first violations found, with what the judge saw (for failure messages). */
  violationSamples(): string {
    return this.samples.map((x) => `${x.kind}: ${x.detail}`).join('\n');
  }

  /** Plugin-server logs of every replica (last `chars` of each), for failure messages. */
  serverLogs(chars = 3000): string {
    return this.replicas.map((r) => `--- replica ${r.index} plugin server ---\n${r.kong.serverLog().slice(-chars)}`).join('\n');
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.observer;
    this.settle();
    await Promise.all(this.replicas.map((r) => r.kong.stop().catch(() => undefined)));
    await this.api.stop().catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export function totalViolations(report: Pick<ScenarioReport, 'violations'>): number {
  return VIOLATION_KINDS.reduce((n, k) => n + report.violations[k], 0);
}

// ---------------------------------------------------------------------------------------
// Traffic

export interface TrafficOptions {
  /** Sessions to start in all. */
  sessions: number;
  /** They arrive evenly over this window (ms). */
  arrivalMs: number;
  /** Requests of a short session, [min, max]; long sessions run until stop(). */
  requests?: [number, number];
  /** Share of long sessions (default 0.25). */
  longShare?: number;
  /** Pause between a session's requests, [min, max] ms. */
  thinkMs?: [number, number];
  /** Requests in flight at most (default 48). */
  concurrency?: number;
}

/** Sessions arriving over time and sending requests until they are done or stop() is called. */
export class Traffic {
  private stopping = false;
  private readonly running = new Set<Promise<void>>();
  private readonly limit: Semaphore;
  private arrivals: Promise<void> | undefined;
  started = 0;

  constructor(
    private readonly scenario: RollingUpdateScenario,
    private readonly opts: TrafficOptions,
  ) {
    this.limit = new Semaphore(opts.concurrency ?? 48);
  }

  start(): this {
    this.arrivals = this.arrive();
    return this;
  }

  /** Resolves once every session has started (or stop() was called). */
  async allStarted(): Promise<void> {
    await this.arrivals;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.arrivals;
    await Promise.all([...this.running]);
  }

  private async arrive(): Promise<void> {
    const t0 = now();
    const { sessions, arrivalMs } = this.opts;
    for (let i = 0; i < sessions && !this.stopping; i++) {
      const due = t0 + (i * arrivalMs) / sessions;
      const wait = due - now();
      if (wait > 1) await sleep(wait);
      if (this.stopping) break;
      const p = this.run(this.scenario.newSession());
      this.running.add(p);
      void p.finally(() => this.running.delete(p));
      this.started++;
    }
  }

  private async run(session: Session): Promise<void> {
    const rnd = this.scenario.random;
    const [minReq, maxReq] = this.opts.requests ?? [2, 12];
    const [minThink, maxThink] = this.opts.thinkMs ?? [10, 60];
    const long = rnd() < (this.opts.longShare ?? 0.25);
    const count = long ? Infinity : minReq + Math.floor(rnd() * (maxReq - minReq + 1));
    for (let i = 0; i < count && !this.stopping; i++) {
      await this.limit.acquire();
      try {
        if (this.stopping) return;
        await this.scenario.request(session);
      } finally {
        this.limit.release();
      }
      await sleep(minThink + rnd() * (maxThink - minThink));
    }
  }
}

// ---------------------------------------------------------------------------------------
// The whole run (soak, soak-short test)

export interface RunOptions extends ScenarioOptions {
  sessions: number;
  /** Rolling updates at least. */
  rounds: number;
  /** Keep rolling (and sending) until this much time has passed, ms (default: `rounds` only). */
  durationMs?: number;
  /** Traffic time after each change has been seen by every replica (default 250 ms). */
  dwellMs?: number;
  /** Paired probes per change (default 4). */
  probes?: number;
  concurrency?: number;
  thinkMs?: [number, number];
  requests?: [number, number];
  longShare?: number;
}

/** Steps (endpoint changes) of one rolling update of `pods` pods. */
export const STEPS_PER_POD = 5;

/**
 * Starts the scenario, warms every replica and worker up, waits for the first sync, then
 * runs traffic through `rounds` rolling updates (more while `durationMs` has not passed),
 * and returns the report. Always stops every process it started.
 */
export async function runRollingUpdates(options: RunOptions): Promise<ScenarioReport> {
  const scenario = await RollingUpdateScenario.start(options);
  try {
    const dwellMs = options.dwellMs ?? 250;
    const pods = options.pods ?? 3;
    // A change takes its dwell plus a few ms to be seen; sessions arrive over the whole run.
    const plannedMs = Math.max(options.durationMs ?? 0, options.rounds * pods * STEPS_PER_POD * (dwellMs + 15));
    await warmUp(scenario);
    const traffic = new Traffic(scenario, {
      sessions: options.sessions,
      arrivalMs: plannedMs,
      ...(options.concurrency ? { concurrency: options.concurrency } : {}),
      ...(options.thinkMs ? { thinkMs: options.thinkMs } : {}),
      ...(options.requests ? { requests: options.requests } : {}),
      ...(options.longShare !== undefined ? { longShare: options.longShare } : {}),
    }).start();
    const t0 = now();
    for (let round = 0; round < options.rounds || now() - t0 < (options.durationMs ?? 0); round++) {
      options.log?.(`rolling update ${round + 1}`);
      await scenario.rollingUpdate({ dwellMs, probes: options.probes ?? 4 });
    }
    // Every session gets its turn, then a last stretch of traffic on the final view.
    await traffic.allStarted();
    await sleep(dwellMs);
    await traffic.stop();
    return await scenario.report();
  } catch (err) {
    if (err instanceof Error) err.message += `\n${scenario.serverLogs(1500)}`;
    throw err;
  } finally {
    await scenario.stop();
  }
}

/**
 * First requests: they start every worker's plugin instance (and with it the metrics and
 * status listener and, under KIC, the watch), then wait for every replica's first sync.
 */
export async function warmUp(scenario: RollingUpdateScenario): Promise<void> {
  const probe = scenario.newSession(false);
  for (const replica of scenario.replicas) {
    for (let w = 0; w < scenario.options.workers; w++) await scenario.send(probe, { replica: replica.index, worker: w, probe: true });
  }
  await scenario.waitSeen();
}

// ---------------------------------------------------------------------------------------
// The table

export function formatReport(report: ScenarioReport, title?: string): string {
  const n = (x: number): string => x.toLocaleString('en-US');
  const ms = (x: number): string => `${x.toFixed(0)} ms`;
  const rows: Array<[string, string] | null> = [
    ['requests', n(report.requests)],
    ['  new sessions (no cookie sent; Set-Cookie)', n(report.newSessions)],
    ['  pinned to a ready pod', n(report.pinned)],
    ['  pinned to a draining pod (terminating, serving)', n(report.pinnedDraining)],
    ['  failed open (no view yet)', n(report.failOpen)],
    ['  errors while a plugin server was down', n(report.outageErrors)],
    ['  in flight during a change (judged on both views)', n(report.ambiguous)],
    ['sessions', n(report.sessions)],
    ['re-pins: pod gone (not serving / deleted)', n(report.repins.gone)],
    ['re-pins: any other reason', n(report.repins.other)],
    ['paired probes (compared / sent)', `${n(report.probes.compared)} / ${n(report.probes.pairs)}`],
    null,
    ['violations: existing session moved off a serving pod', n(report.violations.moved)],
    ['violations: new session on a terminating pod', n(report.violations.newOnTerminating)],
    ['violations: request to a deleted pod after it was seen', n(report.violations.deletedPod)],
    ['violations: replicas disagreeing', n(report.violations.disagree)],
    ['violations: other (blocked, fail open when synced, ...)', n(report.violations.other)],
    null,
    ['endpoint changes seen by every replica (p50 / p99 / max)', `${ms(report.propagationMs.p50)} / ${ms(report.propagationMs.p99)} / ${ms(report.propagationMs.max)}`],
    ['request latency (p50 / p99 / max)', `${ms(report.latencyMs.p50)} / ${ms(report.latencyMs.p99)} / ${ms(report.latencyMs.max)}`],
    ...(report.metrics ? [['plugin servers\' decision counters agree', report.metrics.agree ? 'yes' : 'NO'] as [string, string]] : []),
  ];
  const width = Math.max(...rows.map((r) => (r ? r[0].length : 0)));
  const valueWidth = Math.max(...rows.map((r) => (r ? r[1].length : 0)));
  const line = `+${'-'.repeat(width + 2)}+${'-'.repeat(valueWidth + 2)}+`;
  const out = [
    title ??
      `sticky-session soak: ${report.replicas} replicas x ${report.workers} workers, ${report.pods} pods, ${report.rounds} rolling updates (${report.changes} endpoint changes), ${report.style} config, ${(report.durationMs / 1000).toFixed(1)} s`,
    line,
  ];
  for (const r of rows) out.push(r ? `| ${r[0].padEnd(width)} | ${r[1].padStart(valueWidth)} |` : line);
  out.push(line);
  const total = totalViolations(report);
  out.push(total === 0 ? 'violations: 0' : `VIOLATIONS: ${total}`);
  for (const [k, v] of Object.entries(report.otherViolations)) out.push(`  other: ${k}: ${v}`);
  for (const s of report.samples) out.push(`  ${s.kind}: ${s.detail}`);
  if (report.metrics && !report.metrics.agree) out.push(`  metrics: ${report.metrics.detail}`);
  return out.join('\n');
}

/** The image's KONG_NGINX_MAIN_ENV plus more declarations (e.g. NODE_OPTIONS for a test). */
export function nginxMainEnvWith(...names: string[]): string {
  const declared = new Map(readDockerfileEnv()).get('KONG_NGINX_MAIN_ENV') ?? '';
  return [declared, ...names.map((n) => `env ${n}`)].filter(Boolean).join('; ');
}
