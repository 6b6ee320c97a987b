import { describe, expect, it } from 'vitest';
import { TOKEN_CHARS, TokenCodec, type TokenCodecOptions } from '../../src/token.js';

const A = 'a'.repeat(32);
const B = 'b'.repeat(32);
const NEW = 'new-secret-0123456789-0123456789-abcdef';
const OLD = 'old-secret-0123456789-0123456789-abcdef';
/** Codecs with a small verification cache: the default LRU preallocates 100,000 slots. */
const mk = (opts: TokenCodecOptions): TokenCodec => new TokenCodec({ cacheSize: 64, ...opts });
const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

describe('TokenCodec', () => {
  it('issues opaque tokens that verify and carry the endpoint ref, not the id', () => {
    const codec = new TokenCodec({ secrets: [A], binding: 'service:s1' });
    const { token, claims } = codec.issue('10.0.0.7:8080', 1_700_000_000);
    expect(token).toHaveLength(TOKEN_CHARS);
    expect(token).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(Buffer.from(token, 'base64url').toString('latin1')).not.toContain('10.0.0.7');
    const fresh = new TokenCodec({ secrets: [A], binding: 'service:s1' });
    const v = fresh.verify(token);
    expect(v).toEqual({ ok: true, claims });
    expect(claims.ref).toBe(fresh.ref('10.0.0.7:8080'));
    expect(claims.issuedAt).toBe(1_700_000_000);
  });

  it('rejects tokens of another service, another key, or tampered bytes', () => {
    const codec = new TokenCodec({ secrets: [A], binding: 'service:s1' });
    const { token } = codec.issue('pod-uid-1', 1000);
    expect(new TokenCodec({ secrets: [A], binding: 'service:s2' }).verify(token)).toEqual({ ok: false, reason: 'bad-signature' });
    expect(new TokenCodec({ secrets: [B], binding: 'service:s1' }).verify(token)).toEqual({ ok: false, reason: 'bad-signature' });
    const raw = Buffer.from(token, 'base64url');
    raw[14] = raw[14]! ^ 1;
    expect(new TokenCodec({ secrets: [A], binding: 'service:s1' }).verify(raw.toString('base64url'))).toEqual({ ok: false, reason: 'bad-signature' });
    expect(codec.verify('garbage')).toEqual({ ok: false, reason: 'malformed' });
    expect(codec.verify(token + 'A')).toEqual({ ok: false, reason: 'malformed' });
  });

  it('verifies with any secret and tells which one', () => {
    const old = new TokenCodec({ secrets: [B], binding: 'g' }).issue('e', 5).token;
    const rotated = new TokenCodec({ secrets: [A, B], binding: 'g' });
    const v = rotated.verify(old);
    expect(v.ok && v.claims.keyIndex).toBe(1);
  });
});

describe('TokenCodec: issue and verify', () => {
  it('round-trips every claim through a codec that never saw the token', () => {
    const issuer = mk({ secrets: [NEW], binding: 'service:shop' });
    const { token, claims } = issuer.issue('pod-uid-42', 1_700_000_123.9);
    expect(claims.keyIndex).toBe(0);
    // Whole seconds, rounded up: an age read from the token never exceeds the real one.
    expect(claims.issuedAt).toBe(1_700_000_124);
    expect(claims.touchedAt).toBe(1_700_000_124);
    expect(claims.sid).toMatch(/^[0-9a-f]{8}$/);
    expect(claims.ref).toBe(issuer.ref('pod-uid-42'));
    const verifier = mk({ secrets: [NEW], binding: 'service:shop' });
    expect(verifier.verify(token)).toEqual({ ok: true, claims });
  });

  it('gives every new session its own sid', () => {
    const codec = mk({ secrets: [NEW], binding: 'g' });
    const sids = new Set<string>();
    for (let i = 0; i < 2000; i++) sids.add(codec.issue('e', 1000).claims.sid);
    // 32 random bits: a collision or two among 2,000 is possible, a pattern is not.
    expect(sids.size).toBeGreaterThanOrEqual(1995);
  });

  it('re-issue keeps sid and issuedAt, moves touchedAt, and yields a different token', () => {
    const codec = mk({ secrets: [NEW], binding: 'service:shop' });
    const first = codec.issue('pod-uid-1', 1_000);
    const again = codec.issue('pod-uid-1', 1_450, first.claims);
    expect(again.token).not.toBe(first.token);
    expect(again.claims.sid).toBe(first.claims.sid);
    expect(again.claims.issuedAt).toBe(1_000);
    expect(again.claims.touchedAt).toBe(1_450);
    const v = mk({ secrets: [NEW], binding: 'service:shop' }).verify(again.token);
    expect(v).toEqual({ ok: true, claims: again.claims });
  });

  it('re-issue can move a session to another endpoint under the same sid', () => {
    const codec = mk({ secrets: [NEW], binding: 'g' });
    const first = codec.issue('pod-a', 10);
    const moved = codec.issue('pod-b', 20, first.claims);
    expect(moved.claims.ref).toBe(codec.ref('pod-b'));
    expect(moved.claims.ref).not.toBe(first.claims.ref);
    expect(moved.claims.sid).toBe(first.claims.sid);
  });

  it('clamps times to the 32-bit seconds field', () => {
    const codec = mk({ secrets: [NEW], binding: 'g' });
    expect(codec.issue('e', -5).claims.issuedAt).toBe(0);
    expect(codec.issue('e', 2 ** 40).claims.touchedAt).toBe(0xffffffff);
  });

  it('answers a second verify of the same token from the cache with the same claims', () => {
    const issuer = mk({ secrets: [NEW], binding: 'g' });
    const { token, claims } = issuer.issue('e', 100);
    // Issued tokens are remembered as verified: the issuer's own answer is its claims object.
    const own = issuer.verify(token);
    expect(own.ok && own.claims).toBe(claims);

    const verifier = mk({ secrets: [NEW], binding: 'g' });
    const first = verifier.verify(token);
    const second = verifier.verify(token);
    expect(first).toEqual({ ok: true, claims });
    expect(second).toEqual(first);
    // The cached object itself comes back: no second HMAC was computed.
    expect(second.ok && first.ok && second.claims === first.claims).toBe(true);
  });

  it('bounds the cache by cacheSize: an evicted token is verified again, with equal claims', () => {
    const issuer = mk({ secrets: [NEW], binding: 'g' });
    const t1 = issuer.issue('e1', 100).token;
    const t2 = issuer.issue('e2', 100).token;
    const verifier = mk({ secrets: [NEW], binding: 'g', cacheSize: 1 });
    const a = verifier.verify(t1);
    verifier.verify(t2);
    const b = verifier.verify(t1);
    expect(b).toEqual(a);
    expect(a.ok && b.ok && a.claims !== b.claims).toBe(true);
  });

  it('refuses a codec with no secret', () => {
    expect(() => new TokenCodec({ secrets: [], binding: 'g' })).toThrow();
  });
});

describe('TokenCodec: malformed tokens', () => {
  const codec = mk({ secrets: [NEW], binding: 'service:shop' });
  const { token } = codec.issue('pod-uid-1', 1_000);
  const raw = Buffer.from(token, 'base64url');
  const fresh = () => mk({ secrets: [NEW], binding: 'service:shop' });

  it('accepts only the canonical encoding: a variant of the last character is malformed', () => {
    // 37 bytes take 50 characters; the last one carries 2 data bits and 4 unused ones.
    const last = B64URL.indexOf(token[token.length - 1]!);
    let variants = 0;
    for (let bits = 1; bits < 16; bits++) {
      const variant = token.slice(0, -1) + B64URL[last ^ bits];
      const decoded = Buffer.from(variant, 'base64url');
      if (!decoded.equals(raw)) continue; // touched a data bit: not a re-encoding
      variants++;
      expect(fresh().verify(variant)).toEqual({ ok: false, reason: 'malformed' });
      expect(codec.verify(variant)).toEqual({ ok: false, reason: 'malformed' });
    }
    expect(variants).toBe(15);
  });

  it('refuses the standard base64 alphabet (+ and /) even though it decodes to the same bytes', () => {
    let tok = token;
    let c = codec;
    for (let i = 0; !/[-_]/.test(tok); i++) {
      c = mk({ secrets: [NEW], binding: 'service:shop' });
      tok = c.issue(`pod-${i}`, 1_000).token;
    }
    const standard = tok.replaceAll('-', '+').replaceAll('_', '/');
    expect(Buffer.from(standard, 'base64url').equals(Buffer.from(tok, 'base64url'))).toBe(true);
    expect(c.verify(tok).ok).toBe(true);
    expect(fresh().verify(standard)).toEqual({ ok: false, reason: 'malformed' });
  });

  it('refuses wrong lengths', () => {
    for (const t of ['', 'A', token.slice(0, -1), token + 'A', token + token, token.slice(0, 48) + '==']) {
      expect(fresh().verify(t)).toEqual({ ok: false, reason: 'malformed' });
    }
  });

  it('refuses another version byte before any MAC', () => {
    for (const version of [0, 2, 255]) {
      const r = Buffer.from(raw);
      r[0] = version;
      expect(fresh().verify(r.toString('base64url'))).toEqual({ ok: false, reason: 'malformed' });
    }
  });

  it('refuses characters outside base64url at every position', () => {
    for (const bad of ['!', '.', '=', ' ', '~', '+', '/', 'é', '\u0000']) {
      for (const at of [0, 1, 17, 48, 49]) {
        const t = token.slice(0, at) + bad + token.slice(at + 1);
        expect(t).toHaveLength(TOKEN_CHARS);
        const v = fresh().verify(t);
        expect(v.ok).toBe(false);
        // '+' and '/' decode like '-' and '_': then it is the canonical check that refuses.
        expect(v).toEqual({ ok: false, reason: 'malformed' });
      }
    }
    expect(fresh().verify('é'.repeat(TOKEN_CHARS))).toEqual({ ok: false, reason: 'malformed' });
  });

  it('answers huge strings (1 MB) quickly, without throwing', () => {
    const huge = ['A'.repeat(1 << 20), token.repeat((1 << 20) / TOKEN_CHARS), '%'.repeat(1 << 20)];
    const c = fresh();
    const t0 = performance.now();
    for (const t of huge) for (let i = 0; i < 20; i++) expect(c.verify(t)).toEqual({ ok: false, reason: 'malformed' });
    expect(performance.now() - t0).toBeLessThan(500);
  });

  it('never accepts a token with any single bit flipped, at any byte position', () => {
    const seen = { malformed: 0, 'bad-signature': 0 };
    for (let byte = 0; byte < raw.length; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        const r = Buffer.from(raw);
        r[byte] = r[byte]! ^ (1 << bit);
        const t = r.toString('base64url');
        for (const c of [codec, fresh()]) {
          const v = c.verify(t);
          expect(v.ok, `byte ${byte} bit ${bit}`).toBe(false);
          if (!v.ok) seen[v.reason]++;
        }
        if (byte === 0) expect(fresh().verify(t)).toEqual({ ok: false, reason: 'malformed' });
        else expect(fresh().verify(t)).toEqual({ ok: false, reason: 'bad-signature' });
      }
    }
    expect(seen.malformed + seen['bad-signature']).toBe(raw.length * 8 * 2);
  });
});

describe('TokenCodec: key rotation and binding', () => {
  it('[new, old] verifies old tokens with keyIndex 1 and keeps their claims', () => {
    const old = mk({ secrets: [OLD], binding: 'service:s' });
    const issued = old.issue('pod-1', 5_000);
    const rotated = mk({ secrets: [NEW, OLD], binding: 'service:s' });
    const v = rotated.verify(issued.token);
    expect(v.ok).toBe(true);
    if (!v.ok) return;
    expect(v.claims.keyIndex).toBe(1);
    expect(v.claims.sid).toBe(issued.claims.sid);
    expect(v.claims.issuedAt).toBe(5_000);
    // The ref is the old key's ref of the endpoint: index 1 of the rotated codec.
    expect(v.claims.ref).toBe(rotated.ref('pod-1', 1));
    expect(v.claims.ref).toBe(old.ref('pod-1', 0));
  });

  it('[new, old] signs with the new key', () => {
    const rotated = mk({ secrets: [NEW, OLD], binding: 'service:s' });
    const { token } = rotated.issue('pod-1', 5_000);
    const onlyNew = mk({ secrets: [NEW], binding: 'service:s' }).verify(token);
    expect(onlyNew.ok && onlyNew.claims.keyIndex).toBe(0);
    expect(mk({ secrets: [OLD], binding: 'service:s' }).verify(token)).toEqual({ ok: false, reason: 'bad-signature' });
  });

  it('[new] alone refuses old tokens as bad-signature', () => {
    const { token } = mk({ secrets: [OLD], binding: 'service:s' }).issue('pod-1', 5_000);
    expect(mk({ secrets: [NEW], binding: 'service:s' }).verify(token)).toEqual({ ok: false, reason: 'bad-signature' });
  });

  it('gives an endpoint a different ref per binding, per key, and per endpoint', () => {
    const s1 = mk({ secrets: [NEW, OLD], binding: 'service:s1' });
    const s2 = mk({ secrets: [NEW, OLD], binding: 'service:s2' });
    const refs = [s1.ref('pod-1', 0), s1.ref('pod-1', 1), s2.ref('pod-1', 0), s2.ref('pod-1', 1), s1.ref('pod-2', 0), s2.ref('pod-2', 1)];
    expect(new Set(refs).size).toBe(refs.length);
    for (const r of refs) expect(r).toHaveLength(8);
    // Deterministic: another codec with the same secrets and binding agrees.
    expect(mk({ secrets: [OLD], binding: 'service:s1' }).ref('pod-1')).toBe(s1.ref('pod-1', 1));
    expect(() => s1.ref('pod-1', 2)).toThrow(RangeError);
  });

  it('binds tokens to the binding: the same secret and endpoint under another binding is bad-signature', () => {
    const { token } = mk({ secrets: [NEW], binding: 'service:s1' }).issue('pod-1', 1);
    for (const binding of ['service:s2', 'route:s1', 'global', 'service:s1 ', '']) {
      expect(mk({ secrets: [NEW], binding }).verify(token)).toEqual({ ok: false, reason: 'bad-signature' });
    }
  });
});
