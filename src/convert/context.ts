/**
 * The state of one conversion run that every source converter writes into: the output
 * documents (input order, converted in place), the KongPlugins made, the report.
 */
import { kongPlugin, secretCommand, withPluginAnnotation } from './emit.js';
import { at, isObj, kindOf, nameOf, namespaceOf, type ConvertOptions, type ConvertedConfig, type Obj, type Report } from './model.js';

/** The annotation that names the source a KongPlugin was converted from. */
export const CONVERTED_FROM = 'sticky-session/converted-from';

/** Kinds without a namespace, among those a conversion input may hold. */
const CLUSTER_SCOPED = new Set(['Namespace', 'GatewayClass', 'IngressClass', 'KongClusterPlugin', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'Node', 'PersistentVolume', 'StorageClass']);

export class ConvertContext {
  readonly reports: Report[] = [];
  readonly plugins: Obj[] = [];
  /** Output documents in input order; converters replace entries. */
  readonly outputs: unknown[];
  private readonly services = new Map<string, number>();
  private readonly takenPluginNames = new Set<string>();
  /** KongPlugins of the input that an earlier run made, by `ns/name`: their index and source. */
  private readonly earlierPlugins = new Map<string, { readonly index: number; readonly origin: unknown }>();
  private readonly secretNamespaces = new Set<string>();
  /** KongPlugins made for Services (`ns/service`), so two sources do not attach two. */
  private readonly servicePlugins = new Map<string, { readonly name: string; readonly config: ConvertedConfig; readonly origin: string }>();

  constructor(
    readonly options: ConvertOptions,
    inputs: readonly unknown[],
  ) {
    // Documents without a namespace are in the one kubectl would use: say it, so that the
    // KongPlugins (which must name theirs) and what they attach to agree.
    this.outputs = inputs.map((d) => {
      const copy = structuredClone(d);
      if (isObj(copy) && isObj(copy.metadata) && copy.metadata.namespace === undefined && !CLUSTER_SCOPED.has(String(copy.kind))) {
        copy.metadata.namespace = options.namespace;
      }
      return copy;
    });
    this.outputs.forEach((doc, i) => {
      if (!isObj(doc)) return;
      if (kindOf(doc) === 'v1/Service') this.services.set(`${namespaceOf(doc)}/${nameOf(doc)}`, i);
      if (kindOf(doc) === 'configuration.konghq.com/v1/KongPlugin') {
        const key = `${namespaceOf(doc)}/${nameOf(doc)}`;
        this.takenPluginNames.add(key);
        const origin = at(doc, 'metadata', 'annotations', CONVERTED_FROM);
        if (origin !== undefined) this.earlierPlugins.set(key, { index: i, origin });
      }
    });
  }

  report(level: Report['level'], source: string, field: string, message: string): void {
    this.reports.push({ level, source, field, message });
  }

  /** The Service of that name in the input (as converted so far), if any. */
  service(namespace: string, name: string): Obj | undefined {
    const i = this.services.get(`${namespace}/${name}`);
    const doc = i === undefined ? undefined : this.outputs[i];
    return isObj(doc) ? doc : undefined;
  }

  /** All Services of the input, as converted so far. */
  allServices(): Obj[] {
    return [...this.services.values()].map((i) => this.outputs[i]).filter(isObj);
  }

  /** Adds `plugin` to the `konghq.com/plugins` annotation of an input Service; false when it is not in the input. */
  annotateService(namespace: string, name: string, plugin: string): boolean {
    const i = this.services.get(`${namespace}/${name}`);
    const doc = i === undefined ? undefined : this.outputs[i];
    if (i === undefined || !isObj(doc)) return false;
    this.outputs[i] = withPluginAnnotation(doc, plugin);
    return true;
  }

  /**
   * The KongPlugin of the input, among `names` (a `konghq.com/plugins` list), that an earlier
   * run made: the document being converted is that run's output.
   */
  earlierPlugin(namespace: string, names: readonly string[]): { readonly name: string; readonly origin: string } | undefined {
    for (const name of names) {
      const earlier = this.earlierPlugins.get(`${namespace}/${name}`);
      if (earlier && typeof earlier.origin === 'string') return { name, origin: earlier.origin };
    }
    return undefined;
  }

  /**
   * A KongPlugin for a Service (its name is `<service>-sticky-session`), attached to it when it
   * is in the input. A second source for the same Service reuses the plugin when the settings
   * agree, and is a conflict otherwise.
   */
  attachToService(namespace: string, service: string, config: ConvertedConfig, origin: string): { name: string; inInput: boolean; conflict?: string } {
    const key = `${namespace}/${service}`;
    const before = this.servicePlugins.get(key);
    if (before) {
      const same = JSON.stringify(before.config) === JSON.stringify(config);
      return { name: before.name, inInput: this.services.has(key), ...(same ? {} : { conflict: `from ${before.origin}` }) };
    }
    const name = this.addPlugin(namespace, `${service}-sticky-session`.slice(0, 253), config, origin);
    this.servicePlugins.set(key, { name, config, origin });
    return { name, inInput: this.annotateService(namespace, service, name) };
  }

  /**
   * Emits a KongPlugin for `config` and returns its name: `wanted`, or `wanted-2`... when a
   * KongPlugin of that name is in the input or already made. The one exception: the input's
   * KongPlugin that an earlier run made for this same source is replaced, so converting an
   * output again gives that output.
   */
  addPlugin(namespace: string, wanted: string, config: ConvertedConfig, origin: string): string {
    // Converting an earlier run's output again: replace the KongPlugin it made for this source.
    const earlier = this.earlierPlugins.get(`${namespace}/${wanted}`);
    if (earlier && earlier.origin === origin) {
      this.earlierPlugins.delete(`${namespace}/${wanted}`);
      this.outputs[earlier.index] = this.makePlugin(namespace, wanted, config, origin);
      return wanted;
    }
    let name = wanted;
    for (let n = 2; this.takenPluginNames.has(`${namespace}/${name}`); n++) name = `${wanted.slice(0, 249)}-${n}`;
    this.takenPluginNames.add(`${namespace}/${name}`);
    this.plugins.push(this.makePlugin(namespace, name, config, origin));
    return name;
  }

  private makePlugin(namespace: string, name: string, config: ConvertedConfig, origin: string): Obj {
    if (!this.secretNamespaces.has(namespace)) {
      this.secretNamespaces.add(namespace);
      this.report(
        'action',
        `Secret ${namespace}/${this.options.secretName}`,
        '',
        `the KongPlugins in ${namespace} read their signing secrets from it (a JSON array, at least 32 characters each); create it once, before applying: ${secretCommand(namespace, this.options.secretName)}`,
      );
    }
    if (config.change_on_failure) {
      this.report(
        'action',
        `KongPlugin ${namespace}/${name}`,
        'config.change_on_failure',
        'needs the plugin server started on plugins-failover/ instead of plugins/ (README, "Change on failure"): the access-only plugins/ refuses the field',
      );
    }
    return kongPlugin(name, namespace, config, this.options.secretName, { [CONVERTED_FROM]: origin });
  }
}
