import { hash, randomFillSync, timingSafeEqual } from 'node:crypto';

/**
 * The affinity token: an opaque, signed reference to one endpoint of one service.
 *
 *   byte  0      version (1)
 *   bytes 1-4    issuedAt, seconds since the epoch (absolute timeout)
 *   bytes 5-8    touchedAt, seconds (idle timeout; refreshed by re-issuing)
 *   bytes 9-12   session id, random (stays across refreshes; the balancer counts by it)
 *   bytes 13-20  endpoint ref = HMAC(key, "ref" | binding | endpoint id)[0..8]
 *   bytes 21-36  mac = HMAC(key, "tok" | binding | bytes 0-20)[0..16]
 *
 * base64url, 50 characters. It names no address: the ref is keyed, so neither the pod nor
 * its IP can be read out or chosen by a client. The binding (the Kong service, or route) is
 * in both HMACs, so a token issued for one service means nothing to another.
 * Key rotation: the first secret signs, every secret verifies.
 */

const VERSION = 1;
const BODY_LEN = 21;
const MAC_LEN = 16;
const TOKEN_LEN = BODY_LEN + MAC_LEN;
/** base64url length of a token; anything else is rejected before any HMAC. */
export const TOKEN_CHARS = Math.ceil((TOKEN_LEN * 4) / 3);

export type VerifyFailure = 'malformed' | 'bad-signature';

export interface TokenClaims {
  /** Index of the secret that verified it; 0 is the signing key. */
  readonly keyIndex: number;
  readonly issuedAt: number;
  readonly touchedAt: number;
  /** Session id, 8 hex chars. */
  readonly sid: string;
  /** Endpoint ref under the key that verified it (binary string, 8 chars). */
  readonly ref: string;
}

export type VerifyResult =
  | { readonly ok: true; readonly claims: TokenClaims }
  | { readonly ok: false; readonly reason: VerifyFailure };

export interface Issued {
  readonly token: string;
  readonly claims: TokenClaims;
}

export interface TokenCodecOptions {
  /** Every secret verifies, the first one signs. */
  readonly secrets: readonly string[];
  /** What the token is bound to: a Kong service or route id, or a source scope. */
  readonly binding: string;
  /** Verified tokens remembered, so a returning client costs no HMAC. */
  readonly cacheSize?: number;
}

export class TokenCodec {
  private readonly keys: HmacSha256[];
  /** Per key: ipad | "tok" | binding | token body, the token MAC's input, body rewritten per call. */
  private readonly tokInputs: Buffer[];
  private readonly tokBodyAt: number;
  private readonly refPrefix: Buffer;
  /** Verified tokens -> the (immutable) result verify() answers for them. */
  private readonly verified: VerifiedTokens;
  /** Refs under the signing key by endpoint id: issue() needs one per token. */
  private readonly signingRefs = new Map<string, string>();
  /** Scratch for decoding a token being verified (synchronous use only). */
  private readonly raw = Buffer.alloc(TOKEN_LEN);
  private readonly rawMac = this.raw.subarray(BODY_LEN);
  private readonly expectedMac = Buffer.alloc(MAC_LEN);
  /** Scratch for a token being issued. */
  private readonly out = Buffer.alloc(TOKEN_LEN);

  constructor(opts: TokenCodecOptions) {
    if (opts.secrets.length === 0) throw new Error('at least one secret is required');
    this.keys = opts.secrets.map((s) => new HmacSha256(Buffer.from(s, 'utf8')));
    const tokPrefix = Buffer.from(`tok\0${opts.binding}\0`, 'utf8');
    this.tokBodyAt = HMAC_BLOCK + tokPrefix.length;
    this.tokInputs = this.keys.map((k) => Buffer.concat([k.ipad, tokPrefix, Buffer.alloc(BODY_LEN)]));
    this.refPrefix = Buffer.from(`ref\0${opts.binding}\0`, 'utf8');
    this.verified = new VerifiedTokens(opts.cacheSize ?? 50_000);
  }

  get keyCount(): number {
    return this.keys.length;
  }

  /** The endpoint ref of `endpointId` under key `keyIndex` (binary string). */
  ref(endpointId: string, keyIndex = 0): string {
    const key = this.key(keyIndex);
    return key.macOfPadded(Buffer.concat([key.ipad, this.refPrefix, Buffer.from(endpointId, 'utf8')])).slice(0, 8);
  }

  /**
   * Issues a token under the signing key. A new session gets a fresh random sid; a
   * re-issued one keeps its sid and issue time. The token is remembered as verified.
   */
  issue(endpointId: string, now: number, session?: { sid: string; issuedAt: number }): Issued {
    const out = this.out;
    out[0] = VERSION;
    out.writeUInt32BE(clampSeconds(session?.issuedAt ?? now), 1);
    out.writeUInt32BE(clampSeconds(now), 5);
    if (session) out.write(session.sid, 9, 4, 'hex');
    else randomSid(out, 9);
    const ref = this.signingRef(endpointId);
    out.write(ref, 13, 8, 'latin1');
    out.write(this.tokenMac(0, out), BODY_LEN, MAC_LEN, 'latin1');
    const token = out.toString('base64url');
    const claims: TokenClaims = {
      keyIndex: 0,
      issuedAt: out.readUInt32BE(1),
      touchedAt: out.readUInt32BE(5),
      sid: out.toString('hex', 9, 13),
      ref,
    };
    this.verified.set(token, { ok: true, claims });
    return { token, claims };
  }

  /** Verifies a token. Never throws: a bad token is data. */
  verify(token: string): VerifyResult {
    const cached = this.verified.get(token);
    if (cached) return cached;
    // Only the canonical encoding: this also refuses characters outside base64url (the
    // decoder would skip them) and variants of the last character, which carries unused bits.
    if (token.length !== TOKEN_CHARS || !isCanonicalToken(token)) return MALFORMED;
    const raw = this.raw;
    if (raw.write(token, 0, TOKEN_LEN, 'base64url') !== TOKEN_LEN || raw[0] !== VERSION) return MALFORMED;
    for (let k = 0; k < this.keys.length; k++) {
      this.expectedMac.write(this.tokenMac(k, raw), 0, MAC_LEN, 'latin1');
      if (timingSafeEqual(this.expectedMac, this.rawMac)) {
        const claims: TokenClaims = {
          keyIndex: k,
          issuedAt: raw.readUInt32BE(1),
          touchedAt: raw.readUInt32BE(5),
          sid: raw.toString('hex', 9, 13),
          ref: raw.toString('latin1', 13, 21),
        };
        const result = { ok: true, claims } as const;
        this.verified.set(token, result);
        return result;
      }
    }
    return BAD_SIGNATURE;
  }

  /** HMAC of "tok" | binding | body[0..21] under key `keyIndex`, as a binary string (32 chars). */
  private tokenMac(keyIndex: number, body: Buffer): string {
    const input = this.tokInputs[keyIndex];
    if (!input) throw new RangeError(`no key ${keyIndex}`);
    // Synchronous use of one scratch buffer: no allocation for the MAC input.
    body.copy(input, this.tokBodyAt, 0, BODY_LEN);
    return this.key(keyIndex).macOfPadded(input);
  }

  private signingRef(endpointId: string): string {
    let ref = this.signingRefs.get(endpointId);
    if (ref === undefined) {
      // Bounded: endpoints come and go; starting over now and then costs one HMAC per endpoint.
      if (this.signingRefs.size >= SIGNING_REF_CACHE) this.signingRefs.clear();
      ref = this.ref(endpointId, 0);
      this.signingRefs.set(endpointId, ref);
    }
    return ref;
  }

  private key(keyIndex: number): HmacSha256 {
    const key = this.keys[keyIndex];
    if (!key) throw new RangeError(`no key ${keyIndex}`);
    return key;
  }
}

type Verified = VerifyResult & { readonly ok: true };

/** No slot. */
const NIL = -1;

/**
 * The verification cache: a least-recently-used list of `max` tokens, token -> slot in a
 * Map, values and list links in arrays indexed by slot (grown up to `max`, slots reused).
 * What lru-cache did here before, without its per-call options, status and disposal
 * machinery, which cost about as much as the map itself on a first-seen token.
 */
class VerifiedTokens {
  private readonly slots = new Map<string, number>();
  private readonly tokens: Array<string | undefined> = [];
  private readonly results: Array<Verified | undefined> = [];
  /** Towards the least recently used. */
  private readonly older: number[] = [];
  /** Towards the most recently used. */
  private readonly newer: number[] = [];
  private oldest = NIL;
  private newest = NIL;

  constructor(private readonly max: number) {
    if (!(Number.isInteger(max) && max >= 1)) throw new TypeError(`cacheSize must be a positive integer, got ${max}`);
  }

  get(token: string): Verified | undefined {
    const slot = this.slots.get(token);
    if (slot === undefined) return undefined;
    if (slot !== this.newest) {
      this.unlink(slot);
      this.link(slot);
    }
    return this.results[slot];
  }

  set(token: string, result: Verified): void {
    let slot = this.slots.get(token);
    if (slot !== undefined) {
      this.results[slot] = result;
      if (slot !== this.newest) {
        this.unlink(slot);
        this.link(slot);
      }
      return;
    }
    if (this.slots.size >= this.max) {
      // Evict the least recently used and take its slot.
      slot = this.oldest;
      this.unlink(slot);
      this.slots.delete(this.tokens[slot]!);
      this.tokens[slot] = token;
      this.results[slot] = result;
    } else {
      slot = this.tokens.length;
      this.tokens.push(token);
      this.results.push(result);
      this.older.push(NIL);
      this.newer.push(NIL);
    }
    this.slots.set(token, slot);
    this.link(slot);
  }

  private link(slot: number): void {
    this.older[slot] = this.newest;
    this.newer[slot] = NIL;
    if (this.newest !== NIL) this.newer[this.newest] = slot;
    else this.oldest = slot;
    this.newest = slot;
  }

  private unlink(slot: number): void {
    const older = this.older[slot]!;
    const newer = this.newer[slot]!;
    if (older !== NIL) this.newer[older] = newer;
    else this.oldest = newer;
    if (newer !== NIL) this.older[newer] = older;
    else this.newest = older;
  }
}

const HMAC_BLOCK = 64;
const SIGNING_REF_CACHE = 16_384;

/**
 * HMAC-SHA256 (RFC 2104) on node:crypto's one-shot SHA-256: H((K ^ opad) | H((K ^ ipad) | m)).
 * The same MAC as createHmac('sha256', K), at a third of its cost: createHmac builds a
 * stream object and a native context per call, which costs more than the two hashes
 * of a 70-byte token input.
 */
class HmacSha256 {
  /** K ^ 0x36: callers keep message buffers that start with it, so no copy is needed. */
  readonly ipad: Buffer;
  /** K ^ 0x5c | inner digest: rewritten per call. */
  private readonly outer: Buffer;

  constructor(key: Buffer) {
    const k0 = Buffer.alloc(HMAC_BLOCK);
    (key.length > HMAC_BLOCK ? hash('sha256', key, 'buffer') : key).copy(k0);
    this.ipad = Buffer.alloc(HMAC_BLOCK);
    this.outer = Buffer.alloc(HMAC_BLOCK + 32);
    for (let i = 0; i < HMAC_BLOCK; i++) {
      this.ipad[i] = k0[i]! ^ 0x36;
      this.outer[i] = k0[i]! ^ 0x5c;
    }
  }

  /** The MAC (binary string, 32 chars) of the message in `padded` after its first 64 bytes, which must be `ipad`. */
  macOfPadded(padded: Buffer): string {
    this.outer.write(hash('sha256', padded, 'binary'), HMAC_BLOCK, 32, 'latin1');
    return hash('sha256', this.outer, 'binary');
  }
}

/** base64url value of each ASCII character; -1: not in the alphabet. */
const B64URL_VALUE = new Int8Array(128).fill(-1);
for (const [i, c] of [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'].entries()) {
  B64URL_VALUE[c.charCodeAt(0)] = i;
}
/** Bits of the last character that carry no data: zero in the canonical encoding. */
const UNUSED_BITS_MASK = (1 << (TOKEN_CHARS * 6 - TOKEN_LEN * 8)) - 1;

/**
 * True when `token` (TOKEN_CHARS long) is the canonical base64url encoding of TOKEN_LEN
 * bytes: only alphabet characters, no padding, unused bits of the last character zero.
 * The same answer as decoding and re-encoding, without either.
 */
function isCanonicalToken(token: string): boolean {
  let value = 0;
  for (let i = 0; i < TOKEN_CHARS; i++) {
    const c = token.charCodeAt(i);
    value = c < 128 ? B64URL_VALUE[c]! : -1;
    if (value < 0) return false;
  }
  return (value & UNUSED_BITS_MASK) === 0;
}

const MALFORMED: VerifyResult = { ok: false, reason: 'malformed' };
const BAD_SIGNATURE: VerifyResult = { ok: false, reason: 'bad-signature' };

// randomBytes per call costs a native round trip; draw session ids from a pool instead.
const sidPool = Buffer.allocUnsafe(4096);
let sidOffset = sidPool.length;
function randomSid(into: Buffer, at: number): void {
  if (sidOffset + 4 > sidPool.length) {
    randomFillSync(sidPool);
    sidOffset = 0;
  }
  sidPool.copy(into, at, sidOffset, sidOffset + 4);
  sidOffset += 4;
}

function clampSeconds(t: number): number {
  return Math.min(0xffffffff, Math.max(0, Math.floor(t)));
}
