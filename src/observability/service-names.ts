/**
 * Kong service names by token binding (`service:<uuid>`, `route:<uuid>`, `global`), for
 * operators who think in names: metrics and decision lines of a named binding carry a
 * `service_name` beside the binding. The handler learns a service's name once per instance
 * (Kong's service entity) and calls nameService; nothing here runs per request but one Map
 * read where a decision line is written. Bounded by the bindings this process serves.
 */
const names = new Map<string, string>();

/**
 * From now on, `binding`'s series and decision lines carry `service_name: name`. A later call
 * with another name (the service was renamed) replaces it; an empty name forgets it.
 */
export function nameService(binding: string, name: string): void {
  if (name === '') names.delete(binding);
  else names.set(binding, name);
}

/** The name given to `binding`, if any. */
export function serviceName(binding: string): string | undefined {
  return names.get(binding);
}
