/**
 * Lua 5.1 patterns (string.find / string.match), as Kong's schema `match`, `not_match`,
 * `match_all`, `match_none` and `match_any` validators use them (`value:match(pattern)`).
 *
 * Supported: `.`, `%a %c %d %g %l %p %s %u %w %x` and their upper-case complements, `%`
 * escapes of any non-alphanumeric character, sets `[...]` / `[^...]` with ranges and
 * classes, quantifiers `* + - ?`, anchors `^` (pattern start) and `$` (pattern end),
 * captures `(...)` and `()`, back-references `%1`..`%9`, `%bxy` and `%f[set]`.
 * Lua works on bytes: strings are matched on their UTF-8 bytes, classes are the C locale's.
 */

export class LuaPatternError extends Error {
  override name = 'LuaPatternError';
}

const L_ESC = 37; // '%'
const MAXCCALLS = 200;

function isalpha(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}
function isdigit(c: number): boolean {
  return c >= 48 && c <= 57;
}
function islower(c: number): boolean {
  return c >= 97 && c <= 122;
}
function isupper(c: number): boolean {
  return c >= 65 && c <= 90;
}
function isspace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13);
}
function iscntrl(c: number): boolean {
  return c < 32 || c === 127;
}
function ispunct(c: number): boolean {
  return c >= 33 && c <= 126 && !isalpha(c) && !isdigit(c);
}
function isxdigit(c: number): boolean {
  return isdigit(c) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70);
}
function isgraph(c: number): boolean {
  return c >= 33 && c <= 126;
}

function matchClass(c: number, cl: number): boolean {
  let res: boolean;
  const lower = cl | 0x20;
  switch (lower) {
    case 97: // a
      res = isalpha(c);
      break;
    case 99: // c
      res = iscntrl(c);
      break;
    case 100: // d
      res = isdigit(c);
      break;
    case 103: // g
      res = isgraph(c);
      break;
    case 108: // l
      res = islower(c);
      break;
    case 112: // p
      res = ispunct(c);
      break;
    case 115: // s
      res = isspace(c);
      break;
    case 117: // u
      res = isupper(c);
      break;
    case 119: // w
      res = isalpha(c) || isdigit(c);
      break;
    case 120: // x
      res = isxdigit(c);
      break;
    default:
      return cl === c;
  }
  return isupper(cl) ? !res : res;
}

interface Capture {
  start: number;
  /** -1: still open; -2: position capture */
  len: number;
}

class Matcher {
  private depth = 0;
  readonly caps: Capture[] = [];

  constructor(
    readonly s: Uint8Array,
    readonly p: Uint8Array,
  ) {}

  private classEnd(pi: number): number {
    const p = this.p;
    let i = pi;
    const c = p[i++] as number;
    if (c === L_ESC) {
      if (i >= p.length) throw new LuaPatternError('malformed pattern (ends with \'%\')');
      return i + 1;
    }
    if (c === 91) {
      // '['
      if (p[i] === 94) i++; // '^'
      // look for a ']'
      do {
        if (i >= p.length) throw new LuaPatternError("malformed pattern (missing ']')");
        const cc = p[i++] as number;
        if (cc === L_ESC && i < p.length) i++;
      } while (p[i] !== 93);
      return i + 1;
    }
    return i;
  }

  private matchBracketClass(c: number, pi: number, ec: number): boolean {
    // pi points at '[', ec at the closing ']'
    const p = this.p;
    let sig = true;
    let i = pi + 1;
    if (p[i] === 94) {
      sig = false;
      i++;
    }
    while (i < ec) {
      const pc = p[i] as number;
      if (pc === L_ESC) {
        i++;
        if (matchClass(c, p[i] as number)) return sig;
        i++;
      } else if (p[i + 1] === 45 && i + 2 < ec) {
        // range a-z
        if ((p[i] as number) <= c && c <= (p[i + 2] as number)) return sig;
        i += 3;
      } else {
        if (pc === c) return sig;
        i++;
      }
    }
    return !sig;
  }

  private singleMatch(si: number, pi: number, ep: number): boolean {
    if (si >= this.s.length) return false;
    const c = this.s[si] as number;
    const pc = this.p[pi] as number;
    switch (pc) {
      case 46: // '.'
        return true;
      case L_ESC:
        return matchClass(c, this.p[pi + 1] as number);
      case 91: // '['
        return this.matchBracketClass(c, pi, ep - 1);
      default:
        return pc === c;
    }
  }

  private matchBalance(si: number, pi: number): number {
    const p = this.p;
    if (pi + 1 >= p.length) throw new LuaPatternError('malformed pattern (missing arguments to \'%b\')');
    const s = this.s;
    if (si >= s.length || s[si] !== p[pi]) return -1;
    const b = p[pi] as number;
    const e = p[pi + 1] as number;
    let cont = 1;
    let i = si + 1;
    while (i < s.length) {
      const c = s[i] as number;
      if (c === e) {
        if (--cont === 0) return i + 1;
      } else if (c === b) cont++;
      i++;
    }
    return -1;
  }

  private maxExpand(si: number, pi: number, ep: number): number {
    let i = 0;
    while (this.singleMatch(si + i, pi, ep)) i++;
    while (i >= 0) {
      const r = this.doMatch(si + i, ep + 1);
      if (r !== -1) return r;
      i--;
    }
    return -1;
  }

  private minExpand(si: number, pi: number, ep: number): number {
    for (;;) {
      const r = this.doMatch(si, ep + 1);
      if (r !== -1) return r;
      if (this.singleMatch(si, pi, ep)) si++;
      else return -1;
    }
  }

  private startCapture(si: number, pi: number, len: number): number {
    this.caps.push({ start: si, len });
    const r = this.doMatch(si, pi);
    if (r === -1) this.caps.pop();
    return r;
  }

  private endCapture(si: number, pi: number): number {
    let l = -1;
    for (let i = this.caps.length - 1; i >= 0; i--) {
      if ((this.caps[i] as Capture).len === -1) {
        l = i;
        break;
      }
    }
    if (l < 0) throw new LuaPatternError('invalid pattern capture');
    const cap = this.caps[l] as Capture;
    cap.len = si - cap.start;
    const r = this.doMatch(si, pi);
    if (r === -1) cap.len = -1;
    return r;
  }

  private matchCapture(si: number, l: number): number {
    const idx = l - 49; // '1' -> 0
    const cap = this.caps[idx];
    if (!cap || cap.len === -1) throw new LuaPatternError('invalid capture index');
    const len = cap.len;
    if (len < 0) throw new LuaPatternError('invalid capture index');
    if (this.s.length - si >= len) {
      for (let k = 0; k < len; k++) if (this.s[cap.start + k] !== this.s[si + k]) return -1;
      return si + len;
    }
    return -1;
  }

  doMatch(si: number, pi: number): number {
    if (++this.depth > MAXCCALLS * 50) throw new LuaPatternError('pattern too complex');
    try {
      const p = this.p;
      for (;;) {
        if (pi >= p.length) return si;
        const pc = p[pi] as number;
        if (pc === 40) {
          // '('
          if (p[pi + 1] === 41) return this.startCapture(si, pi + 2, -2);
          return this.startCapture(si, pi + 1, -1);
        }
        if (pc === 41) return this.endCapture(si, pi + 1); // ')'
        if (pc === 36 && pi + 1 === p.length) return si === this.s.length ? si : -1; // '$' at end
        if (pc === L_ESC) {
          const nc = p[pi + 1];
          if (nc === 98) {
            // %b
            si = this.matchBalance(si, pi + 2);
            if (si === -1) return -1;
            pi += 4;
            continue;
          }
          if (nc === 102) {
            // %f[set]
            pi += 2;
            if (p[pi] !== 91) throw new LuaPatternError("missing '[' after '%f' in pattern");
            const ep = this.classEnd(pi);
            const prev = si === 0 ? 0 : (this.s[si - 1] as number);
            const cur = si < this.s.length ? (this.s[si] as number) : 0;
            if (!this.matchBracketClass(prev, pi, ep - 1) && this.matchBracketClass(cur, pi, ep - 1)) {
              pi = ep;
              continue;
            }
            return -1;
          }
          if (nc !== undefined && isdigit(nc)) {
            si = this.matchCapture(si, nc);
            if (si === -1) return -1;
            pi += 2;
            continue;
          }
        }
        const ep = this.classEnd(pi);
        const m = this.singleMatch(si, pi, ep);
        const q = p[ep];
        if (q === 63) {
          // '?'
          if (m) {
            const r = this.doMatch(si + 1, ep + 1);
            if (r !== -1) return r;
          }
          pi = ep + 1;
          continue;
        }
        if (q === 43) return m ? this.maxExpand(si + 1, pi, ep) : -1; // '+'
        if (q === 42) return this.maxExpand(si, pi, ep); // '*'
        if (q === 45) return this.minExpand(si, pi, ep); // '-'
        if (!m) return -1;
        si++;
        pi = ep;
      }
    } finally {
      this.depth--;
    }
  }
}

const enc = new TextEncoder();

/**
 * `string.find(s, pattern)`: the 0-based byte range of the first match, or null.
 */
export function luaFind(s: string, pattern: string): { start: number; end: number } | null {
  const sb = enc.encode(s);
  let pb = enc.encode(pattern);
  const anchored = pb[0] === 94; // '^'
  if (anchored) pb = pb.subarray(1);
  for (let start = 0; start <= sb.length; start++) {
    const m = new Matcher(sb, pb);
    const end = m.doMatch(start, 0);
    if (end !== -1) return { start, end };
    if (anchored) break;
  }
  return null;
}

/** `s:match(pattern) ~= nil` */
export function luaMatches(s: string, pattern: string): boolean {
  return luaFind(s, pattern) !== null;
}
