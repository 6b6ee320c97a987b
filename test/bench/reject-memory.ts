/**
 * Memory of a plugin server answering 503 (kong.response.exit) request after request, as
 * through an outage with `no_ready_endpoint: reject`: kong-pdk 0.6 kept every such event
 * (src/kong/forget-exited-events.ts). The real plugin server, image commands and env, 4 workers.
 *
 *   npm run bench:reject-memory [-- --requests 200000]
 */
import { KongEmulator } from '../harness/kong-emulator.js';
import { SECRET, SERVICE } from './proxy.js';
import { fmt, numberOption, printTable, rssOf } from './report.js';

const WORKERS = 4;
const STEPS = 5;

const total = numberOption('requests', 200_000);
const kong = await KongEmulator.start({ useDockerfile: true, workers: WORKERS });
try {
  const plugin = kong.addPlugin({
    service: SERVICE.id,
    config: { secrets: [SECRET], targets: ['192.0.2.10:8080 draining'], no_ready_endpoint: 'reject' },
  }).id;
  const pid = kong.serverPid!;
  const rss = () => fmt.mb(rssOf(pid) ?? NaN);
  const rows: string[][] = [['0', rss()]];
  let done = 0;
  for (let step = 0; step < STEPS; step++) {
    await Promise.all(
      Array.from({ length: WORKERS }, async (_, worker) => {
        for (let i = 0; i < total / STEPS / WORKERS; i++) {
          const r = await kong.request({ service: SERVICE }, { worker, log: false, plugin });
          if (r.status !== 503) throw new Error(`expected 503, got ${r.status}`);
          done++;
        }
      }),
    );
    rows.push([fmt.int(done), rss()]);
  }
  printTable(`Plugin-server RSS while answering 503 (no ready endpoint, reject), ${WORKERS} workers`, ['503 answers', 'RSS'], rows);
} finally {
  await kong.stop();
}
