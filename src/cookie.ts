/**
 * Set-Cookie formatting for the affinity cookie. Reading is left to nginx: the handler asks
 * Kong for `$cookie_<name>`, which picks the first cookie of that name across all Cookie
 * headers, so no Cookie header parsing happens here.
 */

export type SameSite = 'Strict' | 'Lax' | 'None';

export interface CookieAttributes {
  readonly name: string;
  readonly path: string;
  readonly domain: string | null;
  /** Seconds; 0 = a browser-session cookie (no Max-Age). */
  readonly maxAge: number;
  /** With maxAge: also an Expires attribute (Gateway API's Permanent lifetime asks for both). */
  readonly expires?: boolean;
  readonly httpOnly: boolean;
  /** null = automatic: Secure when the client connection is HTTPS. */
  readonly secure: boolean | null;
  readonly sameSite: SameSite;
}

export interface CookieContext {
  /** The client's scheme as Kong sees it (forwarded scheme behind a trusted proxy). */
  readonly https: boolean;
  /** Drop SameSite=None for clients known to mishandle it. */
  readonly omitSameSiteNone?: boolean;
  /** Now, in ms since the epoch: for Expires. */
  readonly nowMs?: number;
}

/** True when formatting needs the request scheme (one extra PDK round trip). */
export function needsScheme(attrs: CookieAttributes): boolean {
  return attrs.secure === null && attrs.sameSite !== 'None';
}

export function formatSetCookie(attrs: CookieAttributes, value: string, ctx: CookieContext): string {
  let out = `${attrs.name}=${value}; Path=${attrs.path}`;
  if (attrs.domain) out += `; Domain=${attrs.domain}`;
  if (attrs.maxAge > 0) out += `; Max-Age=${attrs.maxAge}`;
  if (attrs.maxAge > 0 && attrs.expires) out += `; Expires=${new Date((ctx.nowMs ?? Date.now()) + attrs.maxAge * 1000).toUTCString()}`;
  // SameSite=None is only accepted by browsers together with Secure.
  const secure = attrs.sameSite === 'None' || (attrs.secure ?? ctx.https);
  if (secure) out += '; Secure';
  if (attrs.httpOnly) out += '; HttpOnly';
  if (!(attrs.sameSite === 'None' && ctx.omitSameSiteNone)) out += `; SameSite=${attrs.sameSite}`;
  return out;
}
