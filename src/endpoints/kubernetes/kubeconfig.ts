import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { clientNode } from './client-node.js';

const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/**
 * Credentials for the API server: KUBECONFIG, else ~/.kube/config, else in-cluster.
 *
 * Kong's plugin server is started by an nginx worker, and nginx passes on only the
 * environment variables declared with `env` (KONG_NGINX_MAIN_ENV). The image declares the
 * Kubernetes ones, but a user's own KONG_NGINX_MAIN_ENV replaces that list: in a pod
 * without KUBERNETES_SERVICE_HOST, the API server's in-cluster DNS name still works.
 */
export function loadKubeConfig(env: NodeJS.ProcessEnv = process.env): KubeConfig {
  const { KubeConfig } = clientNode();
  if (!env.KUBECONFIG && !env.KUBERNETES_SERVICE_HOST && existsSync(SERVICE_ACCOUNT_TOKEN)) {
    env.KUBERNETES_SERVICE_HOST = 'kubernetes.default.svc';
    env.KUBERNETES_SERVICE_PORT = '443';
  }
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromDefault();
  return kubeConfig;
}

/** Whether loadKubeConfig would find a cluster: KUBECONFIG, ~/.kube/config, or in a pod. */
export function inKubernetes(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.KUBECONFIG || env.KUBERNETES_SERVICE_HOST) return true;
  return existsSync(path.join(homedir(), '.kube', 'config')) || existsSync(SERVICE_ACCOUNT_TOKEN);
}
