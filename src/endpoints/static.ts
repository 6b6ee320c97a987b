import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { makeSnapshot, type Endpoint, type EndpointSnapshot, type EndpointSource } from './types.js';

/**
 * Endpoints given in the plugin config: "host:port", "[v6]:port", optionally followed by
 * "weight=N" and "draining". For the docker-compose gateway and for anyone without
 * Kubernetes. The view never changes; a config change starts a new instance.
 */
export class StaticSource implements EndpointSource {
  readonly key: string;
  private readonly snapshot: EndpointSnapshot;

  constructor(endpoints: readonly Endpoint[]) {
    this.snapshot = makeSnapshot(1, endpoints);
    const canonical = [...this.snapshot.byId.values()].map((e) => `${e.id} ${e.weight} ${e.condition}`);
    this.key = `static:${createHash('sha256').update(canonical.join('\n')).digest('hex').slice(0, 16)}`;
  }

  current(): EndpointSnapshot {
    return this.snapshot;
  }

  onChange(): () => void {
    return () => {};
  }

  close(): void {}
}

/** Parses one target; throws an Error whose message says what is wrong with it. */
export function parseTarget(spec: string): Endpoint {
  const [address, ...options] = spec.trim().split(/\s+/);
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(address ?? '');
  if (!m) throw new Error(`"${spec}": expected host:port or [ipv6]:port`);
  const host = (m[1] ?? m[2]) as string;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) throw new Error(`"${spec}": port must be 1-65535`);
  if (m[1] !== undefined && isIP(host) !== 6) throw new Error(`"${spec}": "${host}" is not an IPv6 address`);
  if (m[2] !== undefined && !isIP(host) && /^[\d.]+$/.test(host)) {
    throw new Error(`"${spec}": "${host}" is not a valid IPv4 address`);
  }
  if (m[2] !== undefined && !isIP(host) && !/^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(host)) {
    throw new Error(`"${spec}": "${host}" is neither an IP address nor a host name`);
  }
  let weight = 1;
  let draining = false;
  for (const opt of options) {
    const w = /^weight=(\d{1,4})$/.exec(opt);
    if (w) {
      weight = Number(w[1]);
      if (weight < 1 || weight > 1000) throw new Error(`"${spec}": weight must be 1-1000`);
    } else if (opt === 'draining') {
      draining = true;
    } else {
      throw new Error(`"${spec}": unknown option "${opt}" (expected weight=N or draining)`);
    }
  }
  // One spelling per address, so duplicates are found and ids do not change with case.
  const canonical = m[1] !== undefined ? new URL(`http://[${host}]/`).hostname.slice(1, -1) : host.toLowerCase();
  const id = m[1] !== undefined ? `[${canonical}]:${port}` : `${canonical}:${port}`;
  return { id, name: id, host: m[1] !== undefined ? host : canonical, port, weight, condition: draining ? 'draining' : 'ready' };
}
