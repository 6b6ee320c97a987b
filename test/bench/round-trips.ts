/**
 * PDK round trips per request for each row of the behaviour contract, counted on the
 * socket between the Kong emulator and the REAL plugin server (served as the image serves
 * it). A round trip is one request/response pair Kong makes for the access phase:
 * HandleEvent, then one Step per PDK call that waits for Kong's answer (kong.response.exit
 * does not wait). Static targets; the Kubernetes row uses a Service that never syncs.
 * Every row is counted for a plugin bound to the service and one bound to the route, on a
 * route with preserve_host false and one with true (the Host work, src/kong/upstream-host.ts),
 * and beside them the protocol floor with and without that Host work.
 *
 *   npx tsx test/bench/round-trips.ts
 */
import { KongEmulator, type RequestResult } from '../harness/kong-emulator.js';
import { SECRET, SERVICE } from './proxy.js';

/** The two routes of the service; each instance is measured on one of them. */
export const ROUTES = {
  false: { id: '0e3c1c3e-1111-4c4c-9a9a-0000000000f0', name: 'plain', preserve_host: false },
  true: { id: '0e3c1c3e-1111-4c4c-9a9a-0000000000f1', name: 'preserve', preserve_host: true },
} as const;
export type Binding = 'service' | 'route';
/** The columns: binding x preserve_host. */
export const COMBOS: ReadonlyArray<{ binding: Binding; preserveHost: boolean }> = [
  { binding: 'service', preserveHost: false },
  { binding: 'service', preserveHost: true },
  { binding: 'route', preserveHost: false },
  { binding: 'route', preserveHost: true },
];
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

/** Every contract row for one binding and one preserve_host. */
async function countFor(kong: KongEmulator, binding: Binding, preserveHost: boolean): Promise<RoundTripRow[]> {
  const route = ROUTES[`${preserveHost}`];
  const base = { secrets: [SECRET], targets: [A, B, C] };
  const id = kong.addPlugin({ ...(binding === 'service' ? { service: SERVICE.id } : { route: route.id }), config: base }).id;
  try {
    const send = (cookie?: string, headers: Record<string, string> = {}) =>
      kong.request({ service: SERVICE, route, host: 'shop.example', headers: { ...headers, ...(cookie ? { cookie } : {}) } }, { worker: 0, log: false, plugin: id });
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
    // An instance's first routed request (a KIC service host would add router.get_service).
    kong.updatePlugin(id, { config: { targets: [A, B, C], kubernetes_namespace: null, kubernetes_service: null, kubernetes_port: null } });
    const first = await send(onA);
    rows.push({ row: "instance's first routed request (valid token)", config: 'defaults', roundTrips: first.rpc.filter((x) => !/^plugin\.(Start|Close)Instance$/.test(x.method)).length, calls: first.pdkCalls.map((c) => c.method.replace(/^kong\./, '')).join(', ') });
    return rows;
  } finally {
    kong.removePlugin(id);
  }
}

export interface RoundTripTable {
  /** Per row: its round trips per COMBOS column, and the PDK calls of each column. */
  readonly rows: ReadonlyArray<{ row: string; config: string; roundTrips: number[]; calls: string[] }>;
  /** The protocol floor, with and without the Host work, per preserve_host. */
  readonly floors: ReadonlyArray<{ variant: string; roundTrips: Record<'false' | 'true', number>; calls: Record<'false' | 'true', string> }>;
}

export async function countRoundTrips(): Promise<RoundTripTable> {
  const [kong, floor, floorHost] = await Promise.all([
    KongEmulator.start({ useDockerfile: true, workers: 1 }),
    KongEmulator.start({ pluginsDir: 'test/fixtures/floor', workers: 1 }),
    KongEmulator.start({ pluginsDir: 'test/fixtures/floor-host', workers: 1 }),
  ]);
  try {
    const perCombo: RoundTripRow[][] = [];
    for (const c of COMBOS) perCombo.push(await countFor(kong, c.binding, c.preserveHost));
    const rows = perCombo[0]!.map((r, i) => ({
      row: r.row,
      config: r.config,
      roundTrips: perCombo.map((rs) => rs[i]!.roundTrips),
      calls: perCombo.map((rs) => rs[i]!.calls),
    }));
    const floorRun = async (emu: KongEmulator, config: Record<string, unknown>, variant: string) => {
      const id = emu.addPlugin({ service: SERVICE.id, config: { cookie_name: 'sticky_session', target_host: '192.0.2.10', target_port: 8080, ...config } }).id;
      const roundTrips = { false: 0, true: 0 };
      const calls = { false: '', true: '' };
      for (const p of ['false', 'true'] as const) {
        const req = { service: SERVICE, route: ROUTES[p], host: 'shop.example' };
        await emu.request(req, { plugin: id, log: false });
        const r = await emu.request(req, { plugin: id, log: false });
        roundTrips[p] = r.roundTrips;
        calls[p] = r.pdkCalls.map((x) => x.method.replace(/^kong\./, '') + (x.method === 'kong.service.request.set_header' ? `(Host ${String(x.args[1])})` : '')).join(', ');
      }
      emu.removePlugin(id);
      return { variant, roundTrips, calls };
    };
    const floors = [
      await floorRun(floor, {}, 'floor: get_var(cookie), set_target'),
      await floorRun(floorHost, {}, 'floor + Host work (as the plugin)'),
      await floorRun(floorHost, { restore_port: true }, 'floor + Host work + port restored (not chosen)'),
    ];
    return { rows, floors };
  } finally {
    await Promise.all([kong.stop(), floor.stop(), floorHost.stop()]);
  }
}

export function printRoundTrips(t: RoundTripTable): void {
  const col = (c: { binding: Binding; preserveHost: boolean }) => `${c.binding}-bound, preserve_host ${c.preserveHost}`;
  printTable(
    'PDK round trips per request, per contract row, per binding and preserve_host (real plugin server, counted on the socket)',
    ['request carries / endpoint', 'config', ...COMBOS.map(col)],
    t.rows.map((r) => [r.row, r.config, ...r.roundTrips.map(String)]),
  );
  console.log('\nPDK calls of each row:');
  for (const r of t.rows) {
    const distinct = [...new Set(r.calls)];
    console.log(`  ${r.row} (${r.config}):`);
    for (const calls of distinct) {
      const where = COMBOS.filter((_, i) => r.calls[i] === calls).map(col).join('; ');
      console.log(`    ${where}: ${calls}`);
    }
  }
  printTable(
    'The protocol floor (test/fixtures/floor, floor-host), pinned request',
    ['variant', 'preserve_host false', 'preserve_host true', 'PDK calls (false / true)'],
    t.floors.map((f) => [f.variant, String(f.roundTrips.false), String(f.roundTrips.true), `${f.calls.false} / ${f.calls.true}`]),
  );
}

if (isMain(import.meta)) printRoundTrips(await countRoundTrips());
