/**
 * A Gateway API rule's sessionPersistence over the KongPlugin's config (GEP-1619). What the
 * rule says wins; what it leaves unset comes from the KongPlugin, except where the API has a
 * default of its own (type Cookie, lifetime Session). Domain, SameSite, HttpOnly, Secure,
 * strictness and the no-ready-endpoint policy are always the KongPlugin's. Pure.
 */
import { createHash } from 'node:crypto';
import type { SessionPolicy } from '../endpoints/gateway-api/session-persistence.js';
import { refreshAfter, type ResolvedConfig, type SessionSettings } from './resolve.js';

/**
 * The session settings of a rule. `ruleKey` names the rule: a cookie without a name gets one
 * of its own (`<cookie_name>_<8 hex>`), as GEP-1619 asks, so that two rules never share a
 * cookie even on one path.
 */
export function sessionSettingsOf(base: ResolvedConfig, policy: SessionPolicy, ruleKey: string): SessionSettings {
  const absoluteTimeout = policy.absoluteTimeoutS ?? base.policy.absoluteTimeout;
  const idleTimeout = policy.idleTimeoutS ?? base.policy.idleTimeout;
  const timeouts = {
    ...base.policy,
    absoluteTimeout,
    idleTimeout,
    refreshAfter: refreshAfter(idleTimeout, base.idleRefreshPercent),
  };
  if (policy.type === 'header') {
    return { ...base, readCookie: false, readHeader: true, headerName: policy.name ?? base.headerName, policy: timeouts };
  }
  const name = policy.name ?? `${base.cookie.name}_${createHash('sha256').update(ruleKey).digest('hex').slice(0, 8)}`;
  return {
    readCookie: true,
    readHeader: false,
    headerName: base.headerName,
    cookie: {
      ...base.cookie,
      name,
      path: policy.cookiePath ?? base.cookie.path,
      // Session: a browser-session cookie, the absolute timeout kept by the token itself.
      maxAge: policy.lifetime === 'permanent' ? policy.absoluteTimeoutS : 0,
      expires: policy.lifetime === 'permanent',
    },
    cookieVar: `cookie_${name}`,
    policy: timeouts,
  };
}
