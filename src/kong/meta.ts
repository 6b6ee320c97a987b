/** Plugin version as Kong sees it (x.y.z); kept equal to package.json's by a test. */
export const Version = '0.1.0';

/**
 * Runs after authentication (1000+) and rate limiting (910), so refused requests never
 * start a session, and before transformations that do not care where a request goes.
 */
export const Priority = 800;

/** The plugin's name in Kong: kong-pdk takes it from the entry file's name (plugins/sticky-session.js). */
export const PLUGIN_NAME = 'sticky-session';
