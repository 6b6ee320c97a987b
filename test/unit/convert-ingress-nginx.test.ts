import { describe, expect, it } from 'vitest';
import { convert, DEFAULT_OPTIONS, type ConvertOptions, type Report } from '../../src/convert/index.js';
import { commonPath, INGRESS_NGINX_SAMESITE_NONE_EXEMPT } from '../../src/convert/ingress-nginx.js';
import { convertedProblems, failoverConfigProblems, SCHEMA_HAS_LEGACY_COOKIES, TEST_SECRETS } from '../manifests/converted.js';
import { pluginConfigProblems } from '../manifests/validate.js';

type Obj = Record<string, unknown>;
const P = 'nginx.ingress.kubernetes.io';

function ingress(annotations: Record<string, string>, paths: string[] = ['/'], extra: Obj = {}): Obj {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name: 'web', namespace: 'shop', annotations },
    spec: {
      ingressClassName: 'nginx',
      rules: [
        {
          host: 'shop.example.com',
          http: { paths: paths.map((path) => ({ path, pathType: 'Prefix', backend: { service: { name: 'web', port: { number: 80 } } } })) },
        },
      ],
      ...extra,
    },
  };
}

function run(docs: unknown[], options: Partial<ConvertOptions> = {}) {
  const result = convert(docs, { ...DEFAULT_OPTIONS, ...options });
  const plugins = result.documents.filter((d) => (d as Obj).kind === 'KongPlugin') as Obj[];
  const config = (plugins[0]?.config ?? {}) as Obj;
  const find = (field: string): Report[] => result.reports.filter((r) => r.field === `${P}/${field}` || r.field === field);
  return { result, plugins, config, find };
}

describe('ingress-nginx cookie affinity', () => {
  it('maps the documented example: name, Max-Age over Expires, HttpOnly, legacy cookie, plugin on the Ingress', () => {
    const { result, plugins, config, find } = run([
      ingress({ [`${P}/affinity`]: 'cookie', [`${P}/session-cookie-name`]: 'route', [`${P}/session-cookie-expires`]: '172800', [`${P}/session-cookie-max-age`]: '172800' }),
    ]);
    expect(plugins).toHaveLength(1);
    expect(config).toEqual({
      transport: 'cookie',
      cookie_name: 'route',
      cookie_path: '/',
      cookie_http_only: true,
      cookie_max_age: 172800,
      balancer: 'least-sessions',
      accept_legacy_cookies: [{ format: 'ingress-nginx', mode: 'balanced', name: 'route' }],
    });
    const out = result.documents[1] as Obj;
    expect((out.metadata as Obj).annotations).toMatchObject({ 'konghq.com/plugins': 'web-sticky-session', [`${P}/affinity`]: 'cookie' });
    expect(find('affinity-mode')[0]?.level).toBe('differs');
    expect(find('session-cookie-samesite')[0]?.message).toMatch(/no SameSite/);
    expect(result.reports.filter((r) => r.level === 'unmapped')).toEqual([]);
    for (const d of result.documents) expect(convertedProblems(d)).toEqual([]);
  });

  it('defaults the cookie name to INGRESSCOOKIE and the path to the Ingress path', () => {
    const { config, find } = run([ingress({ [`${P}/affinity`]: 'cookie' }, ['/app'])]);
    expect(config.cookie_name).toBe('INGRESSCOOKIE');
    expect(config.cookie_path).toBe('/app');
    expect(config.cookie_max_age).toBeUndefined(); // a browser-session cookie, as in ingress-nginx
    expect(config.accept_legacy_cookies).toEqual([{ format: 'ingress-nginx', mode: 'balanced', name: 'INGRESSCOOKIE' }]);
    expect(find('session-cookie-path')[0]?.message).toMatch(/Path=\/app/);
  });

  it('several paths: their common prefix, reported; regex paths: "/"', () => {
    expect(run([ingress({ [`${P}/affinity`]: 'cookie' }, ['/shop/cart', '/shop/pay'])]).config.cookie_path).toBe('/shop');
    expect(run([ingress({ [`${P}/affinity`]: 'cookie' }, ['/a', '/b'])]).config.cookie_path).toBe('/');
    const regex = run([ingress({ [`${P}/affinity`]: 'cookie', [`${P}/use-regex`]: 'true' }, ['/api/v[0-9]+'])]);
    expect(regex.config.cookie_path).toBe('/');
    expect(regex.find('session-cookie-path')[0]?.message).toMatch(/regular-expression/);
    expect(commonPath(['/a/b/c', '/a/b', '/a/bc'])).toBe('/a');
  });

  it('SameSite=None with conditional-samesite-none: the user agents ingress-nginx exempts', () => {
    const { config } = run([
      ingress({ [`${P}/affinity`]: 'cookie', [`${P}/session-cookie-samesite`]: 'None', [`${P}/session-cookie-conditional-samesite-none`]: 'true', [`${P}/session-cookie-secure`]: 'true' }),
    ]);
    expect(config.cookie_same_site).toBe('None');
    expect(config.cookie_secure).toBe(true);
    expect(config.cookie_same_site_none_exempt_user_agents).toEqual(INGRESS_NGINX_SAMESITE_NONE_EXEMPT);
    const exempt = INGRESS_NGINX_SAMESITE_NONE_EXEMPT.map((p) => new RegExp(p));
    const isExempt = (ua: string): boolean => exempt.some((r) => r.test(ua));
    // util/same_site.lua: Chrome 40-69, iOS 12, Safari on macOS 10.14 (not Chrome there).
    expect(isExempt('Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/66.0.3359.181 Safari/537.36')).toBe(true);
    expect(isExempt('Mozilla/5.0 (iPhone; CPU iPhone OS 12_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/12.0 Mobile/15E148 Safari/604.1')).toBe(true);
    expect(isExempt('Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/12.1.2 Safari/605.1.15')).toBe(true);
    expect(isExempt('Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_6) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36')).toBe(false);
    expect(isExempt('Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36')).toBe(false);
  });

  it('conditional-samesite-none without SameSite None is reported as without effect, not mapped', () => {
    const { config, find } = run([ingress({ [`${P}/affinity`]: 'cookie', [`${P}/session-cookie-samesite`]: 'Strict', [`${P}/session-cookie-conditional-samesite-none`]: 'true' })]);
    expect(config.cookie_same_site).toBe('Strict');
    expect(config.cookie_same_site_none_exempt_user_agents).toBeUndefined();
    expect(find('session-cookie-conditional-samesite-none')[0]?.level).toBe('ignored');
  });

  it('secure "false" and unset both leave cookie_secure unset (Secure on HTTPS), as ingress-nginx does', () => {
    expect(run([ingress({ [`${P}/affinity`]: 'cookie', [`${P}/session-cookie-secure`]: 'false' })]).config).not.toHaveProperty('cookie_secure');
    expect(run([ingress({ [`${P}/affinity`]: 'cookie' })]).config).not.toHaveProperty('cookie_secure');
  });

  it('expires alone is sent as Max-Age; 0 or negative is unmapped; more than a year is capped', () => {
    const expires = run([ingress({ [`${P}/affinity`]: 'cookie', [`${P}/session-cookie-expires`]: '3600' })]);
    expect(expires.config.cookie_max_age).toBe(3600);
    expect(expires.find('session-cookie-expires')[0]?.message).toMatch(/Max-Age/);
    const zero = run([ingress({ [`${P}/affinity`]: 'cookie', [`${P}/session-cookie-max-age`]: '0' })]);
    expect(zero.config.cookie_max_age).toBeUndefined();
    expect(zero.find('session-cookie-max-age')[0]?.level).toBe('unmapped');
    expect(run([ingress({ [`${P}/affinity`]: 'cookie', [`${P}/session-cookie-max-age`]: '99999999' })]).config.cookie_max_age).toBe(31_536_000);
    expect(run([ingress({ [`${P}/affinity`]: 'cookie', [`${P}/session-cookie-max-age`]: 'soon' })]).find('session-cookie-max-age')[0]?.level).toBe('ignored');
  });

  it('persistent mode, change on failure, canary behaviour, domain', () => {
    const { result, config, find } = run([
      ingress({
        [`${P}/affinity`]: 'cookie',
        [`${P}/affinity-mode`]: 'persistent',
        [`${P}/session-cookie-change-on-failure`]: 'true',
        [`${P}/affinity-canary-behavior`]: 'sticky',
        [`${P}/session-cookie-domain`]: '.example.com',
      }),
    ]);
    // The salt ingress-nginx used, written out: the plugin under KIC would derive it from a port number.
    expect(config.accept_legacy_cookies).toEqual([{ format: 'ingress-nginx', mode: 'persistent', name: 'INGRESSCOOKIE', backend: 'shop-web-80' }]);
    expect(config.change_on_failure).toBe(true);
    expect(config.cookie_domain).toBe('.example.com');
    expect(find('affinity-canary-behavior')[0]?.level).toBe('unmapped');
    expect(result.reports.some((r) => r.level === 'action' && /plugins-failover/.test(r.message))).toBe(true);
    // Why the report says so: only the plugins-failover/ schema has the field.
    const withSecrets = { ...config, secrets: TEST_SECRETS };
    if (!SCHEMA_HAS_LEGACY_COOKIES) delete (withSecrets as Obj).accept_legacy_cookies;
    expect(pluginConfigProblems(withSecrets)).toEqual([expect.stringMatching(/change_on_failure: unknown field/)]);
    expect(failoverConfigProblems(withSecrets)).toEqual([]);
  });

  it('--no-legacy-cookies leaves accept_legacy_cookies out and says what that costs', () => {
    const { config, result } = run([ingress({ [`${P}/affinity`]: 'cookie' })], { legacyCookies: false });
    expect(config).not.toHaveProperty('accept_legacy_cookies');
    expect(result.reports.some((r) => /new session/.test(r.message))).toBe(true);
  });

  it('upstream-hash-by: a cookie hash becomes our own cookie (never the application\'s); other keys are unmapped', () => {
    const cookie = run([ingress({ [`${P}/upstream-hash-by`]: '$cookie_JSESSIONID' })]);
    expect(cookie.config.cookie_name).toBe('sticky_session');
    expect(cookie.config).not.toHaveProperty('accept_legacy_cookies');
    const ip = run([ingress({ [`${P}/upstream-hash-by`]: '$binary_remote_addr' })]);
    expect(ip.plugins).toEqual([]);
    expect(ip.find('upstream-hash-by')[0]?.level).toBe('unmapped');
    const both = run([ingress({ [`${P}/affinity`]: 'cookie', [`${P}/upstream-hash-by`]: '$request_uri' })]);
    expect(both.config.cookie_name).toBe('INGRESSCOOKIE');
    expect(both.find('upstream-hash-by')[0]?.level).toBe('ignored');
  });

  it('reports every affinity annotation it does not carry, and unknown session-cookie-* ones', () => {
    const { result } = run([ingress({ [`${P}/session-cookie-name`]: 'x', [`${P}/session-cookie-hash`]: 'sha1', [`${P}/rewrite-target`]: '/' })]);
    expect(result.converted).toBe(0);
    expect(result.reports.map((r) => [r.level, r.field])).toEqual([
      ['ignored', `${P}/session-cookie-name`],
      ['unmapped', `${P}/session-cookie-hash`],
    ]);
  });

  it('--ingress-class sets ingressClassName and removes the legacy class annotation the API server refuses beside it', () => {
    const doc = ingress({ [`${P}/affinity`]: 'cookie', 'kubernetes.io/ingress.class': 'nginx' });
    delete (doc.spec as Obj).ingressClassName;
    const { result } = run([doc], { ingressClass: 'kong' });
    const out = result.documents[1] as Obj;
    expect((out.spec as Obj).ingressClassName).toBe('kong');
    expect((out.metadata as Obj).annotations).not.toHaveProperty('kubernetes.io/ingress.class');
    expect(doc.metadata).toHaveProperty(['annotations', 'kubernetes.io/ingress.class']); // input untouched
  });

  it('appends to an existing konghq.com/plugins list once, and never reuses a KongPlugin name of the input', () => {
    const doc = ingress({ [`${P}/affinity`]: 'cookie', 'konghq.com/plugins': 'cors, web-sticky-session' });
    const taken = { apiVersion: 'configuration.konghq.com/v1', kind: 'KongPlugin', metadata: { name: 'web-sticky-session', namespace: 'shop' }, plugin: 'cors' };
    const { result, plugins } = run([taken, doc]);
    expect((plugins[0]?.metadata as Obj).name).toBe('web-sticky-session-2'); // plugins[1] is the input's
    expect(((result.documents[2] as Obj).metadata as Obj).annotations).toMatchObject({ 'konghq.com/plugins': 'cors,web-sticky-session,web-sticky-session-2' });
  });

  it('a custom annotation prefix', () => {
    const { plugins } = run([ingress({ 'custom.io/affinity': 'cookie' })], { annotationPrefix: 'custom.io' });
    expect(plugins).toHaveLength(1);
  });
});

describe('ingress-nginx: a copy for Kong next to the original', () => {
  it('--name-suffix writes the converted Ingress under a new name; the KongPlugin keeps the original\'s', () => {
    const result = convert([ingress({ [`${P}/affinity`]: 'cookie' })], { ...DEFAULT_OPTIONS, ingressClass: 'kong', nameSuffix: '-kong' });
    const [plugin, out] = result.documents as Obj[];
    expect((out?.metadata as Obj).name).toBe('web-kong');
    expect((out?.spec as Obj).ingressClassName).toBe('kong');
    expect((plugin?.metadata as Obj).name).toBe('web-sticky-session');
    expect(result.reports.find((r) => r.field === 'metadata.name')?.message).toMatch(/web stays as it is/);
  });
});

describe('ingress-nginx: backend ports', () => {
  it('a multi-port Service in the input reached by number: the backend names the port instead', () => {
    const svc = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'shop' }, spec: { ports: [{ name: 'http', port: 80, targetPort: 8080 }, { name: 'admin', port: 81 }] } };
    const result = convert([svc, ingress({ [`${P}/affinity`]: 'cookie' })], DEFAULT_OPTIONS);
    const out = result.documents[2] as Obj;
    expect(JSON.stringify(out.spec)).toContain('"port":{"name":"http"}');
    expect(result.reports.find((r) => r.field.endsWith('.service.port'))?.level).toBe('differs');
    // A single-port Service, or one not in the input: left as it is.
    const single = { ...svc, spec: { ports: [{ name: 'http', port: 80, targetPort: 8080 }] } };
    expect(JSON.stringify((convert([single, ingress({ [`${P}/affinity`]: 'cookie' })], DEFAULT_OPTIONS).documents[2] as Obj).spec)).toContain('"number":80');
    const absent = convert([ingress({ [`${P}/affinity`]: 'cookie' })], DEFAULT_OPTIONS);
    expect(JSON.stringify((absent.documents[1] as Obj).spec)).toContain('"number":80');
    expect(absent.reports.find((r) => r.field.endsWith('.service.port'))?.message).toMatch(/not in the input: if it has several ports/);
  });
});

describe('ingress-nginx: several backends on one Ingress', () => {
  it('is converted, with the cost of one token per Kong route reported', () => {
    const doc = ingress({ [`${P}/affinity`]: 'cookie' }, ['/']);
    const paths = ((((doc.spec as Obj).rules as Obj[])[0]?.http as Obj).paths as Obj[]);
    paths.push({ path: '/api', pathType: 'Prefix', backend: { service: { name: 'api', port: { number: 8080 } } } });
    const result = convert([doc], DEFAULT_OPTIONS);
    expect(result.converted).toBe(1);
    expect(result.reports.find((r) => r.field === 'spec.rules')?.message).toMatch(/^2 backends \(web:80, api:8080\)/);
    // One backend, several paths: no such report.
    expect(convert([ingress({ [`${P}/affinity`]: 'cookie' }, ['/a', '/b'])], DEFAULT_OPTIONS).reports.some((r) => r.field === 'spec.rules')).toBe(false);
  });
});

describe('ingress-nginx: --attach service', () => {
  const svc = (name: string): Obj => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'shop' }, spec: { ports: [{ name: 'http', port: 80 }] } });
  function twoBackends(annotations: Record<string, string>): Obj {
    const doc = ingress(annotations, ['/', '/shop']);
    const paths = (((doc.spec as Obj).rules as Obj[])[0]?.http as Obj).paths as Obj[];
    paths.push({ path: '/api', pathType: 'Prefix', backend: { service: { name: 'api', port: { number: 80 } } } });
    return doc;
  }

  it('a KongPlugin per backend Service, naming it, with the cookie path of its own paths; the Ingress untouched', () => {
    const doc = twoBackends({ [`${P}/affinity`]: 'cookie' });
    const result = convert([svc('web'), doc], { ...DEFAULT_OPTIONS, attach: 'service' });
    const plugins = result.documents.filter((d) => (d as Obj).kind === 'KongPlugin') as Obj[];
    expect(plugins.map((p) => [(p.metadata as Obj).name, (p.config as Obj).cookie_path, (p.config as Obj).kubernetes_service, (p.config as Obj).cookie_name])).toEqual([
      ['web-sticky-session', '/', 'web', 'INGRESSCOOKIE'],
      ['api-sticky-session', '/api', 'api', 'INGRESSCOOKIE'],
    ]);
    expect(((result.documents[2] as Obj).metadata as Obj).annotations).toEqual({ 'konghq.com/plugins': 'web-sticky-session' });
    expect(result.documents[3]).toBe(doc); // no class asked: the Ingress goes out as read
    expect(result.reports.find((r) => r.level === 'action' && r.field === 'service api')?.message).toMatch(/kubectl -n shop annotate service api konghq.com\/plugins=api-sticky-session/);
    for (const d of result.documents) expect(convertedProblems(d)).toEqual([]);
  });

  it('two backends with the same cookie path get cookie names of their own; the legacy name stays', () => {
    const result = convert([twoBackends({ [`${P}/affinity`]: 'cookie', [`${P}/session-cookie-path`]: '/' })], { ...DEFAULT_OPTIONS, attach: 'service' });
    const configs = result.documents.filter((d) => (d as Obj).kind === 'KongPlugin').map((p) => (p as Obj).config as Obj);
    expect(configs.map((c) => c.cookie_name)).toEqual(['INGRESSCOOKIE-web', 'INGRESSCOOKIE-api']);
    expect(configs.map((c) => c.accept_legacy_cookies)).toEqual([
      [{ format: 'ingress-nginx', mode: 'balanced', name: 'INGRESSCOOKIE' }],
      [{ format: 'ingress-nginx', mode: 'balanced', name: 'INGRESSCOOKIE' }],
    ]);
  });

  it('a Service reached from two sources with other settings is a conflict; with the same settings one plugin', () => {
    const a = ingress({ [`${P}/affinity`]: 'cookie', [`${P}/session-cookie-name`]: 'a' });
    const b = { ...ingress({ [`${P}/affinity`]: 'cookie', [`${P}/session-cookie-name`]: 'b' }), metadata: { name: 'other', namespace: 'shop', annotations: { [`${P}/affinity`]: 'cookie', [`${P}/session-cookie-name`]: 'b' } } };
    const conflict = convert([svc('web'), a, b], { ...DEFAULT_OPTIONS, attach: 'service' });
    expect(conflict.documents.filter((d) => (d as Obj).kind === 'KongPlugin')).toHaveLength(1);
    expect(conflict.reports.find((r) => r.level === 'unmapped')).toMatchObject({ source: 'Ingress shop/other', field: 'service web' });
    const same = convert([svc('web'), a, { ...a, metadata: { ...(a.metadata as Obj), name: 'twin' } }], { ...DEFAULT_OPTIONS, attach: 'service' });
    expect(same.documents.filter((d) => (d as Obj).kind === 'KongPlugin')).toHaveLength(1);
    expect(same.reports.filter((r) => r.level === 'unmapped')).toEqual([]);
    expect(((same.documents[1] as Obj).metadata as Obj).annotations).toEqual({ 'konghq.com/plugins': 'web-sticky-session' });
  });
});
