/**
 * What every converter emits: the KongPlugin for a config, the Secret it reads its signing
 * keys from, and the `konghq.com/plugins` annotation that attaches it. Pure: no I/O.
 */
import { isObj, type ConvertedConfig, type Obj } from './model.js';

export const PLUGIN_NAME = 'sticky-session';
export const PLUGINS_ANNOTATION = 'konghq.com/plugins';
/** The key of the Secret that holds the signing secrets, as a JSON array (a configPatches value is JSON). */
export const SECRET_KEY = 'secrets';

/**
 * A KongPlugin whose `secrets` come from a Secret through `configPatches` (KIC adds
 * `{"op": "add", "path": "/secrets", "value": <the key's JSON>}` to `config`): the settings stay
 * readable here, the keys do not. `configFrom` would replace `config` whole.
 */
export function kongPlugin(name: string, namespace: string, config: ConvertedConfig, secretName: string, annotations?: Record<string, string>): Obj {
  return {
    apiVersion: 'configuration.konghq.com/v1',
    kind: 'KongPlugin',
    metadata: { name, namespace, ...(annotations ? { annotations } : {}) },
    plugin: PLUGIN_NAME,
    config: { ...config },
    configPatches: [{ path: `/${SECRET_KEY}`, valueFrom: { secretKeyRef: { name: secretName, key: SECRET_KEY } } }],
  };
}

/** The command that creates the Secret a namespace's KongPlugins read; never a secret of ours. */
export function secretCommand(namespace: string, secretName: string): string {
  return `kubectl -n ${namespace} create secret generic ${secretName} --from-literal=${SECRET_KEY}="[\\"$(openssl rand -base64 32)\\"]"`;
}

/** Appends `plugin` to a comma-separated `konghq.com/plugins` value, once. */
export function appendPlugin(value: unknown, plugin: string): string {
  const names = typeof value === 'string' ? value.split(',').map((s) => s.trim()).filter(Boolean) : [];
  if (!names.includes(plugin)) names.push(plugin);
  return names.join(',');
}

/** A deep copy of `doc` with `plugin` added to its `konghq.com/plugins` annotation. */
export function withPluginAnnotation(doc: Obj, plugin: string): Obj {
  const copy = structuredClone(doc);
  const meta = isObj(copy.metadata) ? copy.metadata : (copy.metadata = {});
  const annotations = isObj(meta.annotations) ? meta.annotations : (meta.annotations = {});
  annotations[PLUGINS_ANNOTATION] = appendPlugin(annotations[PLUGINS_ANNOTATION], plugin);
  return copy;
}

/** A KongPlugin name (DNS subdomain) made of parts, lower-cased, at most 253 characters. */
export function pluginName(...parts: string[]): string {
  const name = parts
    .join('-')
    .toLowerCase()
    .replace(/[^a-z0-9.-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/^[-.]+|[-.]+$/g, '');
  return name.slice(0, 253).replace(/[-.]+$/, '');
}
