/**
 * What nginx (OpenResty 1.25.3.x, the one Kong 3.9 ships) makes of a request's headers,
 * for the variables a plugin reads through `kong.nginx.get_var` and what
 * `kong.request.get_header(s)` return. Pure functions over an ordered header list.
 */

/** Header lines in the order the client sent them. */
export type HeaderList = ReadonlyArray<readonly [name: string, value: string]>;

export type HeaderInput = Readonly<Record<string, string | readonly string[] | undefined>>;

/** Flattens `{name: value | values}` into header lines, keeping the order given. */
export function headerList(headers: HeaderInput | undefined): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (value === undefined) continue;
    if (typeof value === 'string') out.push([name, value]);
    else for (const v of value) out.push([name, v]);
  }
  return out;
}

/** nginx compares header names to `$http_x_y` lower-cased, with '-' read as '_'. */
function varHeaderName(name: string): string {
  return name.toLowerCase().replace(/-/g, '_');
}

/**
 * `$http_<name>` (name already lower case with '_'): every header line with that name,
 * joined with ", " (nginx >= 1.23), or with "; " for Cookie; null when absent.
 */
export function httpVar(headers: HeaderList, name: string): string | null {
  const wanted = name.toLowerCase();
  const values = headers.filter(([n]) => varHeaderName(n) === wanted).map(([, v]) => v);
  if (values.length === 0) return null;
  return values.join(wanted === 'cookie' ? '; ' : ', ');
}

/**
 * `$cookie_<name>` exactly as nginx 1.25 computes it (ngx_http_parse_multi_header_lines
 * over the Cookie header lines): the value of the first cookie with that name, name
 * compared case-insensitively, across all Cookie lines in order; pairs are skipped up to
 * the next ';' or ',', the value runs to the next ';'; spaces before '=' and after it are
 * skipped. Null when absent.
 */
export function cookieVar(headers: HeaderList, cookieName: string): string | null {
  const name = Buffer.from(cookieName, 'latin1');
  for (const [n, v] of headers) {
    if (n.toLowerCase() !== 'cookie') continue;
    const s = Buffer.from(v, 'latin1');
    if (name.length > s.length) continue;
    const end = s.length;
    let start = 0;
    while (start < end) {
      let matched = start + name.length <= end;
      for (let k = 0; matched && k < name.length; k++) {
        const a = s[start + k] as number;
        const b = name[k] as number;
        if ((a | (a >= 65 && a <= 90 ? 0x20 : 0)) !== (b | (b >= 65 && b <= 90 ? 0x20 : 0))) matched = false;
      }
      if (matched) {
        start += name.length;
        while (start < end && s[start] === 0x20) start++;
        if (start < end && s[start] === 0x3d) {
          start++;
          while (start < end && s[start] === 0x20) start++;
          let last = start;
          while (last < end && s[last] !== 0x3b) last++;
          return s.subarray(start, last).toString('latin1');
        }
      }
      // skip to the next pair
      while (start < end) {
        const ch = s[start++];
        if (ch === 0x3b || ch === 0x2c) break;
      }
      while (start < end && s[start] === 0x20) start++;
    }
  }
  return null;
}

/**
 * `ngx.req.get_headers()`: lower-cased names; a header sent once is a string, several
 * times an array (in order).
 */
export function reqGetHeaders(headers: HeaderList): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [n, v] of headers) {
    const k = n.toLowerCase();
    const prev = out[k];
    if (prev === undefined) out[k] = v;
    else if (Array.isArray(prev)) prev.push(v);
    else out[k] = [prev, v];
  }
  return out;
}

/**
 * `kong.request.get_header(name)` (kong.tools.http.get_header): `$http_<name>` when it has
 * no ", " in it (so several Cookie lines come back joined with "; "), else the first value
 * of ngx.req.get_headers()[name]. Null when absent.
 */
export function kongGetHeader(headers: HeaderList, name: string): string | null {
  const value = httpVar(headers, varHeaderName(name));
  if (value === null || !value.includes(', ')) return value;
  const all = reqGetHeaders(headers);
  const v = all[name.toLowerCase().replace(/_/g, '-')] ?? all[name.toLowerCase()];
  if (v === undefined) {
    // get_headers' metatable also finds "x_y" as "x-y"; fall back on a normalized scan
    const wanted = varHeaderName(name);
    for (const [k, val] of Object.entries(all)) if (varHeaderName(k) === wanted) return Array.isArray(val) ? (val[0] ?? null) : val;
    return null;
  }
  return Array.isArray(v) ? (v[0] ?? null) : v;
}

/** `$host`: the Host header's host part, lower-cased, without port or trailing dot. */
export function hostVar(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[')) {
    const close = h.indexOf(']');
    return close >= 0 ? h.slice(0, close + 1) : h;
  }
  const colon = h.indexOf(':');
  if (colon >= 0) h = h.slice(0, colon);
  if (h.endsWith('.')) h = h.slice(0, -1);
  return h;
}

const UNRESERVED = /[A-Za-z0-9\-._~]/;

/**
 * Kong's `kong.request.get_path()` normalization (kong.tools.uri normalize): percent-
 * encoded unreserved characters decoded, other escapes upper-cased, dot segments removed,
 * repeated slashes merged.
 */
export function normalizePath(rawPath: string): string {
  let p = rawPath.replace(/%([0-9a-fA-F]{2})/g, (_m, hex: string) => {
    const ch = String.fromCharCode(parseInt(hex, 16));
    return UNRESERVED.test(ch) ? ch : `%${hex.toUpperCase()}`;
  });
  p = p.replace(/\/{2,}/g, '/');
  const segments = p.split('/');
  const out: string[] = [];
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i] as string;
    const last = i === segments.length - 1;
    if (seg === '.') {
      if (last) out.push('');
      continue;
    }
    if (seg === '..') {
      if (out.length > 1) out.pop();
      if (last) out.push('');
      continue;
    }
    out.push(seg);
  }
  const joined = out.join('/');
  return joined.startsWith('/') ? joined : `/${joined}`;
}

/** `$arg_<name>`: first value of that query argument, raw (not decoded). */
export function argVar(query: string, name: string): string | null {
  for (const part of query.split('&')) {
    const eq = part.indexOf('=');
    const k = eq >= 0 ? part.slice(0, eq) : part;
    if (k.toLowerCase() === name.toLowerCase()) return eq >= 0 ? part.slice(eq + 1) : '';
  }
  return null;
}

/** `kong.request.get_query()`: decoded args; repeated args as arrays; bare args as true. */
export function parseQuery(query: string): Record<string, string | boolean | Array<string | boolean>> {
  const out: Record<string, string | boolean | Array<string | boolean>> = {};
  if (!query) return out;
  const dec = (s: string): string => {
    try {
      return decodeURIComponent(s.replace(/\+/g, ' '));
    } catch {
      return s;
    }
  };
  for (const part of query.split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const k = dec(eq >= 0 ? part.slice(0, eq) : part);
    const v: string | boolean = eq >= 0 ? dec(part.slice(eq + 1)) : true;
    const prev = out[k];
    if (prev === undefined) out[k] = v;
    else if (Array.isArray(prev)) prev.push(v);
    else out[k] = [prev, v];
  }
  return out;
}
