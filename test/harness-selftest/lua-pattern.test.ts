import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { LuaPatternError, luaFind, luaFindAll, luajitPid, luaMatches } from '../harness/lua-pattern.js';

// Expected values are what LuaJIT's string.find / string.match give (checked against the real
// luajit, through the adapter).
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
  ['a b', '^%g+$', false], // %g (printable except space): LuaJIT 2.1 has it
  ['a-b', '^%g+$', true],
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

  it('counts bytes, not characters', () => {
    expect(luaFind('héllo', 'l+')).toEqual({ start: 3, end: 5 });
    expect(luaFind('x\ny', '^x%sy$')).toEqual({ start: 0, end: 3 });
  });

  it('refuses malformed patterns with the error Lua raises', () => {
    expect(() => luaMatches('a', '[a')).toThrow(LuaPatternError);
    expect(() => luaMatches('a', '[a')).toThrow("malformed pattern (missing ']')");
    expect(() => luaMatches('a', 'a%')).toThrow("malformed pattern (ends with '%')");
    expect(() => luaMatches('aaa', '(a)%2')).toThrow('invalid capture index');
  });

  it('evaluates a batch in one luajit run, each pair on its own', () => {
    const pairs = cases.map(([s, p]) => [`batch:${s}`, p.replace(/^\^/, '^batch:')] as const);
    const got = luaFindAll([...pairs, ['a', '[a']]);
    expect(got.slice(0, -1).map((r) => r !== null)).toEqual(cases.map(([, , expected]) => expected));
    expect(got.at(-1)).toBeInstanceOf(LuaPatternError);
  });
});

describe('the luajit process', () => {
  /** Gone, or a zombie waiting for init: not running any more. */
  const running = (pid: number): boolean => {
    const stat = `/proc/${pid}/stat`;
    return existsSync(stat) && !/^\d+ \(.*\) Z/.test(readFileSync(stat, 'utf8'));
  };

  it('is one long-lived process for all checks', () => {
    luaMatches('one', 'o');
    const pid = luajitPid();
    expect(pid).toBeGreaterThan(0);
    luaMatches('two', 't');
    luaFindAll([['three', 't'], ['four', 'f']]);
    expect(luajitPid()).toBe(pid);
  });

  it.runIf(existsSync('/proc/self/stat'))('does not outlive the process that used it', async () => {
    const script = `import('./test/harness/lua-pattern.ts').then((m) => { m.luaMatches('a', 'a'); console.log(m.luajitPid()); });`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    const pid = Number(r.stdout.trim());
    expect(pid, r.stderr).toBeGreaterThan(0);
    // it ended by itself: neither the worker nor luajit keeps the process alive
    expect({ status: r.status, signal: r.signal }).toEqual({ status: 0, signal: null });
    for (let i = 0; i < 100 && running(pid); i++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(running(pid)).toBe(false);
  });
});

describe('without luajit', () => {
  const saved = process.env.LUAJIT;
  afterEach(() => {
    if (saved === undefined) delete process.env.LUAJIT;
    else process.env.LUAJIT = saved;
  });

  it('fails with a message that says how to install it', () => {
    process.env.LUAJIT = '/nonexistent/luajit';
    expect(() => luaMatches('never checked before', 'x')).toThrow(/\/nonexistent\/luajit not found.*apt-get install -y luajit/);
  });
});
