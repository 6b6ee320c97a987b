import { describe, expect, it } from 'vitest';
import { convert, DEFAULT_OPTIONS } from '../../src/convert/index.js';
import { convertedProblems } from '../manifests/converted.js';

type Obj = Record<string, unknown>;

function policy(name: string, spec: Obj): Obj {
  return { apiVersion: 'configuration.konghq.com/v1beta1', kind: 'KongUpstreamPolicy', metadata: { name, namespace: 'shop' }, spec };
}
function service(name: string, annotations: Record<string, string>): Obj {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'shop', annotations }, spec: { selector: { app: name }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] } };
}
const byKind = (docs: unknown[], kind: string): Obj[] => docs.filter((d) => (d as Obj).kind === kind) as Obj[];

describe('KongUpstreamPolicy cookie affinity', () => {
  const sticky = policy('sticky', { algorithm: 'sticky-sessions', hashOn: { input: 'none' }, stickySessions: { cookie: 'session-id', cookiePath: '/app' } });

  it('sticky-sessions: one KongPlugin per Service that uses the policy, naming the Service; the Enterprise fields removed', () => {
    const docs = [sticky, service('a', { 'konghq.com/upstream-policy': 'sticky' }), service('b', { 'konghq.com/upstream-policy': 'sticky', 'konghq.com/plugins': 'cors' }), service('c', {})];
    const result = convert(docs, DEFAULT_OPTIONS);
    const plugins = byKind(result.documents, 'KongPlugin');
    expect(plugins.map((p) => [(p.metadata as Obj).name, p.config])).toEqual([
      ['a-sticky-session', { transport: 'cookie', cookie_name: 'session-id', cookie_path: '/app', balancer: 'least-sessions', kubernetes_namespace: 'shop', kubernetes_service: 'a' }],
      ['b-sticky-session', { transport: 'cookie', cookie_name: 'session-id', cookie_path: '/app', balancer: 'least-sessions', kubernetes_namespace: 'shop', kubernetes_service: 'b' }],
    ]);
    const services = byKind(result.documents, 'Service').map((s) => ((s.metadata as Obj).annotations as Obj)['konghq.com/plugins']);
    expect(services).toEqual(['a-sticky-session', 'cors,b-sticky-session', undefined]);
    const out = byKind(result.documents, 'KongUpstreamPolicy')[0] as Obj;
    expect(out.spec).toEqual({});
    expect(result.changed).toEqual([true, true, true, true, true, false]);
    expect(result.documents[5]).toBe(docs[3]); // untouched: out as read
    expect(result.reports.map((r) => r.field)).toEqual(expect.arrayContaining(['spec.stickySessions', 'spec.algorithm', 'spec.hashOn.input', 'spec']));
    for (const d of result.documents) expect(convertedProblems(d)).toEqual([]);
  });

  it('cookiePath defaults to "/" as in KIC', () => {
    const result = convert([policy('p', { algorithm: 'sticky-sessions', hashOn: { input: 'none' }, stickySessions: { cookie: 'sid' } })], DEFAULT_OPTIONS);
    expect((byKind(result.documents, 'KongPlugin')[0] as Obj).config).toMatchObject({ cookie_name: 'sid', cookie_path: '/' });
  });

  it('hashOn.cookie (open-source consistent hashing): converted; healthchecks and slots kept and reported; hashOnFallback unmapped', () => {
    const result = convert(
      [policy('p', { algorithm: 'consistent-hashing', hashOn: { cookie: 'aff', cookiePath: '/x' }, hashOnFallback: { input: 'ip' }, slots: 100, healthchecks: { passive: { unhealthy: { httpFailures: 3 } } } })],
      DEFAULT_OPTIONS,
    );
    const out = byKind(result.documents, 'KongUpstreamPolicy')[0] as Obj;
    expect(out.spec).toEqual({ slots: 100, healthchecks: { passive: { unhealthy: { httpFailures: 3 } } } });
    expect((byKind(result.documents, 'KongPlugin')[0] as Obj).config).toMatchObject({ cookie_name: 'aff', cookie_path: '/x' });
    const levels = Object.fromEntries(result.reports.map((r) => [r.field, r.level]));
    expect(levels).toMatchObject({ 'spec.hashOnFallback': 'unmapped', 'spec.healthchecks': 'differs', 'spec.slots': 'differs', 'spec.hashOn.cookie': 'differs' });
    // No Service in the input uses it: a plugin without coordinates and the command to attach it.
    expect(result.reports.find((r) => r.level === 'action' && r.source.startsWith('KongUpstreamPolicy'))?.message).toMatch(/kubectl -n shop annotate service <name> konghq.com\/plugins=p-sticky-session/);
  });

  it('policies without cookie affinity pass through untouched', () => {
    const ip = policy('ip', { algorithm: 'consistent-hashing', hashOn: { input: 'ip' } });
    const result = convert([ip, service('a', { 'konghq.com/upstream-policy': 'ip' })], DEFAULT_OPTIONS);
    expect(result.documents).toEqual([ip, expect.objectContaining({ kind: 'Service' })]);
    expect(result.reports).toEqual([]);
    expect(result.converted).toBe(0);
  });

  it('algorithm sticky-sessions without stickySessions is unmapped and passes through', () => {
    const bare = policy('p', { algorithm: 'sticky-sessions' });
    const result = convert([bare], DEFAULT_OPTIONS);
    expect(result.documents).toEqual([bare]);
    expect(result.reports).toMatchObject([{ level: 'unmapped', field: 'spec.algorithm' }]);
  });

  it('a cookie name the plugin refuses is unmapped', () => {
    const result = convert([policy('p', { algorithm: 'sticky-sessions', hashOn: { input: 'none' }, stickySessions: { cookie: 'bad name' } })], DEFAULT_OPTIONS);
    expect(result.reports.find((r) => r.field === 'spec.stickySessions.cookie')?.level).toBe('unmapped');
    expect((byKind(result.documents, 'KongPlugin')[0] as Obj).config).not.toHaveProperty('cookie_name');
  });
});
