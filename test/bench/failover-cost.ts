/**
 * What change on failure costs (issue 4): the same pinned traffic through the access-only
 * plugin server (plugins/) and through plugins-failover/, whose log phase Kong runs after
 * every response. Reports round trips per request and plugin-server throughput (the log
 * phase runs in a timer after the response, so it adds load, not client latency).
 *   npm run bench:failover
 */
import { KongEmulator } from '../harness/kong-emulator.js';
import { median, printTable, fmt } from './report.js';

const SERVICE = { id: 'svc-failover-bench', name: 'bench', host: 'bench.internal', port: 80, protocol: 'http' };
const CONFIG = { secrets: ['bench-secret-0123456789abcdef-0123456789'], targets: ['192.0.2.1:8080', '192.0.2.2:8080'] };

async function measure(pluginsDir: string, changeOnFailure: boolean, requests: number) {
  const kong = await KongEmulator.start({ pluginsDir, workers: 1 });
  try {
    kong.addPlugin({ service: SERVICE.id, config: { ...CONFIG, change_on_failure: changeOnFailure } });
    const first = await kong.request({ service: SERVICE });
    const cookie = first.responseHeaders['set-cookie']![0]!.split(';')[0]!;
    const req = { service: SERVICE, headers: { cookie } };
    for (let i = 0; i < 200; i++) await kong.request(req);
    const rates: number[] = [];
    let roundTrips = 0;
    for (let run = 0; run < 3; run++) {
      const t0 = performance.now();
      for (let i = 0; i < requests; i++) {
        const r = await kong.request(req);
        roundTrips = r.roundTrips + (r.log?.roundTrips ?? 0);
      }
      rates.push(requests / ((performance.now() - t0) / 1000));
    }
    return { rate: median(rates), roundTrips };
  } finally {
    await kong.stop();
  }
}

export async function benchFailover(requests = 2000): Promise<void> {
  const plain = await measure('plugins', false, requests);
  const failover = await measure('plugins-failover', true, requests);
  printTable('Change on failure: pinned requests, one emulated worker, sequential', ['plugin server', 'round trips / request', 'requests/s', 'vs access-only'], [
    ['plugins/ (access only)', plain.roundTrips, fmt.rate(plain.rate), '-'],
    ['plugins-failover/ (access + log)', failover.roundTrips, fmt.rate(failover.rate), fmt.pct(failover.rate / plain.rate - 1)],
  ]);
}

if (import.meta.url === `file://${process.argv[1]}`) await benchFailover();
