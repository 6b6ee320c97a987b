/**
 * PDK round trips per request for each row of the behaviour contract, counted on the
 * socket between the Kong emulator and the REAL plugin server (served as the image serves
 * it). A round trip is one request/response pair Kong makes for the access phase:
 * HandleEvent, then one Step per PDK call that waits for Kong's answer (kong.response.exit
 * does not wait). Static targets; the Kubernetes row uses a Service that never syncs.
 *
 *   npx tsx test/bench/round-trips.ts
 */
import { KongEmulator, type RequestResult } from '../harness/kong-emulator.js';
import { SECRET, SERVICE } from './proxy.js';
import { isMain, printTable } from './report.js';

const A = '192.0.2.10:8080';
const B = '192.0.2.11:8080';
const C = '192.0.2.12:8080';

export interface RoundTripRow {
  readonly row: string;
  readonly config: string;
  readonly roundTrips: number;
  readonly calls: string;
}

export async function countRoundTrips(): Promise<RoundTripRow[]> {
  const kong = await KongEmulator.start({ useDockerfile: true, workers: 1 });
  try {
    const base = { secrets: [SECRET], targets: [A, B, C] };
    const id = kong.addPlugin({ service: SERVICE.id, config: base }).id;
    const send = (cookie?: string, headers: Record<string, string> = {}) =>
      kong.request({ service: SERVICE, headers: { ...headers, ...(cookie ? { cookie } : {}) } }, { worker: 0, log: false });
    const cookieOf = (r: RequestResult) => r.responseHeaders['set-cookie']?.[0]?.split(';')[0];
    const targetOf = (r: RequestResult) => (r.target ? `${r.target.host}:${r.target.port}` : undefined);
    /** Applies a config, lets the new instance start, then measures one request. */
    const measure = async (config: Record<string, unknown>, cookie?: string, headers?: Record<string, string>): Promise<RequestResult> => {
      // PATCH semantics: every field a row may set is set back to its default first.
      const defaults = { cookie_secure: null, cookie_same_site: 'Lax', cookie_same_site_none_exempt_user_agents: null, strict: false, no_ready_endpoint: 'draining', transport: 'cookie' };
      kong.updatePlugin(id, { config: { ...defaults, ...config } });
      await send(); // StartInstance (+ CloseInstance of the previous one)
      return send(cookie, headers);
    };
    const rows: RoundTripRow[] = [];
    /** Records a row after checking the request took that row: where it went, whether a token was sent. */
    const add = (row: string, config: string, r: RequestResult, expect: { target: string | undefined | 'any'; token: boolean; status?: number }) => {
      const token = Boolean(r.responseHeaders['set-cookie'] ?? r.responseHeaders['x-sticky-session']);
      const ok =
        (expect.target === 'any' ? r.target !== undefined : targetOf(r) === expect.target) && token === expect.token && r.status === (expect.status ?? 200);
      if (!ok) throw new Error(`row "${row}" (${config}) did not behave as that row: ${JSON.stringify({ target: targetOf(r), token, status: r.status, error: r.error })}`);
      rows.push({ row, config, roundTrips: r.roundTrips, calls: r.pdkCalls.map((c) => c.method.replace(/^kong\./, '')).join(', ') || '(none)' });
    };

    // A session pinned to A: new sessions until one lands there.
    let onA: string | undefined;
    for (let i = 0; i < 100 && !onA; i++) {
      const r = await measure({ targets: [A, B, C] });
      if (targetOf(r) === A) onA = cookieOf(r);
    }
    if (!onA) throw new Error('no session landed on A');

    add('no token (or invalid): new session', 'defaults (Secure from the request scheme)', await measure({ targets: [A, B, C] }), { target: 'any', token: true });
    add('no token: new session', 'cookie_secure set', await measure({ targets: [A, B, C], cookie_secure: false }), { target: 'any', token: true });
    add('no token: new session', 'SameSite=None with UA exemptions', await measure({ targets: [A, B, C], cookie_same_site: 'None', cookie_same_site_none_exempt_user_agents: ['Chrome/5[1-6]'] }), { target: 'any', token: true });
    add('valid token, pod ready', 'defaults', await measure({ targets: [A, B, C] }, onA), { target: A, token: false });
    add('valid token, pod terminating and serving', 'defaults', await measure({ targets: [`${A} draining`, B, C] }, onA), { target: A, token: false });
    add('valid token, pod gone: re-pin', 'defaults', await measure({ targets: [B, C] }, onA), { target: 'any', token: true });
    add('valid token, pod gone', 'strict', await measure({ targets: [B, C], strict: true }, onA), { target: undefined, token: false, status: 503 });
    add('no ready endpoint: a serving terminating one', 'no_ready_endpoint draining', await measure({ targets: [`${A} draining`] }), { target: A, token: true });
    add('no ready endpoint: 503', 'no_ready_endpoint reject', await measure({ targets: [`${A} draining`], no_ready_endpoint: 'reject' }), { target: undefined, token: false, status: 503 });
    add('no token: new session', 'transport header', await measure({ targets: [A, B, C], transport: 'header' }), { target: 'any', token: true });
    const headerToken = (await measure({ targets: [A, B, C], transport: 'header' })).responseHeaders['x-sticky-session']?.[0];
    add('valid token, pod ready', 'transport header', await measure({ targets: [A, B, C], transport: 'header' }, undefined, headerToken ? { 'x-sticky-session': headerToken } : {}), { target: 'any', token: false });
    add('endpoints not known yet (fail open)', 'kubernetes_*, never synced', await measure({ targets: null, kubernetes_namespace: 'shop', kubernetes_service: 'cart', kubernetes_port: 'http' }), { target: undefined, token: false });
    return rows;
  } finally {
    await kong.stop();
  }
}

export function printRoundTrips(rows: readonly RoundTripRow[]): void {
  printTable(
    'PDK round trips per request, per contract row (real plugin server, counted on the socket)',
    ['request carries / endpoint', 'config', 'round trips', 'PDK calls'],
    rows.map((r) => [r.row, r.config, String(r.roundTrips), r.calls]),
  );
}

if (isMain(import.meta)) printRoundTrips(await countRoundTrips());
