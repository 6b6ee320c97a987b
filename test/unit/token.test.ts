import { describe, expect, it } from 'vitest';
import { TOKEN_CHARS, TokenCodec } from '../../src/token.js';

const A = 'a'.repeat(32);
const B = 'b'.repeat(32);

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
