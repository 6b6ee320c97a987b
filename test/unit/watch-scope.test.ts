import { describe, expect, it } from 'vitest';
import { scopeFor } from '../../src/endpoints/kubernetes/informer.js';

describe('STICKY_SESSION_WATCH_SCOPE', () => {
  it('namespace (the default): one list-and-watch per namespace', () => {
    expect(scopeFor('shop', {})).toEqual({ namespace: 'shop' });
    expect(scopeFor('shop', { STICKY_SESSION_WATCH_SCOPE: 'namespace' })).toEqual({ namespace: 'shop' });
  });

  it('cluster: one for every namespace', () => {
    expect(scopeFor('shop', { STICKY_SESSION_WATCH_SCOPE: 'cluster' })).toEqual({});
    expect(scopeFor('shop', { STICKY_SESSION_WATCH_SCOPE: ' cluster ' })).toEqual({});
  });

  it('anything else: per namespace, as the safe choice under namespaced RBAC', () => {
    expect(scopeFor('shop', { STICKY_SESSION_WATCH_SCOPE: 'Cluster-wide' })).toEqual({ namespace: 'shop' });
  });
});
