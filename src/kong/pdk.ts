/**
 * The part of kong-pdk's PDK proxy this plugin uses. Each call is one round trip to Kong
 * over the plugin server's socket, so the handler calls as few as it can. Only the first
 * Lua return value crosses the wire (kong-pdk's own .d.ts tuple types are wrong).
 */
export interface KongPdk {
  readonly request: {
    getHeader(name: string): Promise<string | null | undefined>;
    getForwardedScheme(): Promise<string | null | undefined>;
  };
  readonly nginx: {
    getVar(name: string): Promise<string | null | undefined>;
  };
  readonly router: {
    getService(): Promise<{ host?: string | null; id?: string | null; name?: string | null } | null | undefined>;
    getRoute(): Promise<{ id?: string | null; name?: string | null; tags?: readonly string[] | null } | null | undefined>;
  };
  readonly service: {
    setTarget(host: string, port: number): Promise<unknown>;
    readonly request: {
      /** "Host" also sets $upstream_host and the downstream request's Host. */
      setHeader(name: string, value: string): Promise<unknown>;
    };
  };
  readonly response: {
    addHeader(name: string, value: string): Promise<unknown>;
    setHeader(name: string, value: string): Promise<unknown>;
    /** Does not wait for Kong: the request ends here. */
    exit(status: number, body?: unknown, headers?: Record<string, string>): Promise<unknown>;
    /** In the log phase: the status sent to the client. */
    getStatus(): Promise<number | null | undefined>;
  };
  readonly log: {
    /** Kong's log record as a JSON string (the plugin server's exposed API encodes it). */
    serialize(): Promise<string | null | undefined>;
  };
}
