import type { Logger } from 'pino';
import { decide } from './affinity/decide.js';
import type { Decision } from './affinity/decision.js';
import { acquireAffinityState } from './affinity/state.js';
import { resolveConfig, type ResolvedConfig, type SessionSettings } from './config/resolve.js';
import { recordFailure } from './failover/log-phase.js';
import { formatSetCookie, needsScheme } from './cookie.js';
import { InstanceSource, type ReadySource } from './kong/instance-source.js';
import type { EndpointSnapshot } from './endpoints/types.js';
import { createLegacyCookie, type LegacyCookie, type LegacyMatch } from './legacy/index.js';
import type { KongPdk } from './kong/pdk.js';
import { log } from './log.js';
import type { TokenCodec } from './token.js';
import { setTargetKeepingHost } from './kong/upstream-host.js';
import { decisionLogger, ensureObservability, logDecision, metricsOn, observeDecision, observeLegacyCookie } from './observability/index.js';

/**
 * Unpatched, kong-pdk never tells a plugin instance it was closed (kong/close-instance.ts makes
 * CloseInstance call close()); an instance never closed is released when it is collected.
 */
const finalizer = new FinalizationRegistry<() => void>((release) => release());

/** Seconds, as tokens count time. */
const nowSeconds = (): number => Date.now() / 1000;

/**
 * One plugin instance: Kong starts one per plugin entity per nginx worker. It says *when*
 * things happen; config/, affinity/ and endpoints/ say *what* happens.
 * Only the access phase: a `response` phase would make Kong buffer every response.
 */
export class StickySession {
  protected readonly cfg: ResolvedConfig;
  protected readonly source: InstanceSource;
  /** Where this instance's decision lines go; undefined: not written (decided once, here). */
  private readonly decisionLog: Logger | undefined;
  /** accept_legacy_cookies, in order; empty: off. */
  private readonly legacy: readonly LegacyCookie[];

  constructor(config: unknown) {
    ensureObservability();
    // A refused config throws here, before anything shared is acquired (kong/plugin.ts).
    this.cfg = resolveConfig(config, { logPhase: this instanceof StickySessionWithFailover });
    this.decisionLog = decisionLogger(this.cfg.logLevel);
    this.legacy = legacyCookiesOf(this.cfg);
    // The closure and the finalizer's cleanup must not reach `this`: a cleanup value that
    // references its target keeps the instance alive forever, and its leases with it.
    const cfg = this.cfg;
    // The Kong service's name costs a PDK call once per instance: made only for readers of it
    // (metrics served, or decision lines written), and never for a global instance, which
    // serves every service.
    const learnName = cfg.binding !== 'global' && (metricsOn() || this.decisionLog !== undefined);
    this.source = new InstanceSource(cfg, learnName, (sourceKey, tokenBinding) =>
      acquireAffinityState({
        binding: tokenBinding ?? cfg.binding,
        secrets: cfg.secrets,
        sourceKey,
        strategy: cfg.strategy,
        sessionTtlMs: Math.max(cfg.policy.idleTimeout, 1800) * 1000,
        failureHoldMs: cfg.failover?.holdMs ?? null,
      }),
    );
    const source = this.source;
    finalizer.register(this, () => source.close());
  }

  async access(kong: KongPdk): Promise<void> {
    try {
      // Known after the first request: taken as it is, without awaiting a value (a promise per request).
      const known = this.source.get(kong);
      const ready = known instanceof Promise ? await known : known;
      // No source (the Kong service host names no Service; logged by InstanceSource) or not
      // synced yet: read nothing, set nothing; Kong's own balancer decides.
      if (!ready) return this.passthrough(undefined);
      const snapshot = ready.source.current();
      if (!snapshot) return this.passthrough(ready.source.key);

      // The KongPlugin's settings, or an HTTPRoute rule's sessionPersistence over them.
      const settings = ready.settings();
      const incoming = await this.readToken(kong, ready.state.codec, settings);
      // Off (the common case), no call and no await: every promise is garbage per request.
      const legacy = this.legacy.length === 0 ? undefined : await this.readLegacyCookie(kong, incoming, ready, snapshot, settings);
      const decision = decide(incoming.token, snapshot, ready.state, settings.policy, nowSeconds(), legacy?.endpoint);
      observeDecision(decision, this.cfg.binding);
      if (legacy) observeLegacyCookie(this.cfg.binding, legacy.cookie, decision.kind === 'new' && decision.reason === 'legacy' ? 'pinned' : 'no-match');
      if (this.decisionLog) logDecision(this.decisionLog, decision, this.cfg.binding, ready.source.key);
      await this.apply(kong, decision, incoming.via, settings);
    } catch (err) {
      // Never let an exception reach kong-pdk: Kong would proxy blindly without a word.
      log.error({ err, service: this.cfg.binding }, 'sticky-session access failed; request proxied by Kong');
    }
  }

  /** Closes this instance's hold on shared resources (also done on garbage collection). */
  close(): void {
    this.source.close();
  }

  /** The token, the way it came, and the raw value of our cookie if it was read. */
  private async readToken(kong: KongPdk, codec: TokenCodec, s: SessionSettings): Promise<Incoming> {
    let cookie: string | undefined;
    if (s.readCookie) {
      cookie = (await kong.nginx.getVar(s.cookieVar)) || undefined;
      // With both transports, a cookie that does not verify (another service's, a retired
      // secret's) must not hide a good header token. A valid one is cached for decide().
      if (cookie && (!s.readHeader || codec.verify(cookie).ok)) return { token: cookie, via: 'cookie', cookie };
    }
    if (s.readHeader) {
      const v = await kong.request.getHeader(s.headerName);
      if (v) return { token: v, via: 'header', cookie };
    }
    return cookie ? { token: cookie, via: 'cookie', cookie } : { token: undefined, via: 'none', cookie };
  }

  /**
   * The endpoint a legacy cookie selects, read (one get_var per configured cookie, until one
   * selects an endpoint; none for one under our own cookie's name) only when legacy cookies
   * are on and no token of ours verifies.
   */
  private async readLegacyCookie(
    kong: KongPdk,
    incoming: Incoming,
    ready: ReadySource,
    snapshot: EndpointSnapshot,
    s: SessionSettings,
  ): Promise<LegacyMatch | undefined> {
    const { token } = incoming;
    if (token && ready.state.codec.verify(token).ok) return undefined;
    for (const cookie of this.legacy) {
      // Under our own cookie's name (the old cookie is replaced by ours), the value is read already.
      const value =
        s.readCookie && cookie.config.cookieVar === s.cookieVar ? incoming.cookie : await kong.nginx.getVar(cookie.config.cookieVar);
      if (!value) continue;
      const endpoint = cookie.resolve(value, snapshot, ready.service);
      if (endpoint) return { cookie: cookie.config, endpoint };
      observeLegacyCookie(this.cfg.binding, cookie.config, 'no-match');
    }
    return undefined;
  }

  private async apply(kong: KongPdk, d: Decision, via: Via, s: SessionSettings): Promise<void> {
    switch (d.kind) {
      case 'passthrough':
        return;
      case 'reject':
        if (d.reason === 'no-endpoint') {
          this.warnSometimes('no-endpoint', 'no ready endpoint: answering 503 to new sessions (no_ready_endpoint=reject)');
        }
        await kong.response.exit(
          503,
          { message: d.reason === 'strict' ? 'The server holding this session is gone' : 'No server available' },
          { 'Retry-After': '1' },
        );
        return;
      case 'pin':
        await setTargetKeepingHost(kong, d.endpoint.host, d.endpoint.port);
        if (d.reissue) await this.sendToken(kong, d.reissue.token, via, s);
        return;
      case 'new':
      case 'repin':
        if (d.fallback) {
          this.warnSometimes('fallback', 'no ready endpoint: new sessions go to serving, terminating endpoints (no_ready_endpoint=draining)');
        }
        await setTargetKeepingHost(kong, d.endpoint.host, d.endpoint.port);
        await this.sendToken(kong, d.token, via, s);
        return;
    }
  }

  /** Returns the token the way it came; a client that sent none gets every configured way. */
  private async sendToken(kong: KongPdk, token: string, via: Via, s: SessionSettings): Promise<void> {
    if (s.readCookie && via !== 'header') {
      const attrs = s.cookie;
      const https = needsScheme(attrs) ? (await kong.request.getForwardedScheme()) === 'https' : false;
      let omitSameSiteNone = false;
      if (attrs.sameSite === 'None' && this.cfg.sameSiteNoneExempt.length > 0) {
        const ua = (await kong.request.getHeader('user-agent')) ?? '';
        omitSameSiteNone = this.cfg.sameSiteNoneExempt.some((re) => re.test(ua));
      }
      await kong.response.addHeader('Set-Cookie', formatSetCookie(attrs, token, { https, omitSameSiteNone }));
    }
    if (s.readHeader && via !== 'cookie') {
      await kong.response.setHeader(s.headerName, token);
    }
  }

  /** Fail open: counted and logged as a decision like any other, warned about now and then. */
  private passthrough(sourceKey: string | undefined): void {
    observeDecision(NOT_SYNCED, this.cfg.binding);
    if (this.decisionLog) logDecision(this.decisionLog, NOT_SYNCED, this.cfg.binding, sourceKey);
    if (sourceKey === undefined) return;
    this.warnSometimes('not-synced', 'endpoints not known yet: Kong balances (fail open)', sourceKey);
  }

  private readonly lastWarned = new Map<string, number>();
  /** A warning about a lasting condition: at most once per 10 s per instance, not per request. */
  private warnSometimes(what: string, message: string, source?: string): void {
    const now = Date.now();
    if (now - (this.lastWarned.get(what) ?? 0) < 10_000) return;
    this.lastWarned.set(what, now);
    log.warn({ service: this.cfg.binding, source }, message);
  }
}

type Via = 'cookie' | 'header' | 'none';

interface Incoming {
  readonly token: string | undefined;
  readonly via: Via;
  /** Our cookie's value when it was read, valid or not (a legacy cookie may share its name). */
  readonly cookie: string | undefined;
}

/**
 * The instance's legacy cookies. A function of its own: an arrow in the constructor reaching
 * `this` would share the constructor's closure context with the finalizer's cleanup, and
 * keep every instance alive.
 */
function legacyCookiesOf(cfg: ResolvedConfig): LegacyCookie[] {
  return cfg.legacyCookies.map((c) => createLegacyCookie(c, cfg.binding));
}

const NOT_SYNCED: Decision = { kind: 'passthrough', reason: 'not-synced' };

/**
 * The same plugin with a log phase, for change on failure. kong-pdk gives a plugin every
 * phase its class defines, and Kong then sends that event on every request: so the log
 * phase lives in this subclass, loaded from plugins-failover/, and the default plugin stays
 * access-only.
 */
export class StickySessionWithFailover extends StickySession {
  async log(kong: KongPdk): Promise<void> {
    const failover = this.cfg.failover;
    const ready = this.source.peek();
    if (!failover || !ready?.state.failures) return;
    try {
      await recordFailure(kong, ready.source.current(), ready.state.failures, failover.statuses);
    } catch (err) {
      log.error({ err, service: this.cfg.binding }, 'sticky-session log phase failed');
    }
  }
}
