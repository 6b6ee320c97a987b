/**
 * Every environment variable the plugin server reads. nginx leaves its workers (and so the
 * plugin server worker 0 starts) only the variables declared with `env`, that is Kong's
 * `nginx_main_env` (KONG_NGINX_MAIN_ENV): every place that configures Kong must declare all
 * of these. test/manifests checks that they do, and that src/ reads no variable missing here.
 */
export const SERVER_ENV = {
  /** In-cluster API server address (set by Kubernetes in every pod). */
  KUBERNETES_SERVICE_HOST: 'Kubernetes API server host, in a pod',
  KUBERNETES_SERVICE_PORT: 'Kubernetes API server port, in a pod',
  KUBECONFIG: 'kubeconfig outside a cluster',
  STICKY_SESSION_LOG_LEVEL: 'the plugin server log level (default info)',
  STICKY_SESSION_METRICS_PORT: 'metrics and status listener port (unset: off)',
  STICKY_SESSION_METRICS_ADDRESS: 'metrics and status listener address (default 127.0.0.1)',
  STICKY_SESSION_WATCH_SCOPE: 'namespace (default): one list-and-watch per kind and namespace; cluster: one per kind for all namespaces',
} as const;

export type ServerEnvName = keyof typeof SERVER_ENV;

/** The names, in the order the image declares them. */
export const SERVER_ENV_NAMES = Object.keys(SERVER_ENV) as ServerEnvName[];
