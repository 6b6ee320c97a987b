import type { Endpoint } from '../endpoints/types.js';

/**
 * What to do with one request. The handler turns each kind into PDK calls in one switch.
 *
 * - pin:         the token's endpoint takes it (ready, or draining: existing sessions only);
 *                `reissue` is set when the token must be replaced (key rotation, idle refresh).
 * - new:         no usable token: a new session on an endpoint chosen by the balancer, or
 *                (reason `legacy`) on the serving endpoint a legacy cookie selects.
 * - repin:       a valid token whose endpoint is gone (or failing): a new session elsewhere.
 * - reject:      answer 503 (no endpoint to send it to, or strict mode forbids moving it).
 * - passthrough: Kong's own balancer decides: the endpoint set is not known yet, or the
 *                instance's config cannot be used (config/refusal.ts).
 */
export type Decision =
  | { readonly kind: 'pin'; readonly endpoint: Endpoint; readonly reissue?: Reissue }
  | { readonly kind: 'new'; readonly endpoint: Endpoint; readonly token: string; readonly reason: NewReason; readonly fallback: boolean }
  | { readonly kind: 'repin'; readonly endpoint: Endpoint; readonly token: string; readonly reason: RepinReason; readonly fallback: boolean }
  | { readonly kind: 'reject'; readonly reason: RejectReason }
  | { readonly kind: 'passthrough'; readonly reason: PassthroughReason };

export interface Reissue {
  readonly token: string;
  readonly reason: 'rotated' | 'refreshed';
}

/**
 * Why a request starts a new session: no token, or one that cannot be used; `legacy`: no
 * valid token, and a legacy cookie (accept_legacy_cookies) chose the endpoint.
 */
export type NewReason = 'none' | 'malformed' | 'bad-signature' | 'expired' | 'idle' | 'legacy';
export type RepinReason = 'gone' | 'failing';
export type RejectReason = 'no-endpoint' | 'strict';
export type PassthroughReason = 'not-synced' | 'config-error';

/**
 * Affinity status of a decision, in the spirit of HAProxy's cookie flags: one word that
 * says what happened to the client's token. Used in logs and metrics.
 */
export type AffinityStatus =
  | 'none' | 'malformed' | 'bad-signature' | 'expired' | 'idle' | 'legacy'
  | 'pinned' | 'draining' | 'gone' | 'failing' | 'strict' | 'no-endpoint' | 'not-synced' | 'config-error';

export function affinityStatus(d: Decision): AffinityStatus {
  switch (d.kind) {
    case 'pin':
      return d.endpoint.condition === 'ready' ? 'pinned' : 'draining';
    case 'new':
    case 'repin':
    case 'reject':
    case 'passthrough':
      return d.reason;
  }
}
