import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { decode, EMPTY_MAP, encode, END, MsgpackError, MsgpackReader } from '../harness/msgpack.js';

// The codec the plugin server itself uses, resolved from kong-pdk's own dependencies.
const require = createRequire(import.meta.url);
const requireFromPdk = createRequire(require.resolve('kong-pdk/server.js'));
const reference = requireFromPdk('@msgpack/msgpack') as {
  encode(v: unknown): Uint8Array;
  decode(b: Uint8Array): unknown;
};

const majorOf = (pkgJson: string): string => (JSON.parse(readFileSync(pkgJson, 'utf8')) as { version: string }).version.split('.')[0] as string;

const bytes = (v: unknown): number[] => [...encode(v)];

const samples: unknown[] = [
  null,
  true,
  false,
  0,
  1,
  127,
  128,
  65536,
  2 ** 32,
  -1,
  -33,
  -(2 ** 31) - 1,
  0.5,
  -1.25,
  '',
  'x'.repeat(32),
  'x'.repeat(70000),
  'héllo ✓ 🎉',
  [1, 'two', [3, null], { four: 4 }],
  Array.from({ length: 70000 }, (_, i) => i % 7),
  Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, i])),
  [0, 3, 'plugin.HandleEvent', [{ InstanceId: 0, EventName: 'access' }]],
];

async function readAll(reader: MsgpackReader): Promise<unknown[]> {
  const out: unknown[] = [];
  for (;;) {
    const v = await reader.next();
    if (v === END) return out;
    out.push(v);
  }
}

describe('msgpack codec', () => {
  it('is the plugin server\'s own codec: @msgpack/msgpack of the major version kong-pdk uses', () => {
    const ours = require.resolve('@msgpack/msgpack/package.json');
    const pdks = requireFromPdk.resolve('@msgpack/msgpack/package.json');
    expect(majorOf(ours)).toBe(majorOf(pdks));
  });

  it('round-trips with the plugin server: what Kong sends decodes to the same value there', () => {
    for (const v of samples) {
      expect(reference.decode(encode(v)), JSON.stringify(v)?.slice(0, 60)).toEqual(v);
      expect(decode(reference.encode(v))).toEqual(v);
    }
  });

  it('packs like Lua: nil map entries vanish, empty tables are arrays, EMPTY_MAP is a map', () => {
    expect(reference.decode(encode({ EventId: 3, Data: undefined }))).toEqual({ EventId: 3 });
    expect(reference.decode(encode({ EventId: 3, Data: null }))).toEqual({ EventId: 3 });
    expect(reference.decode(encode(new Map([['a', 1], ['b', null]])))).toEqual({ a: 1 });
    expect(bytes({})).toEqual([0x90]);
    expect(bytes({ only: null })).toEqual([0x90]);
    expect(reference.decode(encode({ a: {}, b: [{}] }))).toEqual({ a: [], b: [[]] });
    expect(bytes(EMPTY_MAP)).toEqual([0x80]);
    expect(reference.decode(encode({ h: EMPTY_MAP }))).toEqual({ h: {} });
    // in an array, null stays a nil element (ngx.null packs as nil)
    expect(bytes([1, null, 3])).toEqual([0x93, 0x01, 0xc0, 0x03]);
  });

  it('packs numbers like lua-MessagePack: integers unsigned when positive, else float64; -0 is 0', () => {
    expect(bytes(8080)).toEqual([0xcd, 0x1f, 0x90]);
    expect(bytes(200)).toEqual([0xcc, 200]);
    expect(bytes(-1)).toEqual([0xff]);
    expect(bytes(-200)).toEqual([0xd1, 0xff, 0x38]);
    expect(bytes(-0)).toEqual([0x00]);
    expect(encode(8080.5)[0]).toBe(0xcb);
    expect(encode(Number.NaN)[0]).toBe(0xcb);
  });

  it('packs strings as str and bytes as bin (fix_raw); refuses what Lua has no value for', () => {
    expect(encode('abc')[0]).toBe(0xa3);
    const bin = encode(Buffer.from([1, 2, 3]));
    expect([...bin]).toEqual([0xc4, 3, 1, 2, 3]);
    const back = reference.decode(bin);
    expect(back).toBeInstanceOf(Uint8Array);
    expect([...(back as Uint8Array)]).toEqual([1, 2, 3]);
    expect(() => encode(() => 1)).toThrow(MsgpackError);
    expect(() => encode(Symbol('x'))).toThrow(MsgpackError);
  });

  it('refuses ext types, which Kong and kong-pdk never exchange', () => {
    expect(() => decode(reference.encode(new Date(0)))).toThrow(/ext type -1 is not used by Kong/);
  });

  it('refuses one-shot decoding of trailing bytes (what crashes the JS listener)', () => {
    const two = Buffer.concat([encode([0, 1, 'a', []]), encode([0, 2, 'b', []])]);
    expect(() => decode(two)).toThrow(/Extra \d+ of \d+ byte/);
    expect(() => reference.decode(two)).toThrow(/Extra/);
  });
});

describe('MsgpackReader (Kong\'s per-call unpacker)', () => {
  const objects = [
    [1, 1, null, { Name: 'floor', Id: 0, Config: { a: 'x'.repeat(300) }, StartTime: 1.5 }],
    [1, 2, 'no plugin instance #0', null],
    [1, 3, null, { Data: { Method: 'kong.nginx.get_var', Args: ['cookie_s'] }, EventId: 0 }],
  ];
  const stream = Buffer.concat(objects.map((o) => Buffer.from(reference.encode(o))));

  it('decodes back-to-back objects split at any chunk boundary', async () => {
    for (let cut1 = 0; cut1 <= stream.length; cut1 += 7) {
      for (const cut2 of [cut1, Math.min(stream.length, cut1 + 1), Math.min(stream.length, cut1 + 200)]) {
        const r = new MsgpackReader();
        r.push(stream.subarray(0, cut1));
        r.push(stream.subarray(cut1, cut2));
        r.push(stream.subarray(cut2));
        r.end();
        expect(await readAll(r)).toEqual(objects);
      }
    }
    const r = new MsgpackReader();
    for (const b of stream) r.push(Buffer.from([b]));
    r.end();
    expect(await readAll(r)).toEqual(objects);
  });

  it('yields an object as soon as its last byte came, and waits for the rest', async () => {
    const first = Buffer.from(reference.encode(objects[0]));
    const r = new MsgpackReader();
    r.push(first.subarray(0, 10));
    const pending = r.next();
    let settled = false;
    void pending.then(() => (settled = true));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(settled).toBe(false);
    r.push(first.subarray(10));
    expect(await pending).toEqual(objects[0]);
    expect(r.received).toBe(first.length);
  });

  it('ends without an object when the bytes stop inside one; the partial bytes are dropped', async () => {
    const r = new MsgpackReader();
    r.push(stream.subarray(0, 5));
    r.end();
    expect(await r.next()).toBe(END);
  });

  it('rejects bytes that are not msgpack', async () => {
    const r = new MsgpackReader();
    r.push(Buffer.from([0xc1]));
    await expect(r.next()).rejects.toThrow();
  });
});
