/**
 * CPU profiles of a plugin-server process while a bench drives it: the server is started
 * with NODE_OPTIONS=--inspect=127.0.0.1:0 (see withInspector), and the V8 profiler is
 * driven over the inspector protocol (kong-pdk's server has no SIGTERM handler, so
 * --cpu-prof would never write its file when Kong stops it). The .cpuprofile opens in
 * Chrome DevTools; summarizeProfile prints where the time went.
 */
import { writeFileSync } from 'node:fs';
import type { KongEmulator, KongEmulatorOptions } from '../harness/kong-emulator.js';
import { readDockerfileEnv } from '../harness/dockerfile.js';

/** Emulator options that pass NODE_OPTIONS to the plugin server the way a deployment would. */
export function withNodeOptions(options: KongEmulatorOptions, nodeOptions: string | undefined): KongEmulatorOptions {
  if (!nodeOptions) return options;
  const mainEnv = options.nginxMainEnv ?? readDockerfileEnv().get('KONG_NGINX_MAIN_ENV') ?? '';
  return { ...options, env: { ...(options.env ?? {}), NODE_OPTIONS: nodeOptions }, nginxMainEnv: `${mainEnv}; env NODE_OPTIONS` };
}

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
export interface CpuProfile {
  nodes: CpuProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Profiles the plugin server of `kong` (started with --inspect=127.0.0.1:0) while `during` runs. */
export async function profileServer(kong: KongEmulator, during: () => Promise<void>, intervalUs = 200): Promise<CpuProfile> {
  const m = /Debugger listening on (ws:\/\/\S+)/.exec(kong.serverLog());
  if (!m) throw new Error('plugin server has no inspector: start it with NODE_OPTIONS=--inspect=127.0.0.1:0');
  const ws = new WebSocket(m[1]!);
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error('inspector connection failed'));
  });
  let id = 0;
  const pending = new Map<number, (result: unknown) => void>();
  ws.onmessage = (ev) => {
    const msg = JSON.parse(String(ev.data)) as { id?: number; result?: unknown };
    if (msg.id !== undefined) pending.get(msg.id)?.(msg.result);
  };
  const call = (method: string, params: Record<string, unknown> = {}) =>
    new Promise<unknown>((resolve) => {
      const n = ++id;
      pending.set(n, resolve);
      ws.send(JSON.stringify({ id: n, method, params }));
    });
  try {
    await call('Profiler.enable');
    await call('Profiler.setSamplingInterval', { interval: intervalUs });
    await call('Profiler.start');
    await during();
    const result = (await call('Profiler.stop')) as { profile: CpuProfile };
    return result.profile;
  } finally {
    ws.close();
  }
}

export function saveProfile(profile: CpuProfile, file: string): void {
  writeFileSync(file, JSON.stringify(profile));
}

/** Self and inclusive time of the heaviest functions (share of all samples, idle excluded). */
export function summarizeProfile(profile: CpuProfile, top = 25): string {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const time = new Map<number, number>();
  profile.samples.forEach((s, i) => time.set(s, (time.get(s) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const name = (n: CpuProfileNode) => `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.split('/').slice(-2).join('/')}:${n.callFrame.lineNumber + 1}`;
  const self = new Map<string, number>();
  const incl = new Map<string, number>();
  let total = 0;
  for (const [nodeId, t] of time) {
    const node = byId.get(nodeId)!;
    if (node.callFrame.functionName === '(idle)') continue;
    total += t;
    self.set(name(node), (self.get(name(node)) ?? 0) + t);
    const seen = new Set<string>();
    for (let cur: number | undefined = nodeId; cur !== undefined; cur = parent.get(cur)) {
      const k = name(byId.get(cur)!);
      if (!seen.has(k)) incl.set(k, (incl.get(k) ?? 0) + t);
      seen.add(k);
    }
  }
  const list = (m: Map<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, t]) => `  ${((100 * t) / total).toFixed(1).padStart(5)}%  ${k}`)
      .join('\n');
  return `busy ${(total / 1e6).toFixed(2)} s\nself time:\n${list(self)}\ninclusive time:\n${list(incl)}`;
}
