/**
 * Which Kubernetes Service (and which of its ports) a plugin instance routes to.
 *
 * Under the Kong Ingress Controller the Kong service host already names it:
 * `<service>.<namespace>.<port>.svc`, so a KongPlugin needs no coordinates of its own.
 * Pure: no I/O.
 */

/**
 * A Service port as EndpointSlices carry it: its name (`''` for the single unnamed port),
 * its number, or `null` for "the only port the Service has".
 */
export type ServicePort = string | number | null;

export interface ServiceRef {
  readonly namespace: string;
  readonly service: string;
  readonly port: ServicePort;
}

/** The plugin config fields that name a Service; the schema lets each be null. */
export interface KubernetesServiceConfig {
  readonly kubernetes_namespace?: string | null;
  readonly kubernetes_service?: string | null;
  readonly kubernetes_port?: string | number | null;
}

export type ServiceRefResolution =
  | { readonly ok: true; readonly ref: ServiceRef }
  | { readonly ok: false; readonly reason: string };

// RFC 1123 label: what namespaces and Service names are.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
// IANA_SVC_NAME: what a named Service port is (at most 15 chars, a letter, no `--`).
const PORT_NAME = /^(?=.*[a-z])(?!.*--)[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$/;
const PORT_NUMBER = /^[0-9]{1,5}$/;

/** Reads `<service>.<namespace>.<port>.svc` (KIC's Kong service host); undefined otherwise. */
export function parseServiceHost(host: string | null | undefined): ServiceRef | undefined {
  if (!host) return undefined;
  const labels = host.toLowerCase().split('.');
  if (labels.length !== 4 || labels[3] !== 'svc') return undefined;
  const [service, namespace, portLabel] = labels as [string, string, string, string];
  if (!DNS_LABEL.test(service) || !DNS_LABEL.test(namespace)) return undefined;
  const port = parseServicePort(portLabel);
  if (port === undefined || port === null) return undefined;
  return { namespace, service, port };
}

/**
 * A configured port: digits are a number (1-65535), anything else must be a valid port
 * name; null, undefined and `''` mean "the only port". Undefined when invalid.
 */
export function parseServicePort(value: string | number | null | undefined): ServicePort | undefined {
  if (value === null || value === undefined || value === '') return null;
  if (typeof value === 'number') return validPortNumber(value);
  if (PORT_NUMBER.test(value)) return validPortNumber(Number(value));
  return PORT_NAME.test(value) ? value : undefined;
}

function validPortNumber(n: number): number | undefined {
  return Number.isInteger(n) && n >= 1 && n <= 65535 ? n : undefined;
}

/**
 * Resolves the Service an instance routes to. Precedence, field by field:
 *  1. `kubernetes_namespace` / `kubernetes_service` / `kubernetes_port` when set;
 *  2. the matching part of the Kong service host when it has KIC's form, but only if the
 *     host names the same Service the config names (a host for another Service or
 *     namespace is ignored whole: its port belongs to that other Service);
 *  3. port only: null, "the only port of the Service".
 * Namespace and service must come from 1 or 2, else the result says what is missing.
 */
export function resolveServiceRef(
  config: KubernetesServiceConfig,
  serviceHost?: string | null,
): ServiceRefResolution {
  const namespace = config.kubernetes_namespace || undefined;
  const service = config.kubernetes_service || undefined;
  const port = parseServicePort(config.kubernetes_port);
  if (port === undefined) {
    return { ok: false, reason: `kubernetes_port ${JSON.stringify(config.kubernetes_port)} is neither a port number nor a port name` };
  }
  if (namespace !== undefined && !DNS_LABEL.test(namespace)) {
    return { ok: false, reason: `kubernetes_namespace ${JSON.stringify(namespace)} is not a valid namespace name` };
  }
  if (service !== undefined && !DNS_LABEL.test(service)) {
    return { ok: false, reason: `kubernetes_service ${JSON.stringify(service)} is not a valid Service name` };
  }

  const fromHost = parseServiceHost(serviceHost);
  const hostAgrees =
    fromHost !== undefined &&
    (namespace === undefined || namespace === fromHost.namespace) &&
    (service === undefined || service === fromHost.service);
  const host = hostAgrees ? fromHost : undefined;

  const resolved = {
    namespace: namespace ?? host?.namespace,
    service: service ?? host?.service,
    port: port ?? host?.port ?? null,
  };
  if (resolved.namespace === undefined || resolved.service === undefined) {
    const missing = [resolved.namespace === undefined && 'kubernetes_namespace', resolved.service === undefined && 'kubernetes_service']
      .filter(Boolean)
      .join(' and ');
    return {
      ok: false,
      reason: `no Kubernetes Service: set ${missing}, or route to a Kong service whose host is <service>.<namespace>.<port>.svc (got ${JSON.stringify(serviceHost ?? null)})`,
    };
  }
  return { ok: true, ref: { namespace: resolved.namespace, service: resolved.service, port: resolved.port } };
}

/**
 * The same ref with its port in canonical form: `"80"` becomes 80 (no port name is all
 * digits), `''` becomes null, so config strings and parsed hosts share one watch. A port
 * that is no valid name or number is left as given: it matches nothing, and says so in logs.
 */
export function canonicalServiceRef(ref: ServiceRef): ServiceRef {
  const port = parseServicePort(ref.port);
  return port === undefined || port === ref.port ? ref : { ...ref, port };
}

/** `k8s:<namespace>/<service>:<port>`; `*` stands for "the only port" (no port name can be `*`). */
export function serviceRefKey(ref: ServiceRef): string {
  const { port } = canonicalServiceRef(ref);
  return `k8s:${ref.namespace}/${ref.service}:${port === null ? '*' : port}`;
}

/** For logs: `<namespace>/<service>:<port>`. */
export function describeServiceRef(ref: ServiceRef): string {
  return serviceRefKey(ref).slice('k8s:'.length);
}
