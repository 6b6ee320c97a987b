import { describe, expect, it } from 'vitest';
import { luaFind, luaMatches } from '../harness/lua-pattern.js';

// Expected values are what Lua 5.1 / LuaJIT's string.find / string.match give.
const cases: Array<[string, string, boolean]> = [
  ['sticky_session', '^[%w%-_]+$', true],
  ['sticky-session.v2', '^[%w%-_%.]+$', true],
  ['bad name', '^[%w%-_]+$', false],
  ['', '^[%w%-_]+$', false],
  ['abc', 'b', true],
  ['abc', '^b', false],
  ['abc', 'c$', true],
  ['abc$', 'c%$$', true],
  ['a.b', '^a%.b$', true],
  ['axb', '^a%.b$', false],
  ['axb', '^a.b$', true],
  ['2024', '^%d%d%d%d$', true],
  ['20x4', '^%d+$', false],
  ['  x', '^%s*x$', true],
  ['x', '^%s+x$', false],
  ['.example.com', '^%.?[%w%-%.]+$', true],
  ['example.com', '^%.?[%w%-%.]+$', true],
  ['ex ample.com', '^%.?[%w%-%.]+$', false],
  ['aaa', '^a-$', true],
  ['aaab', '^a-b$', true],
  ['b', '^a?b$', true],
  ['ab', '^a?b$', true],
  ['aab', '^a?b$', false],
  ['abc', '^[^x]+$', true],
  ['axc', '^[^x]+$', false],
  ['a]b', '^a[]]b$', true],
  ['ABC', '^%u+$', true],
  ['AbC', '^%u+$', false],
  ['AbC', '^%a+$', true],
  ['f00d', '^%x+$', true],
  ['f00g', '^%x+$', false],
  ['x=(a(b)c)', '%b()', true],
  ['x=(a(bc', '%b()', false],
  ['THE (quick) fox', '%f[%a]%a+', true],
  ['abab', '^(ab)%1$', true],
  ['abac', '^(ab)%1$', false],
  ['key=', '^()key=()$', true],
  ['é', '^..$', true], // two bytes in UTF-8
  ['é', '^%a+$', false], // not a C-locale letter
  ['hello', '', true],
];

describe('Lua patterns', () => {
  it.each(cases)('%j:match(%j) is %s', (s, p, expected) => {
    expect(luaMatches(s, p)).toBe(expected);
  });

  it('reports where the first match is, like string.find', () => {
    expect(luaFind('xxabbb', 'ab+')).toEqual({ start: 2, end: 6 });
    expect(luaFind('xxabbb', 'ab-')).toEqual({ start: 2, end: 3 });
    expect(luaFind('abc', 'z')).toBeNull();
  });

  it('refuses malformed patterns as Lua does', () => {
    expect(() => luaMatches('a', '[a')).toThrow(/missing '\]'/);
    expect(() => luaMatches('a', 'a%')).toThrow(/ends with '%'/);
  });
});
