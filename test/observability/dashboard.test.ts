/** The example Grafana dashboard: valid, on a Prometheus datasource variable, and only on metrics we export. */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/observability/metrics.js';

interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: Array<{ expr: string; refId: string; datasource: { type: string; uid: string } }>;
}

const dashboard = JSON.parse(readFileSync(resolve(import.meta.dirname, '../../kong/grafana/sticky-session.json'), 'utf8')) as {
  uid: string;
  title: string;
  schemaVersion: number;
  templating: { list: Array<{ name: string; type: string; query: unknown }> };
  panels: Panel[];
};
const panels = dashboard.panels.filter((p) => p.type !== 'row');

describe('kong/grafana/sticky-session.json', () => {
  it('is a dashboard with a Prometheus datasource variable used by every query', () => {
    expect(dashboard).toMatchObject({ uid: 'sticky-session', title: expect.any(String), schemaVersion: expect.any(Number) });
    expect(dashboard.templating.list[0]).toMatchObject({ name: 'datasource', type: 'datasource', query: 'prometheus' });
    for (const p of panels) {
      expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
      expect(p.targets!.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets!) expect(t.datasource).toEqual({ type: 'prometheus', uid: '${datasource}' });
    }
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of dashboard.panels) expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
  });

  it('has the panels operators need in a rolling update', () => {
    const titles = panels.map((p) => p.title);
    for (const t of ['Decision rate by outcome', 'Re-pins and rejections by reason', 'Active sessions per pod', 'Endpoints per condition', 'Watch last sync age', 'Token rejections by kind']) {
      expect(titles).toContain(t);
    }
  });

  it('queries only metrics the plugin server exports', async () => {
    const exported = new Set((await createMetrics().registry.getMetricsAsJSON()).map((m) => m.name));
    const used = new Set(
      panels.flatMap((p) => p.targets!.flatMap((t) => [...t.expr.matchAll(/\bsticky_session_\w+/g)].map((m) => m[0]))),
    );
    for (const v of dashboard.templating.list) {
      if (typeof v.query === 'object' && v.query) for (const m of JSON.stringify(v.query).matchAll(/\bsticky_session_\w+/g)) used.add(m[0]);
    }
    expect(used.size).toBeGreaterThan(8);
    for (const name of used) expect(exported, name).toContain(name);
  });
});
