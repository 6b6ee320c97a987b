/**
 * Memory of a plugin server answering 503 (kong.response.exit) request after request, as
 * through an outage with `no_ready_endpoint: reject`: kong-pdk 0.6 kept every such event
 * (src/kong-pdk-exit.ts). The real plugin server, image commands and env, 4 workers.
 *
 *   npm run bench:reject-memory [-- --requests 200000]
 */
import { readFileSync } from 'node:fs';
import { KongEmulator } from '../harness/kong-emulator.js';
import { fmt, numberOption, printTable } from './report.js';

const SERVICE = { id: '0e3c1c3e-1111-4c4c-9a9a-00000000be4c', name: 'shop', host: 'shop.internal', port: 80, protocol: 'http' };
const WORKERS = 4;
const STEPS = 5;

function rssMb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
}

const total = numberOption('requests', 200_000);
const kong = await KongEmulator.start({ useDockerfile: true, workers: WORKERS });
try {
  const plugin = kong.addPlugin({
    service: SERVICE.id,
    config: { secrets: ['bench-secret-0123456789abcdef0123456789'], targets: ['192.0.2.10:8080 draining'], no_ready_endpoint: 'reject' },
  }).id;
  const pid = kong.serverPid!;
  const rows: string[][] = [['0', `${rssMb(pid).toFixed(1)} MB`]];
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
    rows.push([fmt.int(done), `${rssMb(pid).toFixed(1)} MB`]);
  }
  printTable(`Plugin-server RSS while answering 503 (no ready endpoint, reject), ${WORKERS} workers`, ['503 answers', 'RSS'], rows);
} finally {
  await kong.stop();
}
