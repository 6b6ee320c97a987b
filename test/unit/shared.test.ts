import { describe, expect, it } from 'vitest';
import { SharedRegistry } from '../../src/shared.js';

/** A registry whose disposals are recorded, with objects that say which creation they are. */
function registry() {
  const disposed: Array<{ n: number }> = [];
  let created = 0;
  const reg = new SharedRegistry<{ n: number }>((v) => disposed.push(v));
  const create = () => ({ n: ++created });
  return { reg, disposed, create, created: () => created };
}

describe('SharedRegistry', () => {
  it('creates once per key and hands every holder the same value', () => {
    const { reg, create, created } = registry();
    const a = reg.acquire('k', create);
    const b = reg.acquire('k', create);
    expect(created()).toBe(1);
    expect(b.value).toBe(a.value);
    expect(reg.get('k')).toBe(a.value);
    const other = reg.acquire('other', create);
    expect(created()).toBe(2);
    expect(other.value).not.toBe(a.value);
    expect(reg.keys().sort()).toEqual(['k', 'other']);
  });

  it('disposes at the last release only, and forgets the key', () => {
    const { reg, disposed, create } = registry();
    const a = reg.acquire('k', create);
    const b = reg.acquire('k', create);
    a.release();
    expect(disposed).toEqual([]);
    expect(reg.get('k')).toBe(b.value);
    b.release();
    expect(disposed).toEqual([b.value]);
    expect(reg.get('k')).toBeUndefined();
    expect(reg.keys()).toEqual([]);
  });

  it('release is idempotent: a holder releasing twice does not release another holder', () => {
    const { reg, disposed, create } = registry();
    const a = reg.acquire('k', create);
    const b = reg.acquire('k', create);
    a.release();
    a.release();
    a.release();
    expect(disposed).toEqual([]);
    expect(reg.get('k')).toBe(b.value);
    b.release();
    b.release();
    expect(disposed).toHaveLength(1);
  });

  it('re-acquiring after dispose creates anew; a stale lease cannot dispose the new value', () => {
    const { reg, disposed, create, created } = registry();
    const first = reg.acquire('k', create);
    first.release();
    const second = reg.acquire('k', create);
    expect(created()).toBe(2);
    expect(second.value).not.toBe(first.value);
    expect(second.value.n).toBe(2);
    first.release();
    expect(reg.get('k')).toBe(second.value);
    expect(disposed).toEqual([first.value]);
    second.release();
    expect(disposed).toEqual([first.value, second.value]);
  });

  it('keys are independent', () => {
    const { reg, disposed, create } = registry();
    const a = reg.acquire('a', create);
    const b = reg.acquire('b', create);
    a.release();
    expect(disposed).toEqual([a.value]);
    expect(reg.get('b')).toBe(b.value);
  });

  it('a create that throws leaves nothing behind; the next acquire tries again', () => {
    const { reg, create, created } = registry();
    expect(() =>
      reg.acquire('k', () => {
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(reg.keys()).toEqual([]);
    const lease = reg.acquire('k', create);
    expect(created()).toBe(1);
    lease.release();
  });

  it('works without a dispose function', () => {
    const reg = new SharedRegistry<number>();
    const lease = reg.acquire('k', () => 42);
    expect(lease.value).toBe(42);
    lease.release();
    expect(reg.get('k')).toBeUndefined();
  });
});
