/**
 * MessagePack as Kong's Lua side speaks it (lua-MessagePack 0.5 in rpc/mp_rpc.lua), on top
 * of @msgpack/msgpack, the codec kong-pdk itself uses. This module only turns JS values into
 * the Lua values Kong would pack (`toLuaValue`) and reads a socket's bytes like Kong's
 * per-call unpacker (`MsgpackReader`); the bytes are @msgpack/msgpack's.
 *
 * What a Lua table becomes, and how this layer models it:
 * - `null`/`undefined` is nil; a map entry whose value is nil does not exist (a Lua table
 *   cannot hold nil), so it is left out: Kong sends `{EventId = id, Data = nil}` as a
 *   one-entry map. Inside an array a `null` stays a nil element (what `ngx.null`, which
 *   Kong's packer maps to nil, looks like there);
 * - an empty Lua table is packed as an empty array (lua-MessagePack's `without_hole` cannot
 *   tell an empty map from an empty array); `EMPTY_MAP` stands for Kong's `mp_empty_map`
 *   (`fix_mmap` of an empty multimap);
 * - integral numbers go as integers (positive ones unsigned), others as float64; -0 is the
 *   integer 0; both libraries agree, except at exactly +-(2^53-1), which lua-MessagePack
 *   sends as a double;
 * - strings go as str, Uint8Array as bin (Kong's `fix_raw` for raw bodies). lua-MessagePack
 *   (`string_compat`) never emits str8 and sends 32-255 byte strings as str16, where
 *   @msgpack/msgpack writes str8: the same string for every decoder, kong-pdk's included.
 *
 * Reading: ext types never occur between Kong and kong-pdk; they are refused loudly (Lua
 * would silently read nil).
 */
import { decode as mpDecode, decodeMultiStream, encode as mpEncode, ExtensionCodec } from '@msgpack/msgpack';

/** Marker for "encode this as an empty map" (Kong's mp_empty_map). */
export const EMPTY_MAP: unique symbol = Symbol('msgpack-empty-map');

export class MsgpackError extends Error {
  override name = 'MsgpackError';
}

/** For decoding: refuses every ext type, the timestamp (-1) included. */
const NO_EXT = new ExtensionCodec();
for (let type = -128; type <= 127; type++) {
  NO_EXT.register({
    type,
    encode: () => null,
    decode: () => {
      throw new MsgpackError(`msgpack ext type ${type} is not used by Kong`);
    },
  });
}

const MAX_DEPTH = 100;

function isNil(v: unknown): v is null | undefined {
  return v === null || v === undefined;
}

/** The value lua-MessagePack would pack for this JS stand-in of a Lua value. */
export function toLuaValue(v: unknown, depth = 0): unknown {
  if (depth > MAX_DEPTH) throw new MsgpackError('value nested too deeply');
  if (isNil(v)) return null;
  if (v === EMPTY_MAP) return {};
  switch (typeof v) {
    case 'boolean':
    case 'number':
    case 'string':
      return v;
    case 'object':
      break;
    default:
      throw new MsgpackError(`cannot pack a ${typeof v}`);
  }
  if (v instanceof Uint8Array) return v;
  if (Array.isArray(v)) return v.map((item) => toLuaValue(item, depth + 1));
  const entries = v instanceof Map ? [...(v as Map<unknown, unknown>).entries()] : Object.entries(v as Record<string, unknown>);
  const kept = entries.filter(([, value]) => !isNil(value));
  // An empty Lua table: packed as an empty array.
  if (kept.length === 0) return [];
  const out: Record<string, unknown> = {};
  for (const [key, value] of kept) out[String(key)] = toLuaValue(value, depth + 1);
  return out;
}

/** Packs one value as Kong would (see the module comment). */
export function encode(value: unknown): Buffer {
  const bytes = mpEncode(toLuaValue(value));
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Decodes exactly one object; throws (RangeError) if the buffer holds less or more. */
export function decode(buf: Uint8Array): unknown {
  return mpDecode(buf, { extensionCodec: NO_EXT });
}

/** What `MsgpackReader.next()` gives when the bytes ended before another complete object. */
export const END: unique symbol = Symbol('msgpack-end');

/**
 * Kong's `mp_unpacker(function() return c:receiveany(4096) end)` for one Rpc:call: push the
 * chunks as they come off the socket, `next()` yields each complete object whatever the chunk
 * boundaries, then END once `end()` was called and nothing complete is left. Bytes that
 * never made a complete object are dropped with the reader, as Kong drops its unpacker.
 */
export class MsgpackReader {
  private readonly chunks: Uint8Array[] = [];
  private ended = false;
  private wake: (() => void) | null = null;
  private readonly objects: AsyncGenerator<unknown, void, unknown>;
  /** Bytes pushed so far. */
  received = 0;
  /** Objects yielded so far. */
  decoded = 0;

  constructor() {
    this.objects = decodeMultiStream(this.source(), { extensionCodec: NO_EXT });
  }

  private async *source(): AsyncGenerator<Uint8Array, void, unknown> {
    for (;;) {
      const chunk = this.chunks.shift();
      if (chunk) {
        yield chunk;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
      this.wake = null;
    }
  }

  push(chunk: Uint8Array): void {
    if (this.ended) return;
    this.received += chunk.length;
    this.chunks.push(chunk);
    this.wake?.();
  }

  /** No more bytes will come (the connection closed, or Kong is done reading). */
  end(): void {
    this.ended = true;
    this.wake?.();
  }

  /** The next complete object, or END; rejects on bytes that are not msgpack. */
  async next(): Promise<unknown> {
    const r = await this.objects.next();
    if (r.done) return END;
    this.decoded++;
    return r.value;
  }
}
