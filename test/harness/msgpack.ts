/**
 * MessagePack as Kong's Lua side speaks it (lua-MessagePack in rpc/mp_rpc.lua), written
 * here so that the harness controls exactly what goes on the wire:
 *
 * - values are Lua values: `null`/`undefined` is nil; a map entry whose value is nil does
 *   not exist (a Lua table cannot hold nil), so it is left out, exactly as Kong sends
 *   `{EventId = id, Data = nil}` as a one-entry map;
 * - an empty Lua table is packed as an empty array (lua-MessagePack cannot tell an empty
 *   map from an empty array and picks array); use `EMPTY_MAP` where Kong forces a map
 *   (`fix_mmap` for an empty multimap);
 * - integral numbers go as integers, others as float64; strings as str; Uint8Array as bin.
 *
 * The decoder is incremental: feed it chunks as they come off the socket, it yields every
 * complete object and keeps the rest, whatever the chunk boundaries are.
 */

/** Marker for "encode this as an empty map" (Kong's mp_empty_map). */
export const EMPTY_MAP: unique symbol = Symbol('msgpack-empty-map');

export class MsgpackError extends Error {
  override name = 'MsgpackError';
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8');

class Writer {
  private buf = new Uint8Array(256);
  private view = new DataView(this.buf.buffer);
  len = 0;

  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.len++] = v & 0xff;
  }
  u16(v: number): void {
    this.ensure(2);
    this.view.setUint16(this.len, v);
    this.len += 2;
  }
  u32(v: number): void {
    this.ensure(4);
    this.view.setUint32(this.len, v);
    this.len += 4;
  }
  i8(v: number): void {
    this.ensure(1);
    this.view.setInt8(this.len, v);
    this.len += 1;
  }
  i16(v: number): void {
    this.ensure(2);
    this.view.setInt16(this.len, v);
    this.len += 2;
  }
  i32(v: number): void {
    this.ensure(4);
    this.view.setInt32(this.len, v);
    this.len += 4;
  }
  u64(v: number): void {
    this.ensure(8);
    this.view.setBigUint64(this.len, BigInt(v));
    this.len += 8;
  }
  i64(v: number): void {
    this.ensure(8);
    this.view.setBigInt64(this.len, BigInt(v));
    this.len += 8;
  }
  f64(v: number): void {
    this.ensure(8);
    this.view.setFloat64(this.len, v);
    this.len += 8;
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  result(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.len));
  }
}

function isNil(v: unknown): v is null | undefined {
  return v === null || v === undefined;
}

function writeValue(w: Writer, v: unknown, depth: number): void {
  if (depth > 100) throw new MsgpackError('value nested too deeply');
  if (isNil(v)) {
    w.u8(0xc0);
  } else if (v === EMPTY_MAP) {
    w.u8(0x80);
  } else if (typeof v === 'boolean') {
    w.u8(v ? 0xc3 : 0xc2);
  } else if (typeof v === 'number') {
    writeNumber(w, v);
  } else if (typeof v === 'bigint') {
    if (v >= 0n) {
      w.u8(0xcf);
      w.u64(Number(v));
    } else {
      w.u8(0xd3);
      w.i64(Number(v));
    }
  } else if (typeof v === 'string') {
    const b = textEncoder.encode(v);
    const n = b.length;
    if (n < 32) w.u8(0xa0 | n);
    else if (n < 0x100) {
      w.u8(0xd9);
      w.u8(n);
    } else if (n < 0x10000) {
      w.u8(0xda);
      w.u16(n);
    } else {
      w.u8(0xdb);
      w.u32(n);
    }
    w.bytes(b);
  } else if (v instanceof Uint8Array) {
    const n = v.length;
    if (n < 0x100) {
      w.u8(0xc4);
      w.u8(n);
    } else if (n < 0x10000) {
      w.u8(0xc5);
      w.u16(n);
    } else {
      w.u8(0xc6);
      w.u32(n);
    }
    w.bytes(v);
  } else if (Array.isArray(v)) {
    writeArrayHeader(w, v.length);
    for (const item of v) writeValue(w, item, depth + 1);
  } else if (v instanceof Map) {
    const entries = [...v.entries()].filter(([, value]) => !isNil(value));
    if (entries.length === 0) {
      writeArrayHeader(w, 0);
      return;
    }
    writeMapHeader(w, entries.length);
    for (const [key, value] of entries) {
      writeValue(w, key, depth + 1);
      writeValue(w, value, depth + 1);
    }
  } else if (typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>).filter(([, value]) => !isNil(value));
    if (entries.length === 0) {
      // An empty Lua table: lua-MessagePack packs it as an empty array.
      writeArrayHeader(w, 0);
      return;
    }
    writeMapHeader(w, entries.length);
    for (const [key, value] of entries) {
      writeValue(w, key, depth + 1);
      writeValue(w, value, depth + 1);
    }
  } else {
    throw new MsgpackError(`cannot pack a ${typeof v}`);
  }
}

function writeArrayHeader(w: Writer, n: number): void {
  if (n < 16) w.u8(0x90 | n);
  else if (n < 0x10000) {
    w.u8(0xdc);
    w.u16(n);
  } else {
    w.u8(0xdd);
    w.u32(n);
  }
}

function writeMapHeader(w: Writer, n: number): void {
  if (n < 16) w.u8(0x80 | n);
  else if (n < 0x10000) {
    w.u8(0xde);
    w.u16(n);
  } else {
    w.u8(0xdf);
    w.u32(n);
  }
}

function writeNumber(w: Writer, v: number): void {
  if (Number.isInteger(v) && Number.isSafeInteger(v) && !Object.is(v, -0)) {
    if (v >= 0) {
      if (v < 0x80) w.u8(v);
      else if (v < 0x100) {
        w.u8(0xcc);
        w.u8(v);
      } else if (v < 0x10000) {
        w.u8(0xcd);
        w.u16(v);
      } else if (v < 0x100000000) {
        w.u8(0xce);
        w.u32(v);
      } else {
        w.u8(0xcf);
        w.u64(v);
      }
    } else if (v >= -32) {
      w.u8(0xe0 | (v + 32));
    } else if (v >= -0x80) {
      w.u8(0xd0);
      w.i8(v);
    } else if (v >= -0x8000) {
      w.u8(0xd1);
      w.i16(v);
    } else if (v >= -0x80000000) {
      w.u8(0xd2);
      w.i32(v);
    } else {
      w.u8(0xd3);
      w.i64(v);
    }
    return;
  }
  w.u8(0xcb);
  w.f64(v);
}

/** Packs one value (see the module comment for the Lua conventions). */
export function encode(value: unknown): Buffer {
  const w = new Writer();
  writeValue(w, value, 0);
  return w.result();
}

/** Thrown internally when the buffer ends inside an object. */
class NeedMore extends Error {}

class Reader {
  pos: number;
  private readonly view: DataView;
  constructor(
    private readonly buf: Uint8Array,
    start: number,
  ) {
    this.pos = start;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw new NeedMore();
  }
  u8(): number {
    this.need(1);
    return this.buf[this.pos++] as number;
  }
  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }
  i8(): number {
    this.need(1);
    const v = this.view.getInt8(this.pos);
    this.pos += 1;
    return v;
  }
  i16(): number {
    this.need(2);
    const v = this.view.getInt16(this.pos);
    this.pos += 2;
    return v;
  }
  i32(): number {
    this.need(4);
    const v = this.view.getInt32(this.pos);
    this.pos += 4;
    return v;
  }
  u64(): number {
    this.need(8);
    const v = this.view.getBigUint64(this.pos);
    this.pos += 8;
    return Number(v);
  }
  i64(): number {
    this.need(8);
    const v = this.view.getBigInt64(this.pos);
    this.pos += 8;
    return Number(v);
  }
  f32(): number {
    this.need(4);
    const v = this.view.getFloat32(this.pos);
    this.pos += 4;
    return v;
  }
  f64(): number {
    this.need(8);
    const v = this.view.getFloat64(this.pos);
    this.pos += 8;
    return v;
  }
  bytes(n: number): Uint8Array {
    this.need(n);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  str(n: number): string {
    return textDecoder.decode(this.bytes(n));
  }
}

function readValue(r: Reader, depth: number): unknown {
  if (depth > 100) throw new MsgpackError('object nested too deeply');
  const b = r.u8();
  if (b < 0x80) return b;
  if (b >= 0xe0) return b - 0x100;
  if ((b & 0xf0) === 0x80) return readMap(r, b & 0x0f, depth);
  if ((b & 0xf0) === 0x90) return readArray(r, b & 0x0f, depth);
  if ((b & 0xe0) === 0xa0) return r.str(b & 0x1f);
  switch (b) {
    case 0xc0:
      return null;
    case 0xc2:
      return false;
    case 0xc3:
      return true;
    case 0xc4:
      return Buffer.from(r.bytes(r.u8()));
    case 0xc5:
      return Buffer.from(r.bytes(r.u16()));
    case 0xc6:
      return Buffer.from(r.bytes(r.u32()));
    case 0xca:
      return r.f32();
    case 0xcb:
      return r.f64();
    case 0xcc:
      return r.u8();
    case 0xcd:
      return r.u16();
    case 0xce:
      return r.u32();
    case 0xcf:
      return r.u64();
    case 0xd0:
      return r.i8();
    case 0xd1:
      return r.i16();
    case 0xd2:
      return r.i32();
    case 0xd3:
      return r.i64();
    case 0xd9:
      return r.str(r.u8());
    case 0xda:
      return r.str(r.u16());
    case 0xdb:
      return r.str(r.u32());
    case 0xdc:
      return readArray(r, r.u16(), depth);
    case 0xdd:
      return readArray(r, r.u32(), depth);
    case 0xde:
      return readMap(r, r.u16(), depth);
    case 0xdf:
      return readMap(r, r.u32(), depth);
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
    case 0xc7:
    case 0xc8:
    case 0xc9:
      throw new MsgpackError(`msgpack ext type 0x${b.toString(16)} is not used by Kong`);
    default:
      throw new MsgpackError(`invalid msgpack type byte 0x${b.toString(16)}`);
  }
}

function readArray(r: Reader, n: number, depth: number): unknown[] {
  const out: unknown[] = [];
  for (let i = 0; i < n; i++) out.push(readValue(r, depth + 1));
  return out;
}

function readMap(r: Reader, n: number, depth: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) {
    const key = readValue(r, depth + 1);
    const value = readValue(r, depth + 1);
    out[String(key)] = value;
  }
  return out;
}

/** Decodes exactly one object; throws if the buffer holds less or more. */
export function decode(buf: Uint8Array): unknown {
  const r = new Reader(buf, 0);
  let v: unknown;
  try {
    v = readValue(r, 0);
  } catch (err) {
    if (err instanceof NeedMore) throw new MsgpackError('insufficient data');
    throw err;
  }
  if (r.pos !== buf.length) throw new MsgpackError(`${buf.length - r.pos} extra byte(s) after the object`);
  return v;
}

/**
 * Incremental decoder for a byte stream of back-to-back msgpack objects.
 * `push(chunk)` returns every object completed by that chunk, in order.
 */
export class StreamDecoder {
  private pending: Buffer = Buffer.alloc(0);

  push(chunk: Uint8Array): unknown[] {
    this.pending = this.pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.pending, chunk]);
    const out: unknown[] = [];
    let start = 0;
    while (start < this.pending.length) {
      const r = new Reader(this.pending, start);
      try {
        out.push(readValue(r, 0));
      } catch (err) {
        if (err instanceof NeedMore) break;
        throw err;
      }
      start = r.pos;
    }
    this.pending = this.pending.subarray(start);
    return out;
  }

  /** Bytes received but not yet part of a complete object. */
  get buffered(): number {
    return this.pending.length;
  }
}
