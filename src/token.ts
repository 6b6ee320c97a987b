import { createHmac, createSecretKey, randomFillSync, timingSafeEqual, type KeyObject } from 'node:crypto';
import { LRUCache } from 'lru-cache';

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
/**
 * A canonical token: 50 base64url characters, the last one's 4 unused low bits zero
 * (A, Q, g or w: 37 bytes are 296 bits, 50 characters carry 300).
 */
const CANONICAL_TOKEN = new RegExp(`^[A-Za-z0-9_-]{${TOKEN_CHARS - 1}}[AQgw]$`);

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
  /**
   * The caller's to fill: what these claims resolved to. A cached token's claims are the
   * same object on every hit, so a returning client can skip the lookup (RefIndex.resolve).
   */
  memo: unknown;
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
  private readonly keys: KeyObject[];
  /**
   * "tok" | binding | token, one buffer for every call (all synchronous): a token is
   * issued or decoded in place, and the MAC input is the buffer but its last 16 bytes.
   * Views into it, made once: a verify allocates nothing but the HMAC.
   */
  private readonly scratch: Buffer;
  private readonly tokenAt: number;
  private readonly macInput: Buffer;
  private readonly body: Buffer;
  private readonly presentedMac: Buffer;
  private readonly refPrefix: Buffer;
  private readonly verified: LRUCache<string, TokenClaims>;

  constructor(opts: TokenCodecOptions) {
    if (opts.secrets.length === 0) throw new Error('at least one secret is required');
    this.keys = opts.secrets.map((s) => createSecretKey(Buffer.from(s, 'utf8')));
    const tokPrefix = Buffer.from(`tok\0${opts.binding}\0`, 'utf8');
    this.tokenAt = tokPrefix.length;
    this.scratch = Buffer.concat([tokPrefix, Buffer.alloc(TOKEN_LEN)]);
    this.macInput = this.scratch.subarray(0, this.tokenAt + BODY_LEN);
    this.body = this.scratch.subarray(this.tokenAt, this.tokenAt + BODY_LEN);
    this.presentedMac = this.scratch.subarray(this.tokenAt + BODY_LEN);
    this.refPrefix = Buffer.from(`ref\0${opts.binding}\0`, 'utf8');
    // Bounded by maxSize, not max: with max, lru-cache allocates its arrays for every entry
    // at once (~1.4 MB at 50,000), per service, before a single token was seen.
    this.verified = new LRUCache({ maxSize: opts.cacheSize ?? 50_000, sizeCalculation: () => 1 });
  }

  get keyCount(): number {
    return this.keys.length;
  }

  /** The endpoint ref of `endpointId` under key `keyIndex` (binary string). */
  ref(endpointId: string, keyIndex = 0): string {
    return this.mac(keyIndex, this.refPrefix, Buffer.from(endpointId, 'utf8'))
      .subarray(0, 8)
      .toString('latin1');
  }

  /**
   * Issues a token under the signing key. A new session gets a fresh random sid; a
   * re-issued one keeps its sid and issue time. The token is remembered as verified.
   */
  issue(endpointId: string, now: number, session?: { sid: string; issuedAt: number }): Issued {
    const body = this.body;
    body[0] = VERSION;
    body.writeUInt32BE(clampSeconds(session?.issuedAt ?? now), 1);
    body.writeUInt32BE(clampSeconds(now), 5);
    if (session) body.write(session.sid, 9, 4, 'hex');
    else randomSid(body, 9);
    const ref = this.ref(endpointId, 0);
    body.write(ref, 13, 8, 'latin1');
    this.tokenMac(0).copy(this.presentedMac);
    const token = this.scratch.toString('base64url', this.tokenAt);
    const claims = this.claims(0);
    this.verified.set(token, claims);
    return { token, claims };
  }

  /** Verifies a token. Never throws: a bad token is data. */
  verify(token: string): VerifyResult {
    const cached = this.verified.get(token);
    if (cached) return { ok: true, claims: cached };
    // Only the canonical encoding: this refuses characters outside base64url (the decoder
    // would skip them) and variants of the last character, which carries unused bits.
    if (!CANONICAL_TOKEN.test(token)) return MALFORMED;
    if (this.scratch.write(token, this.tokenAt, 'base64url') !== TOKEN_LEN || this.body[0] !== VERSION) return MALFORMED;
    for (let k = 0; k < this.keys.length; k++) {
      if (timingSafeEqual(this.tokenMac(k), this.presentedMac)) {
        const claims = this.claims(k);
        this.verified.set(token, claims);
        return { ok: true, claims };
      }
    }
    return BAD_SIGNATURE;
  }

  /** The claims of the token in the scratch buffer. */
  private claims(keyIndex: number): TokenClaims {
    const body = this.body;
    return {
      keyIndex,
      issuedAt: body.readUInt32BE(1),
      touchedAt: body.readUInt32BE(5),
      sid: body.toString('hex', 9, 13),
      ref: body.toString('latin1', 13, 21),
      memo: undefined,
    };
  }

  /** MAC of the token body in the scratch buffer under key `keyIndex`. */
  private tokenMac(keyIndex: number): Buffer {
    return createHmac('sha256', this.key(keyIndex)).update(this.macInput).digest().subarray(0, MAC_LEN);
  }

  private key(keyIndex: number): KeyObject {
    const key = this.keys[keyIndex];
    if (!key) throw new RangeError(`no key ${keyIndex}`);
    return key;
  }

  private mac(keyIndex: number, prefix: Buffer, data: Buffer): Buffer {
    return createHmac('sha256', this.key(keyIndex)).update(Buffer.concat([prefix, data])).digest();
  }
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

/**
 * Whole seconds, rounded up: a stamp never predates what it records, so an age read from a
 * token is at most the real age and a session is never cut before its timeout (at most 1 s
 * after it).
 */
function clampSeconds(t: number): number {
  return Math.min(0xffffffff, Math.max(0, Math.ceil(t)));
}
