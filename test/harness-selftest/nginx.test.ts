import { describe, expect, it } from 'vitest';
import { cookieVar, headerList, httpVar, kongGetHeader, normalizePath, reqGetHeaders } from '../harness/nginx.js';

const cookies = (...values: string[]) => headerList({ Cookie: values });

describe('$cookie_<name> (nginx 1.25, as in Kong 3.9)', () => {
  it.each([
    [['a=1; sticky=abc'], 'sticky', 'abc'],
    [['sticky=abc; a=1'], 'sticky', 'abc'],
    [['sticky=first; sticky=second'], 'sticky', 'first'],
    [['a=1', 'sticky=from-second-header'], 'sticky', 'from-second-header'],
    [['sticky=h1', 'sticky=h2'], 'sticky', 'h1'],
    [['STICKY=upper'], 'sticky', 'upper'],
    [['sticky=v'], 'STICKY', 'v'],
    [['stickyx=1; sticky=2'], 'sticky', '2'],
    [['xsticky=1; sticky=2'], 'sticky', '2'],
    [['sticky =spaced'], 'sticky', 'spaced'],
    [['sticky= v ;b=1'], 'sticky', 'v '],
    [['a=1, sticky=after-comma'], 'sticky', 'after-comma'],
    [['sticky=a,b; c=d'], 'sticky', 'a,b'],
    [['sticky='], 'sticky', ''],
    [['sticky'], 'sticky', null],
    [['a=1'], 'sticky', null],
    [[], 'sticky', null],
  ])('%j -> $cookie_%s = %j', (values, name, expected) => {
    expect(cookieVar(cookies(...(values as string[])), name as string)).toBe(expected);
  });

  it('ignores headers other than Cookie', () => {
    expect(cookieVar(headerList({ 'X-Cookie': 'sticky=1', 'Set-Cookie': 'sticky=2' }), 'sticky')).toBeNull();
  });
});

describe('$http_<name> and kong.request.get_header', () => {
  const h = headerList({ Cookie: ['a=1', 'b=2'], 'X-Forwarded-For': ['1.1.1.1', '2.2.2.2'], 'X-One': 'v, w', Host: 'Example.COM:8000' });

  it('joins repeated lines: "; " for Cookie, ", " for others (nginx >= 1.23)', () => {
    expect(httpVar(h, 'cookie')).toBe('a=1; b=2');
    expect(httpVar(h, 'x_forwarded_for')).toBe('1.1.1.1, 2.2.2.2');
    expect(httpVar(h, 'x_missing')).toBeNull();
  });

  it('get_header returns the joined Cookie, the first of other repeated headers, a single value whole', () => {
    expect(kongGetHeader(h, 'cookie')).toBe('a=1; b=2');
    expect(kongGetHeader(h, 'Cookie')).toBe('a=1; b=2');
    expect(kongGetHeader(h, 'x-forwarded-for')).toBe('1.1.1.1');
    expect(kongGetHeader(h, 'X_Forwarded_For')).toBe('1.1.1.1');
    expect(kongGetHeader(h, 'x-one')).toBe('v, w');
    expect(kongGetHeader(h, 'x-none')).toBeNull();
  });

  it('get_headers lower-cases names and lists repeated values', () => {
    expect(reqGetHeaders(h)).toEqual({
      cookie: ['a=1', 'b=2'],
      'x-forwarded-for': ['1.1.1.1', '2.2.2.2'],
      'x-one': 'v, w',
      host: 'Example.COM:8000',
    });
  });
});

describe('kong.request.get_path normalization', () => {
  it.each([
    ['/a/b', '/a/b'],
    ['/a//b', '/a/b'],
    ['/a/./b', '/a/b'],
    ['/a/../b', '/b'],
    ['/%61%2fb', '/a%2Fb'],
    ['/a/b/..', '/a/'],
  ])('%s -> %s', (raw, expected) => {
    expect(normalizePath(raw)).toBe(expected);
  });
});
