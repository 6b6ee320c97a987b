// kong-pdk entry point. Kong names the plugin after this file: sticky-session.
export { StickySessionPlugin as Plugin } from '../dist/kong/plugin.js';
export { Schema } from '../dist/config/schema.js';
export { Version, Priority } from '../dist/kong/meta.js';
