import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { backendDecisionCounts, DECISION_SLOTS, decisionCounts, TOKEN_REJECTIONS } from './decisions.js';
import { configErrors } from './config-errors.js';
import { serviceName } from './service-names.js';
import { legacyCookieCounts } from './legacy-cookies.js';
import { backendFacts, sourceFacts, type SourceFacts } from './status.js';

/**
 * The Prometheus registry of the plugin-server process. Nothing here runs per request:
 * decision counts are plain numbers (decisions.ts) and every other value is read from the
 * process-wide registries when Prometheus scrapes. Loaded only when metrics are turned on.
 */
export const PREFIX = 'sticky_session_';

export interface Metrics {
  readonly registry: Registry;
  /** The exposition text, with one walk of the registries for all collectors. */
  scrape(): Promise<string>;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: PREFIX });
  // Gauges named *_total read as counters (promtool warns); each equals the sum of its
  // per-type series (nodejs_active_handles{type} ...), which stay.
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
    registry.removeSingleMetric(`${PREFIX}${name}`);
  }

  // One registry walk per scrape, shared by the collectors below.
  let scrapeFacts: SourceFacts[] | undefined;
  const facts = (): SourceFacts[] => scrapeFacts ?? sourceFacts();

  new Counter({
    name: `${PREFIX}decisions_total`,
    help: 'Affinity decisions by outcome (new, pinned, pinned_draining, repinned, rejected, fail_open) and reason.',
    labelNames: ['service', 'service_name', 'outcome', 'reason'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [service, cells] of decisionCounts()) {
        const named = withName(service);
        DECISION_SLOTS.forEach(({ outcome, reason }, i) => this.inc({ ...named, outcome, reason }, cells[i] ?? 0));
      }
    },
  });

  new Counter({
    name: `${PREFIX}backend_decisions_total`,
    help: 'Decisions that routed to a backend Service of a traffic split (an HTTPRoute rule with weighted backendRefs), by outcome (new, pinned, pinned_draining, repinned).',
    labelNames: ['service', 'service_name', 'backend', 'outcome'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [service, byBackend] of backendDecisionCounts()) {
        const named = withName(service);
        for (const [backend, byOutcome] of byBackend) for (const [outcome, n] of byOutcome) this.inc({ ...named, backend, outcome }, n);
      }
    },
  });

  new Gauge({
    name: `${PREFIX}backend_sessions`,
    help: 'Sessions seen within the session TTL on the pods of each backend Service of a traffic split, by this process.',
    labelNames: ['source', 'backend'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const f of facts()) {
        for (const b of backendFacts(f)) this.set({ source: f.key, backend: b.key }, b.sessions);
      }
    },
  });

  new Gauge({
    name: `${PREFIX}backend_weight`,
    help: 'The weight of each backend Service of a traffic split, as the HTTPRoute rule says: the share of new sessions it takes.',
    labelNames: ['source', 'backend'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const f of facts()) {
        for (const b of backendFacts(f)) this.set({ source: f.key, backend: b.key }, b.weight);
      }
    },
  });

  new Counter({
    name: `${PREFIX}token_rejections_total`,
    help: 'Tokens that could not be used, by reason (malformed, bad-signature, expired, idle); each started a new session.',
    labelNames: ['service', 'service_name', 'reason'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [service, cells] of decisionCounts()) {
        const named = withName(service);
        for (const { reason, slot } of TOKEN_REJECTIONS) this.inc({ ...named, reason }, cells[slot] ?? 0);
      }
    },
  });

  new Counter({
    name: `${PREFIX}legacy_cookie_decisions_total`,
    help: 'Requests without a valid token that carried a legacy cookie (accept_legacy_cookies), by result: pinned (it chose the pod; our token was issued) or no-match (it named no serving pod: a plain new session).',
    labelNames: ['service', 'service_name', 'format', 'mode', 'result'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const c of legacyCookieCounts()) this.inc({ ...withName(c.service), format: c.format, mode: c.mode, result: c.result }, c.value);
    },
  });

  new Gauge({
    name: `${PREFIX}active_sessions`,
    help: 'Sessions seen on each endpoint of the current view within the session TTL, by this process.',
    labelNames: ['source', 'endpoint', 'pod'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const f of facts()) {
        const snapshot = f.source.current();
        if (!snapshot) continue;
        for (const e of snapshot.byId.values()) {
          this.set({ source: f.key, endpoint: e.id, pod: e.name }, f.sessions.get(e.id) ?? 0);
        }
      }
    },
  });

  new Gauge({
    name: `${PREFIX}endpoints`,
    help: 'Endpoints in the current view of each source, by condition (ready, draining: terminating but serving).',
    labelNames: ['source', 'condition'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const f of facts()) {
        const snapshot = f.source.current();
        if (!snapshot) continue;
        this.set({ source: f.key, condition: 'ready' }, snapshot.ready.length);
        this.set({ source: f.key, condition: 'draining' }, snapshot.draining.length);
      }
    },
  });

  new Gauge({
    name: `${PREFIX}config_errors`,
    help: 'Plugin instances (one per nginx worker) whose config Kong accepted but the plugin cannot use, by field: they stand aside and Kong balances.',
    labelNames: ['service', 'field'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const e of configErrors()) this.inc({ service: e.service, field: e.field });
    },
  });

  const watched = (): SourceFacts[] => facts().filter((f) => f.source.status !== undefined);

  new Counter({
    name: `${PREFIX}watch_restarts_total`,
    help: 'Times the EndpointSlice list/watch cycle of a Service started again (watch ended, broke or expired).',
    labelNames: ['source'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const f of watched()) this.inc({ source: f.key }, f.status.restarts);
    },
  });

  new Gauge({
    name: `${PREFIX}watch_last_sync_timestamp_seconds`,
    help: 'When the API server last confirmed the endpoint view of a Service (list or watch event, bookmarks included), in Unix seconds; 0 before the first sync.',
    labelNames: ['source'] as const,
    registers: [registry],
    collect() {
      this.reset();
      // From the moment a watch exists: a watch that never synced shows 0, so an alert on
      // `time() - ...` fires for it too.
      for (const f of watched()) this.set({ source: f.key }, (f.status.lastSyncAt ?? 0) / 1000);
    },
  });

  new Gauge({
    name: `${PREFIX}watch_synced`,
    help: '1 once the endpoint view of a Service is known; 0 while requests fail open to Kong\'s balancer.',
    labelNames: ['source'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const f of watched()) this.set({ source: f.key }, f.status.synced ? 1 : 0);
    },
  });

  return {
    registry,
    async scrape() {
      scrapeFacts = sourceFacts();
      try {
        return await registry.metrics();
      } finally {
        scrapeFacts = undefined;
      }
    },
  };
}

/** The binding's labels: `service`, and `service_name` once the handler has named it. */
function withName(service: string): { service: string; service_name?: string } {
  const name = serviceName(service);
  return name === undefined ? { service } : { service, service_name: name };
}
