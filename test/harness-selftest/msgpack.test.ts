import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { decode, EMPTY_MAP, encode, StreamDecoder } from '../harness/msgpack.js';

// The codec the plugin server itself uses, resolved from kong-pdk's own dependencies.
const requireFromPdk = createRequire(createRequire(import.meta.url).resolve('kong-pdk/server.js'));
const reference = requireFromPdk('@msgpack/msgpack') as {
  encode(v: unknown): Uint8Array;
  decode(b: Uint8Array): unknown;
};

const samples: unknown[] = [
  null,
  true,
  false,
  0,
  1,
  127,
  128,
  255,
  256,
  65535,
  65536,
  2 ** 32 - 1,
  2 ** 32,
  2 ** 40,
  -1,
  -32,
  -33,
  -128,
  -129,
  -32768,
  -32769,
  -(2 ** 31),
  -(2 ** 31) - 1,
  -(2 ** 40),
  0.5,
  -1.25,
  8080.5,
  '',
  'a',
  'x'.repeat(31),
  'x'.repeat(32),
  'x'.repeat(255),
  'x'.repeat(256),
  'x'.repeat(70000),
  'héllo ✓ 🎉',
  [],
  [1, 'two', [3, null], { four: 4 }],
  Array.from({ length: 20 }, (_, i) => i),
  Array.from({ length: 70000 }, (_, i) => i % 7),
  { a: 1, b: 'two', c: [true, false] },
  Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, i])),
  [0, 3, 'plugin.HandleEvent', [{ InstanceId: 0, EventName: 'access' }]],
];

describe('msgpack codec', () => {
  it('decodes what @msgpack/msgpack (the plugin server) encodes, and the reverse', () => {
    for (const v of samples) {
      expect(decode(reference.encode(v)), JSON.stringify(v)?.slice(0, 60)).toEqual(v);
      const mine = encode(v);
      const back = reference.decode(mine);
      // an empty Lua table is packed as an empty array
      expect(back).toEqual(v);
    }
  });

  it('packs like Lua: nil map entries vanish, empty tables are arrays, EMPTY_MAP is a map', () => {
    expect(reference.decode(encode({ EventId: 3, Data: undefined }))).toEqual({ EventId: 3 });
    expect(reference.decode(encode({ EventId: 3, Data: null }))).toEqual({ EventId: 3 });
    expect(reference.decode(encode({}))).toEqual([]);
    expect(reference.decode(encode(EMPTY_MAP))).toEqual({});
    expect([...encode(8080)]).toEqual([0xcd, 0x1f, 0x90]);
    expect(encode(8080.5)[0]).toBe(0xcb);
  });

  it('decodes a stream of objects split at every possible chunk boundary', () => {
    const objects = [
      [1, 1, null, { Name: 'floor', Id: 0, Config: { a: 'x'.repeat(300) }, StartTime: 1.5 }],
      [1, 2, 'no plugin instance #0', null],
      [1, 3, null, { Data: { Method: 'kong.nginx.get_var', Args: ['cookie_s'] }, EventId: 0 }],
    ];
    const bytes = Buffer.concat(objects.map((o) => Buffer.from(reference.encode(o))));
    for (let cut1 = 0; cut1 <= bytes.length; cut1 += 7) {
      for (const cut2 of [cut1, Math.min(bytes.length, cut1 + 1), Math.min(bytes.length, cut1 + 200)]) {
        const d = new StreamDecoder();
        const got = [...d.push(bytes.subarray(0, cut1)), ...d.push(bytes.subarray(cut1, cut2)), ...d.push(bytes.subarray(cut2))];
        expect(got).toEqual(objects);
        expect(d.buffered).toBe(0);
      }
    }
    // byte by byte
    const d = new StreamDecoder();
    const got: unknown[] = [];
    for (const b of bytes) got.push(...d.push(Buffer.from([b])));
    expect(got).toEqual(objects);
  });

  it('refuses one-shot decoding of trailing bytes (what crashes the JS listener)', () => {
    const two = Buffer.concat([encode([0, 1, 'a', []]), encode([0, 2, 'b', []])]);
    expect(() => decode(two)).toThrow(/extra byte/);
    expect(() => reference.decode(two)).toThrow(/Extra/);
  });
});
